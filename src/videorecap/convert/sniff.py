"""Recognising released checkpoint files from their bytes, without unpickling anything.

`sniff_file(path)` tells an original Video ReCap checkpoint, a LaViLa checkpoint, another PyTorch file and a
safetensors file apart by reading the pickle's opcodes (`pickletools.genops` parses; it never imports or runs
anything) and looking at the state-dict key names they hold. `describe_released(path)` turns what it finds into the
one-line error that says which `videorecap convert` command the file needs; `describe_bytes(path)` says what a file
that is no PyTorch file at all is (a text file, a video...).

Layer: this module sits below `checkpoint` (tests/test_layering.py), although it lives in `convert/` with the other
code about released files: `checkpoint` calls it for its error message when a released file is given where a
checkpoint folder is expected, and `checkpoint` is itself below the converters. It imports nothing of the package.
"""

from __future__ import annotations

import io
import os
import pickle
import pickletools
import zipfile
from pathlib import Path


def describe_released(path: Path) -> str | None:
    """The one-line error for a released (pickled) checkpoint given where our folder is expected; None otherwise."""
    kind = sniff_file(path)
    if kind == "videorecap-original":
        return (
            f"{path} is an original Video ReCap checkpoint: convert it first with "
            f"`videorecap convert official {path} OUT`"
        )
    if kind == "lavila":
        return f"{path} is a LaViLa checkpoint: convert its video encoder with `videorecap convert lavila {path} OUT`"
    if kind == "torch":
        return (
            f"{path} is a PyTorch pickle, not a videorecap checkpoint folder: this is a checkpoint file; convert it "
            f"first with `videorecap convert official {path} OUT` (Video ReCap weights) and give OUT"
        )
    return None


def sniff_file(path: str | os.PathLike[str]) -> str | None:
    """What a file looks like, from its bytes, without unpickling anything.

    Returns:
        "videorecap-original", "lavila", "torch" (another PyTorch zip or pickle), "safetensors", or None.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return None
    if head.startswith(b"PK\x03\x04"):
        return _classify(_zip_pickle_strings(path))
    if head[:1] == b"\x80" and 2 <= head[1:2][0] <= 5:  # pickle PROTO opcode: the legacy torch.save format
        return _classify(_pickle_strings(path))
    if len(head) >= 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < 100_000_000:
        return "safetensors"
    return None


# File kinds people pass by mistake, by their leading bytes: (offset, magic, what the file is)
_MAGIC = (
    (4, b"ftyp", "an MP4/QuickTime video"),
    (0, b"\x1a\x45\xdf\xa3", "a Matroska/WebM video"),
    (0, b"RIFF", "a RIFF file (AVI video or WAV audio)"),
    (0, b"\x89PNG", "a PNG image"),
    (0, b"\xff\xd8\xff", "a JPEG image"),
    (0, b"\x1f\x8b", "a gzip archive"),
    (0, b"%PDF", "a PDF document"),
)


def describe_bytes(path: str | os.PathLike[str]) -> str | None:
    """What a file that is not a loadable PyTorch checkpoint is, from its first bytes, as a phrase for an error
    ("an empty file", "a text file", "an MP4/QuickTime video", "a safetensors file"...); None when it looks like a
    PyTorch file (a zip with a data.pkl, or a pickle), which must then be damaged or truncated."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError as e:
        return f"unreadable ({e.strerror or e})"
    if not head:
        return "an empty file"
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as z:
                pytorch = any(n.endswith("data.pkl") for n in z.namelist())
        except (zipfile.BadZipFile, OSError):
            # no readable index (a cut download): the first entry's name, in its local header, still says PyTorch
            first = head[30 : 30 + int.from_bytes(head[26:28], "little")]
            return None if first.endswith(b"data.pkl") else "a damaged zip archive"
        return None if pytorch else "a zip archive without a PyTorch checkpoint (no data.pkl) in it"
    if head[:1] == b"\x80" and 2 <= head[1] <= 5:
        return None
    if sniff_file(path) == "safetensors":
        return "a safetensors file"
    for offset, magic, what in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return what
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as e:
        text = head[: e.start].decode("utf-8") if e.start > len(head) - 4 else None  # a character cut at the end
    if text is not None and all(c.isprintable() or c in "\t\n\r\f" for c in text):
        return "a text file"
    return f"neither a zip archive nor a pickle (it starts with the bytes {head[:8].hex(' ')})"


def _classify(strings: set[str]) -> str:
    keys = {s.removeprefix("module.") for s in strings}
    if any(k.startswith(("text_decoder.", "video_mapper.", "text_mapper.")) for k in keys):
        return "videorecap-original"
    if any(k.startswith("visual.") for k in keys) and any("image_projection" in k for k in keys):
        return "lavila"
    return "torch"


def _zip_pickle_strings(path: Path, limit: int = 64 << 20) -> set[str]:
    try:
        with zipfile.ZipFile(path) as z:
            names = [n for n in z.namelist() if n.endswith("data.pkl")]
            if not names or z.getinfo(names[0]).file_size > limit:
                return set()
            data = z.read(names[0])
    except (zipfile.BadZipFile, OSError, KeyError):
        return set()
    return _strings_in_pickle(data)


def _pickle_strings(path: Path, limit: int = 64 << 20) -> set[str]:
    try:
        with open(path, "rb") as f:
            data = f.read(limit)
    except OSError:
        return set()
    return _strings_in_pickle(data)


def _strings_in_pickle(data: bytes, max_ops: int = 5_000_000) -> set[str]:
    # pickletools.genops only parses opcodes; nothing is imported or executed. A legacy torch file is several
    # pickles in a row followed by raw storage bytes, hence the loop and the tolerance for trailing garbage.
    out: set[str] = set()
    stream = io.BytesIO(data)
    ops = 0
    while stream.tell() < len(data) and ops < max_ops:
        try:
            for _op, arg, _pos in pickletools.genops(stream):
                ops += 1
                if isinstance(arg, str):
                    out.add(arg)
                if ops >= max_ops:
                    break
        except (ValueError, pickle.UnpicklingError, EOFError, UnicodeDecodeError):
            break
    return out
