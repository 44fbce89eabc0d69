"""Caption videos at three levels: a caption every 4 s, a description every 3 min, one summary.

For each video, writes into OUT_DIR/<video id>/: captions.json (every level, with timestamps), clips.srt and
clips.vtt (subtitles), segments.vtt (chapters), summary.md, and index.html (a page with the video and a clickable
timeline; the captions are embedded, so it works opened from disk). With --web-video it also writes
video.web.mp4, an H.264/AAC copy that every browser plays (for HEVC, Matroska and other files a browser cannot
play), and the page uses it. Intermediate results are cached in OUT_DIR/<video id>/.cache/, so an interrupted run
started again continues where it stopped; a finished video is skipped.

MODEL is a checkpoint folder (ReCap-U, or a single level), or a folder holding clip/ segment/ video/ checkpoints.
Released Video ReCap weights must be converted first: `videorecap convert official videorecap_clip.pt OUT`.

examples:
  videorecap caption kitchen.mp4 --model models/videorecap -o captions/
  videorecap caption videos/ --model videorecap_unified/ -o out/ --levels clip,segment
  videorecap caption list.txt --clip-model clip/ --segment-model seg/ --video-model vid/ -o out/
  torchrun --nproc_per_node=2 -m videorecap caption videos/ --model m/ -o out/   # shards the videos
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from videorecap.commands._decoding import add_decoding_arguments, decode_config
from videorecap.errors import InputError, VideoRecapError
from videorecap.export import NARRATORS

HELP = "caption videos: clip captions, segment descriptions and a video summary"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="VIDEO", help="video files, folders, globs, or .txt lists of paths")
    p.add_argument("-o", "--output", required=True, type=Path, help="output folder (one subfolder per video)")
    m = p.add_argument_group("model")
    m.add_argument("--model", help="checkpoint folder (ReCap-U or one level), or a folder with clip/ segment/ video/")
    m.add_argument("--clip-model", help="checkpoint folder of the clip level")
    m.add_argument("--segment-model", help="checkpoint folder of the segment level")
    m.add_argument("--video-model", help="checkpoint folder of the video level")
    m.add_argument("--tokenizer", help="tokenizer folder (vocab.json + merges.txt, or tokenizer.json)")
    r = p.add_argument_group("what to run")
    r.add_argument(
        "--levels",
        default="clip,segment,video",
        help="levels to caption, up to the highest one named (default: clip,segment,video)",
    )
    r.add_argument("--clip-seconds", type=float, help="clip window in seconds (default: the model's, 4)")
    r.add_argument("--segment-seconds", type=float, help="segment window in seconds (default: the model's, 180)")
    r.add_argument("--features", type=Path, help="folder of precomputed CLS features {video_id}.npy for the "
                   "segment and video levels")  # fmt: skip
    r.add_argument("--grid-fps", type=float, help="sample frames on a fixed frame grid (30 = the original code)")
    r.add_argument("--allow-partial", action="store_true", help="on a decode error mid-video, keep what decoded")
    d = p.add_argument_group("decoding")
    add_decoding_arguments(d)
    d.add_argument("--max-tokens", type=int, help="max new tokens at every level (default: 77, 77, 120)")
    d.add_argument("--batch-size", type=int, default=8, help="windows per batch (default: 8)")
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
        "--web-video-height", type=int, metavar="PIXELS", help="with --web-video: scale the copy down to this height"
    )
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available, else cpu)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files, folders (their video files), globs and .txt list files -> video paths, in order, without repeats."""
    import glob

    from videorecap.video.io import is_video_path

    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and is_video_path(f))
            if not found:
                raise InputError(f"{p}: no video files in this folder")
            out += found
        elif p.is_file() and p.suffix.lower() in (".txt", ".lst", ".list"):
            base = p.parent
            for line in p.read_text().splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    q = Path(line)
                    out.append(q if q.is_absolute() else base / q)
        elif any(ch in item for ch in "*?["):
            matches = sorted(Path(m) for m in glob.glob(item, recursive=True))
            if not matches:
                raise InputError(f"{item}: the pattern matches no file")
            out += [m for m in matches if m.is_file()]
        else:
            out.append(p)  # a missing or bad file is reported per video
    seen: set[Path] = set()
    return [p for p in out if not (p.resolve() in seen or seen.add(p.resolve()))]  # type: ignore[func-returns-value]


