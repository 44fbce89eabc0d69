"""Recognising released checkpoint files from their bytes, without unpickling anything.

`sniff_file(path)` tells an original Video ReCap checkpoint, a LaViLa checkpoint, another PyTorch file and a
safetensors file apart by reading the pickle's opcodes (`pickletools.genops` parses; it never imports or runs
anything) and looking at the state-dict key names they hold. `describe_released(path)` turns what it finds into the
one-line error that says which `videorecap convert` command the file needs.

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
