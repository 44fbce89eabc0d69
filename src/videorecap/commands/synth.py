"""Render the synthetic kitchen world: videos plus ground truth at three levels, in the Ego4D-HCap formats.

No real dataset or weights are needed to see the whole pipeline learn: `synth make` renders videos of a
top-down kitchen (C makes tea, bakes a cake, does the laundry ...: 24 activities in three homes, 302 words) as
H.264 mp4, and writes clip captions, segment descriptions and video summaries as clips_{split}.pkl,
segments_{split}.pkl and videos_{split}.json, which every other command reads unchanged. The same seed gives
the same files. See docs/synth.md.

`synth questions DATA` writes EgoSchema-style five-choice questions about every video of a dataset, answered by
its scripts (questions_{split}.json, answers_{split}.json beside the data), for `videorecap ask --questions`.

examples:
  videorecap synth make -o data/synth --videos 50 --minutes 4 --seed 0
  videorecap synth make -o tiny --videos 3 --minutes 1 --segment-seconds 20
  videorecap synth questions data/synth --splits test
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from videorecap.commands._options import (
    add_output_argument,
    at_most,
    positive_float,
    positive_int,
    prepare_output_dir,
    seed,
)
from videorecap.errors import InputError
from videorecap.synth import make

HELP = "render the synthetic kitchen dataset (videos + Ego4D-HCap ground truth)"


def frame_size(text: str) -> int:
    """--size: an even number of pixels (H.264's 4:2:0) from 32 to `make.MAX_SIZE` (a larger frame runs out of
    memory part-way through)."""
    value = positive_int(text)
    if not 32 <= value <= make.MAX_SIZE or value % 2:
        raise argparse.ArgumentTypeError(f"must be an even number of pixels from 32 to {make.MAX_SIZE}, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="synth_action", metavar="ACTION", required=True)
    p = sub.add_parser(
        "make",
        help="render a dataset into a folder",
        description="Render videos/{vid}.mp4 and clips/segments/videos ground truth for train, val and test.",
    )
    add_output_argument(p, "videos/ and the ground truth files", required=True, old_names=("--out",))
    p.add_argument(
        "--videos",
        type=positive_int,
        default=10,
        help="total videos; val and test get 10%% each, at least 1 (default: %(default)s)",
    )
    p.add_argument(
        "--minutes",
        type=at_most(positive_float, make.MAX_MINUTES),
        default=make.DEFAULT_MINUTES,
        help=f"length of each video, at most {make.MAX_MINUTES:g} (default: %(default)s)",
    )
    p.add_argument("--seed", type=seed, default=0, help="dataset seed (default: %(default)s)")
    p.add_argument(
        "--homes",
        default="1",
        metavar="N|LO-HI",
        help="how many homes each video visits, one after the other in equal parts (1-3), or a range such as 1-3 "
        "(video k of a split visits LO + k mod (HI-LO+1)): a long day across homes, whose later activities occur "
        "nowhere before them (default: %(default)s)",
    )
    p.add_argument(
        "--clip-seconds",
        type=positive_float,
        default=make.DEFAULT_CLIP_SECONDS,
        help="clip window (default: %(default)s)",
    )
    p.add_argument(
        "--segment-seconds",
        type=positive_float,
        default=make.DEFAULT_SEGMENT_SECONDS,
        help="segment window (default: %(default)s)",
    )
    p.add_argument(
        "--size",
        type=frame_size,
        default=make.DEFAULT_SIZE,
        help=f"frame side in pixels, even, 32 to {make.MAX_SIZE} (default: %(default)s)",
    )
    p.add_argument(
        "--fps",
        type=at_most(positive_float, make.MAX_FPS),
        default=make.DEFAULT_FPS,
        help=f"frames per second, at most {make.MAX_FPS:g} (default: %(default)s)",
    )
    p.add_argument(
        "--splits",
        default=",".join(make.SPLITS),
        help="comma-separated split names (default: %(default)s)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    q = sub.add_parser(
        "questions",
        help="write five-choice questions about a dataset's videos",
        description="Write questions_{split}.json (EgoSchema's format, plus each question's video and kind) and "
        "answers_{split}.json ({q_uid: option number}) beside a dataset made by `synth make`, from its scripts: "
        "the order of activities, objects used, what came right before/after, how many times.",
    )
    q.add_argument("data", type=Path, metavar="DATA", help="a folder written by `videorecap synth make`")
    q.add_argument("--splits", default=None, help="comma-separated splits (default: every split of the dataset)")
    q.add_argument("--seed", type=seed, default=0, help="question seed (default: %(default)s)")


def _validate(args: argparse.Namespace) -> list[str]:
    splits = [s.strip() for s in args.splits.split(",") if s.strip()]
    problems = []
    if args.videos < len(splits):
        problems.append(f"--videos {args.videos} is fewer than the {len(splits)} splits ({', '.join(splits)})")
    if not args.segment_seconds >= args.clip_seconds:
        problems.append(f"--segment-seconds ({args.segment_seconds}) must be >= --clip-seconds ({args.clip_seconds})")
    try:
        lo, _, hi = args.homes.partition("-")
        args.homes_range = make.homes_range((int(lo), int(hi or lo)))
    except ValueError:
        problems.append(f"--homes must be a count from 1 to {len(make.HOMES)} or a range such as 1-3, "
                        f"not {args.homes!r}")  # fmt: skip
    else:
        if args.minutes * 60 / args.homes_range[1] < args.clip_seconds:
            problems.append(f"--minutes {args.minutes:g} is too short for {args.homes_range[1]} homes")
    if not splits or len(set(splits)) != len(splits) or not all(s.isidentifier() for s in splits):
        problems.append(f"--splits must be distinct names like train,val,test, not {args.splits!r}")
    if problems:
        raise InputError("; ".join(problems))
    return splits


def run(args: argparse.Namespace) -> int:
    if args.synth_action == "questions":
        return _questions(args)
    splits = _validate(args)
    prepare_output_dir(args.output)
    t0 = time.perf_counter()
    world = make.make_dataset(
        args.output,
        videos=args.videos,
        minutes=args.minutes,
        seed=args.seed,
        clip_seconds=args.clip_seconds,
        segment_seconds=args.segment_seconds,
        size=args.size,
        fps=args.fps,
        splits=splits,
        homes=args.homes_range,
        progress=not args.no_progress,
    )
    dt = time.perf_counter() - t0
    c = world["counts"]
    video_seconds = c["videos"] * world["minutes"] * 60
    per = ", ".join(f"{s} {n}" for s, n in c["per_split"].items())
    print(f"wrote {c['videos']} videos ({per}) to {args.output}")
    print(
        f"  {c['clips']} clip captions ({world['windows']['clip_seconds']:g} s), {c['segments']} segment "
        f"descriptions ({world['windows']['segment_seconds']:g} s), {c['videos']} summaries; "
        f"vocabulary {world['vocabulary_size']} words"
    )
    print(
        f"  {args.size}x{args.size} px at {args.fps:g} fps, seed {args.seed}; rendered {video_seconds / 60:.1f} min "
        f"of video in {dt:.1f} s ({video_seconds / max(dt, 1e-9):.0f}x real time)"
    )
    return 0


def _questions(args: argparse.Namespace) -> int:
    from videorecap.synth.questions import write_questions

    if not args.data.is_dir():
        raise InputError(f"{args.data}: no such folder; give a dataset made by `videorecap synth make`")
    splits = [x.strip() for x in args.splits.split(",") if x.strip()] if args.splits else None
    for split, (qpath, apath, n) in write_questions(args.data, splits=splits, seed=args.seed).items():
        print(f"{split}: {n} questions -> {qpath} (answers: {apath.name})")
    return 0
