import pytest
import torch

from videorecap.config import RecapConfig
from videorecap.infer.decode import generate_ids
from videorecap.model.recap import VideoRecap


def _inputs(cfg: RecapConfig, level: str, B: int = 2):
    if level == "clip":
        e = cfg.encoder
        video, mask = torch.randn(B, 3, e.num_frames, e.image_size, e.image_size), None
    else:
        video = torch.randn(B, cfg.num_features(level), cfg.encoder.width)
        mask = torch.ones(B, cfg.num_features(level), dtype=torch.bool)
        mask[0, 3:] = False
    text = torch.randint(3, cfg.decoder.vocab_size, (B, 7)) if level != "clip" and cfg.has_text else None
    text_mask = torch.ones_like(text, dtype=torch.bool) if text is not None else None
    cap = torch.randint(3, cfg.decoder.vocab_size, (B, 6))
    cap[:, 0] = cfg.tokens.bos_token_id
    cap[:, -1] = cfg.tokens.eos_token_id
    return dict(video=video, video_mask=mask, text_ids=text, text_mask=text_mask), cap


@pytest.mark.parametrize("model_level", ["clip", "segment", "video", "unified"])
def test_every_level_runs_forward_backward_and_generate(model_level):
    cfg = RecapConfig.from_name("recap-tiny", level=model_level)
    m = VideoRecap(cfg)
    for level in cfg.levels:
        kw, cap = _inputs(cfg, level)
        loss, logits = m(level, cap, **kw)
        assert logits.shape == (2, cap.shape[1] - 1, cfg.decoder.vocab_size)
        assert torch.isfinite(loss)
        m.zero_grad()
        loss.backward()
        assert all(p.grad is None for p in m.parameters() if not p.requires_grad)
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters() if p.requires_grad)
        m.eval()
        out = generate_ids(m, level, **kw)
        assert len(out) == 2 and all(len(o) <= cfg.io.max_new_tokens[level] for o in out)
        m.train()


def test_context_layout_video_then_text():
    cfg = RecapConfig.from_name("recap-tiny", level="segment")
    m = VideoRecap(cfg).eval()
    kw, _ = _inputs(cfg, "segment")
    ctx = m.context("segment", **kw)
    assert ctx.shape == (2, cfg.num_video_queries + cfg.num_text_queries, cfg.video_aligner.width)
    # changing the text changes only the text-query part of the context
    kw2 = dict(kw, text_ids=torch.randint(3, 128, kw["text_ids"].shape))
    ctx2 = m.context("segment", **kw2)
    nv = cfg.num_video_queries
    torch.testing.assert_close(ctx[:, :nv], ctx2[:, :nv])
    assert not torch.allclose(ctx[:, nv:], ctx2[:, nv:])


def test_video_mask_hides_padding():
    cfg = RecapConfig.from_name("recap-tiny", level="video")
    m = VideoRecap(cfg).eval()
    kw, _ = _inputs(cfg, "video")
    a = m.context("video", **kw)
    kw["video"][0, 3:] = torch.randn_like(kw["video"][0, 3:])  # change only masked-out rows of sample 0
    b = m.context("video", **kw)
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("modalities", ["video", "text"])
def test_ablation_modalities(modalities):
    cfg = RecapConfig.from_name("recap-tiny", level="segment", modalities=modalities)
    m = VideoRecap(cfg).eval()
    kw, _ = _inputs(cfg, "segment")
    n = cfg.num_video_queries if modalities == "video" else cfg.num_text_queries
    assert m.context("segment", **kw).shape[1] == n


def test_level_checks_and_loss_modes():
    cfg = RecapConfig.from_name("recap-tiny", level="segment")
    m = VideoRecap(cfg).eval()  # no dropout: the two losses must see identical logits
    kw, cap = _inputs(cfg, "segment")
    with pytest.raises(ValueError, match="segment-level model"):
        m.context("video", **kw)
    cap[:, 4:] = cfg.tokens.pad_token_id  # padding
    tokens, _ = m("segment", cap, **kw, loss_mode="tokens")
    all_pos, _ = m("segment", cap, **kw, loss_mode="all")
    # the original averages over all positions, padding included: exactly (real targets / all targets) smaller
    torch.testing.assert_close(all_pos, tokens * 3 / 5)


def test_official_trainable_counts():
    # reference §1.7: trainable clip 99.47M, segment 113.68M, video 113.85M
    expected = {"clip": 99.47e6, "segment": 113.68e6, "video": 113.85e6}
    for level, n in expected.items():
        with torch.device("meta"):
            m = VideoRecap(RecapConfig.from_name("recap-base", level=level))
        trainable = sum(p.numel() for p in m.parameters() if p.requires_grad)
        assert abs(trainable - n) < 0.01e6, (level, trainable)
