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

**Long videos.** The video model reads at most `max_text_tokens` (512) tokens of this text; the original cuts the
text there, so beyond about 45 minutes of 180-s segment descriptions the summary never reads the rest of the video.
`fit_video_text` chooses what the video level reads under a token budget, counted with the level's real tokenizer:

- `"spread"` (the default of `caption`): when the whole text fits, it is the whole text, unchanged (so a short video
  reads exactly what the original reads). Otherwise it keeps as many descriptions as fit, chosen evenly across the
  video (by index, i.e. by time: segment windows are of equal length), always the first and the last, joined
  exactly as `video_text` joins them, so the model still reads the one format it was trained on.
- `"first"` (`caption --original-settings`): the whole text; the model's collator cuts it to its first
  `max_tokens` tokens, as the original does.

    >>> count = lambda texts: [len(t.split()) for t in texts]  # a stand-in tokenizer: one token per word
    >>> fit_video_text(["C cooks.", "C eats.", "C naps.", "C reads.", "C sleeps."], count, 6)
    FittedText(text='C cooks. C naps. C sleeps.', read=(0, 2, 4), tokens=10)
    >>> fit_video_text(["C cooks.", "C eats.", "C naps.", "C reads.", "C sleeps."], count, 6, "first").read
    (0, 1, 2)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

TEXT_POLICIES = ("spread", "first")  # how the video level's text is fitted to its token limit (fit_video_text)


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


class FittedText(NamedTuple):
    """What the video level reads: `text`, made of the descriptions `read` (indices, in time order; under "first"
    the last of them may be read only in part), and `tokens`, the token count of every description joined."""

    text: str
    read: tuple[int, ...]
    tokens: int


def fit_video_text(
    descriptions: Sequence[str],
    count_tokens: Callable[[Sequence[str]], list[int]],
    max_tokens: int,
    policy: str = "spread",
) -> FittedText:
    """The video level's text of `descriptions` under a budget of `max_tokens` tokens (see the module docstring).

    Args:
        descriptions: the segment descriptions, in time order.
        count_tokens: the number of tokens of each of a list of texts, with the video model's tokenizer.
        max_tokens: the video model's text limit (`TokenConfig.max_text_tokens`).
        policy: "spread" or "first".
    """
    if policy not in TEXT_POLICIES:
        raise ValueError(f"policy must be one of {', '.join(TEXT_POLICIES)}, not {policy!r}")
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, not {max_tokens}")
    # each part is a description as video_text writes it, with its final dot: video_text(ds) == " ".join(parts)
    parts = [d.strip(".").strip() + "." for d in descriptions]
    n = len(parts)
    if n == 0:
        return FittedText("", (), 0)
    full = video_text(descriptions)
    counts = count_tokens([*parts, *(" " + p for p in parts), full])
    first, later, total = counts[:n], counts[n : 2 * n], counts[2 * n]
    # GPT-2's pre-tokenizer never merges across ". " + next word (the space goes with the word), nor does the
    # word-level one, so a text's count is the sum of its parts' counts: first part bare, the others after a space.
    if total <= max_tokens or policy == "first" or n == 1:
        return FittedText(full, _read(range(n), first, later, max_tokens), total)
    for k in range(n - 1, 1, -1):
        idx = _evenly(n, k)
        if first[idx[0]] + sum(later[i] for i in idx[1:]) > max_tokens:
            continue
        text = video_text([descriptions[i] for i in idx])
        # the sum is a cheap estimate; the real count of the real text decides (a tokenizer that merged across
        # the joins would only make this loop try fewer descriptions)
        if count_tokens([text])[0] <= max_tokens:
            return FittedText(text, idx, total)
    # not even the first and the last fit (two very long descriptions): both, cut by the collator like any text
    idx = (0, n - 1)
    return FittedText(video_text([descriptions[i] for i in idx]), _read(idx, first, later, max_tokens), total)


def _evenly(n: int, k: int) -> tuple[int, ...]:
    """k of the indices 0..n-1 (2 <= k <= n), evenly spaced, the first and the last included: round(j * (n-1)/(k-1))
    in integers (halves rounded up), distinct because the step is at least 1."""
    return tuple((2 * j * (n - 1) + (k - 1)) // (2 * (k - 1)) for j in range(k))


def _read(idx: Sequence[int], first: Sequence[int], later: Sequence[int], max_tokens: int) -> tuple[int, ...]:
    """The indices whose part starts within the first `max_tokens` tokens of the joined text of `idx`."""
    out: list[int] = []
    offset = 0
    for j, i in enumerate(idx):
        if offset >= max_tokens:
            break
        out.append(i)
        offset += first[i] if j == 0 else later[i]
    return tuple(out)
