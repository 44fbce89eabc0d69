import numpy as np
import pytest
import torch
from _helpers import tiny_recap, word_tokenizer

from videorecap.errors import InputError
from videorecap.infer import batch as infer_batch
from videorecap.pipeline import Captioner, CaptionOptions, caption_video
from videorecap.video.testing import make_video

WORDS = [f"w{i}" for i in range(120)]


@pytest.fixture(scope="module")
def captioner():
    torch.manual_seed(0)
    tok = word_tokenizer(len(WORDS))
    models = {level: (tiny_recap(level, segment_seconds=12.0), tok) for level in ("clip", "segment", "video")}
    return Captioner(models, {lv: "tiny" for lv in models})


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("v") / "kitchen.mp4", duration=30.0, fps=2.0, size=(32, 24))


def test_three_levels_cover_the_video(captioner, video):
    res = caption_video(video, captioner, CaptionOptions(batch_size=3))
    d = res.video.duration
    assert abs(d - 30.0) < 0.6
    # a caption for every 4-s window, contiguous from 0 to the end
    assert len(res.clips) == int(np.ceil(d / 4))
    assert res.clips[0].start == 0 and res.clips[-1].end == pytest.approx(d)
    assert all(a.end == b.start for a, b in zip(res.clips, res.clips[1:], strict=False))
    assert all(c.text for c in res.clips)
    # segments of 12 s (the model's window), the last one cut at the end
    assert [s.start for s in res.segments] == [0, 12, 24]
    assert res.segments[-1].end == pytest.approx(d)
    assert res.summary is not None and (res.summary.start, res.summary.end) == (0, pytest.approx(d))
    assert res.levels == ["clip", "segment", "video"]


def test_segment_input_is_the_clip_captions_inside_joined_as_the_original(captioner, video, monkeypatch):
    seen = []
    tok = captioner.tokenizer("segment")
    orig = tok.encode
    monkeypatch.setattr(tok, "encode", lambda t: (seen.append(t), orig(t))[1])
    res = caption_video(video, captioner, CaptionOptions(levels=("clip", "segment")))
    # segment [0, 12): clips [0,4), [4,8), [8,12) lie inside; joined with no separator
    assert seen[0] == "".join(c.text for c in res.clips[:3])
    assert res.summary is None and res.levels == ["clip", "segment"]


def test_batch_size_does_not_change_the_captions(captioner, video):
    a = caption_video(video, captioner, CaptionOptions(batch_size=1, levels=("clip",)))
    b = caption_video(video, captioner, CaptionOptions(batch_size=5, levels=("clip",)))
    assert [c.text for c in a.clips] == [c.text for c in b.clips]


def test_interrupted_run_resumes_from_cache_with_identical_result(captioner, video, tmp_path, monkeypatch):
    opts = CaptionOptions(batch_size=2, chunk_batches=1)
    full = caption_video(video, captioner, opts)

    import videorecap.pipeline as pl

    calls = {"n": 0}
    real_generate = infer_batch.generate_ids

    def dying_generate(model, level, **kw):
        if level == "clip":
            calls["n"] += 1
            if calls["n"] == 3:
                raise KeyboardInterrupt  # killed during the 3rd batch
        return real_generate(model, level, **kw)

    monkeypatch.setattr(infer_batch, "generate_ids", dying_generate)
    cache = tmp_path / "cache"
    with pytest.raises(KeyboardInterrupt):
        caption_video(video, captioner, opts, cache_dir=cache)
    assert len(list(cache.glob("clips-*.npz"))) == 2  # two finished chunks survive

    decoded = []
    real_frames = pl._Run._frames
    monkeypatch.setattr(pl._Run, "_frames", lambda self, w, s: (decoded.append(len(w)), real_frames(self, w, s))[1])
    monkeypatch.setattr(infer_batch, "generate_ids", real_generate)
    resumed = caption_video(video, captioner, opts, cache_dir=cache)
    assert decoded == [len(full.clips) - 4]  # only the windows after the two cached chunks were decoded
    assert resumed.to_dict() == full.to_dict()

    # a finished run does no work at all the next time
    decoded.clear()
    again = caption_video(video, captioner, opts, cache_dir=cache)
    assert decoded == [] and again.to_dict() == full.to_dict()


