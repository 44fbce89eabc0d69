"""Frame transforms of the original (LaViLa / Video ReCap), without torchvision.

Inference and feature extraction: short-side resize to `size`, center crop `size x size`, CLIP normalisation on the
0-255 scale. Training: one random resized crop (scale 0.5-1, ratio 3/4-4/3) shared by all frames of a clip, resized
to `size x size`, then the same normalisation. No flips, no colour jitter (as the original).

Resizing is bilinear with `align_corners=False` and **no antialiasing**, as torchvision 0.11 (the version LaViLa
pinned) resized tensors; torchvision >= 0.17 antialiases by default, which changes downscaled pixels slightly.
Output sizes and crop offsets follow torchvision's rules (`int(size * long / short)`, `round((h - size) / 2)`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

# The original's normalisation on the 0-255 scale: CLIP's mean/std times 255, except the red mean, which LaViLa
# and Video ReCap set to 108.3272985 (CLIP's would be 122.77); the released weights were trained with it.
CLIP_MEAN: tuple[float, float, float] = (108.3272985, 116.7460125, 104.09373615)
CLIP_STD: tuple[float, float, float] = (68.5005327, 66.6321579, 70.32316305)


def _to_tchw(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(T, H, W, 3) uint8/float frames -> (T, 3, H, W) float32."""
    x = torch.as_tensor(frames)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"frames must be (T, H, W, 3), got {tuple(x.shape)}")
    return x.permute(0, 3, 1, 2).to(torch.float32)


def _normalize(x: torch.Tensor) -> torch.Tensor:
    """(T, 3, H, W) on 0-255 -> (3, T, H, W) normalised."""
    mean = torch.tensor(CLIP_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return ((x - mean) / std).permute(1, 0, 2, 3).contiguous()


def resize_short_side(x: torch.Tensor, size: int) -> torch.Tensor:
    """(T, 3, H, W) -> short side `size`, the long side `int(size * long / short)` (torchvision `Resize(size)`)."""
    h, w = x.shape[-2:]
    if h <= w:
        new_h, new_w = size, int(size * w / h)
    else:
        new_h, new_w = int(size * h / w), size
    if (new_h, new_w) == (h, w):
        return x
    return F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=False)


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """(..., H, W) -> (..., size, size), offsets `round((H - size) / 2)` as torchvision (input at least `size`)."""
    h, w = x.shape[-2:]
    top = int(round((h - size) / 2.0))
    left = int(round((w - size) / 2.0))
    return x[..., top : top + size, left : left + size]


def eval_transform(frames: np.ndarray | torch.Tensor, size: int = 224) -> torch.Tensor:
    """(T, H, W, 3) uint8 RGB -> (3, T, size, size) float32: short-side resize, center crop, CLIP normalisation."""
    x = _to_tchw(frames)
    x = center_crop(resize_short_side(x, size), size)
    return _normalize(x)


def random_resized_crop_params(
    height: int,
    width: int,
    rng: np.random.Generator,
    scale: tuple[float, float] = (0.5, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a random crop covering `scale` of the area with aspect ratio in `ratio`.

    torchvision's `RandomResizedCrop.get_params`: 10 tries of (area, log-uniform ratio); if none fits, the whole
    image cut to the nearest allowed ratio, centred.
    """
    area = height * width
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(10):
        target_area = area * float(rng.uniform(scale[0], scale[1]))
        aspect = math.exp(float(rng.uniform(log_lo, log_hi)))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return top, left, h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        h, w = height, int(round(height * max(ratio)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def train_transform(
    frames: np.ndarray | torch.Tensor,
    size: int = 224,
    rng: np.random.Generator | None = None,
    scale: tuple[float, float] = (0.5, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> torch.Tensor:
    """(T, H, W, 3) -> (3, T, size, size): one random resized crop for all frames, then CLIP normalisation."""
    rng = rng if rng is not None else np.random.default_rng()
    x = _to_tchw(frames)
    top, left, h, w = random_resized_crop_params(x.shape[-2], x.shape[-1], rng, scale, ratio)
    x = x[..., top : top + h, left : left + w]
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=False)
    return _normalize(x)


def denormalize(x: torch.Tensor) -> torch.Tensor:
    """Inverse of the normalisation: (3, T, H, W) -> 0-255 values (for looking at what the model sees)."""
    mean = torch.tensor(CLIP_MEAN, dtype=x.dtype, device=x.device).view(3, 1, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=x.dtype, device=x.device).view(3, 1, 1, 1)
    return x * std + mean
