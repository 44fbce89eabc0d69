"""Reading a multiple-choice answer out of whatever an LLM wrote.

About one answer in five is not the bare letter the prompt asked for in users' reproductions of LLM question
answering on EgoSchema; `parse_answer` reads the common shapes and says None (counted, never a crash) for the rest.
The choices are labelled A, B, C ... in the prompt; EgoSchema's own files call them "option 0" .. "option 4", so a
number is read as that 0-based option number. In order, the first rule that gives an answer wins:

1. JSON anywhere in the reply (```json fences too): `{"answer": "C"}`, `{"answer": 2}`, `{"option": "the cup"}`
   (keys answer, option, choice, label, prediction; the value is read by the rules below, an integer as an option
   number);
2. the whole reply is one choice's text (case, spacing and end punctuation aside);
3. after the word "answer" ("The answer is (C)", "answer: option 3", "Answer - C. the blue cup"): the choice text
   that follows, else the label that follows;
4. a label opening the reply: "C", "C.", "(C)", "C) the blue cup", "[C]", "**C**", "Option 3", "option C";
5. "option N" / "option X" anywhere, when the reply names one option only;
6. the text of exactly one choice inside the reply (the longest when one choice's text contains another's);
7. exactly one bracketed label anywhere: "... so I pick (D)".

A capital letter counts as a label only when it stands alone ("C." or "(C)", not the "A" of "A cup" or the "C" of
"C puts the cup"), a small letter only in brackets or after "option".
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

__all__ = ["label", "parse_answer"]

_KEYS = ("answer", "option", "choice", "label", "prediction")


def label(i: int) -> str:
    """The prompt's label of choice `i`: A, B, C, ..."""
    return chr(ord("A") + i)


def _norm(text: str) -> str:
    text = " ".join(text.replace("*", " ").split()).lower()
    return text.strip(" .!;:,\"'`")


def _label_index(tok: str, n: int, *, small: bool) -> int | None:
    """A label token -> index: a letter A.. (a small one only when `small`), or a 0-based option number."""
    if tok.isdigit():
        i = int(tok)
        return i if 0 <= i < n else None
    if len(tok) == 1 and tok.isalpha() and (tok.isupper() or small):
        i = ord(tok.upper()) - ord("A")
        return i if 0 <= i < n else None
    return None


# A label at the start of a text: optional "option"/"choice", optional brackets or bold, the letter or number, then
# something that ends it (a closing bracket, punctuation, the end).
_LEAD = re.compile(
    r"""^[\s"'`*]*(?P<word>(?:option|choice)\s*(?:number\s*)?)?[\s#]*
        (?P<open>[(\[{])?\s*(?P<tok>[A-Za-z]|\d+)\s*(?P<close>[)\]}])?
        (?P<after>[*"'`]*\s*(?:[.:,;)\-]|$))?""",
    re.VERBOSE | re.IGNORECASE,
)


def _lead_label(text: str, n: int, *, loose: bool = False) -> int | None:
    """The label opening `text`, if one does. `loose` (after "answer"): a capital letter may be followed by a space
    ("The answer is C because ...")."""
    m = _LEAD.match(text)
    if not m:
        return None
    tok, word, bracketed = m.group("tok"), bool(m.group("word")), bool(m.group("open") or m.group("close"))
    if tok.isdigit() and not (word or bracketed or m.group("after") is not None or loose):
        return None
    if tok.isalpha():
        ends = m.group("after") is not None or bracketed
        rest = text[m.end("tok") :]
        if not (ends or word or (loose and tok.isupper() and (not rest or not rest[0].isalpha()))):
            return None
        return _label_index(tok, n, small=bracketed or word)
    return _label_index(tok, n, small=False)


def _choice_text(text: str, choices: Sequence[str]) -> int | None:
    t = _norm(text)
    hits = [i for i, c in enumerate(choices) if _norm(c) and _norm(c) == t]
    return hits[0] if len(hits) == 1 else None