def test_changed_settings_invalidate_the_cache(captioner, video, tmp_path):
    cache = tmp_path / "cache"
    a = caption_video(video, captioner, CaptionOptions(levels=("clip",)), cache_dir=cache)
    b = caption_video(video, captioner, CaptionOptions(levels=("clip",), clip_seconds=5.0), cache_dir=cache)
    assert len(b.clips) != len(a.clips)


def test_missing_level_model_is_a_clear_error(captioner, video):
    only_clip = Captioner({"clip": captioner.models["clip"]})
    with pytest.raises(InputError, match="--levels clip"):
        caption_video(video, only_clip, CaptionOptions())


def test_precomputed_features(captioner, video, tmp_path, monkeypatch):
    from videorecap.data.feature_sampling import sample_uniform, slice_features

    feats = np.random.default_rng(0).standard_normal((8, 32)).astype(np.float32)
    np.save(tmp_path / "kitchen.npy", feats)
    seen = []
    real_generate = infer_batch.generate_ids

    def spy(model, level, **kw):
        if level == "segment":
            seen.append(kw["video"])
        return real_generate(model, level, **kw)

    monkeypatch.setattr(infer_batch, "generate_ids", spy)
    caption_video(video, captioner, CaptionOptions(levels=("clip", "segment"), features_dir=tmp_path))
    k = captioner.model("segment").config.num_features("segment")
    # segment [0, 12) reads rows int(0/4)..int(12//4) = 0..3 of the given file, uniformly sampled to k
    expected = sample_uniform(slice_features(feats, 0, 12), k)
    np.testing.assert_array_equal(seen[0][0].numpy(), expected)
    with pytest.raises(InputError, match="no precomputed features"):
        caption_video(video, captioner, CaptionOptions(features_dir=tmp_path / "none"))
    feats[3, 5] = np.nan  # a damaged file: its NaN would give empty captions above it, without a word
    np.save(tmp_path / "kitchen.npy", feats)
    with pytest.raises(InputError, match="kitchen.npy: holds NaN or infinite values"):
        caption_video(video, captioner, CaptionOptions(levels=("clip", "segment"), features_dir=tmp_path))


def test_a_segment_window_shorter_than_a_clip_window_is_refused(captioner, video):
    # it was accepted: 2-s "segments" of 4-s clips, and 0.001 s ran for hours (30,000 segments for 30 s)
    for opts in (CaptionOptions(segment_seconds=2.0), CaptionOptions(segment_seconds=0.001)):
        with pytest.raises(InputError, match="--segment-seconds .* is shorter than the clip window .4 s"):
            caption_video(video, captioner, opts)
    with pytest.raises(InputError, match="--segment-seconds 3 is shorter than the clip window .5 s"):
        CaptionOptions(clip_seconds=5.0, segment_seconds=3.0)
    with pytest.raises(InputError, match="unknown level.* clips"):
        CaptionOptions(max_new_tokens={"clips": 5})
    res = caption_video(video, captioner, CaptionOptions(segment_seconds=4.0, levels=("clip", "segment")))
    assert [s.start for s in res.segments] == [4.0 * k for k in range(7)]  # one clip window each: the shortest


