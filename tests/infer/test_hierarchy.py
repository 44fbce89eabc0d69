"""The hierarchy engine with stub captioners: windows, joins, slicing, sampling, call order, incremental use, and
equality with what the caption pipeline feeds its segment and video models."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from videorecap.data.feature_sampling import sample, slice_features
from videorecap.infer.hierarchy import Hierarchy, SegmentInput, Step, VideoInput
from videorecap.results import Caption
from videorecap.video.sampling import clip_windows, segment_windows


class Stub:
    """A captioner that records every call and answers `"<name><k>."` for its k-th input."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls: list[list] = []

    def __call__(self, items: list) -> list[str]:
        self.calls.append(list(items))
        start = sum(len(c) for c in self.calls[:-1])
        return [f"{self.name}{start + i}." for i in range(len(items))]

    @property
    def items(self) -> list:
        return [x for c in self.calls for x in c]


def _engine(clip=4.0, seg=12.0, k_seg=3, k_vid=5, batch_size=8, **kw):
    segs, vids = Stub("s"), Stub("v")
    eng = Hierarchy(
        clip_seconds=clip,
        segment_seconds=seg,
        segment=Step(segs, k_seg, "uniform"),
        video=Step(vids, k_vid, "masking"),
        batch_size=batch_size,
        **kw,
    )
    return eng, segs, vids


def _feed(eng: Hierarchy, duration: float, clip: float = 4.0, width: int = 2) -> list[list[Caption]]:
    """Feed every clip window of a video (feature row i = [i, -i], caption "c<i>"); the events of each clip."""
    events = []
    for i, (s, e) in enumerate(clip_windows(duration, clip)):
        events.append(eng.add_clip(s, e, f"c{i}", np.array([i, -i][:width], np.float32)))
    return events


@pytest.mark.parametrize(
    ("duration", "clip", "seg"),
    [(26.0, 4.0, 12.0), (24.0, 4.0, 12.0), (3.0, 4.0, 12.0), (30.5, 4.0, 10.0), (401.3, 4.0, 180.0), (9.9, 1.5, 2.2)],
)
def test_windows_of_a_finished_video_are_segment_windows(duration, clip, seg):
    eng, segs, _ = _engine(clip, seg)
    _feed(eng, duration, clip)
    eng.finish(duration)
    assert [(c.start, c.end) for c in eng.segments] == segment_windows(duration, seg)  # exact floats
    assert [(x.start, x.end) for x in segs.items] == segment_windows(duration, seg)


def test_text_is_the_clips_inside_joined_and_features_the_inclusive_slice():
    eng, segs, _ = _engine(clip=4.0, seg=10.0, k_seg=4)
    _feed(eng, 30.5)  # clips [0,4) ... [28,30.5): 8 rows
    eng.finish(30.5)
    feats = np.array([[i, -i] for i in range(8)], np.float32)
    first, second, last = segs.items[0], segs.items[1], segs.items[-1]
    assert isinstance(first, SegmentInput)
    # [0,10]: clips [0,4), [4,8) lie inside; [8,12) straddles the boundary and belongs to neither segment
    assert first.text == "c0c1" and [c.text for c in first.clips] == ["c0", "c1"]
    assert second.text == "c3c4"  # [10,20]: [12,16), [16,20)
    assert (last.start, last.end) == (30.0, 30.5) and last.text == ""  # no clip lies inside the short window
    # rows [int(s/4) : int(e//4)+1], sampled uniformly to 4 rows
    for x in segs.items:
        want, mask = sample(slice_features(feats, x.start, x.end, 4.0), 4, "uniform")
        np.testing.assert_array_equal(x.features, want)
        assert mask is None and x.mask is None
    # [10, 20] takes rows 2..5 (row 5 is the clip [20, 24) that starts at the segment's end); 4 of 4 rows
    # sampled with the original's indices arange(0, 4, 4/5)[1:] -> 0, 1, 2, 3 (rounded down)
    assert second.features[:, 0].tolist() == [2, 3, 4, 5]


