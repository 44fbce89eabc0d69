"""The caption text an answerer sees: the paper's three contexts, fitted to a character budget.

The three contexts of the paper's EgoSchema experiment (`CONTEXTS`):

- `clips`: the clip captions only (the paper's 46.03 % row);
- `hierarchy`: the video summary, the segment descriptions and the clip captions (50.23 %);
- `summary`: the video summary only.

Each caption becomes a `Moment` (level, start, end, text as people read it: "C puts the kettle on the stove").

**The budget** is in characters, not tokens: the answering model is any server's, whose tokenizer we do not know,
and characters are the same on every machine (English caption text is about 4 characters a token, so the default
8000 characters are about 2000 tokens). The context's text (section headings, one line per moment) never exceeds
the budget, and which moments make it is decided deterministically:

1. levels in the order video, segment, clip: a higher level is worth more per character (it summarises many
   clips), so the summary goes in first and the clip captions fill what is left;
2. within a level, moments in order of relevance to the question (the sentence-embedding cosine of the question
   and its choices with the moment's text) when scores are given, ties in time order; without scores, in
   coarse-to-fine time order (first, middle, quarters, ...: an even spread at any budget);
3. each moment goes in when its line still fits, else it is skipped and the next one is tried;
4. the chosen moments are written in time order under their level's heading.

A text longer than the whole budget is never cut: it is skipped like any other that does not fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from videorecap.errors import InputError
from videorecap.export import display_text
from videorecap.results import CaptionResult

CONTEXTS = ("clips", "hierarchy", "summary")
DEFAULT_CONTEXT = "hierarchy"
DEFAULT_BUDGET_CHARS = 8000

_LEVEL_ORDER = ("video", "segment", "clip")
_HEADINGS = {"video": "Video summary:", "segment": "Segment descriptions:", "clip": "Clip captions:"}


@dataclass(frozen=True)
class Moment:
    """One caption of the video as context: its level, time span (seconds) and text as people read it."""

    level: str  # clip, segment or video
    start: float
    end: float
    text: str

    def line(self) -> str:
        """`[0:04-0:08] C puts the kettle on the stove`."""
        return f"[{timestamp(self.start)}-{timestamp(self.end)}] {self.text}"

    def to_dict(self) -> dict[str, object]:
        return {"level": self.level, "start": self.start, "end": self.end, "text": self.text}


def timestamp(seconds: float) -> str:
    """`75.5` -> `1:15`, `3725` -> `1:02:05` (whole seconds, rounded down)."""
    s = int(max(seconds, 0.0))
    h, m, s = s // 3600, s // 60 % 60, s % 60
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def moments(result: CaptionResult, context: str, *, source: str = "captions") -> list[Moment]:
    """The moments of `context` (see `CONTEXTS`) in `result`, in level then time order.

    Raises:
        InputError: an unknown context, or a captions file without the level(s) that context needs.
    """
    if context not in CONTEXTS:
        raise InputError(f"unknown context {context!r}; use one of {', '.join(CONTEXTS)}")
    clips = [Moment("clip", c.start, c.end, display_text(c.text)) for c in result.clips]
    segments = [Moment("segment", c.start, c.end, display_text(c.text)) for c in result.segments]
    summary = (
        [Moment("video", result.summary.start, result.summary.end, display_text(result.summary.text))]
        if result.summary is not None
        else []
    )
    if context == "clips":
        out = clips
        need = "clip captions (run caption with the clip level)"
    elif context == "summary":
        out = summary
        need = "video summary (run caption with --levels clip,segment,video)"
    else:
        out = summary + segments + clips
        need = "captions at any level"
    if not out:
        raise InputError(f"{source}: no {need}; the {context!r} context needs them")
    return out


def coarse_to_fine(n: int) -> list[int]:
    """0..n-1 ordered so that every prefix is spread evenly over the range: first, middle, quarters, eighths..."""
    if n <= 0:
        return []
    order, seen = [0], {0}
    step = n
    while len(order) < n:
        step = max(step // 2, 1)
        for i in range(0, n, step):
            if i not in seen:
                seen.add(i)
                order.append(i)
    return order


@dataclass(frozen=True)
class Context:
    """The moments chosen for an answerer and their text."""

    moments: tuple[Moment, ...]  # in level then time order, as written
    text: str
    dropped: int  # moments of the context that did not fit the budget


def fit(items: Sequence[Moment], budget_chars: int, scores: Sequence[float] | None = None) -> Context:
    """Choose the moments of `items` that fit `budget_chars` (see the module docstring) and write them out.

    `scores`, one per item, rank moments within a level (higher first); None ranks them coarse-to-fine in time.
    """
    if budget_chars < 1:
        raise ValueError(f"the budget must be at least 1 character, not {budget_chars}")
    if scores is not None and len(scores) != len(items):
        raise ValueError(f"{len(scores)} scores for {len(items)} moments")
    chosen: set[int] = set()
    used = 0
    opened: set[str] = set()
    for level in _LEVEL_ORDER:
        idx = sorted((i for i, m in enumerate(items) if m.level == level), key=lambda i: (items[i].start, i))
        if scores is not None:
            ranked = sorted(idx, key=lambda i: -float(scores[i]))  # stable: ties stay in time order
        else:
            ranked = [idx[k] for k in coarse_to_fine(len(idx))]
        for i in ranked:
            # a heading, a blank line before it (after another level), and the moment's line, each with its newline
            cost = len(items[i].line()) + 1
            if level not in opened:
                cost += len(_HEADINGS[level]) + 1 + (1 if opened else 0)
            if used + cost <= budget_chars:
                chosen.add(i)
                used += cost
                opened.add(level)
    kept = sorted(chosen, key=lambda i: (_LEVEL_ORDER.index(items[i].level), items[i].start, i))
    blocks = []
    for level in _LEVEL_ORDER:
        lines = [items[i].line() for i in kept if items[i].level == level]
        if lines:
            blocks.append("\n".join([_HEADINGS[level], *lines]) + "\n")
    text = "\n".join(blocks)
    assert len(text) <= budget_chars, (len(text), budget_chars)  # the cost above counts exactly these characters
    return Context(tuple(items[i] for i in kept), text, len(items) - len(kept))
