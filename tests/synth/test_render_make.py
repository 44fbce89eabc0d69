"""Rendering to mp4, the dataset files and the `synth make` command."""

from __future__ import annotations

import json
import pickle
from collections import Counter
from pathlib import Path

import av
import numpy as np
import pytest

from videorecap.cli import main
from videorecap.synth import render, world
from videorecap.synth.make import make_dataset, make_video, split_counts
from videorecap.synth.world import COLOURS, make_script


def _decode(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def test_render_is_deterministic_and_has_every_frame(tmp_path: Path) -> None:
    script = make_script(3, 0.5)
    render.render_video(script, tmp_path / "a.mp4", size=64, fps=8)
    render.render_video(script, tmp_path / "b.mp4", size=64, fps=8)
    a, b = _decode(tmp_path / "a.mp4"), _decode(tmp_path / "b.mp4")
    assert a.shape == (240, 64, 64, 3)
    assert np.array_equal(a, b)
    # the raw frames are what was encoded, up to compression
    raw = np.stack(list(render.iter_frames(script, size=64, fps=8)))
    assert np.abs(raw.astype(int) - a.astype(int)).mean() < 4
    # and the picture moves: the hand walks, things are carried
    moving = (np.abs(np.diff(raw.astype(int), axis=0)).sum(axis=(1, 2, 3)) > 0).mean()
    assert moving > 0.5


def test_colours_survive_h264_at_64px(tmp_path: Path) -> None:
    cv = render._Canvas(64)
    img = cv.background.copy()
    centres = [(20 + 10 * (i % 3), 32 + 10 * (i // 3)) for i in range(len(COLOURS))]
    for (x, y), colour in zip(centres, COLOURS.values(), strict=True):
        render._draw_obj(cv, img, render._Obj("plate", colour, (x, y), "table"), x, y)
    path = tmp_path / "c.mp4"
    with av.open(str(path), "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=8)
        s.width = s.height = 64
        s.pix_fmt = "yuv420p"
        s.options = {"crf": "18", "preset": "veryfast"}
        for _ in range(8):
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    out = _decode(path)[-1].astype(int)
    palette = np.array(list(COLOURS.values()))
    for (x, y), name in zip(centres, COLOURS, strict=True):
        patch = out[y - 1 : y + 2, x - 1 : x + 2].reshape(-1, 3).mean(0)
        nearest = list(COLOURS)[int(np.argmin(((palette - patch) ** 2).sum(1)))]
        assert nearest == name


def test_every_thing_has_its_own_drawing() -> None:
    """Each kind of thing the world spawns is drawn as itself (not the fallback square), and kinds that share a
    colour differ in shape."""
    cv = render._Canvas(64)
    things = {t.kind: t for seed in range(40) for a in make_script(seed, 4.0).activities for t in a.things}
    assert len(things) > 60
    drawings = {}
    for kind in things:
        colour = render.KIND_COLOURS.get(kind, COLOURS["red"])  # kinds named by colour: all in red here
        img, fallback = cv.background.copy(), cv.background.copy()
        render._draw_obj(cv, img, render._Obj(kind, colour, (31, 38), "table"), 31, 38)
        cv.box(fallback, 31, 38, 4, 4, colour)
        assert not np.array_equal(img, fallback), kind
        assert not np.array_equal(img, cv.background), kind
        drawings[kind] = img
    # no two kinds look the same
    seen: dict[bytes, str] = {}
    for kind, img in drawings.items():
        assert img.tobytes() not in seen, (kind, seen.get(img.tobytes()))
        seen[img.tobytes()] = kind


def test_the_floor_shows_the_home() -> None:
    floors = {}
    for seed in range(12):
        script = make_script(seed, 0.25)
        frame = next(render.iter_frames(script, size=64))
        floors[script.home] = tuple(int(v) for v in frame[40, 13])  # open floor between the cupboard and the table
    assert floors == dict(enumerate(render.FLOORS))
    # no object or fixture is drawn in a floor colour
    things = set(COLOURS.values()) | set(render.KIND_COLOURS.values()) | {p[4] for p in render.PLACES.values()}
    assert not things & set(render.FLOORS)


def test_the_floor_follows_the_home_a_video_is_in() -> None:
    script = make_script(1, 0.4, homes=3)  # parts of 8 s each (multiples of the 4-s clip window)
    assert [t for t, _ in script.visits] == [0.0, 8.0, 16.0]
    frames = list(render.iter_frames(script, size=64, fps=2.0))
    # the floor is most of the frame (a hand or a thing on the floor may cover any one pixel)
    floors = [Counter(map(tuple, f.reshape(-1, 3).tolist())).most_common(1)[0][0] for f in frames]
    assert floors == [render.FLOORS[script.home_at(i / 2.0)] for i in range(len(frames))]
    assert len(set(floors)) == 3


def test_state_changes_show(tmp_path: Path) -> None:
    """The new fixtures and containers change when an action changes them: the oven glows, the cat comes to its
    dish, swept dirt goes."""
    cv = render._Canvas(64)
    shown = set()
    for seed in range(40):
        script = make_script(seed, 4.0)
        for st in render._simulate(script):
            a = st.action
            if a.kind in ("bake.oven_on", "cat.spoon", "sweep.sweep", "laundry.start", "dishwasher.open"):
                # the hand waits at the door, out of the way
                before = render._draw(cv, st.before, (5, 60), {})
                after = render._draw(cv, st.after, (5, 60), {})
                assert not np.array_equal(before, after), a.caption
                shown.add(a.kind)
    assert len(shown) == 5


def test_split_counts() -> None:
    assert split_counts(10) == {"train": 8, "val": 1, "test": 1}
    assert split_counts(3) == {"train": 1, "val": 1, "test": 1}
    assert split_counts(50) == {"train": 40, "val": 5, "test": 5}
    assert split_counts(4, ("test",)) == {"test": 4}
    assert split_counts({"train": 2, "test": 1}) == {"train": 2, "val": 0, "test": 1}
    with pytest.raises(ValueError):
        split_counts(2)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synth")
    world = make_dataset(out, videos={"train": 2, "val": 1, "test": 1}, minutes=1.0, seed=5, segment_seconds=20.0)
    return out, world


def test_dataset_files_are_plain_hcap(dataset: tuple[Path, dict]) -> None:
    out, world = dataset
    assert world == json.loads((out / "world.json").read_text())
    assert world["counts"] == {"videos": 4, "clips": 60, "segments": 12, "per_split": {"train": 2, "val": 1, "test": 1}}
    assert world["windows"] == {"clip_seconds": 4.0, "segment_seconds": 20.0}
    assert world["vocabulary_size"] > 100
    for split, vids in world["splits"].items():
        clips = pickle.loads((out / f"clips_{split}.pkl").read_bytes())
        segs = pickle.loads((out / f"segments_{split}.pkl").read_bytes())
        videos = json.loads((out / f"videos_{split}.json").read_text())
        assert [v["vid"] for v in videos] == vids
        for vid in vids:
            assert (out / "videos" / f"{vid}.mp4").is_file()
        assert all(type(c) is tuple and len(c) == 4 and c[3].startswith("#C C ") for c in clips)
        assert len(clips) == 15 * len(vids) and len(segs) == 3 * len(vids)
        for s in segs:
            assert set(s) == {
                "vid",
                "sid",
                "start_sec",
                "end_sec",
                "segment_description",
                "captions_pred",
                "captions_gt",
            }
            inside = [list(c) for c in clips if c[0] == s["vid"] and s["start_sec"] <= c[1] < s["end_sec"]]
            assert s["captions_pred"] == inside
            assert s["captions_gt"] == [{"narration_text": c[3]} for c in inside]
        for v in videos:
            assert v["end_sec"] == 60.0
            mine = [s["segment_description"] for s in segs if s["vid"] == v["vid"]]
            assert v["segment_descriptions"] == v["segment_descriptions_pred"] == mine
            assert v["video_summary"].startswith("C ")
    # the project's own loaders read them too
    from videorecap.data import hcap

    assert len(hcap.load_clips(out / "clips_train.pkl")) == 30
    assert len(hcap.load_segments(out / "segments_val.pkl")) == 3


def test_same_seed_same_bytes_and_splits_independent(dataset: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = dataset
    # more train videos: train grows, val and test are unchanged; ground truth is byte-identical
    make_dataset(tmp_path, videos={"train": 3, "val": 1, "test": 1}, minutes=1.0, seed=5, segment_seconds=20.0)
    for split in ("val", "test"):
        for name in (f"clips_{split}.pkl", f"segments_{split}.pkl", f"videos_{split}.json"):
            assert (tmp_path / name).read_bytes() == (out / name).read_bytes()
    old = pickle.loads((out / "clips_train.pkl").read_bytes())
    new = pickle.loads((tmp_path / "clips_train.pkl").read_bytes())
    assert new[: len(old)] == old and len(new) == len(old) * 3 // 2
    # splits hold different videos
    caps = {s: [c[3] for c in pickle.loads((out / f"clips_{s}.pkl").read_bytes())] for s in ("val", "test")}
    assert caps["val"] != caps["test"]


def test_make_video(tmp_path: Path) -> None:
    script = make_video(tmp_path / "demo.mp4", seed=1, minutes=0.5, size=96, fps=4)
    frames = _decode(tmp_path / "demo.mp4")
    assert frames.shape == (120, 96, 96, 3)
    assert script.vid == "synth_heldout_0000" and len(script.clips) == 8
    assert make_video(tmp_path / "again.mp4", seed=1, minutes=0.5, size=96, fps=4).summary == script.summary


def test_cli_make_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ds"
    rc = main(["synth", "make", "-o", str(out), "--videos", "3", "--minutes", "0.5", "--segment-seconds", "10"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "wrote 3 videos (train 1, val 1, test 1)" in text and "real time" in text
    assert json.loads((out / "world.json").read_text())["counts"]["segments"] == 9
    assert "homes" not in json.loads((out / "world.json").read_text())
    # --homes 1-3: video k of a split visits 1 + k mod 3 homes, recorded in world.json
    out = tmp_path / "mixed"
    rc = main(["synth", "make", "-o", str(out), "--videos", "5", "--splits", "train,val", "--minutes", "0.6",
               "--homes", "1-3", "--no-progress"])  # fmt: skip
    assert rc == 0 and json.loads((out / "world.json").read_text())["homes"] == [1, 3]
    capsys.readouterr()
    rows = json.loads((out / "videos_train.json").read_text())
    named = [world.activities_named(r["video_summary"]) for r in rows]
    parts = [sum(1 for h in world.HOMES if set(h) & set(n)) for n in named]
    assert len(rows) == 4 and parts[1] >= 2 and parts[2] >= 2 and parts[0] == 1
    for bad in (
        ["--homes", "0"],
        ["--homes", "2-9"],
        ["--homes", "x"],
        ["--homes", "3", "--minutes", "0.1"],
        ["--videos", "-2"],
        ["--size", "31"],
        ["--minutes", "0"],
        ["--clip-seconds", "8", "--segment-seconds", "4"],
        # beyond the upper bounds: --size 100000 ran out of memory after videos/ was made
        ["--size", "100000"],
        ["--size", "4098"],
        ["--fps", "1000"],
        ["--minutes", "1e9"],
        ["--minutes", "inf"],
        ["--fps", "nan"],
        ["--seed", "-5"],
    ):
        try:
            rc = main(["synth", "make", "-o", str(tmp_path / "bad"), *bad])
        except SystemExit as e:  # a value argparse rejects
            rc = e.code
        err = capsys.readouterr().err
        assert rc == 2, bad
        assert err.startswith("videorecap synth") and ": error:" in err and err.count("\n") == 1, err
        assert any(flag in err for flag in bad if flag.startswith("--")), err
    assert not (tmp_path / "bad").exists()
    for kwargs in ({"size": 4098}, {"fps": 121.0}, {"minutes": 1441.0}, {"seed": -1}):  # the library's own checks
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            make_video(tmp_path / "bad.mp4", **{"minutes": 0.5, **kwargs})
    assert not (tmp_path / "bad.mp4").exists()
