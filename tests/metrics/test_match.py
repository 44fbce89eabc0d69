"""Loading caption files of every supported format and matching predictions to references."""

import json
import pickle

import pytest

from videorecap.data import hcap
from videorecap.errors import DataError, InputError
from videorecap.metrics.match import CaptionItem, load_items, match_items
from videorecap.results import Caption, CaptionResult, VideoMeta


def _item(vid, level, start, end, text="t"):
    return CaptionItem(vid, level, start, end, text)


def _result(vid="v1", duration=200.0):
    return CaptionResult(
        video=VideoMeta(id=vid, path=f"{vid}.mp4", duration=duration),
        clips=[Caption(0, 4, "#C C picks a cup"), Caption(4, 8, "#C C drinks")],
        segments=[Caption(0, 180, "C drinks coffee."), Caption(180, duration, "C leaves.")],
        summary=Caption(0, duration, "C had coffee and left."),
    )


def test_match_by_video_level_and_window_with_tolerance():
    preds = [
        _item("v1", "clip", 0, 4),
        _item("v1", "clip", 4, 8),
        _item("v1", "clip", 8, 12),
        _item("v2", "clip", 0, 4),
    ]
    refs = [_item("v1", "clip", 0.4, 4.3), _item("v1", "clip", 4, 8), _item("v1", "clip", 20, 24)]
    m = match_items(preds, refs, tolerance=0.5)
    assert [(x.pred.start, x.refs[0].start) for x in m.matched["clip"]] == [(0, 0.4), (4, 4)]
    assert [(p.video_id, p.start) for p in m.unmatched_preds] == [("v1", 8), ("v2", 0)]
    assert [(r.video_id, r.start) for r in m.unmatched_refs] == [("v1", 20)]
    assert m.counts() == {"clip": {"matched": 2, "unmatched_predictions": 2, "unmatched_references": 1}}
    # With a tighter tolerance the shifted window no longer matches, and it is reported on both sides.
    m = match_items(preds, refs, tolerance=0.1)
    assert len(m.matched["clip"]) == 1 and len(m.unmatched_preds) == 3 and len(m.unmatched_refs) == 2


def test_each_reference_is_used_once_closest_first():
    preds = [_item("v", "clip", 0.8, 4.8, "far"), _item("v", "clip", 0.1, 4.1, "near")]
    refs = [_item("v", "clip", 0, 4)]
    m = match_items(preds, refs, tolerance=1.0)
    assert [x.pred.text for x in m.matched["clip"]] == ["near"]
    assert [p.text for p in m.unmatched_preds] == ["far"]


def test_references_of_one_window_become_one_multi_reference_item():
    refs = [_item("v", "segment", 0, 180, "a"), _item("v", "segment", 0, 180, "b")]
    m = match_items([_item("v", "segment", 0, 180, "p")], refs)
    assert m.pairs("segment") == (["p"], [["a", "b"]])
    assert not m.unmatched_refs


def test_video_summaries_match_by_id_when_one_each():
    m = match_items(
        [_item("v", "video", 0, 299.5, "p")], [_item("v", "video", 0, 300.0, "r"), _item("w", "video", 0, 9)]
    )
    assert m.pairs("video") == (["p"], [["r"]])
    assert [r.video_id for r in m.unmatched_refs] == ["w"]
    m = match_items([_item("v", "video", None, None, "p")], [_item("v", "video", 0, 300.0, "r")])
    assert m.pairs("video") == (["p"], [["r"]])


