"""The video encoder: LaViLa's TimeSformer ("frozen-in-time" divided space-time attention).

References:
- Bain et al., "Frozen in Time", ICCV 2021 (the SpaceTimeTransformer and its attention layout);
- Zhao et al., "LaViLa: Learning Video Representations from Large Language Models", CVPR 2023 (the CLIP-initialised
  TimeSformer-B/16 whose dual-encoder checkpoint Video ReCap uses, frozen, at every level).

Parameter names follow LaViLa's `visual.*` keys exactly, so a LaViLa checkpoint loads after stripping its prefix.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from videorecap.config import EncoderConfig


class QuickGELU(nn.Module):
    # CLIP's activation: x * sigmoid(1.702 x)
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            return x * torch.sigmoid(1.702 * x)
        # Inference: the same three steps in one buffer (bit-identical). The MLP's hidden activations are the largest
        # tensors of the model (8 x 785 x 3072 floats, 77 MB, at batch 8), and two fewer of them per block halves
        # this step's time (2.3x on the AVX2 EPYC), most of which went to the memory of the new tensors.
        y = torch.mul(x, 1.702)
        y.sigmoid_()
        return y.mul_(x)


class Mlp(nn.Module):
    """The transformer block's feed-forward: (B, N, D) -> (B, N, hidden) -> (B, N, D)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = QuickGELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class DividedAttention(nn.Module):
    """Attention over one axis of the (frames x patches) grid, plus the CLS token.

    `axis="space"`: each patch attends to the patches of its own frame; `axis="time"`: to the patches at its own
    location in every frame. In both, the patch also attends to the CLS token, and the CLS token attends to every
    token of the clip.
    """

    # True: the groups are folded into the heads, (B, H*G, n, hd), so that attention takes PyTorch's fused 4-D kernel
    # (2.3x faster for space attention on a CPU) instead of the generic path 5-D inputs take. The same arithmetic up to
    # the order of the sums; off by default so that fp32 stays the original's, on for `--precision fp32-onednn`
    # (runtime.prepare_model sets it).
    fast_kernels = False

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)  # q, k, v in that order (CLIP's in_proj layout)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, axis: str, frames: int) -> torch.Tensor:
        B, N, C = x.shape  # N = 1 + T*P
        H, hd = self.heads, C // self.heads
        T = frames
        P = (N - 1) // T  # patches per frame
        q, k, v = self.qkv(x).view(B, N, 3, H, hd).permute(2, 0, 3, 1, 4)  # each (B, H, N, hd)

        # the CLS query sees everything
        cls_out = F.scaled_dot_product_attention(q[:, :, :1], k, v)  # (B, H, 1, hd)

        # patch queries, grouped by frame (space) or by location (time)
        def group(t: torch.Tensor) -> torch.Tensor:
            t = t[:, :, 1:].reshape(B, H, T, P, hd)  # tokens are frame-major
            return t if axis == "space" else t.transpose(2, 3)  # (B, H, G, n, hd)

        qg, kg, vg = group(q), group(k), group(v)  # (B, H, G, n, hd): G groups of n tokens attend within a group
        G = qg.shape[2]  # T frames (space) or P locations (time)
        # every group also attends to the CLS key/value
        kg = torch.cat([k[:, :, :1, None].expand(B, H, G, 1, hd), kg], dim=3)  # (B, H, G, 1+n, hd)
        vg = torch.cat([v[:, :, :1, None].expand(B, H, G, 1, hd), vg], dim=3)
        if self.fast_kernels:  # (B, H*G, n, hd): one fused 4-D call
            n = qg.shape[3]
            out = F.scaled_dot_product_attention(
                qg.reshape(B, H * G, n, hd), kg.reshape(B, H * G, n + 1, hd), vg.reshape(B, H * G, n + 1, hd)
            ).view(B, H, G, n, hd)
        else:
            out = F.scaled_dot_product_attention(qg, kg, vg)  # (B, H, G, n, hd); scale hd^-0.5 as LaViLa
        if axis == "time":
            out = out.transpose(2, 3)  # back to frame-major (B, H, T, P, hd)
        out = torch.cat([cls_out, out.reshape(B, H, T * P, hd)], dim=2)  # (B, H, N, hd)
        return self.proj(out.transpose(1, 2).reshape(B, N, C))


