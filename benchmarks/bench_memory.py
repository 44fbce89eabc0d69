"""Peak memory of `caption` (and `features`) against video length: does it stay flat?

Each configuration runs in a fresh Python process (`--child`), which reports its own peak resident set size from
`/proc/self/status` (VmHWM) and samples VmRSS every 50 ms to say where it grew: after the models load, during the
clip stage, after it. A parent's `ru_maxrss` of its children would mix them all up, hence one process each.

The videos are synthetic and tiny (48x32, 2 fps, H.264, `videorecap.video.testing.make_video`), made once in a
process of their own and cached in `--video-dir`, so memory goes to captioning, not to pixels; the model is the
bundled `recap-synth`. Memory that grows with the video's length here is what the clip loop keeps (lists of
results, caches, allocator arenas), since every frame and window is small.

    python benchmarks/bench_memory.py --quick                  # 10 min and 1 h (the shared CPU allows this)
    python benchmarks/bench_memory.py                          # 10 min, 1 h and 10 h
    python benchmarks/bench_memory.py --quick --arena-max 2    # the same with MALLOC_ARENA_MAX=2 in the children
    python benchmarks/bench_memory.py --quick --mode features  # decode + encoder only, for comparison
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _machine import machine_block, vm_hwm_mib

FULL = (600.0, 3600.0, 36000.0)
QUICK = (600.0, 3600.0)


def _status_kb(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class _Sampler:
    """VmRSS every `period` seconds in a thread: the peak seen in each named phase."""

    def __init__(self, period: float = 0.05) -> None:
        self.phase = "start"
        self.peaks: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(period,), daemon=True)
        self._thread.start()

    def _run(self, period: float) -> None:
        while not self._stop.is_set():
            rss = _status_kb("VmRSS")
            self.peaks[self.phase] = max(self.peaks.get(self.phase, 0), rss)
            time.sleep(period)

    def mark(self, phase: str) -> None:
        rss = _status_kb("VmRSS")
        self.peaks[self.phase] = max(self.peaks.get(self.phase, 0), rss)
        self.phase = phase

    def stop(self) -> dict[str, int]:
        self.mark("end")
        self._stop.set()
        self._thread.join()
        return self.peaks


def video_path(video_dir: Path, seconds: float) -> Path:
    return video_dir / f"mem_{int(seconds)}s_48x32_2fps.mp4"


def make(video_dir: Path, seconds: float) -> Path:
    path = video_path(video_dir, seconds)
    if not path.is_file():
        from videorecap.video.testing import make_video

        video_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
        make_video(tmp, duration=seconds, fps=2.0, size=(48, 32))
        os.replace(tmp, path)
    return path


def child(seconds: float, video_dir: Path, mode: str, batch_size: int, levels: str) -> dict:
    """One measurement, in this (fresh) process."""
    path = video_path(video_dir, seconds)
    sampler = _Sampler()
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    from videorecap import pipeline

    sampler.mark("load")
    t0 = time.perf_counter()
    if mode == "caption":
        captioner = pipeline.Captioner.load("recap-synth")
        sampler.mark("run")
        base = _status_kb("VmRSS")
        result = pipeline.caption_video(path, captioner, pipeline.CaptionOptions(batch_size=batch_size, levels=levels))
        windows = len(result.clips)
    else:
        from videorecap.checkpoint import load_encoder
        from videorecap.video.features import extract_features

        encoder = load_encoder(pipeline.bundled_models()["recap-synth"] / "clip")
        sampler.mark("run")
        base = _status_kb("VmRSS")
        windows = len(extract_features(path, encoder, batch_size=batch_size))
    seconds_taken = time.perf_counter() - t0
    peaks = sampler.stop()
    return {
        "mode": mode if mode == "features" else f"caption {levels}",
        "video_seconds": seconds,
        "windows": windows,
        "peak_rss_mb": round(vm_hwm_mib(), 1),
        "rss_before_run_mb": round(base / 1024, 1),
        "peak_during_run_mb": round(peaks.get("run", 0) / 1024, 1),
        "wall_s": round(seconds_taken, 1),
        "malloc_arena_max": os.environ.get("MALLOC_ARENA_MAX"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="only 10 min and 1 h (the 10-h run takes a long while)")
    ap.add_argument("--durations", type=float, nargs="+", help="video lengths in seconds (overrides --quick)")
    ap.add_argument("--mode", choices=("caption", "features"), default="caption")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--levels", default="clip,segment,video", help="caption levels (e.g. clip: the clip stage only)")
    ap.add_argument("--arena-max", type=int, help="run the children with MALLOC_ARENA_MAX set to this")
    ap.add_argument("--video-dir", type=Path, default=Path(tempfile.gettempdir()) / "videorecap-bench-memory")
    ap.add_argument("--child", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args.video_dir, args.mode, args.batch_size, args.levels)))
        return
    durations = args.durations or (QUICK if args.quick else FULL)
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("HF_HUB_OFFLINE", "1")
    if args.arena_max is not None:
        env["MALLOC_ARENA_MAX"] = str(args.arena_max)
    rows = []
    for seconds in durations:
        # the video is made in a process of its own, so the encoder's memory is not the measured one's
        code = "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); import bench_memory as b; "
        code += "b.make(Path(sys.argv[2]), float(sys.argv[3]))"
        here = str(Path(__file__).resolve().parent)
        subprocess.run([sys.executable, "-c", code, here, str(args.video_dir), str(seconds)], check=True, env=env)
        cmd = [sys.executable, __file__, "--child", str(seconds), "--mode", args.mode]
        cmd += ["--batch-size", str(args.batch_size), "--video-dir", str(args.video_dir), "--levels", args.levels]
        out = subprocess.run(cmd, check=True, env=env, capture_output=True, text=True).stdout
        row = json.loads(out.strip().splitlines()[-1])
        rows.append(row)
        print(json.dumps(row), flush=True)
    print()
    print(machine_block({"children": f"OMP_NUM_THREADS={env['OMP_NUM_THREADS']}, batch {args.batch_size}"}))
    print()
    print("| mode | video | windows | peak RSS (MB) | before the run (MB) | growth during the run (MB) | wall (s) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        growth = r["peak_during_run_mb"] - r["rss_before_run_mb"]
        print(
            f"| {r['mode']} | {r['video_seconds'] / 60:g} min | {r['windows']} | {r['peak_rss_mb']} | "
            f"{r['rss_before_run_mb']} | {growth:.1f} | {r['wall_s']} |"
        )


if __name__ == "__main__":
    main()
