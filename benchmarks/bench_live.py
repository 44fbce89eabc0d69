"""Live captioning cost: latency, real-time factor, CPU use and memory of `videorecap live` over a long stream.

A synthetic MPEG-TS recording (64x48 or 224-px frames, 10 fps, a key frame a second) is appended to a growing file by
a separate writer process, paced at `--speed` times real time (a 3-h stream in minutes), while a `LiveSession`
follows the file, exactly as `videorecap live FILE` does. Reported per model:

- clip latency p50/p95: from the moment the stream passed a window's end to its caption event (it includes the
  1-s minimum-tail wait, docs/live.md; at --speed S the stream passes 1 s of video in 1/S s of wall time);
- segment latency p50/p95, measured the same way from the clip that closed the segment;
- real-time factor: seconds the captioning thread was busy (clip work, and level work: segment descriptions and
  rolling summaries) per second of stream; below 1 the model keeps up with a real-time stream on this machine;
- CPU use: process CPU seconds per wall second (2.0 = two cores busy);
- RSS at 25 %, 50 % and 100 % of the stream and the peak: flat when memory does not grow with the stream.

Then the time per captioned window by stage: the reader thread's CPU (demux, FFmpeg decoding, windowing; the
FFmpeg decoder threads are not in it) and the eval transform in it; the captioning thread's encoder, clip Q-Former,
clip decoding (the rest of the clip model call: the decoder, batching, detokenising), the clip work's events and
store, and the level work (segment descriptions and rolling summaries, without the clip work done between their
decoding steps). The reader runs in parallel with the captioning thread: its CPU competes with the model's
threads for the same cores.

recap-synth is the bundled model; recap-base is the full-size architecture with random weights and the GPT-2
tokenizer: every matmul is real, but the tokens are noise and never reach EOS. `--decoding` says how long the
captions are (both modes can be given; each is a row, labelled):

- `limit` (default): every caption runs to the model's token limit (recap-base: 77 clip, 77 segment, 120 video),
  an upper bound on decoding cost that trained weights do not pay;
- `typical`: each caption ends after the length typical of its level: the mean GPT-2 token count of the synthetic
  world's ground truth (`videorecap.synth`, 20 held-out 30-min scripts, computed at start and printed: about 10
  for a clip caption, like Ego4D's "#C C picks the cabbage" narrations, 58 for a segment description, 308 for a
  summary, capped at the model's limit), plus one step for the EOS a real caption ends with. With random weights
  a caption of N tokens is N decoder steps, the cost a trained model pays for a caption of that length.
  With trained weights (recap-synth), captions end by themselves and the cap can only cut the longer ones.

Run only on a quiet machine; `--quick` is a smoke run (2 min of stream at 8x, recap-synth).

    python benchmarks/bench_live.py --quick
    python benchmarks/bench_live.py --minutes 180 --speed 30                     # recap-synth over a 3-h stream
    python benchmarks/bench_live.py --model recap-base --minutes 10 --speed 1    # does recap-base keep up?
    python benchmarks/bench_live.py --model recap-base --minutes 6 --speed 1 --decoding limit typical
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
from _machine import check_load, machine_block  # noqa: E402  (benchmarks/_machine.py: the one machine block)
from _models import captioner_for  # noqa: E402

LEVELS = ("clip", "segment", "video")
TRUTH_VIDEOS, TRUTH_MINUTES = 20, 30.0  # the synthetic scripts the typical caption lengths are measured on
STAGES = (  # (key, label) of the per-window stage table
    ("reader_cpu", "reader CPU"),
    ("transform", "transform"),
    ("encoder", "encoder"),
    ("qformer", "clip Q-Former"),
    ("clip_decode", "clip decoding"),
    ("clip_other", "clip events+store"),
    ("level", "level work"),
)


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


def typical_tokens(cap) -> dict[str, int]:  # noqa: ANN001 - a pipeline.Captioner
    """Mean token count per level of the synthetic world's ground truth, with each level's tokenizer, for scripts
    cut into the model's clip and segment windows (a segment's description grows with the window)."""
    from videorecap.synth.make import make_script, video_id, video_seed
    from videorecap.synth.model import truth_of

    cfg = cap.model("clip").config
    texts: dict[str, list[str]] = {lv: [] for lv in LEVELS}
    for i in range(TRUTH_VIDEOS):
        script = make_script(video_seed(0, "heldout", i), TRUTH_MINUTES, clip_seconds=cfg.clip_seconds,
                             segment_seconds=cfg.segment_seconds, vid=video_id("heldout", i))  # fmt: skip
        for lv, rows in truth_of(script).items():
            texts[lv] += [t for _, t in rows]
    out = {}
    for lv in LEVELS:
        lengths = [len(ids) for ids in cap.tokenizer(lv).encode_batch(texts[lv])]
        out[lv] = round(sum(lengths) / len(lengths))
    return out


def decoding_limits(cap, mode: str, typical: dict[str, int]) -> dict[str, int]:  # noqa: ANN001
    """max_new_tokens per level of a decoding mode: the model's limit, or the typical length + the EOS step."""
    limits = {lv: cap.model(lv).config.io.max_new_tokens[lv] for lv in LEVELS}
    if mode == "limit":
        return limits
    return {lv: min(limits[lv], typical[lv] + 1) for lv in LEVELS}


