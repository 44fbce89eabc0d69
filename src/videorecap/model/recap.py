"""Video ReCap (Islam et al., "Video ReCap: Recursive Captioning of Hour-Long Videos", CVPR 2024).

One module serves one hierarchy level (Video ReCap) or all three (ReCap-U):

    clip:     pixels (B,3,T,H,W) -> TimeSformer -> all tokens (B, 1+T*P, C) -> video Q-Former -> (B, Nv, D)
    segment,  CLS features of the 4-s windows (B, K, C) -> video Q-Former -> (B, Nv, D)
    video:    + previous level's text ids (B, L) -> frozen GPT-2 wte+wpe -> text Q-Former -> (B, Nt, D)
    context = [video queries, text queries] (B, Nv+Nt, D) -> GPT-2 with gated cross-attention -> caption

What trains follows the original (reference §1.3, §1.4): the encoder is frozen; in each Q-Former only the
cross-attention trains (the rest stays at its random init); in GPT-2 the gated cross-attention blocks and the
per-block ln_1/ln_2 train, everything else is frozen. Training options (`config.TrainOptions`, from the recipe;
not part of the model config) unfreeze more.

This module is the network only: decoding a context into captions is `videorecap.infer` (`caption_batch`,
`decode.generate_ids`), reading and writing checkpoint folders is `videorecap.checkpoint` (`load_model`,
`save_pretrained`).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from videorecap.config import Level, RecapConfig, TrainOptions
from videorecap.model.aligner import QueryAligner
from videorecap.model.decoder import GatedGPT2
from videorecap.model.encoder import VideoEncoder

# GPT-2 parameters the original trains (everything of the gated blocks, plus each block's own LayerNorms)
_DECODER_TRAINABLE = ("xattn", "xmlp", "ln_xattn", "ln_xmlp", "_gate", "ln_1", "ln_2")

PARTS = ("encoder", "video_queries", "video_aligner", "text_queries", "text_aligner", "decoder")


class VideoRecap(nn.Module):
    """Encoder (clip level only) -> Q-Former aligners -> gated GPT-2, for one level or all (see the module doc)."""

    def __init__(self, config: RecapConfig, train_options: TrainOptions | None = None) -> None:
        super().__init__()
        if not isinstance(config, RecapConfig):  # (a name or a dict: RecapConfig.from_name / from_dict make one)
            raise TypeError(f"VideoRecap takes a RecapConfig (RecapConfig.from_name(...)), not {type(config).__name__}")
        self.config = config
        self.train_options = train_options or TrainOptions()
        self.encoder = VideoEncoder(config.encoder) if config.has_encoder else None
        d = config.video_aligner.width
        # learned queries (Nv, D), shared by every input (the aligner turns them into the video context); normal
        # with std width^-0.5 as the original
        self.video_queries = nn.Parameter(torch.randn(config.num_video_queries, d) * d**-0.5)
        self.video_aligner = QueryAligner(config.video_aligner)
        if config.has_text:
            dt = config.text_aligner.width
            # (Nt, D): the segment and video levels also summarise the previous level's text into Nt vectors
            self.text_queries = nn.Parameter(torch.randn(config.num_text_queries, dt) * dt**-0.5)
            self.text_aligner = QueryAligner(config.text_aligner)
        else:
            self.text_queries = None
            self.text_aligner = None
        self.decoder = GatedGPT2(config.decoder)
        self.set_trainable()

    # ---- freezing -----------------------------------------------------------------------------------------------
    def set_trainable(self, train_options: TrainOptions | None = None) -> None:
        """Set requires_grad exactly as the original, plus what the training options unfreeze (`train_options`, or
        the ones the model was built with); the options are kept for the forward pass."""
        if train_options is not None:
            self.train_options = train_options
        cfg = self.train_options
        if self.encoder is not None:
            self.encoder.requires_grad_(cfg.train_encoder)
        for al in (self.video_aligner, self.text_aligner):
            if al is None:
                continue
            for name, p in al.named_parameters():
                p.requires_grad_(cfg.train_aligner or ".xattn." in f".{name}")
        for name, p in self.decoder.named_parameters():
            p.requires_grad_(cfg.train_decoder or any(k in name for k in _DECODER_TRAINABLE))

    def parameter_counts(self) -> dict[str, dict[str, int]]:
        """Trainable and frozen parameter counts per part (encoder, queries, aligners, decoder)."""
        counts: dict[str, dict[str, int]] = {}
        for name, p in self.named_parameters():
            part = name.split(".")[0]
            c = counts.setdefault(part, {"trainable": 0, "frozen": 0})
            c["trainable" if p.requires_grad else "frozen"] += p.numel()
        return counts

    # ---- the forward pass ---------------------------------------------------------------------------------------
    def _check_level(self, level: Level) -> None:
        if level not in self.config.levels:
            raise ValueError(f"this is a {self.config.level}-level model; it cannot caption the {level} level")

    def encode_video(self, video: torch.Tensor) -> torch.Tensor:
        """Pixels (B,3,T,H,W) -> all encoder tokens (B, 1+T*P, C); features (B, N, C) pass through."""
        if video.dim() == 4 + 1:  # (B, 3, T, H, W) pixels, not (B, N, C) features
            if self.encoder is None:
                raise ValueError("this model has no video encoder: give it precomputed features (B, N, C)")
            # a frozen encoder builds no graph: its activations (785 tokens a clip) would dominate memory
            with torch.set_grad_enabled(torch.is_grad_enabled() and self.train_options.train_encoder):
                return self.encoder(video)  # (B, 1+T*P, C)
        return video

    def embed_text(self, text_ids: torch.Tensor) -> torch.Tensor:
        """Previous-level text (B, L) -> GPT-2's wte + wpe (B, L, n_embd): no layers, no dropout, no LayerNorm."""
        # the embeddings are the decoder's own (frozen unless train_decoder), shared with the caption side
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.train_options.train_decoder):
            return self.decoder.embed(text_ids)  # (B, L, n_embd)

    def context(
        self,
        level: Level,
        video: torch.Tensor | None = None,
        video_mask: torch.Tensor | None = None,
        text_ids: torch.Tensor | None = None,
        text_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The decoder's cross-attention context, (B, Nv + Nt, D): [video queries, text queries]."""
        self._check_level(level)
        # the clip level always sees video; higher levels see what `modalities` says (the paper's ablations)
        use_video = level == "clip" or self.config.io.modalities in ("video+text", "video")
        use_text = level != "clip" and self.text_aligner is not None and self.config.io.modalities != "video"
        parts = []
        if use_video:
            if video is None:
                raise ValueError(f"the {level} level needs video input")
            feats = self.encode_video(video)  # (B, N, C)
            q = self.video_queries.expand(feats.shape[0], -1, -1)  # type: ignore[union-attr]
            parts.append(self.video_aligner(q, feats, video_mask))  # (B, Nv, D)
        if use_text:
            if text_ids is None:
                raise ValueError(f"the {level} level of this model needs the previous level's text")
            emb = self.embed_text(text_ids)  # (B, L, n_embd)
            q = self.text_queries.expand(emb.shape[0], -1, -1)  # type: ignore[union-attr]
            parts.append(self.text_aligner(q, emb, text_mask))  # type: ignore[misc]  # (B, Nt, D)
        return torch.cat(parts, dim=1)  # (B, Nv + Nt, D): video queries first, as the original concatenates

    def forward(
        self,
        level: Level,
        caption_ids: torch.Tensor,
        video: torch.Tensor | None = None,
        video_mask: torch.Tensor | None = None,
        text_ids: torch.Tensor | None = None,
        text_mask: torch.Tensor | None = None,
        loss_mode: Literal["tokens", "all"] = "tokens",
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced loss and logits for `caption_ids` (B, L) = [BOS, tokens..., EOS, pad...].

        `loss_mode="tokens"` averages the cross-entropy over real target tokens; `"all"` reproduces the original,
        which averages over every position, padding included (so its loss shrinks with the batch's padding).
        """
        ctx = self.context(level, video, video_mask, text_ids, text_mask)
        logits = self.decoder(caption_ids[:, :-1], ctx)  # (B, L-1, V): position t predicts token t+1
        targets = caption_ids[:, 1:]  # (B, L-1)
        pad = self.config.tokens.pad_token_id
        # in fp32 even under autocast (a softmax over the vocabulary in half precision loses the small logits);
        # flat: (B*(L-1),), zero at padding
        flat = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=pad, reduction="none")
        if loss_mode == "all":
            loss = flat.mean()
        else:
            n = (targets != pad).sum().clamp(min=1)
            loss = flat.sum() / n
        return loss, logits
