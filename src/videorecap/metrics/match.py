"""Reading predictions and references from files, and pairing them up by video, level and time window.

Formats (told apart by suffix and content):

- our `captions.json` (`videorecap.results`), or a folder of them (every `*.json` below it whose `format` is
  `videorecap.captions`; other JSON files there are listed as skipped);
- Ego4D-HCap: `clips_*.pkl` tuples `(vid, start, end, caption)`, `segments_*.pkl` dicts (`segment_description`),
  `videos_*.json` dicts (`video_summary`), read through `videorecap.data.hcap` (restricted unpickler);
- JSONL, one `{"video_id", "level", "start", "end", "text"}` object per line (`videorecap.data.hcap` format).

Matching (`match_items`): a prediction and a reference match when they have the same video id and level and both
window ends agree within `tolerance` seconds; each reference is used once (closest windows first). References that
share one window exactly become one item with several references. A video summary also matches when the video has
exactly one predicted and one reference summary, whatever their windows (a predicted summary ends at the probed
duration, which rarely equals the annotation's `end_sec`). Whatever does not match is returned, never dropped.
"""

from __future__ import annotations

import bisect
import json
import logging
import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from videorecap.config import LEVELS, Level
from videorecap.errors import InputError

log = logging.getLogger(__name__)

CAPTIONS_FORMAT = "videorecap.captions"


@dataclass(frozen=True)
class CaptionItem:
    """One caption of one level of one video; `start`/`end` are None when the file gives no window."""

    video_id: str
    level: Level
    start: float | None
    end: float | None
    text: str
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LoadedItems:
    """What `load_items` read: the items, and what it had to leave out (rows without text, non-caption files)."""

    items: list[CaptionItem] = field(default_factory=list)
    no_text: list[dict[str, Any]] = field(default_factory=list)
    skipped_files: list[str] = field(default_factory=list)


# ---- reading ----------------------------------------------------------------------------------------------------
def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read ({e})") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: not valid JSON ({e})") from None
    except RecursionError:
        raise InputError(f"{path}: JSON nested too deeply to be captions (damaged or not a captions file)") from None


def _add(out: LoadedItems, vid: str, level: Level, start: Any, end: Any, text: Any, src: str) -> None:
    s = None if start is None else float(start)
    e = None if end is None else float(end)
    if text is None:
        out.no_text.append({"video_id": vid, "level": level, "start": s, "end": e, "source": src})
        return
    out.items.append(CaptionItem(vid, level, s, e, str(text), src))


def _from_captions(d: Any, path: Path, out: LoadedItems) -> None:
    from videorecap.results import CaptionResult

    res = CaptionResult.from_dict(d, source=str(path))
    vid, src = res.video.id, str(path)
    for c in res.clips:
        _add(out, vid, "clip", c.start, c.end, c.text, src)
    for c in res.segments:
        _add(out, vid, "segment", c.start, c.end, c.text, src)
    if res.summary is not None:
        _add(out, vid, "video", res.summary.start, res.summary.end, res.summary.text, src)


def _from_hcap(level: Level, path: Path, out: LoadedItems) -> None:
    from videorecap.data import hcap

    src = str(path)
    if level == "clip":
        for r in hcap.load_clips(path):
            _add(out, r.vid, "clip", r.start, r.end, r.caption, src)
    elif level == "segment":
        for r in hcap.load_segments(path):
            _add(out, r["vid"], "segment", r.get("start_sec"), r.get("end_sec"), r.get("segment_description"), src)
    else:
        for r in hcap.load_videos(path):
            _add(out, r["vid"], "video", r.get("start_sec"), r.get("end_sec"), r.get("video_summary"), src)


def _from_jsonl(path: Path, out: LoadedItems) -> None:
    from videorecap.data import hcap

    for rec in hcap.load_jsonl(path):
        _add(out, rec["video_id"], rec["level"], rec.get("start"), rec.get("end"), rec.get("text"), str(path))


def _hcap_level_of(path: Path, obj: Any) -> Level | None:
    """The level of an Ego4D-HCap file, from its name (clips_/segments_/videos_) or else its first row."""
    name = path.name.lower()
    for prefix, level in (("clips", "clip"), ("segments", "segment"), ("videos", "video")):
        if name.startswith(prefix):
            return level  # type: ignore[return-value]
    if isinstance(obj, list) and obj:
        row = obj[0]
        if isinstance(row, list | tuple):
            return "clip"
        if isinstance(row, dict):
            if "segment_description" in row:
                return "segment"
            if "video_summary" in row:
                return "video"
    return None


def _load_file(path: Path, out: LoadedItems) -> None:
    if path.suffix == ".jsonl":
        _from_jsonl(path, out)
        return
    if path.suffix == ".json":
        obj = _read_json(path)
        if isinstance(obj, dict):
            _from_captions(obj, path, out)
            return
    else:
        from videorecap.data import hcap

        obj = hcap.restricted_load(path)
    level = _hcap_level_of(path, obj)
    if level is None:
        raise InputError(
            f"{path}: not a captions.json, a JSONL file or an Ego4D-HCap clips_/segments_/videos_ file "
            "(name it clips_*.pkl, segments_*.pkl or videos_*.json, or use JSONL)"
        )
    _from_hcap(level, path, out)


