import os
import pickle
import re

import numpy as np
import pytest

from videorecap.data import hcap
from videorecap.data.hcap import ClipRow
from videorecap.errors import DataError

SEGMENTS = [
    {
        "vid": "v1",
        "start_sec": 0.0,
        "end_sec": 180.0,
        "captions_pred": [["v1", 0.0, 4.0, "#C C opens the door"], ["v1", 4.0, 8.0, "#C C walks"]],
        "captions_gt": [{"narration_text": "#C C opens a door"}],
        "segment_description": "C opened the door and walked in.",
        "sid": "v1_0",
    },
    {"vid": "v2", "sid": "v2_3", "captions_pred": [], "segment_description": "C cooked."},  # sid only
]
VIDEOS = [
    {
        "vid": "v1",
        "start_sec": 0.0,
        "end_sec": 700.5,
        "segment_descriptions": ["C cooked.", "C ate."],
        "segment_descriptions_pred": ["C cooked food.", "C ate food."],
        "video_summary": "C made and ate dinner.",
    },
    {
        "vid": "v2",
        "sids": ["v2_0", "v2_1"],
        "version": "v1",
        "segment_descriptions_pred": "['C cooked.', 'C ate.']",
        "video_summary": "C had a meal.",
    },
]


class Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned_marker",))


class EvilEval:
    def __reduce__(self):
        return (eval, ("__import__('pathlib').Path('pwned2').touch()",))


@pytest.mark.parametrize("payload", [Evil(), EvilEval(), [1, 2, {"x": Evil()}]])
@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_malicious_pickle_is_refused_without_running(tmp_path, monkeypatch, payload, protocol):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "clips_train.pkl"
    path.write_bytes(pickle.dumps(payload, protocol=protocol))
    with pytest.raises(DataError) as e:
        hcap.load_clips(path)
    msg = str(e.value)
    assert str(path) in msg
    assert re.search(r"tries to import (posix|nt|os|builtins|__builtin__)\.(system|eval)", msg)
    assert not (tmp_path / "pwned_marker").exists()
    assert not (tmp_path / "pwned2").exists()


def test_restricted_load_file_object_and_plain_types(tmp_path):
    obj = [("a", 1, 2.5, True, None), {"k": [b"x", {1, 2}, frozenset({3})]}, -(2**70)]
    path = tmp_path / "x.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=4))
    assert hcap.restricted_load(path) == obj
    with open(path, "rb") as f:
        assert hcap.restricted_load(f) == obj


def test_numpy_scalars_refused_by_default_admitted_on_request(tmp_path):
    path = tmp_path / "np.pkl"
    path.write_bytes(pickle.dumps([("v", np.float64(1.5), np.int64(7), "c")], protocol=2))
    with pytest.raises(DataError, match="numpy"):
        hcap.restricted_load(path)
    out = hcap.restricted_load(path, numpy_scalars=True)
    assert out == [("v", 1.5, 7, "c")]
    assert type(out[0][1]) is float and type(out[0][2]) is int
    # arrays remain refused even then
    path.write_bytes(pickle.dumps(np.zeros(3), protocol=4))
    with pytest.raises(DataError):
        hcap.restricted_load(path, numpy_scalars=True)


def test_not_a_pickle_and_missing_file(tmp_path):
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(b"\x80\x04garbage")
    with pytest.raises(DataError, match="bad.pkl"):
        hcap.load_clips(bad)
    with pytest.raises(DataError, match="file not found"):
        hcap.load_segments(tmp_path / "nope.pkl")


def test_clip_variants_and_save_format(tmp_path):
    rows = [("v1", 0, 4.0, "#C C picks the cabbage"), ("v1", 4.0, 8.0), ("v2", "v2_0", 0.0, 4.0)]
    src = tmp_path / "clips.pkl"
    src.write_bytes(pickle.dumps(rows, protocol=4))
    got = hcap.load_clips(src)
    assert got == [
        ClipRow("v1", 0.0, 4.0, "#C C picks the cabbage"),
        ClipRow("v1", 4.0, 8.0),
        ClipRow("v2", 0.0, 4.0, sid="v2_0"),
    ]
    out = tmp_path / "out.pkl"
    hcap.save_clips(out, got)
    raw = out.read_bytes()
    assert raw[:2] == b"\x80\x04"  # protocol 4
    back = pickle.loads(raw)  # trusted: we just wrote it
    assert back == [("v1", 0.0, 4.0, "#C C picks the cabbage"), ("v1", 4.0, 8.0), ("v2", "v2_0", 0.0, 4.0)]
    assert all(type(t) is tuple for t in back)


def test_bad_clip_rows(tmp_path):
    p = tmp_path / "c.pkl"
    for rows, msg in [
        ([("v", 1.0)], "row 0"),
        ([("v", "x", 4.0, "cap")], "numbers"),
        ([("v", 8.0, 4.0, "cap")], "before start"),
        ({"not": "a list"}, "expected a list"),
    ]:
        p.write_bytes(pickle.dumps(rows, protocol=4))
        with pytest.raises(DataError, match=msg):
            hcap.load_clips(p)


