"""Render a synthetic dataset: videos plus ground truth in the Ego4D-HCap file formats.

`make_dataset(out_dir, videos=..., minutes=..., seed=...)` writes

    videos/{vid}.mp4
    clips_{split}.pkl      [(vid, start_sec, end_sec, caption), ...]
    segments_{split}.pkl   [{vid, sid, start_sec, end_sec, segment_description, captions_pred, captions_gt}, ...]
    videos_{split}.json    [{vid, start_sec, end_sec, segment_descriptions, segment_descriptions_pred,
                             video_summary}, ...]
    world.json             how it was made: seed, splits, counts, windows, fps, size, version, vocabulary size

for each split. Video k of split s draws its timeline from the seed sequence (seed, crc32(s), k), so adding videos
to one split never changes another and the same seed gives byte-identical ground truth. `make_video` renders one
held-out video (split "heldout") for demos and tests.
"""

from __future__ import annotations

import logging
import os
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from videorecap.data import hcap
from videorecap.fileio import atomic_path, write_json
from videorecap.results import Caption, CaptionResult, VideoMeta
from videorecap.runtime import SEED_MAX, is_seed
from videorecap.synth.render import render_video
from videorecap.synth.world import GENERATOR_VERSION, HOMES, VideoScript, make_script, vocabulary

logger = logging.getLogger(__name__)

DEFAULT_CLIP_SECONDS = 4.0
DEFAULT_SEGMENT_SECONDS = 40.0  # 10 clips a segment
DEFAULT_MINUTES = 4.0  # 6 segments a video
DEFAULT_SIZE = 64
DEFAULT_FPS = 8.0
# Upper bounds, checked before anything is written: a frame of MAX_SIZE is 48 MiB of RGB (a larger one fails for
# memory part-way through), the drawing has 64 x 64 units anyway, and longer or denser videos only take longer.
MAX_SIZE = 4096
MAX_FPS = 120.0
MAX_MINUTES = 24 * 60.0
SPLITS = ("train", "val", "test")


def video_seed(seed: int, split: str, index: int) -> list[int]:
    """The seed sequence entropy of video `index` of `split`: independent across splits and indices."""
    return [int(seed), zlib.crc32(split.encode("utf-8")), int(index)]


def video_id(split: str, index: int) -> str:
    return f"synth_{split}_{index:04d}"


def homes_range(homes: int | Sequence[int]) -> tuple[int, int]:
    """A dataset's `homes` (a count, or a range [lo, hi]) as (lo, hi), checked.

    Raises:
        ValueError: not 1 <= lo <= hi <= len(HOMES).
    """
    lo, hi = (homes, homes) if isinstance(homes, int) else (int(homes[0]), int(homes[1]))
    if not 1 <= lo <= hi <= len(HOMES):
        raise ValueError(f"homes must be a count from 1 to {len(HOMES)} or a range lo-hi within it, not {homes}")
    return lo, hi


def video_homes(homes: int | Sequence[int], index: int) -> int:
    """How many homes video `index` of a split visits, for a dataset's `homes` (a count, or a range [lo, hi])."""
    lo, hi = homes_range(homes)
    return lo + index % (hi - lo + 1)


def split_counts(videos: int | Mapping[str, int], splits: Sequence[str] = SPLITS) -> dict[str, int]:
    """How many videos each split gets.

    An int is a total: each split other than train gets 10 % (at least 1), train the rest. A mapping gives the
    counts per split directly.
    """
    if isinstance(videos, Mapping):
        unknown = set(videos) - set(splits)
        if unknown:
            raise ValueError(f"video counts given for unknown split(s): {', '.join(sorted(unknown))}")
        counts = {s: int(videos.get(s, 0)) for s in splits}
        if any(n < 0 for n in counts.values()):
            raise ValueError(f"video counts must be >= 0, got {counts}")
        return counts
    if videos < len(splits):
        raise ValueError(f"need at least one video per split: {videos} videos for {len(splits)} splits")
    if len(splits) == 1:
        return {splits[0]: int(videos)}
    others = [s for s in splits if s != "train"]
    counts = {s: max(1, round(videos * 0.1)) for s in others}
    main = "train" if "train" in splits else others[0]
    counts[main] = counts.get(main, 0) + videos - sum(counts.values())
    if counts[main] < 1:
        raise ValueError(f"{videos} videos are too few for splits {', '.join(splits)}")
    return {s: counts[s] for s in splits}


def _check(minutes: float, clip_seconds: float, segment_seconds: float, size: int, fps: float, seed: int) -> None:
    if not is_seed(seed):
        raise ValueError(f"seed must be an integer from 0 to {SEED_MAX}, not {seed!r}")
    if not 0 < minutes <= MAX_MINUTES:
        raise ValueError(f"minutes must be positive and at most {MAX_MINUTES:g}, not {minutes}")
    if not clip_seconds > 0:
        raise ValueError(f"clip_seconds must be positive, not {clip_seconds}")
    if not segment_seconds >= clip_seconds:
        raise ValueError(f"segment_seconds ({segment_seconds}) must be at least clip_seconds ({clip_seconds})")
    if not 32 <= size <= MAX_SIZE or size % 2:
        raise ValueError(f"size must be an even number of pixels from 32 to {MAX_SIZE}, not {size}")
    if not 0 < fps <= MAX_FPS:
        raise ValueError(f"fps must be positive and at most {MAX_FPS:g}, not {fps}")


