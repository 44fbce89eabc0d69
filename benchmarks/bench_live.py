"""Live captioning cost: latency, real-time factor, CPU use and memory of `videorecap live` over a long stream.

A synthetic MPEG-TS recording (64x48 or 224-px frames, 10 fps, a key frame a second) is appended to a growing file by
a separate writer process, paced at `--speed` times real time (a 3-h stream in minutes), while a `LiveSession`
follows the file, exactly as `videorecap live FILE` does. Reported per model:

- clip latency p50/p95: from the moment the stream passed a window's end to its caption event (it includes the
  1-s minimum-tail wait, docs/live.md; at --speed S the stream passes 1 s of video in 1/S s of wall time);
- segment latency p50/p95, measured the same way from the clip that closed the segment;
- real-time factor: seconds the captioning thread was busy (clip, segment and rolling-summary calls) per second of
  stream; below 1 the model keeps up with a real-time stream on this machine;
- CPU use: process CPU seconds per wall second (2.0 = two cores busy);
- RSS at 25 %, 50 % and 100 % of the stream and the peak: flat when memory does not grow with the stream.

recap-synth is the bundled model; recap-base is the full-size architecture with random weights and the GPT-2
tokenizer (the tokens are noise and run to the token limit, an upper bound on decoding cost, but every matmul is
real). Run only on a quiet machine; `--quick` is a smoke run (2 min of stream at 8x, recap-synth).

    python benchmarks/bench_live.py --quick
    python benchmarks/bench_live.py --minutes 180 --speed 30                     # recap-synth over a 3-h stream
    python benchmarks/bench_live.py --model recap-base --minutes 10 --speed 1    # does recap-base keep up?
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _machine import machine_block  # noqa: E402  (benchmarks/_machine.py: the one machine block)


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def make_recording(path: Path, minutes: float, size: int) -> Path:
    from videorecap.video.testing import make_video

    return make_video(path, duration=minutes * 60, fps=10, size=(size, size * 3 // 4 // 2 * 2), options={"g": "10"})


def append_paced(src: str, dst: str, speed: float) -> None:
    """The writer process: SRC appended to DST at SPEED x real time (by packet timestamps), then DST.done."""
    import av

    marks = []
    with av.open(src) as c:
        t0 = None
        for p in c.demux(video=0):
            if p.pos is not None and p.pos >= 0 and p.pts is not None:
                t = float(p.pts * p.time_base)
                t0 = t if t0 is None else t0
                marks.append((p.pos, t - t0))
    start = time.monotonic()
    written = 0
    with open(src, "rb") as fin, open(dst, "ab") as fout:
        for pos, t in marks:
            wait = start + t / speed - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if pos > written:
                fout.write(fin.read(pos - written))
                fout.flush()
                written = pos
        fout.write(fin.read())
    Path(dst + ".done").touch()


def captioner_for(name: str):  # noqa: ANN201 - a pipeline.Captioner
    import torch

    from videorecap.pipeline import Captioner

    if name != "recap-base":
        return Captioner.load(name)
    from videorecap.config import RecapConfig
    from videorecap.model.recap import VideoRecap
    from videorecap.tokenizer import Tokenizer

    torch.manual_seed(0)
    tok = Tokenizer.gpt2()
    return Captioner({lv: (VideoRecap(RecapConfig.from_name("recap-base", level=lv)), tok)
                      for lv in ("clip", "segment", "video")})  # fmt: skip


def run_one(model: str, minutes: float, speed: float, work: Path, precision: str = "fp32", lag: str = "queue") -> dict:
    from videorecap.live.session import LiveOptions, LiveSession

    cap = captioner_for(model)
    cap.use_precision(precision, "cpu")  # as `videorecap live --precision` would (runtime.resolve_precision)
    size = cap.model("clip").encoder.config.image_size
    rec = make_recording(work / f"rec-{size}.ts", minutes, size)
    src = work / f"{model}.ts"
    src.unlink(missing_ok=True)
    src.touch()
    session = LiveSession(str(src), cap, work / f"out-{model}", LiveOptions(lag=lag, idle=30))
    busy = [0.0]
    real = session._caption

    def timed(batch):  # noqa: ANN001, ANN202 - the captioning thread's work: clips, segments, summaries
        t = time.perf_counter()
        try:
            return real(batch)
        finally:
            busy[0] += time.perf_counter() - t

    session._caption = timed
    rss: dict[str, float] = {}
    stream_s = minutes * 60

    def sample(ev: dict) -> None:
        if ev["event"] == "clip":
            for frac in (0.25, 0.5):
                if f"{frac:.0%}" not in rss and ev["end"] >= frac * stream_s:
                    rss[f"{frac:.0%}"] = _rss_mib()

    session.listeners.append(sample)
    writer = subprocess.Popen([sys.executable, __file__, "--_append", str(rec), str(src), str(speed)])
    cpu0, wall0 = os.times(), time.monotonic()
    end = session.run()
    wall = time.monotonic() - wall0
    cpu1 = os.times()
    writer.wait()
    rss["100%"] = _rss_mib()
    events = [json.loads(x) for x in (session.out / "live.jsonl").read_text().splitlines()]
    clip_lat = [e["latency"] for e in events if e["event"] == "clip" and "latency" in e]
    seg_lat = [e["latency"] for e in events if e["event"] == "segment" and "latency" in e]
    return {
        "model": model,
        "stream_s": stream_s,
        "speed": speed,
        "clips": len(end.result.clips),
        "segments": len(end.result.segments),
        "clip_p50": _pct(clip_lat, 0.5),
        "clip_p95": _pct(clip_lat, 0.95),
        "seg_p50": _pct(seg_lat, 0.5),
        "seg_p95": _pct(seg_lat, 0.95),
        "rtf": busy[0] / stream_s,
        "cpu": ((cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)) / wall,
        "rss": rss,
        "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "wall": wall,
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--_append":
        append_paced(sys.argv[2], sys.argv[3], float(sys.argv[4]))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", action="append", help="recap-synth (default) and/or recap-base; repeatable")
    ap.add_argument("--minutes", type=float, default=180.0, help="stream length (default: 180)")
    ap.add_argument("--speed", type=float, default=30.0, help="stream pace, times real time (default: 30)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--precision", default="fp32", help="fp32 (default), bf16, int8 or auto, as --precision")
    ap.add_argument("--lag", choices=["queue", "drop"], default="queue", help="the lag policy (default: queue)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 min of stream at 8x, recap-synth")
    args = ap.parse_args()
    if args.quick:
        args.minutes, args.speed, args.model = 2.0, 8.0, args.model or ["recap-synth"]
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    print(machine_block())
    print()
    print(f"precision: {args.precision}, lag policy: {args.lag}\n")
    print("| model | stream | pace | clips | segs | clip latency p50 / p95 | segment latency p50 / p95 | "
          "real-time factor | CPU (cores) | RSS 25% / 50% / end, peak |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.model or ["recap-synth"]:
            r = run_one(model, args.minutes, args.speed, Path(tmp), args.precision, args.lag)
            rss = " / ".join(f"{r['rss'].get(k, float('nan')):.0f}" for k in ("25%", "50%", "100%"))
            print(f"| {r['model']} | {r['stream_s'] / 60:g} min | {r['speed']:g}x | {r['clips']} | {r['segments']} | "
                  f"{r['clip_p50']:.2f} / {r['clip_p95']:.2f} s | {r['seg_p50']:.2f} / {r['seg_p95']:.2f} s | "
                  f"{r['rtf']:.3f} | {r['cpu']:.2f} | {rss}, {r['peak_rss']:.0f} MiB |", flush=True)  # fmt: skip
    print("\nlatency counts from the stream passing a window's end, wall clock; at pace Sx the 1-s minimum-tail wait "
          "is 1/S s. real-time factor = captioning busy seconds per stream second.")  # fmt: skip


if __name__ == "__main__":
    main()
