"""Long videos through the hierarchy engine: which segment descriptions reach the video level, with the real GPT-2
tokenizer and the collator's real 512-token cut, and stub captioners that record what they are given.

A 3-hour video of 180-s segments has 60 descriptions (about 2,000 tokens here, as Video ReCap's are): the original
(`"first"`) gives the video model only the first ~45 minutes; `"spread"` gives it descriptions from every part of the
video, the last hour included, within the same 512 tokens. Offline and rolling.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from videorecap.data.collate import text_ids
from videorecap.data.text import video_text
from videorecap.infer.hierarchy import Hierarchy, Step, TextFit, VideoInput
from videorecap.results import SummaryInput
from videorecap.tokenizer import Tokenizer
from videorecap.video.sampling import clip_windows

HOURS = ("C cooks dinner on the stove", "C washes the dishes in the sink", "C repairs a bicycle in the garage")


@functools.cache
def gpt2() -> Tokenizer:
    return Tokenizer.gpt2()


class Segments:
    """A segment captioner: the activity of the window's hour, and the window's start minute, as a description."""

    def __call__(self, items: list) -> list[str]:
        # about 35 GPT-2 tokens, as Video ReCap's descriptions: 512 tokens hold ~15 of them, 45 minutes
        return [
            f"{HOURS[int(x.start // 3600)]} at minute {int(x.start // 60)}, picks up a spoon, puts it on the "
            "counter, opens a drawer and talks to a man near the fridge."
            for x in items
        ]


class Videos:
    """A video captioner that records its inputs."""

    def __init__(self) -> None:
        self.items: list[VideoInput] = []

    def __call__(self, items: list) -> list[str]:
        self.items += items
        return [f"summary {len(self.items)}" for _ in items]


def model_reads(text: str) -> str:
    """What the video model reads of a text: the collator's ids (the first 512 tokens), decoded."""
    tok = gpt2()
    ids, mask = text_ids([tok.encode(text)], max_text_tokens=512, pad_id=0)
    return tok.decode(ids[0][mask[0]].tolist(), skip_special=False)


def engine(policy: str | None, duration: float, batch_size: int = 8) -> tuple[Hierarchy, Videos]:
    videos = Videos()
    fit = None if policy is None else TextFit.for_tokenizer(gpt2(), 512, policy)
    n = len(clip_windows(duration, 4.0))
    eng = Hierarchy(
        clip_seconds=4.0,
        segment_seconds=180.0,
        segment=Step(Segments(), 80, "uniform"),
        video=Step(videos, 256, "masking", fit),
        batch_size=batch_size,
        features=np.zeros((n, 2), np.float32),  # precomputed: the claim is about the text
    )
    return eng, videos


def feed(eng: Hierarchy, duration: float, on_segment=None) -> None:
    for s, e in clip_windows(duration, 4.0):
        if eng.add_clip(s, e, "#C C does something") and on_segment is not None:
            on_segment()


def test_a_3_hour_summary_reads_the_last_hour_by_default_and_not_with_the_original_cut():
    reads = {}
    for policy in ("spread", "first"):
        eng, videos = engine(policy, 3 * 3600.0)
        feed(eng, 3 * 3600.0)
        eng.finish(3 * 3600.0)
        eng.summary()
        (item,) = videos.items
        assert len(item.segments) == 60 and len(gpt2().encode(video_text([c.text for c in item.segments]))) > 512
        reads[policy] = (item, model_reads(item.text))
    item, seen = reads["spread"]
    assert len(gpt2().encode(item.text)) <= 512 and seen == item.text  # nothing is cut: every chosen word is read
    assert all(h in seen for h in HOURS) and "at minute 177," in seen  # every hour, the last segment included
    assert item.read[0] == 0 and item.read[-1] == 59 and item.fitted == SummaryInput("spread", 512, item.fitted.tokens,
                                                                                      item.read)  # fmt: skip
    assert item.text == video_text([item.segments[i].text for i in item.read])
    item, seen = reads["first"]
    assert item.text == video_text([c.text for c in item.segments])  # the original's text, cut by the collator
    assert HOURS[0] in seen and HOURS[1] not in seen and HOURS[2] not in seen  # the summary never sees hours 2-3
    assert item.fitted.policy == "first" and item.read == tuple(range(len(item.read))) and len(item.read) < 20
    assert f"at minute {3 * item.read[-1]}" in seen and f"at minute {3 * (item.read[-1] + 1)}," not in seen


@pytest.mark.parametrize("policy", ["spread", "first", None])
def test_a_short_video_reads_exactly_what_the_original_reads(policy):
    eng, videos = engine(policy, 20 * 60.0)  # 7 descriptions, well under 512 tokens
    feed(eng, 20 * 60.0)
    eng.finish(20 * 60.0)
    eng.summary()
    (item,) = videos.items
    assert item.text == video_text([c.text for c in item.segments]) and item.read == tuple(range(7))
    assert item.fitted is None if policy is None else item.fitted.tokens <= 512
    assert eng.video_input().text == item.text  # what summary() sends, without calling the captioner


def test_rolling_summaries_follow_the_stream_with_spread_and_stop_with_the_original_cut():
    for policy in ("spread", "first"):
        eng, videos = engine(policy, 3 * 3600.0, batch_size=1)
        feed(eng, 3 * 3600.0, on_segment=eng.summary)  # a summary after every segment, as a live caller does
        assert len(videos.items) == 59  # the 60th window closes at finish
        texts = [model_reads(x.text) for x in videos.items]
        for k, (item, seen) in enumerate(zip(videos.items, texts, strict=True)):
            assert len(item.segments) == k + 1 and item.end == (k + 1) * 180.0 + 4.0  # what exists so far
            latest = f"at minute {3 * k},"
            if policy == "spread":
                assert item.read[0] == 0 and item.read[-1] == k and latest in seen  # the latest always reaches it
                assert len(gpt2().encode(item.text)) <= 512
        if policy == "first":
            # after ~45 minutes of descriptions the text the model reads stops changing: the rest never reaches it
            frozen = next(k for k in range(len(texts)) if all(t == texts[k] for t in texts[k:]))
            assert 10 < frozen < 25 and HOURS[1] not in texts[-1]
        else:
            assert HOURS[2] in texts[-1] and len(set(texts)) == len(texts)  # every update reads something new
