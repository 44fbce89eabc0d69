"""Decoding benchmark: KV-cached greedy generation vs the original's recompute-everything loop, and the encoder.

At `recap-base` sizes with random weights (speed does not depend on the values):

- the clip level's decoder (GPT-2 small with gated cross-attention in every layer) generates `--tokens` tokens
  greedily for `--batch` samples from a random (B, 256, 768) context (the video Q-Former's output; the encoder is
  skipped). EOS is suppressed (an id argmax never returns), so every row generates every token in both paths. Both
  paths must produce the same tokens; the script checks it;
- the TimeSformer forward (4 frames of 224 px, all 785 tokens out) and the video Q-Former (256 queries over those
  tokens), per clip.

Prints a markdown table; `--append benchmarks/RESULTS.md` also appends it with the command and the machine.

    python benchmarks/bench_decode.py --append benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import torch

from videorecap.config import RecapConfig
from videorecap.infer.decode import DecodeConfig, generate
from videorecap.model.aligner import QueryAligner
from videorecap.model.decoder import GatedGPT2
from videorecap.model.encoder import VideoEncoder

NO_EOS = -1  # argmax never returns it: every row generates every token


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    """Median wall time of `repeats` calls (after none: the first call is timed too; each call is long)."""
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def machine() -> list[str]:
    lines = []
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines()
        keep = ("Architecture", "CPU(s)", "Model name", "Thread(s) per core", "Core(s) per socket", "Socket(s)")
        lines += [" ".join(line.split()) for line in lscpu if line.split(":")[0].strip() in keep]
    except (OSError, subprocess.CalledProcessError):
        lines.append(platform.processor() or platform.machine())
    lines.append(f"torch {torch.__version__}, {torch.get_num_threads()} threads, Python {platform.python_version()}")
    if hasattr(os, "getloadavg"):
        lines.append("load average (1/5/15 min) at the start: " + " / ".join(f"{x:.2f}" for x in os.getloadavg()))
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=8, help="samples decoded together (default 8)")
    p.add_argument("--tokens", type=int, default=77, help="tokens generated per sample (default 77)")
    p.add_argument("--repeats", type=int, default=1, help="timed runs of each path; the median is reported")
    p.add_argument("--clips", type=int, default=2, help="clips per encoder forward (default 2)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--append", type=Path, help="append the table to this markdown file")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    info = machine()
    cfg = RecapConfig.from_name("recap-base", level="clip")

    with torch.inference_mode():
        dec = GatedGPT2(cfg.decoder).eval()
        for blk in dec.h:  # open the gates so the context matters, as in a trained model
            blk.xattn_gate.fill_(0.5)
            blk.xmlp_gate.fill_(0.5)
        ctx = torch.randn(args.batch, cfg.num_video_queries, cfg.decoder.context_width)
        bos = cfg.tokens.bos_token_id

        def run(use_cache: bool) -> list[list[int]]:
            dc = DecodeConfig(use_cache=use_cache)
            return generate(dec, ctx, bos_id=bos, eos_id=NO_EOS, max_new_tokens=args.tokens, cfg=dc)

        t_cached, out_cached = timed(lambda: run(True), args.repeats)
        t_recompute, out_recompute = timed(lambda: run(False), args.repeats)
        if out_cached != out_recompute:
            print("error: the cached and recomputing paths generated different tokens", file=sys.stderr)
            return 1
        assert all(len(row) == args.tokens for row in out_cached)

        enc = VideoEncoder(cfg.encoder).eval()
        e = cfg.encoder
        clips = torch.randn(args.clips, 3, e.num_frames, e.image_size, e.image_size)
        t_enc, tokens = timed(lambda: enc(clips), args.repeats)
        aligner = QueryAligner(cfg.video_aligner).eval()
        queries = torch.randn(args.clips, cfg.num_video_queries, cfg.video_aligner.width)
        t_al, _ = timed(lambda: aligner(queries, tokens), args.repeats)  # type: ignore[arg-type]

    n = args.batch * args.tokens
    rows = [
        ("greedy, KV cache", f"{t_cached:.2f} s", f"{1000 * t_cached / n:.1f} ms", "1.0x"),
        (
            "greedy, recompute everything (original)",
            f"{t_recompute:.2f} s",
            f"{1000 * t_recompute / n:.1f} ms",
            f"{t_recompute / t_cached:.1f}x slower",
        ),
    ]
    table = [
        f"### Decoding, recap-base clip level: {args.batch} samples x {args.tokens} tokens (EOS suppressed)",
        "",
        "| path | total | per generated token (total / samples x tokens) | vs cached |",
        "| --- | --- | --- | --- |",
        *[f"| {' | '.join(r)} |" for r in rows],
        "",
        f"**Cached path {t_recompute / t_cached:.1f}x faster than recompute** (target: at least 5x). Both paths "
        "generated identical tokens.",
        "",
        f"| per clip ({args.clips} clips per forward) | time |",
        "| --- | --- |",
        f"| TimeSformer-B forward, {e.num_frames} x {e.image_size} px -> {tokens.shape[1]} tokens | "  # type: ignore[union-attr]
        f"{1000 * t_enc / args.clips:.0f} ms |",
        f"| video Q-Former, {cfg.num_video_queries} queries over those tokens | {1000 * t_al / args.clips:.0f} ms |",
    ]
    text = "\n".join(table)
    print(text)
    if args.append:
        cmd = "python benchmarks/bench_decode.py " + " ".join(argv if argv is not None else sys.argv[1:])
        block = [
            "",
            f"## {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}: `{cmd.strip()}`",
            "",
            "Machine:",
            "",
            *[f"- {line}" for line in info],
            f"- timed runs per path: {args.repeats} (median)",
            "",
            text,
            "",
        ]
        with open(args.append, "a", encoding="utf-8") as f:
            f.write("\n".join(block))
    return 0


if __name__ == "__main__":
    sys.exit(main())
