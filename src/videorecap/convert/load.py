"""Released checkpoint files -> ready modules, in memory.

`read_released` reads a released `.pt`/`.pth` safely; `official_model` turns an original Video ReCap state dict into a
`VideoRecap` built on the meta device (no random init: the converted tensors are assigned, not copied);
`load_official` does both for a file and returns a ready model and its tokenizer without writing a folder. The
`videorecap convert` command uses the same steps and then saves the folder.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn as nn

from videorecap.errors import CheckpointError, InputError

if TYPE_CHECKING:
    from videorecap.convert.report import ConversionReport
    from videorecap.model.recap import VideoRecap
    from videorecap.tokenizer import Tokenizer


def read_released(path: str | os.PathLike[str]) -> tuple[Mapping[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """(state_dict, args, other top-level entries) of a released checkpoint file.

    The file is read with `torch.load(weights_only=True)` (argparse.Namespace allowed), so nothing in it runs.

    Raises:
        CheckpointError: a folder, a missing or unreadable file, or no state dict in it (named).
    """
    from videorecap.checkpoint import safe_torch_load

    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder; give the released .pt/.pth file itself")
    obj = safe_torch_load(path)
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a checkpoint dict with a 'state_dict'")
    if "state_dict" in obj:
        sd = obj["state_dict"]
        if not isinstance(sd, dict):
            raise CheckpointError(f"{path}: 'state_dict' is a {type(sd).__name__}, not a dict of tensors")
    elif obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        sd = obj  # a bare state dict
    else:
        keys = ", ".join(repr(k) for k in list(obj)[:8])
        raise CheckpointError(f"{path}: no 'state_dict' in this file (top-level keys: {keys or 'none'})")
    raw = obj.get("args") if sd is not obj else None
    if isinstance(raw, argparse.Namespace):
        args = vars(raw)
    elif isinstance(raw, dict):
        args = raw
    else:
        args = {}
    extra = {k: v for k, v in obj.items() if k in ("epoch", "best_acc1") and isinstance(v, int | float)}
    return sd, args, extra


def build_assigned(factory: Callable[[], nn.Module], state: Mapping[str, torch.Tensor]) -> nn.Module:
    """`factory()` built on the meta device (no memory, no random init) with `state` assigned to it, in eval mode.

    Raises:
        RuntimeError: a parameter or buffer that `state` does not fill is left on the meta device (a non-persistent
            buffer, which no file holds, would have to be recomputed here; our modules have none today).
    """
    with torch.device("meta"):
        module = factory()
    module.load_state_dict(state, strict=True, assign=True)
    left = [n for n, t in chain(module.named_parameters(), module.named_buffers()) if t.is_meta]
    if left:
        raise RuntimeError(f"not materialised after loading (compute them in build_assigned): {', '.join(left)}")
    return module.eval()


def official_model(
    state: Mapping[str, torch.Tensor],
    args: Mapping[str, Any],
    *,
    tokenizer: Tokenizer | str | os.PathLike[str] | None = None,
    level: str | None = None,
    source: str = "state dict",
    tokenizer_name: str | None = None,
) -> tuple[VideoRecap, Tokenizer, ConversionReport]:
    """Convert an original Video ReCap state dict into a ready model (CPU, fp32, eval mode).

    Args:
        state: the checkpoint's `state_dict`.
        args: the checkpoint's `args` as a dict.
        tokenizer: a `Tokenizer`, or a tokenizer file/folder (default: GPT-2's BPE, built offline).
        level: the level, when the checkpoint does not tell.
        source: the file name, for error messages.
        tokenizer_name: how to name the tokenizer in error messages (default: its path, or "GPT-2's tokenizer").

    Raises:
        CheckpointError: see `official_to_recap`.
        InputError: a tokenizer whose vocabulary does not fit the checkpoint's.
    """
    from videorecap.config import TokenConfig
    from videorecap.convert.official import official_to_recap
    from videorecap.model.recap import VideoRecap
    from videorecap.tokenizer import Tokenizer

    if isinstance(tokenizer, Tokenizer):
        tok, where = tokenizer, tokenizer_name or "the tokenizer"
    elif tokenizer is not None:
        tok, where = Tokenizer.from_file(tokenizer), tokenizer_name or str(tokenizer)
    else:
        tok, where = Tokenizer.gpt2(), tokenizer_name or "GPT-2's tokenizer"
    tokens = TokenConfig(bos_token_id=tok.bos_id, eos_token_id=tok.eos_id, pad_token_id=tok.pad_id)
    cfg, sd, report = official_to_recap(state, args, level=level, tokens=tokens, source=source)  # type: ignore[arg-type]
    if tok.vocab_size > cfg.decoder.vocab_size:
        raise InputError(
            f"{where}: {tok.vocab_size} tokens do not fit the checkpoint's {cfg.decoder.vocab_size}-token vocabulary"
        )
    model = build_assigned(lambda: VideoRecap(cfg), sd)
    return model, tok, report  # type: ignore[return-value]


def load_official(
    path: str | os.PathLike[str],
    *,
    tokenizer: Tokenizer | str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
    level: str | None = None,
) -> tuple[VideoRecap, Tokenizer]:
    """A released Video ReCap `.pt` converted in memory: `(model, tokenizer)`, the model in eval mode on `device`.

    Nothing is written. The model is built on the meta device and the converted tensors are assigned to it, so no
    random init runs (at full size that would cost more than the conversion). Same result as
    `videorecap convert official PATH DIR` followed by `load_model(DIR)`.

    Args:
        path: the released checkpoint file.
        tokenizer: a `Tokenizer`, or a tokenizer file/folder (default: GPT-2's BPE, built offline).
        device: where the model goes.
        level: the level, for a checkpoint whose parts and args do not tell.

    Raises:
        CheckpointError: an unreadable file, not an original Video ReCap checkpoint, or tensors that do not fit
            (named).
        InputError: a tokenizer whose vocabulary does not fit.
    """
    state, args, _ = read_released(path)
    model, tok, _ = official_model(state, args, tokenizer=tokenizer, level=level, source=str(path))
    return model.to(device), tok
