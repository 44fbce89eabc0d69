"""Caption videos at three levels: a caption for every clip window (4 s), a description for every segment window
(the model's segment window: 180 s for Video ReCap, 40 s for the bundled recap-synth), and one summary.

For each video, writes into OUT_DIR/<video id>/: captions.json (every level, with timestamps), clips.srt and
clips.vtt (subtitles), segments.vtt (chapters), summary.md, and index.html (a page with the video and a clickable
timeline; the captions are embedded, so it works opened from disk). With --web-video it also writes
video.web.mp4, an H.264/AAC copy that every browser plays (for HEVC, Matroska and other files a browser cannot
play), and the page uses it. Intermediate results are cached in OUT_DIR/<video id>/.cache/, so an interrupted run
started again continues where it stopped; a finished video is skipped.

Windows: a last clip window shorter than --min-tail-seconds (1 s) joins the previous one (a 4.004-s video gets one
4.004-s window, not a second one of 4 ms), and a last segment shorter than one clip window joins the previous segment.

Long videos: the video level reads at most 512 tokens of segment descriptions (the model's text limit, about 45 min
of 180-s descriptions). When they do not all fit, it reads as many as fit, chosen evenly across the whole video (the
first and the last always), and captions.json records which (summary_input); --original-settings keeps the
original's cut after the first 512 tokens, so the summary never reads the rest of a longer video.

Several videos: each one's clip windows are encoded on their own, but the decoder takes rows of several videos at
once (--decode-batch N rows per call): the segments and summaries of a group of videos (up to N videos or N segment
windows), and the last clip windows of one video with the first of the next. The captions are the same as when each
video is captioned alone; a group's outputs are written once its summaries are made (its clip results and segment
descriptions are cached as they are made, so an interrupted run redoes none of them).

A video that stops decoding part-way fails, or with --allow-partial is captioned over the part that decoded and
recorded as partial (captions.json: video.partial, video.covered). A bad video is one error line and the others go
on (exit 1 at the end); a mistake in the options or inputs stops before any video is decoded (exit 2).

MODEL is a checkpoint folder (ReCap-U, or a single level), a folder holding clip/ segment/ video/ checkpoints, or
recap-synth (the bundled model of the synthetic world).
Released Video ReCap weights must be converted first: `videorecap convert official videorecap_clip.pt OUT`.

examples:
  videorecap caption kitchen.mp4 --model models/videorecap -o captions/
  videorecap caption videos/ --model videorecap_unified/ -o out/ --levels clip,segment --recursive
  videorecap caption synth.mp4 --model recap-synth -o out/
  videorecap caption list.txt --clip-model clip/ --segment-model seg/ --video-model vid/ -o out/
  torchrun --nproc_per_node=2 -m videorecap caption videos/ --model m/ -o out/   # shards the videos
  videorecap caption /shared/videos/ --model m/ -o /shared/out/ --ray=head:6379   # a Ray cluster (docs/ray.md)
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from videorecap.commands._decoding import add_decoding_arguments, hierarchy_options
from videorecap.commands._options import (
    add_compile_argument,
    add_device_argument,
    add_hw_decode_argument,
    add_max_tokens_argument,
    add_min_tail_argument,
    add_model_arguments,
    add_num_features_argument,
    add_original_settings_argument,
    add_output_argument,
    add_partial_argument,
    add_precision_argument,
    add_ray_arguments,
    add_recursive_argument,
    add_wait_argument,
    apply_hw_decode,
    check_compile_arguments,
    check_models,
    compile_clip_encoder,
    connect_ray,
    field_default,
    positive_float,
    positive_int,
    prepare_output_dir,
    window_seconds,
)
from videorecap.errors import InputError, VideoRecapError, describe_os_error
from videorecap.export import NARRATORS

if TYPE_CHECKING:
    from videorecap.infer.options import CaptionOptions
    from videorecap.pipeline import Captioner
    from videorecap.raydata import Placement
    from videorecap.results import CaptionResult

HELP = "caption videos: clip captions, segment descriptions and a video summary"


def web_video_height(text: str) -> int:
    """--web-video-height: at least `webcopy.MIN_HEIGHT` pixels (imported here, not at the top: it loads PyAV)."""
    from videorecap.video.webcopy import MIN_HEIGHT

    value = positive_int(text)
    if value < MIN_HEIGHT:
        raise argparse.ArgumentTypeError(f"must be at least {MIN_HEIGHT} pixels, got {value}")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="VIDEO", help="video files, folders, globs, or .txt lists of paths")
    add_output_argument(p, "one subfolder per video", required=True)
    add_recursive_argument(p)
    add_model_arguments(p.add_argument_group("model"))
    r = p.add_argument_group("what to run")
    r.add_argument(
        "--levels",
        default="clip,segment,video",
        help="levels to caption, up to the highest one named (default: clip,segment,video)",
    )
    r.add_argument("--clip-seconds", type=window_seconds, help="clip window in seconds (default: the model's, 4)")
    r.add_argument("--segment-seconds", type=window_seconds, help="segment window in seconds (default: the "
                   "model's: 180 for Video ReCap, 40 for recap-synth)")  # fmt: skip
    add_min_tail_argument(r)
    add_num_features_argument(r)
    r.add_argument("--features", type=Path, help="folder of precomputed CLS features {video_id}.npy for the "
                   "segment and video levels")  # fmt: skip
    r.add_argument("--grid-fps", type=positive_float, help="sample frames on a fixed frame grid (30 = the original "
                   "code)")  # fmt: skip
    add_partial_argument(r, ", caption them and record the video as partial")
    add_original_settings_argument(r, "the summary reads only the first 512 tokens (the video model's text limit) "
                                   "of the segment descriptions, so it never reads the rest of a video longer than "
                                   "about 45 min (default: as many descriptions as fit, chosen evenly across the "
                                   "whole video)")  # fmt: skip
    d = p.add_argument_group("decoding")
    add_decoding_arguments(d)
    add_max_tokens_argument(d)
    batch = _default("batch_size")
    d.add_argument("--batch-size", type=positive_int, default=batch, help=f"windows per batch (default: {batch})")
    d.add_argument("--decode-batch", type=positive_int, metavar="N", help="rows decoded at once, so that the "
                   "decoder reads its weights once for N rows: the clip windows of several encoder batches, and "
                   "with several videos their segments, summaries and last clip windows together (videos are "
                   "grouped until N videos or N segment windows; each group's outputs are written when its "
                   "summaries are done). The captions are those of each video alone (default: "
                   "--batch-size)")  # fmt: skip
    o = p.add_argument_group("outputs")
    o.add_argument(
        "--narrator",
        choices=NARRATORS,
        default="c",
        help="how subtitles and pages write Ego4D's '#C C picks up the cup': c = 'C picks up the cup' (default), "
        "camera-wearer = 'The camera wearer picks up the cup', raw = as the model wrote it (captions.json is "
        "always raw)",
    )
    o.add_argument(
        "--web-video",
        action="store_true",
        help="also write video.web.mp4, a browser-playable H.264/AAC copy starting at 0, and play it in index.html",
    )
    o.add_argument(
        "--web-video-height",
        type=web_video_height,
        metavar="PIXELS",
        help="with --web-video: scale the copy down to this height (an odd one is rounded down to even)",
    )
    add_device_argument(p, "this process's GPU when there is one, else cpu")
    add_hw_decode_argument(p)
    add_precision_argument(p)
    add_compile_argument(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_wait_argument(p)
    add_ray_arguments(p)


def _default(name: str) -> object:
    from videorecap.infer.options import CaptionOptions

    return field_default(CaptionOptions, name)


def video_ids(paths: list[Path]) -> list[str]:
    """Output folder names: the file stem made safe (it always names a folder inside -o, see
    `fileio.safe_output_name`), made unique with a suffix when two videos share one (also where only case differs)."""
    from videorecap.fileio import unique_output_names

    return unique_output_names(p.stem for p in paths)


def run(args: argparse.Namespace) -> int:
    from videorecap import distributed
    from videorecap.lock import output_lock
    from videorecap.runtime import set_decode_threads_for
    from videorecap.video.io import collect_videos

    # every mistake in the options or inputs is found here, before a model loads or a video decodes
    _check_args(args)
    device = args.device or distributed.default_device()
    apply_hw_decode(args, device)
    check_compile_arguments(args, device)
    opts = _caption_options(args, device)
    set_decode_threads_for(device)  # a GPU run lets FFmpeg use the cores
    paths = collect_videos(args.inputs, recursive=args.recursive)
    check_models(args, opts.levels)
    prepare_output_dir(args.output)
    connect_ray(args)  # a missing Ray or a wrong address is found before a model loads
    with output_lock(args.output, wait=args.wait):  # one job per folder; leftovers of a killed run are cleaned
        return _caption_all(args, opts, paths, device)


def _check_args(args: argparse.Namespace) -> None:
    """The mistakes the options can hold on their own (InputError, exit 2)."""
    if args.web_video_height is not None and not args.web_video:
        raise InputError("--web-video-height needs --web-video")
    if not (args.model or args.clip_model or args.segment_model or args.video_model):
        raise InputError("give a model: --model DIR (or --clip-model/--segment-model/--video-model)")
    if args.features is not None and not args.features.is_dir():
        raise InputError(f"--features {args.features}: no such folder")


def _caption_options(args: argparse.Namespace, device: str) -> CaptionOptions:
    """The typed options of the parsed flags."""
    from videorecap.infer.options import CaptionOptions

    return CaptionOptions(
        **hierarchy_options(args, device),
        decode_batch=args.decode_batch,
        grid_fps=args.grid_fps,
        features_dir=args.features,
        allow_partial=args.allow_partial,
        progress=not args.no_progress,
    )


Row = tuple[str, str, str, str, str, str]


def _caption_all(args: argparse.Namespace, opts: CaptionOptions, paths: list[Path], device: str) -> int:
    from videorecap import distributed

    ids = video_ids(paths)
    work = distributed.shard(list(zip(paths, ids, strict=True)))
    if args.ray is not None:
        from videorecap import raydata

        place = raydata.placement(args.device, args.ray_actors)  # a --device the cluster lacks: before models load
        # the driver's models only give the cache fingerprints; the Ray actors hold their own
        driver = _load_captioner(args, opts, "cpu", prepare_compiled=False)
        rows, failed = _caption_on_ray(args, opts, work, driver, place)
        _print_table(rows)
        print(f"{len(rows) - failed} of {len(rows)} videos captioned into {args.output}")
        return 1 if failed else 0
    from videorecap.pipeline import caption_videos

    captioner = _load_captioner(args, opts, device)
    done: dict[int, Row] = {}
    overall = None
    if not args.no_progress and len(work) > 1:
        from tqdm.auto import tqdm

        overall = tqdm(total=len(work), desc="videos", unit="video", dynamic_ncols=True)
    # the higher levels of several videos are decoded together (pipeline.caption_videos): a video's outputs are
    # written when its group is done, and a failed video is one line while the others go on
    jobs = [(path, vid, args.output / vid / ".cache") for path, vid in work]
    for i, outcome, seconds in caption_videos(jobs, captioner, opts):
        path, vid = work[i]
        done[i] = _outputs_row(args, opts, path, vid, outcome, seconds, overall)
        if overall is not None:
            overall.update(1)
    if overall is not None:
        overall.close()
    rows = [done[i] for i in sorted(done)]
    failed = sum(r[-1] == "FAILED" for r in rows)
    _print_table(rows)
    print(f"{len(rows) - failed} of {len(rows)} videos captioned into {args.output}")
    return 1 if failed else 0


def _load_captioner(
    args: argparse.Namespace, opts: CaptionOptions, device: str, notes: bool = True, prepare_compiled: bool = True
) -> Captioner:
    """The models of the levels to caption, on `device`; their notes (a synthetic-world model) go to stderr. With
    `--compile` the clip encoder is compiled: loaded from the cache or compiled now, or with `prepare_compiled=False`
    only at its first batch (a Ray driver's models, which only give fingerprints, and the per-video actors, whose
    clips the pipeline has encoded, may never run it)."""
    from videorecap.export import model_notes
    from videorecap.pipeline import Captioner, describe_model

    captioner = Captioner.load(
        args.model,
        clip=args.clip_model,
        segment=args.segment_model,
        video=args.video_model,
        device=device,
        tokenizer=args.tokenizer,
        levels=opts.levels,
        precision=args.precision,
    )
    for m, _ in captioner.models.values():
        m.to(device)
    if args.compile:
        compile_clip_encoder(captioner, "caption", prepare=prepare_compiled)
    for note in model_notes(describe_model(captioner, opts.levels)) if notes else ():
        print(f"videorecap caption: warning: {note}", file=sys.stderr)
    return captioner


def _caption_one(
    args: argparse.Namespace,
    opts: CaptionOptions,
    captioner: Captioner,
    path: Path,
    vid: str,
    bar: object,
    on_failure: Callable[[str], None] | None = None,
) -> Row:
    """Caption one video into OUT_DIR/<vid>/ and return its row of the table; a failure is one line on stderr (or
    goes to `on_failure`)."""
    from videorecap.pipeline import caption_video

    t0 = time.perf_counter()
    try:
        result: CaptionResult | Exception = caption_video(
            path, captioner, opts, cache_dir=args.output / vid / ".cache", video_id=vid
        )
    except Exception as e:  # noqa: BLE001 - one video's failure is one line; the others go on (exit 1 at the end)
        result = e
    return _outputs_row(args, opts, path, vid, result, time.perf_counter() - t0, bar, on_failure)


def _outputs_row(
    args: argparse.Namespace,
    opts: CaptionOptions,
    path: Path,
    vid: str,
    result: CaptionResult | Exception,
    seconds: float,
    bar: object,
    on_failure: Callable[[str], None] | None = None,
) -> Row:
    """Write a captioned video's outputs into OUT_DIR/<vid>/ (or report its failure: one line on stderr, or to
    `on_failure`) and return its row of the table."""
    from videorecap.export import write_outputs
    from videorecap.video.webcopy import make_web_copy

    out_dir = args.output / vid
    t0 = time.perf_counter()
    try:
        if isinstance(result, Exception):
            raise result
        web = None
        if args.web_video:
            web = make_web_copy(path, out_dir, max_height=args.web_video_height, progress=opts.progress).path
        write_outputs(result, out_dir, narrator=args.narrator, web_video=web)
    except Exception as e:  # noqa: BLE001 - one video's failure is one line; the others go on (exit 1 at the end)
        if on_failure is not None:
            on_failure(_failure_message(vid, path, e, args.output))
        else:
            _report_failure(vid, path, e, bar, args.output)
        return (vid, "-", "-", "-", f"{seconds + time.perf_counter() - t0:.1f}s", "FAILED")
    status = "ok"
    if result.video.partial and result.video.covered:
        status = f"partial: {result.video.covered[-1][1]:.1f}s decoded"
    return (vid, f"{result.video.duration:.1f}s", str(len(result.clips)), str(len(result.segments)),
            f"{seconds + time.perf_counter() - t0:.1f}s", status)  # fmt: skip


def _caption_on_ray(
    args: argparse.Namespace,
    opts: CaptionOptions,
    work: list[tuple[Path, str]],
    captioner: Captioner,
    place: Placement,
) -> tuple[list[Row], int]:
    """The clip level as a Ray Data pipeline, then `_caption_one` for every video in Ray actors (docs/ray.md)."""
    import dataclasses
    import functools

    from videorecap import raydata

    clip_opts = dataclasses.replace(opts, levels=("clip",))
    clip_loader = functools.partial(_load_captioner, args, clip_opts, notes=False)
    raydata.precompute_clips(work, args.output, captioner, clip_loader, opts, place)
    rows: dict[int, Row] = {}
    failed = 0
    loader = functools.partial(_load_captioner, args, opts, notes=False, prepare_compiled=False)
    for i, r in raydata.per_video([[str(p), v] for p, v in work], loader, _RayVideo(args, opts), place):
        rows[i] = tuple(r["row"])  # type: ignore[assignment]
        if r["error"] is not None:
            failed += 1
            print(f"videorecap caption: error: {r['error']}", file=sys.stderr)
    return [rows[i] for i in sorted(rows)], failed


class _RayVideo:
    """`_caption_one` in a Ray actor (its captioner on its device): the row, and the failure's one line if any."""

    def __init__(self, args: argparse.Namespace, opts: CaptionOptions) -> None:
        self.args, self.opts = args, opts

    def __call__(self, item: list[str], captioner: Captioner, device: str) -> dict[str, object]:
        import dataclasses

        errors: list[str] = []
        opts = dataclasses.replace(self.opts, device=device, progress=False)
        row = _caption_one(self.args, opts, captioner, Path(item[0]), item[1], None, on_failure=errors.append)
        return {"row": row, "error": errors[0] if errors else None}