def load_items(path: str | os.PathLike[str]) -> LoadedItems:
    """Every caption in a file or folder (see the module docstring for the formats).

    Raises:
        InputError, DataError: a missing, unreadable or malformed file (the message names it).
    """
    path = Path(path)
    out = LoadedItems()
    if path.is_dir():
        # hidden folders (.cache, .videorecap-search) hold this tool's own stores, never captions to score
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in (".json", ".jsonl")
                       and not any(part.startswith(".") for part in p.relative_to(path).parts))  # fmt: skip
        for f in files:
            if f.suffix == ".json":
                obj = _read_json(f)
                if not (isinstance(obj, dict) and obj.get("format") == CAPTIONS_FORMAT):
                    out.skipped_files.append(str(f))
                    continue
                _from_captions(obj, f, out)
            else:
                _from_jsonl(f, out)
        if out.skipped_files:
            log.warning("%s: skipped %d JSON file(s) that are not captions.json", path, len(out.skipped_files))
        if not out.items and not out.no_text:
            raise InputError(f"{path}: the folder holds no captions.json or JSONL files")
    elif not path.exists():
        raise InputError(f"{path}: no such file or folder")
    else:
        _load_file(path, out)
    if out.no_text:
        log.warning("%s: %d row(s) have no text and are not scored", path, len(out.no_text))
    return out


# ---- matching ---------------------------------------------------------------------------------------------------
@dataclass
class MatchedItem:
    """A prediction and the references of its window."""

    pred: CaptionItem
    refs: list[CaptionItem]

    @property
    def ref_texts(self) -> list[str]:
        return [r.text for r in self.refs]


@dataclass
class MatchResult:
    matched: dict[str, list[MatchedItem]] = field(default_factory=dict)  # level -> items, in file order
    unmatched_preds: list[CaptionItem] = field(default_factory=list)
    unmatched_refs: list[CaptionItem] = field(default_factory=list)

    def pairs(self, level: str) -> tuple[list[str], list[list[str]]]:
        """`(predictions, references)` of one level, ready for `score_captions`."""
        items = self.matched.get(level, [])
        return [m.pred.text for m in items], [m.ref_texts for m in items]

    def counts(self) -> dict[str, dict[str, int]]:
        """Per level: matched items, unmatched predictions, unmatched references."""
        out: dict[str, dict[str, int]] = {}
        for lv in LEVELS:
            c = {
                "matched": len(self.matched.get(lv, [])),
                "unmatched_predictions": sum(p.level == lv for p in self.unmatched_preds),
                "unmatched_references": sum(r.level == lv for r in self.unmatched_refs),
            }
            if any(c.values()):
                out[lv] = c
        return out


def _key(x: float | None) -> float | None:
    return None if x is None else round(x, 6)


def _group_refs(refs: Iterable[CaptionItem]) -> list[list[CaptionItem]]:
    groups: dict[tuple[Any, ...], list[CaptionItem]] = {}
    for r in refs:
        groups.setdefault((r.video_id, r.level, _key(r.start), _key(r.end)), []).append(r)
    return list(groups.values())


def match_items(preds: Sequence[CaptionItem], refs: Sequence[CaptionItem], tolerance: float = 1.0) -> MatchResult:
    """Pair predictions with references by video id, level and time window (see the module docstring)."""
    if tolerance < 0:
        raise InputError(f"the matching tolerance must be >= 0 seconds, got {tolerance}")
    by_key_p: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, p in enumerate(preds):
        by_key_p[(p.video_id, p.level)].append(i)
    by_key_r: dict[tuple[str, str], list[list[CaptionItem]]] = defaultdict(list)
    for g in _group_refs(refs):
        by_key_r[(g[0].video_id, g[0].level)].append(g)

    pred_to_group: dict[int, list[CaptionItem]] = {}
    used_groups: set[int] = set()
    for key, pidx in by_key_p.items():
        groups = by_key_r.get(key, [])
        if not groups:
            continue
        if key[1] == "video" and len(pidx) == 1 and len(groups) == 1:
            pred_to_group[pidx[0]] = groups[0]
            used_groups.add(id(groups[0]))
            continue
        # Candidate pairs within tolerance on both ends, closest first; each side used once.
        windowed = sorted(
            (g for g in groups if g[0].start is not None and g[0].end is not None), key=lambda g: g[0].start
        )
        starts = [g[0].start for g in windowed]
        cands = []
        for i in pidx:
            p = preds[i]
            if p.start is None or p.end is None:
                continue
            lo = bisect.bisect_left(starts, p.start - tolerance)
            hi = bisect.bisect_right(starts, p.start + tolerance)
            for j in range(lo, hi):
                g = windowed[j]
                if abs(g[0].end - p.end) <= tolerance:
                    cands.append((abs(g[0].start - p.start) + abs(g[0].end - p.end), i, j))
        cands.sort()
        taken: set[int] = set()
        for _, i, j in cands:
            if i in pred_to_group or j in taken:
                continue
            pred_to_group[i] = windowed[j]
            taken.add(j)
            used_groups.add(id(windowed[j]))

    result = MatchResult()
    for i, p in enumerate(preds):
        if i in pred_to_group:
            result.matched.setdefault(p.level, []).append(MatchedItem(p, pred_to_group[i]))
        else:
            result.unmatched_preds.append(p)
    for groups in by_key_r.values():
        for g in groups:
            if id(g) not in used_groups:
                result.unmatched_refs.extend(g)
    result.matched = {lv: result.matched[lv] for lv in LEVELS if lv in result.matched}
    return result
