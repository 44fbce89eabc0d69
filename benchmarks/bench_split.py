"""All cores on one batch, or a part of the batch per core? The recap-base video encoder on a CPU (issue 15 §2-§3).

The pipeline runs the encoder on a batch of clips with PyTorch's intra-op threads: every matrix product, softmax and
norm is split over the cores, with a barrier after each. On 2 cores of the AVX2-only EPYC that scales poorly
(RESULTS.md: the int8 encoder 1.63x from 1 to 2 threads, its largest product alone 1.7-1.9x). The other
way to use N cores is to split the batch into N parts and run each part in its own Python thread with one intra-op
thread: PyTorch releases the GIL inside its operators, so the parts run side by side with no barrier between them.

This script times both on the same inputs, alternating, in one process:

    intra   N batches of B clips, one after the other, each on N intra-op threads (what the pipeline does now);
    split   the same N batches at once, one per Python thread, each thread with one intra-op thread.

Each figure is milliseconds per clip (median and range of `--repeats` timed runs after a warm-up); the ratio is
intra / split. The inputs are random pixels; the encoder is recap-base's at random weights (`_models.captioner_for`),
prepared for the precision as the CLI prepares it. Every worker thread runs under `torch.inference_mode()` (grad mode
is per thread in PyTorch) and one intra-op thread (per-thread in PyTorch's OpenMP build: each worker sets its own
once). bf16 is left out: its autocast is per thread too, and it is slow on a CPU without bf16 instructions.

    python benchmarks/bench_split.py                          # fp32 and int8, batches of 8, all cores
    python benchmarks/bench_split.py --precisions int8 --batch 4 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

from _machine import LOADED_NOTE, Timing, add_timing_arguments, check_load, machine_block, ratio, timed
from _models import captioner_for


def split_runner(fn: Callable[[Any], Any], parts: list[Any]) -> Callable[[], None]:
    """`fn(part)` for every part at once, each in its own long-lived thread with one intra-op thread."""
    import torch

    go = [threading.Event() for _ in parts]
    done = [threading.Event() for _ in parts]
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        torch.set_num_threads(1)  # this thread's OpenMP/MKL setting (the process's default is restored below)
        with torch.inference_mode():
            while True:
                go[i].wait()
                go[i].clear()
                try:
                    fn(parts[i])
                except BaseException as e:  # noqa: BLE001 - reported by the caller
                    errors.append(e)
                done[i].set()

    for i in range(len(parts)):
        threading.Thread(target=worker, args=(i,), daemon=True).start()

    def run() -> None:
        for e in go:
            e.set()
        for e in done:
            e.wait()
            e.clear()
        if errors:
            raise errors[0]

    return run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--precisions", default="fp32,int8", help="comma-separated: fp32, fp32-onednn, int8")
    p.add_argument("--batch", type=int, default=8, help="clips per batch, as --batch-size (default 8)")
    p.add_argument("--threads", type=int, default=None, help="cores to use (default: all usable)")
    add_timing_arguments(p, repeats=3)
    args = p.parse_args()

    import torch

    from videorecap.runtime import cpu_count, set_threads

    n = args.threads or cpu_count()
    set_threads(n)
    check_load(args.allow_load, "bench_split")
    print(machine_block({"threads": f"{n} (intra: {n} intra-op threads; split: {n} threads x 1)",
                         "batch": f"{args.batch} clips, {n} batches per timed run"}))  # fmt: skip
    print()
    print("| precision | intra: one batch on all cores, ms/clip | split: a batch per core, ms/clip | intra / split |")
    print("|---|---|---|---|")
    for precision in args.precisions.split(","):
        if precision not in ("fp32", "fp32-onednn", "int8"):
            sys.exit(f"bench_split: --precisions takes fp32, fp32-onednn and int8, not {precision}")
        encoder = captioner_for("recap-base", precision).model("clip").encoder
        c = encoder.config
        g = torch.Generator().manual_seed(0)
        xs = [torch.randn(args.batch, 3, c.num_frames, c.image_size, c.image_size, generator=g) for _ in range(n)]

        def intra(encoder: Any = encoder, xs: list[Any] = xs) -> None:
            with torch.inference_mode():
                for x in xs:
                    encoder(x)

        split = split_runner(encoder, xs)
        torch.set_num_threads(n)  # the workers set their own; this thread keeps all cores
        intra()  # warm-up of both, then timed runs alternating
        split()
        times: dict[str, list[float]] = {"intra": [], "split": []}
        loads: dict[str, list[float]] = {"intra": [], "split": []}
        for _ in range(max(1, args.repeats)):
            for name, fn in (("intra", intra), ("split", split)):
                t = timed(fn, repeats=1, warmup=0)
                times[name] += t.times
                loads[name] += t.loads
        clips = n * args.batch
        a, b = Timing(times["intra"], loads["intra"]), Timing(times["split"], loads["split"])
        print(f"| {precision} | {a.fmt(1000 / clips, '', 0)} | {b.fmt(1000 / clips, '', 0)} | {ratio(a, b)} |",
              flush=True)  # fmt: skip
        del encoder, split
    print()
    print(LOADED_NOTE)
    print(f"Load average at the end: {os.getloadavg()[0]:.2f} (1 min).")


if __name__ == "__main__":
    main()
