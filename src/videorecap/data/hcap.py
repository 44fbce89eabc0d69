"""Ego4D-HCap annotation files, as released, and our own JSONL format for custom datasets.

The released dataset (reference §6.1) is three kinds of file:

- `clips_{train,val}.pkl`: a list of tuples `(vid, start_sec, end_sec, caption)`. Variants: `(vid, start, end)`
  for inference and `(vid, sid, start, end)` for feature extraction.
- `segments_{train,val}.pkl`, `segments_train_pseudo.pkl`: a list of dicts with `vid`, `start_sec`, `end_sec`,
  `captions_pred` (a list of `[vid, start, end, caption]`), `captions_gt`, `segment_description` (the target) and
  `sid` (picks the `{sid}.npy` feature file).
- `videos_{train,val}.json`, `videos_train_pseudo.json`: a list of dicts with `vid`, `start_sec`, `end_sec`,
  `segment_descriptions`, `segment_descriptions_pred` (a list of str, or a stringified list when
  `version == "v1"`) and `video_summary` (the target); or `sids` instead of `end_sec`.

Pickles are never read with plain `pickle`: `restricted_load` admits only the opcodes that build plain containers
and scalars, and refuses every global a pickle tries to import (which is how a malicious pickle runs code).

Our JSONL format (docs/data.md) holds any of the three levels, one object per line:
`{"video_id", "level", "start", "end", "text", ...}` where `text` is the target of that level and every other
key of the released row is kept under its released name. `convert_hcap_to_jsonl` and `convert_jsonl_to_hcap`
convert between the two without loss.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import pickle
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, Any, NamedTuple

from videorecap import fileio
from videorecap.config import LEVELS, Level
from videorecap.errors import DataError

logger = logging.getLogger(__name__)

PICKLE_PROTOCOL = 4  # what the released files use; readable by every Python 3 since 3.4

# The target text of each level, under its released key.
TARGET_KEYS: dict[str, str] = {"clip": "caption", "segment": "segment_description", "video": "video_summary"}


class ClipRow(NamedTuple):
    """One row of a clip file. `caption` is None for inference rows; `sid` is set for feature-extraction rows."""

    vid: str
    start: float
    end: float
    caption: str | None = None
    sid: str | None = None


# ---- the restricted unpickler ----------------------------------------------------------------------------------
def _numpy_globals() -> dict[tuple[str, str], Callable[..., Any]]:
    """Safe stand-ins for the globals a pickled numpy scalar (e.g. `np.float64(1.5)`) imports.

    Only used with `numpy_scalars=True`. The stand-ins admit numeric dtypes only and return plain Python
    scalars, so nothing numpy-typed leaves the loader.
    """
    import codecs

    import numpy as np

    def dtype(*args: Any) -> Any:
        d = np.dtype(*args)
        if d.kind not in "biufc":
            raise pickle.UnpicklingError(f"numpy dtype {d} is not a plain numeric type")
        return d

    def scalar(d: Any, data: Any = None) -> Any:
        if not isinstance(d, np.dtype) or d.kind not in "biufc" or not isinstance(data, bytes):
            raise pickle.UnpicklingError("numpy scalar with a non-numeric dtype or non-bytes data")
        return np.frombuffer(data, dtype=d, count=1)[0].item()

    def encode(text: str, encoding: str = "utf-8") -> bytes:
        # protocol <= 2 writes bytes as _codecs.encode(str, "latin1"); nothing else is allowed
        if encoding != "latin1" or not isinstance(text, str):
            raise pickle.UnpicklingError("_codecs.encode is only allowed with latin1")
        return codecs.encode(text, "latin1")

    return {
        ("numpy", "dtype"): dtype,
        ("numpy.core.multiarray", "scalar"): scalar,  # numpy 1.x pickles
        ("numpy._core.multiarray", "scalar"): scalar,  # numpy 2.x pickles
        ("_codecs", "encode"): encode,
    }


class RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler that builds only lists, tuples, dicts, sets, str, bytes, int, float, bool and None.

    Those come from opcodes alone; anything else needs `find_class`, which refuses every global (or, with
    `numpy_scalars=True`, admits exactly the numpy scalar constructors, replaced by safe stand-ins).
    """

    def __init__(self, file: IO[bytes], *, name: str, numpy_scalars: bool = False) -> None:
        super().__init__(file, encoding="utf-8")
        self._name = name
        self._allowed = _numpy_globals() if numpy_scalars else {}

    def find_class(self, module: str, name: str) -> Any:
        allowed = self._allowed.get((module, name))
        if allowed is not None:
            return allowed
        hint = " (numpy scalars are admitted only with numpy_scalars=True)" if module.startswith("numpy") else ""
        raise DataError(
            f"{self._name}: refusing to load this pickle: it tries to import {module}.{name}, but an annotation "
            f"file may hold only lists, tuples, dicts, str, int, float, bool and None{hint}"
        )

    def persistent_load(self, pid: Any) -> Any:
        raise DataError(f"{self._name}: refusing to load this pickle: it uses persistent ids")