def test_num_features_option_reaches_the_sampling_not_the_model(captioner, video, tmp_path, monkeypatch):
    # --num-features -> the run's level I/O -> the engine's sampling; the model's config is left as it is
    seen: dict[str, list] = {"segment": [], "video": []}
    real_generate = infer_batch.generate_ids

    def spy(model, level, **kw):
        if level in seen:
            seen[level].append(tuple(kw["video"].shape[:2]))
        return real_generate(model, level, **kw)

    monkeypatch.setattr(infer_batch, "generate_ids", spy)
    cfgs = {lv: captioner.model(lv).config.to_dict() for lv in ("segment", "video")}
    opts = CaptionOptions(num_features={"segment": 3, "video": 5})
    caption_video(video, captioner, opts, cache_dir=tmp_path / "cache")
    assert {k for _, k in seen["segment"]} == {3} and {k for _, k in seen["video"]} == {5}
    assert {lv: captioner.model(lv).config.to_dict() for lv in cfgs} == cfgs
    # a cache made with other feature counts is not reused
    seen["segment"].clear()
    caption_video(video, captioner, CaptionOptions(num_features={"segment": 4}), cache_dir=tmp_path / "cache")
    assert {k for _, k in seen["segment"]} == {4}
    with pytest.raises(InputError, match="--num-features: .*unknown feature level"):
        CaptionOptions(num_features={"clip": 3})


def test_load_accepts_level_folders_and_training_output(captioner, tmp_path):
    from videorecap.checkpoint import save_pretrained

    for level, (m, tok) in captioner.models.items():
        save_pretrained(m, tmp_path / "levels" / level, tokenizer=tok)
        save_pretrained(m, tmp_path / "run" / level / "final", tokenizer=tok)  # `videorecap train` layout
    for root in ("levels", "run"):
        loaded = Captioner.load(tmp_path / root)
        assert loaded.levels == ("clip", "segment", "video")
    only = Captioner.load(tmp_path / "levels" / "clip")
    assert only.levels == ("clip",)
    from videorecap.errors import CheckpointError

    with pytest.raises(CheckpointError, match="not a model"):
        Captioner.load(tmp_path)


def test_a_partly_decodable_video_is_captioned_over_what_decoded(captioner, tmp_path):
    from videorecap.errors import VideoError
    from videorecap.video.testing import corrupt_middle

    path = make_video(tmp_path / "broken.mkv", duration=60, fps=5, size=(64, 48), codec="ffv1")
    corrupt_middle(path)
    with pytest.raises(VideoError, match="corrupt or truncated"):
        caption_video(path, captioner, CaptionOptions())
    res = caption_video(path, captioner, CaptionOptions(allow_partial=True), cache_dir=tmp_path / "cache")
    end = res.clips[-1].end
    assert res.video.partial and res.video.covered == [[0.0, end]] and end < res.video.duration
    assert res.segments[-1].end == end and res.summary is not None and res.summary.end == end
    # a second run reads the cached part and stops at the same place: the same result
    again = caption_video(path, captioner, CaptionOptions(allow_partial=True), cache_dir=tmp_path / "cache")
    assert again.to_dict() == res.to_dict() and again.video.covered == res.video.covered
    # nothing decodable at all: a clean error for this video (not an error deep in the sampling code)
    early = corrupt_middle(make_video(tmp_path / "early.mkv", duration=60, fps=5, size=(64, 48), codec="ffv1"), 0.04)
    with pytest.raises(VideoError, match="no window could be decoded"):
        caption_video(early, captioner, CaptionOptions(allow_partial=True))


def test_whole_video_is_not_partial(captioner, video):
    res = caption_video(video, captioner, CaptionOptions(levels="clip"))
    assert not res.video.partial and res.video.covered is None


def test_levels_may_be_one_string(captioner, video):
    assert CaptionOptions(levels="clip").levels == ("clip",)
    assert CaptionOptions(levels="clip,segment").levels == ("clip", "segment")
    assert CaptionOptions(levels="video").levels == ("clip", "segment", "video")
    with pytest.raises(InputError, match="unknown level"):
        CaptionOptions(levels="clips")
    import videorecap

    res = videorecap.caption(video, model=captioner, levels="clip")
    assert res.levels == ["clip"] and res.segments == [] and res.summary is None


