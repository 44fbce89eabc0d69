"""Reading the sampled frames of many windows: one forward decode pass, flat memory, background prefetch.

`iter_windows` walks the file once from the first needed moment to the last, decoding every frame (video codecs
cannot skip) but converting to RGB only the frames a window samples, and keeps only the frames of windows that are
not complete yet; the moments to sample are computed window by window as the pass reaches them, not listed up
front. A frame is "the one on screen at time t": the last frame whose timestamp is <= t, so variable frame rate is
handled by timestamps, never by counting frames. Frames are turned upright by the stream's rotation
metadata. `read_window` is the random-access form for training: one seek, then decode to the window.

`prefetch(iterable, depth)` runs any producer (decode + transform) in a background thread, so a model consuming the
items only waits when decoding is the slower side. FFmpeg decodes and converts without holding the GIL.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import math
import os
import queue
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import av
import av.error
import numpy as np

from videorecap.errors import VideoError
from videorecap.runtime import decode_threads
from videorecap.video.io import VideoInfo, current_hw_decode, open_input, probe, video_stream
from videorecap.video.sampling import Windows, frame_times, grid_frame_ids

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Which frame each moment gets. Part of the fingerprint of every cache of frames' results (clip chunks, feature
# chunks), so that a run resumed after a change of the reader never mixes rows read both ways. 2: a timestamp tick
# of a whole frame no longer takes the next frame; seeks land on key frames (MPEG-TS).
READER_VERSION = 2

# Seek only when the first needed moment is this far in: below it decoding from 0 is about as cheap.
SEEK_MIN_SECONDS = 2.0


class _Targets:
    """The moments to sample of every window, in time order, computed as the decode pass reaches them.

    Only the windows around the decode position have their moments in memory, so a file that declares 10,000 h
    costs no more than one that declares 10 s before the first frame shows how much of it is really there. The
    order is that of sorting every `(moment, window, slot)` of every window: a window's moments are pushed on a
    heap once the earliest pending moment is not before the window's lower bound (`lower`, non-decreasing over the
    windows since they are sorted by start), so nothing that sorts earlier can still be missing.
    """

    def __init__(
        self,
        info: VideoInfo,
        windows: Sequence[tuple[float, float]],
        num_frames: int,
        mode: str,
        rng: np.random.Generator | None,
        grid_fps: float | None,
    ) -> None:
        self._windows, self._num_frames, self._mode, self._rng, self._grid = windows, num_frames, mode, rng, grid_fps
        # The original's grid: frame indices on a fixed `grid_fps` grid, clamped to the real frame count, read as
        # the index-th frame. For constant-rate video that frame is on screen at (index + 0.25) / real_fps; a
        # quarter frame in keeps the choice exact under timestamp rounding.
        self._fps = info.fps if info.fps > 0 else (grid_fps or 0.0)
        self._n = info.num_frames or max(1, int(round(info.duration * self._fps))) if grid_fps is not None else 0
        self._heap: list[tuple[float, int, int]] = []
        self._next = 0  # the first window whose moments are not on the heap yet
        self._latest = -math.inf  # the latest moment pushed so far

    def moments(self, w: int, mode: str | None = None, rng: np.random.Generator | None = None) -> list[float]:
        """The moments of window `w` (random ones draw from the generator, in window order)."""
        start, end = self._windows[w]
        mode = mode or self._mode
        if self._grid is None:
            return frame_times(start, end, self._num_frames, mode=mode, rng=rng)
        end = min(end, self._n / self._fps)  # the original clamps the window to the decoded length
        ids = grid_frame_ids(start, max(end, start), self._num_frames, fps=self._grid, jitter=mode == "random",
                             rng=rng, num_video_frames=self._n)  # fmt: skip
        return [(i + 0.25) / self._fps for i in ids]

    def _lower(self, w: int) -> float:
        """No moment of window `w` or of a later window is before this."""
        start = self._windows[w][0]
        if self._grid is None:
            return start  # frame_times stays inside the window
        # grid_frame_ids never goes below min(round(start * grid_fps), frames - 1)
        return (min(int(np.round(start * self._grid)), self._n - 1) + 0.25) / self._fps

    def _fill(self) -> None:
        while self._next < len(self._windows) and (not self._heap or self._lower(self._next) <= self._heap[0][0]):
            w = self._next
            for s, t in enumerate(self.moments(w, rng=self._rng)):
                heapq.heappush(self._heap, (t, w, s))
                self._latest = max(self._latest, t)
            self._next += 1

    def peek(self) -> float | None:
        """The earliest moment not given out yet (None when every window is done)."""
        self._fill()
        return self._heap[0][0] if self._heap else None

    def pop(self) -> tuple[float, int, int]:
        self._fill()
        return heapq.heappop(self._heap)

    def last(self) -> float:
        """The latest moment of all (exact for a window plan: the last window ends last; windows not reached yet
        are not drawn from the random generator, their middle moments stand for them)."""
        if self._next >= len(self._windows):
            return self._latest
        return max(self._latest, *self.moments(len(self._windows) - 1, mode="middle"))


def _to_rgb(frame: av.VideoFrame, rotation: int) -> np.ndarray:
    """Decoded frame -> (H, W, 3) uint8 RGB, turned upright (rotation is counter-clockwise degrees)."""
    img = frame.to_ndarray(format="rgb24")
    k = (rotation // 90) % 4
    if k:
        img = np.ascontiguousarray(np.rot90(img, k=k))
    return img


def iter_windows(
    path: str | os.PathLike[str],
    windows: Sequence[tuple[float, float]],
    num_frames: int = 4,
    *,
    mode: str = "middle",
    rng: np.random.Generator | None = None,
    grid_fps: float | None = None,
    info: VideoInfo | None = None,
    allow_partial: bool = False,
    seek: bool = True,
    threads: bool = True,
    hw_decode: str | None = "",
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield `(window_index, frames)` for every window, in window order, from one sequential decode pass.

    Args:
        path: the video file.
        windows: `(start, end)` seconds on the video clock, sorted by start (they may overlap).
        num_frames: frames per window (one per equal part of the window).
        mode: "middle" or "random" (training); see `sampling.frame_times`.
        rng: for "random".
        grid_fps: None samples by timestamp; 30 reproduces the original's fixed 30-fps frame-index grid.
        info: a `probe` result, to skip probing again.
        allow_partial: on a decode error or a file that ends early, stop after the windows decoded so far
            (logged as a warning) instead of raising.
        seek: seek once to the first window when it starts later than a couple of seconds in.
        threads: let FFmpeg decode with several threads (`runtime.decode_threads()`, 2 by default).
        hw_decode: decode on this hardware device ("cuda", see `io.hardware_decoder`), None in software; by default
            the process's setting (`io.set_hw_decode`, the CLI's `--hw-decode`: software unless given).

    Yields:
        `(i, frames)` with frames a (num_frames, H, W, 3) uint8 RGB array, H and W after rotation.

    Raises:
        VideoError: bad file, or a decode error / early end of stream (unless `allow_partial`).
    """
    if not windows:
        return
    # a `Windows` plan is sorted by construction (and may be huge: not walked here)
    if not isinstance(windows, Windows) and any(b[0] < a[0] for a, b in itertools.pairwise(windows)):
        raise ValueError("windows must be sorted by start time")
    info = info or probe(path)
    targets = _Targets(info, windows, num_frames, mode, rng, grid_fps)
    first_t = targets.peek()
    assert first_t is not None
    out = _Assembler(targets, len(windows), num_frames, info.rotation)
    hw = current_hw_decode() if hw_decode == "" else hw_decode
    state = _PassState()
    with contextlib.closing(_frames_from(path, info, first_t if seek else 0.0, threads, hw, state)) as frames:
        yield from _decode_pass(frames, info, targets, out, state)
    if targets.peek() is not None and not _end_of_stream(path, info, targets, out, state, allow_partial):
        return
    yield from out.ready()


