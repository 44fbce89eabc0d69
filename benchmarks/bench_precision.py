"""fp32 vs fp32-onednn vs bf16 vs int8 (and optionally torch.compile) for each stage of captioning, at recap-base sizes.

Random weights (speed does not depend on the values), one model, each precision prepared the way `--precision`
prepares it (`runtime.prepare_model` + `runtime.compute_context`):

- encoder: TimeSformer-B forward on `--enc-batch` clips of 4 x 224 px, per clip;
- Q-Former: the clip level's video Q-Former (256 queries over the 785 encoder tokens), per clip;
- decoding: the clip level's KV-cached greedy loop, `--tokens` tokens (EOS suppressed) for 1 row and for
  `--decode-batch` rows, per generated token.

Ratios are within this run only. The fidelity of each path is `videorecap.precision_gate`'s job (RESULTS.md).
`--compile` adds a `+compile` row per precision (not int8) for the encoder as `--compile` runs it
(`videorecap.compiled.compile_for_inference`: AOTInductor) and reports what a job pays before its first
batch: compiling, with an empty cache (a temporary $VIDEORECAP_CACHE_DIR and $TORCHINDUCTOR_CACHE_DIR), and the next
run's loading, in a fresh process that finds the package in that cache. Each is its first call's time less the row's
median batch (a first call also encodes one batch).

    python benchmarks/bench_precision.py                 # about 6 min on 2 idle cores
    python benchmarks/bench_precision.py --quick         # about 1 min: smaller batches, 1 repeat
    python benchmarks/bench_precision.py --precisions fp32,fp32-onednn,bf16 --compile   # about 12 min
"""

from __future__ import annotations

import argparse
import atexit
import copy
import gc
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
from _machine import LOADED_NOTE, Timing, add_timing_arguments, check_load, machine_block, ratio, run_child, timed

from videorecap.compiled import compile_for_inference
from videorecap.config import RecapConfig
from videorecap.infer.decode import DecodeConfig, _decode
from videorecap.model.recap import VideoRecap
from videorecap.runtime import compute_context, prepare_model, set_threads

NO_EOS = -1


def _next_run_compile(precision: str, args: argparse.Namespace) -> float:
    """Seconds of the first call in a fresh process, which loads the package this one left in the cache."""
    child = ["--child-compile", precision, "--enc-batch", str(args.enc_batch)]
    r = run_child(__file__, child + ["--threads", str(torch.get_num_threads())])
    return float(r["compile_s"])


