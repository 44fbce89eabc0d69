"""lavila_to_encoder on fake LaViLa dual-encoder state dicts."""

from __future__ import annotations

import pytest
import torch
from fakes import lavila_state_dict, official_state_dict, random_encoder, random_model, tiny_config

from videorecap.config import EncoderConfig
from videorecap.convert.lavila import lavila_to_encoder
from videorecap.errors import CheckpointError
from videorecap.model.encoder import VideoEncoder


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_visual_tower_round_trip(dtype: torch.dtype) -> None:
    ecfg = EncoderConfig(image_size=24, patch_size=8, num_frames=3, width=128, layers=2, heads=2, mlp_ratio=2.0)
    enc = random_encoder(ecfg)
    sd = lavila_state_dict(enc, dtype)
    cfg, out, report = lavila_to_encoder(sd)
    assert cfg == ecfg  # every size from the shapes

    loaded = VideoEncoder(cfg).eval()
    loaded.load_state_dict(out, strict=True)
    for k, v in enc.state_dict().items():
        assert out[k].dtype == torch.float32
        assert torch.equal(out[k], v.to(dtype).float()), k
    enc.load_state_dict({k: v.to(dtype).float() for k, v in enc.state_dict().items()})
    x = torch.randn(2, 3, 3, 24, 24)
    assert torch.equal(enc(x), loaded(x))
    assert torch.equal(enc(x[:, :, :2], cls_only=True), loaded(x[:, :, :2], cls_only=True))

    assert set(report.used) | set(report.dropped) == set(sd)
    assert report.used["module.visual.blocks.1.timeattn.qkv.weight"] == "blocks.1.timeattn.qkv.weight"
    assert {k for k in report.dropped if "visual" in k} == set()
    reasons = report.dropped_by_reason()
    assert len(report.dropped) == 2 * 12 + 7  # 2 text blocks x 12 tensors, embeddings, ln_final, projections, scale
    assert any("text transformer" in r for r in reasons)
    assert report.dropped["module.image_projection"].startswith("LaViLa's video-to-joint-space projection")


def test_errors_name_the_key() -> None:
    sd = lavila_state_dict(random_encoder())
    bad = dict(sd)
    bad["module.visual.blocks.0.alpha_timeattn"] = torch.zeros(())  # the gated variant, which we do not build
    bad["module.extra_head.weight"] = torch.zeros(2)
    with pytest.raises(CheckpointError, match="alpha_timeattn.*extra_head|extra_head.*alpha_timeattn"):
        lavila_to_encoder(bad, source="lavila.pth")

    bad = dict(sd)
    del bad["module.visual.norm.bias"]
    with pytest.raises(CheckpointError, match=r"lavila.pth: .*norm\.bias"):
        lavila_to_encoder(bad, source="lavila.pth")

    bad = dict(sd)
    bad["module.visual.blocks.1.mlp.fc2.bias"] = torch.zeros(7)
    with pytest.raises(CheckpointError, match=r"'module.visual.blocks.1.mlp.fc2.bias' has shape \[7\]"):
        lavila_to_encoder(bad, source="lavila.pth")

    bad = dict(sd)
    bad["module.visual.pos_embed"] = torch.zeros(1, 6, 128)  # 5 patches: not a square grid
    with pytest.raises(CheckpointError, match="pos_embed has 6 rows"):
        lavila_to_encoder(bad, source="lavila.pth")


def test_a_video_recap_checkpoint_gets_a_hint() -> None:
    sd = official_state_dict(random_model(tiny_config("segment")))
    with pytest.raises(CheckpointError, match="convert official"):
        lavila_to_encoder(sd, source="videorecap_segment.pt")
