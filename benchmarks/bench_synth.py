"""Render speed of the synthetic world, as a multiple of real time (target: >= 50x at the default 64 px).

    python benchmarks/bench_synth.py [--minutes 4] [--size 64] [--fps 8] [--repeats 3]

Times `make_script` (the timeline and its text), drawing the frames, and the whole mp4 render (drawing + H.264).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _machine import LOADED_NOTE, add_timing_arguments, check_load, machine_block, timed

from videorecap.synth.make import DEFAULT_FPS, DEFAULT_MINUTES, DEFAULT_SIZE
from videorecap.synth.render import iter_frames, render_video
from videorecap.synth.world import make_script


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=DEFAULT_MINUTES)
    p.add_argument("--size", type=int, default=DEFAULT_SIZE)
    p.add_argument("--fps", type=float, default=DEFAULT_FPS)
    p.add_argument("--repeat", dest="repeats", type=int, help=argparse.SUPPRESS)  # the old spelling of --repeats
    add_timing_arguments(p)
    args = p.parse_args()
    check_load(args.allow_load, "bench_synth")

    with tempfile.TemporaryDirectory() as tmp:
        t_script = timed(lambda: make_script(0, args.minutes), args.repeats)
        script = t_script.out
        t_draw = timed(lambda: sum(1 for _ in iter_frames(script, size=args.size, fps=args.fps)), args.repeats)
        n = t_draw.out
        t_render = timed(lambda: render_video(script, Path(tmp) / "v.mp4", size=args.size, fps=args.fps), args.repeats)
    secs = args.minutes * 60
    print(machine_block())
    print(f"{args.minutes:g} min video, {args.size}x{args.size} px, {args.fps:g} fps ({n} frames); median (min-max) of "
          f"{args.repeats} after 1 warm-up")  # fmt: skip
    print(f"  make_script   {t_script.fmt(1e3, 'ms', 1)}")
    print(f"  draw frames   {t_draw.fmt()}  {secs / t_draw.median:8.0f}x real time")
    print(f"  render mp4    {t_render.fmt()}  {secs / t_render.median:8.0f}x real time (target >= 50x)")
    print(LOADED_NOTE)


if __name__ == "__main__":
    main()