def measure(
    base: VideoRecap, precision: str, args: argparse.Namespace, compile_encoder: bool = False
) -> dict[str, Timing | float]:
    model = prepare_model(copy.deepcopy(base), precision) if precision != "fp32" else base
    e = base.config.encoder
    out: dict[str, Timing | float] = {}
    torch.manual_seed(1)
    x = torch.randn(args.enc_batch, 3, e.num_frames, e.image_size, e.image_size)
    enc = model.encoder
    assert enc is not None
    with torch.inference_mode(), compute_context("cpu", precision):
        if compile_encoder:
            enc = compile_for_inference(enc, precision)
            t0 = time.perf_counter()
            enc(x)
            out["compile_s"] = time.perf_counter() - t0
            if args.child_compile:
                return out
        out["encoder"] = timed(lambda: enc(x), args.repeats)
        if compile_encoder:
            out["next_compile_s"] = _next_run_compile(precision, args)
            return out
        tokens = out["encoder"].out  # type: ignore[union-attr]
        out["qformer"] = timed(lambda: model.context("clip", video=tokens), args.repeats)
        ctx1 = model.context("clip", video=tokens[:1])
        bos = base.config.tokens.bos_token_id
        for b in (1, args.decode_batch):
            ctx = ctx1.expand(b, -1, -1).contiguous()
            out[f"decode{b}"] = timed(
                lambda ctx=ctx: _decode(model.decoder, ctx, bos, NO_EOS, args.tokens, DecodeConfig()), args.repeats
            )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--precisions", default="fp32,fp32-onednn,bf16,int8", help="comma list (default %(default)s)")
    p.add_argument("--enc-batch", type=int, default=4, help="clips per encoder forward (default 4)")
    p.add_argument("--decode-batch", type=int, default=64, help="rows of the batched decoding row (default 64)")
    p.add_argument("--tokens", type=int, default=12, help="tokens per caption (default 12, a clip caption)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: the CLI's default policy)")
    p.add_argument("--compile", action="store_true", help="also time the encoder as --compile runs it (AOTInductor)")
    p.add_argument("--child-compile", help=argparse.SUPPRESS)
    p.add_argument("--quick", action="store_true", help="enc-batch 1, decode-batch 16, 1 repeat")
    p.add_argument("--json", type=Path, help="also write the numbers here")
    add_timing_arguments(p)
    args = p.parse_args(argv)
    if args.quick:
        args.enc_batch, args.decode_batch, args.repeats = 1, 16, 1
    if not args.child_compile:
        check_load(args.allow_load, "bench_precision")
        # empty caches for this run, which its --child-compile processes share
        cache = tempfile.mkdtemp(prefix="bench-precision-cache-")
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(cache, "inductor")
        os.environ["VIDEORECAP_CACHE_DIR"] = cache
        atexit.register(shutil.rmtree, cache, True)
    threads, _ = set_threads(args.threads)
    torch.manual_seed(0)
    base = VideoRecap(RecapConfig.from_name("recap-base", level="clip")).eval()
    if args.child_compile:
        out = measure(base, args.child_compile, args, compile_encoder=True)
        print(json.dumps({"compile_s": out["compile_s"]}))
        return 0
    for blk in base.decoder.h:  # open the gates so the context matters, as in a trained model
        if blk.cross:
            blk.xattn_gate.data.fill_(0.5)
            blk.xmlp_gate.data.fill_(0.5)
    precisions = [s.strip() for s in args.precisions.split(",") if s.strip()]
    res: dict[str, dict[str, Timing | float]] = {}
    for prec in precisions:
        res[prec] = measure(base, prec, args)
        gc.collect()
        if args.compile and prec != "int8":
            res[prec + "+compile"] = measure(base, prec, args, compile_encoder=True)
            gc.collect()
    print(f"## Precision per stage, recap-base clip level (`python benchmarks/bench_precision.py "
          f"{' '.join(argv if argv is not None else sys.argv[1:])}`)\n")  # fmt: skip
    print(machine_block({"threads": f"torch {threads}", "repeats": f"{args.repeats} timed after 1 warm-up"}))
    print()
    ref = res[precisions[0]]
    B, N = args.decode_batch, args.tokens
    print(f"| precision | encoder ms/clip (batch {args.enc_batch}) | Q-Former ms/clip | decode ms/token, 1 row | "
          f"decode ms/token, {B} rows |")  # fmt: skip
    print("|---|---|---|---|---|")
    for prec, r in res.items():
        cells = []
        for key, per in (
            ("encoder", args.enc_batch),
            ("qformer", args.enc_batch),
            ("decode1", N),
            (f"decode{B}", B * N),
        ):
            t = r.get(key)
            if not isinstance(t, Timing):
                cells.append("-")
                continue
            vs = f", {ratio(ref[key], t)} vs {precisions[0]}" if prec != precisions[0] else ""  # type: ignore[arg-type]
            if prec.endswith("+compile") and prec != precisions[0] + "+compile":
                vs += f", {ratio(res[prec[: -len('+compile')]][key], t)} vs uncompiled"  # type: ignore[arg-type]
            cells.append(t.fmt(1000 / per, "", 2) + vs)
        if "compile_s" in r:  # both first calls also encode one batch: the row's median, taken off
            batch_s = r["encoder"].median  # type: ignore[union-attr]
            first, again = r["compile_s"], r["next_compile_s"]
            cells[1] = (
                f"compiling {first - batch_s:.1f} s (first call {first:.1f} s); next run: loading "  # type: ignore[operator]
                f"{again - batch_s:.1f} s (first call {again:.1f} s)"  # type: ignore[operator]
            )
        print(f"| {prec} | " + " | ".join(cells) + " |")
    print(f"\nRatios: median ratio (worst case over the spreads). {LOADED_NOTE}")
    if args.json:
        out = {
            prec: {k: (v.to_dict() if isinstance(v, Timing) else v) for k, v in r.items()} for prec, r in res.items()
        }
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
