"""Caption a live stream as it arrives: a clip caption a few seconds after each clip window ends, a segment
description as each segment window closes, and a rolling summary of everything so far after each segment.

SOURCE is a file that is still being written (followed like `tail -f`; it ends when it has not grown for --idle
seconds or when SOURCE.done exists), an http(s):// MPEG-TS or HLS stream, rtsp://, rtmp://, udp://, tcp:// (srt://
where the bundled FFmpeg has it), a capture device (/dev/video0, where the bundled FFmpeg has video4linux2), or -
for a stream on stdin. Times come from the stream's timestamps (the wall clock where it has none).

Every event is one JSON line in OUT/live.jsonl (schema: docs/live.md), printed, and kept in the growing
OUT/clips.vtt and OUT/segments.vtt. At the end (end of the stream, --duration, or Ctrl-C) OUT gets the files
`videorecap caption` writes (captions.json, clips.srt/.vtt, segments.vtt, summary.md, index.html); for a recorded
file the clip captions and segment descriptions are those `caption` gives. --serve PORT shows the captions and the
rolling summary in a browser page as they arrive.

A killed session continues with `videorecap live --resume OUT`: a file where it stopped, a network source as a new
part of the same session; nothing already emitted is lost or repeated. Ctrl-C ends a session cleanly (exit 130,
with the final outputs); a second Ctrl-C stops at once.

examples:
  videorecap live recording.ts --model recap-synth -o live/
  videorecap live http://127.0.0.1:8080/stream.ts --model recap-synth -o live/ --reconnect 30 --serve 8000
  ffmpeg -i rtsp://camera/stream -c copy -f mpegts - | videorecap live - --model models/videorecap -o live/
  videorecap live --resume live/
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any

from videorecap.commands._decoding import add_decoding_arguments, hierarchy_options
from videorecap.commands._options import (
    add_compile_argument,
    add_device_argument,
    add_hw_decode_argument,
    add_max_tokens_argument,
    add_min_tail_argument,
    add_model_arguments,
    add_num_features_argument,
    add_original_settings_argument,
    add_output_argument,
    add_precision_argument,
    add_wait_argument,
    apply_hw_decode,
    check_compile_arguments,
    check_models,
    compile_clip_encoder,
    field_default,
    listen_host,
    port_number,
    positive_float,
    positive_int,
    prepare_output_dir,
    window_seconds,
)
from videorecap.errors import InputError
from videorecap.export import NARRATORS
from videorecap.live.options import LAG_POLICIES

HELP = "caption a live stream: clip captions within seconds, segments as they close, a rolling summary"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", nargs="?", metavar="SOURCE", help="a growing file, a stream URL, a camera "
                   "(/dev/videoN), a capture input with --format (lavfi, x11grab, ...), or -")  # fmt: skip
    add_output_argument(p, "live.jsonl, the growing VTT files, then the outputs of `caption`")
    p.add_argument("--resume", type=Path, metavar="OUT", help="continue the session in OUT (after a crash or kill)")
    add_model_arguments(p.add_argument_group("model"))
    r = p.add_argument_group("what to run")
    r.add_argument("--levels", default="clip,segment,video", help="levels, up to the highest one named "
                   "(default: clip,segment,video)")  # fmt: skip
    r.add_argument("--clip-seconds", type=window_seconds, help="clip window in seconds (default: the model's, 4)")
    r.add_argument("--segment-seconds", type=window_seconds, help="segment window in seconds (default: the model's)")
    add_min_tail_argument(r)
    r.add_argument("--no-rolling-summary", action="store_true", help="no summary after each segment, only at the end")
    add_num_features_argument(r)
    add_original_settings_argument(r, "every summary reads only the first 512 tokens of the segment descriptions "
                                   "(default: as many as fit, chosen evenly across the stream so far)")  # fmt: skip
    s = p.add_argument_group("the stream")
    s.add_argument("--format", help="FFmpeg input format to force (e.g. mpegts for a pipe FFmpeg "
                   "cannot probe), or a capture input: video4linux2, lavfi, x11grab, avfoundation, dshow")  # fmt: skip
    s.add_argument("--idle", type=positive_float, default=_default("idle"), metavar="SECONDS",
                   help="a file that has not grown (or a network read that got nothing) for this long ends the "
                   f"stream, or starts a reconnect (default: {_default('idle'):g})")  # fmt: skip
    s.add_argument("--reconnect", type=float, default=_default("reconnect"), metavar="SECONDS",
                   help="network sources: after a disconnect, try again with backoff for this long, then finish "
                   f"(default: {_default('reconnect'):g}, finish at once)")  # fmt: skip
    s.add_argument("--duration", type=positive_float, metavar="SECONDS", help="stop after this much stream time")
    s.add_argument("--lag", choices=LAG_POLICIES, default=_default("lag"),
                   help="when the model is slower than the stream: queue = caption every window (reading waits), "
                   "drop = skip windows that waited over --max-lag (marked skipped); auto = drop for network "
                   f"sources and devices, queue for files and stdin (default: {_default('lag')})")  # fmt: skip
    s.add_argument(
        "--max-lag",
        type=positive_float,
        default=_default("max_lag"),
        metavar="SECONDS",
        help=f"with --lag drop: the longest a window may wait (default: {_default('max_lag'):g})",
    )
    d = p.add_argument_group("decoding")
    add_decoding_arguments(d)
    add_max_tokens_argument(d)
    d.add_argument("--batch-size", type=positive_int, default=_default("batch_size"), help="clip windows per model "
                   f"call at most, when several are waiting (default: {_default('batch_size')})")  # fmt: skip
    o = p.add_argument_group("outputs")
    o.add_argument("--narrator", choices=NARRATORS, default="c", help="how subtitles and pages write '#C C ...' "
                   "(as for caption; default: c)")  # fmt: skip
    o.add_argument("--serve", type=port_number, metavar="PORT", help="serve a live page on "
                   "http://127.0.0.1:PORT, PORT 0-65535 (0: a free port, printed)")  # fmt: skip
    o.add_argument("--host", type=listen_host, default=None, help="the address the --serve page listens on "
                   "(default: 127.0.0.1, this machine only; 0.0.0.0: every interface, for other machines)")  # fmt: skip
    o.add_argument("--no-status", action="store_true", help="no status line on stderr")
    add_device_argument(p, "this process's GPU when there is one, else cpu")
    add_precision_argument(p)
    add_compile_argument(p)
    add_hw_decode_argument(p)
    add_wait_argument(p)


def _page_host(args: argparse.Namespace) -> str:
    from videorecap.live.page import HOST

    return args.host if args.host is not None else HOST


def _default(name: str) -> Any:
    from videorecap.live.options import LiveOptions

    return field_default(LiveOptions, name)


_MODEL_FLAGS = ("model", "clip_model", "segment_model", "video_model", "tokenizer")


def run(args: argparse.Namespace) -> int:
    out, opts, levels, device = _resumed(args) if args.resume is not None else _new_session(args)
    if not any(getattr(args, k) for k in _MODEL_FLAGS[:4]):
        raise InputError("give a model: --model DIR (or --clip-model/--segment-model/--video-model)")
    if args.resume is None:
        _check_source_and_out(args, out)  # mistakes in SOURCE or OUT are found before the model loads
    check_models(args, levels)  # a wrong model folder: before the output folder is made
    check_compile_arguments(args, device)
    apply_hw_decode(args, device)  # the device opens, or one line before the output folder
    if args.host is not None and args.serve is None:
        raise InputError("--host is where the --serve page listens: give --serve PORT too")
    if args.serve is not None:
        from videorecap.httpserve import check_listen

        # a taken port or a foreign --host is one line before the models load
        check_listen(_page_host(args), args.serve, host_flag="--host", port_flag="--serve")
    prepare_output_dir(out)
    from videorecap.lock import output_lock

    with output_lock(out, wait=args.wait):
        end = _run_session(args, out, opts, levels, device)
    print(f"videorecap live: {end.reason}: {len(end.result.clips)} clips, {len(end.result.segments)} segments "
          f"captioned into {out}")  # fmt: skip
    if end.error is not None:
        print(f"videorecap live: error: {end.error}", file=sys.stderr)
        return 1
    return 130 if end.reason == "interrupted" else 0


def _resumed(args: argparse.Namespace) -> tuple[Path, Any, Any, str]:
    """--resume OUT: the session's folder, its levels and device; the models of the session unless given again."""
    from videorecap import distributed
    from videorecap.live.session import SESSION_FILE, read_log, read_session, stored_options
    from videorecap.live.source import parse_source

    if args.source is not None or args.output is not None:
        raise InputError("--resume OUT continues a session: give no SOURCE and no -o")
    out = args.resume
    stored = read_session(out)
    opts = stored_options(stored, out / SESSION_FILE)
    # a damaged live.jsonl, or a source that is gone, is one line now: before the models load, with the folder as
    # it was (the session reads both again when it starts)
    read_log(out)
    parse_source(stored["source"], opts.format)
    for k in _MODEL_FLAGS:
        if getattr(args, k) is None:
            setattr(args, k, stored.get("model", {}).get(k))
    device = args.device or opts.device or distributed.default_device()
    return out, None, opts.levels, device