def restricted_load(path_or_file: str | os.PathLike[str] | IO[bytes], *, numpy_scalars: bool = False) -> Any:
    """Unpickle an annotation file, admitting only plain containers and scalars.

    Args:
        path_or_file: a path, or a binary file object.
        numpy_scalars: also admit numpy numeric scalars (returned as Python int/float/bool/complex).

    Raises:
        DataError: naming the file, when it is missing, not a pickle, or tries to import anything.
    """
    if isinstance(path_or_file, (str, os.PathLike)):
        path = Path(path_or_file)
        return _unpickle(io.BytesIO(_read_bytes(path)), str(path), numpy_scalars)
    return _unpickle(path_or_file, str(getattr(path_or_file, "name", "<pickle stream>")), numpy_scalars)


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror or e}") from None


def _unpickle(f: IO[bytes], name: str, numpy_scalars: bool) -> Any:
    try:
        return RestrictedUnpickler(f, name=name, numpy_scalars=numpy_scalars).load()
    except DataError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError) as e:
        raise DataError(f"{name}: not a valid pickle file ({type(e).__name__}: {e})") from None


def _dump_pickle(path: str | os.PathLike[str], obj: Any) -> None:
    fileio.write_bytes(path, pickle.dumps(obj, protocol=PICKLE_PROTOCOL))


# ---- reading either pickle or JSON -----------------------------------------------------------------------------
def _read_any(path: str | os.PathLike[str]) -> Any:
    """A JSON document or a pickle, told apart by content whatever the suffix.

    JSON here is always a list or an object, so it starts with `[` or `{`; neither is a pickle opcode.
    """
    path = Path(path)
    data = _read_bytes(path)
    if data.lstrip(b" \t\r\n\xef\xbb\xbf")[:1] not in (b"[", b"{"):
        return _unpickle(io.BytesIO(data), str(path), False)
    try:
        return json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None
    except RecursionError:
        raise DataError(
            f"{path}: JSON nested too deeply to be annotations (damaged or not an annotation file)"
        ) from None


def _expect_list(obj: Any, path: str | os.PathLike[str], what: str) -> list[Any]:
    if not isinstance(obj, list):
        raise DataError(f"{path}: expected a list of {what}, found {type(obj).__name__}")
    return obj


