"""Frames of a live stream -> the clip windows `caption` cuts from the same recording, with the same frames.

Window `k` is `[k * c, k * c + c)`; its moments are `sampling.frame_times` (the middle of each of T equal parts),
and a moment shows the frame on screen then: the last frame whose time is at or before it (`video.reader`'s rule,
with its one-tick rounding), or the first frame for a moment before every frame. Because `window_plan` joins a
last window shorter than `min_tail` seconds to the one before, window `k` is final only once a frame at or after
`(k + 1) * c + min_tail` has arrived; at the end of the stream `finish(duration)` cuts the remaining windows exactly as
`window_plan(duration)` does.

So that the model need not wait for that `min_tail`, window `k` is also given out *early* (`LiveWindow.early`), with
the frames it will have if it is final, as soon as a frame at or after its end arrives: every frame it shows is in
by then (frames come in time order). The final window that follows has the same span and frames, unless the stream
ended within `min_tail` of its end and the tail joined it (`finish`); then it has a new frames array. The caller
captions the early one, and emits that caption when the final one comes with the same span (`live.session`).

A window inside a hole of the stream (no frame in it, and the frames around it more than a window apart: a
disconnect) is returned as skipped ("gap") instead of being captioned from a frozen picture. Only the frames the
open windows can still need are kept (about `c + min_tail` seconds of decoded frames).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np

from videorecap.live.source import LiveFrame
from videorecap.video.reader import _to_rgb
from videorecap.video.sampling import clip_windows, frame_times


@dataclass
class LiveWindow:
    """One clip window, ready to caption (or skipped)."""

    index: int
    start: float
    end: float
    frames: np.ndarray | None  # (T, H, W, 3) uint8 RGB, upright; None when skipped
    ready: float  # time.monotonic() when the stream passed the window's end: where its latency is counted from
    skipped: str | None = None  # "gap" (a hole in the stream) or "lag" (dropped to keep up)
    early: bool = False  # given out before it is final (see the module docstring); never skipped

    @property
    def span(self) -> tuple[float, float]:
        return (self.start, self.end)


class Windower:
    """Feed frames in time order (`push`), get the finished windows; `finish(duration)` at the end of the stream."""

    def __init__(
        self, clip_seconds: float, num_frames: int, min_tail: float, *, first_index: int = 0, rotation: int = 0
    ) -> None:
        self.c = clip_seconds
        self.num_frames = num_frames
        self.min_tail = min_tail
        self.next = first_index  # the first window not given out yet
        self.rotation = rotation
        self.eps = 1e-6
        self._times: list[float] = []
        self._frames: list[LiveFrame] = []
        self._passed: dict[int, float] = {}  # window -> when the stream passed its end
        self._early: dict[int, LiveWindow] = {}  # windows given out early, not final yet (gaps are not given)

    def push(self, f: LiveFrame) -> list[LiveWindow]:
        if self._times and f.t < self._times[-1]:
            return []  # out of order: ignored, as the file reader does
        self._times.append(f.t)
        self._frames.append(f)
        k = max(self.next, int(f.t // self.c) - 1)
        while (k + 1) * self.c <= f.t:  # the windows whose end this frame passed
            self._passed.setdefault(k, f.arrived)
            k += 1
        out: list[LiveWindow] = []
        if f.t < self.next * self.c:
            self._prune()  # frames before the first window of a resumed file: only the last one can be needed
        while f.t >= (self.next + 1) * self.c + self.min_tail:
            s = self.next * self.c
            out.append(self._make(self.next, s, s + self.c))
        for k in sorted(self._passed.keys() - self._early.keys()):  # passed its end, not final: early (not gaps)
            w = self._early[k] = self._pick(k, k * self.c, (k + 1) * self.c, self._passed[k])
            if w.skipped is None:
                w.early = True
                out.append(w)
        return out

    def finish(self, duration: float, arrived: float) -> list[LiveWindow]:
        """The stream ended at `duration`: the remaining windows of `clip_windows(duration, c, min_tail)`."""
        plan = clip_windows(duration, self.c, self.min_tail)
        out = []
        while self.next < len(plan):
            s, e = plan[self.next]
            self._passed.setdefault(self.next, arrived)
            out.append(self._make(self.next, s, e))
        return out

    def _make(self, k: int, s: float, e: float) -> LiveWindow:
        """Window `k`, final: the next one is `k + 1`, and the frames only `k` could need are dropped."""
        ready = self._passed.pop(k, self._frames[-1].arrived if self._frames else 0.0)
        early = self._early.pop(k, None)
        self.next = k + 1
        if early is not None and early.span == (s, e):  # the same window: the same frames (the same array)
            win = LiveWindow(k, s, e, early.frames, ready, early.skipped)
        else:
            win = self._pick(k, s, e, ready)
        self._prune()
        return win

    def _pick(self, k: int, s: float, e: float, ready: float) -> LiveWindow:
        """Window `k` over `[s, e)` from the frames kept (skipped as a gap when it has none); changes nothing."""
        times = self._times
        if not times:
            return LiveWindow(k, s, e, None, ready, "gap")
        i = bisect.bisect_left(times, s - self.eps)  # the first frame in the window
        inside = i < len(times) and times[i] < e
        before = times[i - 1] if i > 0 else None
        after = times[i] if i < len(times) else None
        if not inside and before is not None and (after is None or after - before > self.c):
            win = LiveWindow(k, s, e, None, ready, "gap")
        else:
            rgb: dict[int, np.ndarray] = {}
            picks = []
            for m in frame_times(s, e, self.num_frames):
                j = max(bisect.bisect_right(times, m + self.eps) - 1, 0)  # on screen at m (the first, if before)
                if j not in rgb:
                    rgb[j] = _to_rgb(self._frames[j].frame, self.rotation)
                picks.append(rgb[j])
            win = LiveWindow(k, s, e, np.stack(picks), ready)
        return win

    def _prune(self) -> None:
        """Drop the frames no open window can need: all before the last one at or before the next window's start."""
        s = self.next * self.c
        j = bisect.bisect_right(self._times, s + self.eps) - 1
        if j > 0:
            del self._times[:j]
            del self._frames[:j]
