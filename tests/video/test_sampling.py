from __future__ import annotations

import math

import numpy as np
import pytest

from videorecap.video.sampling import (
    clip_windows,
    frame_times,
    get_frame_ids,
    grid_frame_ids,
    num_clip_windows,
    segment_feature_windows,
    segment_windows,
    video_window,
    windows_for,
)


def test_clip_windows_cover_the_video():
    w = clip_windows(10.0)
    assert w == [(0.0, 4.0), (4.0, 8.0), (8.0, 10.0)]
    # the demo video of the original: 708.03 s -> 178 clips, the last one cut at the end
    demo = clip_windows(708.03)
    assert len(demo) == 178 == math.ceil(708.03 / 4) == num_clip_windows(708.03)
    assert demo[-1] == (708.0, 708.03)
    assert clip_windows(12.0) == [(0.0, 4.0), (4.0, 8.0), (8.0, 12.0)]
    assert clip_windows(2.5) == [(0.0, 2.5)]  # shorter than one window: one window
    assert clip_windows(0.0) == []
    assert clip_windows(10.0, clip_seconds=5.0) == [(0.0, 5.0), (5.0, 10.0)]


def test_segment_and_video_windows():
    assert segment_windows(400.0) == [(0.0, 180.0), (180.0, 360.0), (360.0, 400.0)]
    assert segment_windows(400.0, segment_seconds=200) == [(0.0, 200.0), (200.0, 400.0)]
    assert video_window(400.0) == [(0.0, 400.0)]
    assert windows_for(400.0, "segment") == segment_windows(400.0)
    with pytest.raises(ValueError):
        windows_for(10, "chapter")
    with pytest.raises(ValueError):
        clip_windows(10, clip_seconds=0)


def test_segment_feature_windows_at_least_45():
    w = segment_feature_windows(100.0, 280.0)  # 180 s: step 4 -> exactly 45
    assert len(w) == 45 and w[0] == (100.0, 104.0) and w[-1] == (276.0, 280.0)
    short = segment_feature_windows(0.0, 90.0)  # 90 s: step 2 -> 45 windows of 2 s
    assert len(short) == 45 and short[1] == (2.0, 4.0)
    long = segment_feature_windows(0.0, 400.0)  # step capped at 4 s
    assert len(long) == 100


def test_frame_times_middle_of_each_part():
    assert frame_times(0, 4, 4) == [0.5, 1.5, 2.5, 3.5]
    assert frame_times(8, 10, 4) == [8.25, 8.75, 9.25, 9.75]
    assert frame_times(0, 4, 2) == [1.0, 3.0]


def test_frame_times_random_one_per_part():
    rng = np.random.default_rng(0)
    for _ in range(50):
        t = frame_times(4, 8, 4, mode="random", rng=rng)
        for i, x in enumerate(t):
            assert 4 + i <= x < 5 + i
    a = frame_times(0, 4, 4, mode="random", rng=np.random.default_rng(1))
    b = frame_times(0, 4, 4, mode="random", rng=np.random.default_rng(1))
    assert a == b
    with pytest.raises(ValueError):
        frame_times(0, 4, 4, mode="jitter")


def test_get_frame_ids_matches_the_original_hand_computed():
    # 4-s window at 30 fps: frames [0, 120), size 119/4 = 29.75, parts [0,30] [30,60] [60,89] [89,119]
    # (round(59.5) = 60 and round(89.25) = 89), middles 15, 45, 74, 104
    assert get_frame_ids(0, 120, 4) == [15, 45, 74, 104]
    # half-to-even rounding: size 2.5 -> parts [0,2] (round(2.5) = 2) [2,5] [5,8] (round(7.5) = 8) [8,10]
    assert get_frame_ids(0, 11, 4) == [1, 3, 6, 9]
    # a window shorter than the frame count: every part collapses
    assert get_frame_ids(5, 6, 4) == [5, 5, 5, 5]


