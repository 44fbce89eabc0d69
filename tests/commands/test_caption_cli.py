"""`videorecap caption` end to end: a tiny model saved to disk, a generated video of several minutes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from videorecap.checkpoint import save_pretrained
from videorecap.config import RecapConfig
from videorecap.model.recap import VideoRecap
from videorecap.tokenizer import Tokenizer
from videorecap.video.testing import make_video

OUTPUTS = ["captions.json", "clips.srt", "clips.vtt", "segments.vtt", "summary.md", "index.html"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("model")
    tok = Tokenizer.train_word_level([" ".join(f"w{i}" for i in range(120))])
    for level in ("clip", "segment", "video"):
        m = VideoRecap(RecapConfig.from_name("recap-tiny", level=level, segment_seconds=40.0))
        with torch.no_grad():
            for blk in m.decoder.h:
                blk.xattn_gate.fill_(1.0)
            m.decoder.wte.weight[2] -= 2.0
        save_pretrained(m, root / level, tokenizer=tok)
    return root


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    # several minutes: 200 s at 2 fps, tiny frames
    return make_video(tmp_path_factory.mktemp("v") / "walk.mp4", duration=200.0, fps=2.0, size=(32, 24))


def _cli(*args, **kw):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "videorecap", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=300, **kw)  # fmt: skip


def test_caption_writes_every_output(model_dir, video, tmp_path):
    r = _cli("caption", video, "--model", model_dir, "-o", tmp_path / "out", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    out = tmp_path / "out" / "walk"
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == sorted(OUTPUTS)
    d = json.loads((out / "captions.json").read_text())
    assert len(d["clips"]) == 50 and len(d["segments"]) == 5 and d["summary"]["end"] == d["video"]["duration"]
    assert d["clips"][-1]["end"] == d["video"]["duration"]

    # the subtitle files parse back with standard parsers, one cue per clip, same times
    import srt
    import webvtt

    subs = list(srt.parse((out / "clips.srt").read_text()))
    assert len(subs) == 50 and subs[1].start.total_seconds() == 4.0
    cues = webvtt.read(str(out / "clips.vtt"))
    assert len(cues) == 50 and cues[0].text == d["clips"][0]["text"]
    chapters = webvtt.read(str(out / "segments.vtt"))
    assert [c.start for c in chapters][:2] == ["00:00:00.000", "00:00:40.000"]
    assert "walk" in r.stdout and "1 of 1 videos captioned" in r.stdout


def test_kill_9_and_resume_gives_identical_files(model_dir, video, tmp_path):
    ref = _cli("caption", video, "--model", model_dir, "-o", tmp_path / "a", "--no-progress", "--batch-size", "1")
    assert ref.returncode == 0, ref.stderr

    out = tmp_path / "b"
    cmd = [sys.executable, "-m", "videorecap", "caption", str(video), "--model", str(model_dir), "-o", str(out),
           "--no-progress", "--batch-size", "1"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cache = out / "walk" / ".cache"
    deadline = time.time() + 120
    while time.time() < deadline and not list(cache.glob("clips-*.npz")):
        time.sleep(0.005)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "walk" / "captions.json").exists()
    done_before = len(list(cache.glob("clips-*.npz")))
    assert 1 <= done_before < 13  # killed part-way through the clip level (50 windows, chunks of 4)

    again = _cli("caption", video, "--model", model_dir, "-o", out, "--no-progress", "--batch-size", "1")
    assert again.returncode == 0, again.stderr
    for name in OUTPUTS:
        assert (out / "walk" / name).read_bytes() == (tmp_path / "a" / "walk" / name).read_bytes(), name
    assert not [p for p in (out / "walk").rglob("*.tmp")]


def test_bad_inputs_are_reported_and_the_rest_goes_on(model_dir, video, tmp_path):
    junk = tmp_path / "notes.mp4"
    junk.write_text("not a video at all")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    r = _cli("caption", junk, empty, tmp_path / "missing.mp4", video, "--model", model_dir, "-o", tmp_path / "o",
             "--no-progress", "--levels", "clip")  # fmt: skip
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    errors = [ln for ln in r.stderr.splitlines() if "error:" in ln]
    assert len(errors) == 3
    assert any("notes.mp4" in e for e in errors) and any("empty" in e for e in errors)
    assert any("missing.mp4" in e and "no such file" in e for e in errors)
    assert (tmp_path / "o" / "walk" / "captions.json").exists()
    assert not (tmp_path / "o" / "notes").exists() or not (tmp_path / "o" / "notes" / "captions.json").exists()


def test_user_mistakes_are_one_line_errors(model_dir, video, tmp_path):
    r = _cli("caption", video, "-o", tmp_path / "o")
    assert r.returncode == 2 and "give a model" in r.stderr and "Traceback" not in r.stderr
    r = _cli("caption", video, "--model", tmp_path / "nope", "-o", tmp_path / "o")
    assert r.returncode == 2 and "nope" in r.stderr and "Traceback" not in r.stderr
    r = _cli("caption", video, "--model", model_dir / "clip", "-o", tmp_path / "o", "--no-progress")
    assert r.returncode == 1 and "--levels clip" in r.stderr and "Traceback" not in r.stderr
    r = _cli("caption", video, "--model", model_dir, "-o", tmp_path / "o", "--strategy", "sample", "--top-p", "0")
    assert r.returncode == 2 and "top_p" in r.stderr
    r = _cli("caption", video, "--model", model_dir, "-o", tmp_path / "o", "--original-lengths", "--strategy", "beam")
    assert r.returncode == 2 and "no beam search" in r.stderr and "Traceback" not in r.stderr
    r = _cli("caption", tmp_path / "*.nothing", "--model", model_dir, "-o", tmp_path / "o")
    assert r.returncode == 2 and "matches no file" in r.stderr


def test_python_api(model_dir, video):
    import videorecap

    res = videorecap.caption(video, model=model_dir, levels=("clip", "segment"), batch_size=16)
    assert isinstance(res, videorecap.CaptionResult)
    assert len(res.clips) == 50 and len(res.segments) == 5 and res.summary is None
    assert Path(res.video.path) == video