class _Assembler:
    """The frames of the windows that have some but not all of their moments decoded; complete windows leave in
    window order."""

    def __init__(self, targets: _Targets, num_windows: int, num_frames: int, rotation: int) -> None:
        self.targets, self.num_windows, self.num_frames, self.rotation = targets, num_windows, num_frames, rotation
        self.slots: dict[int, list[np.ndarray | None]] = {}
        self.filled: dict[int, int] = {}
        self.next_emit = 0  # the next window to yield (= how many were yielded)

    def assign(self, rgb: np.ndarray, before: float) -> None:
        """Give `rgb` to every moment before `before`."""
        while (t := self.targets.peek()) is not None and t < before:
            _, w, s = self.targets.pop()
            self.slots.setdefault(w, [None] * self.num_frames)[s] = rgb
            self.filled[w] = self.filled.get(w, 0) + 1

    def ready(self) -> Iterator[tuple[int, np.ndarray]]:
        """The complete windows from the next one to yield on, in order."""
        while self.next_emit < self.num_windows and self.filled.get(self.next_emit, 0) == self.num_frames:
            frames = self.slots.pop(self.next_emit)
            del self.filled[self.next_emit]
            yield self.next_emit, np.stack(frames)  # type: ignore[arg-type]
            self.next_emit += 1