def _is_num(x: Any) -> bool:
    """A finite int or float (not a bool): NaN or infinite times would match every window or none, silently."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


# ---- clips -----------------------------------------------------------------------------------------------------
def parse_clip_row(row: Any, *, where: str = "row") -> ClipRow:
    """A released clip tuple (3-tuple, 4-tuple with caption, or 4-tuple with sid) as a `ClipRow`."""
    if not isinstance(row, (tuple, list)) or len(row) not in (3, 4):
        raise DataError(f"{where}: a clip row must be (vid, start, end[, caption]) or (vid, sid, start, end)")
    vid = row[0]
    if not isinstance(vid, str):
        raise DataError(f"{where}: video id must be a string, found {vid!r}")
    if len(row) == 3:
        sid, start, end, caption = None, row[1], row[2], None
    elif isinstance(row[3], str):
        sid, start, end, caption = None, row[1], row[2], row[3]
    else:  # (vid, sid, start, end): the feature-extraction variant
        if not (_is_num(row[2]) and _is_num(row[3])):  # neither form: say both, not "start and end" of the wrong one
            raise DataError(f"{where}: a 4-item clip row is (vid, start, end, caption text) or (vid, sid, start, end); "
                            f"found {row!r}"[:300])  # fmt: skip
        sid, start, end, caption = str(row[1]), row[2], row[3], None
    if not (_is_num(start) and _is_num(end)):
        raise DataError(f"{where}: start and end must be numbers, found {start!r} and {end!r}")
    if end < start:
        raise DataError(f"{where}: end {end} is before start {start}")
    return ClipRow(vid, float(start), float(end), caption, sid)


def clip_row_to_tuple(row: ClipRow) -> tuple[Any, ...]:
    """The released tuple of a clip row (the inverse of `parse_clip_row`)."""
    if row.sid is not None:
        return (row.vid, row.sid, row.start, row.end)
    if row.caption is None:
        return (row.vid, row.start, row.end)
    return (row.vid, row.start, row.end, row.caption)


def load_clips(path: str | os.PathLike[str]) -> list[ClipRow]:
    """Read `clips_*.pkl` (restricted unpickler), or a JSON list of the same tuples."""
    rows = _expect_list(_read_any(path), path, "clip tuples")
    out = [parse_clip_row(r, where=f"{path}: row {i}") for i, r in enumerate(rows)]
    logger.info("read %d clips from %s", len(out), path)
    return out


def save_clips(path: str | os.PathLike[str], rows: Iterable[ClipRow | Sequence[Any]]) -> None:
    """Write a clip file exactly as released: a pickled list of plain tuples, protocol 4 (atomic)."""
    tuples = [clip_row_to_tuple(r if isinstance(r, ClipRow) else parse_clip_row(r)) for r in rows]
    _dump_pickle(path, tuples)


# ---- segments and videos ---------------------------------------------------------------------------------------
def _check_segment(row: Any, where: str) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise DataError(f"{where}: a segment must be a dict, found {type(row).__name__}")
    if not isinstance(row.get("vid"), str):
        raise DataError(f"{where}: missing or non-string 'vid'")
    if "sid" not in row and not ("start_sec" in row and "end_sec" in row):
        raise DataError(f"{where}: a segment needs 'start_sec' and 'end_sec', or a 'sid'")
    for k in ("start_sec", "end_sec"):
        if k in row and not _is_num(row[k]):
            raise DataError(f"{where}: '{k}' must be a number, found {row[k]!r}")
    cp = row.get("captions_pred")
    if cp is not None:
        if not isinstance(cp, (list, tuple)) or not all(isinstance(c, (list, tuple)) and len(c) >= 4 for c in cp):
            raise DataError(f"{where}: 'captions_pred' must be a list of [vid, start, end, caption]")
    sd = row.get("segment_description")
    if sd is not None and not isinstance(sd, str):
        raise DataError(f"{where}: 'segment_description' must be a string")
    return row


def _check_video(row: Any, where: str) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise DataError(f"{where}: a video must be a dict, found {type(row).__name__}")
    if not isinstance(row.get("vid"), str):
        raise DataError(f"{where}: missing or non-string 'vid'")
    if "sids" not in row and "end_sec" not in row:
        raise DataError(f"{where}: a video needs 'end_sec' (and 'start_sec'), or 'sids'")
    for k in ("start_sec", "end_sec"):
        if k in row and not _is_num(row[k]):
            raise DataError(f"{where}: '{k}' must be a number, found {row[k]!r}")
    if "sids" in row and not isinstance(row["sids"], (list, tuple)):
        raise DataError(f"{where}: 'sids' must be a list")
    sdp = row.get("segment_descriptions_pred")
    if sdp is not None:
        ok = isinstance(sdp, str) if row.get("version") == "v1" else isinstance(sdp, (list, tuple, str))
        if not ok:
            raise DataError(f"{where}: 'segment_descriptions_pred' must be a list of strings (or a string for v1)")
    vs = row.get("video_summary")
    if vs is not None and not isinstance(vs, str):
        raise DataError(f"{where}: 'video_summary' must be a string")
    return row


def check_row(level: Level, row: Any, where: str = "row") -> Any:
    """Check one released row of `level`; returns it (a `ClipRow` for clips). Raises DataError naming `where`."""
    if level == "clip":
        return row if isinstance(row, ClipRow) else parse_clip_row(row, where=where)
    if level == "segment":
        return _check_segment(row, where)
    if level == "video":
        return _check_video(row, where)
    raise ValueError(f"unknown level {level!r}")


def load_segments(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read `segments_*.pkl` (restricted unpickler) or a JSON list of the same dicts, checking each row."""
    rows = _expect_list(_read_any(path), path, "segment dicts")
    out = [_check_segment(r, f"{path}: row {i}") for i, r in enumerate(rows)]
    logger.info("read %d segments from %s", len(out), path)
    return out


