"""Atomic file writes: a reader (or a resumed run) sees either the old file, the whole new file, or nothing.

Everything the project writes that a later run may read back (features, captions, checkpoints, outputs) goes
through here: the data is written to a temporary file in the same folder, flushed to disk, then renamed over the
target, which POSIX makes atomic.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def fix_dir_permissions(path: str | os.PathLike[str]) -> None:
    """Give a `tempfile.mkdtemp` folder (0700) the permissions a plain `mkdir` would."""
    os.chmod(path, 0o777 & ~_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success it is renamed to `path`, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the permissions a plain open() would
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike[str], obj: Any, indent: int | None = 2) -> None:
    write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


def save_npy(path: str | os.PathLike[str], array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)


def is_temp_file(path: str | os.PathLike[str]) -> bool:
    """True for the leftovers of an interrupted atomic write (safe to delete)."""
    name = Path(path).name
    return name.startswith(".") and name.endswith(".tmp")
