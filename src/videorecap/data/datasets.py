"""Torch datasets for the three levels of Ego4D-HCap (or our JSONL format, or any list of released rows).

Every sample is a dict:

- `video`: clip level from pixels, float `(3, T, H, W)`; clip level from precomputed features, `(N, C)` (all 785
  tokens of the window, or its one CLS row as `(1, C)`); segment and video levels, `(K, C)` sampled CLS features.
- `video_mask`: `(K,)` bool with `masking` sampling, else None.
- `text`: the previous level's text (segment: clip captions; video: segment descriptions), None at the clip level.
- `caption`: the target text, None for rows without one (inference).
- `meta`: `{"vid", "start", "end", "sid", "level"}`.

Feature files (reference §5, the layout of `videorecap features`):

- `{feature_dir}/{vid}.npy`: float32 `(N, C)`, one CLS row per 4-s window from 0 s; a segment or video row takes
  the rows `[int(start/4) : int(end//4) + 1]` (`feature_sampling.slice_features`).
- `{feature_dir}/{sid}.npy`: the original's per-segment files; used for a row with a `sid` when that file exists
  (so the released per-segment features work, and synthetic data with `sid`s also works from `{vid}.npy`).
- A video row without `end_sec` concatenates `{segment_feature_dir}/{sid}.npy` over its `sids`, as the original.
- Clip level: `{feature_dir}/{vid}.tokens.npy`, `(N, L, C)` all tokens (`videorecap features --all-tokens`; may
  be float16), or with `feature_kind="cls"` `{vid}.npy`, `(N, C)`; a clip row takes window
  `int(start / clip_seconds)`, so clip rows must lie on the 4-s grid.

Files are memory-mapped, so a sample reads only its rows.
"""

from __future__ import annotations

import abc
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from videorecap.config import Level, RecapConfig
from videorecap.data import feature_sampling, hcap, text
from videorecap.data.hcap import TARGET_KEYS, ClipRow
from videorecap.errors import DataError
from videorecap.levelio import FeatureSampling, LevelIO

logger = logging.getLogger(__name__)

Rows = str | os.PathLike[str] | Sequence[Any]
# reader(path, start, end, num_frames, *, mode, rng, grid_fps) -> (T, H, W, 3) uint8 frames; the signature of
# videorecap.video.reader.read_window
FrameReader = Callable[..., np.ndarray]


def _rows(rows: Rows, level: Level) -> list[Any]:
    if isinstance(rows, (str, os.PathLike)):
        return hcap.load_level(rows, level)
    return [hcap.check_row(level, r, where=f"{level} row {i}") for i, r in enumerate(rows)]


def load_npy(path: Path, width: int | None = None) -> np.ndarray:
    """A feature file, memory-mapped; a clear DataError when it is missing or not a float array, or, given the
    model's feature `width`, when its rows are another width (which torch reports only as a matmul's shapes)."""
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{path}: feature file not found") from None
    except EOFError:  # numpy's word for an empty file
        raise DataError(f"{path}: not a readable .npy feature file (the file is empty)") from None
    except (ValueError, OSError) as e:
        raise DataError(f"{path}: not a readable .npy feature file ({e})") from None
    if arr.dtype.kind != "f" or arr.ndim < 2:
        raise DataError(f"{path}: expected a float array of shape (N, C), found {arr.dtype} {arr.shape}")
    if width is not None and arr.shape[-1] != width:
        raise DataError(f"{path}: features of width {arr.shape[-1]}, but the model reads {width}-wide features")
    return arr


def feature_width(cfg: RecapConfig) -> int | None:
    """The width of the features a model of `cfg` reads (its encoder's output); None when it reads no video."""
    return None if cfg.modalities == "text" else cfg.encoder.width


def _seed() -> int:
    # Drawn from torch's global generator: varies per epoch and per DataLoader worker, reproducible under
    # torch.manual_seed.
    return int(torch.randint(0, 2**62, (1,)).item())


