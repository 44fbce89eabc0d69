"""live.windows cuts the windows `caption` cuts, with the same frames, from frames that arrive one by one."""

from __future__ import annotations

import time
from pathlib import Path

import av
import numpy as np
import pytest

from videorecap.live.source import LiveFrame
from videorecap.live.windows import Windower
from videorecap.video.io import probe
from videorecap.video.reader import iter_windows
from videorecap.video.sampling import clip_windows
from videorecap.video.testing import make_video


def _live_windows(path: Path, min_tail: float, duration: float) -> list:
    info = probe(path)
    w = Windower(4.0, 4, min_tail)
    out = []
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        w.eps = 1.5 * float(stream.time_base) + 1e-9
        for frame in c.decode(stream):
            out += w.push(LiveFrame(frame.time - info.start_time, frame, time.monotonic()))
    return out + w.finish(duration, time.monotonic())


@pytest.mark.parametrize("duration", [22.5, 20.5, 3.0])  # a tail kept, a 0.5-s tail joined, one short window
def test_windows_and_frames_equal_the_file_reader(tmp_path: Path, duration: float) -> None:
    path = make_video(tmp_path / "v.ts", duration=duration, fps=10, size=(32, 24))
    info = probe(path)
    plan = clip_windows(info.duration, 4.0, 1.0)
    want = list(iter_windows(path, plan, 4, info=info))
    given = _live_windows(path, 1.0, info.duration)
    got = [g for g in given if not g.early]
    assert [(g.start, g.end) for g in got] == list(plan)
    assert [g.index for g in got] == list(range(len(plan)))
    for (i, frames), g in zip(want, got, strict=True):
        assert g.skipped is None and np.array_equal(frames, g.frames), f"window {i}"


@pytest.mark.parametrize("duration", [22.5, 20.5])  # the last window as it passed its end, or with the tail joined
def test_a_window_is_given_early_when_the_stream_passes_its_end(tmp_path: Path, duration: float) -> None:
    """Window k comes early once a frame at or after its end arrives, before the minimum tail makes it final; the
    final one has the very same frames, except a last window that the tail joined (new frames, the longer span)."""
    path = make_video(tmp_path / "v.ts", duration=duration, fps=10, size=(32, 24))
    info = probe(path)
    given = _live_windows(path, 1.0, info.duration)
    early = {g.index: (n, g) for n, g in enumerate(given) if g.early}
    final = {g.index: (n, g) for n, g in enumerate(given) if not g.early}
    assert sorted(early) == [0, 1, 2, 3, 4]  # the windows whose end the stream passed: [20, 22.5) ends with it
    assert all(g.skipped is None and (g.start, g.end) == (4 * k, 4 * k + 4) for k, (_, g) in early.items())
    for k, (n, g) in early.items():
        m, f = final[k]
        assert n < m  # given out before it is final
        joined = f.end != g.end
        assert joined == (duration == 20.5 and k == 4)
        assert (f.frames is g.frames) != joined  # the same frames, or new ones for the longer span
    # with no minimum tail a window is final as the stream passes its end: nothing comes early
    assert not any(g.early for g in _live_windows(path, 0.0, info.duration))


def test_a_hole_in_the_stream_is_skipped_not_frozen(tmp_path: Path) -> None:
    path = make_video(tmp_path / "v.ts", duration=20.0, fps=5, size=(32, 24))
    w = Windower(4.0, 4, 1.0)
    out = []
    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            t = float(frame.time)
            if 5.0 <= t < 14.0:
                continue  # the source was away from 5 s to 14 s: windows [8, 12) has no frame at all
            out += w.push(LiveFrame(t, frame, time.monotonic()))
    out += w.finish(20.0, time.monotonic())
    final = [x for x in out if not x.early]
    assert [(x.start, x.skipped) for x in final] == [(0.0, None), (4.0, None), (8.0, "gap"), (12.0, None),
                                                     (16.0, None)]  # fmt: skip
    assert 8.0 not in [x.start for x in out if x.early]  # a gap is not given early (nothing to caption)
