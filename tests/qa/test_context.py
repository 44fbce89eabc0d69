"""The three contexts and the character budget: what goes in, in which order, never over the limit."""

from __future__ import annotations

import pytest

from videorecap.errors import InputError
from videorecap.qa.context import Moment, coarse_to_fine, fit, moments, timestamp
from videorecap.results import Caption, CaptionResult, VideoMeta


def _result(n_clips: int = 30, *, segments: bool = True, summary: bool = True) -> CaptionResult:
    clips = [Caption(4.0 * i, 4.0 * (i + 1), f"#C C does thing number {i}") for i in range(n_clips)]
    segs = (
        [Caption(40.0 * k, 40.0 * (k + 1), f"C works on part {k}.") for k in range(n_clips // 10)] if segments else []
    )
    top = Caption(0.0, 4.0 * n_clips, "C does many things.") if summary else None
    return CaptionResult(VideoMeta("v", "v.mp4", 4.0 * n_clips), clips=clips, segments=segs, summary=top)


def test_the_three_contexts_take_their_levels():
    r = _result()
    assert {m.level for m in moments(r, "clips")} == {"clip"} and len(moments(r, "clips")) == 30
    assert [m.level for m in moments(r, "summary")] == ["video"]
    h = moments(r, "hierarchy")
    assert [m.level for m in h[:4]] == ["video", "segment", "segment", "segment"] and len(h) == 34
    assert h[4].text == "C does thing number 0"  # the narration marker is dropped, as people read it


def test_a_context_without_its_level_is_one_clear_error():
    with pytest.raises(InputError, match="no video summary"):
        moments(_result(summary=False), "summary", source="x/captions.json")
    with pytest.raises(InputError, match="unknown context"):
        moments(_result(), "everything")
    assert len(moments(_result(summary=False, segments=False), "hierarchy")) == 30  # what is there


@pytest.mark.parametrize("budget", [1, 20, 60, 150, 400, 1000, 5000])
def test_the_text_never_exceeds_the_budget_and_lists_what_it_says(budget):
    items = moments(_result(), "hierarchy")
    ctx = fit(items, budget)
    assert len(ctx.text) <= budget
    assert ctx.dropped == len(items) - len(ctx.moments)
    for m in ctx.moments:
        assert m.line() in ctx.text
    if budget >= 5000:
        assert ctx.dropped == 0


def test_higher_levels_go_in_first_and_moments_are_written_in_time_order():
    items = moments(_result(), "hierarchy")
    small = fit(items, 200)  # room for the summary and the segment descriptions, few clips
    levels = [m.level for m in small.moments]
    assert levels[0] == "video" and levels.count("segment") == 3 and levels.count("clip") < 30
    clips = [m for m in small.moments if m.level == "clip"]
    assert [m.start for m in clips] == sorted(m.start for m in clips)
    assert small.text.index("Video summary:") < small.text.index("Segment descriptions:")


def test_relevance_scores_choose_the_clips_and_are_deterministic():
    items = moments(_result(), "clips")
    scores = [1.0 if i in (7, 21, 3) else 0.0 for i in range(len(items))]
    room = len("Clip captions:") + 1 + sum(len(items[i].line()) + 1 for i in (3, 7, 21))  # exactly those three
    ctx = fit(items, room, scores)
    assert [items.index(m) for m in ctx.moments] == [3, 7, 21]
    assert fit(items, 500, scores) == fit(items, 500, scores)


def test_without_scores_the_clips_spread_over_the_video():
    items = moments(_result(), "clips")
    ctx = fit(items, 130)
    starts = [m.start for m in ctx.moments]
    assert starts[0] == 0.0 and max(starts) >= 60.0  # first, then the middle: not the first few only
    assert sorted(coarse_to_fine(8)) == list(range(8)) and coarse_to_fine(8)[:3] == [0, 4, 2]
    for n in range(0, 40):
        assert sorted(coarse_to_fine(n)) == list(range(n))


def test_a_moment_longer_than_the_budget_is_skipped_not_cut():
    items = [Moment("video", 0, 10, "x" * 500), Moment("clip", 0, 4, "C opens the door")]
    ctx = fit(items, 100)
    assert [m.level for m in ctx.moments] == ["clip"] and "x" not in ctx.text


def test_timestamps():
    assert timestamp(0) == "0:00" and timestamp(75.9) == "1:15" and timestamp(3725) == "1:02:05"
    assert Moment("clip", 4, 8, "C sits").line() == "[0:04-0:08] C sits"
