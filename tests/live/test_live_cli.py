"""`videorecap live` as a process: Ctrl-C finalisation, kill -9 then --resume, a stream on stdin."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _stream import SEGMENT_SECONDS, start_stream

from videorecap.cli import main
from videorecap.results import load


def _live(*args: object, **kw: object) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "videorecap", "live", *map(str, args), "--model", "recap-synth",
           "--segment-seconds", str(SEGMENT_SECONDS), "--no-status"]  # fmt: skip
    # SIGINT back to its default in the child: a test run started in the background of a non-interactive shell
    # inherits SIGINT ignored
    return subprocess.Popen(cmd, env=dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1"),
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **kw)  # fmt: skip


def _events(out: Path) -> list[dict]:
    p = out / "live.jsonl"
    if not p.is_file():
        return []
    return [json.loads(x) for x in p.read_text().splitlines() if x.endswith("}")]


def _wait_for(out: Path, kind: str, n: int, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while sum(e["event"] == kind for e in _events(out)) < n:
        assert proc.poll() is None, "the session ended early"
        assert time.monotonic() < deadline, f"no {kind} events"
        time.sleep(0.05)


def test_ctrl_c_finishes_with_the_final_outputs(tmp_path: Path, recording: Path, reference) -> None:
    src, out = tmp_path / "g.ts", tmp_path / "out"
    src.touch()
    proc = _live(src, "-o", out, stdout=subprocess.PIPE, text=True)
    writer = None
    try:
        _wait_for(out, "start", 1, proc)  # the stream starts once the session is up (a busy machine starts it slowly)
        writer = start_stream("append", recording, src, 2.5)
        _wait_for(out, "clip", 2, proc)
        proc.send_signal(signal.SIGINT)
        stdout, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
        if writer is not None:
            writer.kill()
    assert proc.returncode == 130
    events = _events(out)
    assert events[-1]["event"] == "end" and events[-1]["reason"] == "interrupted"
    result = load(out / "captions.json")  # the outputs of `caption`, over what was read before Ctrl-C
    assert 2 <= len(result.clips) < len(reference.clips)
    assert result.clips[:-1] == reference.clips[: len(result.clips) - 1]  # the last window is cut at the stop
    assert result.summary is not None and (out / "index.html").is_file() and (out / "summary.md").is_file()
    assert "clip: " in stdout and "interrupted" in stdout


def test_kill_9_then_resume_loses_and_repeats_nothing(tmp_path: Path, recording: Path, reference) -> None:
    src, out = tmp_path / "g.ts", tmp_path / "out"
    src.touch()
    proc = _live(src, "-o", out, stdout=subprocess.DEVNULL)
    writer = None
    try:
        _wait_for(out, "start", 1, proc)
        writer = start_stream("append", recording, src, 3.0)
        _wait_for(out, "clip", 2, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        proc.kill()
        if writer is not None:
            writer.wait(30)
    killed = _events(out)
    assert killed[-1]["event"] != "end"
    assert main(["live", "--resume", str(out), "--no-status"]) == 0  # the model and options come from the session
    events = _events(out)
    assert events[: len(killed)] == killed  # the log only grows
    clips = [e for e in events if e["event"] == "clip"]
    assert [c["index"] for c in clips] == list(range(len(reference.clips)))  # each window exactly once
    segs = [e for e in events if e["event"] == "segment"]
    assert [s["index"] for s in segs] == list(range(len(reference.segments)))
    assert [e["part"] for e in events if e["event"] == "start"] == [1, 2]
    result = load(out / "captions.json")
    assert result.clips == reference.clips and result.segments == reference.segments
    assert result.summary == reference.summary


def test_stdin_stream(tmp_path: Path, recording: Path, reference, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    with open(recording, "rb") as f:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(f))  # `-` reads sys.stdin.buffer
        argv = ["live", "-", "-o", str(out), "--model", "recap-synth", "--levels", "clip", "--no-status"]
        assert main(argv) == 0
    result = load(out / "captions.json")
    assert [c.text for c in result.clips] == [c.text for c in reference.clips]
    spans = [t for c in result.clips for t in (c.start, c.end)]
    assert spans == pytest.approx([t for c in reference.clips for t in (c.start, c.end)])


def test_a_missing_source_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["live", str(tmp_path / "nope.ts"), "--model", "recap-synth", "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such file" in err[0]
    assert main(["live", "srt://127.0.0.1:9", "--model", "recap-synth", "-o", str(tmp_path / "o2"),
                 "--reconnect", "0"]) == 2  # fmt: skip
    assert "protocol" in capsys.readouterr().err
    # a source that exists but never opens as a stream: the session ends once the file has not grown for --idle
    # seconds (it is followed as a recording being written) and leaves no folder behind
    (tmp_path / "junk.ts").write_bytes(b"not a stream")
    argv = ["live", str(tmp_path / "junk.ts"), "--model", "recap-synth", "-o", str(tmp_path / "o3"), "--idle", "1"]
    assert main(argv) != 0
    said = capsys.readouterr()
    assert "cannot be opened as a video stream" in said.err
    # the first line says why a file is waited for at its end (a finished file too)
    assert "a file is followed until it has not grown for 1 s (--idle) or" in said.out and "junk.ts.done" in said.out
    assert not (tmp_path / "o3").exists()


def test_a_wrong_model_is_one_line_before_the_output_folder_is_made(
    tmp_path: Path, recording: Path, capsys: pytest.CaptureFixture
) -> None:
    for model, message in [(tmp_path / "typo", "no such model folder"), (tmp_path, "not a model")]:
        assert main(["live", str(recording), "--model", str(model), "-o", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0]
        assert not (tmp_path / "o").exists()


def test_original_settings_and_num_features_reach_the_session(
    tmp_path: Path, recording: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    with open(recording, "rb") as f:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(f))
        argv = ["live", "-", "-o", str(out), "--model", "recap-synth", "--levels", "clip", "--no-status",
                "--original-settings", "--num-features", "segment=5,video=7"]  # fmt: skip
        assert main(argv) == 0
    options = json.loads((out / "session.json").read_text())["options"]
    assert options["summary_text"] == "first"  # the same vocabulary as caption's --original-settings
    assert options["num_features"] == {"segment": 5, "video": 7}


def test_precision_is_taken_and_recorded(tmp_path: Path, recording: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    with open(recording, "rb") as f:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(f))
        argv = ["live", "-", "-o", str(out), "--model", "recap-synth", "--levels", "clip", "--no-status",
                "--precision", "bf16"]  # fmt: skip
        assert main(argv) == 0
    # the session's store is tied to the precision: a resume in fp32 would not mix its captions with these
    assert json.loads((out / ".cache" / "store.json").read_text())["fingerprint"]["precision"] == "bf16"
    assert load(out / "captions.json").clips


def test_the_hardware_decoder_set_reaches_every_open_and_falls_back_for_a_codec_it_lacks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `--hw-decode cuda` sets $VIDEORECAP_HW_DECODE once its device opens (tests/video/test_hw_decode.py); set here
    # directly, as no GPU is needed: a capture input's raw frames have no hardware decoder, so they decode in
    # software, frame for frame as without the setting
    from videorecap.live import source
    from videorecap.video.io import HW_DECODE_ENV

    accels, made = [], {}
    real_open, real_decoder = source.av.open, source.hardware_decoder

    def spy(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        accels.append(kwargs.get("hwaccel"))
        return real_open(*args, **kwargs)

    def decoder(spec, check=True):  # noqa: ANN001, ANN202
        made[spec] = real_decoder(spec, check=check)
        return made[spec]

    monkeypatch.setattr(source.av, "open", spy)
    monkeypatch.setattr(source, "hardware_decoder", decoder)
    args = ["testsrc2=size=96x64:rate=8:duration=9", "--format", "lavfi", "--model", "recap-synth", "--no-status",
            "--levels", "clip"]  # fmt: skip
    assert main(["live", *args, "-o", str(tmp_path / "soft")]) == 0
    monkeypatch.setenv(HW_DECODE_ENV, "cuda")
    assert main(["live", *args, "-o", str(tmp_path / "hw")]) == 0
    assert len(accels) == 2 and accels[0] is None and accels[1] is made["cuda"]
    soft, hw = (load(tmp_path / d / "captions.json").clips for d in ("soft", "hw"))
    assert len(soft) == 3 and hw == soft


def test_a_capture_input_is_captioned_until_it_ends_or_the_duration(tmp_path: Path) -> None:
    """A capture input (`--format lavfi`: FFmpeg's filter graph standing in for a camera) is read as a device: its
    own timestamps, its end, or --duration for one that never ends."""
    args = ["--format", "lavfi", "--model", "recap-synth", "--no-status", "--levels", "clip,segment"]
    assert main(["live", "testsrc2=size=96x64:rate=8:duration=10", "-o", str(tmp_path / "a"), *args]) == 0
    result = load(tmp_path / "a" / "captions.json")
    assert [(c.start, c.end) for c in result.clips] == [(0.0, 4.0), (4.0, 8.0), (8.0, 10.0)]
    assert result.video.id == "lavfi" and len(result.segments) == 1
    start = _events(tmp_path / "a")[0]
    assert start["event"] == "start" and start["kind"] == "device" and start["lag_policy"] == "drop"
    assert main(["live", "testsrc2=size=96x64:rate=8", "-o", str(tmp_path / "b"), "--duration", "6", *args]) == 0
    assert [(c.start, c.end) for c in load(tmp_path / "b" / "captions.json").clips] == [(0.0, 4.0), (4.0, 6.0)]


def test_capture_sources_are_checked_before_the_models_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from videorecap.errors import InputError
    from videorecap.live import source

    # /dev/videoN is FFmpeg's video4linux2 input (the PyAV wheel for Linux has it), once the device exists
    assert source.has_input_format("video4linux2") and source.has_input_format("v4l2")
    assert not source.has_input_format("nosuch")
    with pytest.raises(InputError, match="no such device"):
        source.parse_source("/dev/video97")
    real_exists = os.path.exists
    monkeypatch.setattr(source.os.path, "exists", lambda p: p == "/dev/video97" or real_exists(p))
    assert source.parse_source("/dev/video97") == source.Source("/dev/video97", "device", "video4linux2")
    monkeypatch.setattr(source, "has_input_format", lambda name: name != "video4linux2")
    with pytest.raises(InputError, match=r"no video4linux2 input.*ffmpeg -f v4l2"):
        source.parse_source("/dev/video97")
    monkeypatch.undo()
    out = tmp_path / "o"
    for argv in (["/dev/video97"], ["-", "--format", "nosuch"], ["/dev/null", "--format", "v4l2"]):
        assert main(["live", *argv, "--model", "recap-synth", "-o", str(out), "--no-status"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "Traceback" not in err[0], err
        assert not (out / "captions.json").exists()


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_damaged_session_folder_is_one_line_on_resume_and_left_as_it_was(
    tmp_path: Path, capsys: pytest.CaptureFixture, request: pytest.FixtureRequest
) -> None:
    from videorecap.video.testing import make_video

    src = make_video(tmp_path / "v.mp4", duration=6.0, fps=4.0)
    session = tmp_path / "session"
    argv = ["live", str(src), "--model", "recap-synth", "-o", str(session), "--levels", "clip", "--no-status"]
    assert main([*argv, "--idle", "1"]) == 0
    request.getfixturevalue("models_must_not_load")  # every damage below is found before the models load
    stored = json.loads((session / "session.json").read_text())
    log = (session / "live.jsonl").read_text().splitlines(keepends=True)
    cases = [
        ("session.json", "[]", "it holds an array, not an object"),
        ("session.json", json.dumps({**stored, "source": None}), "'source' is null, not the SOURCE text"),
        ("live.jsonl", "garbage\n", "line 1 is not an event"),
        ("live.jsonl", "garbage", "line 1 is not an event"),  # no newline, yet no cut line: that starts with {
        ("live.jsonl", "".join([log[0], "garbage\n", *log[1:]]), "line 2 is not an event"),
    ]
    capsys.readouterr()
    for i, (name, text, problem) in enumerate(cases):
        out = Path(shutil.copytree(session, tmp_path / f"damaged{i}"))
        (out / name).write_text(text)
        before = _files(out)
        assert main(["live", "--resume", str(out), "--no-status"]) == 2, name
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"videorecap live: error: {out / name}: damaged: {problem}"), err
        assert _files(out) == before  # nothing written, nothing cut
    # a last line cut by a kill is still no damage: it is left out (and cut from the file when the session runs)
    from videorecap.live.session import read_log

    whole = "".join(log[:-1])
    (session / "live.jsonl").write_text(whole + log[-1][:15])
    events, complete = read_log(session)
    assert [e["event"] for e in events] == [json.loads(x)["event"] for x in log[:-1]]
    assert complete == len(whole.encode())


@pytest.fixture
def models_must_not_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """A test of an error that must come before the models load fails if they do."""
    from videorecap import pipeline

    def no_load(*a: object, **k: object) -> None:
        raise AssertionError("the models loaded")

    monkeypatch.setattr(pipeline.Captioner, "load", no_load)


def test_a_serve_port_that_cannot_be_used_is_one_line_before_the_models_load(
    tmp_path: Path, recording: Path, models_must_not_load: None, capsys: pytest.CaptureFixture
) -> None:
    import socket

    out = tmp_path / "o"
    argv = ["live", str(recording), "--model", "recap-synth", "-o", str(out), "--no-status", "--serve"]
    for port in ("99999", "-1"):
        with pytest.raises(SystemExit) as e:
            main([*argv, port])
        assert e.value.code == 2 and "argument --serve: must be a port from 0 to 65535" in capsys.readouterr().err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main([*argv, str(port)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"videorecap live: error: cannot listen on 127.0.0.1:{port}: address already in use (another program uses "
        "the port: choose another with --serve, or --serve 0 for any free port)"
    ]
    assert not out.exists()  # nothing written: not even the output folder


def test_host_needs_serve_and_a_foreign_host_is_one_line_before_the_models_load(
    tmp_path: Path, recording: Path, models_must_not_load: None, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "o"
    argv = ["live", str(recording), "--model", "recap-synth", "-o", str(out), "--no-status"]
    assert main([*argv, "--host", "0.0.0.0"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "videorecap live: error: --host is where the --serve page listens: give --serve PORT too"
    ]
    assert main([*argv, "--serve", "0", "--host", "192.0.2.1"]) == 2  # TEST-NET-1: no machine has it
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--host 192.0.2.1: not an address or name this machine has" in err[0], err
    assert not out.exists()


@pytest.mark.parametrize(("host", "url"), [("localhost", "localhost"), ("0.0.0.0", "127.0.0.1")])
def test_the_page_listens_where_host_says(
    tmp_path: Path, recording: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, host, url
) -> None:
    out = tmp_path / "out"
    with open(recording, "rb") as f:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(f))
        argv = ["live", "-", "-o", str(out), "--model", "recap-synth", "--levels", "clip", "--no-status",
                "--serve", "0", "--host", host]  # fmt: skip
        assert main(argv) == 0
    printed = capsys.readouterr().out.splitlines()
    served = [x for x in printed if "serving" in x]
    assert len(served) == 1 and served[0].startswith(f"videorecap live: serving http://{url}:"), served
    # every interface: the URL opens here (a browser on Windows refuses 0.0.0.0), and a line for other machines
    assert any("from another machine open http://" in x for x in printed) == (host == "0.0.0.0")
    assert load(out / "captions.json").clips
