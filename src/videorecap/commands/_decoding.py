"""Flags of the commands that generate text: the decoding flags (`caption`, `evaluate`, `live`), and the options of
the hierarchy that `caption` and `live` share (`hierarchy_options`)."""

from __future__ import annotations

import argparse
from typing import Any

from videorecap.errors import InputError
from videorecap.infer.decoding_config import DecodeConfig


def add_decoding_arguments(group: argparse._ArgumentGroup) -> None:
    """--strategy, --num-beams, --length-penalty, --temperature, --top-k, --top-p, --seed, --original-lengths.

    The defaults are DecodeConfig's: the option class is the one place they are written."""
    from videorecap.commands._options import (
        field_default,
        finite_float,
        nonnegative_int,
        positive_float,
        positive_int,
        seed,
        unit_fraction,
    )

    def default(name: str) -> object:
        return field_default(DecodeConfig, name)

    group.add_argument("--strategy", choices=["greedy", "beam", "sample"], default=default("strategy"),
                       help=f"(default: {default('strategy')})")  # fmt: skip
    group.add_argument("--num-beams", type=positive_int, default=default("num_beams"),
                       help=f"beam search width (default: {default('num_beams')})")  # fmt: skip
    group.add_argument("--length-penalty", type=finite_float, default=default("length_penalty"),
                       help=f"beam search length penalty (default: {default('length_penalty')})")  # fmt: skip
    group.add_argument("--temperature", type=positive_float, default=default("temperature"),
                       help=f"sampling temperature (default: {default('temperature')})")  # fmt: skip
    group.add_argument("--top-k", type=nonnegative_int, default=default("top_k"),
                       help=f"sampling: keep the k most likely tokens (0 = all; default: {default('top_k')})",
                       )  # fmt: skip
    group.add_argument("--top-p", type=unit_fraction, default=default("top_p"),
                       help=f"sampling: nucleus mass (default: {default('top_p')})")  # fmt: skip
    group.add_argument("--seed", type=seed, default=default("seed"), help="sampling seed (reproducible sampling)")
    group.add_argument(
        "--original-lengths",
        action="store_true",
        help="caption lengths as the released code cuts them: at most N-1 steps for --max-tokens N, and the last "
        "word of a caption that ends last in its batch or never ends is dropped (greedy or sample only; "
        "default: keep every generated token)",
    )


def decode_config(
    args: argparse.Namespace, max_new_tokens: int | None = None, original_lengths: bool = False
) -> DecodeConfig:
    """The DecodeConfig of the parsed flags; an impossible value is a one-line InputError.

    `original_lengths` turns on the original's caption lengths where the strategy has them (for
    `evaluate --original-settings`, whose explicit `--strategy beam` wins and keeps full lengths).
    """
    if args.original_lengths and args.strategy == "beam":
        raise InputError(
            "--original-lengths reproduces the original code, which has no beam search; use --strategy greedy "
            "(or sample), or leave out --original-lengths"
        )
    original = args.original_lengths or (original_lengths and args.strategy != "beam")
    try:
        return DecodeConfig(
            strategy=args.strategy,
            num_beams=args.num_beams,
            length_penalty=args.length_penalty,
            temperature=args.temperature,
            top_k=args.top_k,
            top_p=args.top_p,
            seed=args.seed,
            max_new_tokens=max_new_tokens,
            lengths="original" if original else "full",
        )
    except ValueError as e:
        raise InputError(str(e)) from None


def hierarchy_options(args: argparse.Namespace, device: str) -> dict[str, Any]:
    """The `infer.options.HierarchyOptions` fields of the flags that `caption` and `live` share, as keyword
    arguments of their option classes (`CaptionOptions`, `LiveOptions`).

    `--max-tokens` is an override of the models' level I/O lengths, which the run resolves
    (`levelio.resolve_max_new_tokens`); one count for every level goes into the decoding settings, as it always has
    (the cache keys of `caption` keep)."""
    per_level = args.max_tokens or {}
    if len(per_level) == 3 and len(set(per_level.values())) == 1:
        decode, per_level = decode_config(args, max_new_tokens=next(iter(per_level.values()))), {}
    else:
        decode = decode_config(args)
    return {
        "levels": args.levels,
        "clip_seconds": args.clip_seconds,
        "segment_seconds": args.segment_seconds,
        "min_tail_seconds": args.min_tail_seconds,
        "decode": decode,
        "max_new_tokens": per_level,
        "num_features": args.num_features or {},
        "summary_text": "first" if args.original_settings else "spread",
        "batch_size": args.batch_size,
        "device": device,
    }
