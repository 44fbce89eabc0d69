"""Live sessions on real streams from another process: a file appended in real time, an HTTP MPEG-TS stream that
disconnects once; events, their order and times, and the final outputs against `caption` on the recording."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import pytest
from _stream import DURATION, SEGMENT_SECONDS, packets, start_stream

from videorecap.live.session import LiveOptions, LiveSession
from videorecap.results import load

SPEED = 4.0  # the writer and the server run at 4x real time: the stream takes 5.6 s


def _events(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "live.jsonl").read_text().splitlines()]


def _check_order(events: list[dict]) -> None:
    """start first, end last; clips in window order; a segment only after the clip that closes it; its rolling
    summary the next event that is not a clip or a reader's note (clip work goes first: later windows' clips, and
    the disconnect/reconnect notes emitted with them, may come in between), over what existed when the segment
    closed (up to the end of the clip that closed it)."""
    assert events[0]["event"] == "start" and events[-1]["event"] == "end"
    clips = [e for e in events if e["event"] == "clip"]
    assert [c["index"] for c in clips] == list(range(len(clips)))
    assert all(a["end"] == b["start"] for a, b in zip(clips, clips[1:], strict=False))
    last_clip_end = 0.0
    for i, e in enumerate(events):
        if e["event"] == "clip":
            last_clip_end = e["end"]
        elif e["event"] == "segment":
            assert e["end"] <= last_clip_end + 1e-9  # described once the stream passed its end
            nxt = next(x for x in events[i + 1 :] if x["event"] not in ("clip", "disconnect", "reconnect"))
            assert nxt["event"] == "summary" and nxt["after_segment"] == e["index"]
            closing = next((c for c in clips if c["start"] >= e["end"] - 1e-9), clips[-1])
            assert nxt["start"] == 0.0 and nxt["end"] == closing["end"]
    walls = [e["wall"] for e in events]
    assert walls == sorted(walls)


def test_growing_file_events_and_equal_to_caption(tmp_path: Path, recording: Path, captioner, reference) -> None:
    src = tmp_path / "growing.ts"
    src.touch()
    writer = start_stream("append", recording, src, SPEED)
    t0 = time.monotonic()
    try:
        session = LiveSession(str(src), captioner, tmp_path / "out", LiveOptions(segment_seconds=SEGMENT_SECONDS))
        end = session.run()
    finally:
        writer.wait(30)
    elapsed = time.monotonic() - t0
    assert end.reason == "marker"
    events = _events(tmp_path / "out")
    _check_order(events)
    clips = [e for e in events if e["event"] == "clip"]
    # live: clips come while the file grows, not all at the end (the stream lasts DURATION / SPEED)
    first_clip_at = clips[0]["wall"] - events[0]["wall"]
    assert first_clip_at < elapsed - 2.0
    assert all(0 <= c["latency"] < 20 for c in clips)  # generous: the benchmark measures latency
    # the final outputs equal `caption`'s on the finished recording
    result = load(tmp_path / "out" / "captions.json")
    assert result.clips == reference.clips and result.segments == reference.segments
    assert result.summary == reference.summary and result.video.duration == pytest.approx(DURATION)
    assert [(c["start"], c["end"], c["text"]) for c in clips] == [(c.start, c.end, c.text) for c in reference.clips]
    segs = [e for e in events if e["event"] == "segment"]
    assert [(s["start"], s["end"], s["text"]) for s in segs] == [(s.start, s.end, s.text) for s in reference.segments]
    final = [e for e in events if e["event"] == "summary" and e["final"]]
    assert len(final) == 1 and final[0]["text"] == reference.summary.text
    # the growing VTT files end as caption's
    assert (tmp_path / "out" / "clips.vtt").read_text().count("-->") == len(reference.clips)


def test_clip_work_goes_before_a_segment_description(tmp_path: Path, recording: Path, captioner, reference) -> None:
    """Windows that arrive while a segment is being described are captioned between its decoding steps, before its
    event; the outputs stay those of `caption`. The file grows only once the description has begun (through the
    session's `on_level_step` hook), so the order does not depend on timing."""
    data = recording.read_bytes()
    cut = next(pos for pos, t in packets(str(recording)) if t >= 15.0)  # windows 0-2 and their tail: segment 0 closes
    src = tmp_path / "grows.ts"
    src.write_bytes(data[:cut])
    timeline: list[tuple] = []
    session = LiveSession(str(src), captioner, tmp_path / "out", LiveOptions(segment_seconds=SEGMENT_SECONDS),
                          listeners=[lambda ev: timeline.append((ev["event"], ev.get("index")))])  # fmt: skip

    def final_queued() -> bool:
        with session._cond:
            return any(not w.early for w, _ in session._queue)

    def level_step(level: str) -> None:
        timeline.append(("step", level))
        if level == "segment" and not Path(str(src) + ".done").exists():
            with open(src, "ab") as f:  # the rest of the stream arrives while segment 0 is being described
                f.write(data[cut:])
            Path(str(src) + ".done").touch()
            deadline = time.monotonic() + 60
            while not final_queued() and time.monotonic() < deadline:
                time.sleep(0.01)  # until the reader has the next final window (an early one waits: it is no clip work)

    session.on_level_step = level_step
    end = session.run()
    first_step = timeline.index(("step", "segment"))
    seg0 = timeline.index(("segment", 0))
    during = [i for kind, i in timeline[first_step:seg0] if kind == "clip"]
    assert during and min(during) == 3  # window 3 (and maybe more) captioned inside segment 0's description
    assert ("step", "segment") in timeline[timeline.index(("clip", 3)) : seg0]  # ... which then went on
    events = _events(tmp_path / "out")
    _check_order(events)
    assert end.result.clips == reference.clips and end.result.segments == reference.segments
    assert end.result.summary == reference.summary


def test_a_window_is_captioned_as_the_stream_passes_its_end(tmp_path: Path, captioner) -> None:
    """The model does not wait for the minimum tail (1 s) that makes a window final: it captions the window as the
    stream passes its end, and the caption is emitted once the window is final. Each window is captioned once,
    except a last one that the tail joins (20.5 s: [16, 20.5)), captioned again over its whole span; the clips are
    still `caption`'s."""
    from videorecap.pipeline import CaptionOptions, caption_video
    from videorecap.video.testing import make_video

    recording = make_video(tmp_path / "rec.ts", duration=20.5, fps=10, size=(64, 48), options={"g": "10"})
    src = tmp_path / "growing.ts"
    src.touch()
    writer = start_stream("append", recording, src, SPEED)
    try:
        session = LiveSession(str(src), captioner, tmp_path / "out", LiveOptions(levels="clip"))
        real, seen = session._caption, []

        def spy(batch):  # noqa: ANN001, ANN202 - records each window the model is given, and how far the stream is
            seen.extend((w.index, w.early, w.end, session._latest_t) for w, _ in batch)
            return real(batch)

        session._caption = spy
        end = session.run()
    finally:
        writer.wait(30)
    reference = caption_video(recording, captioner, CaptionOptions(levels="clip"))
    assert end.result.clips == reference.clips and [(c.start, c.end) for c in end.result.clips][-1] == (16.0, 20.5)
    # captioned before the stream reached end + tail (at least once: a loaded machine may take the window late)
    assert any(t < e + 1.0 for _, early, e, t in seen if early)
    # the model's windows: one per window, plus the joined last one again (a window whose early twin was still
    # queued when it became final is captioned from the final one, once)
    assert session.stage_seconds["windows"] in (len(reference.clips), len(reference.clips) + 1)
    clip_events = [e for e in _events(tmp_path / "out") if e["event"] == "clip"]
    want = [(c.start, c.end, c.text) for c in reference.clips]
    assert [(c["start"], c["end"], c["text"]) for c in clip_events] == want


def test_level_work_gives_way_to_final_windows_only(tmp_path: Path, recording: Path, captioner) -> None:
    """Between the decoding steps of a description, the session captions the final windows waiting (their captions
    can be emitted at once) and leaves an early one queued: it could not be emitted before its final window anyway,
    and the description it would delay could. Outside level work, early windows are taken as they come."""
    import numpy as np

    from videorecap.live.windows import LiveWindow

    session = LiveSession(str(recording), captioner, tmp_path / "out", LiveOptions(levels="clip"))
    frames = np.zeros((4, 8, 8, 3), np.uint8)
    queued = [
        LiveWindow(0, 0.0, 4.0, frames, 0.0),
        LiveWindow(1, 4.0, 8.0, frames, 0.0, early=True),
        LiveWindow(2, 8.0, 12.0, frames, 0.0),
    ]  # 2 after 1: a min_tail longer than a window gives that order
    session._queue.extend((w, None) for w in queued)
    assert [w.index for w, _ in session._take(block=False, final_only=True)] == [0, 2]
    assert [w.index for w, _ in session._queue] == [1]
    assert [w.index for w, _ in session._take(block=False)] == [1]


def test_network_stream_disconnect_reconnect_and_finish(tmp_path: Path, recording: Path, captioner) -> None:
    server = start_stream("serve", recording, SPEED, 9.0)  # the first connection is cut at 9 s of stream time
    try:
        port = int(server.stdout.readline())
        opts = LiveOptions(segment_seconds=SEGMENT_SECONDS, reconnect=1.0, idle=3.0, lag="queue")
        end = LiveSession(f"http://127.0.0.1:{port}/stream.ts", captioner, tmp_path / "out", opts).run()
    finally:
        server.wait(30)
    assert end.reason == "disconnected"  # the server went away for good: reconnecting gave up after 1 s, cleanly
    events = _events(tmp_path / "out")
    _check_order(events)
    kinds = [e["event"] for e in events]
    assert "disconnect" in kinds and "reconnect" in kinds
    assert kinds.index("disconnect") < kinds.index("reconnect")
    clips = [e for e in events if e["event"] == "clip"]
    before = [c for c in clips if c["wall"] < events[kinds.index("reconnect")]["wall"]]
    after = [c for c in clips if c["wall"] > events[kinds.index("reconnect")]["wall"]]
    assert before and after  # captions on both sides of the reconnect, one timeline
    # stream times, not wall clock (the session joined the live stream a moment after it started)
    assert DURATION - 3.0 < clips[-1]["end"] <= DURATION
    result = load(tmp_path / "out" / "captions.json")
    assert len(result.clips) + sum(1 for c in clips if c.get("skipped")) == len(clips)
    assert result.segments and result.summary is not None


def test_resume_of_a_finished_session_is_refused(tmp_path: Path, recording: Path, captioner) -> None:
    src = tmp_path / "r.ts"
    shutil.copy(recording, src)
    Path(str(src) + ".done").touch()
    out = tmp_path / "out"
    LiveSession(str(src), captioner, out, LiveOptions(levels="clip")).run()
    from videorecap.errors import InputError

    with pytest.raises(InputError, match="already ended"):
        LiveSession(None, captioner, out, resume=True).run()
    with pytest.raises(InputError, match="--resume"):
        LiveSession(str(src), captioner, out, LiveOptions(levels="clip")).run()


def test_drop_policy_skips_late_windows_and_marks_them(tmp_path: Path, recording: Path, captioner) -> None:
    """A model slower than the stream: with --lag drop the windows that waited too long are skipped, recorded as
    skipped events and left out of captions.json (video.covered lists what was captioned)."""
    src = tmp_path / "d.ts"
    shutil.copy(recording, src)
    Path(str(src) + ".done").touch()
    session = LiveSession(str(src), captioner, tmp_path / "out",
                          LiveOptions(levels="clip", lag="drop", max_lag=0.3, batch_size=1))  # fmt: skip
    real = session._caption
    slow = threading.Event()

    def slow_caption(batch):  # noqa: ANN001, ANN202 - the model made 1 s slower per window
        if not slow.is_set():
            slow.set()
            time.sleep(1.0)
        return real(batch)

    session._caption = slow_caption  # the file is read at once: every window but the newest waits > 0.3 s
    end = session.run()
    events = _events(tmp_path / "out")
    skipped = [e for e in events if e["event"] == "clip" and e.get("skipped")]
    assert skipped and all(e["skipped"] == "lag" for e in skipped)
    assert end.result.video.partial and len(end.result.clips) == 6 - len(skipped)
    assert session.status()["dropped"] == len(skipped)


def test_network_session_resumed_after_a_crash_is_a_new_part(tmp_path: Path, recording: Path, captioner) -> None:
    """A crash mid-stream, then --resume: a network source cannot be replayed, so the session goes on as part 2,
    whose timeline starts where the stored clips end; no window is emitted twice."""
    server = start_stream("serve", recording, SPEED, 999.0)
    out = tmp_path / "out"
    try:
        port = int(server.stdout.readline())

        def crash(ev: dict) -> None:
            if ev["event"] == "clip" and ev["index"] == 1:
                raise RuntimeError("crash")

        opts = LiveOptions(levels="clip,segment", segment_seconds=SEGMENT_SECONDS, lag="queue")
        with pytest.raises(RuntimeError, match="crash"):
            LiveSession(f"http://127.0.0.1:{port}/stream.ts", captioner, out, opts, listeners=[crash]).run()
        LiveSession(None, captioner, out, resume=True).run()
    finally:
        server.kill()
    events = _events(out)
    starts = [e for e in events if e["event"] == "start"]
    assert [s["part"] for s in starts] == [1, 2] and starts[1]["at"] == 8.0  # two clips stored: part 2 starts at 8 s
    clips = [e for e in events if e["event"] == "clip"]
    assert [c["index"] for c in clips] == list(range(len(clips))) and len(clips) > 2
    assert [c["part"] for c in clips[:2]] == [1, 1] and {c["part"] for c in clips[2:]} == {2}
    assert all(a["end"] == b["start"] for a, b in zip(clips, clips[1:], strict=False))  # one timeline
    assert events[-1]["event"] == "end"


def test_duration_ends_the_session_with_caption_windows(tmp_path: Path, recording: Path, captioner) -> None:
    src = tmp_path / "d.ts"
    shutil.copy(recording, src)  # complete, no end marker: --duration ends it, not --idle
    end = LiveSession(str(src), captioner, tmp_path / "out", LiveOptions(levels="clip", duration=10.0)).run()
    assert end.reason == "duration" and end.result.video.duration == 10.0
    assert [(c.start, c.end) for c in end.result.clips] == [(0.0, 4.0), (4.0, 8.0), (8.0, 10.0)]


def test_resume_after_a_crash_replays_in_order_and_refuses_other_weights(
    tmp_path: Path, recording: Path, captioner, reference
) -> None:
    import torch

    from videorecap.errors import InputError
    from videorecap.pipeline import Captioner

    src = tmp_path / "c.ts"
    shutil.copy(recording, src)
    Path(str(src) + ".done").touch()
    out = tmp_path / "out"

    def crash(ev: dict) -> None:
        if ev["event"] == "segment":
            raise RuntimeError("crash")  # after the segment's line is written, before its rolling summary

    opts = LiveOptions(segment_seconds=SEGMENT_SECONDS)
    with pytest.raises(RuntimeError, match="crash"):
        LiveSession(str(src), captioner, out, opts, listeners=[crash]).run()
    other = Captioner.load("recap-synth")
    with torch.no_grad():
        next(other.model("clip").parameters()).add_(1.0)
    with pytest.raises(InputError, match="other models or settings"):
        LiveSession(None, other, out, resume=True).run()
    end = LiveSession(None, captioner, out, resume=True).run()
    events = _events(out)
    assert [e["part"] for e in events if e["event"] == "start"] == [1, 2]
    _check_order([e for e in events if not (e["event"] == "start" and e["part"] == 2)])  # one session's order
    first_summary = next(e for e in events if e["event"] == "summary")
    assert first_summary["part"] == 2 and first_summary["after_segment"] == 0  # the missing one, made on resume
    assert end.result.clips == reference.clips and end.result.segments == reference.segments


def test_hls_playlist_over_http(tmp_path: Path, recording: Path, captioner, reference) -> None:
    """An HLS playlist of 2-s MPEG-TS segments (the recording remuxed, not re-encoded) served over loopback by
    httpserve: the clip captions are those of `caption` on the recording."""
    import av

    from videorecap.httpserve import App

    hls = tmp_path / "hls"
    hls.mkdir()
    with (
        av.open(str(recording)) as src,
        av.open(str(hls / "index.m3u8"), "w", format="hls",
                options={"hls_time": "2", "hls_list_size": "0", "hls_playlist_type": "vod"}) as dst,
    ):  # fmt: skip
        out = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(video=0):
            if packet.dts is not None:
                packet.stream = out
                dst.mux(packet)
    app = App("hls test")
    app.static("/", hls)
    with app.serve() as server:
        end = LiveSession(f"{server.url}/index.m3u8", captioner, tmp_path / "out", LiveOptions(levels="clip")).run()
    assert end.reason == "eof"
    assert [c.text for c in end.result.clips] == [c.text for c in reference.clips]


def _boxes(*kinds: bytes) -> bytes:
    """Top-level MP4 boxes of 12 bytes each: size, type, 4 bytes of content."""
    return b"".join((12).to_bytes(4, "big") + k + b"\0" * 4 for k in kinds)


def test_where_an_mp4_keeps_its_index(tmp_path: Path, recording: Path) -> None:
    from videorecap.live.source import mp4_index
    from videorecap.video.testing import make_video

    cases = {
        "faststart": (_boxes(b"ftyp", b"moov", b"mdat"), "start"),
        "fragmented": (_boxes(b"ftyp", b"moov", b"moof", b"mdat", b"moof", b"mdat"), "start"),
        "at-end": (_boxes(b"ftyp", b"free", b"mdat", b"moov"), "end"),
        "being-written": (_boxes(b"ftyp", b"mdat") + b"\0\0", "missing"),
        "just-started": (_boxes(b"ftyp"), "missing"),
        "text": (b"hello, this is not a video at all\n", None),
        "empty": (b"", None),
    }
    for name, (data, want) in cases.items():
        (tmp_path / name).write_bytes(data)
        assert mp4_index(tmp_path / name) == want, name
    assert mp4_index(recording) is None  # MPEG-TS
    assert mp4_index(make_video(tmp_path / "v.mp4", duration=1.0)) == "end"  # what FFmpeg's muxer writes by default


def test_a_finished_mp4_with_its_index_at_the_end_gives_captions_equal_to_caption(tmp_path: Path, captioner) -> None:
    """An MP4 keeps its index after the media data unless written "faststart": it cannot be read as a stream, so a
    complete one is read whole, and one still being written is waited for (until it stops growing)."""
    from videorecap.errors import VideoError
    from videorecap.pipeline import CaptionOptions, caption_video
    from videorecap.video.testing import make_video

    mp4 = make_video(tmp_path / "rec.mp4", duration=DURATION, fps=10, size=(64, 48))
    want = caption_video(mp4, captioner, CaptionOptions(levels="clip"))
    end = LiveSession(str(mp4), captioner, tmp_path / "out", LiveOptions(levels="clip", idle=1)).run()
    assert end.reason == "eof"
    assert [(c.start, c.end, c.text) for c in end.result.clips] == [(c.start, c.end, c.text) for c in want.clips]

    cut = tmp_path / "cut.mp4"  # a recording whose index was never written
    cut.write_bytes(mp4.read_bytes()[: mp4.stat().st_size // 2])
    with pytest.raises(VideoError, match=r"index \(moov\).*stopped growing.*faststart"):
        LiveSession(str(cut), captioner, tmp_path / "out2", LiveOptions(levels="clip", idle=0.5)).run()

    growing = tmp_path / "growing.mp4"  # completed while the session waits
    growing.write_bytes(cut.read_bytes())
    done = threading.Timer(1.0, lambda: growing.write_bytes(mp4.read_bytes()))
    done.start()
    try:
        end = LiveSession(str(growing), captioner, tmp_path / "out3", LiveOptions(levels="clip", idle=5)).run()
    finally:
        done.cancel()
    assert [c.text for c in end.result.clips] == [c.text for c in want.clips]
