"""Window plans and frame sampling.

A video is cut into windows at three levels: 4-s clip windows `[i, min(i + 4, dur))` for `i = 0, 4, 8, ...`,
180-s segment windows the same way, and the whole video. `window_plan` is the plan `caption` and `features` use:
a last clip window shorter than `min_tail_seconds` (1 s by default) joins the previous window, so a 4.004-s video
gets one 4.004-s window instead of a second one of 4 ms that would get a whole caption of its own; a last segment
window shorter than one clip window joins the previous segment the same way. `min_tail_seconds=0` gives the
original's plan (every tail kept), which `clip_windows`/`segment_windows` give by default. Plans are `Windows`
sequences that compute window `i` on demand, so a header that claims 10,000 h costs nothing until frames are decoded.

Each window is split into `num_frames` equal parts and one frame is taken per part: the middle one (inference,
feature extraction) or a random one (training).

By default frames are chosen **by timestamp**, so a 25-fps or variable-frame-rate video samples the same moments as
a 30-fps one. The original code instead maps a window onto a fixed 30-fps frame-index grid whatever the real rate
is (LaViLa `get_frame_ids`, numpy half-to-even rounding, a span of at least `num_frames` frames); `grid_frame_ids`
reproduces that exactly, and `frame_times(..., grid_fps=30)` gives the moments that grid stands for.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import overload

import numpy as np

Window = tuple[float, float]

# A last clip window shorter than this joins the previous one (`window_plan`; `--min-tail-seconds`).
DEFAULT_MIN_TAIL_SECONDS = 1.0


class Windows(Sequence[Window]):
    """The windows `[i * step, min((i + 1) * step, duration))`, computed on demand: O(1) memory whatever the duration.

    A file may declare any duration (a broken header can claim 10,000 h for 10 s of frames); a list of every window
    would cost gigabytes before a single frame is decoded. The values are exactly those of `np.arange(0, duration,
    step)` (the original's plan): `ceil(duration / step)` windows, start `i * step`, the last one cut at `duration`,
    and a last window shorter than `min_tail` joined to the previous one. Slicing gives another `Windows`; it
    compares equal to any sequence of the same `(start, end)` pairs.
    """

    __slots__ = ("_duration", "_last", "_range", "_step")

    def __init__(self, duration: float, step: float, min_tail: float = 0.0, _range: range | None = None) -> None:
        if not step > 0 or not math.isfinite(step):
            raise ValueError(f"window length must be positive, got {step}")
        if not min_tail >= 0:
            raise ValueError(f"the minimum tail must be >= 0, got {min_tail}")
        if not math.isfinite(duration):
            raise ValueError(f"the duration must be finite, got {duration}")
        self._duration, self._step = float(duration), float(step)
        n = math.ceil(duration / step) if duration > 0 else 0  # len(np.arange(0.0, duration, step))
        if n > 1 and duration - (n - 1) * step < min_tail:
            # a sliver at the end would get a full caption of its own: the previous window takes it (and samples
            # its frames over the longer span); a video shorter than the minimum still keeps its one window
            n -= 1
        self._last = n - 1  # the window that ends at `duration`
        self._range = range(n) if _range is None else _range

    def _window(self, i: int) -> Window:
        start = i * self._step
        return (start, self._duration if i == self._last else min(start + self._step, self._duration))

    def __len__(self) -> int:
        return len(self._range)

    @overload
    def __getitem__(self, index: int) -> Window: ...

    @overload
    def __getitem__(self, index: slice) -> Windows: ...

    def __getitem__(self, index: int | slice) -> Window | Windows:
        if isinstance(index, slice):
            out = Windows.__new__(Windows)
            out._duration, out._step, out._last, out._range = self._duration, self._step, self._last, self._range[index]
            return out
        return self._window(self._range[index])

    def __iter__(self) -> Iterator[Window]:
        return map(self._window, self._range)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str | bytes) or len(other) != len(self):
            return NotImplemented if not isinstance(other, Sequence) else False
        return all(tuple(a) == b for b, a in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment] - equal to lists, which are not hashable either

    def __repr__(self) -> str:
        head = ", ".join(map(str, self[:3]))
        return f"Windows([{head}{', ...' if len(self) > 3 else ''}], n={len(self)})"


def _windows(duration: float, step: float, min_tail: float = 0.0) -> Windows:
    return Windows(duration, step, min_tail)


def clip_windows(duration: float, clip_seconds: float = 4.0, min_tail_seconds: float = 0.0) -> Windows:
    """`[i, min(i + clip_seconds, duration))` for `i` in `0, clip_seconds, ...`: `ceil(duration / clip_seconds)`.

    A last window shorter than `min_tail_seconds` is merged into the previous one (0: never, the original's plan).
    """
    return _windows(duration, clip_seconds, min_tail_seconds)


def segment_windows(duration: float, segment_seconds: float = 180.0, min_tail_seconds: float = 0.0) -> Windows:
    """Segment windows, built like `clip_windows` with `segment_seconds`."""
    return _windows(duration, segment_seconds, min_tail_seconds)


@dataclass(frozen=True)
class WindowPlan:
    """The clip and segment windows of one video (the video level is the whole video)."""

    clips: Windows
    segments: Windows


def window_plan(
    duration: float,
    clip_seconds: float = 4.0,
    segment_seconds: float = 180.0,
    min_tail_seconds: float = DEFAULT_MIN_TAIL_SECONDS,
) -> WindowPlan:
    """The windows `videorecap caption` and `videorecap features` use for a video of `duration` seconds.

    A last clip window shorter than `min_tail_seconds` joins the previous clip window; a last segment window
    shorter than one clip window (or than `min_tail_seconds`, if larger) joins the previous segment, since it could
    not hold a whole clip caption. `min_tail_seconds=0` keeps every tail (the original's plan).
    """
    return WindowPlan(
        clips=clip_windows(duration, clip_seconds, min_tail_seconds),
        segments=segment_windows(duration, segment_seconds, segment_min_tail(clip_seconds, min_tail_seconds)),
    )


def segment_min_tail(clip_seconds: float, min_tail_seconds: float = DEFAULT_MIN_TAIL_SECONDS) -> float:
    """The shortest last segment window `window_plan` keeps on its own: one clip window (or `min_tail_seconds`, if
    larger), since a shorter one could not hold a whole clip caption; 0 (every tail kept) when `min_tail_seconds`
    is 0."""
    return max(min_tail_seconds, clip_seconds) if min_tail_seconds > 0 else 0.0


def video_window(duration: float) -> list[Window]:
    """The whole video as one window."""
    return [(0.0, float(duration))] if duration > 0 else []


def segment_feature_windows(start: float, end: float, min_windows: int = 45, clip_seconds: float = 4.0) -> list[Window]:
    """Windows of the original's per-segment features (`{sid}.npy`): one per `clip_seconds`, but at least
    `min_windows`: step `min((end - start) / min_windows, clip_seconds)`, windows `[t, min(t + step, end))`."""
    if end <= start:
        return []
    step = min((end - start) / min_windows, clip_seconds)
    return [(float(t), float(min(t + step, end))) for t in np.arange(start, end, step, dtype=np.float64)]


def num_clip_windows(duration: float, clip_seconds: float = 4.0) -> int:
    """`len(clip_windows(duration, clip_seconds))`."""
    return len(clip_windows(duration, clip_seconds))


def frame_times(
    start: float,
    end: float,
    num_frames: int = 4,
    mode: str = "middle",
    rng: np.random.Generator | None = None,
    grid_fps: float | None = None,
    num_video_frames: int | None = None,
) -> list[float]:
    """The moments (seconds) to sample from the window `[start, end)`, sorted.

    Args:
        start: window start in seconds.
        end: window end in seconds.
        num_frames: how many equal parts the window is split into (one frame each).
        mode: "middle" (inference) or "random" (training: a uniformly random moment in each part).
        rng: numpy Generator for "random" (a fresh one when None).
        grid_fps: None samples by timestamp. A rate (30 for the original) uses the original's frame-index grid
            (`grid_frame_ids`) and returns `index / grid_fps`.
        num_video_frames: only with `grid_fps`: frames in the video, for the original's end-of-video clamping.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if mode not in ("middle", "random"):
        raise ValueError(f"mode must be 'middle' or 'random', not {mode!r}")
    if grid_fps is not None:
        ids = grid_frame_ids(start, end, num_frames, fps=grid_fps, jitter=mode == "random", rng=rng,
                             num_video_frames=num_video_frames)  # fmt: skip
        return [i / grid_fps for i in ids]
    if end < start:
        raise ValueError(f"window end {end} is before its start {start}")
    part = (end - start) / num_frames
    if mode == "middle":
        return [start + (i + 0.5) * part for i in range(num_frames)]
    rng = rng if rng is not None else np.random.default_rng()
    return [start + (i + float(rng.random())) * part for i in range(num_frames)]


def get_frame_ids(
    start_frame: int, end_frame: int, num_segments: int, jitter: bool = False, rng: np.random.Generator | None = None
) -> list[int]:
    """LaViLa's `get_frame_ids`: `num_segments` equal parts of `[start_frame, end_frame)`, middle (or random) id.

    Part `i` spans `round(i * size) + start` to `min(round((i + 1) * size) + start, end)` with
    `size = (end - start - 1) / n` and numpy's half-to-even rounding; the middle is `(a + b) // 2`, the random pick
    an integer in `[a, b]` inclusive.
    """
    size = float(end_frame - start_frame - 1) / num_segments
    ids = []
    for i in range(num_segments):
        a = int(np.round(size * i) + start_frame)
        b = min(int(np.round(size * (i + 1)) + start_frame), end_frame)
        if jitter:
            rng = rng if rng is not None else np.random.default_rng()
            ids.append(int(rng.integers(a, b + 1)))
        else:
            ids.append((a + b) // 2)
    return ids


def grid_frame_ids(
    start: float,
    end: float,
    num_frames: int = 4,
    fps: float = 30.0,
    jitter: bool = False,
    rng: np.random.Generator | None = None,
    num_video_frames: int | None = None,
) -> list[int]:
    """Frame indices the original picks for `[start, end)` on its fixed-rate grid (decord, `chunk_len=-1`).

    `offset = round(start * fps)` (half-to-even), span `max(int((end - start) * fps), num_frames)` frames, then
    `get_frame_ids`. With `num_video_frames` the original's clamping at the end of the video applies: the span is cut
    at the last frame, and if an id still falls past it the ids are re-sampled inside
    `[min(offset, n - 1), n)`.
    """
    offset = int(np.round(start * fps))
    span = max(int((end - start) * fps), num_frames)
    stop = offset + span
    if num_video_frames is not None:
        stop = min(stop, num_video_frames)
    ids = get_frame_ids(offset, stop, num_frames, jitter=jitter, rng=rng)
    if num_video_frames is not None and max(ids) >= num_video_frames:
        ids = get_frame_ids(min(offset, num_video_frames - 1), num_video_frames, num_frames, jitter=jitter, rng=rng)
    return ids


def windows_for(
    duration: float, level: str, clip_seconds: float = 4.0, segment_seconds: float = 180.0
) -> Sequence[Window]:
    """The window plan of one level: "clip", "segment" or "video"."""
    if level == "clip":
        return clip_windows(duration, clip_seconds)
    if level == "segment":
        return segment_windows(duration, segment_seconds)
    if level == "video":
        return video_window(duration)
    raise ValueError(f"unknown level {level!r}; expected clip, segment or video")