def _new_session(args: argparse.Namespace) -> tuple[Path, Any, Any, str]:
    """A new session: its folder and options (LiveOptions) from the flags."""
    from videorecap import distributed
    from videorecap.live.options import LiveOptions

    if args.source is None:
        raise InputError("give a SOURCE (a file, a stream URL, /dev/videoN or -), or --resume OUT")
    if args.output is None:
        raise InputError("give an output folder: -o OUT")
    if args.reconnect < 0:
        raise InputError(f"--reconnect must be 0 or more seconds, got {args.reconnect}")
    device = args.device or distributed.default_device()
    opts = LiveOptions(
        **hierarchy_options(args, device),
        lag=args.lag,
        max_lag=args.max_lag,
        idle=args.idle,
        reconnect=args.reconnect,
        duration=args.duration,
        rolling_summary=not args.no_rolling_summary,
        format=args.format,
        narrator=args.narrator,
    )
    return args.output, opts, opts.levels, device


def _check_source_and_out(args: argparse.Namespace, out: Path) -> None:
    from videorecap.live.session import EVENTS_FILE
    from videorecap.live.source import parse_source

    parse_source(args.source, args.format)
    if (out / EVENTS_FILE).exists():
        raise InputError(f"{out}: holds a live session already; continue it with --resume {out}, or give another -o")