def test_an_empty_slice_falls_back_to_the_last_row():
    pre = np.array([[1.0, 1.0], [2.0, 2.0]], np.float32)  # precomputed features that stop at 8 s
    eng, segs, _ = _engine(clip=4.0, seg=12.0, k_seg=2, features=pre)
    for s, e in clip_windows(26.0, 4.0):
        eng.add_clip(s, e, "c")
    eng.finish(26.0)
    np.testing.assert_array_equal(segs.items[1].features, np.array([[2.0, 2.0]] * 2, np.float32))  # feats[-1:]
    np.testing.assert_array_equal(segs.items[0].features, sample(pre[0:4], 2, "uniform")[0])


def test_video_input_samples_all_features_with_a_mask_and_joins_the_descriptions():
    eng, _, vids = _engine(k_vid=10)
    _feed(eng, 26.0)
    eng.finish(26.0)
    summary = eng.summary()
    (item,) = vids.items
    assert isinstance(item, VideoInput)
    assert item.text == "s0. s1. s2."  # video_text strips each description's dots and joins with ". "
    assert [c.text for c in item.segments] == ["s0.", "s1.", "s2."]
    assert item.features.shape == (10, 2) and item.mask.tolist() == [True] * 7 + [False] * 3
    np.testing.assert_array_equal(item.features[:7, 0], np.arange(7))
    assert summary == Caption(0.0, 26.0, "v0.")


def test_batches_follow_the_offline_grid_and_the_video_comes_last():
    order = []
    segs, vids = Stub("s"), Stub("v")
    eng = Hierarchy(
        clip_seconds=4.0,
        segment_seconds=8.0,
        segment=Step(lambda items: (order.append(("segment", len(items))), segs(items))[1], 2),
        video=Step(lambda items: (order.append(("video", len(items))), vids(items))[1], 4),
        batch_size=2,
    )
    _feed(eng, 40.0)  # 5 segment windows
    eng.finish(40.0)
    eng.summary()
    assert order == [("segment", 2), ("segment", 2), ("segment", 1), ("video", 1)]
    assert [x.start for x in segs.items] == [0, 8, 16, 24, 32]


def test_fed_clip_by_clip_segments_come_out_as_soon_as_complete():
    eng, _, _ = _engine(clip=4.0, seg=12.0, batch_size=1)
    events = _feed(eng, 26.0)  # clips start at 0, 4, ..., 24
    # window [0,12) completes when the clip at 12 s arrives (its feature is the slice's inclusive end row)
    assert [len(e) for e in events] == [0, 0, 0, 1, 0, 0, 1]
    assert events[3][0] == Caption(0.0, 12.0, "s0.") and events[6][0] == Caption(12.0, 24.0, "s1.")
    assert eng.finish(26.0) == [Caption(24.0, 26.0, "s2.")]


def test_a_minimum_tail_waits_for_enough_video_after_a_window_and_short_tails_join():
    # 12-s segments, 4-s clips, a last segment shorter than one clip window joins the previous one
    eng, _, _ = _engine(clip=4.0, seg=12.0, batch_size=1, segment_min_tail=4.0)
    events = [eng.add_clip(s, e, f"c{i}", np.array([i, -i], np.float32)) for i, (s, e) in
              enumerate([(0, 4), (4, 8), (8, 12), (12, 14)])]  # fmt: skip
    # the clip [12, 14) starts after [0, 12) but shows only 2 s beyond it: [0, 12) may still grow
    assert events == [[], [], [], []]
    assert eng.finish(14.0) == [Caption(0.0, 14.0, "s0.")]
    assert eng.segments == [Caption(0.0, 14.0, "s0.")]

    eng, _, _ = _engine(clip=4.0, seg=12.0, batch_size=1, segment_min_tail=4.0)
    events = _feed(eng, 26.0)  # a full clip [12, 16) shows the window [0, 12) is final
    assert [len(e) for e in events] == [0, 0, 0, 1, 0, 0, 0]
    assert eng.finish(26.0) == [Caption(12.0, 26.0, "s1.")]  # the 2-s tail [24, 26) joined [12, 24)