def test_a_short_tail_joins_the_previous_window_in_caption_and_features(captioner, tmp_path):
    from videorecap.video.features import extract_features

    # 4.2 s: the plan is one 4.2-s window, not a 4-s window and a 0.2-s one with a whole caption of its own
    path = make_video(tmp_path / "tail.mp4", duration=4.2, fps=5.0, size=(32, 24))
    res = caption_video(path, captioner, CaptionOptions(levels="clip"))
    assert [(c.start, c.end) for c in res.clips] == [(0.0, pytest.approx(res.video.duration))]
    enc = captioner.model("clip").encoder
    assert extract_features(path, enc).shape[0] == len(res.clips)  # `videorecap features` uses the same plan
    kept = caption_video(path, captioner, CaptionOptions(levels="clip", min_tail_seconds=0))
    assert len(kept.clips) == 2 and extract_features(path, enc, min_tail_seconds=0).shape[0] == 2


def test_bars_are_named_by_level(captioner, video, capsys):
    caption_video(video, captioner, CaptionOptions(progress=True))
    err = capsys.readouterr().err
    assert "kitchen clips" in err and "kitchen segments" in err and "kitchen summary" in err
    assert "kitchen videos" not in err


def test_load_by_name_and_clear_errors_for_files(tmp_path, monkeypatch):
    from videorecap.errors import CheckpointError
    from videorecap.synth.model import bundled_model_dir

    cap = Captioner.load("recap-synth", levels=("clip", "segment"))
    assert cap.levels == ("clip", "segment")  # the video level is not loaded when not needed
    assert cap.sources["segment"] == str(bundled_model_dir() / "segment")
    with pytest.raises(CheckpointError, match="no such model folder .*recap-synth"):
        Captioner.load(tmp_path / "nope")
    pt = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(1)}, pt)
    with pytest.raises(CheckpointError, match="convert it first with `videorecap convert official"):
        Captioner.load(pt)
    # a missing level is found before any weights are read
    monkeypatch.setattr("videorecap.checkpoint.load_model", lambda *a, **kw: pytest.fail("weights were read"))
    with pytest.raises(InputError, match="--levels clip"):
        Captioner.load(bundled_model_dir() / "clip", levels="segment")


@pytest.mark.parametrize("clip_seconds", [None, 0.1])  # the model's 4 s, and the smallest --clip-seconds
def test_a_huge_declared_duration_costs_no_memory_before_the_truncation_shows(
    captioner, tmp_path, monkeypatch, clip_seconds
):
    """A header that claims 200 h for 10 s of frames: the windows are computed as the decode pass reaches them,
    so memory follows what is really in the file, not what it declares (the whole plan used to be built first)."""
    import dataclasses
    import tracemalloc

    from videorecap import pipeline
    from videorecap.errors import VideoError
    from videorecap.video.io import probe

    path = make_video(tmp_path / "liar.mkv", duration=10.0, fps=2.0, size=(32, 24), codec="ffv1")
    claims = dataclasses.replace(probe(path), duration=200 * 3600.0, num_frames=None)
    monkeypatch.setattr(pipeline, "probe", lambda p: claims)
    opts = {"levels": ("clip",), "batch_size": 4, "clip_seconds": clip_seconds}
    with pytest.raises(VideoError, match="truncated"):
        caption_video(path, captioner, CaptionOptions(**opts))
    tracemalloc.start()
    try:
        res = caption_video(path, captioner, CaptionOptions(allow_partial=True, **opts))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    step = clip_seconds or 4.0
    assert res.video.partial and 7.5 <= res.clips[-1].end <= 10.5  # the windows that had all their frames
    assert len(res.clips) == pytest.approx(res.clips[-1].end / step, abs=1)
    # a plan of 180,000 (or 7.2 million) windows as lists took 100 MB (or gigabytes); now a few MB for the model
    assert peak < 16 << 20, f"peak {peak >> 20} MB"


def test_the_clip_stage_keeps_only_the_cls_rows_not_every_token(captioner, video, monkeypatch):
    """The CLS rows kept per chunk until the clip stage ends must own their memory: a view of the encoder's output
    kept all 1 + T*P tokens of every window alive (10 h of video: 400 MB more at the end of the clip stage)."""
    from videorecap import pipeline

    kept: list[tuple[int, int]] = []
    save = pipeline._Run._save_chunk

    def spy(self, start, texts, feats):  # noqa: ANN001, ANN202
        for a in feats:
            owner = a
            while isinstance(owner, np.ndarray) and owner.base is not None:
                owner = owner.base
            held = owner.untyped_storage().nbytes() if isinstance(owner, torch.Tensor) else owner.nbytes
            kept.append((a.nbytes, held))
        return save(self, start, texts, feats)

    monkeypatch.setattr(pipeline._Run, "_save_chunk", spy)
    caption_video(video, captioner, CaptionOptions(levels="clip", batch_size=3))
    assert kept and all(held == own for own, held in kept), kept[:3]