class ClipDataset(Dataset):
    """Clip captions: pixels decoded on the fly (with training augmentation) or precomputed features.

    Args:
        rows: clip rows (`ClipRow`s or released tuples), or a clips file (`.pkl`, `.json`, `.jsonl`).
        video_root: folder of videos `{vid}{video_ext}`; decode pixels. Exactly one of `video_root` and
            `feature_dir` must be given.
        feature_dir: folder of per-video clip features (see `feature_kind`).
        feature_kind: "tokens" reads `{vid}.tokens.npy` `(N, L, C)` and gives `(L, C)`; "cls" reads `{vid}.npy`
            `(N, C)` and gives `(1, C)`.
        training: random resized crop (and `frame_mode`); otherwise short-side resize + center crop.
        random_crop: in training, the original's random resized crop (scale 0.5-1); False keeps the eval transform
            (for footage whose content sits at the edges of the frame, such as the synthetic world).
        num_frames: frames per clip (4 for the released models).
        size: frame size after the transform (224 for the released models).
        frame_mode: "middle" (the original, in training too) or "random" (a random frame in each part).
        grid_fps: None samples frames by timestamp; 30 reproduces the original's fixed 30-fps frame grid.
        clip_seconds: window length of the feature files.
        video_ext: suffix of the video files.
        reader: frame reader override (default: `videorecap.video.reader.read_window`).
        cache_frames: keep every clip's decoded frames in memory after the first time its video is read (the whole
            video is then decoded in one pass). For small datasets (the synthetic world: about 50 KB per 64-px clip),
            where seeking into a video for every sample costs more than the model. Exact, because the frames are the
            parts' middles (`frame_mode="middle"`); the crop augmentation still runs on every access.
        width: the model's feature width (`feature_width`): a feature file of another width is a DataError naming it.
    """

    level: Level = "clip"

    def __init__(
        self,
        rows: Rows,
        *,
        video_root: str | os.PathLike[str] | None = None,
        feature_dir: str | os.PathLike[str] | None = None,
        feature_kind: str = "tokens",
        training: bool = False,
        num_frames: int = 4,
        size: int = 224,
        frame_mode: str = "middle",
        grid_fps: float | None = None,
        clip_seconds: float = 4.0,
        video_ext: str = ".mp4",
        reader: FrameReader | None = None,
        cache_frames: bool = False,
        random_crop: bool = True,
        width: int | None = None,
    ) -> None:
        if (video_root is None) == (feature_dir is None):
            raise ValueError("give exactly one of video_root (decode pixels) and feature_dir (precomputed features)")
        if feature_kind not in ("tokens", "cls"):
            raise ValueError(f"feature_kind must be 'tokens' or 'cls', not {feature_kind!r}")
        if frame_mode not in ("middle", "random"):
            raise ValueError(f"frame_mode must be 'middle' or 'random', not {frame_mode!r}")
        self.rows: list[ClipRow] = _rows(rows, "clip")
        self.video_root = Path(video_root) if video_root is not None else None
        self.feature_dir = Path(feature_dir) if feature_dir is not None else None
        self.feature_kind = feature_kind
        self.training = training
        self.num_frames = num_frames
        self.size = size
        self.frame_mode = frame_mode
        self.grid_fps = grid_fps
        self.clip_seconds = clip_seconds
        self.video_ext = video_ext
        self.reader = reader
        if cache_frames and frame_mode != "middle":
            raise ValueError("cache_frames needs frame_mode='middle' (random frames differ on every access)")
        self.cache_frames = cache_frames
        self.random_crop = random_crop
        self.width = width
        self._frames: dict[int, np.ndarray] = {}  # row index -> (T, H, W, 3) uint8, when cache_frames

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        row = self.rows[i]
        if self.feature_dir is not None:
            suffix = ".tokens.npy" if self.feature_kind == "tokens" else ".npy"
            path = self.feature_dir / f"{row.vid}{suffix}"
            feats = load_npy(path, self.width)
            if feats.ndim != (3 if self.feature_kind == "tokens" else 2):
                raise DataError(f"{path}: expected {self.feature_kind} features, found shape {feats.shape}")
            w = int(row.start / self.clip_seconds)
            if w >= feats.shape[0]:
                raise DataError(f"{path}: has {feats.shape[0]} windows, but clip {row.start}-{row.end} s needs #{w}")
            x = np.array(feats[w], dtype=np.float32)
            video = torch.from_numpy(x if x.ndim == 2 else x[None])  # (L, C) or (1, C)
        else:
            video = self._pixels(i, row)
        meta = {"vid": row.vid, "start": row.start, "end": row.end, "sid": row.sid, "level": "clip"}
        return {"video": video, "video_mask": None, "text": None, "caption": row.caption, "meta": meta}

    def _cached_frames(self, i: int, row: ClipRow, path: Path) -> np.ndarray:
        if i not in self._frames:
            # decode every clip of this video in one pass and keep them all
            from videorecap.video.reader import iter_windows

            idx = sorted((j for j, r in enumerate(self.rows) if r.vid == row.vid), key=lambda j: self.rows[j].start)
            windows = [(self.rows[j].start, self.rows[j].end) for j in idx]
            for k, frames in iter_windows(path, windows, self.num_frames, grid_fps=self.grid_fps):
                self._frames[idx[k]] = frames
        return self._frames[i]

    def _pixels(self, i: int, row: ClipRow) -> torch.Tensor:
        from videorecap.video.transforms import eval_transform, train_transform

        assert self.video_root is not None
        path = self.video_root / f"{row.vid}{self.video_ext}"
        if not path.is_file():
            raise DataError(f"{path}: video file not found (clip {row.vid} {row.start}-{row.end} s)")
        rng = np.random.default_rng(_seed())
        mode = self.frame_mode if self.training else "middle"
        if self.cache_frames:
            frames = self._cached_frames(i, row, path)
        else:
            reader = self.reader
            if reader is None:
                from videorecap.video.reader import read_window as reader  # lazy: only the clip level decodes
            # (T, H, W, 3) uint8
            frames = reader(path, row.start, row.end, self.num_frames, mode=mode, rng=rng, grid_fps=self.grid_fps)
        if self.training and self.random_crop:
            return train_transform(frames, self.size, rng=rng)  # (3, T, size, size)
        return eval_transform(frames, self.size)


