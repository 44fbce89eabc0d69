"""The project's own text-only model: lower-level text in, upper-level text out (reference §10).

It is a `VideoRecap` with `modalities="text"`: the text Q-Former reads "Summarize: " + the lower level's text (at
most `max_text_tokens`, 512), the gated GPT-2 writes the upper level's text (at most the level's `max_new_tokens`,
77 in configs/text-summarizer.yaml). `videorecap train` makes one from (clip captions -> segment description,
segment descriptions -> video summary) pairs of labelled data (`kind: text-summarizer`); `videorecap serve
--text-model DIR` puts it behind the OpenAI-compatible endpoint, and `--text-model DIR` runs it in-process.

As a chat model it reads the last user message only (a system message has nothing to say to a summarizer); the
"Summarize: " prompt is added when the message does not start with it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from videorecap.data.datasets import summarize_input
from videorecap.errors import CheckpointError, InputError
from videorecap.infer.batch import CaptionItem, caption_batch
from videorecap.infer.decoding_config import DecodeConfig
from videorecap.levelio import resolve_max_new_tokens
from videorecap.store import weights_hash

logger = logging.getLogger(__name__)

DEFAULT_NAME = "videorecap-text"  # + "-" and the first 8 hex digits of the weights hash: a retrained model is
# another name, so the response cache (keyed by the model's name) never serves an older model's answers


def input_text(messages: Sequence[dict[str, Any]]) -> str:
    """The text a summarizer reads from chat messages: the content of the last user message."""
    for m in reversed(messages):
        if not isinstance(m, dict):
            raise InputError("every message must be an object with 'role' and 'content'")
        if m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, list):  # the OpenAI "content parts" form: keep the text parts
                content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
            if not isinstance(content, str):
                raise InputError("a user message's content must be text")
            return content
    raise InputError("the messages hold no user message: nothing to summarize")


def check_text_model_folder(folder: str | os.PathLike[str]) -> Path:
    """`--text-model`'s folder, checked without reading weights (InputError, CheckpointError): it exists and is a
    checkpoint folder (config.json and the weights' header)."""
    from videorecap.checkpoint import read_config

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"--text-model {folder}: no such folder; give a text model's checkpoint folder")
    read_config(folder)
    return folder


class TextModel:
    """A loaded text-only checkpoint: `summarize(texts)` and `chat_batch(requests)`."""

    def __init__(
        self, model: Any, tokenizer: Any, *, name: str | None = None, device: str = "cpu", source: str = "the model"
    ) -> None:
        if model.config.modalities != "text":
            raise CheckpointError(
                f"{source}: a {model.config.modalities} model, not a text-only one; train one with a "
                "'kind: text-summarizer' recipe (configs/text-summarizer.yaml)"
            )
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.device = device
        self.level = model.config.levels[0]
        self.weights = weights_hash(model)
        self.name = name or f"{DEFAULT_NAME}-{self.weights[:8]}"

    @classmethod
    def load(cls, folder: str | os.PathLike[str], *, device: str = "cpu", name: str | None = None) -> TextModel:
        from videorecap.checkpoint import load_model

        folder = check_text_model_folder(folder)
        model, tokenizer = load_model(folder, device=device)
        if tokenizer is None:
            raise CheckpointError(f"{folder}: no tokenizer.json; a text model folder needs its tokenizer")
        return cls(model, tokenizer, name=name, device=device, source=str(folder))

    @property
    def max_new_tokens(self) -> int:
        return resolve_max_new_tokens(self.level, self.model.config.io)

    @torch.no_grad()
    def summarize(
        self, texts: Sequence[str], *, max_tokens: int | None = None, temperature: float = 0.0, seed: int = 0
    ) -> list[str]:
        """One upper-level text per lower-level text (greedy; sampled with `temperature` > 0, seeded)."""
        if not texts:
            return []
        n = min(max_tokens or self.max_new_tokens, self.max_new_tokens)
        decode = (
            DecodeConfig(max_new_tokens=n)
            if temperature <= 0
            else DecodeConfig(strategy="sample", max_new_tokens=n, temperature=temperature, seed=seed)
        )
        items = [CaptionItem(None, text=summarize_input(t)) for t in texts]
        return caption_batch(self.model, self.tokenizer, self.level, items, decode, device=self.device)  # type: ignore[return-value]

    def chat_batch(
        self, requests: Sequence[Sequence[dict[str, Any]]], *, max_tokens: int = 256, temperature: float = 0.0
    ) -> list[str]:
        return self.summarize([input_text(m) for m in requests], max_tokens=max_tokens, temperature=temperature)
