"""Decoding benchmark: KV-cached greedy generation vs the original's recompute-everything loop, and the encoder.

At `recap-base` sizes with random weights (speed does not depend on the values):

- the clip level's decoder (GPT-2 small with gated cross-attention in every layer) generates `--tokens` tokens
  greedily for `--batch` samples (one or more batch sizes, each timed in both paths) from a random (B, 256, 768)
  context (the video Q-Former's output; the encoder is skipped). EOS is suppressed (an id argmax never returns),
  so every row generates every token in both paths. Both paths must produce the same tokens; the script checks it;
- the TimeSformer forward (4 frames of 224 px, all 785 tokens out) and the video Q-Former (256 queries over those
  tokens), per clip.

Prints a markdown table; `--append benchmarks/RESULTS.md` also appends it with the command and the machine.

    python benchmarks/bench_decode.py --append benchmarks/RESULTS.md
    python benchmarks/bench_decode.py --batch 8,32 --recompute-repeats 1   # also at caption's default decode batch

The recompute path is compute-bound, so its cost per token hardly changes with the batch, while the cached path
reads the decoder's weights once per step for all rows: the ratio grows with the batch. Both paths always decode
the same batch, so each row of the table compares like with like.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch
from _machine import LOADED_NOTE, add_timing_arguments, check_load, machine_block, ratio, timed

from videorecap.config import RecapConfig
from videorecap.infer.decode import DecodeConfig, generate
from videorecap.model.aligner import QueryAligner
from videorecap.model.decoder import GatedGPT2
from videorecap.model.encoder import VideoEncoder
from videorecap.runtime import prepare_model, resolve_precision, set_threads

NO_EOS = -1  # argmax never returns it: every row generates every token


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--batch",
        type=_batches,
        default=[8],
        metavar="N[,N...]",
        help="samples decoded together; several sizes are timed one after the other (default 8)",
    )
    p.add_argument("--tokens", type=int, default=77, help="tokens generated per sample (default 77)")
    p.add_argument("--clips", type=int, default=2, help="clips per encoder forward (default 2)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: the CLI's default policy)")
    p.add_argument("--quick", action="store_true", help="batch 2, 12 tokens, 1 clip, 1 repeat: checks the script")
    p.add_argument("--append", type=Path, help="append the table to this markdown file")
    p.add_argument(
        "--recompute-repeats",
        type=int,
        default=None,
        metavar="N",
        help="timed runs of the recompute path (default: --repeats); at batch 32 and 77 tokens one run "
        "takes about 10 minutes on one core",
    )
    add_timing_arguments(p, repeats=3)
    args = p.parse_args(argv)
    if args.quick:
        args.batch, args.tokens, args.clips, args.repeats = [2], 12, 1, 1
    rec_repeats = args.recompute_repeats or args.repeats
    check_load(args.allow_load, "bench_decode")
    threads, _ = set_threads(args.threads)
    torch.manual_seed(0)
    head = machine_block(
        {
            "threads": f"torch {threads}",
            "repeats": f"{args.repeats} timed per path (recompute: {rec_repeats}), after 1 warm-up",
        }
    )
    cfg = RecapConfig.from_name("recap-base", level="clip")

    table = [head, ""]
    auto = resolve_precision("cpu", "auto")  # what `caption` runs in here by default
    with torch.inference_mode():
        dec = GatedGPT2(cfg.decoder).eval()
        for blk in dec.h:  # open the gates so the context matters, as in a trained model
            blk.xattn_gate.fill_(0.5)
            blk.xmlp_gate.fill_(0.5)
        # the same decoder in auto's precision (its kernels: fp32-onednn on CPUs where oneDNN is faster), if not fp32
        fast = prepare_model(copy.deepcopy(dec), auto) if auto != "fp32" else None
        bos = cfg.tokens.bos_token_id
        for batch in args.batch:
            ctx = torch.randn(batch, cfg.num_video_queries, cfg.decoder.context_width)

            def run(use_cache: bool, ctx: torch.Tensor = ctx, model: GatedGPT2 = dec) -> list[list[int]]:
                dc = DecodeConfig(use_cache=use_cache)
                return generate(model, ctx, bos_id=bos, eos_id=NO_EOS, max_new_tokens=args.tokens, cfg=dc)

            # the recompute path takes minutes at 77 tokens: it is not warmed up (the cached path warmed the model)
            cached = timed(lambda: run(True), args.repeats)
            if fast is not None:
                cached_auto = timed(lambda: run(True, model=fast), args.repeats)
            recompute = timed(lambda: run(False), rec_repeats, warmup=0)
            # fp32 greedy: the two paths are the same arithmetic per token, so they must choose the same tokens
            if cached.out != recompute.out:
                print(
                    f"error: batch {batch}: the cached and recomputing paths generated different tokens",
                    file=sys.stderr,
                )
                return 1
            assert all(len(row) == args.tokens for row in cached.out)
            n = batch * args.tokens
            table += [
                f"### Decoding, recap-base clip level: {batch} samples x {args.tokens} tokens (EOS suppressed)",
                "",
                "| path | total, median (min-max) | per generated token (total / samples x tokens) | per caption |",
                "| --- | --- | --- | --- |",
                f"| greedy, KV cache | {cached.fmt()} | {cached.fmt(1000 / n, 'ms', 2)} | "
                f"{cached.fmt(1000 / batch, 'ms', 1)} |",
                f"| greedy, recompute everything (the original's loop) | {recompute.fmt()} | "
                f"{recompute.fmt(1000 / n, 'ms', 2)} | {recompute.fmt(1000 / batch, 'ms', 1)} |",
            ]
            if fast is not None:
                same = sum(a == b for a, b in zip(cached_auto.out, recompute.out, strict=True))
                table.append(
                    f"| greedy, KV cache, `--precision auto` here ({auto}) | {cached_auto.fmt()} | "
                    f"{cached_auto.fmt(1000 / n, 'ms', 2)} | {cached_auto.fmt(1000 / batch, 'ms', 1)} |"
                )
            table += [
                "",
                f"**Batch {batch}: cached path {ratio(recompute, cached)} faster per token than the original's loop, "
                f"same run, same kernels** (goal: at least 20x at 77 tokens). Both paths generated identical greedy "
                "tokens (fp32; checked by the script).",
                "",
            ]
            if fast is not None:
                table += [
                    f"**Batch {batch}, as `caption` decodes by default here ({auto}): {ratio(recompute, cached_auto)} "
                    f"faster per token than the original's loop (fp32, PyTorch's default kernels), same run**; "
                    f"{same} of {batch} rows generated the same tokens as it.",
                    "",
                ]

        enc = VideoEncoder(cfg.encoder).eval()
        e = cfg.encoder
        clips = torch.randn(args.clips, 3, e.num_frames, e.image_size, e.image_size)
        t_enc = timed(lambda: enc(clips), args.repeats)
        aligner = QueryAligner(cfg.video_aligner).eval()
        queries = torch.randn(args.clips, cfg.num_video_queries, cfg.video_aligner.width)
        t_al = timed(lambda: aligner(queries, t_enc.out), args.repeats)
        if fast is not None:
            enc_auto, al_auto = (prepare_model(copy.deepcopy(m), auto) for m in (enc, aligner))
            t_enc_auto = timed(lambda: enc_auto(clips), args.repeats)
            t_al_auto = timed(lambda: al_auto(queries, t_enc.out), args.repeats)

    table += [
        f"| per clip ({args.clips} clips per forward) | median (min-max) |",
        "| --- | --- |",
        f"| TimeSformer-B forward, {e.num_frames} x {e.image_size} px -> {t_enc.out.shape[1]} tokens | "
        f"{t_enc.fmt(1000 / args.clips, 'ms', 0)} |",
        f"| video Q-Former, {cfg.num_video_queries} queries over those tokens | "
        f"{t_al.fmt(1000 / args.clips, 'ms', 0)} |",
    ]
    if fast is not None:
        table += [
            f"| the encoder in `--precision auto` here ({auto}) | {t_enc_auto.fmt(1000 / args.clips, 'ms', 0)} "
            f"({ratio(t_enc, t_enc_auto)}) |",
            f"| the video Q-Former in {auto} | {t_al_auto.fmt(1000 / args.clips, 'ms', 0)} "
            f"({ratio(t_al, t_al_auto)}) |",
        ]
    table += [
        "",
        LOADED_NOTE,
    ]
    text = "\n".join(table)
    print(text)
    if args.append:
        cmd = "python benchmarks/bench_decode.py " + " ".join(argv if argv is not None else sys.argv[1:])
        with open(args.append, "a", encoding="utf-8") as f:
            f.write(f"\n## `{cmd.strip()}`\n\n{text}\n")
    return 0


def _batches(text: str) -> list[int]:
    try:
        out = [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or N,N,...: {text!r}") from None
    if not out or min(out) < 1:
        raise argparse.ArgumentTypeError(f"batch sizes must be at least 1: {text!r}")
    return out


if __name__ == "__main__":
    sys.exit(main())
