"""Batching samples of `videorecap.data.datasets`: stacked video, tokenised captions and previous-level text.

Caption targets are built as the original's `CaptionDataCollator` (reference §1.6):
`[bos] + ids + [eos]`, right-padded with `pad_id` (0, the token "!", for GPT-2) to
`min(longest caption in the batch, max_caption_tokens) + 2`. A caption longer than that is cut at the batch length,
which drops its EOS, as the original does.

The previous level's text is tokenised with no special tokens, cut to its first `max_text_tokens` tokens (512, as
the original), right-padded to the longest in the batch, with `text_mask` true on real tokens. The original pads
text with id 15 (a transformers quirk, reference §1.6); the padded positions are masked, so we pad with `pad_id`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import torch

from videorecap.config import Level, RecapConfig
from videorecap.levelio import MaxTokens, resolve_max_new_tokens


class TokenizerLike(Protocol):
    """What the collator needs of `videorecap.tokenizer.Tokenizer`."""

    @property
    def bos_id(self) -> int: ...

    @property
    def eos_id(self) -> int: ...

    @property
    def pad_id(self) -> int: ...

    def encode(self, text: str) -> list[int]: ...


def caption_ids(
    token_lists: Sequence[Sequence[int]], *, max_caption_tokens: int, bos_id: int, eos_id: int, pad_id: int
) -> torch.Tensor:
    """(B, min(longest, max_caption_tokens) + 2) long: `[bos] + ids + [eos]`, right-padded, over-long cut."""
    length = min(max((len(t) for t in token_lists), default=0), max_caption_tokens) + 2
    out = torch.full((len(token_lists), length), pad_id, dtype=torch.long)
    for b, ids in enumerate(token_lists):
        seq = ([bos_id, *ids, eos_id])[:length]
        out[b, : len(seq)] = torch.tensor(seq, dtype=torch.long)
    return out


def text_ids(
    token_lists: Sequence[Sequence[int]], *, max_text_tokens: int, pad_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, Lt) long ids and (B, Lt) bool mask; each text cut to its first `max_text_tokens` tokens.

    Lt is the longest text in the batch, at least 1 (an all-empty batch gives one masked pad column, so shapes stay
    valid; the model must not attend to a fully masked row).
    """
    cut = [list(t[:max_text_tokens]) for t in token_lists]
    length = max(1, max((len(t) for t in cut), default=0))
    ids = torch.full((len(cut), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(cut), length), dtype=torch.bool)
    for b, t in enumerate(cut):
        if t:
            ids[b, : len(t)] = torch.tensor(t, dtype=torch.long)
            mask[b, : len(t)] = True
    return ids, mask


class Collator:
    """Turns a list of dataset samples into a batch (use as a DataLoader's `collate_fn`).

    Args:
        tokenizer: has `encode(text) -> list[int]` (no special tokens added) and `bos_id`/`eos_id`/`pad_id`.
        max_caption_tokens: the level's max caption length (77 clip and segment, 120 video: the original's
            `max_gen_tokens`).
        max_text_tokens: previous-level text limit (512).
        bos_id, eos_id, pad_id: override the tokenizer's ids (e.g. from `RecapConfig.tokens`).

    The batch: `video` (B, ...) float (None when the samples have none: the text-only model); `video_mask` (B, K)
    bool or None; `caption_ids` (B, L) long or None when a sample has no caption; `text_ids` and `text_mask`
    (B, Lt) or None when no sample has text (a sample without text counts as empty text); `meta` the list of sample
    metas.
    """

    def __init__(
        self,
        tokenizer: TokenizerLike,
        *,
        max_caption_tokens: int,
        max_text_tokens: int = 512,
        bos_id: int | None = None,
        eos_id: int | None = None,
        pad_id: int | None = None,
    ) -> None:
        if max_caption_tokens < 1 or max_text_tokens < 1:
            raise ValueError("max_caption_tokens and max_text_tokens must be positive")
        self.tokenizer = tokenizer
        self.max_caption_tokens = max_caption_tokens
        self.max_text_tokens = max_text_tokens
        self.bos_id = tokenizer.bos_id if bos_id is None else bos_id
        self.eos_id = tokenizer.eos_id if eos_id is None else eos_id
        self.pad_id = tokenizer.pad_id if pad_id is None else pad_id

    @classmethod
    def for_config(
        cls,
        tokenizer: TokenizerLike,
        cfg: RecapConfig,
        level: Level,
        *,
        max_tokens: MaxTokens = None,
        max_text_tokens: int | None = None,
    ) -> Collator:
        """The collator of one level with the model's special ids, its caption length (`max_tokens`, e.g. a recipe's,
        overrides the level I/O's, `levelio.resolve_max_new_tokens`) and text limit (`max_text_tokens` overrides)."""
        return cls(
            tokenizer,
            max_caption_tokens=resolve_max_new_tokens(level, cfg.io, max_tokens),
            max_text_tokens=max_text_tokens or cfg.tokens.max_text_tokens,
            bos_id=cfg.tokens.bos_token_id,
            eos_id=cfg.tokens.eos_token_id,
            pad_id=cfg.tokens.pad_token_id,
        )

    def __call__(self, samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
        if not samples:
            raise ValueError("cannot collate an empty batch")
        has_video = [s.get("video") is not None for s in samples]
        if any(has_video) and not all(has_video):
            raise ValueError("a batch mixes samples with and without video")
        video = None  # the text-only model's samples have none
        if has_video[0]:
            video = torch.stack([torch.as_tensor(s["video"], dtype=torch.float32) for s in samples])
        masks = [s.get("video_mask") for s in samples]
        if any(m is None for m in masks) and not all(m is None for m in masks):
            raise ValueError("a batch mixes samples with and without video_mask")
        video_mask = None
        if masks[0] is not None:
            video_mask = torch.stack([torch.as_tensor(m, dtype=torch.bool) for m in masks])  # (B, K)

        captions = [s.get("caption") for s in samples]
        caps = None
        if all(c is not None for c in captions):
            caps = caption_ids(
                [self.tokenizer.encode(c) for c in captions],
                max_caption_tokens=self.max_caption_tokens,
                bos_id=self.bos_id,
                eos_id=self.eos_id,
                pad_id=self.pad_id,
            )

        texts = [s.get("text") for s in samples]
        t_ids = t_mask = None
        if any(t is not None for t in texts):
            t_ids, t_mask = text_ids(
                [self.tokenizer.encode(t) if t else [] for t in texts],
                max_text_tokens=self.max_text_tokens,
                pad_id=self.pad_id,
            )
        return {
            "video": video,
            "video_mask": video_mask,
            "caption_ids": caps,
            "text_ids": t_ids,
            "text_mask": t_mask,
            "meta": [s.get("meta") for s in samples],
        }