def test_load_captions_json_and_a_folder_of_them(tmp_path):
    _result("v1").save(tmp_path / "run" / "v1" / "captions.json")
    _result("v2").save(tmp_path / "run" / "v2" / "captions.json")
    (tmp_path / "run" / "meta.json").write_text('{"steps": 3}')
    one = load_items(tmp_path / "run" / "v1" / "captions.json")
    assert [(i.level, i.start, i.end) for i in one.items] == [
        ("clip", 0, 4),
        ("clip", 4, 8),
        ("segment", 0, 180),
        ("segment", 180, 200),
        ("video", 0, 200),
    ]
    assert one.items[0].text == "#C C picks a cup" and one.items[0].video_id == "v1"
    folder = load_items(tmp_path / "run")
    assert {i.video_id for i in folder.items} == {"v1", "v2"} and len(folder.items) == 10
    assert folder.skipped_files == [str(tmp_path / "run" / "meta.json")]
    # a caption run's own stores (hidden folders) are not captions, and not "skipped" either
    (tmp_path / "run" / "v1" / ".cache").mkdir()
    (tmp_path / "run" / "v1" / ".cache" / "store.json").write_text('{"fingerprint": {}}')
    assert load_items(tmp_path / "run").skipped_files == [str(tmp_path / "run" / "meta.json")]


def test_load_hcap_files_and_jsonl(tmp_path):
    hcap.save_clips(tmp_path / "clips_val.pkl", [("v1", 0.0, 4.0, "#C C picks a cup"), ("v1", 4.0, 8.0)])
    hcap.save_segments(
        tmp_path / "segments_val.pkl", [{"vid": "v1", "start_sec": 0, "end_sec": 180, "segment_description": "d"}]
    )
    hcap.save_videos(
        tmp_path / "videos_val.json", [{"vid": "v1", "start_sec": 0, "end_sec": 200, "video_summary": "s"}]
    )
    clips = load_items(tmp_path / "clips_val.pkl")
    assert [(i.level, i.start, i.text) for i in clips.items] == [("clip", 0.0, "#C C picks a cup")]
    assert len(clips.no_text) == 1  # the caption-less inference row is reported, not scored
    assert [(i.level, i.text) for i in load_items(tmp_path / "segments_val.pkl").items] == [("segment", "d")]
    assert [(i.level, i.end, i.text) for i in load_items(tmp_path / "videos_val.json").items] == [("video", 200, "s")]
    # the level is read from the content when the name does not say
    (tmp_path / "refs.pkl").write_bytes((tmp_path / "segments_val.pkl").read_bytes())
    assert load_items(tmp_path / "refs.pkl").items[0].level == "segment"

    lines = [
        {"video_id": "v1", "level": "clip", "start": 0, "end": 4, "text": "a"},
        {"video_id": "v1", "level": "video", "start": 0, "end": 200, "text": "b"},
    ]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert [(i.level, i.text) for i in load_items(tmp_path / "p.jsonl").items] == [("clip", "a"), ("video", "b")]


def test_bad_files_name_the_file(tmp_path):
    with pytest.raises(InputError, match="nope.json: no such file"):
        load_items(tmp_path / "nope.json")
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(InputError, match="x.json: not valid JSON"):
        load_items(tmp_path / "x.json")
    (tmp_path / "y.json").write_text('{"hello": 1}')
    with pytest.raises(InputError, match="y.json"):
        load_items(tmp_path / "y.json")
    (tmp_path / "z.json").write_text('[{"foo": 1}]')
    with pytest.raises(InputError, match="z.json: not a captions.json"):
        load_items(tmp_path / "z.json")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no captions.json"):
        load_items(tmp_path / "empty")
    # times that are not finite numbers would match every window or none
    hcap_rows = {"nan.pkl": [("v", float("nan"), 4.0, "a")], "inf.pkl": [("v", 0.0, float("inf"), "a")]}
    for name, rows in hcap_rows.items():
        (tmp_path / name).write_bytes(pickle.dumps(rows))
        with pytest.raises(DataError, match=f"{name}.*start and end must be numbers"):
            load_items(tmp_path / name)
    (tmp_path / "none.pkl").write_bytes(pickle.dumps([("v", 0.0, 4.0, None)]))
    with pytest.raises(DataError, match=r"a 4-item clip row is \(vid, start, end, caption text\) or"):
        load_items(tmp_path / "none.pkl")
