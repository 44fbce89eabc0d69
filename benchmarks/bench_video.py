"""Video-in benchmark: decode throughput, decode + encoder at recap-base sizes, encoder wait share, peak memory.

Generates its own videos (in a temporary folder unless --workdir is given):

- a 60-min and a 10-min video at low resolution (160x120, 10 fps, H.264), for decode throughput and for peak memory
  (each measured in a fresh subprocess, VmHWM of its own /proc/self/status);
- a 10-s 1080p30 video (moving noise texture, H.264) for full-size decode throughput.

Decode + encoder runs the recap-base TimeSformer (random weights: speed does not depend on them) over a sample of
`--encoder-windows` windows of the 1080p video, with decoding in the background thread, and reports the share of
wall time the encoder waited for frames. Prints markdown to stdout.

    python benchmarks/bench_video.py [--workdir DIR] [--encoder-windows 24] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import torch
from _machine import check_load, machine_block, vm_hwm_mib


def make_long(path: Path, minutes: float, size: tuple[int, int] = (160, 120), fps: int = 10) -> Path:
    """A long low-resolution video with a changing picture (a moving gradient + frame counter band)."""
    if path.exists():
        return path
    w, h = size
    x = np.linspace(0, 255, w, dtype=np.float32)[None, :, None]
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "g": str(fps * 10)})
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        for i in range(int(minutes * 60 * fps)):
            img = np.empty((h, w, 3), np.uint8)
            img[...] = ((x + i * 3) % 256).astype(np.uint8)
            img[: h // 8] = (i * 4) % 256
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def make_1080p(
    path: Path,
    seconds: float = 10.0,
    fps: int = 30,
    *,
    block: int = 1,
    margin: int = 64,
    motion: Callable[[int], tuple[int, int]] = lambda i: ((i * 2) % 64, (i * 3) % 64),
    options: dict[str, str] | None = None,
) -> Path:
    """A 1080p H.264 file of a random texture (`block`-px squares, 1: pixel noise) drifting by `motion(frame)` (dy,
    dx) pixels; x264 `options` (default: ultrafast, a keyframe every 2 s)."""
    if path.exists():
        return path
    rng = np.random.default_rng(0)
    coarse = rng.integers(
        0, 256, size=(1080 // block + margin // block, 1920 // block + margin // block, 3), dtype=np.uint8
    )
    tex = np.repeat(np.repeat(coarse, block, axis=0), block, axis=1) if block > 1 else coarse
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps, options=options or {"preset": "ultrafast", "g": str(fps * 2)})
        s.width, s.height, s.pix_fmt = 1920, 1080, "yuv420p"
        for i in range(int(seconds * fps)):
            dy, dx = motion(i)
            img = np.ascontiguousarray(tex[dy : dy + 1080, dx : dx + 1920])
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def decode_only(path: Path) -> dict:
    """One pass over all 4-s windows (4 frames each): sampled frames/s and x real time."""
    from videorecap.video.io import probe
    from videorecap.video.reader import iter_windows
    from videorecap.video.sampling import clip_windows

    info = probe(path)
    windows = clip_windows(info.duration)
    t0 = time.perf_counter()
    n = 0
    for _, frames in iter_windows(path, windows, 4, info=info):
        n += frames.shape[0]
    dt = time.perf_counter() - t0
    peak_mb = vm_hwm_mib()  # this process's own peak: ru_maxrss would carry the parent's across fork/exec
    return {"duration": info.duration, "windows": len(windows), "frames": n, "seconds": dt, "peak_mb": peak_mb}


def decode_in_subprocess(path: Path) -> dict:
    """`decode_only` in a fresh interpreter, so its peak RSS is that run's alone."""
    cmd = [sys.executable, __file__, "--decode-only", str(path)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def decode_plus_encoder(path: Path, num_windows: int, batch_size: int, device: str) -> dict:
    from videorecap.config import RecapConfig
    from videorecap.model.encoder import VideoEncoder
    from videorecap.video.encode import EncodeStats, encode_windows
    from videorecap.video.io import probe
    from videorecap.video.sampling import segment_feature_windows

    info = probe(path)
    # num_windows windows spread over the clip (shorter than 4 s each: the 1080p clip is short)
    windows = segment_feature_windows(0.0, info.duration, min_windows=num_windows)[:num_windows]
    enc = VideoEncoder(RecapConfig.from_name("recap-base").encoder).to(device).eval()
    # warm-up batch (allocations, kernels)
    x = torch.zeros(1, 3, 4, 224, 224, device=device)
    with torch.inference_mode():
        enc(x, cls_only=True)
    stats = EncodeStats()
    t0 = time.perf_counter()
    first_wait = None
    for _ in encode_windows(path, enc, windows, batch_size=batch_size, device=device, info=info, stats=stats):
        if first_wait is None:
            first_wait = stats.wait_seconds  # the pipeline filling up: nothing to overlap with yet
    wall = time.perf_counter() - t0
    return {
        "windows": stats.windows,
        "wall": wall,
        "wait": stats.wait_seconds,
        "first_wait": first_wait or 0.0,
        "encode": stats.encode_seconds,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=None, help="keep generated videos here (reused if present)")
    ap.add_argument("--encoder-windows", type=int, default=24, help="windows timed through recap-base")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--long-minutes", type=float, default=60.0)
    ap.add_argument("--decode-only", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--allow-load", action="store_true", help="run at a load average of one per core or more")
    args = ap.parse_args()
    if args.decode_only is not None:
        print(json.dumps(decode_only(args.decode_only)))
        return
    check_load(args.allow_load, "bench_video")

    tmp = None
    if args.workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="bench_video_")
        work = Path(tmp.name)
    else:
        work = args.workdir
        work.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    long60 = make_long(work / f"long{int(args.long_minutes)}m.mp4", args.long_minutes)
    long10 = make_long(work / "long10m.mp4", 10.0)
    hd = make_1080p(work / "hd1080p.mp4")
    gen_s = time.perf_counter() - t0

    r60 = decode_in_subprocess(long60)
    r10 = decode_in_subprocess(long10)
    rhd = decode_in_subprocess(hd)
    enc = decode_plus_encoder(hd, args.encoder_windows, args.batch_size, args.device)

    print("## Video in (bench_video.py)\n")
    print(machine_block({"PyAV": av.__version__, "device": args.device}))
    print(f"\nGenerated videos (H.264, x264 ultrafast) in {gen_s:.0f} s.\n")
    print("| video | duration | 4-s windows | sampled frames/s | x real time | peak RSS (MB) |")
    print("|---|---|---|---|---|---|")
    for name, r in ((f"160x120 10 fps, {args.long_minutes:.0f} min", r60), ("160x120 10 fps, 10 min", r10),
                    ("1920x1080 30 fps, 10 s", rhd)):  # fmt: skip
        fps = r["frames"] / r["seconds"]
        rt = r["duration"] / r["seconds"]
        print(f"| {name} | {r['duration']:.0f} s | {r['windows']} | {fps:.0f} | {rt:.0f}x | {r['peak_mb']:.0f} |")
    ratio = r60["peak_mb"] / r10["peak_mb"]
    print(
        f"\nPeak memory, {args.long_minutes:.0f}-min vs 10-min decode: {r60['peak_mb']:.0f} MB vs "
        f"{r10['peak_mb']:.0f} MB (ratio {ratio:.3f}; target within 10%).\n"
    )
    wait_share = enc["wait"] / enc["wall"] if enc["wall"] > 0 else 0.0
    steady = (enc["wait"] - enc["first_wait"]) / max(enc["wall"] - enc["first_wait"], 1e-9)
    print(
        f"Decode + recap-base encoder (TimeSformer-B, 4x224x224, batch {args.batch_size}, random weights) on "
        f"`{args.device}`, a sample of {enc['windows']} windows of the 1080p video: "
        f"{enc['windows'] / enc['wall']:.2f} clips/s, encoder busy {enc['encode']:.1f} s of {enc['wall']:.1f} s "
        f"wall. The encoder waited for frames {enc['wait']:.2f} s = {100 * wait_share:.1f}% of the time, of which "
        f"{enc['first_wait']:.2f} s before the first batch (pipeline fill); after it: {100 * steady:.1f}% "
        "(target < 5% when decoding is the faster side)."
    )
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
