"""Wall time of `videorecap caption` for several thread settings, on an idle CPU and under load (issue 12, point 10).

Renders a few short synthetic videos, then times `videorecap caption VIDEOS --model recap-synth` (the bundled model,
all three levels, a fresh output folder each time, so nothing is reused from a cache) in a subprocess for each
thread setting: with the CPU otherwise idle, while a background process keeps one core busy, and while one keeps
every core busy (`--loads`). Each setting is repeated; the table gives the median and the spread (min-max) in
seconds. The machine block and the timing rules are benchmarks/_machine.py's: it refuses to start the idle column at
a load average of one per core or more (unless --allow-load), and marks an idle row taken under load with *.

Settings:
  default        no --threads and no OMP_NUM_THREADS: the CLI's default (cores - 1 torch threads)
  N              --threads N
  torch-default  --threads <all cores>, VIDEORECAP_DECODE_THREADS=0: what PyTorch and FFmpeg do by themselves (the
                 old behaviour, the 5x slowdown of issue 12 under load)
  S/wK           setting S with VIDEORECAP_ENCODER_WORKERS=K: K encoder batches at once (default/w1: one batch at a
                 time, the default before several batches were encoded at once)

Prints a machine description first (CPU model, ISA flags, cores, torch version) and the load average before each
timed run, then a markdown table for benchmarks/RESULTS.md. Run it on a quiet machine:

    python benchmarks/bench_threads.py                  # 3 videos of 3 min, 3 repeats, 3 loads
    python benchmarks/bench_threads.py --quick          # 1 video of 20 s, 1 repeat, 2 settings: checks it works
    python benchmarks/bench_threads.py --model DIR --videos 1 --minutes 1 --settings default,default/w1,2 \
        --loads "idle,1 core busy" --repeats 2          # a recap-base checkpoint folder: compute-bound runs
      (DIR: recap-base's levels at random weights, as `bench_load_memory.py --models DIR` writes them)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _machine import LOADED_NOTE, Timing, check_load, machine_block, timed


def make_videos(folder: Path, count: int, minutes: float) -> list[Path]:
    from videorecap.synth.make import make_video

    paths = []
    for i in range(count):
        p = folder / f"bench_{i}.mp4"
        make_video(p, seed=100 + i, minutes=minutes, segment_seconds=20.0)
        paths.append(p)
    return paths


def run_once(videos: list[Path], setting: str, cores: int, model: str = "recap-synth") -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["HF_HUB_OFFLINE"] = "1"
    env.pop("VIDEORECAP_DECODE_THREADS", None)
    env.pop("VIDEORECAP_ENCODER_WORKERS", None)
    setting, _, workers = setting.partition("/w")
    if workers:
        env["VIDEORECAP_ENCODER_WORKERS"] = workers
    extra: list[str] = []
    if setting == "torch-default":
        extra = ["--threads", str(cores)]
        env["VIDEORECAP_DECODE_THREADS"] = "0"  # FFmpeg's own choice: a thread per core
    elif setting != "default":
        extra = ["--threads", setting]
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "videorecap", *extra, "caption", *map(str, videos), "--model", model,
               "-o", out, "--no-progress"]  # fmt: skip
        t0 = time.perf_counter()
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{setting}: caption failed ({r.returncode}):\n{r.stderr[-2000:]}")
    return dt


def burn() -> subprocess.Popen:
    """A background process that keeps one core busy."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


LOADS = {"idle": 0, "1 core busy": 1, "all cores busy": -1}  # name -> busy-looping processes (-1: one per core)


def main() -> None:
    from videorecap import runtime

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=3, help="number of videos (default 3)")
    ap.add_argument("--minutes", type=float, default=3.0, help="length of each video (default 3)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per setting and load (default 3)")
    ap.add_argument("--settings", help="comma list of settings (default: default,1,2,cores-1,cores,torch-default)")
    ap.add_argument("--loads", default=",".join(LOADS), help=f"comma list of {', '.join(LOADS)} (default: all)")
    ap.add_argument("--quick", action="store_true", help="1 video of 20 s, 1 repeat, settings default,1")
    ap.add_argument("--model", default="recap-synth", help="what `caption --model` gets: the bundled model (default "
                    "%(default)s) or a checkpoint folder, e.g. recap-base's sizes with random weights")  # fmt: skip
    ap.add_argument("--allow-load", action="store_true", help="start the idle column even at a load average of one "
                    "per core or more (its rows are then marked *)")  # fmt: skip
    args = ap.parse_args()
    cores = runtime.cpu_count()
    if args.quick:
        args.videos, args.minutes, args.repeats = 1, 20 / 60, 1
        args.settings = args.settings or "default,1"
    wanted = args.settings or "default,1,2,cores-1,cores,torch-default"
    settings: list[str] = []
    for s in wanted.split(","):
        s = s.strip().replace("cores-1", str(max(1, cores - 1))).replace("cores", str(cores))
        if s and s not in settings:
            settings.append(s)

    check_load(args.allow_load or "idle" not in args.loads, "bench_threads")  # only the idle column needs quiet
    batches = min(runtime.MAX_ENCODER_WORKERS, max(1, cores // runtime.default_threads()))
    defaults = (f"--threads {runtime.default_threads()}, FFmpeg {runtime.DEFAULT_DECODE_THREADS} threads, "
                f"{batches} encoder batches at once")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        videos = make_videos(Path(tmp), args.videos, args.minutes)
        n_videos = len(videos)
        print(machine_block({
            "default": defaults,
            "videos": f"{len(videos)} x {args.minutes * 60:g} s, {Path(args.model).name}, all three levels",
        }))  # fmt: skip
        print()
        results: dict[tuple[str, str], Timing] = {}
        loads = [x.strip() for x in args.loads.split(",") if x.strip()]
        unknown = set(loads) - set(LOADS)
        if unknown:
            raise SystemExit(f"unknown load(s) {sorted(unknown)}; use {', '.join(LOADS)}")
        for load in loads:
            n_burn = cores if LOADS[load] < 0 else LOADS[load]
            burners = [burn() for _ in range(n_burn)]
            try:
                time.sleep(1.0 if burners else 0.0)
                for setting in settings:

                    def run(setting: str = setting) -> float:
                        return run_once(videos, setting, cores, args.model)

                    t = timed(run, args.repeats, warmup=0)
                    results[(load, setting)] = t
                    print(f"{load:14s} {setting:>13s}: {t.fmt(digits=1)} (load average before each run: "
                          f"{', '.join(f'{x:.2f}' for x in t.loads)})", flush=True)  # fmt: skip
            finally:
                for b in burners:
                    b.kill()
                    b.wait()

    print()
    print(f"wall seconds of `caption` on {n_videos} video(s), median (min-max) of {args.repeats} run(s)")
    print("| setting | " + " | ".join(loads) + " |")
    print("|---" * (len(loads) + 1) + "|")
    for setting in settings:
        cells = [results[(load, setting)].fmt(unit="", digits=1) for load in loads]
        # the busy columns are under load by design: only the idle column's * means something
        cells = [c if load == "idle" else c.rstrip("*") for c, load in zip(cells, loads, strict=True)]
        print(f"| {setting} | " + " | ".join(cells) + " |")
    print()
    print(LOADED_NOTE)


if __name__ == "__main__":
    main()
