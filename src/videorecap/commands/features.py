"""Extract the video encoder's CLS feature of every 4-s window of each video.

For each video `ID.ext` this writes `OUT/ID.npy`, float32, shape `(ceil(duration / 4), width)`: row i is the window
[4i, 4i + 4), the layout the segment and video levels read. The windows are those of `videorecap caption`: a last
window shorter than --min-tail-seconds (1 s) joins the previous one (one row fewer; 0 keeps the original's
layout). `--all-tokens` also writes `OUT/ID.tokens.npy` (every token of every window). `--segments segments.pkl`
instead writes the original's per-segment files `OUT/SID.npy` (at least 45 windows per segment), reading
`INPUT/VID.mp4`.

Inputs are video files, folders (their video files; other files are ignored; subfolders with --recursive), glob
patterns and .txt lists of paths.
Finished outputs are skipped (a damaged one is recomputed, with a warning), so an interrupted run can simply be
started again; long videos are checkpointed in chunks and resume where they stopped (chunks made with another
encoder are discarded). A video that cannot be read is reported in one line and the others go on; the exit code is
1 if any video failed (2 is a mistake in the options, found before any video is read).

Under `torchrun --nproc_per_node=N videorecap features ...` every process takes its own share of the videos.
With `--ray [ADDRESS]` the same job runs on a Ray cluster as a Ray Data pipeline (decoding on CPU workers, the
encoder in one actor per GPU; the same files, skipped and resumed the same way): see docs/ray.md.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path

from videorecap.commands._options import (
    add_compile_argument,
    add_device_argument,
    add_hw_decode_argument,
    add_min_tail_argument,
    add_output_argument,
    add_partial_argument,
    add_precision_argument,
    add_ray_arguments,
    add_recursive_argument,
    add_wait_argument,
    apply_hw_decode,
    check_compile_arguments,
    connect_ray,
    positive_float,
    positive_int,
    prepare_compiled_encoder,
    prepare_output_dir,
    window_seconds,
)

HELP = "extract 4-s window features of videos (resumable, multi-GPU with torchrun, a cluster with --ray)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="VIDEO_OR_DIR_OR_LIST", help="videos, folders or .txt lists")
    add_output_argument(parser, "the .npy files", required=True)
    add_recursive_argument(parser)
    enc = parser.add_mutually_exclusive_group(required=True)
    enc.add_argument(
        "--encoder", type=Path, metavar="MODEL", help="checkpoint folder (full model or encoder only), or recap-synth"
    )
    enc.add_argument(
        "--random-encoder",
        metavar="PRESET",
        help="a randomly initialised encoder of a preset (e.g. recap-tiny; seeded, the same in every run): for "
        "testing the pipeline only",
    )
    parser.add_argument("--clip-seconds", type=window_seconds, default=4.0, help="window length in seconds (default 4)")
    add_min_tail_argument(parser)
    parser.add_argument("--batch-size", type=positive_int, default=8, help="windows per encoder batch (default 8)")
    parser.add_argument("--all-tokens", action="store_true", help="also write ID.tokens.npy with every token")
    parser.add_argument(
        "--tokens-dtype", choices=("float16", "float32"), default="float16", help="dtype of ID.tokens.npy"
    )
    parser.add_argument(
        "--segments",
        type=Path,
        metavar="FILE",
        help="segments_*.pkl/json: write per-segment SID.npy (>= 45 windows each); INPUT is the video folder",
    )
    parser.add_argument("--min-segment-windows", type=positive_int, default=45, help="with --segments (default 45)")
    parser.add_argument("--chunk-dir", type=Path, help="where partial results of long videos go (default OUT/.chunks)")
    parser.add_argument(
        "--chunk-windows", type=positive_int, default=225, help="windows per checkpoint chunk (default 225 = 15 min)"
    )
    add_device_argument(parser, "this process's GPU when there is one, else cpu")
    add_hw_decode_argument(parser)
    add_precision_argument(parser, extra=("fp16",))
    add_compile_argument(parser)
    parser.add_argument(
        "--grid-fps",
        type=positive_float,
        default=None,
        help="sample on the original's fixed frame-index grid (30 reproduces it exactly); default: by timestamp",
    )
    add_partial_argument(parser, " (--keep-partial is the old spelling)")
    parser.add_argument("--overwrite", action="store_true", help="recompute outputs that already exist")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_wait_argument(parser)
    add_ray_arguments(parser)


def _load_encoder(args: argparse.Namespace):  # noqa: ANN202 - returns a VideoEncoder
    if args.random_encoder:
        from videorecap.config import RecapConfig
        from videorecap.model.encoder import VideoEncoder

        try:
            cfg = RecapConfig.from_name(args.random_encoder)
        except ValueError as e:
            from videorecap.errors import InputError

            raise InputError(f"--random-encoder: {e}") from None
        import torch

        # seeded: every run (and every torchrun rank) gets the same weights, so a rerun reuses its outputs
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return VideoEncoder(cfg.encoder)
    from videorecap.checkpoint import load_encoder

    return load_encoder(_encoder_folder(args))


def _encoder_folder(args: argparse.Namespace) -> Path:
    """The checkpoint folder `--encoder` names (a bundled model by name: its clip level holds the encoder)."""
    from videorecap.pipeline import bundled_models

    path = args.encoder
    if not path.exists() and str(path) in bundled_models():
        path = bundled_models()[str(path)] / "clip"
    return path


def _encoder_on(args: argparse.Namespace, device: str, prepare_compiled: bool = True):  # noqa: ANN202
    """The encoder of `args` ready to run on `device` (this process's, or a Ray actor's): in `--precision` as resolved
    for that device and, with `--compile`, compiled (loaded from the cache, or compiled with a line saying so; with
    `prepare_compiled=False` only at its first batch, which a Ray driver's encoder, used for fingerprints, never
    runs)."""
    from videorecap.compiled import compile_for_inference
    from videorecap.runtime import prepare_model, resolve_precision

    encoder = _load_encoder(args).to(device).eval()
    precision = resolve_precision(device, args.precision)
    prepare_model(encoder, precision)
    if args.compile:
        encoder = compile_for_inference(encoder, precision)
        if prepare_compiled:
            prepare_compiled_encoder(encoder, "features")
    return encoder


def run(args: argparse.Namespace) -> int:
    from videorecap import distributed
    from videorecap.errors import InputError
    from videorecap.lock import output_lock
    from videorecap.video.features import JobResult, run_jobs, segment_jobs, video_jobs
    from videorecap.video.io import collect_videos

    if args.segments is not None:
        if len(args.inputs) != 1 or not Path(args.inputs[0]).is_dir():
            raise InputError("with --segments, give exactly one input: the folder holding VID.mp4 files")
        jobs = segment_jobs(args.segments, args.inputs[0])
    else:
        jobs = video_jobs(collect_videos(args.inputs, recursive=args.recursive))
    device = args.device or distributed.default_device()
    apply_hw_decode(args, device)
    check_compile_arguments(args, device)
    if not args.random_encoder:
        from videorecap.checkpoint import encoder_config_at

        encoder_config_at(_encoder_folder(args))  # a wrong --encoder: one line before the output folder is made
    prepare_output_dir(args.output)
    if args.chunk_dir is not None:  # before any work: each video would fail on it otherwise
        prepare_output_dir(args.chunk_dir, "--chunk-dir")
    jobs.sort(key=lambda j: j.key)
    ray = connect_ray(args)  # before the encoder loads: a missing Ray or a wrong address is found first
    rank, world = distributed.rank_world()
    mine = distributed.shard(jobs, rank, world)
    tag = f"[rank {rank}/{world}] " if world > 1 else ""

    if ray is not None:
        from videorecap import raydata

        place = raydata.placement(args.device, args.ray_actors)
        tag = f"[ray: {place.actors} {place.device} actor{'s' if place.actors > 1 else ''} at most] "
        device = "cpu"  # the driver's encoder only gives the fingerprints; the actors hold their own
    from videorecap.runtime import resolve_precision, set_decode_threads_for

    set_decode_threads_for(device)  # a GPU run lets FFmpeg use the cores
    encoder = _encoder_on(args, device, prepare_compiled=ray is None)
    precision = resolve_precision(device, args.precision)
    chunk_dir = args.chunk_dir if args.chunk_dir is not None else args.output / ".chunks"

    def report(res: JobResult) -> None:
        if res.status == "failed":
            print(f"videorecap features: error: {res.error}", file=sys.stderr)

    if ray is not None:
        runner = functools.partial(raydata.run_features, loader=functools.partial(_encoder_on, args), place=place)
    else:
        runner = functools.partial(run_jobs, progress=not args.no_progress, device=device)
    with output_lock(args.output, wait=args.wait):  # one job per folder; leftovers of a killed run are cleaned
        t0 = time.perf_counter()
        results = runner(
            mine,
            args.output,
            encoder,
            on_result=report,
            clip_seconds=args.clip_seconds,
            min_tail_seconds=args.min_tail_seconds,
            min_segment_windows=args.min_segment_windows,
            batch_size=args.batch_size,
            all_tokens=args.all_tokens,
            tokens_dtype=args.tokens_dtype,
            chunk_dir=chunk_dir,
            chunk_windows=args.chunk_windows,
            # Ray's actors resolve `auto` for their own device (a GPU actor's auto is not the driver CPU's)
            precision=precision if ray is None else args.precision,
            grid_fps=args.grid_fps,
            allow_partial=args.allow_partial,
            overwrite=args.overwrite,
        )
    seconds = time.perf_counter() - t0
    done = [r for r in results if r.status == "done"]
    skipped = [r for r in results if r.status == "skipped"]
    failed = [r for r in results if r.status == "failed"]
    clips = sum(r.windows for r in done)
    rate = clips / seconds if seconds > 0 else 0.0
    print(
        f"{tag}{len(done)} done, {len(skipped)} skipped (already there), {len(failed)} failed of {len(mine)} "
        f"| {clips} clips in {seconds:.1f} s ({rate:.1f} clips/s) -> {args.output}"
    )
    return 1 if failed else 0
