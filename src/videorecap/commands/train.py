"""Train Video ReCap (or ReCap-U) from a recipe: the whole curriculum in one command.

A recipe (YAML, see configs/ and docs/training.md) names the data, the model and the stages. For Video ReCap the
command runs: the clip stage; clip captions of every train/val video written into a copy of the segment files; the
segment stage (initialised from the clip model); segment descriptions written into a copy of the video files; the
video stage. Every step is skipped when its outputs are complete and a stage resumes from its last checkpoint, so
an interrupted run started again with the same command continues where it stopped.

Multi-GPU / multi-process: `torchrun --nproc_per_node=N -m videorecap train recipe.yaml`.

examples:
  videorecap train configs/recap-tiny.yaml --data-root data/synth -o runs/tiny
  videorecap train configs/recap-base.yaml --stage segment
  videorecap train recipe.yaml --list
"""

from __future__ import annotations

import argparse
import sys

from videorecap.commands._options import (
    add_device_argument,
    add_output_argument,
    add_wait_argument,
    positive_int,
    prepare_output_dir,
)
from videorecap.errors import InputError

HELP = "train the models from a recipe (the whole curriculum, resumable)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", metavar="RECIPE", help="recipe YAML file (see configs/)")
    add_output_argument(parser, "the run folder (default: the recipe's output_dir)", old_names=("--output-dir",))
    parser.add_argument("--data-root", default=None, help="dataset folder (default: the recipe's data.root)")
    parser.add_argument(
        "--stage",
        default=None,
        help="run only this step: a stage name (clip, segment, video, or a unified phase) or captions, "
        "descriptions, features",
    )
    parser.add_argument(
        "--max-steps", type=positive_int, default=None, help="stop every stage after this many iterations"
    )
    add_device_argument(parser, "the recipe's device, else a GPU when there is one")
    parser.add_argument("--list", action="store_true", help="print the recipe's steps and their state, then exit")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_wait_argument(parser)


def run(args: argparse.Namespace) -> int:

    from videorecap import distributed
    from videorecap.lock import output_lock
    from videorecap.train.recipe import Curriculum, load_recipe, recipe_from_dict

    output = None if args.output is None else str(args.output)  # the recipe holds it as text, as in its YAML
    recipe = load_recipe(args.recipe, output_dir=output, device=args.device)
    if args.data_root is not None:
        d = recipe.to_dict()
        d["data"]["root"] = args.data_root
        recipe = recipe_from_dict(d, args.recipe)
    cur = Curriculum(recipe, progress=not args.no_progress, max_steps=args.max_steps)
    main = distributed.is_main()
    if args.stage is not None and args.stage not in (names := [s.name for s in cur.steps]):
        raise InputError(f"--stage {args.stage}: no step of that name in this recipe; its steps are {', '.join(names)}")
    if args.list:
        for step in cur.steps:
            state = "complete" if cur.is_complete(step) else "to do"
            print(f"{step.name:<14} {step.kind:<13} {state}")
        return 0
    # before the first step: a bad folder is one line, at once
    prepare_output_dir(cur.out, "-o" if args.output is not None else "output_dir")
    with output_lock(cur.out, wait=args.wait):  # rank 0 holds it for the job; leftovers of a killed run go
        result = cur.run(args.stage)
    if main:
        for name, state in result.items():
            print(f"{name}: {state}", file=sys.stderr)
        print(f"outputs in {cur.out}", file=sys.stderr)
    return 0
