"""How small an error the fidelity gate notices: fp32 with noise of a known size added to the encoder's output.

The gate (`videorecap.synth.precision_gate`) compares a path's captions with fp32's on held-out synthetic videos.
Here the path is fp32 itself with Gaussian noise of `eps` times the spread of the encoder's tokens added to them (a
stand-in for a lower precision's error, of a size one chooses), `--seeds` draws per size. For each size: the share of
identical clip captions and the CIDEr delta per level against plain fp32 (median and range over the seeds), and
whether the gate's caption thresholds pass. For scale: bf16's error on the encoder tokens, and int8's, are printed
from the same model (largest and typical |difference| relative to the spread).

    python benchmarks/bench_gate_noise.py                          # about 5 min on 2 idle cores
    python benchmarks/bench_gate_noise.py --videos 64 --eps 1e-4,1e-3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn as nn
from _machine import machine_block

from videorecap.config import LEVELS
from videorecap.pipeline import Captioner
from videorecap.runtime import set_threads
from videorecap.synth.model import bundled_model_dir
from videorecap.synth.precision_gate import (
    MAX_CIDER_DELTA,
    MIN_IDENTICAL,
    Comparison,
    compare_captions,
    gate_videos,
    teacher_forced,
    window_frames,
)


class NoisyEncoder(nn.Module):
    """The encoder, then `eps * std(tokens)` Gaussian noise on its tokens (from its own seeded generator)."""

    def __init__(self, encoder: nn.Module, eps: float, seed: int) -> None:
        super().__init__()
        self.encoder, self.eps = encoder, eps
        self.config = encoder.config  # the pipeline reads the encoder's sizes from here
        self.gen = torch.Generator().manual_seed(seed)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        tokens = self.encoder(video)
        noise = torch.randn(tokens.shape, generator=self.gen, dtype=tokens.dtype)
        return tokens + self.eps * tokens.std() * noise


def precision_errors(clips: list[tuple[Path, object]]) -> dict[str, tuple[float, float]]:
    """bf16's and int8's encoder tokens vs fp32's on one batch of the first video: (max, mean) |diff| / std."""
    out: dict[str, tuple[float, float]] = {}
    ref = None
    for prec in ("fp32", "bf16", "int8"):
        cap = Captioner.load(bundled_model_dir(), precision=prec)
        frames = window_frames(cap, clips[0][0], [(4.0 * k, 4.0 * (k + 1)) for k in range(8)])
        with torch.inference_mode(), cap.compute("cpu"):
            tokens = cap.model("clip").encoder(frames).float()
        if ref is None:
            ref = tokens
            continue
        diff = (tokens - ref).abs() / ref.std()
        out[prec] = (float(diff.max()), float(diff.mean()))
    return out


def near_ties(clips: list[tuple[Path, object]], gaps: tuple[float, ...] = (0.01, 0.05, 0.1)) -> dict[float, float]:
    """Share of fp32's clip captions with a step whose top two tokens are less than `gap` nats apart.

    Each caption is fed back to the model (`precision_gate.teacher_forced`, 32 windows at a time) and the gap between
    the two most likely next tokens is read at every position, the end of the caption included; a caption's smallest
    gap counts.
    """
    from videorecap.pipeline import CaptionOptions, caption_video

    cap = Captioner.load(bundled_model_dir(), precision="fp32")
    smallest: list[float] = []
    for path, _ in clips:
        rows = [(c.start, c.end, c.text) for c in caption_video(path, cap, CaptionOptions(batch_size=32)).clips]
        for k in range(0, len(rows), 32):
            logits, real = teacher_forced(cap, path, rows[k : k + 32])
            top = logits.log_softmax(-1).topk(2, dim=-1).values  # (rows, positions, 2)
            gap = (top[..., 0] - top[..., 1]).masked_fill(~real, float("inf"))
            smallest += gap.min(dim=1).values.tolist()
    return {g: sum(x < g for x in smallest) / len(smallest) for g in gaps}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--videos", type=int, default=16, help="held-out synthetic videos of 4 min (default 16)")
    p.add_argument("--eps", default="1e-6,1e-5,1e-4,1e-3,1e-2", help="noise sizes, relative to the tokens' spread")
    p.add_argument("--seeds", type=int, default=3, help="noise draws per size (default 3)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: the CLI's default policy)")
    args = p.parse_args(argv)
    threads, _ = set_threads(args.threads)
    sizes = [float(x) for x in args.eps.split(",") if x.strip()]
    rows: dict[float, list[Comparison]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        clips = gate_videos(Path(tmp), args.videos)
        ref = Captioner.load(bundled_model_dir(), precision="fp32")
        errors = precision_errors(clips)
        ties = near_ties(clips)
        for eps in sizes:
            for seed in range(args.seeds):
                cap = Captioner.load(bundled_model_dir(), precision="fp32")
                enc = cap.model("clip").encoder
                assert enc is not None
                cap.model("clip").encoder = NoisyEncoder(enc, eps, seed)  # type: ignore[assignment]
                rows.setdefault(eps, []).append(compare_captions(ref, cap, clips))
    print(f"## How small an error the fidelity gate notices (`python benchmarks/bench_gate_noise.py "
          f"{' '.join(argv if argv is not None else sys.argv[1:])}`)\n")  # fmt: skip
    print(machine_block({"threads": f"torch {threads}", "videos": f"{args.videos} of 4 min, seed 1000"}))
    print("\nEncoder tokens of the bundled recap-synth model, |difference from fp32| relative to their spread "
          "(8 windows of the first video):\n")  # fmt: skip
    for prec, (mx, mean) in errors.items():
        print(f"- {prec}: largest {mx:.2e}, mean {mean:.2e}")
    print("\nNear-ties: fp32's clip captions with a step whose two most likely tokens are less than GAP nats apart "
          "(teacher-forced):", ", ".join(f"{100 * share:.1f} % under {g}" for g, share in ties.items()))  # fmt: skip
    print(f"\n| noise (of the tokens' spread) | identical clip captions | CIDEr delta {' / '.join(LEVELS)} "
          f"(median, range over {args.seeds} draws) | gate's caption part passes |")  # fmt: skip
    print("|---|---|---|---|")
    for eps, cs in rows.items():
        same = [100 * c.identical_clips for c in cs]
        deltas = []
        for lv in LEVELS:
            ds = [c.cider_delta[lv] for c in cs if lv in c.cider_delta]
            deltas.append(f"{statistics.median(ds):+.2f} ({min(ds):+.2f} .. {max(ds):+.2f})")
        passes = sum(c.passed() for c in cs)
        print(f"| {eps:.0e} | {statistics.median(same):.1f} % ({min(same):.1f}-{max(same):.1f}) of {cs[0].clips} | "
              f"{' / '.join(deltas)} | {passes} of {len(cs)} |")  # fmt: skip
    print(f"\nThresholds: every level's |CIDEr delta| < {MAX_CIDER_DELTA}, identical clip captions >= "
          f"{100 * MIN_IDENTICAL:.0f} %.")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
