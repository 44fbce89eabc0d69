import pytest
import torch
import torch.nn.functional as F

from videorecap.config import EncoderConfig, RecapConfig
from videorecap.model.encoder import VideoEncoder


def _tiny() -> EncoderConfig:
    return RecapConfig.from_name("recap-tiny").encoder


def _randomise(enc: VideoEncoder) -> None:
    # the zero time-init makes the time branch vanish; give every tensor random values so the test sees it
    with torch.no_grad():
        for p in enc.parameters():
            p.normal_(0, 0.2)


def _reference_attention(attn, x, axis, T):
    """Full attention with an explicit allow-mask: an independent statement of the divided-attention layout."""
    B, N, C = x.shape
    H = attn.heads
    P = (N - 1) // T
    allow = torch.zeros(N, N, dtype=torch.bool)
    allow[0, :] = True  # CLS sees everything
    allow[:, 0] = True  # everyone sees CLS
    for i in range(T * P):
        ti, pi = divmod(i, P)
        for j in range(T * P):
            tj, pj = divmod(j, P)
            if (axis == "space" and ti == tj) or (axis == "time" and pi == pj):
                allow[1 + i, 1 + j] = True
    q, k, v = attn.qkv(x).view(B, N, 3, H, C // H).permute(2, 0, 3, 1, 4)
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=allow)
    return attn.proj(y.transpose(1, 2).reshape(B, N, C))


@pytest.mark.parametrize("axis", ["space", "time"])
def test_divided_attention_matches_masked_full_attention(axis):
    enc = VideoEncoder(_tiny())
    _randomise(enc)
    attn = enc.blocks[0].attn
    x = torch.randn(2, 1 + 2 * 16, 32)
    torch.testing.assert_close(attn(x, axis, 2), _reference_attention(attn, x, axis, 2), atol=1e-5, rtol=1e-5)


def test_block_residual_quirk():
    # y = x + space(norm1(x + time(norm3(x)))), then the MLP: the time output is NOT added to the stream itself
    enc = VideoEncoder(_tiny())
    _randomise(enc)
    blk = enc.blocks[0]
    x = torch.randn(1, 33, 32)
    t = blk.timeattn(blk.norm3(x), "time", 2)
    y = x + blk.attn(blk.norm1(x + t), "space", 2)
    y = y + blk.mlp(blk.norm2(y))
    torch.testing.assert_close(blk(x, 2), y)
    standard = x + t + blk.attn(blk.norm1(x + t), "space", 2)
    assert not torch.allclose(blk(x, 2), standard + blk.mlp(blk.norm2(standard)))


def test_shapes_cls_and_fewer_frames():
    cfg = _tiny()
    enc = VideoEncoder(cfg).eval()
    x = torch.randn(3, 3, cfg.num_frames, cfg.image_size, cfg.image_size)
    tokens = enc(x)
    assert tokens.shape == (3, cfg.num_tokens, cfg.width)
    torch.testing.assert_close(enc(x, cls_only=True), tokens[:, 0])
    assert enc(x[:, :, :1]).shape == (3, 1 + cfg.num_patches, cfg.width)  # fewer frames are allowed
    with pytest.raises(ValueError):
        enc(torch.randn(1, 3, cfg.num_frames + 1, cfg.image_size, cfg.image_size))


def test_time_branch_starts_at_zero():
    # LaViLa's 'zeros' time init: the untrained time attention outputs exactly 0, whatever its input
    enc = VideoEncoder(_tiny()).eval()
    for blk in enc.blocks:
        assert torch.count_nonzero(blk.timeattn(torch.randn(2, 33, 32), "time", 2)) == 0


def test_base_sizes():
    cfg = RecapConfig.from_name("recap-base").encoder
    assert cfg.num_tokens == 785
    enc = VideoEncoder(cfg)
    shapes = {k: tuple(v.shape) for k, v in enc.state_dict().items()}
    assert shapes["temporal_embed"] == (1, 4, 768)
    assert shapes["pos_embed"] == (1, 197, 768)
    assert shapes["patch_embed.proj.weight"] == (768, 3, 16, 16)
    assert "patch_embed.proj.bias" not in shapes
    assert shapes["blocks.11.timeattn.qkv.weight"] == (2304, 768)
    n = sum(v.numel() for v in enc.state_dict().values())
    assert abs(n - 114.17e6) < 0.01e6  # reference §1.7
