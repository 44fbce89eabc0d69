"""LaViLa's dual-encoder checkpoint -> our `VideoEncoder`.

Video ReCap's encoder is the video tower of LaViLa's `clip_openai_timesformer_base.baseline.ep_0003.pth` (reference
lavila §1.6): its `module.visual.*` tensors, loaded strictly, frozen. Our encoder uses LaViLa's names, so the
conversion strips `module.visual.` and checks every tensor; the text tower and both projections are dropped.

The sizes come from the tensors: width from `cls_token`, patch size from the patch convolution, image size from
`pos_embed` (1 + (image / patch)^2 rows), frames from `temporal_embed`, depth from the block indices, MLP ratio from
`mlp.fc1`, and heads = width / 64 (LaViLa's TimeSformers all use 64-wide heads).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping

import torch

from videorecap.config import EncoderConfig
from videorecap.convert.report import ConversionReport, check_against_model, strip_module_prefix
from videorecap.errors import CheckpointError

logger = logging.getLogger(__name__)

HEAD_DIM = 64  # heads = width / 64 in every model these checkpoints come from

# LaViLa's text side and joint-space projections: not part of the video encoder
_LAVILA_DROPPED = (
    ("transformer.", "LaViLa's text transformer (the captioner has its own text decoder)"),
    ("token_embedding.", "LaViLa's text token embedding"),
    ("positional_embedding", "LaViLa's text position embedding"),
    ("ln_final.", "LaViLa's text final LayerNorm"),
    ("image_projection", "LaViLa's video-to-joint-space projection (Video ReCap uses the 768-d features)"),
    ("text_projection", "LaViLa's text-to-joint-space projection"),
    ("logit_scale", "LaViLa's contrastive temperature"),
)


def heads_for(width: int, key: str, source: str) -> int:
    """Attention heads of a `width`-wide layer: width / 64."""
    if width % HEAD_DIM:
        raise CheckpointError(
            f"{source}: {key!r} is {width} wide, which is not a multiple of the {HEAD_DIM}-wide attention heads "
            "these checkpoints use"
        )
    return width // HEAD_DIM


def require(sd: Mapping[str, torch.Tensor], key: str, source: str, ndim: int) -> torch.Tensor:
    """`sd[key]`, which must exist and have `ndim` dimensions."""
    if key not in sd:
        raise CheckpointError(f"{source}: missing key {key!r}")
    t = sd[key]
    if t.dim() != ndim:
        raise CheckpointError(f"{source}: key {key!r} has shape {list(t.shape)}; expected {ndim} dimensions")
    return t


def layer_indices(keys: list[str], pattern: str, source: str, what: str) -> list[int]:
    """The sorted indices N of keys matching `pattern` (a regex with one group for N); they must be 0..L-1."""
    found = sorted({int(m.group(1)) for k in keys if (m := re.match(pattern, k))})
    if found != list(range(len(found))):
        raise CheckpointError(f"{source}: {what} layers are numbered {found}, not 0..{len(found) - 1}")
    return found


def encoder_config_from(sd: Mapping[str, torch.Tensor], prefix: str, source: str) -> EncoderConfig:
    """Infer the TimeSformer's sizes from its tensors (keys `prefix` + LaViLa's names)."""
    p = prefix
    width = require(sd, p + "cls_token", source, 3).shape[-1]
    patch = require(sd, p + "patch_embed.proj.weight", source, 4)
    if patch.shape[2] != patch.shape[3] or patch.shape[1] != 3:
        raise CheckpointError(f"{source}: {p}patch_embed.proj.weight has shape {list(patch.shape)}; not [D, 3, p, p]")
    patch_size = patch.shape[-1]
    patches = require(sd, p + "pos_embed", source, 3).shape[1] - 1
    side = math.isqrt(max(patches, 0))
    if patches < 1 or side * side != patches:
        raise CheckpointError(f"{source}: {p}pos_embed has {patches + 1} rows; expected 1 + a square number")
    frames = require(sd, p + "temporal_embed", source, 3).shape[1]
    blocks = layer_indices(list(sd), re.escape(p) + r"blocks\.(\d+)\.", source, "encoder")
    if not blocks:
        raise CheckpointError(f"{source}: no {p}blocks.* tensors")
    hidden = require(sd, p + "blocks.0.mlp.fc1.weight", source, 2).shape[0]
    return EncoderConfig(
        image_size=side * patch_size,
        patch_size=patch_size,
        num_frames=frames,
        width=width,
        layers=len(blocks),
        heads=heads_for(width, p + "cls_token", source),
        mlp_ratio=hidden / width,
    )


def lavila_to_encoder(
    state_dict: Mapping[str, torch.Tensor], *, source: str = "state dict"
) -> tuple[EncoderConfig, dict[str, torch.Tensor], ConversionReport]:
    """Convert a LaViLa dual-encoder state dict to our `VideoEncoder`'s.

    Args:
        state_dict: the checkpoint's `state_dict` (keys with or without `module.`; fp16 or fp32).
        source: the file name, for error messages.

    Returns:
        The encoder config, its state dict (fp32, keys as in `VideoEncoder.state_dict()`), and the report.

    Raises:
        CheckpointError: no `visual.*` tensors, an unknown key, a missing tensor or a shape mismatch (named).
    """
    from videorecap.model.encoder import VideoEncoder

    names = strip_module_prefix(state_dict, source)
    visual = {k.removeprefix("visual."): state_dict[orig] for k, orig in names.items() if k.startswith("visual.")}
    if not visual:
        hint = ""
        if any(k.startswith(("text_decoder.", "video_mapper.")) for k in names):
            hint = "; it looks like an original Video ReCap checkpoint: use `videorecap convert official`"
        raise CheckpointError(f"{source}: not a LaViLa dual-encoder checkpoint (no visual.* tensors){hint}")

    report = ConversionReport(source_format="lavila")
    unknown: list[str] = []
    for k, orig in names.items():
        if k.startswith("visual."):
            continue
        reason = next((r for pre, r in _LAVILA_DROPPED if k == pre or k.startswith(pre)), None)
        if reason is None:
            unknown.append(orig)
        else:
            report.dropped[orig] = reason

    cfg = encoder_config_from(visual, "", source)
    out = {k: v.float() if v.is_floating_point() else v for k, v in visual.items()}
    origin = {k: names["visual." + k] for k in out}
    check_against_model(lambda: VideoEncoder(cfg), out, origin, source, "LaViLa dual-encoder", unknown)
    report.used = {origin[k]: k for k in out}
    report.notes.append(
        f"TimeSformer: {cfg.layers} layers, width {cfg.width} ({cfg.heads} heads of {HEAD_DIM}), "
        f"{cfg.num_frames} frames of {cfg.image_size} px in {cfg.patch_size} px patches"
    )
    logger.info("converted %d LaViLa visual tensors; dropped %d", len(out), len(report.dropped))
    return cfg, out, report