def _print_table(rows: list[Row]) -> None:
    header = ("video", "duration", "clips", "segments", "time", "status")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def _report_failure(vid: str, path: Path, e: BaseException, bar: object, out: Path) -> None:
    line = f"videorecap caption: error: {_failure_message(vid, path, e, out)}"
    if bar is not None:
        from tqdm.auto import tqdm

        tqdm.write(line, file=sys.stderr)  # above the overall bar, not through it
    else:
        print(line, file=sys.stderr)


def _failure_message(vid: str, path: Path, e: BaseException, out: Path) -> str:
    import logging

    if isinstance(e, VideoRecapError):
        msg = str(e)
    elif isinstance(e, OSError):  # a full disk, a permission: the file and what to do
        msg = f"{path}: failed: {describe_os_error(e, out)}"
        logging.getLogger("videorecap.caption").info("%s failed", vid, exc_info=e)
    else:
        # not a user mistake we know of (a full disk, out of memory, a bug): still one line, the trace with -v
        what = " ".join(str(e).split())[:300] or type(e).__name__
        msg = f"{path}: failed with {type(e).__name__}: {what}"
        if isinstance(e, MemoryError) or "out of memory" in what:
            msg += " (try a smaller --batch-size)"
        logging.getLogger("videorecap.caption").info("%s failed", vid, exc_info=e)
    return msg
