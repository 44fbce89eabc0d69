"""The previous level's text, built exactly as the original does (reference §1.5).

The released segment and video models were trained on these strings, so they are kept byte for byte, quirks
included.

Segment level: the captions of `captions_pred` (the fourth field of each `[vid, start, end, caption]`) joined with
**no separator**:

    >>> segment_text([["v", 0, 4, "#C C picks the cabbage"], ["v", 4, 8, "#C C puts it down"]])
    '#C C picks the cabbage#C C puts it down'

Video level: each predicted segment description loses its leading and trailing dots (`strip(".")`), then its
surrounding spaces, gets `". "` appended, and the whole string is stripped:

    >>> video_text(["C cooks.", "C eats", "C washes up."])
    'C cooks. C eats. C washes up.'

Dots are stripped before spaces, as in the original, so "C eats. " (dot, then space) keeps its dot:

    >>> video_text(["C eats. ", "C sleeps"])
    'C eats.. C sleeps.'

Files marked `version == "v1"` hold a stringified list instead; the characters `[ ] , '` are deleted from it:

    >>> video_text("['C cooks.', 'C eats.']", version="v1")
    'C cooks. C eats.'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def segment_text(captions_pred: Sequence[Sequence[Any]]) -> str:
    """The clip captions of one segment (`c[3]` of each entry) joined with no separator, as the original."""
    return "".join(str(c[3]) for c in captions_pred)


def video_text(segment_descriptions_pred: Sequence[str] | str, version: str | None = None) -> str:
    """The segment descriptions of one video joined as "a. b. c." (see the module docstring).

    A plain string (the `version == "v1"` layout) is cleaned by deleting `[ ] , '`, whatever `version` says.
    """
    if version == "v1" or isinstance(segment_descriptions_pred, str):
        text = str(segment_descriptions_pred)
        for ch in "[],'":
            text = text.replace(ch, "")
        return text.strip()
    return "".join(d.strip(".").strip() + ". " for d in segment_descriptions_pred).strip()


def previous_text(level: str, row: dict[str, Any]) -> str | None:
    """The previous-level text of a released segment or video row (None for clips or when absent)."""
    if level == "segment" and row.get("captions_pred") is not None:
        return segment_text(row["captions_pred"])
    if level == "video" and row.get("segment_descriptions_pred") is not None:
        return video_text(row["segment_descriptions_pred"], row.get("version"))
    return None