def _run_session(args: argparse.Namespace, out: Path, opts: Any, levels: Any, device: str) -> Any:
    """Load the models, run the session (with its page when --serve), Ctrl-C finishing it cleanly; its end."""
    from videorecap.live.session import LiveSession
    from videorecap.pipeline import Captioner

    captioner = Captioner.load(args.model, clip=args.clip_model, segment=args.segment_model,
                               video=args.video_model, device=device, tokenizer=args.tokenizer,
                               levels=levels, precision=args.precision)  # fmt: skip
    for m, _ in captioner.models.values():
        m.to(device)
    if args.compile:  # before the source is opened: a camera's frames would wait for the compiling
        compile_clip_encoder(captioner, "live")
    printer = _Printer(status=not args.no_status)
    session = LiveSession(args.source, captioner, out, opts, resume=args.resume is not None,
                          listeners=[printer])  # fmt: skip
    printer.session = session
    if args.resume is None:
        session.session["model"] = {k: getattr(args, k) and str(getattr(args, k)) for k in _MODEL_FLAGS}
    server = None
    if args.serve is not None:
        from videorecap.live.page import serve_page

        server = serve_page(session, args.serve, _page_host(args))
        print(f"videorecap live: serving {server.url}/", flush=True)
        if (hint := server.remote_hint()) is not None:
            print(f"videorecap live: {hint}", flush=True)
    previous = signal.getsignal(signal.SIGINT)

    def on_sigint(signum: int, frame: Any) -> None:
        # first Ctrl-C: finish cleanly (caption what was read, write the outputs); a second one stops at once
        signal.signal(signal.SIGINT, signal.default_int_handler)
        print("\nvideorecap live: stopping (Ctrl-C again to stop at once)", file=sys.stderr, flush=True)
        session.stop("interrupted")

    signal.signal(signal.SIGINT, on_sigint)
    try:
        return session.run()
    finally:
        signal.signal(signal.SIGINT, previous)
        if server is not None:
            server.close()
        printer.done()


class _Printer:
    """Prints each event as a line on stdout, and the status line (stream time, lag, drops) on stderr."""

    def __init__(self, status: bool) -> None:
        self.status = status
        self.tty = sys.stderr.isatty()
        self.session: Any = None
        self._shown = False

    def __call__(self, ev: dict[str, Any]) -> None:
        from videorecap.export import format_clock

        kind = ev["event"]
        if kind in ("clip", "segment", "summary"):
            span = f"[{format_clock(ev['start'])}-{format_clock(ev['end'])}]"
            label = {"clip": "clip", "segment": "segment", "summary": "summary"}[kind]
            if kind == "summary" and ev.get("final"):
                label = "final summary"
            text = f"(skipped: {ev['skipped']})" if ev.get("skipped") else ev["text"]
            line = f"{span} {label}: {text}"
        elif kind == "start":
            line = f"live: part {ev['part']} of {ev['source']} from {format_clock(ev['at'])} ({ev['lag_policy']})"
            if ev.get("kind") == "file" and self.session is not None:  # why a finished file still waits at its end
                line += (f"; a file is followed until it has not grown for {self.session.opts.idle:g} s (--idle) or "
                         f"{ev['source']}.done exists")  # fmt: skip
        else:
            line = f"live: {kind} " + " ".join(f"{k}={v}" for k, v in ev.items() if k not in ("event", "wall", "part"))
        self._clear()
        print(line, flush=True)
        if kind == "clip" and self.status and self.session is not None:
            st = self.session.status()
            msg = (f"live {format_clock(st['t'])}  clips {st['clips']}  segments {st['segments']}  "
                   f"lag {st['lag']:.1f}s  queued {st['queued']}  dropped {st['dropped']}")  # fmt: skip
            if self.tty:
                print("\r" + msg, end="", file=sys.stderr, flush=True)
                self._shown = True
            else:
                print(msg, file=sys.stderr, flush=True)

    def _clear(self) -> None:
        if self._shown:
            print("\r\033[K", end="", file=sys.stderr, flush=True)
            self._shown = False

    def done(self) -> None:
        self._clear()
