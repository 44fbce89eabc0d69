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
from _helpers import tiny_recap, word_tokenizer

from videorecap.checkpoint import save_pretrained
from videorecap.video.testing import make_video

OUTPUTS = ["captions.json", "clips.srt", "clips.vtt", "segments.vtt", "summary.md", "index.html"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("model")
    tok = word_tokenizer(120)
    for level in ("clip", "segment", "video"):
        save_pretrained(tiny_recap(level, xmlp=False, segment_seconds=40.0), root / level, tokenizer=tok)
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
    r = _cli("caption", junk, empty, video, "--model", model_dir, "-o", tmp_path / "o",
             "--no-progress", "--levels", "clip")  # fmt: skip
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    errors = [ln for ln in r.stderr.splitlines() if "error:" in ln]
    assert len(errors) == 2
    assert any("notes.mp4" in e for e in errors) and any("empty" in e for e in errors)
    assert (tmp_path / "o" / "walk" / "captions.json").exists()
    assert not (tmp_path / "o" / "notes").exists() or not (tmp_path / "o" / "notes" / "captions.json").exists()
    # when every video fails, the output folder the run made is not left behind (holding only its lock file)
    r = _cli("caption", junk, "--model", model_dir, "-o", tmp_path / "none", "--no-progress", "--levels", "clip")
    assert r.returncode == 1 and "notes.mp4" in r.stderr and not (tmp_path / "none").exists()


def test_user_mistakes_are_one_line_errors(model_dir, video, tmp_path):
    r = _cli("caption", video, "-o", tmp_path / "o")
    assert r.returncode == 2 and "give a model" in r.stderr and "Traceback" not in r.stderr
    r = _cli("caption", video, "--model", tmp_path / "nope", "-o", tmp_path / "o")
    assert r.returncode == 2 and "nope" in r.stderr and "Traceback" not in r.stderr
    # a single-level folder where three levels are needed: a configuration mistake, before any video is decoded
    r = _cli("caption", video, "--model", model_dir / "clip", "-o", tmp_path / "o", "--no-progress")
    assert r.returncode == 2 and "--levels clip" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "FAILED" not in r.stdout
    r = _cli("caption", video, "--model", model_dir, "-o", tmp_path / "o", "--strategy", "sample", "--top-p", "0")
    assert r.returncode == 2 and "--top-p: must be more than 0 and at most 1" in r.stderr  # at parsing, naming the flag
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


# ---- issue 12: what a new user hit ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    """Two videos whose bytes are damaged: one in the middle (decodes to ~30 s of 60), one near the start (no whole
    4-s window decodes). ffv1 in .mkv: every frame is a key frame and the index is not where the damage is."""
    from videorecap.video.testing import corrupt_middle

    d = tmp_path_factory.mktemp("broken")
    middle = corrupt_middle(make_video(d / "corrupt_middle.mkv", duration=60, fps=5, size=(64, 48), codec="ffv1"))
    early = corrupt_middle(make_video(d / "corrupt_early.mkv", duration=60, fps=5, size=(64, 48), codec="ffv1"), 0.04)
    return middle, early


def test_allow_partial_captions_what_decoded_and_goes_on(model_dir, video, broken, tmp_path):
    middle, early = broken
    r = _cli("caption", middle, early, video, "--model", model_dir, "-o", tmp_path / "o", "--no-progress",
             "--allow-partial")  # fmt: skip
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == 1  # the video with nothing decodable failed; the others are done
    errors = [ln for ln in r.stderr.splitlines() if "error:" in ln]
    assert len(errors) == 1 and "corrupt_early" in errors[0] and "no window could be decoded" in errors[0]
    assert (tmp_path / "o" / "walk" / "captions.json").exists()
    row = next(ln for ln in r.stdout.splitlines() if ln.startswith("corrupt_middle"))
    assert "partial" in row

    d = json.loads((tmp_path / "o" / "corrupt_middle" / "captions.json").read_text())
    covered_end = d["clips"][-1]["end"]
    assert 20 <= covered_end <= 32 < d["video"]["duration"]  # the damage is about half-way
    # only the decoded part is described: no segment (and no summary) reaches past it
    assert d["segments"] and all(s["end"] <= covered_end for s in d["segments"])
    assert d["segments"][-1]["end"] == covered_end and d["summary"]["end"] == covered_end
    # recorded as partial in captions.json and shown on the page and in summary.md
    assert d["video"]["partial"] is True and d["video"]["covered"] == [[0.0, covered_end]]
    page = (tmp_path / "o" / "corrupt_middle" / "index.html").read_text()
    summary_md = (tmp_path / "o" / "corrupt_middle" / "summary.md").read_text()
    assert "could be decoded" in page and "could be decoded" in summary_md
    whole = json.loads((tmp_path / "o" / "walk" / "captions.json").read_text())
    assert whole["video"]["partial"] is False and whole["video"]["covered"] is None


def test_an_unexpected_failure_in_one_video_is_one_line_and_the_rest_goes_on(model_dir, video, tmp_path, monkeypatch,
                                                                              capsys):  # fmt: skip
    import videorecap.pipeline as pl
    from videorecap import cli

    real = pl._Run.clips
    other = make_video(tmp_path / "other.mp4", duration=6.0, fps=2.0, size=(32, 24))

    def flaky(self, *a, **kw):
        if self.path.name == "other.mp4":
            raise RuntimeError("something inside broke")
        return real(self, *a, **kw)

    monkeypatch.setattr(pl._Run, "clips", flaky)
    code = cli.main(["caption", str(other), str(video), "--model", str(model_dir), "-o", str(tmp_path / "o"),
                     "--no-progress", "--levels", "clip"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "other.mp4" in lines[0] and "RuntimeError: something inside broke" in lines[0]
    assert (tmp_path / "o" / "walk" / "captions.json").exists() and "1 of 2 videos captioned" in out


def test_output_that_cannot_be_written_is_one_line_before_the_model_loads(video, tmp_path, capsys):
    from _helpers import model_that_does_not_load

    from videorecap import cli

    a_file = tmp_path / "taken.txt"
    a_file.write_text("x")
    # a model whose configs are fine and whose weights are not: loading it would be a different error
    bad = model_that_does_not_load(tmp_path / "bad-weights")
    for out in (a_file, a_file / "sub"):
        code = cli.main(["caption", str(video), "--model", str(bad), "-o", str(out)])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "-o" in err and str(out) in err and "bad-weights" not in err
    assert cli.main(["caption", str(video), "--model", str(bad), "-o", str(tmp_path / "o")]) == 2
    assert "bad-weights" in capsys.readouterr().err  # the weights are read, after the output check


def test_config_mistakes_stop_before_any_video_is_decoded(model_dir, video, tmp_path, capsys):
    from videorecap import cli

    def run(*argv):
        try:
            code = cli.main(["caption", *map(str, argv)])
        except SystemExit as e:  # a value argparse rejects
            code = e.code
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err, err
        return code, err

    base = ["--model", model_dir, "-o", tmp_path / "o", "--no-progress"]
    assert run(tmp_path / "missing.mp4", video, *base)[0] == 2  # not a per-video failure after the model loads
    empty_list = tmp_path / "list.txt"
    empty_list.write_text("# nothing yet\n")
    code, err = run(empty_list, *base)
    assert code == 2 and "no input videos" in err
    for flag, value, say in [
        ("--clip-seconds", "0.01", "at least 0.1"),
        ("--clip-seconds", "nan", "finite"),
        ("--segment-seconds", "-3", "at least 0.1"),
        ("--grid-fps", "0", "positive"),
        ("--batch-size", "0", "at least 1"),
        ("--max-tokens", "two", "integer"),
        ("--min-tail-seconds", "-1", "0 or more"),
        # what depends on the model: a token limit beyond its decoder (gigabytes of cache, then an error per video),
        # a segment window shorter than its clip window (0.001 s: hours of 0-length segments)
        ("--max-tokens", "100000", "its decoder has 128 positions, so at most 127"),
        ("--segment-seconds", "1", "shorter than the clip window (4 s)"),
    ]:
        code, err = run(video, *base, flag, value)
        assert code == 2 and flag in err and say in err, (flag, value, err)
    assert not (tmp_path / "o").exists()  # nothing was started


def test_model_by_name_checkpoint_files_and_devices(video, tmp_path, capsys):
    from videorecap import cli

    def err_of(*argv):
        code = cli.main(["caption", str(video), "-o", str(tmp_path / "o"), "--no-progress", *map(str, argv)])
        err = capsys.readouterr().err
        assert "Traceback" not in err and err.count("\n") == 1, err
        return code, err

    pt = tmp_path / "videorecap_clip.pt"
    torch.save({"w": torch.zeros(1)}, pt)
    code, err = err_of("--model", pt)
    assert code == 2 and "checkpoint file" in err and f"videorecap convert official {pt} OUT" in err
    assert "no such model folder" not in err
    folder = tmp_path / "ck"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    from safetensors.torch import save_file

    save_file({"a": torch.zeros(1)}, folder / "model.safetensors")
    code, err = err_of("--model", folder / "model.safetensors")
    assert code == 2 and f"give its folder, {folder}" in err
    # a model folder that is not there, or is no checkpoint, or lacks a level asked for: said before -o is made
    empty = tmp_path / "empty"
    empty.mkdir()
    for argv, message in [
        (["--model", tmp_path / "typo"], "no such model folder"),
        (["--model", empty], "not a model"),
        (["--clip-model", "recap-synth"], "segment"),  # the default levels need segment and video models too
    ]:
        code, err = err_of(*argv)
        assert code == 2 and message in err, err
        assert not (tmp_path / "o").exists()
    if not torch.cuda.is_available():
        code, err = err_of("--model", "recap-synth", "--device", "cuda")
        assert code == 2 and "CUDA is not available" in err and "safetensors" not in err
    with pytest.raises(SystemExit) as e:
        cli.main(["caption", str(video), "-o", str(tmp_path / "o"), "--model", "recap-synth", "--device", "banana"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and "banana" in err and "cpu, cuda, cuda:N or mps" in err


def test_recap_synth_by_name(tmp_path):
    from videorecap.pipeline import Captioner
    from videorecap.synth.model import bundled_model_dir

    cap = Captioner.load("recap-synth", levels="clip")
    assert cap.levels == ("clip",) and cap.sources["clip"] == str(bundled_model_dir() / "clip")
    short = make_video(tmp_path / "short.mp4", duration=8.0, fps=4.0, size=(64, 64))
    r = _cli("caption", short, "--model", "recap-synth", "-o", tmp_path / "o", "--no-progress", "--levels", "clip")
    assert r.returncode == 0, r.stderr
    assert len(json.loads((tmp_path / "o" / "short" / "captions.json").read_text())["clips"]) == 2


def test_folders_need_recursive_for_subfolders(model_dir, tmp_path):
    root = tmp_path / "videos"
    make_video(root / "day1" / "a.mp4", duration=4.0, fps=2.0, size=(32, 24))
    make_video(root / "day2" / "b.mp4", duration=4.0, fps=2.0, size=(32, 24))
    r = _cli("caption", root, "--model", model_dir, "-o", tmp_path / "o", "--no-progress", "--levels", "clip")
    assert r.returncode == 2 and "subfolders hold 2" in r.stderr and "--recursive" in r.stderr
    r = _cli("caption", root, "--recursive", "--model", model_dir, "-o", tmp_path / "o", "--no-progress",
             "--levels", "clip")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "o" / "a" / "captions.json").exists() and (tmp_path / "o" / "b" / "captions.json").exists()


def test_interrupted_is_printed_on_its_own_line(model_dir, video, tmp_path):
    """Ctrl-C with progress bars on a terminal: the message starts a line of its own and no bar is drawn after it."""
    import fcntl
    import pty
    import struct
    import termios
    import threading

    master, slave = pty.openpty()  # tqdm draws bars only on a terminal of some width
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    second = make_video(tmp_path / "second.mp4", duration=8.0, fps=2.0, size=(32, 24))
    cmd = [sys.executable, "-m", "videorecap", "caption", str(video), str(second), "--model", str(model_dir), "-o",
           str(tmp_path / "o"), "--batch-size", "1"]  # fmt: skip
    # SIGINT back to its default in the child: a test run started in the background of a non-interactive shell
    # inherits SIGINT ignored, and Python then never raises KeyboardInterrupt (the run just finishes, exit 0)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=slave, env=dict(os.environ, HF_HUB_OFFLINE="1"),
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    os.close(slave)
    chunks: list[bytes] = []

    def read() -> None:
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # the child closed the terminal
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    cache = tmp_path / "o" / "walk" / ".cache"
    deadline = time.time() + 120
    while time.time() < deadline and not list(cache.glob("clips-*.npz")):
        time.sleep(0.005)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    reader.join(10)
    os.close(master)
    err = b"".join(chunks).decode(errors="replace")
    before, sep, after = err.partition("videorecap caption: interrupted")
    assert sep, err
    assert before.endswith("\n"), repr(before[-120:])  # not written where a bar (or the cursor moved up) is
    assert after.strip() == "", repr(after)  # and no bar drawn over it afterwards


def test_help_texts_say_what_the_code_does(capsys):
    from videorecap import cli

    with pytest.raises(SystemExit):
        cli.main(["caption", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "3 min" not in text and "180 s for Video ReCap, 40 s for the bundled recap-synth" in text
    assert "--min-tail-seconds" in text and "--recursive" in text and "--threads" in text
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    top = " ".join(capsys.readouterr().out.split())
    assert "3 min" not in top and "180 s for Video ReCap" in top and "--threads" in top


def test_two_jobs_on_one_folder_the_second_is_refused_or_waits(model_dir, video, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "videorecap", "caption", str(video), "--model", str(model_dir), "-o", str(out),
           "--no-progress", "--batch-size", "1"]  # fmt: skip
    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lock = out / ".videorecap.lock"
    deadline = time.time() + 120
    while time.time() < deadline and not (lock.is_file() and lock.stat().st_size):  # the first run holds the folder
        time.sleep(0.01)
    # the first run is stopped while it holds the folder, so however slowly the others start (a loaded machine),
    # it cannot finish before them
    assert first.poll() is None, "the first run finished before it could be stopped"
    first.send_signal(signal.SIGSTOP)
    try:
        # identical settings: before the lock, the two runs deleted each other's temp files and one crashed
        second = _cli("caption", video, "--model", model_dir, "-o", out, "--no-progress", "--batch-size", "1")
        assert second.returncode == 2
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and f"PID {first.pid}" in lines[0] and "caption" in lines[0] and "--wait" in lines[0]
        # --wait: the third run waits for the folder while the first still holds it, then runs
        third_cmd = [*cmd, "--wait"]
        third_p = subprocess.Popen(third_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(3)
        assert third_p.poll() is None, third_p.stderr.read()  # still waiting (or starting): it cannot have the folder
    finally:
        first.send_signal(signal.SIGCONT)
    assert first.wait(timeout=300) == 0, first.stderr.read()
    third_rc, third_err = third_p.wait(timeout=300), third_p.stderr.read()
    assert third_rc == 0 and "Traceback" not in third_err, third_err
    ref = _cli("caption", video, "--model", model_dir, "-o", tmp_path / "ref", "--no-progress", "--batch-size", "1")
    assert ref.returncode == 0, ref.stderr
    for name in OUTPUTS:
        assert (out / "walk" / name).read_bytes() == (tmp_path / "ref" / "walk" / name).read_bytes(), name
    assert not list(out.rglob("*.tmp"))


def test_output_names_from_hostile_file_names_stay_inside_o(model_dir, tmp_path):
    src = make_video(tmp_path / "src.mp4", duration=4.0, fps=2.0, size=(32, 24))
    inputs = tmp_path / "in"
    inputs.mkdir()
    long_stem = "é" * 120 + "x" * 10  # 250 bytes of UTF-8: no room left for a temp name beside it
    names = ["...mp4", "Walk.mp4", "walk.mp4", "a\x07b\x1b.mp4", "back\\slash.mp4", f"{long_stem}.mp4", "CON.mp4"]
    for n in names:
        (inputs / n).write_bytes(src.read_bytes())
    (inputs / "sub").mkdir()
    (inputs / "sub" / "...mp4").write_bytes(src.read_bytes())
    listing = tmp_path / "list.txt"  # a list may name a file through "..": the id is still the file's own stem
    listing.write_text(f"{inputs}/sub/../sub/...mp4\n")
    out = tmp_path / "out"
    r = _cli("caption", *[inputs / n for n in names], listing, "--model", model_dir, "-o", out, "--no-progress",
             "--levels", "clip")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "list.txt", "out", "src.mp4"]  # nothing beside -o
    ids = sorted(p.name for p in out.iterdir() if p.name != ".videorecap.lock")
    long_id = next(i for i in ids if i.startswith("é"))
    assert len(long_id.encode()) <= 200 and "~" in long_id
    assert sorted(set(ids) - {long_id}) == sorted(["__", "___2", "Walk", "walk_2", "a_b_", "back_slash", "_CON"])
    assert len({i.casefold() for i in ids}) == len(ids) == 8  # apart on a case-insensitive file system too
    for i in ids:
        assert (out / i).resolve().parent == out.resolve()
        assert json.loads((out / i / "captions.json").read_text())["clips"]


def test_a_second_run_with_other_settings_recomputes_every_level(model_dir, video, tmp_path):
    # issue 14: the second run reported its own settings with the first run's segment descriptions and summary
    args = [video, "--model", model_dir, "--no-progress"]
    first = _cli("caption", *args, "-o", tmp_path / "out", "--max-tokens", "2")
    assert first.returncode == 0, first.stderr
    short = json.loads((tmp_path / "out" / "walk" / "captions.json").read_text())
    second = _cli("caption", *args, "-o", tmp_path / "out")
    fresh = _cli("caption", *args, "-o", tmp_path / "fresh")
    assert second.returncode == 0 and fresh.returncode == 0, second.stderr + fresh.stderr
    was = json.loads((tmp_path / "out" / "walk" / "captions.json").read_text())
    want = json.loads((tmp_path / "fresh" / "walk" / "captions.json").read_text())
    assert was["segments"] == want["segments"] and was["summary"] == want["summary"] and was["clips"] == want["clips"]
    for name in OUTPUTS:
        assert (tmp_path / "out" / "walk" / name).read_bytes() == (tmp_path / "fresh" / "walk" / name).read_bytes()
    assert short["segments"] != want["segments"]  # the settings matter (this tiny model's summary is empty in both)


def test_original_settings_keeps_the_originals_cut_of_the_summary_text(model_dir, video, tmp_path):
    # 4-s segments: 50 descriptions, far more than the 64 tokens of text the tiny video model reads
    args = [video, "--model", model_dir, "--no-progress", "--segment-seconds", "4"]
    spread = _cli("caption", *args, "-o", tmp_path / "a")
    first = _cli("caption", *args, "-o", tmp_path / "b", "--original-settings")
    assert spread.returncode == 0 and first.returncode == 0, spread.stderr + first.stderr
    a = json.loads((tmp_path / "a" / "walk" / "captions.json").read_text())
    b = json.loads((tmp_path / "b" / "walk" / "captions.json").read_text())
    assert a["clips"] == b["clips"] and a["segments"] == b["segments"] and len(a["segments"]) == 50
    read_a, read_b = a["summary_input"]["segments"], b["summary_input"]["segments"]
    assert a["summary_input"]["policy"] == "spread" and read_a[0] == 0 and read_a[-1] == 49  # the whole video
    assert b["summary_input"]["policy"] == "first" and read_b == list(range(len(read_b))) and read_b[-1] < 25
    assert a["summary_input"]["max_tokens"] == 64 < a["summary_input"]["tokens"] == b["summary_input"]["tokens"]
    assert a["schema_version"] == "1.2"


# ---- issue 15 §2: several videos decoded together -----------------------------------------------------------------
def test_several_videos_together_write_the_files_of_each_alone_and_a_bad_one_fails_alone(model_dir, tmp_path, capsys):
    from videorecap import cli

    videos = [make_video(tmp_path / f"short{i}.mp4", duration=t, fps=2.0, size=(32, 24))
              for i, t in enumerate((50.0, 30.0, 90.0))]  # fmt: skip
    junk = tmp_path / "junk.mp4"
    junk.write_text("not a video")
    for v in videos:
        assert cli.main(["caption", str(v), "--model", str(model_dir), "-o", str(tmp_path / "alone"), "--no-progress",
                         "--decode-batch", "8"]) == 0  # fmt: skip
    capsys.readouterr()
    code = cli.main(["caption", str(videos[0]), str(junk), *map(str, videos[1:]), "--model", str(model_dir), "-o",
                     str(tmp_path / "together"), "--no-progress", "--decode-batch", "8"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 1 and "3 of 4 videos captioned" in out
    errors = err.strip().splitlines()
    assert len(errors) == 1 and "junk.mp4" in errors[0] and "Traceback" not in err
    # the table keeps the input order
    assert [ln.split()[0] for ln in out.splitlines()[1:5]] == ["short0", "junk", "short1", "short2"]
    for v in videos:
        for name in OUTPUTS:
            a = (tmp_path / "alone" / v.stem / name).read_bytes()
            assert (tmp_path / "together" / v.stem / name).read_bytes() == a, (v.stem, name)
