"""Converters of released weights into our modules' state dicts.

- `convert.gpt2`: Hugging Face / OpenAI GPT-2 (and the original gated GPT-2 fork) -> our decoder.
- `convert.official`: the released Video ReCap checkpoints (clip, segment, video, unified) -> `VideoRecap`.
- `convert.lavila`: LaViLa's dual-encoder checkpoint -> `VideoEncoder` (its `visual.*` tower).

Every converter is a pure function of tensors: `state_dict -> (config, state_dict, report)`. `convert.load` reads
the released files and builds ready modules: `load_official(path) -> (model, tokenizer)` converts in memory, and the
`videorecap convert` command writes the same model as a folder.

A conversion is all-or-nothing: every source tensor is either used or dropped by design with a stated reason,
anything else is an error naming the key, and every tensor of the target model must be filled with exactly the shape
the inferred config needs.

What the converters share (the report and the strict comparison against the target model) is in
`convert.report`, so that the converters import it without importing this package's `load_official`.
`convert.sniff` recognises released files from their bytes; `checkpoint` uses it for its error messages, so it sits
a layer below `checkpoint`, and this `__init__` imports its names lazily: importing `convert.sniff` runs nothing else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from videorecap.convert.load import load_official
    from videorecap.convert.report import ConversionReport

__all__ = ["ConversionReport", "load_official"]

_LAZY = {"load_official": "videorecap.convert.load", "ConversionReport": "videorecap.convert.report"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'videorecap.convert' has no attribute {name!r}")
