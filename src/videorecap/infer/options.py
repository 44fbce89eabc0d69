"""The options of a captioning run: `HierarchyOptions` (what every run decides: the levels, the windows, the
decoding, what each level reads) and `CaptionOptions` (a `caption` run over files). `live.options.LiveOptions` is
the other kind of run.

Torch-free, so that the command line builds its flags and `--help` from these defaults without loading a model
library.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from videorecap.config import LEVELS, Level
from videorecap.errors import InputError, is_count
from videorecap.infer.decoding_config import DecodeConfig
from videorecap.levelio import LevelIO, max_tokens_overrides
from videorecap.results import SUMMARY_POLICIES
from videorecap.runtime import parse_device
from videorecap.video.sampling import DEFAULT_MIN_TAIL_SECONDS


def needed_levels(levels: Sequence[str] | str) -> tuple[Level, ...]:
    """The levels a run needs: every level up to the highest one named ("clip,segment", ["video"], ...)."""
    if not isinstance(levels, str) and not (isinstance(levels, Sequence) and all(isinstance(x, str) for x in levels)):
        raise InputError(f'levels: give names such as "clip,segment" or ("clip", "segment"), not {levels!r}')
    names = [x.strip() for x in levels.split(",")] if isinstance(levels, str) else [str(x).strip() for x in levels]
    names = [x for x in names if x]
    bad = sorted(set(names) - set(LEVELS))
    if bad:
        raise InputError(f"unknown level(s) {', '.join(bad)}; use clip, segment, video")
    if not names:
        raise InputError("no level to caption")
    # the recursion needs every level below the highest one asked for
    return LEVELS[: max(LEVELS.index(x) for x in names) + 1]  # type: ignore[arg-type]


def _check_seconds(name: str, value: float | None, *, zero: bool = False) -> None:
    """A window length (positive) or a tail (`zero`: 0 allowed); NaN and infinity are refused (NaN fails every
    comparison, so the test is written the way round that it fails)."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"--{name.replace('_', '-')} must be a number of seconds, not {value!r}")
    ok = (value >= 0 if zero else value > 0) and math.isfinite(value)
    if not ok:
        what = "0 or more" if zero else "a positive number"
        raise InputError(f"--{name.replace('_', '-')} must be {what}, got {value}")


def _check_count(name: str, value: object) -> None:
    """A whole number of at least 1 (a batch size)."""
    if not is_count(value):
        raise InputError(f"--{name.replace('_', '-')} must be a whole number of at least 1, not {value!r}")


def check_windows(clip_seconds: float | None, segment_seconds: float | None) -> None:
    """A segment window holds clip windows: one shorter than a clip window is refused (where both are known)."""
    if clip_seconds is not None and segment_seconds is not None and segment_seconds < clip_seconds:
        raise InputError(
            f"--segment-seconds {segment_seconds:g} is shorter than the clip window ({clip_seconds:g} s): a segment "
            "is described from the clip captions inside it"
        )


@dataclass
class HierarchyOptions:
    """What every captioning run decides. `None` means the model's own value (window sizes, token limits)."""

    levels: tuple[Level, ...] | str = LEVELS  # a sequence of levels, or one string: "clip" or "clip,segment"
    clip_seconds: float | None = None
    segment_seconds: float | None = None
    min_tail_seconds: float = DEFAULT_MIN_TAIL_SECONDS  # a shorter last window joins the previous one
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    max_new_tokens: dict[str, int] = field(default_factory=dict)  # per-level override
    num_features: dict[str, int] = field(default_factory=dict)  # segment/video: override of the models' level I/O
    # which segment descriptions the video level reads when they exceed its text limit: "spread" (evenly across the
    # video) or "first" (the first 512 tokens, as the original; `--original-settings`)
    summary_text: str = "spread"
    batch_size: int = 8  # clip windows per encoder call (at most)
    device: str = "cpu"

    def __post_init__(self) -> None:
        self.levels = needed_levels(self.levels)
        _check_count("batch_size", self.batch_size)
        if isinstance(self.decode, dict):  # the same settings as keyword arguments
            try:
                self.decode = DecodeConfig(**self.decode)
            except (TypeError, ValueError) as e:
                raise InputError(f"decode: {e}") from None
        if not isinstance(self.decode, DecodeConfig):
            raise InputError(f"decode: give a DecodeConfig (or a dict of its fields), not {self.decode!r}")
        if not isinstance(self.device, str):
            raise InputError(f'device: give a name such as "cpu" or "cuda:0", not {self.device!r}')
        self.device = parse_device(self.device, "device")
        _check_seconds("clip_seconds", self.clip_seconds)
        _check_seconds("segment_seconds", self.segment_seconds)
        _check_seconds("min_tail_seconds", self.min_tail_seconds, zero=True)
        check_windows(self.clip_seconds, self.segment_seconds)
        try:
            max_tokens_overrides(self.max_new_tokens)
        except ValueError as e:
            raise InputError(str(e)) from None
        if self.summary_text not in SUMMARY_POLICIES:
            raise InputError(f"summary_text must be one of {', '.join(SUMMARY_POLICIES)}, got {self.summary_text!r}")
        try:
            LevelIO().replace_features(num_features=self.num_features or None)
        except ValueError as e:
            raise InputError(f"--num-features: {e}") from None

    def hierarchy_options(self) -> dict[str, Any]:
        """The fields of `HierarchyOptions` only, as keyword arguments (a live session's `CaptionOptions`)."""
        return {f.name: getattr(self, f.name) for f in fields(HierarchyOptions)}


@dataclass
class CaptionOptions(HierarchyOptions):
    """How to caption files (`caption`, `caption_video`)."""

    # clip windows (and segments) captioned together: several encoder batches decode as one, so the memory-bound
    # decoder reads its weights once for more rows. None: `batch_size` (one decoding per encoder batch).
    decode_batch: int | None = None
    grid_fps: float | None = None  # 30 = the original's fixed 30-fps frame grid
    features_dir: Path | None = None  # precomputed CLS features {video_id}.npy
    allow_partial: bool = False  # keep the windows decoded before a mid-stream decode error
    progress: bool = False
    chunk_batches: int = 4  # clip results are cached every chunk_batches * batch_size windows

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.decode_batch is not None:
            _check_count("decode_batch", self.decode_batch)
        _check_seconds("grid_fps", self.grid_fps)