def load_videos(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read `videos_*.json` (or a pickle of the same dicts, as datasets.md calls them), checking each row."""
    rows = _expect_list(_read_any(path), path, "video dicts")
    out = [_check_video(r, f"{path}: row {i}") for i, r in enumerate(rows)]
    logger.info("read %d videos from %s", len(out), path)
    return out


def save_segments(path: str | os.PathLike[str], rows: Iterable[dict[str, Any]]) -> None:
    """Write a segment file as released: a pickled list of plain dicts, protocol 4 (atomic)."""
    rows = [_check_segment(r, f"{path}: row {i}") for i, r in enumerate(rows)]
    _dump_pickle(path, rows)


def save_videos(path: str | os.PathLike[str], rows: Iterable[dict[str, Any]]) -> None:
    """Write a video file as released: JSON (or a pickle when `path` ends in `.pkl`), atomic."""
    rows = [_check_video(r, f"{path}: row {i}") for i, r in enumerate(rows)]
    if Path(path).suffix == ".pkl":
        _dump_pickle(path, rows)
    else:
        fileio.write_json(path, rows, indent=None)


# ---- our JSONL format ------------------------------------------------------------------------------------------
_RESERVED = ("video_id", "level", "start", "end", "text")


def to_record(level: Level, row: ClipRow | dict[str, Any]) -> dict[str, Any]:
    """One released row as a JSONL record: `{"video_id", "level", "start", "end", "text", ...extras}`."""
    if level == "clip":
        r = row if isinstance(row, ClipRow) else parse_clip_row(row)
        rec: dict[str, Any] = {"video_id": r.vid, "level": "clip", "start": r.start, "end": r.end, "text": r.caption}
        if r.sid is not None:
            rec["sid"] = r.sid
        return rec
    if not isinstance(row, dict):
        raise DataError(f"a {level} row must be a dict")
    target = TARGET_KEYS[level]
    rec = {
        "video_id": row["vid"],
        "level": level,
        "start": row.get("start_sec"),
        "end": row.get("end_sec"),
        "text": row.get(target),
    }
    for k, v in row.items():
        if k in ("vid", "start_sec", "end_sec", target):
            continue
        if k in _RESERVED:
            raise DataError(f"{level} row has a key {k!r} that clashes with the JSONL format")
        rec[k] = v
    return rec


def from_record(rec: dict[str, Any], *, where: str = "record") -> tuple[Level, ClipRow | dict[str, Any]]:
    """The level and released row of one JSONL record (the inverse of `to_record`)."""
    if not isinstance(rec, dict):
        raise DataError(f"{where}: a record must be a JSON object")
    level = rec.get("level")
    if level not in LEVELS:
        raise DataError(f"{where}: 'level' must be one of {', '.join(LEVELS)}, found {level!r}")
    if not isinstance(rec.get("video_id"), str):
        raise DataError(f"{where}: missing or non-string 'video_id'")
    text = rec.get("text")
    if text is not None and not isinstance(text, str):
        raise DataError(f"{where}: 'text' must be a string or null")
    if level == "clip":
        start, end = rec.get("start"), rec.get("end")
        if not (_is_num(start) and _is_num(end)):
            raise DataError(f"{where}: a clip needs numeric 'start' and 'end'")
        if end < start:
            raise DataError(f"{where}: end {end} is before start {start}")
        sid = rec.get("sid")
        sid = None if sid is None else str(sid)
        return "clip", ClipRow(rec["video_id"], float(start), float(end), text, sid)
    out: dict[str, Any] = {"vid": rec["video_id"]}
    if rec.get("start") is not None:
        out["start_sec"] = rec["start"]
    if rec.get("end") is not None:
        out["end_sec"] = rec["end"]
    if text is not None:
        out[TARGET_KEYS[level]] = text
    for k, v in rec.items():
        if k not in _RESERVED:
            out[k] = v
    check = _check_segment if level == "segment" else _check_video
    return level, check(out, where)


def load_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read and check a JSONL dataset file; blank lines are skipped."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read as UTF-8 text: {e}") from None
    records = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{i}: not valid JSON ({e.msg})") from None
        from_record(rec, where=f"{path}:{i}")  # validates
        records.append(rec)
    return records


def save_jsonl(path: str | os.PathLike[str], records: Iterable[dict[str, Any]]) -> None:
    """Write records one JSON object per line (atomic)."""
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    fileio.write_text(path, "".join(line + "\n" for line in lines))


def convert_hcap_to_jsonl(
    out_path: str | os.PathLike[str],
    *,
    clips: str | os.PathLike[str] | None = None,
    segments: str | os.PathLike[str] | None = None,
    videos: str | os.PathLike[str] | None = None,
) -> int:
    """Convert released files (any subset of the three levels) into one JSONL file; returns the record count."""
    records: list[dict[str, Any]] = []
    if clips is not None:
        records += [to_record("clip", r) for r in load_clips(clips)]
    if segments is not None:
        records += [to_record("segment", r) for r in load_segments(segments)]
    if videos is not None:
        records += [to_record("video", r) for r in load_videos(videos)]
    save_jsonl(out_path, records)
    logger.info("wrote %d records to %s", len(records), out_path)
    return len(records)


def convert_jsonl_to_hcap(
    jsonl_path: str | os.PathLike[str], out_dir: str | os.PathLike[str], *, split: str = "train"
) -> dict[str, Path]:
    """Convert a JSONL file into `clips_{split}.pkl`, `segments_{split}.pkl` and `videos_{split}.json`.

    Only the levels present in the file are written. Returns {level: path written}.
    """
    by_level: dict[str, list[Any]] = {lv: [] for lv in LEVELS}
    for i, rec in enumerate(load_jsonl(jsonl_path), 1):
        level, row = from_record(rec, where=f"{jsonl_path}: record {i}")
        by_level[level].append(row)
    out_dir = Path(out_dir)
    written: dict[str, Path] = {}
    if by_level["clip"]:
        written["clip"] = out_dir / f"clips_{split}.pkl"
        save_clips(written["clip"], by_level["clip"])
    if by_level["segment"]:
        written["segment"] = out_dir / f"segments_{split}.pkl"
        save_segments(written["segment"], by_level["segment"])
    if by_level["video"]:
        written["video"] = out_dir / f"videos_{split}.json"
        save_videos(written["video"], by_level["video"])
    return written


def load_level(path: str | os.PathLike[str], level: Level) -> list[Any]:
    """The rows of one level from a released file or a JSONL file (`.jsonl`: records of other levels are skipped).

    Clip rows come back as `ClipRow`s, segment and video rows as released dicts.
    """
    if Path(path).suffix == ".jsonl":
        rows = []
        for i, rec in enumerate(load_jsonl(path), 1):
            lv, row = from_record(rec, where=f"{path}: record {i}")
            if lv == level:
                rows.append(row)
        return rows
    if level == "clip":
        return load_clips(path)
    if level == "segment":
        return load_segments(path)
    if level == "video":
        return load_videos(path)
    raise ValueError(f"unknown level {level!r}")
