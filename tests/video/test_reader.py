from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from videorecap.errors import VideoError
from videorecap.video.io import probe
from videorecap.video.reader import iter_windows, prefetch, read_window
from videorecap.video.sampling import clip_windows
from videorecap.video.testing import frame_index_of, make_video, truncate, vfr_times


def _indices(frames: np.ndarray) -> list[int]:
    return [frame_index_of(f) for f in frames]


def test_one_pass_samples_the_middle_of_each_part(videos):
    # 5 fps: the frame on screen at t is floor(5 t)
    out = list(iter_windows(videos["cfr"], clip_windows(10.0), 4))
    assert [i for i, _ in out] == [0, 1, 2]
    assert out[0][1].shape == (4, 24, 32, 3) and out[0][1].dtype == np.uint8
    assert _indices(out[0][1]) == [2, 7, 12, 17]  # t = 0.5, 1.5, 2.5, 3.5
    assert _indices(out[1][1]) == [22, 27, 32, 37]
    assert _indices(out[2][1]) == [41, 43, 46, 48]  # the last window is 2 s: t = 8.25, 8.75, 9.25, 9.75


def test_25fps_sampled_by_timestamp(videos):
    ((_, frames),) = iter_windows(videos["fps25"], [(0.0, 2.0)], 4)
    assert _indices(frames) == [6, 18, 31, 43]  # floor(25 * [0.25, 0.75, 1.25, 1.75])


def test_vfr_sampled_by_timestamp_not_by_count(videos):
    times = vfr_times(4.0, 10.0)
    ((_, frames),) = iter_windows(videos["vfr"], [(0.0, 4.0)], 3)
    targets = (2 / 3, 2.0, 10 / 3)
    expected = [max(i for i, t in enumerate(times) if t <= target) % 64 for target in targets]
    assert _indices(frames) == expected
    # counting frames at the average rate (10 fps) would pick frames 6, 20, 33: other moments
    assert expected != [6, 20, 33]


def test_rotation_is_applied(videos):
    ((_, frames),) = iter_windows(videos["rot90"], [(0.0, 2.0)], 2)
    assert frames.shape == (2, 32, 16, 3)  # stored 32x16, shown upright as 16 wide, 32 high


def test_rotation_direction(tmp_path: Path):
    # left half dark, right half bright; turned 90 degrees counter-clockwise the bright half is on top
    import av

    p = tmp_path / "r.mkv"
    with av.open(str(p), "w") as c:
        s = c.add_stream("ffv1", rate=2)
        s.width, s.height, s.pix_fmt = 16, 8, "yuv444p"
        s.set_display_rotation(90)
        img = np.zeros((8, 16, 3), np.uint8)
        img[:, 8:] = 255
        for _ in range(2):
            for pk in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(pk)
        for pk in s.encode():
            c.mux(pk)
    frames = read_window(p, 0.0, 1.0, 1)
    assert frames.shape == (1, 16, 8, 3)
    assert frames[0, :8].mean() > 200 and frames[0, 8:].mean() < 50


def test_grid_mode_reproduces_frame_indices(tmp_path: Path):
    # a 30-fps video: the original's grid picks frames 15, 45, 74, 104 of the first window
    p = make_video(tmp_path / "f30.mkv", duration=4, fps=30, size=(16, 16), codec="ffv1")
    ((_, frames),) = iter_windows(p, [(0.0, 4.0)], 4, grid_fps=30)
    assert _indices(frames) == [15 % 64, 45 % 64, 74 % 64, 104 % 64]
    # by timestamp the same window samples t = 0.5, 1.5, 2.5, 3.5 s: frames 15, 45, 75, 105
    ((_, frames),) = iter_windows(p, [(0.0, 4.0)], 4)
    assert _indices(frames) == [15 % 64, 45 % 64, 75 % 64, 105 % 64]


@pytest.mark.parametrize("fps", [30, 10, 1])
def test_a_time_base_of_one_frame_gives_the_frame_on_screen(tmp_path: Path, fps: int):
    # AVI (and many MP4 files) count time in frames: each timestamp tick is a whole frame, and a moment on a frame's
    # start must still get that frame, not the next one (a 1-fps timelapse was read 2 s late)
    p = make_video(tmp_path / "f.avi", duration=12, fps=fps, size=(16, 16), codec="mjpeg", pix_fmt="yuvj420p")
    assert probe(p).duration == pytest.approx(12)
    windows = clip_windows(12.0)
    got = [_indices(f) for _, f in iter_windows(p, windows, 4)]
    assert got == [[int(fps * t) % 64 for t in (s + 0.5, s + 1.5, s + 2.5, s + 3.5)] for s, _ in windows]
    if fps == 30:  # and the original's grid reads the same frames as from a fine time base (the test above)
        ((_, frames),) = iter_windows(p, [(0.0, 4.0)], 4, grid_fps=30)
        assert _indices(frames) == [15 % 64, 45 % 64, 74 % 64, 104 % 64]


def test_seeking_in_mpeg_ts_lands_on_a_key_frame(tmp_path: Path):
    # MPEG-TS has no index: a seek lands on any packet near the time asked for, and the frames decoded from there
    # lack their references (FFmpeg conceals them: wrong pictures), or the first key frame comes after the window
    p = make_video(tmp_path / "t.ts", duration=30, fps=10, size=(32, 24), options={"g": "50"})  # a key frame per 5 s
    windows = clip_windows(probe(p).duration)
    full = dict(iter_windows(p, windows, 4))
    assert _indices(full[3]) == [125 % 64, 135 % 64, 145 % 64, 155 % 64]
    for first in (1, 3, 4, 6):  # a resumed run starts late: one seek, then the same frames as the full pass
        later = dict(iter_windows(p, windows[first:], 4))
        assert all(np.array_equal(frames, full[first + j]) for j, frames in later.items()), first
    for i in (2, 3, 5, 7):  # training reads one window
        start, end = windows[i]
        assert np.array_equal(read_window(p, start, end, 4), full[i]), i


