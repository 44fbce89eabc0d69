"""Typed caption results: what `videorecap caption` produces and `captions.json` stores.

A `CaptionResult` holds the three levels of one video: clip captions (one per 4-s window), segment descriptions
(one per 180-s window) and the video summary (the whole video), each a `Caption(start, end, text)` in seconds.
A run may stop before the top (`--levels clip,segment`); the levels that were not run are empty (`[]` or a `None`
summary) and `levels` says which ones were run, so "not run" is never confused with "produced nothing".

`save()` writes `captions.json` atomically; `load()` checks it against the same rules as the JSON Schema shipped
in `videorecap/schemas/captions.schema.json` (plus the ones a schema cannot say, such as `start <= end`) and raises
`InputError` naming the file and the offending field. The format is described field by field in docs/outputs.md.
"""

from __future__ import annotations

import bisect
import errno
import json
import logging
import math
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from videorecap import __version__, fileio
from videorecap.config import LEVELS, Level
from videorecap.errors import InputError

logger = logging.getLogger(__name__)

FORMAT = "videorecap.captions"
# MAJOR.MINOR: a reader accepts its own major and any minor up to its own. 1.1 added the optional video fields
# start_time, codec, partial and covered (a 1.0 file reads with their defaults); 1.2 the optional summary_input.
SCHEMA_VERSION = "1.2"
# A file is written with the oldest version that has every field it holds, so that older readers keep reading the
# files they can: 1.1, or 1.2 when it has a summary_input (see CaptionResult.to_dict).
_VERSION_OF_SUMMARY_INPUT = "1.2"
SUMMARY_POLICIES = ("spread", "first")  # data.text.TEXT_POLICIES (results does not import data)
ROTATIONS = (0, 90, 180, 270)


@dataclass(frozen=True, slots=True)
class Caption:
    """One generated text and the time span it describes, in seconds from the start of the video."""

    start: float
    end: float
    text: str

    def __post_init__(self) -> None:
        if not (math.isfinite(self.start) and math.isfinite(self.end)):
            raise ValueError(f"caption times must be finite, got start={self.start} end={self.end}")
        if self.start < 0 or self.end < self.start:
            raise ValueError(f"caption span must satisfy 0 <= start <= end, got [{self.start}, {self.end}]")

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "text": self.text}


@dataclass
class VideoMeta:
    """What the pipeline knew about the source video.

    `width`/`height` are the stored (coded) frame size; `rotation` is the display rotation in degrees that a
    player applies on top (phone videos). `fps` and the size are `None` when the container does not say.
    `start_time` is where the first video frame sits on the container's clock (caption times count from that
    frame, a player's timeline may count from the container's 0); `codec` is the video codec ("h264", "hevc").
    `partial` is true when only part of the video decoded; `covered` then lists the `[start, end]` spans (seconds)
    that were captioned (`None`: all of it).
    """

    id: str
    path: str
    duration: float
    fps: float | None = None
    width: int | None = None
    height: int | None = None
    rotation: int = 0
    start_time: float = 0.0
    codec: str | None = None
    partial: bool = False
    covered: list[list[float]] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "path": self.path,
            "duration": self.duration,
            "fps": self.fps,
            "width": self.width,
            "height": self.height,
            "rotation": self.rotation,
            "start_time": self.start_time,
            "codec": self.codec,
            "partial": self.partial,
            "covered": None if self.covered is None else [[float(a), float(b)] for a, b in self.covered],
        }

    def covered_spans(self) -> list[tuple[float, float]]:
        """The captioned spans in seconds: `covered`, or the whole video when it is `None`."""
        if self.covered is None:
            return [(0.0, self.duration)]
        return [(float(a), float(b)) for a, b in self.covered]


@dataclass(frozen=True)
class SummaryInput:
    """Which segment descriptions the summary read, recorded when they did not all fit the video model's text limit.

    `policy` is "spread" (descriptions chosen evenly across the video to fit, the first and the last always) or
    "first" (the original: the text cut to its first `max_tokens` tokens); `tokens` is the token count of every
    description joined (more than `max_tokens`); `segments` are the indices into `segments` of the descriptions the
    summary read, in time order (under "first" the last one may be read only in part).
    """

    policy: str
    max_tokens: int
    tokens: int
    segments: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "max_tokens": self.max_tokens,
            "tokens": self.tokens,
            "segments": list(self.segments),
        }