def video_ids(paths: list[Path]) -> list[str]:
    """Output folder names: the file stem, made unique with a suffix when two videos share one."""
    ids: list[str] = []
    used: dict[str, int] = {}
    for p in paths:
        vid = p.stem
        n = used.get(vid, 0)
        used[vid] = n + 1
        ids.append(vid if n == 0 else f"{vid}_{n + 1}")
    return ids


def run(args: argparse.Namespace) -> int:
    import torch

    from videorecap import distributed
    from videorecap.export import model_notes, write_outputs
    from videorecap.pipeline import Captioner, CaptionOptions, caption_video, describe_model
    from videorecap.video.webcopy import make_web_copy

    if args.web_video_height is not None and (not args.web_video or args.web_video_height < 2):
        raise InputError("--web-video-height needs --web-video and a height of at least 2 pixels")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if not (args.model or args.clip_model or args.segment_model or args.video_model):
        raise InputError("give a model: --model DIR (or --clip-model/--segment-model/--video-model)")
    decode = decode_config(args, max_new_tokens=args.max_tokens)
    opts = CaptionOptions(
        levels=tuple(x.strip() for x in args.levels.split(",") if x.strip()),  # type: ignore[arg-type]
        clip_seconds=args.clip_seconds,
        segment_seconds=args.segment_seconds,
        decode=decode,
        batch_size=args.batch_size,
        grid_fps=args.grid_fps,
        features_dir=args.features,
        allow_partial=args.allow_partial,
        device=device,
        progress=not args.no_progress,
    )
    paths = expand_inputs(args.inputs)
    ids = video_ids(paths)
    work = distributed.shard(list(zip(paths, ids, strict=True)))
    captioner = Captioner.load(
        args.model,
        clip=args.clip_model,
        segment=args.segment_model,
        video=args.video_model,
        device=device,
        tokenizer=args.tokenizer,
    )
    for m, _ in captioner.models.values():
        m.to(device)
    for note in model_notes(describe_model(captioner, opts.levels)):
        print(f"videorecap caption: warning: {note}", file=sys.stderr)

    rows: list[tuple[str, str, str, str, str, str]] = []
    failed = 0
    overall = None
    if not args.no_progress and len(work) > 1:
        from tqdm.auto import tqdm

        overall = tqdm(total=len(work), desc="videos", unit="video", dynamic_ncols=True)
    for path, vid in work:
        out_dir = args.output / vid
        t0 = time.perf_counter()
        try:
            result = caption_video(path, captioner, opts, cache_dir=out_dir / ".cache", video_id=vid)
            web = None
            if args.web_video:
                web = make_web_copy(path, out_dir, max_height=args.web_video_height, progress=not args.no_progress).path
            write_outputs(result, out_dir, narrator=args.narrator, web_video=web)
            dur = f"{result.video.duration:.1f}s"
            rows.append((vid, dur, str(len(result.clips)), str(len(result.segments)),
                         f"{time.perf_counter() - t0:.1f}s", "ok"))  # fmt: skip
        except VideoRecapError as e:
            failed += 1
            print(f"videorecap caption: error: {e}", file=sys.stderr)
            rows.append((vid, "-", "-", "-", f"{time.perf_counter() - t0:.1f}s", "FAILED"))
        if overall is not None:
            overall.update(1)
    if overall is not None:
        overall.close()

    header = ("video", "duration", "clips", "segments", "time", "status")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    print(f"{len(rows) - failed} of {len(rows)} videos captioned into {args.output}")
    return 1 if failed else 0