def test_read_window_equals_the_one_pass_reader(videos):
    every = dict(iter_windows(videos["long"], clip_windows(30.0), 4))
    for i in (0, 3, 7):
        start, end = clip_windows(30.0)[i]
        assert np.array_equal(read_window(videos["long"], start, end, 4), every[i])


def test_iter_windows_starting_late_seeks(videos):
    # windows from 20 s on: one seek, same frames as the full pass
    full = dict(iter_windows(videos["long"], clip_windows(30.0), 4))
    later = list(iter_windows(videos["long"], clip_windows(30.0)[5:], 4))
    assert len(later) == 3
    for j, frames in later:
        assert np.array_equal(frames, full[j + 5])


def test_overlapping_windows_and_random_mode(videos):
    ws = [(0.0, 4.0), (2.0, 6.0), (4.0, 8.0)]
    out = list(iter_windows(videos["cfr"], ws, 2))
    assert [_indices(f) for _, f in out] == [[5, 15], [15, 25], [25, 35]]
    rng = np.random.default_rng(0)
    for _, f in iter_windows(videos["cfr"], clip_windows(8.0), 4, mode="random", rng=rng):
        idx = _indices(f)
        assert idx == sorted(idx)


def test_window_past_the_end_shows_the_last_frame(videos):
    ((_, frames),) = iter_windows(videos["cfr"], [(9.5, 12.0)], 2)
    assert _indices(frames) == [49, 49]


def test_truncated_stream_raises_or_keeps_partial(tmp_path: Path):
    # an mkv cut in the middle still opens; its frames stop early
    p = make_video(tmp_path / "t.mkv", duration=20, fps=5, size=(32, 24), codec="ffv1")
    info = probe(p)
    truncate(p, 0.5)
    windows = clip_windows(info.duration)
    with pytest.raises(VideoError, match="truncated") as ei:
        list(iter_windows(p, windows, 4, info=info))
    assert str(p) in str(ei.value) and "\n" not in str(ei.value)
    kept = list(iter_windows(p, windows, 4, info=info, allow_partial=True))
    assert 0 < len(kept) < len(windows)
    assert [i for i, _ in kept] == list(range(len(kept)))


def test_unsorted_windows_rejected(videos):
    with pytest.raises(ValueError):
        list(iter_windows(videos["cfr"], [(4.0, 8.0), (0.0, 4.0)], 4))


def test_memory_is_bounded_by_pending_windows(videos):
    # the generator holds no more than the frames of the windows not yet yielded
    gen = iter_windows(videos["long"], clip_windows(30.0), 4)
    first = next(gen)
    assert first[0] == 0
    slots = gen.gi_frame.f_locals["out"].slots  # the frames of windows begun but not complete (reader._Assembler)
    assert len(slots) <= 1
    gen.close()


def test_prefetch_runs_ahead_and_propagates_errors():
    produced = []

    def slow_source():
        for i in range(5):
            produced.append(i)
            yield i
        raise RuntimeError("boom")

    pf = prefetch(slow_source(), depth=2)
    time.sleep(0.2)
    assert len(produced) >= 2  # produced before the consumer asked
    got = []
    with pytest.raises(RuntimeError, match="boom"):
        for x in pf:
            got.append(x)
    assert got == [0, 1, 2, 3, 4]


def test_prefetch_consumer_does_not_wait_when_producer_is_faster():
    def fast():
        yield from range(20)

    with prefetch(fast(), depth=4) as pf:
        time.sleep(0.05)
        items = []
        for x in pf:
            time.sleep(0.005)  # the "encoder"
            items.append(x)
    assert items == list(range(20))
    assert pf.wait_seconds < 0.05


def test_prefetch_close_stops_producer():
    stopped = threading.Event()

    def endless():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            stopped.set()

    pf = prefetch(endless(), depth=2)
    assert next(pf) == 0
    pf.close()
    assert stopped.wait(2.0)


@pytest.mark.parametrize(
    ("grid_fps", "fps", "mode"),
    # (random picks on the 30-fps grid of a slower video can fall past its last frame: the original's own limit)
    [
        (g, f, m)
        for g in (None, 30.0)
        for f in (10.0, 25.0, 60.0)
        for m in ("middle", "random")
        if not (g and m == "random" and f < g)
    ],
)
def test_moments_are_given_in_the_order_of_sorting_them_all(videos, grid_fps, fps, mode):
    """The lazy moment stream gives exactly what sorting every (moment, window, slot) up front gave."""
    import dataclasses

    from videorecap.video.io import probe
    from videorecap.video.reader import _Targets

    info = dataclasses.replace(probe(videos["cfr"]), fps=fps, num_frames=int(fps * 30), duration=30.0)
    plans = [clip_windows(30.0, 4.0), clip_windows(29.5, 0.7, 1.0), [(0.0, 8.0), (1.0, 2.0), (1.5, 30.0), (29.0, 30.0)]]
    for windows in plans:
        eager_rng, lazy_rng = np.random.default_rng(3), np.random.default_rng(3)
        every = _Targets(info, windows, 4, mode, eager_rng, grid_fps)
        eager = sorted((t, w, s) for w in range(len(windows)) for s, t in enumerate(every.moments(w, rng=eager_rng)))
        lazy = _Targets(info, windows, 4, mode, lazy_rng, grid_fps)
        assert lazy.last() == pytest.approx(max(eager)[0]) or mode == "random"
        got = []
        while lazy.peek() is not None:
            got.append(lazy.pop())
        assert got == eager