@dataclass
class CaptionResult:
    """The captions of one video at every level that was run.

    `model` and `decoding` are free-form JSON objects describing how the text was produced (preset or
    checkpoint, decoding strategy, token limits...); `windows` gives the clip and segment window lengths in
    seconds. `levels=None` means "the levels that have captions". `summary_input` says which segment descriptions
    the summary read when they did not all fit the video model's text limit (None: it read all of them, whole).
    """

    video: VideoMeta
    clips: list[Caption] = field(default_factory=list)
    segments: list[Caption] = field(default_factory=list)
    summary: Caption | None = None
    model: dict[str, Any] = field(default_factory=dict)
    decoding: dict[str, Any] = field(default_factory=dict)
    windows: dict[str, float] = field(default_factory=lambda: {"clip": 4.0, "segment": 180.0})
    levels: list[Level] | None = None
    summary_input: SummaryInput | None = None
    schema_version: str = "1.1"  # of a file read back (a new result: 1.1); to_dict raises it to what the file holds
    created_by: str = f"videorecap {__version__}"

    def __post_init__(self) -> None:
        if self.levels is None:
            have = {"clip": bool(self.clips), "segment": bool(self.segments), "video": self.summary is not None}
            self.levels = [lv for lv in LEVELS if have[lv]]
        else:
            self.levels = [lv for lv in LEVELS if lv in self.levels]  # canonical order, no duplicates

    # ---- views ----------------------------------------------------------------------------------------------
    def clips_by_segment(self) -> list[tuple[Caption | None, list[Caption]]]:
        """Clip captions folded under their segment: `[(segment, clips), ...]` in time order.

        A clip belongs to the last segment starting at or before it. Without segments (a clip-only run) there is
        one group whose segment is `None`; clips before the first segment join the first group.
        """
        if not self.segments:
            return [(None, list(self.clips))] if self.clips else []
        starts = [s.start for s in self.segments]
        groups: list[tuple[Caption | None, list[Caption]]] = [(s, []) for s in self.segments]
        for c in self.clips:
            i = max(bisect.bisect_right(starts, c.start) - 1, 0)
            groups[i][1].append(c)
        return groups

    # ---- (de)serialisation ----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        version = self.schema_version
        if self.summary_input is not None and _version(version) < _version(_VERSION_OF_SUMMARY_INPUT):
            version = _VERSION_OF_SUMMARY_INPUT
        d = {
            "format": FORMAT,
            "schema_version": version,
            "created_by": self.created_by,
            "video": self.video.to_dict(),
            "model": self.model,
            "decoding": self.decoding,
            "windows": dict(self.windows),
            "levels": list(self.levels or []),
            "clips": [c.to_dict() for c in self.clips],
            "segments": [c.to_dict() for c in self.segments],
            "summary": self.summary.to_dict() if self.summary is not None else None,
        }
        if self.summary_input is not None:  # absent, not null, when the summary read every description
            d["summary_input"] = self.summary_input.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: Any, source: str = "captions") -> CaptionResult:
        """Build from a parsed `captions.json`; raises `InputError` starting with `source` when it is malformed."""
        return _parse(d, source)

    def to_json(self) -> str:
        text = json.dumps(self.to_dict(), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
        # A lone surrogate (a file name that is not UTF-8 reaches Python as one; a caller's text may hold one) cannot
        # be written as UTF-8: it becomes U+FFFD. Through UTF-16 with surrogatepass, proper pairs stay one character.
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write `captions.json` atomically (the file is either the old one or the whole new one).

        Raises:
            ValueError: when the result breaks the format's rules (e.g. a summary but `levels` without "video"),
                so that nothing is written that `load` would refuse.
        """
        path = Path(path)
        if path.is_dir():
            what = "is a folder: give the file to write, e.g. FOLDER/captions.json"
            raise IsADirectoryError(errno.EISDIR, what, str(path))
        items = [(f"clips[{i}]", c) for i, c in enumerate(self.clips)]
        items += [(f"segments[{i}]", c) for i, c in enumerate(self.segments)]
        items += [("summary", self.summary)] if self.summary is not None else []
        for name, item in items:
            if not isinstance(item, Caption):
                raise ValueError(f"refusing to write an invalid captions file: {name} is a {type(item).__name__}, "
                                 "not a Caption")  # fmt: skip
        try:
            _parse(self.to_dict(), str(path))
        except InputError as e:
            raise ValueError(f"refusing to write an invalid captions file: {e}") from None
        fileio.write_text(path, self.to_json())
        logger.info("wrote %s", path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CaptionResult:
        """Read and check a `captions.json`; raises `InputError` naming the file for anything malformed."""
        path = Path(path)
        try:
            raw = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InputError(f"{path}: no such captions file") from None
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"{path}: cannot read captions file ({e})") from None
        try:
            d = json.loads(raw, parse_constant=_reject_constant)
        except (json.JSONDecodeError, ValueError) as e:
            raise InputError(f"{path}: not valid JSON ({e})") from None
        except RecursionError:
            raise InputError(f"{path}: JSON nested too deeply to be a captions file (damaged?)") from None
        return _parse(d, str(path))


def schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of `captions.json`, as shipped with the package."""
    text = resources.files("videorecap").joinpath("schemas/captions.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


def load(path: str | os.PathLike[str]) -> CaptionResult:
    """Shorthand for `CaptionResult.load(path)`."""
    return CaptionResult.load(path)


# ---- validation ---------------------------------------------------------------------------------------------------
# The same rules as schemas/captions.schema.json, written out so that reading a file needs no jsonschema install,
# plus the cross-field rules a schema cannot express. tests/test_results.py checks that both reject the same files.


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a valid JSON number")


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) or (isinstance(v, float) and v.is_integer())


def _check_keys(d: Any, where: str, required: tuple[str, ...], src: str, extra_ok: bool = False) -> dict[str, Any]:
    if not isinstance(d, dict):
        raise InputError(f"{src}: {where} must be a JSON object, got {type(d).__name__}")
    missing = [k for k in required if k not in d]
    if missing:
        raise InputError(f"{src}: {where} is missing {', '.join(repr(k) for k in missing)}")
    if not extra_ok:
        unknown = sorted(set(d) - set(required))
        if unknown:
            raise InputError(f"{src}: {where} has unknown field(s) {', '.join(repr(k) for k in unknown)}")
    return d


def _parse_caption(d: Any, where: str, src: str) -> Caption:
    d = _check_keys(d, where, ("start", "end", "text"), src)
    for k in ("start", "end"):
        if not _is_number(d[k]) or d[k] < 0:
            raise InputError(f"{src}: {where}.{k} must be a number >= 0, got {d[k]!r}")
    if d["end"] < d["start"]:
        raise InputError(f"{src}: {where} ends ({d['end']}) before it starts ({d['start']})")
    if not isinstance(d["text"], str):
        raise InputError(f"{src}: {where}.text must be a string, got {type(d['text']).__name__}")
    return Caption(float(d["start"]), float(d["end"]), d["text"])


def _parse_level(v: Any, name: str, src: str) -> list[Caption]:
    if not isinstance(v, list):
        raise InputError(f"{src}: {name} must be a list of {{start, end, text}} objects")
    caps = [_parse_caption(c, f"{name}[{i}]", src) for i, c in enumerate(v)]
    for i in range(1, len(caps)):
        if caps[i].start < caps[i - 1].start:
            raise InputError(f"{src}: {name}[{i}] starts before {name}[{i - 1}]; captions must be in time order")
    return caps


def _parse_covered(v: Any, src: str) -> list[list[float]] | None:
    if v is None:
        return None
    bad = InputError(f"{src}: video.covered must be null or a list of [start, end] spans with 0 <= start <= end")
    if not isinstance(v, list):
        raise bad
    out: list[list[float]] = []
    for span in v:
        if not (isinstance(span, list) and len(span) == 2 and all(_is_number(x) for x in span)):
            raise bad
        if not 0 <= span[0] <= span[1]:
            raise bad
        out.append([float(span[0]), float(span[1])])
    return out


_VIDEO = ("id", "path", "duration", "fps", "width", "height", "rotation")
_VIDEO_OPTIONAL = ("start_time", "codec", "partial", "covered")  # added in 1.1
_TOP = ("format", "schema_version", "created_by", "video", "model", "decoding", "windows", "levels")
_TOP += ("clips", "segments", "summary")
_TOP_OPTIONAL = ("summary_input",)  # added in 1.2


def _version(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


def _parse(d: Any, src: str) -> CaptionResult:
    if isinstance(d, dict) and d.get("format") != FORMAT:
        raise InputError(f"{src}: not a videorecap captions file (format is {d.get('format')!r}, expected {FORMAT!r})")
    d = _check_keys(d, "the top level", _TOP, src, extra_ok=True)
    unknown = sorted(set(d) - set(_TOP) - set(_TOP_OPTIONAL))
    if unknown:
        raise InputError(f"{src}: the top level has unknown field(s) {', '.join(repr(k) for k in unknown)}")
    version = _parse_schema_version(d["schema_version"], src)
    if not isinstance(d["created_by"], str):
        raise InputError(f"{src}: created_by must be a string")
    video = _parse_video(d["video"], src)
    for k in ("model", "decoding"):
        if not isinstance(d[k], dict):
            raise InputError(f"{src}: {k} must be a JSON object")
    w = _check_keys(d["windows"], "windows", ("clip", "segment"), src)
    for k in ("clip", "segment"):
        if not _is_number(w[k]) or w[k] <= 0:
            raise InputError(f"{src}: windows.{k} must be a number of seconds > 0, got {w[k]!r}")
    levels = d["levels"]
    clips, segments, summary = _parse_levels(d, levels, src)
    summary_input = _parse_summary_input(d.get("summary_input"), summary, len(segments), src)
    return CaptionResult(
        video=video,
        clips=clips,
        segments=segments,
        summary=summary,
        model=d["model"],
        decoding=d["decoding"],
        windows={"clip": float(w["clip"]), "segment": float(w["segment"])},
        levels=list(levels),
        summary_input=summary_input,
        schema_version=version,
        created_by=d["created_by"],
    )


def _parse_schema_version(version: Any, src: str) -> str:
    """A 'MAJOR.MINOR' string this version reads: the same major, a minor no newer than ours."""
    ours = tuple(int(x) for x in SCHEMA_VERSION.split("."))
    try:
        theirs = tuple(int(x) for x in str(version).split("."))
        if len(theirs) != 2 or not isinstance(version, str):
            raise ValueError
    except ValueError:
        raise InputError(f"{src}: schema_version must be a 'MAJOR.MINOR' string, got {version!r}") from None
    if theirs[0] != ours[0] or theirs[1] > ours[1]:
        raise InputError(
            f"{src}: captions schema version {version} is not supported by videorecap {__version__} "
            f"(it reads {ours[0]}.0 to {SCHEMA_VERSION}); re-run `videorecap caption` or upgrade videorecap"
        )
    return version


def _parse_video(raw: Any, src: str) -> VideoMeta:
    """The `video` object: every field checked (type and range), the 1.1 fields optional."""
    v = _check_keys(raw, "video", _VIDEO, src, extra_ok=True)
    unknown = sorted(set(v) - set(_VIDEO) - set(_VIDEO_OPTIONAL))
    if unknown:
        raise InputError(f"{src}: video has unknown field(s) {', '.join(repr(k) for k in unknown)}")
    for k in ("id", "path"):
        if not isinstance(v[k], str):
            raise InputError(f"{src}: video.{k} must be a string, got {v[k]!r}")
    if not _is_number(v["duration"]) or v["duration"] < 0:
        raise InputError(f"{src}: video.duration must be a number >= 0, got {v['duration']!r}")
    if v["fps"] is not None and (not _is_number(v["fps"]) or v["fps"] <= 0):
        raise InputError(f"{src}: video.fps must be a number > 0 or null, got {v['fps']!r}")
    for k in ("width", "height"):
        if v[k] is not None and (not _is_int(v[k]) or v[k] < 1):
            raise InputError(f"{src}: video.{k} must be an integer >= 1 or null, got {v[k]!r}")
    if not _is_int(v["rotation"]) or v["rotation"] not in ROTATIONS:
        raise InputError(f"{src}: video.rotation must be one of 0, 90, 180, 270, got {v['rotation']!r}")
    start_time = v.get("start_time", 0.0)
    if not _is_number(start_time):
        raise InputError(f"{src}: video.start_time must be a number of seconds, got {start_time!r}")
    codec = v.get("codec")
    if codec is not None and not isinstance(codec, str):
        raise InputError(f"{src}: video.codec must be a string or null, got {codec!r}")
    partial = v.get("partial", False)
    if not isinstance(partial, bool):
        raise InputError(f"{src}: video.partial must be true or false, got {partial!r}")
    covered = _parse_covered(v.get("covered"), src)
    return VideoMeta(
        id=v["id"],
        path=v["path"],
        duration=float(v["duration"]),
        fps=None if v["fps"] is None else float(v["fps"]),
        width=None if v["width"] is None else int(v["width"]),
        height=None if v["height"] is None else int(v["height"]),
        rotation=int(v["rotation"]),
        start_time=float(start_time),
        codec=codec,
        partial=partial,
        covered=covered,
    )


def _parse_levels(d: dict[str, Any], levels: Any, src: str) -> tuple[list[Caption], list[Caption], Caption | None]:
    """`levels` checked, then the clips, segments and summary, each present only when its level is listed."""
    if (
        not isinstance(levels, list)
        or not levels
        or any(lv not in LEVELS for lv in levels)
        or len(set(levels)) != len(levels)
    ):
        raise InputError(f"{src}: levels must be a non-empty list of distinct 'clip', 'segment', 'video'")
    clips = _parse_level(d["clips"], "clips", src)
    segments = _parse_level(d["segments"], "segments", src)
    summary = None if d["summary"] is None else _parse_caption(d["summary"], "summary", src)
    for lv, name, present in (
        ("clip", "clips", bool(clips)),
        ("segment", "segments", bool(segments)),
        ("video", "summary", summary is not None),
    ):
        if lv not in levels and present:
            raise InputError(f"{src}: has {name} but levels {levels} does not include {lv!r}")
    if "video" in levels and summary is None:
        raise InputError(f"{src}: levels includes 'video' but summary is null")
    return clips, segments, summary


def _parse_summary_input(v: Any, summary: Caption | None, n_segments: int, src: str) -> SummaryInput | None:
    """The optional `summary_input` (1.2): which descriptions the summary read; only with a summary."""
    if v is None:
        return None
    d = _check_keys(v, "summary_input", ("policy", "max_tokens", "tokens", "segments"), src)
    if summary is None:
        raise InputError(f"{src}: has summary_input but no summary")
    if d["policy"] not in SUMMARY_POLICIES:
        raise InputError(
            f"{src}: summary_input.policy must be one of {', '.join(SUMMARY_POLICIES)}, got {d['policy']!r}"
        )
    for k in ("max_tokens", "tokens"):
        if not _is_int(d[k]) or d[k] < 1:
            raise InputError(f"{src}: summary_input.{k} must be an integer >= 1, got {d[k]!r}")
    segs = d["segments"]
    if not (
        isinstance(segs, list)
        and all(_is_int(i) and 0 <= i < n_segments for i in segs)
        and all(a < b for a, b in zip(segs, segs[1:], strict=False))
    ):
        raise InputError(
            f"{src}: summary_input.segments must be increasing indices into segments (0 to {n_segments - 1})"
        )
    return SummaryInput(d["policy"], int(d["max_tokens"]), int(d["tokens"]), tuple(int(i) for i in segs))
