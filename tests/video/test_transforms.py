from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from videorecap.video.transforms import (
    CLIP_MEAN,
    CLIP_STD,
    center_crop,
    denormalize,
    eval_transform,
    random_resized_crop_params,
    resize_short_side,
    train_transform,
)


def test_constants_are_the_originals():
    assert CLIP_MEAN == (108.3272985, 116.7460125, 104.09373615)
    assert CLIP_STD == (68.5005327, 66.6321579, 70.32316305)
    # CLIP's statistics x 255, except the red mean: the original uses 108.33 where 0.48145466 x 255 = 122.77,
    # and the released weights were trained with it, so we keep it
    assert np.allclose(CLIP_MEAN[1:], np.array([0.4578275, 0.40821073]) * 255)
    assert np.allclose(CLIP_STD, np.array([0.26862954, 0.26130258, 0.27577711]) * 255)


def test_eval_transform_shape_and_normalisation():
    frames = np.zeros((4, 288, 384, 3), dtype=np.uint8)
    frames[..., 0] = 200
    frames[..., 1] = 100
    frames[..., 2] = 50
    x = eval_transform(frames, 224)
    assert x.shape == (3, 4, 224, 224) and x.dtype == torch.float32
    for c, v in enumerate((200, 100, 50)):
        assert torch.allclose(x[c], torch.full_like(x[c], (v - CLIP_MEAN[c]) / CLIP_STD[c]), atol=1e-5)
    assert torch.allclose(denormalize(x)[0], torch.full((4, 224, 224), 200.0), atol=1e-3)


def test_short_side_sizes_follow_torchvision():
    x = torch.zeros(1, 3, 288, 384)
    assert resize_short_side(x, 224).shape[-2:] == (224, 298)  # int(224 * 384 / 288) = 298
    x = torch.zeros(1, 3, 1080, 1920)
    assert resize_short_side(x, 224).shape[-2:] == (224, 398)
    x = torch.zeros(1, 3, 9, 17)  # tiny odd frame: upscaled
    assert resize_short_side(x, 224).shape[-2:] == (224, 423)
    x = torch.zeros(1, 3, 640, 360)  # portrait: the width is the short side
    assert resize_short_side(x, 224).shape[-2:] == (398, 224)


def test_center_crop_offsets():
    x = torch.arange(10 * 7, dtype=torch.float32).view(1, 1, 10, 7)
    c = center_crop(x, 4)
    # top = round((10 - 4) / 2) = 3, left = round((7 - 4) / 2) = round(1.5) = 2
    assert torch.equal(c, x[..., 3:7, 2:6])


def test_eval_transform_is_resize_then_crop_without_antialias():
    g = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (2, 48, 64, 3), generator=g, dtype=torch.uint8)
    x = eval_transform(frames.numpy(), 32)
    ref = frames.permute(0, 3, 1, 2).float()
    ref = F.interpolate(ref, size=(32, 42), mode="bilinear", align_corners=False, antialias=False)
    ref = ref[..., :, 5:37]  # left = round((42 - 32) / 2) = 5
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    ref = ((ref - mean) / std).permute(1, 0, 2, 3)
    torch.testing.assert_close(x, ref)
    # an antialiased resize gives different pixels: make sure we are not doing that
    aa = F.interpolate(frames.permute(0, 3, 1, 2).float(), size=(32, 42), mode="bilinear", antialias=True)
    assert not torch.allclose(aa[..., 5:37], denormalize(x).permute(1, 0, 2, 3), atol=1e-2)


def test_odd_and_portrait_frames():
    assert eval_transform(np.zeros((4, 9, 17, 3), np.uint8), 32).shape == (3, 4, 32, 32)
    assert eval_transform(np.zeros((2, 64, 36, 3), np.uint8), 32).shape == (3, 2, 32, 32)
    with pytest.raises(ValueError):
        eval_transform(np.zeros((4, 9, 17), np.uint8), 32)


def test_random_resized_crop_params_in_range():
    rng = np.random.default_rng(0)
    for _ in range(200):
        top, left, h, w = random_resized_crop_params(288, 384, rng)
        assert 0 <= top and top + h <= 288 and 0 <= left and left + w <= 384
        area = h * w / (288 * 384)
        assert 0.5 - 0.02 <= area <= 1.0 + 1e-9
        assert 3 / 4 - 0.02 <= w / h <= 4 / 3 + 0.02


def test_train_transform_one_crop_for_all_frames():
    # frames that differ only by a constant: the same crop keeps the difference exactly constant
    base = np.random.default_rng(0).integers(0, 200, size=(48, 64, 3)).astype(np.uint8)
    frames = np.stack([base, base + 20, base + 40])
    x = train_transform(frames, 32, rng=np.random.default_rng(3))
    assert x.shape == (3, 3, 32, 32)
    d1 = denormalize(x)[:, 1] - denormalize(x)[:, 0]
    d2 = denormalize(x)[:, 2] - denormalize(x)[:, 1]
    assert torch.allclose(d1, torch.full_like(d1, 20.0), atol=1e-3)
    assert torch.allclose(d2, torch.full_like(d2, 20.0), atol=1e-3)
    # seeded: reproducible; a different seed gives a different crop
    y = train_transform(frames, 32, rng=np.random.default_rng(3))
    z = train_transform(frames, 32, rng=np.random.default_rng(4))
    assert torch.equal(x, y) and not torch.equal(x, z)