def test_a_larger_batch_holds_complete_windows_until_full_or_flushed():
    eng, segs, _ = _engine(clip=4.0, seg=4.0, batch_size=3)
    events = _feed(eng, 20.0)  # windows close as clips 1, 2, 3, 4 arrive
    assert [len(e) for e in events] == [0, 0, 0, 3, 0]
    assert [c.start for c in eng.flush()] == [12.0]
    assert [c.start for c in eng.finish(20.0)] == [16.0]
    assert [len(c) for c in segs.calls] == [3, 1, 1]


def test_rolling_summary_sees_only_what_exists():
    eng, segs, vids = _engine(clip=4.0, seg=12.0, batch_size=4, k_vid=8)
    _feed(eng, 18.0)  # clips up to [16, 18): window [0, 12) complete but queued (batch of 4 not full)
    rolling = eng.summary()
    (item,) = vids.items
    assert item.text == "s0." and len(segs.items) == 1  # the queued window was described first; [12, ...) is open
    assert item.mask.sum() == 5 and (item.start, item.end) == (0.0, 18.0)  # the 5 clip features so far
    assert rolling == Caption(0.0, 18.0, "v0.")
    # the video goes on; the final summary covers everything, and the mid-way call changed nothing else
    for i, (s, e) in enumerate(clip_windows(26.0, 4.0)[5:], start=5):
        eng.add_clip(s, e, f"c{i}", np.array([i, -i], np.float32))
    eng.finish(26.0)
    final = eng.summary()
    assert vids.items[-1].text == "s0. s1. s2." and vids.items[-1].mask.sum() == 7
    assert final == Caption(0.0, 26.0, "v1.")
    assert [(x.start, x.end) for x in segs.items] == segment_windows(26.0, 12.0)


def test_known_segments_are_not_described_again():
    eng, segs, vids = _engine(known_segments=[Caption(0.0, 12.0, "cached one"), Caption(12.0, 24.0, "cached two")])
    _feed(eng, 26.0)
    eng.finish(26.0)
    eng.summary()
    assert [x.start for x in segs.items] == [24.0]
    assert vids.items[0].text == "cached one. cached two. s0."
    bad, _, _ = _engine(known_segments=[Caption(0.0, 10.0, "other windows")], batch_size=1)
    with pytest.raises(ValueError, match="known segment 0"):
        _feed(bad, 26.0)


def test_misuse_is_refused():
    eng, _, _ = _engine()
    eng.add_clip(4.0, 8.0, "b", np.zeros(2))
    with pytest.raises(ValueError, match="time order"):
        eng.add_clip(0.0, 4.0, "a", np.zeros(2))
    with pytest.raises(ValueError, match="feature"):
        eng.add_clip(8.0, 12.0, "c")
    with pytest.raises(ValueError, match="shape"):
        eng.add_clip(8.0, 12.0, "c", np.zeros(3))
    eng.finish(10.0)
    with pytest.raises(RuntimeError):
        eng.add_clip(12.0, 16.0, "d", np.zeros(2))
    silent = Hierarchy(clip_seconds=4, segment_seconds=4, segment=Step(lambda items: [], 1))
    silent.add_clip(0.0, 4.0, "a", np.zeros(2))
    with pytest.raises(RuntimeError, match="returned 0 texts"):
        silent.finish(4.0)
    with pytest.raises(ValueError, match="sampling"):
        Step(lambda items: [], 1, "random")