@dataclass
class _PassState:
    """Where the decode pass stopped: the last frame decoded (and its RGB, once converted), its time, and the
    decode error that stopped it, if any."""

    prev: av.VideoFrame | None = None
    prev_rgb: np.ndarray | None = None
    prev_time: float = -1.0
    error: str | None = None


def _tick(stream: Any) -> float:
    """The stream's time base in seconds."""
    return float(stream.time_base) if stream.time_base else 1e-6


def _open_stream(container: Any, path: str | os.PathLike[str], threads: bool) -> Any:
    """The video stream, set up to decode with FFmpeg's threads when `threads`."""
    stream = video_stream(container, path)
    if threads:
        stream.thread_type = "AUTO"
        # a small pool: more FFmpeg threads only compete with the model for the same cores (runtime.py)
        stream.codec_context.thread_count = decode_threads()
    return stream


def _frames_from(
    path: str | os.PathLike[str], info: VideoInfo, t: float, threads: bool, hw: str | None, state: _PassState
) -> Iterator[av.VideoFrame]:
    """The video's frames in decode order, from a key frame at or before video time `t` (from the start when `t`
    is within the first seconds, or when no seek lands before it). An FFmpeg error while decoding stops the frames
    and is kept in `state.error`."""
    seek = t > SEEK_MIN_SECONDS
    with open_input(path, hw_decode=hw) as container:
        stream = _open_stream(container, path, threads)
        frames = _seek_key_frame(container, stream, info, t, path) if seek else container.decode(stream)
        if frames is not None:
            yield from _guarded(frames, info, state)
            return
    # no seek landed at or before `t`: from the start, in the file opened again (some inputs cannot seek back)
    with open_input(path, hw_decode=hw) as container:
        yield from _guarded(container.decode(_open_stream(container, path, threads)), info, state)


def _guarded(frames: Iterator[av.VideoFrame], info: VideoInfo, state: _PassState) -> Iterator[av.VideoFrame]:
    """`frames` until the first decode error, which is kept in `state.error`."""
    try:
        yield from frames
    except av.error.FFmpegError as e:
        msg = " ".join(str(e).split())[:160]
        state.error = f"decode error after {max(state.prev_time, 0):.2f}s of {info.duration:.2f}s ({msg})"


def _seek_key_frame(
    container: Any, stream: Any, info: VideoInfo, t: float, path: str | os.PathLike[str]
) -> Iterator[av.VideoFrame] | None:
    """Seek to a key frame at or before video time `t` and return the frames decoded from it; None when no seek
    lands there (the caller decodes from the start).

    A demuxer's seek is not always exact: MPEG-TS and other formats without an index land on whatever packet is
    near the position asked for, so the first frames decoded may depend on frames before the seek (FFmpeg conceals
    them: wrong pictures), and the first key frame may come after `t`. So frames are skipped up to a key frame, and
    when that key frame is after `t` the seek is tried again 4 times further back (0.5, 2, 8, 32 ... s before `t`).
    """
    tick = _tick(stream)
    back = 0.5
    while t - back > 0:
        try:
            container.seek(int((info.start_time + t - back) / tick), stream=stream, backward=True, any_frame=False)
            frames = container.decode(stream)
            for frame in frames:
                ft = None if frame.time is None else frame.time - info.start_time
                if ft is not None and ft > t:
                    break  # no key frame up to `t` after this seek: from further back
                if frame.key_frame and ft is not None:
                    return itertools.chain([frame], frames)
            else:
                return None  # no key frame to the end of the stream after this position
        except av.error.FFmpegError as e:
            logger.debug("%s: seek to %.2fs failed (%s), decoding from the start", path, t - back, e)
            return None
        back *= 4
    return None


def _frame_eps(info: VideoInfo, tick: float) -> float:
    """How much later than a moment a frame's timestamp may be and still count as on screen at it: the rounding
    of one timestamp tick (1.5 ticks), but at most a quarter of the frame interval, since where the time base is one
    frame (AVI, many MP4 files), 1.5 ticks would take the next frame, or the one after it."""
    eps = 1.5 * tick
    if info.frame_interval > 0:
        eps = min(eps, 0.25 * info.frame_interval)
    return eps + 1e-9