class _FeatureDataset(Dataset, abc.ABC):
    """Shared code of the segment and video levels: sampled CLS features + previous-level text."""

    level: Level

    def __init__(
        self,
        rows: Rows,
        *,
        feature_dir: str | os.PathLike[str],
        num_features: int,
        sampling: str,
        clip_seconds: float = 4.0,
        width: int | None = None,
    ) -> None:
        FeatureSampling(num_features, sampling)  # type: ignore[arg-type]  # checks both (ValueError)
        self.rows: list[dict[str, Any]] = _rows(rows, self.level)
        self.feature_dir = Path(feature_dir)
        self.num_features = num_features
        self.sampling = sampling
        self.clip_seconds = clip_seconds
        self.width = width

    def __len__(self) -> int:
        return len(self.rows)

    @abc.abstractmethod
    def _features(self, row: dict[str, Any]) -> tuple[np.ndarray, str]:
        """The row's (N, C) features and the file they came from (for error messages)."""

    def __getitem__(self, i: int) -> dict[str, Any]:
        row = self.rows[i]
        feats, source = self._features(row)
        if feats.shape[0] == 0:
            raise DataError(
                f"{source}: no feature rows for {self.level} {row['vid']} "
                f"{row.get('start_sec')}-{row.get('end_sec')} s (the file is too short)"
            )
        x, mask = feature_sampling.sample(np.asarray(feats, dtype=np.float32), self.num_features, self.sampling)
        meta = {
            "vid": row["vid"],
            "start": row.get("start_sec"),
            "end": row.get("end_sec"),
            "sid": row.get("sid"),
            "level": self.level,
        }
        return {
            "video": torch.from_numpy(np.ascontiguousarray(x)),  # (K, C)
            "video_mask": torch.from_numpy(mask) if mask is not None else None,  # (K,) bool
            "text": text.previous_text(self.level, row),
            "caption": row.get(TARGET_KEYS[self.level]),
            "meta": meta,
        }

    def _sliced(self, row: dict[str, Any]) -> tuple[np.ndarray, str]:
        path = self.feature_dir / f"{row['vid']}.npy"
        feats = load_npy(path, self.width)
        return feature_sampling.slice_features(feats, row.get("start_sec"), row.get("end_sec"), self.clip_seconds), str(
            path
        )


class SegmentDataset(_FeatureDataset):
    """Segment descriptions from sampled CLS features and the segment's clip captions.

    Args:
        rows: segment dicts, or a segments file (`.pkl`, `.json`, `.jsonl`).
        feature_dir: folder of `{vid}.npy` (whole-video) and/or `{sid}.npy` (per-segment) features.
        num_features: K (80 for the current official script, 40 for the released checkpoint; see `for_config`).
        sampling: "uniform" (the original's segment default) or "masking".
        clip_seconds: seconds per feature row.
        width: the model's feature width (`feature_width`): a feature file of another width is a DataError naming it.
    """

    level: Level = "segment"

    def _features(self, row: dict[str, Any]) -> tuple[np.ndarray, str]:
        sid = row.get("sid")
        if sid is None:
            return self._sliced(row)
        sid_path = self.feature_dir / f"{sid}.npy"
        if sid_path.is_file() or "start_sec" not in row:
            return load_npy(sid_path, self.width), str(sid_path)
        if (self.feature_dir / f"{row['vid']}.npy").is_file():
            return self._sliced(row)
        raise DataError(
            f"{self.feature_dir}: feature file not found for segment {sid}: neither {sid}.npy nor {row['vid']}.npy"
        )