def test_the_engine_imports_no_model_and_no_torch():
    code = (
        "import sys, videorecap.infer.hierarchy; "
        "bad = [m for m in sys.modules if m == 'torch' "
        "or m.startswith(('videorecap.model', 'videorecap.video.reader'))]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ---- the same inputs as the caption pipeline ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_captioner():
    from videorecap.config import RecapConfig
    from videorecap.model.recap import VideoRecap
    from videorecap.pipeline import Captioner
    from videorecap.tokenizer import Tokenizer

    torch.manual_seed(0)
    tok = Tokenizer.train_word_level(["a b c d e f g h"])
    models = {
        lv: (VideoRecap(RecapConfig.from_name("recap-tiny", level=lv)).eval(), tok)
        for lv in ("clip", "segment", "video")
    }
    return Captioner(models, {lv: "tiny" for lv in models})


@pytest.fixture(scope="module")
def short_video(tmp_path_factory):
    from videorecap.video.testing import make_video

    return make_video(tmp_path_factory.mktemp("v") / "v.mp4", duration=26.0, fps=2.0, size=(32, 24))


@pytest.mark.parametrize("precomputed_rows", [None, 5])
def test_the_pipeline_feeds_the_levels_the_originals_inputs(
    tiny_captioner, short_video, tmp_path, monkeypatch, precomputed_rows
):
    """The real pipeline (which drives the engine) against the original's rules written out here, independently of
    the engine: which clips, which feature rows, how sampled, how joined, in which batches."""
    from videorecap import pipeline
    from videorecap.data.text import segment_text, video_text
    from videorecap.pipeline import CaptionOptions, caption_video
    from videorecap.video.sampling import window_plan

    n = {"clip": 0}
    cls_rows: list[np.ndarray] = []
    calls: dict[str, list] = {"segment": [], "video": []}
    real_caption_batch = pipeline.caption_batch

    def spy(model, tok, level, items, *a, **kw):
        if level == "clip":  # distinct clip captions, so the joins are visible; keep each window's CLS feature
            texts = real_caption_batch(model, tok, level, items, *a, **kw)
            cls_rows.extend(items["video"][:, 0].float().numpy())
            out = [f"clip{n['clip'] + i} " for i in range(len(texts))]
            n["clip"] += len(texts)
            return out
        calls[level].append(list(items))
        done = sum(len(c) for c in calls[level][:-1])
        return [f"{level}{done + i}." for i in range(len(items))]

    monkeypatch.setattr(pipeline, "caption_batch", spy)
    features_dir = None
    if precomputed_rows is not None:
        features_dir = tmp_path / "feats"
        features_dir.mkdir()
        width = tiny_captioner.model("clip").encoder.config.width
        pre = np.random.default_rng(0).normal(size=(precomputed_rows, width)).astype(np.float32)
        np.save(features_dir / "v.npy", pre)
    opts = CaptionOptions(batch_size=2, segment_seconds=8.0, features_dir=features_dir)
    res = caption_video(short_video, tiny_captioner, opts)
    feats = np.stack(cls_rows) if precomputed_rows is None else pre

    # the original's rules, written out
    cfg = tiny_captioner.model("segment").config
    windows = window_plan(res.video.duration, 4.0, 8.0).segments
    assert windows == [(0.0, 8.0), (8.0, 16.0), (16.0, 26.0)]  # the 2-s tail joins the last window
    expected = []
    for s, e in windows:
        inside = [[None, c.start, c.end, c.text] for c in res.clips if c.start >= s and c.end <= e]
        f = slice_features(feats, s, e, 4.0)
        f = f if f.shape[0] else feats[-1:]
        expected.append((sample(f, cfg.num_features("segment"), cfg.sampling("segment")), segment_text(inside)))
    assert [len(c) for c in calls["segment"]] == [2, 1]  # batches of batch_size, in time order
    got = [x for c in calls["segment"] for x in c]
    for item, ((f, m), text) in zip(got, expected, strict=True):
        assert item.text == text
        np.testing.assert_array_equal(item.video, f)
        assert (item.video_mask is None) == (m is None) and (m is None or np.array_equal(item.video_mask, m))
    assert got[1].text == "clip2 clip3 "  # [8,16): clips [8,12), [12,16)
    assert [c.text for c in res.segments] == ["segment0.", "segment1.", "segment2."]

    vcfg = tiny_captioner.model("video").config
    ((video_item,),) = calls["video"]
    f, m = sample(feats, vcfg.num_features("video"), vcfg.sampling("video"))
    np.testing.assert_array_equal(video_item.video, f)
    assert (video_item.video_mask is None) == (m is None) and (m is None or np.array_equal(video_item.video_mask, m))
    assert video_item.text == video_text(["segment0.", "segment1.", "segment2."])
    assert res.summary == Caption(0.0, res.video.duration, "video0.")


def test_the_pipeline_fits_long_descriptions_to_the_video_models_text_limit(
    tiny_captioner, short_video, tmp_path, monkeypatch
):
    """recap-tiny's video model reads 64 tokens: three 25-token descriptions do not fit. By default the summary reads
    the first and the last; with summary_text="first" the whole text (the collator keeps its first 64 tokens). Each
    is recorded in captions.json, and a cached summary of one policy is never reused for the other."""
    import jsonschema

    from videorecap import pipeline
    from videorecap.data.text import video_text
    from videorecap.errors import InputError
    from videorecap.pipeline import CaptionOptions, caption_video
    from videorecap.results import CaptionResult, SummaryInput, schema

    video_texts: list[str] = []

    def spy(model, tok, level, items, *a, **kw):
        if level == "clip":
            return ["a b" for _ in range(len(items["video"]))]
        if level == "video":
            video_texts.extend(x.text for x in items)
            return ["summary"]
        return [" ".join("abcdefgh"[k % 8] for k in range(24)) for _ in items]  # 24 words + "." = 25 tokens

    monkeypatch.setattr(pipeline, "caption_batch", spy)
    desc = [" ".join("abcdefgh"[k % 8] for k in range(24))] * 3
    cache = tmp_path / "cache"
    results = {}
    for policy in ("spread", "first", "spread"):
        opts = CaptionOptions(batch_size=2, segment_seconds=8.0, summary_text=policy)
        results[policy] = caption_video(short_video, tiny_captioner, opts, cache_dir=cache)
    assert video_texts == [video_text([desc[0], desc[2]]), video_text(desc)]  # the third run reused its summary
    spread, first = results["spread"], results["first"]
    assert spread.summary_input == SummaryInput("spread", 64, 75, (0, 2))
    assert first.summary_input == SummaryInput("first", 64, 75, (0, 1, 2))  # the last one is read in part
    d = spread.to_dict()
    jsonschema.Draft202012Validator(schema()).validate(d)
    assert d["schema_version"] == "1.2" and d["summary_input"]["segments"] == [0, 2]
    spread.save(tmp_path / "captions.json")
    assert CaptionResult.load(tmp_path / "captions.json").summary_input == spread.summary_input
    with pytest.raises(InputError, match="summary_text"):
        CaptionOptions(summary_text="middle")


def test_close_pending_describe_is_finish_with_the_texts_made_elsewhere():
    """`caption` given several videos describes the queued windows of several engines in one list of rows."""
    ref, ref_segs, _ = _engine(batch_size=2)
    _feed(ref, 58.0)
    made = ref.finish(58.0)  # 5 windows: [0, 12) ... [48, 58); the first 4 described in batches of 2 on the way

    eng, segs, _ = _engine(batch_size=2, known_segments=[Caption(0.0, 12.0, "known.")])
    _feed(eng, 58.0)
    eng.close(58.0)
    assert eng.finished and [len(c) for c in segs.calls] == [1, 2]  # window 0 known; the full batches on the way
    todo = eng.pending()
    assert [(x.start, x.end) for x in todo] == [(48.0, 58.0)]  # the last window waits; nothing was called for it
    assert todo[0].text == ref_segs.items[-1].text and np.array_equal(todo[0].features, ref_segs.items[-1].features)
    with pytest.raises(ValueError, match="2 texts for 1 pending"):
        eng.describe(["a.", "b."])
    assert [c.text for c in eng.describe(["elsewhere."])] == ["elsewhere."]
    assert [(c.start, c.end) for c in eng.segments] == [(c.start, c.end) for c in ref.segments]
    assert [c.text for c in eng.segments][0] == "known." and eng.pending() == [] and eng.describe([]) == []
    assert len(segs.calls) == 2 and len(made) == 1
    assert eng.video_input().text.endswith("elsewhere.")