def make_video(
    path: str | os.PathLike[str],
    *,
    seed: int = 0,
    minutes: float = DEFAULT_MINUTES,
    clip_seconds: float = DEFAULT_CLIP_SECONDS,
    segment_seconds: float = DEFAULT_SEGMENT_SECONDS,
    size: int = DEFAULT_SIZE,
    fps: float = DEFAULT_FPS,
    index: int = 0,
) -> VideoScript:
    """Render one held-out video (split "heldout", never in a dataset) to `path`; returns its script and truth."""
    _check(minutes, clip_seconds, segment_seconds, size, fps, seed)
    script = make_script(
        video_seed(seed, "heldout", index),
        minutes,
        clip_seconds=clip_seconds,
        segment_seconds=segment_seconds,
        vid=video_id("heldout", index),
    )
    _render_atomic(script, Path(path), size=size, fps=fps)
    return script


def _render_atomic(script: VideoScript, path: Path, *, size: int, fps: float) -> None:
    with atomic_path(path) as tmp:
        render_video(script, tmp, size=size, fps=fps)


def make_dataset(
    out_dir: str | os.PathLike[str],
    *,
    videos: int | Mapping[str, int],
    minutes: float = DEFAULT_MINUTES,
    seed: int = 0,
    clip_seconds: float = DEFAULT_CLIP_SECONDS,
    segment_seconds: float = DEFAULT_SEGMENT_SECONDS,
    size: int = DEFAULT_SIZE,
    fps: float = DEFAULT_FPS,
    splits: Sequence[str] = SPLITS,
    homes: int | tuple[int, int] = 1,
    progress: bool = False,
) -> dict[str, Any]:
    """Render a dataset into `out_dir` (see the module docstring); returns what it wrote to world.json.

    Args:
        videos: a total (split 80/10/10 with at least one per split) or a count per split.
        minutes: length of every video.
        seed: the dataset seed; video k of split s uses (seed, s, k).
        homes: how many homes each video visits, one after the other (`world.make_script`), or a range
            (lo, hi): video k of a split visits lo + k mod (hi - lo + 1), so every count occurs in every split.
        progress: show a tqdm bar over the videos on stderr.
    """
    _check(minutes, clip_seconds, segment_seconds, size, fps, seed)
    lo, hi = homes_range(homes)
    if not splits or len(set(splits)) != len(splits):
        raise ValueError(f"splits must be distinct names, got {list(splits)}")
    counts = split_counts(videos, splits)
    out = Path(out_dir)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    total = sum(counts.values())
    bar = tqdm(total=total, desc="synth", unit="video", disable=not progress)
    split_vids: dict[str, list[str]] = {}
    n_clips = n_segments = 0
    try:
        for split in splits:
            clips: list[tuple[str, float, float, str]] = []
            segments: list[dict[str, Any]] = []
            vids: list[dict[str, Any]] = []
            for k in range(counts[split]):
                vid = video_id(split, k)
                script = make_script(
                    video_seed(seed, split, k),
                    minutes,
                    clip_seconds=clip_seconds,
                    segment_seconds=segment_seconds,
                    vid=vid,
                    homes=video_homes((lo, hi), k),
                )
                _render_atomic(script, out / "videos" / f"{vid}.mp4", size=size, fps=fps)
                clips += script.clip_rows()
                segments += script.segment_rows()
                vids.append(script.video_row())
                bar.update(1)
            hcap.save_clips(out / f"clips_{split}.pkl", clips)
            hcap.save_segments(out / f"segments_{split}.pkl", segments)
            hcap.save_videos(out / f"videos_{split}.json", vids)
            split_vids[split] = [v["vid"] for v in vids]
            n_clips += len(clips)
            n_segments += len(segments)
    finally:
        bar.close()
    world = {
        "generator": "videorecap.synth",
        "version": GENERATOR_VERSION,
        "seed": int(seed),
        "splits": split_vids,
        "counts": {"videos": total, "clips": n_clips, "segments": n_segments, "per_split": counts},
        "minutes": float(minutes),
        **({"homes": [lo, hi]} if hi > 1 else {}),  # absent: one home a video, as every dataset before it
        "windows": {"clip_seconds": float(clip_seconds), "segment_seconds": float(segment_seconds)},
        "fps": float(fps),
        "size": int(size),
        "vocabulary_size": len(vocabulary()),
    }
    write_json(out / "world.json", world)
    logger.info("wrote %d videos (%d clips, %d segments) to %s", total, n_clips, n_segments, out)
    return world


def truth_result(script: VideoScript, path: str = "") -> CaptionResult:
    """The ground truth of a script as a `CaptionResult` (captions.json's model), e.g. to search or score it as if
    a perfect model had captioned the video; the model is named "synthetic ground truth"."""
    return CaptionResult(
        video=VideoMeta(script.vid, path or f"{script.vid}.mp4", script.duration),
        clips=[Caption(c.start, c.end, c.caption) for c in script.clips],
        segments=[Caption(s.start, s.end, s.description) for s in script.segments],
        summary=Caption(0.0, script.duration, script.summary),
        model={"name": "synthetic ground truth"},
        windows={"clip": script.clip_seconds, "segment": script.segment_seconds},
    )
