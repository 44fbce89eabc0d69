"""Caption one batch of a level: model inputs -> text. The only place that turns inputs into captions.

Every caller that captions goes through `caption_batch`: `videorecap caption` (pipeline.py), `videorecap evaluate`,
the training curriculum's generation steps (train/pseudo.py) and the validation captions of a training stage
(train/loop.py). It takes either

- a list of `CaptionItem`s (one video input, its optional mask and the previous level's text each): the videos are
  stacked, optionally sampled first to the level's feature count, and the texts become ids and masks with
  `data.collate.text_ids`, the same function the training `Collator` uses, so a model captions exactly the inputs
  it was trained on; or
- a batch already collated by `data.collate.Collator` (a mapping with `video`, `video_mask`, `text_ids`,
  `text_mask`; missing keys mean None), as the DataLoaders of evaluate and training produce.

It then decodes with `infer.decode.generate_ids` and turns the ids into text with the level's tokenizer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from videorecap.data.collate import text_ids
from videorecap.data.feature_sampling import sample
from videorecap.infer.decode import DecodeConfig, TokenScores, generate_ids

if TYPE_CHECKING:
    from videorecap.config import Level
    from videorecap.model.recap import VideoRecap
    from videorecap.tokenizer import Tokenizer


@dataclass(frozen=True)
class CaptionItem:
    """One thing to caption.

    `video` is the model's video input for one row: pixels (3, T, H, W), encoder tokens (1+T*P, C), or CLS features
    (K, C), ready; or, when `caption_batch` is given `sampling`, every CLS feature (N, C) of the item's time span;
    or None for a model that reads text only (`modalities="text"`, the text-only summarizer).
    `text` is the previous level's text (None at the clip level; "" is an empty text, fully masked).
    """

    video: np.ndarray | torch.Tensor | None
    text: str | None = None
    video_mask: np.ndarray | torch.Tensor | None = None


def _stack(xs: Sequence[np.ndarray | torch.Tensor]) -> torch.Tensor:
    if all(isinstance(x, np.ndarray) for x in xs):
        return torch.from_numpy(np.stack(xs))  # type: ignore[arg-type]
    return torch.stack([torch.as_tensor(x) for x in xs])


def collate_items(
    model: VideoRecap,
    tokenizer: Tokenizer,
    items: Sequence[CaptionItem],
    sampling: tuple[int, str] | None = None,
) -> dict[str, torch.Tensor | None]:
    """The model inputs of a list of items: `video`, `video_mask`, `text_ids`, `text_mask` (see the module doc).

    `sampling=(k, kind)` first picks k features of each item's video with `data.feature_sampling.sample` (kind `uniform`
    or `masking`, which also gives the mask); otherwise an item's own `video_mask`, if any, is used.
    """
    if not items:
        raise ValueError("cannot caption an empty batch")
    videos: list[Any] = []
    masks: list[Any] = []
    if any(it.video is None for it in items):
        if not all(it.video is None for it in items):
            raise ValueError("a batch mixes items with and without video")
        videos = masks = [None] * len(items)
    for it in items:
        if it.video is None:
            continue
        if sampling is not None:
            v, m = sample(np.asarray(it.video), *sampling)
        else:
            v, m = it.video, it.video_mask
        videos.append(v)
        masks.append(m)
    if any(m is None for m in masks) and not all(m is None for m in masks):
        raise ValueError("a batch mixes items with and without video_mask")
    texts = [it.text for it in items]
    bad = next((t for t in texts if t is not None and not isinstance(t, str)), None)
    if bad is not None:
        got = repr(bad)[:60]
        raise ValueError(f"text: each item's text is one string (the previous level's captions joined), not {got}")
    t_ids = t_mask = None
    if any(t is not None for t in texts):
        tokens = model.config.tokens
        t_ids, t_mask = text_ids(
            [tokenizer.encode(t) if t else [] for t in texts],
            max_text_tokens=tokens.max_text_tokens,
            pad_id=tokens.pad_token_id,
        )
    return {
        "video": None if videos[0] is None else _stack(videos),
        "video_mask": None if masks[0] is None else _stack(masks),
        "text_ids": t_ids,
        "text_mask": t_mask,
    }


def caption_batch(
    model: VideoRecap,
    tokenizer: Tokenizer,
    level: Level,
    items: Sequence[CaptionItem] | Mapping[str, Any],
    decode: DecodeConfig | None = None,
    *,
    sampling: tuple[int, str] | None = None,
    device: str | torch.device | None = None,
    return_scores: bool = False,
) -> list[str] | list[tuple[str, TokenScores]]:
    """One caption per item (or per row of a collated batch), decoded with `decode` (default: greedy).

    `device` moves the inputs first (None: they are used where they are). `sampling` applies to items only.
    With `return_scores=True` each caption comes with its `TokenScores` (per-token log-probabilities; `.confidence`
    is a threshold users can apply, `.perplexity` the original's perplexity).
    """
    if isinstance(items, Mapping):
        batch = dict(items)
    else:
        batch = collate_items(model, tokenizer, items, sampling)

    def inp(name: str) -> torch.Tensor | None:
        x = batch.get(name)
        return x.to(device) if x is not None and device is not None else x

    ids = generate_ids(
        model,
        level,
        video=inp("video"),
        video_mask=inp("video_mask"),
        text_ids=inp("text_ids"),
        text_mask=inp("text_mask"),
        decode=decode,
        return_scores=return_scores,
    )
    if return_scores:
        ids, scores = ids
        return [(tokenizer.decode(x).strip(), sc) for x, sc in zip(ids, scores, strict=True)]
    return [tokenizer.decode(x).strip() for x in ids]