class VideoDataset(_FeatureDataset):
    """Video summaries from sampled CLS features of the whole video and its segment descriptions.

    Args:
        rows: video dicts, or a videos file (`.json`, `.pkl`, `.jsonl`).
        feature_dir: folder of `{vid}.npy` whole-video features.
        segment_feature_dir: folder of `{sid}.npy` for rows with `sids` and no `end_sec` (default: feature_dir).
        num_features: K (256 for the current official script, 512 originally).
        sampling: "masking" (the original's video default) or "uniform".
        clip_seconds: seconds per feature row.
        width: the model's feature width (`feature_width`): a feature file of another width is a DataError naming it.
    """

    level: Level = "video"

    def __init__(
        self,
        rows: Rows,
        *,
        feature_dir: str | os.PathLike[str],
        num_features: int,
        sampling: str,
        clip_seconds: float = 4.0,
        segment_feature_dir: str | os.PathLike[str] | None = None,
        width: int | None = None,
    ) -> None:
        super().__init__(
            rows,
            feature_dir=feature_dir,
            num_features=num_features,
            sampling=sampling,
            clip_seconds=clip_seconds,
            width=width,
        )
        self.segment_feature_dir = Path(segment_feature_dir) if segment_feature_dir is not None else self.feature_dir

    def _features(self, row: dict[str, Any]) -> tuple[np.ndarray, str]:
        if "end_sec" in row:
            return self._sliced(row)
        paths = [self.segment_feature_dir / f"{s}.npy" for s in row["sids"]]
        if not paths:
            raise DataError(f"video {row['vid']}: no 'end_sec' and an empty 'sids' list")
        return np.concatenate([load_npy(p, self.width) for p in paths], axis=0), str(paths[0].parent)


SUMMARIZE_PROMPT = "Summarize: "
"""What the text-only model reads before its input (the original's text-only recipe, reference §10)."""


def summarize_input(text: str) -> str:
    """The text-only model's input: the prompt, then the lower level's text (the prompt is not repeated)."""
    text = text.strip()
    return text if text.startswith(SUMMARIZE_PROMPT) else SUMMARIZE_PROMPT + text


class TextPairDataset(Dataset):
    """(lower-level text -> upper-level text) pairs for the text-only model (`kind: text-summarizer`): no video.

    Segment rows give "clip captions -> segment description" (`captions_pred`, joined as `text.segment_text`),
    video rows give "segment descriptions -> video summary" (`segment_descriptions_pred`, `text.video_text`); the
    input is prefixed with `SUMMARIZE_PROMPT`. Rows without both texts are skipped. A sample has no `video`.

    Args:
        rows: `{"segment": segment rows or file, "video": video rows or file}` (either may be missing).
    """

    def __init__(self, rows: dict[str, Rows]) -> None:
        self.pairs: list[tuple[str, str, dict[str, Any]]] = []
        for level in ("segment", "video"):
            if rows.get(level) is None:
                continue
            for r in _rows(rows[level], level):  # type: ignore[arg-type]
                src, target = text.previous_text(level, r), r.get(TARGET_KEYS[level])
                if src and target:
                    meta = {"vid": r["vid"], "start": r.get("start_sec"), "end": r.get("end_sec"), "level": level}
                    self.pairs.append((summarize_input(src), str(target), meta))

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict[str, Any]:
        src, target, meta = self.pairs[i]
        return {"text": src, "caption": target, "meta": meta}


def for_config(
    level: Level,
    rows: Rows,
    cfg: RecapConfig,
    *,
    feature_dir: str | os.PathLike[str] | None = None,
    video_root: str | os.PathLike[str] | None = None,
    training: bool = False,
    io: LevelIO | None = None,
    **kwargs: Any,
) -> Dataset:
    """The dataset of one level with the model's sizes: frames and image size (clip), K and sampling (higher) from
    `io` (default: `cfg.io`; e.g. a model's level I/O with a command line's feature counts), and feature files
    checked against the width the model reads (`feature_width`). `kwargs` go to the dataset."""
    io = io or cfg.io
    if feature_dir is not None:
        kwargs.setdefault("width", feature_width(cfg))
    if level == "clip":
        return ClipDataset(
            rows,
            video_root=video_root,
            feature_dir=feature_dir,
            training=training,
            num_frames=cfg.encoder.num_frames,
            size=cfg.encoder.image_size,
            clip_seconds=io.clip_seconds,
            **kwargs,
        )
    if feature_dir is None:
        raise ValueError(f"the {level} level needs feature_dir")
    cls = SegmentDataset if level == "segment" else VideoDataset
    features = io.features(level)  # a recipe's level I/O, a checkpoint's, or one with a command line's counts
    return cls(
        rows,
        feature_dir=feature_dir,
        num_features=features.num_features,
        sampling=features.sampling,
        clip_seconds=io.clip_seconds,
        **kwargs,
    )
