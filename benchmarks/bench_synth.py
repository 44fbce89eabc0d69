"""Render speed of the synthetic world, as a multiple of real time (target: >= 50x at the default 64 px).

    python benchmarks/bench_synth.py [--minutes 4] [--size 64] [--fps 8] [--repeat 3]

Times `make_script` (the timeline and its text), drawing the frames, and the whole mp4 render (drawing + H.264).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from videorecap.synth.make import DEFAULT_FPS, DEFAULT_MINUTES, DEFAULT_SIZE
from videorecap.synth.render import iter_frames, render_video
from videorecap.synth.world import make_script


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=DEFAULT_MINUTES)
    p.add_argument("--size", type=int, default=DEFAULT_SIZE)
    p.add_argument("--fps", type=float, default=DEFAULT_FPS)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()

    best = {"script": float("inf"), "draw": float("inf"), "render": float("inf")}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeat):
            t0 = time.perf_counter()
            script = make_script(r, args.minutes)
            t1 = time.perf_counter()
            n = sum(1 for _ in iter_frames(script, size=args.size, fps=args.fps))
            t2 = time.perf_counter()
            render_video(script, Path(tmp) / "v.mp4", size=args.size, fps=args.fps)
            t3 = time.perf_counter()
            best = {
                "script": min(best["script"], t1 - t0),
                "draw": min(best["draw"], t2 - t1),
                "render": min(best["render"], t3 - t2),
            }
    secs = args.minutes * 60
    print(
        f"{args.minutes:g} min video, {args.size}x{args.size} px, {args.fps:g} fps ({n} frames); best of {args.repeat}"
    )
    print(f"  make_script   {best['script'] * 1e3:8.1f} ms")
    print(f"  draw frames   {best['draw']:8.3f} s  {secs / best['draw']:8.0f}x real time")
    print(f"  render mp4    {best['render']:8.3f} s  {secs / best['render']:8.0f}x real time (target >= 50x)")


if __name__ == "__main__":
    main()
