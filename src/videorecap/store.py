"""One resumable store for every long job that a later run may pick up where an interrupted one stopped.

A store is a folder holding the fingerprint of the settings it was made with and one file per finished piece of
work (a chunk of clip features, a batch of predictions, one video's captions):

    store = Store.open(cache_dir, {"model": model_fingerprint(model), "batch_size": 8, ...})
    for k in range(n_chunks):
        entry = store.get(f"c{k:05d}")  # None: not done yet (or unreadable: it is dropped, with a warning)
        if entry is None:
            store.put(f"c{k:05d}", arrays={"features": feats}, rows=texts)
    ...
    store.clear()  # once the final output is written

- `store.json` holds the fingerprint (any JSON-able dict) and its hash. Opening a store whose fingerprint differs
  deletes what it holds (one log line): results made with other settings are never reused.
- Each entry is one `.npz` file, written atomically (`fileio`), holding numpy arrays, JSON rows, and the hash of
  the fingerprint it was made under; an entry whose hash differs from the store's is ignored, so even a file
  copied in from another run cannot be mixed in.
- Reading an entry validates it: a truncated or otherwise unreadable file is deleted with a warning and reported
  as missing, so the caller recomputes it instead of crashing.
- Opening removes the temporary files of writes that a crash interrupted.

Several processes (torchrun ranks) may share a store as long as they write different keys: one opens it (which may
reset it), the others open it with `shared=True` after a barrier, which neither resets nor cleans it.

Fingerprint helpers: `fingerprint_key` (a short hash of a JSON-able dict), `weights_hash` (a hash of every tensor's
bytes, computed once per model state), `model_fingerprint` (config and weights) and `file_identity` (path, size,
modification time of an input file).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import weakref
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

import numpy as np

from videorecap import fileio

if TYPE_CHECKING:
    from torch import nn

logger = logging.getLogger(__name__)

STORE_VERSION = 1
META_FILE = "store.json"
ENTRY_SUFFIX = ".npz"
_ROWS = "__rows__"  # npz member holding the entry's JSON rows
_KEY = "__fingerprint__"  # npz member holding the hash of the fingerprint the entry was made under


# ---- fingerprints ----------------------------------------------------------------------------------------------------
def fingerprint_key(fingerprint: Any) -> str:
    """A short, stable hash of a JSON-able value (dict keys sorted; tuples and lists hash alike)."""
    text = json.dumps(fingerprint, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# module -> (the identity of its tensors when hashed, the hash)
_WEIGHTS: weakref.WeakKeyDictionary[Any, tuple[tuple, str]] = weakref.WeakKeyDictionary()


def weights_hash(module: nn.Module) -> str:
    """A hash of the names, dtypes, shapes and bytes of every tensor of `module.state_dict()`.

    Hashing a full-size model reads every weight once (seconds), so the result is kept per module and reused as
    long as no tensor was replaced or modified in place (torch counts in-place changes in each tensor's version).
    """
    import torch

    state = dict(_state_tensors(module.state_dict()))
    identity = tuple((name, t.data_ptr(), t._version) for name, t in state.items() if isinstance(t, torch.Tensor))
    cached = _WEIGHTS.get(module)
    if cached is not None and cached[0] == identity:
        return cached[1]
    h = hashlib.sha256()
    for name, t in state.items():
        if not isinstance(t, torch.Tensor):  # a quantized layer's dtype entry
            h.update(f"{name}|{t!r}|".encode())
            continue
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.is_quantized:  # int8 (runtime.quantize_int8): the integers and their scales
            h.update(f"{t.qscheme()}|".encode())
            scales = t.q_per_channel_scales() if t.qscheme() != torch.per_tensor_affine else torch.tensor(t.q_scale())
            h.update(scales.double().numpy().tobytes())
            t = t.int_repr()
        # the raw bytes, whatever the dtype (bf16 has no numpy equivalent): view them as uint8
        flat = t.detach().cpu().contiguous().reshape(-1)
        if flat.numel():
            h.update(flat.view(torch.uint8).numpy())
    digest = h.hexdigest()[:16]
    _WEIGHTS[module] = (identity, digest)
    return digest


def _state_tensors(state: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """(name, value) of a state dict, a quantized layer's packed (weight, bias) tuple as two entries."""
    for name, t in state.items():
        if isinstance(t, (tuple, list)):
            for i, x in enumerate(t):
                if x is not None:
                    yield f"{name}.{i}", x
        else:
            yield name, t


def model_fingerprint(model: nn.Module) -> dict[str, str]:
    """`{"config": hash of the model's config JSON, "weights": weights_hash}` (a model without a JSON config
    has only the weights)."""
    out = {}
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "to_json"):
        out["config"] = hashlib.sha256(config.to_json().encode()).hexdigest()[:16]
    out["weights"] = weights_hash(model)
    return out