# ---- several videos decoded together (issue 15 §2) --------------------------------------------------------------
@pytest.fixture(scope="module")
def short_videos(tmp_path_factory):
    """Three short videos of 3, 2 and 1 segment windows (12-s segments): 6 segment rows and 3 summaries."""
    d = tmp_path_factory.mktemp("several")
    return [make_video(d / f"v{i}.mp4", duration=t, fps=2.0, size=(32, 24)) for i, t in enumerate((30.0, 20.0, 14.0))]


def _rows_per_call(monkeypatch):
    """Spy on the pipeline's decoding: (level, rows) of every caption_batch call."""
    import videorecap.pipeline as pl

    calls: list[tuple[str, int]] = []
    real = pl.caption_batch

    def spy(model, tok, level, items, *a, **kw):
        calls.append((level, len(items["video"]) if isinstance(items, dict) else len(items)))
        return real(model, tok, level, items, *a, **kw)

    monkeypatch.setattr(pl, "caption_batch", spy)
    return calls


def test_several_videos_decode_their_clips_segments_and_summaries_together(captioner, short_videos, monkeypatch):
    from videorecap.pipeline import caption_videos

    calls = _rows_per_call(monkeypatch)
    alone = [caption_video(v, captioner, CaptionOptions(batch_size=4, decode_batch=8)) for v in short_videos]
    alone_calls = [c for c in calls if c[0] != "clip"]
    alone_clip_calls = [c for c in calls if c[0] == "clip"]
    calls.clear()
    jobs = [(v, None, None) for v in short_videos]
    out = list(caption_videos(jobs, captioner, CaptionOptions(batch_size=4, decode_batch=8)))
    assert [c for c in calls if c[0] != "clip"] == [("segment", 6), ("video", 3)]
    assert alone_calls == [("segment", 3), ("video", 1), ("segment", 2), ("video", 1), ("segment", 1), ("video", 1)]
    # clip windows (8, 5 and 4): one video's last rows share a decode batch with the next video's first ones
    assert [r for lv, r in calls if lv == "clip"] == [8, 8, 1]
    assert [r for lv, r in alone_clip_calls] == [8, 5, 4]
    # identical results: greedy rows do not depend on their batch partners
    assert [i for i, _, _ in out] == [0, 1, 2]
    assert [r.to_dict() for _, r, _ in out] == [r.to_dict() for r in alone]


def test_groups_are_bounded_by_the_decode_batch(captioner, short_videos, monkeypatch):
    from videorecap.pipeline import caption_videos

    calls = _rows_per_call(monkeypatch)
    jobs = [(v, None, None) for v in short_videos]
    # decode batch 4: the first two videos hold 5 segment windows (>= 4), a group decoded 4 + 1 rows; the third
    # video is a group of its own
    list(caption_videos(jobs, captioner, CaptionOptions(batch_size=4, decode_batch=4)))
    assert [c for c in calls if c[0] != "clip"] == [("segment", 4), ("segment", 1), ("video", 2), ("segment", 1),
                                                    ("video", 1)]  # fmt: skip
    calls.clear()
    # decode batch 2: the 3 windows of the first video are a full batch of 2 in its engine, and the last one
    list(caption_videos(jobs[:1], captioner, CaptionOptions(batch_size=2, decode_batch=2)))
    assert [c for c in calls if c[0] != "clip"] == [("segment", 2), ("segment", 1), ("video", 1)]


