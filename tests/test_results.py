"""Typed caption results: round trips, the JSON Schema, and the errors of `load` on bad files."""

from __future__ import annotations

import copy
import json
import math

import jsonschema
import pytest

from videorecap.errors import InputError
from videorecap.results import SCHEMA_VERSION, Caption, CaptionResult, SummaryInput, VideoMeta, load, schema

NASTY = 'a <script>alert("x")</script> --> & \'quotes\' "dq" ünïcödé 字幕 🎬 **b** [l](http://x)'


def make_result(
    duration: float, levels: tuple[str, ...] = ("clip", "segment", "video"), text: str = ""
) -> CaptionResult:
    """Windows as the pipeline makes them: [i, min(i + w, duration)) for i in 0, w, 2w, ..."""

    def windows(w: float) -> list[tuple[float, float]]:
        n = max(1, math.ceil(duration / w))
        return [(i * w, min((i + 1) * w, duration)) for i in range(n)]

    clips = [Caption(s, e, f"clip {i} {text}".strip()) for i, (s, e) in enumerate(windows(4.0))]
    segs = [Caption(s, e, f"segment {i} {text}".strip()) for i, (s, e) in enumerate(windows(180.0))]
    return CaptionResult(
        video=VideoMeta("cooking", "videos/cooking.mp4", duration, 29.97, 1920, 1080, 90),
        clips=clips if "clip" in levels else [],
        segments=segs if "segment" in levels else [],
        summary=Caption(0.0, duration, f"summary {text}".strip()) if "video" in levels else None,
        model={"name": "recap-tiny", "checkpoint": "ckpt/clip"},
        decoding={"strategy": "greedy", "max_new_tokens": {"clip": 12, "segment": 16, "video": 20}},
        levels=list(levels),
    )


def validate(d: dict) -> None:
    jsonschema.Draft202012Validator(schema()).validate(d)