def file_identity(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What identifies an input file's content cheaply: its resolved path, size and modification time (ns)."""
    p = Path(path)
    st = p.stat()
    return {"path": str(p.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


# ---- the store -------------------------------------------------------------------------------------------------------
@dataclass
class Entry:
    """One finished piece of work: named arrays and JSON rows."""

    key: str
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    rows: Any = None


class Store:
    """A folder of entries made under one fingerprint (see the module docstring). Use `Store.open`."""

    def __init__(self, root: Path, fingerprint: dict[str, Any]) -> None:
        self.root = root
        self.fingerprint = fingerprint
        self.key = fingerprint_key(fingerprint)

    @classmethod
    def open(cls, root: str | os.PathLike[str], fingerprint: dict[str, Any], *, shared: bool = False) -> Store:
        """Open (or create) the store at `root` for `fingerprint`.

        A store made under another fingerprint (or with an unreadable `store.json`) is emptied first, with a log
        line. With `shared=True` (a second process of a job whose first process opened the store) nothing is
        removed, and a store made under another fingerprint raises `RuntimeError`.
        """
        store = cls(Path(root), fingerprint)
        meta = store.root / META_FILE
        old = _read_meta(meta)
        if shared:
            if old != store.key:
                raise RuntimeError(f"{store.root}: the store was not opened with these settings by the first process")
            return store
        if store.root.is_dir():
            for f in store.root.iterdir():
                if fileio.is_temp_file(f):  # a write that a crash interrupted
                    f.unlink(missing_ok=True)
        if old != store.key:
            if old is not None or any(store._entry_files()):
                logger.info("%s: made with other settings; starting over", store.root)
            store._remove_entries()
            fileio.write_json(meta, {"version": STORE_VERSION, "key": store.key, "fingerprint": fingerprint})
        return store

    # ---- entries -------------------------------------------------------------------------------------------------
    def path(self, key: str) -> Path:
        """The file of entry `key` (any string: characters unsafe in a file name are %-escaped)."""
        if not key:
            raise ValueError("an entry key cannot be empty")
        return self.root / (quote(key, safe="-_.") + ENTRY_SUFFIX)

    def put(self, key: str, *, arrays: dict[str, np.ndarray] | None = None, rows: Any = None) -> None:
        """Write entry `key` atomically (replacing an older one)."""
        arrays = dict(arrays or {})
        bad = [name for name in arrays if name.startswith("__")]
        if bad:
            raise ValueError(f"array names starting with '__' are reserved: {bad}")
        members = {
            **{name: np.asarray(a) for name, a in arrays.items()},
            _ROWS: np.array(json.dumps(rows, ensure_ascii=False)),
            _KEY: np.array(self.key),
        }
        with fileio.atomic_path(self.path(key)) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **members)

    def get(self, key: str) -> Entry | None:
        """Entry `key`, or None when it is missing, unreadable (then deleted, with a warning) or from other settings."""
        p = self.path(key)
        if not p.is_file():
            return None
        try:
            with np.load(p, allow_pickle=False) as z:
                members = {name: z[name] for name in z.files}  # reads (and CRC-checks) every member now
            made_under = str(members.pop(_KEY))
            rows = json.loads(str(members.pop(_ROWS)))
        except (
            OSError, ValueError, KeyError, EOFError, TypeError, AttributeError, RecursionError, zipfile.BadZipFile
        ) as e:  # fmt: skip
            why = type(e).__name__ if isinstance(e, RecursionError) else str(e)
            if "allow_pickle" in why:  # numpy's words for a file with Python objects in it: never loaded here
                why = "it holds pickled Python objects, which are never loaded"
            logger.warning("%s: not a readable cache entry (%s); recomputing it", p, why)
            p.unlink(missing_ok=True)
            return None
        if made_under != self.key:
            logger.info("%s: made with other settings; recomputing it", p)
            p.unlink(missing_ok=True)
            return None
        return Entry(key, members, rows)

    def __contains__(self, key: str) -> bool:
        return self.path(key).is_file()

    def keys(self) -> list[str]:
        """The keys of the entries present (not yet validated), sorted."""
        return sorted(unquote(p.name[: -len(ENTRY_SUFFIX)]) for p in self._entry_files())

    def entries(self) -> Iterator[Entry]:
        """Every readable entry, in key order (unreadable ones are dropped, see `get`)."""
        for key in self.keys():
            entry = self.get(key)
            if entry is not None:
                yield entry

    def remove(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def clear(self) -> None:
        """Delete the store: its entries, its fingerprint, and the folder when nothing else is left in it."""
        clear(self.root)

    # ---- internals -----------------------------------------------------------------------------------------------
    def _entry_files(self) -> Iterator[Path]:
        if self.root.is_dir():
            yield from (p for p in self.root.iterdir() if p.name.endswith(ENTRY_SUFFIX) and p.is_file())

    def _remove_entries(self) -> None:
        for p in list(self._entry_files()):
            p.unlink(missing_ok=True)


def clear(root: str | os.PathLike[str]) -> None:
    """Delete the store at `root` (its own files only: anything else in the folder is left, and the folder too)."""
    root = Path(root)
    if not root.is_dir():
        return
    for p in root.iterdir():
        if p.is_file() and (p.name == META_FILE or p.name.endswith(ENTRY_SUFFIX) or fileio.is_temp_file(p)):
            p.unlink(missing_ok=True)
    try:
        root.rmdir()
    except OSError:  # something else is in it
        pass


def _read_meta(path: Path) -> str | None:
    """The fingerprint hash recorded in `store.json`, or None when it is missing or unreadable."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
        key = meta.get("key") if isinstance(meta, dict) and meta.get("version") == STORE_VERSION else None
    except (OSError, ValueError, RecursionError):
        return None
    return str(key) if key is not None else None