def _decode_pass(
    frames: Iterator[av.VideoFrame], info: VideoInfo, targets: _Targets, out: _Assembler, state: _PassState
) -> Iterator[tuple[int, np.ndarray]]:
    """Decode forward, giving every moment the frame on screen at it, and yield windows as they complete; stops once
    every moment has its frame or at the end of `frames` (`_frames_from`: the end of the stream or a decode error)."""
    eps: float | None = None
    frame_no = 0
    for frame in frames:
        if eps is None:
            eps = _frame_eps(info, float(frame.time_base) if frame.time_base else 1e-6)
        if frame.time is not None:
            ft = frame.time - info.start_time
        else:  # no timestamp at all: fall back to the nominal rate
            ft = frame_no * info.frame_interval
        frame_no += 1
        if ft + eps < state.prev_time:
            continue  # out-of-order leftover after a seek
        # Targets strictly before this frame show the previous frame (or this one, if it is the first).
        t = targets.peek()
        if t is not None and t < ft - eps:
            if state.prev is None:
                state.prev, state.prev_rgb = frame, None
            if state.prev_rgb is None:
                state.prev_rgb = _to_rgb(state.prev, out.rotation)
            out.assign(state.prev_rgb, ft - eps)
            yield from out.ready()
            if targets.peek() is None:
                break
        state.prev, state.prev_rgb, state.prev_time = frame, None, ft


def _end_of_stream(
    path: str | os.PathLike[str],
    info: VideoInfo,
    targets: _Targets,
    out: _Assembler,
    state: _PassState,
    allow_partial: bool,
) -> bool:
    """Moments are left after the pass: they show the last frame (true), unless the stream ended well before the
    duration the file claims (a truncated download) or a decode error stopped it: then a VideoError, or, with
    `allow_partial`, a warning and false (keep the windows yielded so far)."""
    pending = targets.peek()
    if state.prev is None:
        raise VideoError(f"{path}: no frame decodes after {pending:.2f}s; corrupt or truncated video")
    error = state.error
    shortfall = info.duration - (state.prev_time + info.frame_interval)
    if error is None and shortfall > max(1.0, 3 * info.frame_interval) and targets.last() > state.prev_time + 1.0:
        error = f"truncated: frames stop at {state.prev_time:.2f}s of the {info.duration:.2f}s the file claims"
    if error is not None:
        if not allow_partial:
            raise VideoError(f"{path}: corrupt or truncated video: {error}")
        logger.warning("%s: %s; keeping the %d windows decoded so far", path, error, out.next_emit)
        return False
    out.assign(state.prev_rgb if state.prev_rgb is not None else _to_rgb(state.prev, out.rotation), math.inf)
    return True


def read_window(
    path: str | os.PathLike[str],
    start: float,
    end: float,
    num_frames: int = 4,
    *,
    mode: str = "middle",
    rng: np.random.Generator | None = None,
    grid_fps: float | None = None,
    info: VideoInfo | None = None,
) -> np.ndarray:
    """The (num_frames, H, W, 3) uint8 frames of one window: one seek, then decode up to the window (training)."""
    for _, frames in iter_windows(
        path, [(start, end)], num_frames, mode=mode, rng=rng, grid_fps=grid_fps, info=info, threads=False
    ):
        return frames
    raise VideoError(f"{path}: no frames in window [{start:.2f}, {end:.2f})")


# ---- background prefetch ----------------------------------------------------------------------------------------
_DONE = object()


class _Error:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class Prefetcher(Generic[T]):
    """Iterate `iterable` in a background thread, keeping up to `depth` items ready.

    Exceptions of the producer are re-raised in the consumer at the point they happened. `wait_seconds` is the
    time the consumer spent blocked waiting for an item (0 when the producer keeps ahead). Use as a context manager
    or call `close()` to stop the producer early.
    """

    def __init__(self, iterable: Iterable[T], depth: int = 4) -> None:
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._iterable = iterable
        self.wait_seconds = 0.0
        self.items = 0
        self._finished = False
        self._thread = threading.Thread(target=self._run, name="videorecap-prefetch", daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self._iterable:
                if not self._put(item):
                    return
            self._put(_DONE)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            self._put(_Error(e))
        finally:
            close = getattr(self._iterable, "close", None)
            if self._stop.is_set() and callable(close):
                try:
                    close()
                except Exception:  # noqa: BLE001 - best effort cleanup of a generator
                    pass

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        if self._finished:
            raise StopIteration
        t0 = time.perf_counter()
        item = self._queue.get()
        self.wait_seconds += time.perf_counter() - t0
        if item is _DONE:
            self._finished = True
            self._thread.join()
            raise StopIteration
        if isinstance(item, _Error):
            self._finished = True
            self._thread.join()
            raise item.exc
        self.items += 1
        return item

    def close(self) -> None:
        """Stop the producer and wait for its thread."""
        self._stop.set()
        self._finished = True
        while True:  # unblock a producer waiting on a full queue
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join(timeout=10)

    def __enter__(self) -> Prefetcher[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def prefetch(iterable: Iterable[T], depth: int = 4) -> Prefetcher[T]:
    """`Prefetcher(iterable, depth)`: run `iterable` ahead in a background thread."""
    return Prefetcher(iterable, depth)
