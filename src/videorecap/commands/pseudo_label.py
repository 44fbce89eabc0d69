"""Write LLM pseudo-labels for the unlabelled part of a dataset, in the released files' formats.

DATA is the folder of the split's annotation files (clips_{split}.pkl, segments_{split}.pkl, videos_{split}.json).
`--level segment`: every segment window that no labelled segment covers gets a description from its clip captions
(the clip file's, or the --clip-model's for a video with none) -> OUT/segments_{split}_pseudo.pkl. `--level video`:
every video without a summary gets one from its segment descriptions (the labelled ones and OUT's pseudo ones; run
--level segment first) -> OUT/videos_{split}_pseudo.json. Each row records its provenance (backend, model, prompt
hash). A recipe mixes them into training with `data: {pseudo_annotations: OUT}` (docs/llm.md).

The language model is a server (--llm URL, any OpenAI-compatible one) or the own text model (--text-model DIR).
Answers are cached in OUT/.cache/llm as they arrive: a run that stopped (exit 1: some requests failed) continues
where it stopped when started again.

examples:
  videorecap pseudo-label data/synth --level segment --text-model runs/text/text/final -o labels/
  videorecap pseudo-label data/synth --level video --text-model runs/text/text/final -o labels/
  videorecap pseudo-label data/ego4d --level segment --llm http://127.0.0.1:8000/v1 --llm-model qwen2.5-7b -o labels/
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from videorecap.commands._options import (
    add_device_argument,
    add_llm_arguments,
    add_output_argument,
    add_wait_argument,
    check_llm_arguments,
    open_llm_backend,
    positive_int,
    prepare_output_dir,
    window_seconds,
)

HELP = "write LLM pseudo-labels (segment descriptions, video summaries) for unlabelled data"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", metavar="DATA", type=Path, help="folder of the split's annotation files")
    parser.add_argument("--level", required=True, choices=("segment", "video"), help="what to pseudo-label")
    add_output_argument(parser, "segments_{split}_pseudo.pkl / videos_{split}_pseudo.json, .cache/", required=True)
    add_llm_arguments(parser)
    parser.add_argument(
        "--prompt",
        type=Path,
        default=None,
        metavar="FILE",
        help="prompt file (default: summarize.txt for the own text model, else segment.txt / video.txt; docs/llm.md)",
    )
    parser.add_argument("--split", default="train", help="split of the annotation files (default: train)")
    parser.add_argument(
        "--answer-tokens", type=positive_int, default=77, metavar="N", help="max tokens of an answer (default: 77)"
    )
    parser.add_argument(
        "--segment-seconds",
        type=window_seconds,
        default=None,
        metavar="S",
        help="segment window length (default: the labelled segments' median length, else 180)",
    )
    g = parser.add_argument_group("videos without clip captions (segment level)")
    g.add_argument("--clip-model", default=None, metavar="MODEL", help="clip model that captions their clips")
    g.add_argument("--videos", type=Path, default=None, metavar="DIR", help="folder of the videos {vid}.mp4")
    g.add_argument("--clip-features", type=Path, default=None, metavar="DIR", help="or of their clip features")
    g.add_argument(
        "--features", type=Path, default=None, metavar="DIR", help="folder of {vid}.npy: also lists the split's videos"
    )
    g.add_argument("--batch-size", type=positive_int, default=16, metavar="N", help="clips per captioning batch")
    add_device_argument(parser, "cpu")
    add_wait_argument(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from videorecap.llm.prompts import load_prompt
    from videorecap.lock import output_lock
    from videorecap.train.pseudo_label import check_level_options, pseudo_label, read_split

    check_level_options(args.level, args.clip_model, args.clip_features)  # before the text model loads
    check_llm_arguments(args)
    prompt = load_prompt(args.prompt) if args.prompt is not None else None
    # the split is read before the output folder is made: a wrong folder or split leaves nothing behind
    inputs = read_split(args.data, args.split, features=args.features, videos=args.videos,
                        clip_features=args.clip_features)  # fmt: skip
    out = prepare_output_dir(args.output)
    device = args.device or "cpu"
    with output_lock(out, wait=args.wait):  # one job per folder: two runs would write the same files
        backend = open_llm_backend(args, out / ".cache" / "llm", device=device)
        result = pseudo_label(
            args.data,
            args.level,
            backend,
            out,
            split=args.split,
            prompt=prompt,
            max_tokens=args.answer_tokens,
            segment_seconds=args.segment_seconds,
            clip_model=args.clip_model,
            features=args.features,
            clip_features=args.clip_features,
            videos=args.videos,
            batch_size=args.batch_size,
            device=device,
            progress=not args.no_progress,
            inputs=inputs,
        )
    for line in result.skipped:
        print(f"skipped {line}", file=sys.stderr)
    print(f"{result.rows} pseudo-labelled {args.level} rows in {result.path}", file=sys.stderr)
    return 0
