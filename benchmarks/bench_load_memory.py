"""Memory of loading recap-base's three levels from checkpoint folders, per precision.

A checkpoint's weights are read through a memory map of its safetensors file. fp32 computes on those pages
directly (they count in the resident set once touched, and are shared with other processes reading the same
file); bf16 and int8 replace most weights with converted copies, after which the map should be gone. Each precision
is loaded in a fresh process (`--child`), which reports its peak resident set (VmHWM) and, after loading, its
resident set split into file-backed and anonymous pages (RssFile, RssAnon of /proc/self/status).

The checkpoints are recap-base at random weights (seed 0), 1.6 GB per level, written once to `--models` (kept for
later runs). Loading only: nothing is captioned, so fp32's pages are not read yet and its figure is small.

    python benchmarks/bench_load_memory.py                      # fp32, fp32-onednn, bf16, int8
    python benchmarks/bench_load_memory.py --precisions int8
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from _machine import machine_block, run_child

LEVELS = ("clip", "segment", "video")


def _status_mib() -> dict[str, float]:
    out = {}
    with open("/proc/self/status", encoding="utf-8") as f:
        for line in f:
            key = line.split(":")[0]
            if key in ("VmHWM", "VmRSS", "RssFile", "RssAnon"):
                out[key] = round(int(line.split()[1]) / 1024, 1)
    return out


def _write_models(folder: Path) -> None:
    """recap-base's three levels at random weights, as `videorecap train` would save them (once)."""
    import torch

    from videorecap.checkpoint import save_pretrained
    from videorecap.config import RecapConfig
    from videorecap.model.recap import VideoRecap
    from videorecap.tokenizer import Tokenizer

    torch.manual_seed(0)
    tok = Tokenizer.gpt2()
    for lv in LEVELS:
        if not (folder / lv / "config.json").is_file():
            save_pretrained(VideoRecap(RecapConfig.from_name("recap-base", level=lv)), folder / lv, tokenizer=tok)


def _child(models: Path, precision: str) -> dict[str, object]:
    import torch

    from videorecap.pipeline import Captioner

    torch.set_num_threads(1)
    t = time.perf_counter()
    cap = Captioner.load(models, precision=precision)
    seconds = time.perf_counter() - t
    st = _status_mib()
    return {"precision": precision, "resolved": cap.precision, "load_s": round(seconds, 1), **st}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--precisions", default="fp32,fp32-onednn,bf16,int8")
    ap.add_argument("--models", type=Path, default=Path(tempfile.gettempdir()) / "videorecap-bench-recap-base")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_child(args.models, args.child)))
        return
    _write_models(args.models)
    print(machine_block())
    print(f"\n`python benchmarks/bench_load_memory.py --precisions {args.precisions}` (recap-base, 3 levels, random "
          "weights; one process per precision; MiB)\n")  # fmt: skip
    print("| precision | load s | peak (VmHWM) | resident after loading | of which file-backed | anonymous |")
    print("|---|---:|---:|---:|---:|---:|")
    for prec in args.precisions.split(","):
        r = run_child(__file__, ["--models", str(args.models), "--child", prec])
        name = prec if r["resolved"] == prec else f"{prec} ({r['resolved']})"
        print(f"| {name} | {r['load_s']} | {r['VmHWM']} | {r['VmRSS']} | {r['RssFile']} | {r['RssAnon']} |")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