def test_schema_is_valid_draft_2020_12():
    s = schema()
    assert s["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(s)
    assert s["properties"]["schema_version"]["enum"][-1] == SCHEMA_VERSION


@pytest.mark.parametrize(
    "duration,levels",
    [
        (708.03, ("clip", "segment", "video")),  # the official demo video: 178 clips, 4 segments
        (3 * 3600 + 0.5, ("clip", "segment", "video")),  # > 1 h
        (600.0, ("clip",)),  # stopped after the clip level
        (600.0, ("clip", "segment")),
        (2.5, ("clip", "segment", "video")),  # shorter than one clip window
    ],
)
def test_round_trip_dict_and_file(tmp_path, duration, levels):
    r = make_result(duration, levels, text=NASTY)
    d = r.to_dict()
    validate(d)
    assert CaptionResult.from_dict(d) == r
    # through a file, with exact floats and unicode
    p = r.save(tmp_path / "out" / "captions.json")
    assert p.exists() and not [f for f in p.parent.iterdir() if f.name.startswith(".")]  # atomic, no temp left
    assert json.loads(p.read_text(encoding="utf-8")) == d
    back = load(p)
    assert back == r
    assert back.levels == list(levels)


def test_demo_video_shape():
    r = make_result(708.03)
    assert len(r.clips) == 178 and len(r.segments) == 4
    assert r.clips[-1] == Caption(708.0, 708.03, "clip 177")
    groups = r.clips_by_segment()
    assert [len(c) for _, c in groups] == [45, 45, 45, 43]
    assert groups[1][0] is r.segments[1] and groups[1][1][0].start == 180.0


def test_levels_not_run_are_explicit():
    r = make_result(100.0, ("clip",))
    d = r.to_dict()
    assert d["levels"] == ["clip"] and d["segments"] == [] and d["summary"] is None
    assert r.clips_by_segment() == [(None, r.clips)]
    # levels default to the ones that have captions, in canonical order
    r2 = CaptionResult(VideoMeta("v", "v.mp4", 8.0), clips=[Caption(0, 4, "a")], summary=Caption(0, 8, "s"))
    assert r2.levels == ["clip", "video"]
    assert CaptionResult(VideoMeta("v", "v.mp4", 8.0), levels=["video", "clip", "clip"]).levels == ["clip", "video"]


def test_caption_rejects_bad_spans():
    with pytest.raises(ValueError):
        Caption(4.0, 2.0, "reversed")
    with pytest.raises(ValueError):
        Caption(-1.0, 2.0, "negative")
    with pytest.raises(ValueError):
        Caption(0.0, float("nan"), "nan")


def _mutations():
    """(name, mutate(d), schema_rejects): invalid files; the last flag says whether JSON Schema can see it."""

    def setter(path, value):
        def f(d):
            obj = d
            for k in path[:-1]:
                obj = obj[k]
            obj[path[-1]] = value

        return f

    def deleter(path):
        def f(d):
            obj = d
            for k in path[:-1]:
                obj = obj[k]
            del obj[path[-1]]

        return f

    return [
        ("wrong format", setter(["format"], "something.else"), True),
        ("newer major", setter(["schema_version"], "2.0"), True),
        ("newer minor", setter(["schema_version"], "1.9"), True),
        ("version not a string", setter(["schema_version"], 1.0), True),
        ("missing video", deleter(["video"]), True),
        ("unknown top field", setter(["extra"], 1), True),
        ("negative duration", setter(["video", "duration"], -1), True),
        ("zero fps", setter(["video", "fps"], 0), True),
        ("fractional width", setter(["video", "width"], 10.5), True),
        ("bad rotation", setter(["video", "rotation"], 45), True),
        ("unknown video field", setter(["video", "bitrate"], 1), True),
        ("partial not a bool", setter(["video", "partial"], "yes"), True),
        ("covered not spans", setter(["video", "covered"], [[0.0]]), True),
        ("covered negative", setter(["video", "covered"], [[-1.0, 2.0]]), True),
        ("covered reversed", setter(["video", "covered"], [[5.0, 2.0]]), False),
        ("codec not a string", setter(["video", "codec"], 264), True),
        ("model not object", setter(["model"], "recap"), True),
        ("zero clip window", setter(["windows", "clip"], 0), True),
        ("unknown level", setter(["levels"], ["clip", "scene"]), True),
        ("empty levels", setter(["levels"], []), True),
        ("duplicate level", setter(["levels"], ["clip", "clip", "segment", "video"]), True),
        ("clip text not string", setter(["clips", 0, "text"], 5), True),
        ("clip missing end", deleter(["clips", 0, "end"]), True),
        ("clip negative start", setter(["clips", 0, "start"], -0.5), True),
        ("start is bool", setter(["clips", 0, "start"], True), True),
        ("clips not a list", setter(["clips"], {"0": 1}), True),
        ("summary without video level", setter(["levels"], ["clip", "segment"]), True),
        ("video level without summary", setter(["summary"], None), True),
        ("segments without segment level", setter(["levels"], ["clip", "video"]), True),
        # rules a schema cannot express: only the loader sees them
        ("reversed clip", setter(["clips", 1], {"start": 8.0, "end": 5.0, "text": "x"}), False),
        ("clips out of order", setter(["clips", 2], {"start": 1.0, "end": 2.0, "text": "x"}), False),
    ]


@pytest.mark.parametrize("name,mutate,schema_rejects", _mutations(), ids=[m[0] for m in _mutations()])
def test_loader_and_schema_reject_malformed(tmp_path, name, mutate, schema_rejects):
    d = make_result(200.0).to_dict()
    validate(copy.deepcopy(d))  # the unmodified file is valid
    mutate(d)
    if schema_rejects:
        with pytest.raises(jsonschema.ValidationError):
            validate(d)
    p = tmp_path / "captions.json"
    p.write_text(json.dumps(d), encoding="utf-8")
    with pytest.raises(InputError) as e:
        load(p)
    assert str(p) in str(e.value)


def test_load_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(InputError, match="nope.json: no such captions file"):
        load(missing)
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "videorecap.captions",', encoding="utf-8")
    with pytest.raises(InputError, match="bad.json: not valid JSON"):
        load(bad)
    nan = tmp_path / "nan.json"
    nan.write_text(make_result(10.0).to_json().replace('"duration": 10.0', '"duration": NaN'), encoding="utf-8")
    with pytest.raises(InputError, match="nan.json: not valid JSON"):
        load(nan)
    lst = tmp_path / "list.json"
    lst.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(InputError, match="list.json: the top level must be a JSON object"):
        load(lst)
    newer = tmp_path / "newer.json"
    newer.write_text(make_result(10.0).to_json().replace('"1.1"', '"1.7"'), encoding="utf-8")
    with pytest.raises(InputError, match="newer.json: captions schema version 1.7 is not supported"):
        load(newer)


def test_to_json_refuses_non_finite_free_form_values():
    r = make_result(10.0)
    r.decoding["temperature"] = float("inf")
    with pytest.raises(ValueError):
        r.to_json()


def test_save_refuses_what_load_would_reject(tmp_path):
    r = make_result(20.0)
    r.levels = ["clip", "segment"]  # but it has a summary
    with pytest.raises(ValueError, match="summary but levels"):
        r.save(tmp_path / "captions.json")
    assert not list(tmp_path.iterdir())


def test_partial_video_round_trip_and_files_of_1_0_load(tmp_path):
    r = make_result(300.0)
    r.video.partial, r.video.covered, r.video.start_time, r.video.codec = True, [[0.0, 83.0]], 3.5, "hevc"
    d = r.to_dict()
    validate(d)
    assert d["video"]["covered"] == [[0.0, 83.0]] and d["video"]["partial"] is True
    back = CaptionResult.from_dict(json.loads(r.to_json()))
    assert back == r and back.video.covered_spans() == [(0.0, 83.0)]
    # a 1.0 file, written before these fields existed, still loads with their defaults
    old = make_result(10.0).to_dict()
    old["schema_version"] = "1.0"
    for k in ("start_time", "codec", "partial", "covered"):
        del old["video"][k]
    validate(old)
    f = tmp_path / "old.json"
    f.write_text(json.dumps(old), encoding="utf-8")
    v = load(f).video
    assert (v.start_time, v.codec, v.partial, v.covered) == (0.0, None, False, None)
    assert v.covered_spans() == [(0.0, 10.0)]


# ---- summary_input (1.2): which segment descriptions the summary read ---------------------------------------------
def _long_result() -> CaptionResult:
    r = make_result(3 * 3600.0)  # 60 segments of 180 s
    r.summary_input = SummaryInput("spread", 512, 2014, (0, 4, 8, 59))
    return r


def test_summary_input_round_trips_and_raises_the_written_version_only_when_present(tmp_path):
    r = _long_result()
    d = r.to_dict()
    validate(d)
    assert d["schema_version"] == "1.2" == SCHEMA_VERSION
    assert d["summary_input"] == {"policy": "spread", "max_tokens": 512, "tokens": 2014, "segments": [0, 4, 8, 59]}
    back = load(r.save(tmp_path / "captions.json"))
    assert back.summary_input == r.summary_input and back.to_dict() == d
    # without it (every video that fits) the file is what 1.1 readers read: version 1.1 and no such key
    short = make_result(600.0).to_dict()
    assert short["schema_version"] == "1.1" and "summary_input" not in short


@pytest.mark.parametrize(
    "name,path,value,schema_rejects",
    [
        ("unknown policy", ["policy"], "middle", True),
        ("zero max_tokens", ["max_tokens"], 0, True),
        ("fractional tokens", ["tokens"], 2.5, True),
        ("negative index", ["segments"], [-1, 3], True),
        ("repeated index", ["segments"], [3, 3], True),
        ("unknown field", ["extra"], 1, True),
        ("segments not a list", ["segments"], 3, True),
        # rules a schema cannot express: only the loader sees them
        ("index past the segments", ["segments"], [0, 60], False),
        ("indices out of order", ["segments"], [8, 4], False),
    ],
)
def test_loader_and_schema_reject_a_malformed_summary_input(tmp_path, name, path, value, schema_rejects):
    d = _long_result().to_dict()
    d["summary_input"][path[0]] = value
    if schema_rejects:
        with pytest.raises(jsonschema.ValidationError):
            validate(d)
    else:
        validate(d)
    p = tmp_path / "captions.json"
    p.write_text(json.dumps(d), encoding="utf-8")
    with pytest.raises(InputError, match="summary_input") as e:
        load(p)
    assert str(p) in str(e.value)


def test_a_summary_input_needs_a_summary(tmp_path):
    d = _long_result().to_dict()
    d["levels"], d["summary"] = ["clip", "segment"], None
    with pytest.raises(jsonschema.ValidationError):
        validate(d)
    with pytest.raises(InputError, match="summary_input but no summary"):
        CaptionResult.from_dict(d)