def test_segments_and_videos_round_trip(tmp_path):
    hcap.save_segments(tmp_path / "s.pkl", SEGMENTS)
    assert hcap.load_segments(tmp_path / "s.pkl") == SEGMENTS
    hcap.save_videos(tmp_path / "v.json", VIDEOS)
    assert (tmp_path / "v.json").read_text().lstrip().startswith("[")
    assert hcap.load_videos(tmp_path / "v.json") == VIDEOS
    hcap.save_videos(tmp_path / "v.pkl", VIDEOS)  # datasets.md calls them .pkl
    assert hcap.load_videos(tmp_path / "v.pkl") == VIDEOS


def test_bad_segment_and_video_rows(tmp_path):
    p = tmp_path / "s.pkl"
    p.write_bytes(pickle.dumps([{"vid": "v", "start_sec": 0.0}], protocol=4))
    with pytest.raises(DataError, match="row 0.*'sid'"):
        hcap.load_segments(p)
    p.write_bytes(pickle.dumps([{"vid": "v", "sid": "s", "captions_pred": ["oops"]}], protocol=4))
    with pytest.raises(DataError, match="captions_pred"):
        hcap.load_segments(p)
    j = tmp_path / "v.json"
    j.write_text('[{"vid": "v", "start_sec": 0}]')
    with pytest.raises(DataError, match="end_sec"):
        hcap.load_videos(j)
    j.write_text("{not json")
    with pytest.raises(DataError, match="v.json"):
        hcap.load_videos(j)


def test_jsonl_round_trip(tmp_path):
    clips = [ClipRow("v1", 0.0, 4.0, "#C C opens"), ClipRow("v1", 4.0, 8.0), ClipRow("v2", 0.0, 4.0, sid="s")]
    hcap.save_clips(tmp_path / "clips_train.pkl", clips)
    hcap.save_segments(tmp_path / "segments_train.pkl", SEGMENTS)
    hcap.save_videos(tmp_path / "videos_train.json", VIDEOS)
    n = hcap.convert_hcap_to_jsonl(
        tmp_path / "all.jsonl",
        clips=tmp_path / "clips_train.pkl",
        segments=tmp_path / "segments_train.pkl",
        videos=tmp_path / "videos_train.json",
    )
    assert n == 3 + 2 + 2
    recs = hcap.load_jsonl(tmp_path / "all.jsonl")
    assert recs[0] == {"video_id": "v1", "level": "clip", "start": 0.0, "end": 4.0, "text": "#C C opens"}
    seg = recs[3]
    assert seg["level"] == "segment" and seg["text"] == SEGMENTS[0]["segment_description"]
    assert seg["sid"] == "v1_0" and seg["captions_pred"] == SEGMENTS[0]["captions_pred"]
    assert recs[6]["start"] is None and recs[6]["sids"] == ["v2_0", "v2_1"]

    written = hcap.convert_jsonl_to_hcap(tmp_path / "all.jsonl", tmp_path / "out", split="val")
    assert sorted(p.name for p in written.values()) == ["clips_val.pkl", "segments_val.pkl", "videos_val.json"]
    assert hcap.load_clips(written["clip"]) == clips
    assert hcap.load_segments(written["segment"]) == SEGMENTS
    assert hcap.load_videos(written["video"]) == VIDEOS
    # the same rows straight from the JSONL file
    assert hcap.load_level(tmp_path / "all.jsonl", "segment") == SEGMENTS
    assert hcap.load_level(tmp_path / "all.jsonl", "clip") == clips


def test_jsonl_errors_name_the_line(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text('{"video_id": "v", "level": "clip", "start": 0, "end": 4, "text": "x"}\n\n{"video_id": "v"}\n')
    with pytest.raises(DataError, match=r"d.jsonl:3: 'level'"):
        hcap.load_jsonl(p)
    p.write_text("not json\n")
    with pytest.raises(DataError, match=r"d.jsonl:1: not valid JSON"):
        hcap.load_jsonl(p)
    p.write_text('{"video_id": "v", "level": "segment", "start": 0, "text": "x"}\n')
    with pytest.raises(DataError, match="end_sec"):
        hcap.load_jsonl(p)


def test_extension_registry_opcode_is_refused(tmp_path):
    # EXT1 fetches a global through copyreg's registry; it must still go through find_class
    import copyreg

    copyreg.add_extension("posix", "system", 240)
    try:
        payload = b"\x80\x02\x82\xf0X\x0a\x00\x00\x00touch pwnq\x85R."
        path = tmp_path / "ext.pkl"
        path.write_bytes(payload)
        with pytest.raises(DataError, match=r"posix\.system"):
            hcap.restricted_load(path)
    finally:
        copyreg.remove_extension("posix", "system", 240)