def test_several_videos_resume_after_an_interruption_redoing_nothing_saved(captioner, short_videos, tmp_path,
                                                                           monkeypatch):  # fmt: skip
    import videorecap.pipeline as pl
    from videorecap.pipeline import caption_videos

    opts = CaptionOptions(batch_size=4, decode_batch=8)
    ref = [r.to_dict() for _, r, _ in caption_videos([(v, None, None) for v in short_videos], captioner, opts)]
    jobs = [(v, None, tmp_path / v.stem) for v in short_videos]
    calls = _rows_per_call(monkeypatch)
    real = pl.caption_batch

    def dying(model, tok, level, items, *a, **kw):
        if level == "video":
            raise KeyboardInterrupt  # killed while the group's summaries decode
        return real(model, tok, level, items, *a, **kw)

    monkeypatch.setattr(pl, "caption_batch", dying)
    with pytest.raises(KeyboardInterrupt):
        list(caption_videos(jobs, captioner, opts))
    # every video's clip chunks and segment descriptions were saved in its own store
    assert all(list((tmp_path / v.stem).glob("segments*")) for v in short_videos)
    monkeypatch.setattr(pl, "caption_batch", real)
    calls = _rows_per_call(monkeypatch)
    decoded = []
    real_frames = pl._Run._frames
    monkeypatch.setattr(pl._Run, "_frames", lambda self, w, s: (decoded.append(len(w)), real_frames(self, w, s))[1])
    out = list(caption_videos(jobs, captioner, opts))
    assert decoded == [] and calls == [("video", 3)]  # only the summaries were left to do
    assert [r.to_dict() for _, r, _ in out] == ref


@pytest.mark.parametrize("bad", ["junk", "broken"])
def test_a_bad_video_among_several_fails_alone(captioner, short_videos, tmp_path, bad):
    from videorecap.errors import VideoError
    from videorecap.pipeline import caption_videos
    from videorecap.video.testing import corrupt_middle

    if bad == "junk":  # fails before any window decodes
        path = tmp_path / "junk.mp4"
        path.write_text("not a video")
    else:  # fails half-way, with rows of it and of the video before it waiting for the clip decoder
        path = corrupt_middle(make_video(tmp_path / "broken.mkv", duration=60, fps=5, size=(64, 48), codec="ffv1"))
    opts = CaptionOptions(batch_size=2, decode_batch=8)
    jobs = [(short_videos[1], None, None), (path, None, None), (short_videos[2], None, None)]
    out = {i: r for i, r, _ in caption_videos(jobs, captioner, opts)}
    assert isinstance(out[1], VideoError) and path.name in str(out[1])
    assert out[0].to_dict() == caption_video(short_videos[1], captioner, opts).to_dict()
    assert out[2].to_dict() == caption_video(short_videos[2], captioner, opts).to_dict()
    if bad == "broken":  # and with --allow-partial, it is captioned over what decoded, with the others
        opts = CaptionOptions(batch_size=2, decode_batch=8, allow_partial=True)
        out = [r for _, r, _ in caption_videos(jobs, captioner, opts)]
        assert out[1].video.partial and out[1].to_dict() == caption_video(path, captioner, opts).to_dict()
        assert out[0].to_dict() == caption_video(short_videos[1], captioner, opts).to_dict()


def test_sampling_decodes_each_video_on_its_own(captioner, short_videos, monkeypatch):
    """A sampled row's draws depend on the other rows of its call: a video's seeded captions must not depend on the
    other videos of the run, so sampling does not decode videos together."""
    from videorecap.infer.decode import DecodeConfig
    from videorecap.pipeline import caption_videos

    opts = CaptionOptions(batch_size=4, decode_batch=8, decode=DecodeConfig(strategy="sample", seed=1))
    alone = [caption_video(v, captioner, opts).to_dict() for v in short_videos]
    calls = _rows_per_call(monkeypatch)
    out = [r.to_dict() for _, r, _ in caption_videos([(v, None, None) for v in short_videos], captioner, opts)]
    assert out == alone
    assert [c for c in calls if c[0] != "clip"] == [("segment", 3), ("video", 1), ("segment", 2), ("video", 1),
                                                    ("segment", 1), ("video", 1)]  # fmt: skip
