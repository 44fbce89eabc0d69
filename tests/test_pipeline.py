import numpy as np
import pytest
import torch

from videorecap.config import RecapConfig
from videorecap.errors import InputError
from videorecap.infer import batch as infer_batch
from videorecap.model.recap import VideoRecap
from videorecap.pipeline import Captioner, CaptionOptions, caption_video
from videorecap.tokenizer import Tokenizer
from videorecap.video.testing import make_video

WORDS = [f"w{i}" for i in range(120)]


@pytest.fixture(scope="module")
def captioner():
    torch.manual_seed(0)
    tok = Tokenizer.train_word_level([" ".join(WORDS)])
    models = {}
    for level in ("clip", "segment", "video"):
        cfg = RecapConfig.from_name("recap-tiny", level=level, segment_seconds=12.0)
        m = VideoRecap(cfg).eval()
        with torch.no_grad():  # open the gates so the captions depend on the input
            for blk in m.decoder.h:
                blk.xattn_gate.fill_(1.0)
                blk.xmlp_gate.fill_(1.0)
            m.decoder.wte.weight[2] -= 2.0  # rarely stop at once: non-empty captions
        models[level] = (m, tok)
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
    from videorecap.data.sampling import sample_uniform, slice_features

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
    k = captioner.model("segment").config.segment_num_features
    # segment [0, 12) reads rows int(0/4)..int(12//4) = 0..3 of the given file, uniformly sampled to k
    expected = sample_uniform(slice_features(feats, 0, 12), k)
    np.testing.assert_array_equal(seen[0][0].numpy(), expected)
    with pytest.raises(InputError, match="no precomputed features"):
        caption_video(video, captioner, CaptionOptions(features_dir=tmp_path / "none"))


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