def test_grid_frame_ids_offsets_and_min_span():
    assert grid_frame_ids(0, 4) == [15, 45, 74, 104]
    assert grid_frame_ids(4, 8) == [135, 165, 194, 224]
    # offset = round(0.05 * 30) = round(1.5) = 2 (half to even); span max(int(0.05 * 30), 4) = 4 frames
    assert grid_frame_ids(0.05, 0.1) == [2, 3, 4, 4]
    # the original's clamping at the end of a 100-frame video
    # offset 60, span cut at frame 100: size 39/4 = 9.75, parts [60,70] [70,80] [80,89] [89,99]
    assert grid_frame_ids(2, 6, num_video_frames=100) == [65, 75, 84, 94]
    assert grid_frame_ids(4, 8, num_video_frames=100) == [99, 99, 99, 99]
    assert frame_times(0, 4, 4, grid_fps=30) == [15 / 30, 45 / 30, 74 / 30, 104 / 30]


def test_grid_jitter_stays_in_parts():
    rng = np.random.default_rng(0)
    for _ in range(30):
        ids = grid_frame_ids(0, 4, jitter=True, rng=rng)
        bounds = [(0, 30), (30, 60), (60, 89), (89, 119)]
        assert all(a <= i <= b for i, (a, b) in zip(ids, bounds, strict=True))


def test_window_plan_joins_short_tails():
    from videorecap.video.sampling import window_plan

    # a 4-ms tail (a cue 4.000 -> 4.004) joins the previous window, which becomes longer
    plan = window_plan(4.004, 4.0, 180.0)
    assert plan.clips == [(0.0, 4.004)] and plan.segments == [(0.0, 4.004)]
    assert window_plan(9.5, 4.0).clips == [(0.0, 4.0), (4.0, 8.0), (8.0, 9.5)]  # 1.5 s >= 1 s: kept
    assert window_plan(8.5, 4.0, min_tail_seconds=1.0).clips == [(0.0, 4.0), (4.0, 8.5)]
    # a 2-s tail segment (shorter than a clip window) joins the previous segment
    assert window_plan(362.0, 4.0, 180.0).segments == [(0.0, 180.0), (180.0, 362.0)]
    assert window_plan(365.0, 4.0, 180.0).segments == [(0.0, 180.0), (180.0, 360.0), (360.0, 365.0)]
    # a video shorter than the minimum still gets its one window
    assert window_plan(0.5, 4.0).clips == [(0.0, 0.5)] and window_plan(0.5, 4.0).segments == [(0.0, 0.5)]
    # 0 keeps every tail: the original's plan
    original = window_plan(362.0, 4.0, 180.0, min_tail_seconds=0)
    assert original.clips == clip_windows(362.0, 4.0) and original.segments[-1] == (360.0, 362.0)
    assert window_plan(4.004, 4.0, min_tail_seconds=0).clips == [(0.0, 4.0), (4.0, 4.004)]


def test_window_plans_are_computed_on_demand_with_the_original_values():
    import numpy as np

    from videorecap.video.sampling import window_plan

    for duration, step in [(708.03, 4.0), (100.0, 0.3), (37.5, 1 / 3), (3600.7, 0.1)]:
        lazy = clip_windows(duration, step)
        eager = [(float(s), float(min(s + step, duration))) for s in np.arange(0.0, duration, step)]
        assert lazy == eager and list(lazy) == eager and len(lazy) == len(eager)
        assert lazy[-1] == eager[-1] and lazy[5:9] == eager[5:9] and list(lazy[::7]) == eager[::7]
    # 10,000 h at the smallest clip window: 360 million windows (a 0.2-s tail joined), no list of them
    plan = window_plan(3.6e7, 0.1)
    assert len(plan.clips) == 359_999_999 and plan.clips[-1] == (35999999.800000004, 3.6e7)
    assert plan.segments[-1] == (35999820.0, 3.6e7)
