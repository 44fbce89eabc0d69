"""Everything a stopped run needs to continue bit for bit: optimizer, scaler, RNG states, step and data position.

`train_state.pt` holds only tensors and plain Python values, so it is written with `torch.save` and read back with
`torch.load(weights_only=True)` (no arbitrary unpickling). The model weights live next to it in our checkpoint
format (`videorecap.checkpoint`), so `last/` is an ordinary checkpoint folder plus this file.
"""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from videorecap import fileio
from videorecap.errors import CheckpointError

logger = logging.getLogger(__name__)

TRAIN_STATE_FILE = "train_state.pt"
FORMAT_VERSION = 1


def rng_state() -> dict[str, Any]:
    """The global RNG states of Python, numpy and torch (CPU and every visible GPU), as weights_only-safe values."""
    py = random.getstate()
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": {
            "key": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "gauss": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` captured."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_train_state(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """Write `state` (tensors and plain values only) atomically with torch.save."""
    state = {"format_version": FORMAT_VERSION, **state}
    with fileio.atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_train_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a `train_state.pt` with `weights_only=True`; a clear CheckpointError when it is unreadable."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: training state not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a corrupt or foreign file
        what = " ".join(f"{type(e).__name__}: {e}".split())[:160]
        raise CheckpointError(f"{path}: the training state is corrupt ({what}); {_RESTART}") from None
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: not a videorecap training state (format_version {FORMAT_VERSION}); {_RESTART}")
    return state


# What happens without the file (checked by tests/train/test_loop.py): the stage is not resumed, it trains again
# from its first iteration and its starting weights, and replaces `last/` at its next checkpoint.
_RESTART = "delete it to train this stage again from its start (the progress saved in last/ cannot be resumed)"