def _starts_with_choice(text: str, choices: Sequence[str]) -> int | None:
    t = _norm(text)
    hits = [i for i, c in enumerate(choices) if _norm(c) and (t == _norm(c) or t.startswith(_norm(c) + " "))]
    hits = [i for i in hits if not any(j != i and _norm(choices[i]) in _norm(choices[j]) for j in hits)]
    return hits[0] if len(hits) == 1 else None


def _words(text: str) -> str:
    """Lower-case words and commas, single spaces: what is compared when a choice is looked for inside a reply."""
    return _norm(re.sub(r"[^\w\s,]", " ", text).replace(",", " , "))


def _contained_choice(text: str, choices: Sequence[str]) -> int | None:
    t = f" {_words(text)} "
    normed = [_words(c) for c in choices]
    hits = {i for i, c in enumerate(normed) if c and f" {c} " in t}
    # a choice inside a longer one that also matched is not a second answer ("the cup" in "the red cup")
    hits = {i for i in hits if not any(j != i and j in hits and f" {normed[i]} " in f" {normed[j]} " for j in hits)}
    if len({normed[i] for i in hits}) == 1:
        return min(hits)
    return None


def _json_values(text: str) -> list[Any]:
    """The answer-like values of the JSON objects in `text` (the outermost braces, and each fenced block)."""
    blobs = re.findall(r"```(?:json)?\s*(.*?)```", text, flags=re.DOTALL | re.IGNORECASE)
    if "{" in text and "}" in text:
        blobs.append(text[text.index("{") : text.rindex("}") + 1])
    out = []
    for blob in blobs:
        try:
            obj = json.loads(blob)
        except (ValueError, RecursionError):
            continue
        if isinstance(obj, dict):
            low = {str(k).lower(): v for k, v in obj.items()}
            out += [low[k] for k in _KEYS if k in low]
        elif isinstance(obj, (int, str)) and not isinstance(obj, bool):
            out.append(obj)
    return out


def parse_answer(reply: str | None, choices: Sequence[str]) -> int | None:
    """The index of the choice `reply` picks, or None when it picks none or several (see the module docstring)."""
    n = len(choices)
    if not reply or not reply.strip() or n == 0:
        return None
    return _parse(reply, choices, n, depth=0)


def _parse(reply: str, choices: Sequence[str], n: int, depth: int) -> int | None:
    text = reply.strip()
    if depth == 0:
        for v in _json_values(text):  # 1
            if isinstance(v, int) and not isinstance(v, bool):
                if 0 <= v < n:
                    return v
            elif isinstance(v, str) and v.strip():
                got = _parse(v, choices, n, depth=1)
                if got is not None:
                    return got
    got = _choice_text(text, choices)  # 2
    if got is not None:
        return got
    m = re.search(r"\banswer\b(?:\s+(?:is|would be|will be|should be))?\s*[:=\-]*\s*(?:is\s+)?", text, re.IGNORECASE)
    if m:  # 3
        rest = text[m.end() :]
        for got in (_starts_with_choice(rest, choices), _lead_label(rest, n, loose=True)):
            if got is not None:
                return got
    got = _lead_label(text, n)  # 4
    if got is not None:
        return got
    named = {
        _label_index(t, n, small=True)
        for t in re.findall(r"\b(?:option|choice)\s*[(\[]?\s*([A-Za-z]|\d+)\b", text, re.I)
    }  # 5
    named.discard(None)
    if len(named) == 1:
        return named.pop()
    got = _contained_choice(text, choices)  # 6
    if got is not None:
        return got
    bracketed = {_label_index(t, n, small=True) for t in re.findall(r"[(\[]\s*([A-Za-z])\s*[)\]]", text)}  # 7
    bracketed.discard(None)
    if len(bracketed) == 1:
        return bracketed.pop()
    return None
