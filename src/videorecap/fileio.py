"""Atomic file writes: a reader (or a resumed run) sees either the old file, the whole new file, or nothing.

Everything the project writes that a later run may read back (features, captions, checkpoints, outputs) goes
through here: the data is written to a temporary file in the same folder, flushed to disk, then renamed over the
target, which POSIX makes atomic.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import unicodedata
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)


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
    try:
        yield tmp_path
        # mkstemp makes 0600: give the file the permissions a plain open() would. After the writer, not before: some
        # replace the path with a new file of their own (safetensors' save_file does, again 0600)
        os.chmod(tmp_path, 0o666 & ~_UMASK)
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


# The exact names our own temporary files and folders get: `.NAME.RANDOM8.tmp` from `tempfile.mkstemp`/`mkdtemp`
# (8 random characters of [a-z0-9_]), and `.NAME.RANDOM8.old.tmp` for a folder moved aside by `swap_dir`. Leftover
# cleaning matches these and nothing looser, so that a user's own `.notes.tmp` is never touched.
_TEMP_RE = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp$")
_ASIDE_RE = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.(?P<kind>old|carry)\.tmp$")


def temp_dir(target: str | os.PathLike[str]) -> Path:
    """A new empty folder next to `target`, named like our temp files, to be moved in with `swap_dir`."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    fix_dir_permissions(tmp)
    return tmp


def swap_dir(new: str | os.PathLike[str], target: str | os.PathLike[str], *, carry: bool = False) -> None:
    """Put the folder `new` at `target` as a whole, replacing the old `target` folder if there is one.

    The old folder is renamed aside (`.NAME.RANDOM8.old.tmp`), the new one renamed in, then the old one deleted:
    a reader sees the old folder or the new one, never a mix. With `carry`, what the old folder holds and the new
    one lacks (a cache, a user's own files) is moved into the new folder before the old one goes (the aside is then
    named `.NAME.RANDOM8.carry.tmp`). A kill at any point leaves the old folder or the new one, plus an aside that
    `clean_leftovers` resolves: put back when `target` is missing, else carried over (`carry`) and deleted.
    """
    new, target = Path(new), Path(target)
    _fsync_dir(new)
    if not (target.exists() or target.is_symlink()):
        os.rename(new, target)
        _fsync_dir(target.parent)
        return
    kind = "carry" if carry else "old"
    aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=f".{kind}.tmp", dir=target.parent))
    os.rename(target, aside)  # over the empty placeholder mkdtemp made: a unique name nobody else uses
    os.rename(new, target)
    _fsync_dir(target.parent)
    _finish_aside(aside, target, carry)


def _finish_aside(aside: Path, target: Path, carry: bool) -> None:
    if carry:
        for entry in os.scandir(aside):
            if not os.path.lexists(target / entry.name):
                os.rename(entry.path, target / entry.name)
    shutil.rmtree(aside, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    if os.name != "posix":  # folders cannot be opened for fsync on Windows
        return
    with contextlib.suppress(OSError):  # nor on every file system
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def clean_leftovers(folder: str | os.PathLike[str], depth: int = 3, before: float | None = None) -> int:
    """Delete what interrupted writes left in `folder` (down to `depth` levels): our own temp files and folders
    (exact `.NAME.RANDOM8.tmp` names, see `_TEMP_RE`). A folder that `swap_dir` moved aside is put back when its
    replacement never arrived, else finished (carried over, deleted). Call it only while no other process writes
    there (under `videorecap.lock.output_lock`); with `before` (a time.time()), entries changed since then are left.

    Returns:
        The number of entries deleted or restored.
    """
    n = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    names = {e.name for e in entries}
    for e in entries:
        path = Path(e.path)
        aside = _ASIDE_RE.match(e.name)
        ours = aside or _TEMP_RE.match(e.name)
        if ours and before is not None and e.stat(follow_symlinks=False).st_mtime >= before:
            continue
        if aside and e.is_dir(follow_symlinks=False) and aside["name"] not in names:
            os.rename(path, path.parent / aside["name"])  # killed between swap_dir's two renames: the old set is back
            names.add(aside["name"])
            logger.warning("restored %s (a replacement was interrupted)", path.parent / aside["name"])
            n += 1
        elif aside and e.is_dir(follow_symlinks=False):
            _finish_aside(path, path.parent / aside["name"], aside["kind"] == "carry")
            logger.info("finished replacing %s (interrupted)", path.parent / aside["name"])
            n += 1
        elif aside or _TEMP_RE.match(e.name):
            if e.is_dir(follow_symlinks=False):
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            logger.info("removed %s (left by an interrupted run)", path)
            n += 1
        elif depth > 1 and e.is_dir(follow_symlinks=False):
            n += clean_leftovers(path, depth - 1, before)
    return n


# ---- names of output files derived from input names ------------------------------------------------------------------
# Control characters (NUL included), path separators and what Windows refuses in a name become "_"
_UNSAFE_CHARS = re.compile(r'[\x00-\x1f\x7f-\x9f<>:"/\\|?*]')
_SURROGATES = re.compile("[\ud800-\udfff]")
_WINDOWS_DEVICES = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
# a file system takes 255 bytes per name; an id leaves room for ".npy", a "_2" suffix and our temp-name decorations
# (".ID.npy.RANDOM8.tmp", ".ID.RANDOM8.carry.tmp")
MAX_NAME_BYTES = 200


def safe_output_name(name: str) -> str:
    """`name` (a video's file stem, a segment id) made safe as one file or folder name inside an output folder.

    Never empty, ".", ".." or hidden (a leading "." becomes "_", so an id can neither climb out of `-o` nor look like
    our lock or temp files); no separators, control characters or characters Windows refuses; at most
    `MAX_NAME_BYTES` bytes of UTF-8 (a longer name is cut and ends in "~" and a hash of the whole name, so two long
    names stay apart). A plain name is returned unchanged.
    """
    safe = _UNSAFE_CHARS.sub("_", name)
    # a file name that is not valid UTF-8 reaches Python as lone surrogates (surrogateescape): no output name,
    # page or JSON file can carry them, so each becomes "_" like any other unusable character
    safe = _SURROGATES.sub("_", safe)
    safe = re.sub(r"^\.|[. ]+$", lambda m: "_" * len(m[0]), safe)  # Windows drops trailing dots and spaces
    if not safe or safe.split(".")[0].upper() in _WINDOWS_DEVICES:
        safe = "_" + safe
    if len(safe.encode("utf-8")) > MAX_NAME_BYTES:
        digest = hashlib.sha1(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        head = safe.encode("utf-8")[: MAX_NAME_BYTES - 9].decode("utf-8", "ignore")  # whole characters only
        safe = f"{head}~{digest}"
    return safe


def name_key(name: str) -> str:
    """When two names are the same file on a case-insensitive (or Unicode-normalising) file system."""
    return unicodedata.normalize("NFC", name).casefold()


def unique_output_names(names: Iterable[str]) -> list[str]:
    """`safe_output_name` of each name, made unique with "_2", "_3"... also where only case tells them apart."""
    out: list[str] = []
    used: set[str] = set()
    for name in names:
        base = cand = safe_output_name(name)
        n = 1
        while name_key(cand) in used:
            n += 1
            cand = f"{base}_{n}"
        used.add(name_key(cand))
        out.append(cand)
    return out