class SpaceTimeBlock(nn.Module):
    """Divided space-time attention (time first, then space) and an MLP, each pre-LN: (B, 1+T*P, D) -> same."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        d = cfg.width
        self.norm1 = nn.LayerNorm(d, eps=cfg.eps)
        self.attn = DividedAttention(d, cfg.heads)  # space
        self.norm2 = nn.LayerNorm(d, eps=cfg.eps)
        self.mlp = Mlp(d, int(d * cfg.mlp_ratio))
        # the time branch (norm3, timeattn) runs first although it is named last: the names are LaViLa's keys
        self.norm3 = nn.LayerNorm(d, eps=cfg.eps)
        self.timeattn = DividedAttention(d, cfg.heads)

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        t = self.timeattn(self.norm3(x), "time", frames)  # (B, N, D)
        s = self.attn(self.norm1(x + t), "space", frames)  # (B, N, D)
        # The frozen-in-time quirk: the residual adds only the space output. The time branch reaches the stream only
        # through the space attention's input. Checkpoints were trained this way, so it must be kept.
        x = x + s
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    """Each frame cut into patch_size x patch_size patches, each projected to the width: (B, T, 3, H, W) ->
    (B, T*P, D)."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        # no bias: ln_pre follows (LaViLa sets bias=False whenever ln_pre is on)
        self.proj = nn.Conv2d(3, cfg.width, kernel_size=cfg.patch_size, stride=cfg.patch_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C, H, W = x.shape
        x = self.proj(x.reshape(B * T, C, H, W))  # frames as a batch of images: (B*T, D, h, w), h*w = P
        return x.flatten(2).transpose(1, 2).reshape(B, -1, x.shape[1])  # (B, T*P, D), frame-major


class VideoEncoder(nn.Module):
    """TimeSformer over a clip of `T <= num_frames` frames.

    Input: (B, 3, T, H, W), normalised pixels. Output: every token after the final LayerNorm, (B, 1 + T*P, D)
    (785 x 768 at official sizes; the clip level's context), or only the CLS token (B, D) (the 4-s feature the
    segment and video levels read).
    """

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.config = cfg
        d = cfg.width
        self.patch_embed = PatchEmbed(cfg)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + cfg.num_patches, d))
        self.temporal_embed = nn.Parameter(torch.zeros(1, cfg.num_frames, d))
        self.ln_pre = nn.LayerNorm(d, eps=cfg.ln_pre_eps)
        self.blocks = nn.ModuleList([SpaceTimeBlock(cfg) for _ in range(cfg.layers)])
        self.norm = nn.LayerNorm(d, eps=cfg.eps)
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        # LaViLa's time_init='zeros': the time branch starts as exactly zero (v = 0), so the untrained encoder is a
        # per-frame image transformer.
        for blk in self.blocks:
            nn.init.zeros_(blk.timeattn.qkv.weight)
            nn.init.zeros_(blk.timeattn.qkv.bias)
            nn.init.ones_(blk.timeattn.proj.weight)
            nn.init.zeros_(blk.timeattn.proj.bias)

    def forward(self, x: torch.Tensor, cls_only: bool = False) -> torch.Tensor:
        B, C, T, H, W = x.shape  # (B, 3, T, H, W): channels first, as the data pipeline stacks frames
        if T > self.config.num_frames:
            raise ValueError(f"the encoder has temporal embeddings for {self.config.num_frames} frames, got {T}")
        P = (H // self.config.patch_size) * (W // self.config.patch_size)
        if P != self.config.num_patches:
            raise ValueError(f"expected {self.config.image_size}px frames, got {H}x{W}")
        x = self.patch_embed(x.permute(0, 2, 1, 3, 4))  # (B, T*P, D)
        # spatial embeddings tiled over frames + temporal embeddings repeated over each frame's patches
        pos = self.pos_embed[:, 1:].repeat(1, T, 1) + self.temporal_embed[:, :T].repeat_interleave(P, dim=1)
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(B, -1, -1)  # CLS gets no temporal embedding
        x = torch.cat([cls, x + pos], dim=1)  # (B, 1+T*P, D)
        x = self.ln_pre(x)  # CLIP's pre-transformer LayerNorm (the ViT it was initialised from has one)
        for blk in self.blocks:
            x = blk(x, T)  # (B, 1+T*P, D)
        x = self.norm(x)
        return x[:, 0] if cls_only else x  # (B, D) or (B, 1+T*P, D)