class StageTimer:
    """The clip model's encoder and clip-level Q-Former timed in place (forward hooks, a wrapped `context`)."""

    def __init__(self, cap) -> None:  # noqa: ANN001 - a pipeline.Captioner
        self.seconds = {"encoder": 0.0, "qformer": 0.0}
        model = cap.model("clip")
        enc = model.encoder
        start: list[float] = []
        enc.register_forward_pre_hook(lambda *_: start.append(time.perf_counter()))
        enc.register_forward_hook(lambda *_: self._add("encoder", time.perf_counter() - start.pop()))
        real = model.context

        def context(level, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
            t = time.perf_counter()
            try:
                return real(level, *args, **kwargs)
            finally:
                if level == "clip":
                    self._add("qformer", time.perf_counter() - t)

        model.context = context

    def _add(self, key: str, dt: float) -> None:
        self.seconds[key] += dt


def run_one(
    model: str,
    minutes: float,
    speed: float,
    work: Path,
    precision: str = "fp32",
    lag: str = "queue",
    mode: str = "limit",
) -> dict:
    from videorecap.live.session import LiveOptions, LiveSession

    cap = captioner_for(model, precision)  # as `videorecap live --precision` would (runtime.resolve_precision)
    typical = typical_tokens(cap)
    limits = decoding_limits(cap, mode, typical)
    timer = StageTimer(cap)
    size = cap.model("clip").encoder.config.image_size
    rec = make_recording(work / f"rec-{size}.ts", minutes, size)
    src = work / f"{model}-{mode}.ts"
    src.unlink(missing_ok=True)
    src.touch()
    opts = LiveOptions(lag=lag, idle=30, max_new_tokens=dict(limits))
    session = LiveSession(str(src), cap, work / f"out-{model}-{mode}", opts)
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
    st = dict(session.stage_seconds)
    windows = max(1.0, st["windows"])
    per_window = {
        "reader_cpu": st["reader_cpu"],
        "transform": st["transform"],
        "encoder": timer.seconds["encoder"],
        "qformer": timer.seconds["qformer"],
        "clip_decode": st["clip_model"] - timer.seconds["encoder"] - timer.seconds["qformer"],
        "clip_other": st["clip"] - st["clip_model"],
        "level": st["level"],
    }
    return {
        "model": model,
        "mode": mode,
        "limits": limits,
        "typical": typical,
        "per_window": {k: v / windows for k, v in per_window.items()},
        "stream_s": stream_s,
        "speed": speed,
        "clips": len(end.result.clips),
        "segments": len(end.result.segments),
        "clip_p50": _pct(clip_lat, 0.5),
        "clip_p95": _pct(clip_lat, 0.95),
        "seg_p50": _pct(seg_lat, 0.5),
        "seg_p95": _pct(seg_lat, 0.95),
        "rtf": (st["clip"] + st["level"]) / stream_s,
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
    ap.add_argument("--precision", default="auto", help="auto (default: what `videorecap live` runs), fp32, "
                    "fp32-onednn, bf16 or int8, as --precision")  # fmt: skip
    ap.add_argument("--lag", choices=["queue", "drop"], default="queue", help="the lag policy (default: queue)")
    ap.add_argument("--decoding", nargs="+", choices=["limit", "typical"], default=["limit"],
                    help="caption lengths, one row each: limit (to the token limit, an upper bound; default) and/or "
                    "typical (the synthetic world's mean length per level + the EOS step)")  # fmt: skip
    ap.add_argument("--allow-load", action="store_true", help="run even at a load average of one per core or more")
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 min of stream at 8x, recap-synth")
    args = ap.parse_args()
    if args.quick:
        args.minutes, args.speed, args.model = 2.0, 8.0, args.model or ["recap-synth"]
    check_load(args.allow_load, "bench_live")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    print(machine_block())
    print()
    from videorecap.runtime import resolve_precision

    resolved = resolve_precision("cpu", args.precision)
    print(f"precision: {args.precision} ({resolved} here), lag policy: {args.lag}, "
          f"torch threads: {torch.get_num_threads()} "
          f"(`videorecap live` uses cores - 1 unless --threads or OMP_NUM_THREADS say otherwise)\n")  # fmt: skip
    rows = []
    print("| model | decoding (max tokens clip/seg/video) | stream | pace | clips | segs | clip latency p50 / p95 | "
          "segment latency p50 / p95 | real-time factor | CPU (cores) | RSS 25% / 50% / end, peak |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.model or ["recap-synth"]:
            for mode in args.decoding:
                r = run_one(model, args.minutes, args.speed, Path(tmp), args.precision, args.lag, mode)
                rows.append(r)
                rss = " / ".join(f"{r['rss'].get(k, float('nan')):.0f}" for k in ("25%", "50%", "100%"))
                lim = "/".join(str(r["limits"][lv]) for lv in LEVELS)
                print(f"| {r['model']} | {r['mode']} ({lim}) | {r['stream_s'] / 60:g} min | {r['speed']:g}x | "
                      f"{r['clips']} | {r['segments']} | {r['clip_p50']:.2f} / {r['clip_p95']:.2f} s | "
                      f"{r['seg_p50']:.2f} / {r['seg_p95']:.2f} s | {r['rtf']:.3f} | {r['cpu']:.2f} | "
                      f"{rss}, {r['peak_rss']:.0f} MiB |", flush=True)  # fmt: skip
    print("\nlatency counts from the stream passing a window's end, wall clock; at pace Sx the 1-s minimum-tail wait "
          "is 1/S s. real-time factor = captioning busy seconds (clip + level work) per stream second.")  # fmt: skip
    if len(rows) > 1:
        print("memory: the rows run one after the other in this one process, so a row's RSS includes what the rows "
              "before it left (another loaded model): run one row per invocation to measure memory.")  # fmt: skip
    for r in rows[:1]:
        typ = ", ".join(f"{lv} {r['typical'][lv]}" for lv in LEVELS)
        print(
            f"typical lengths (mean tokens of the synthetic world's truth, {TRUTH_VIDEOS} scripts of "
            f"{TRUTH_MINUTES:g} min, {r['model']}'s tokenizers): {typ}; typical decoding = min(limit, mean + 1)."
        )
    print("\nTime per captioned window by stage (ms; the reader thread runs alongside the captioning thread):\n")
    print("| model | decoding | " + " | ".join(label for _, label in STAGES) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in STAGES) + " |")
    for r in rows:
        cells = " | ".join(f"{1000 * r['per_window'][k]:.1f}" for k, _ in STAGES)
        print(f"| {r['model']} | {r['mode']} | {cells} |")


if __name__ == "__main__":
    main()
