"""Prompts are text files users can edit: the defaults ship in `videorecap/llm/prompts/`, `--prompt FILE` overrides.

A prompt file is the user message, or `[system]` and `[user]` sections (lines holding only the marker). Fields in
braces are filled in (`str.format`; write `{{` for a literal brace):

    {text}          the lower level's text as the models read it (captions joined, descriptions as "a. b. c.")
    {captions}      segment level: the clip captions, one per line, with their times ("[12-16 s] C opens the door")
    {descriptions}  video level: the segment descriptions, one per line, with their times
    {seconds}       the length of the segment or video, in seconds

`summarize.txt` ("Summarize: {text}") is the original's text-only recipe: the default for the project's own text
model. `segment.txt` and `video.txt` are the defaults for a general language model. docs/llm.md shows all three.
A prompt's hash (of its text) goes into the provenance of every pseudo-label made with it.
"""

from __future__ import annotations

import hashlib
import os
import string
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from videorecap.errors import InputError

FIELDS = ("text", "captions", "descriptions", "seconds")
LOWER_TEXT = ("text", "captions", "descriptions")  # a pseudo-label prompt must give the model one of them
DEFAULTS = ("summarize", "segment", "video")


@dataclass(frozen=True)
class Prompt:
    """A prompt template: where it came from and its text."""

    source: str  # the file, or "default:NAME"
    text: str

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()[:12]

    def sections(self) -> list[tuple[str, str]]:
        """[(role, template)]: the `[system]`/`[user]` sections, or the whole text as the user message."""
        out: list[tuple[str, list[str]]] = []
        for line in self.text.splitlines():
            marker = line.strip().lower()
            if marker in ("[system]", "[user]"):
                out.append((marker[1:-1], []))
            elif out:
                out[-1][1].append(line)
            elif line.strip():
                out.append(("user", [line]))
        return [(role, "\n".join(lines).strip()) for role, lines in out if "\n".join(lines).strip()]

    def messages(self, **fields: Any) -> list[dict[str, str]]:
        """The chat messages with the fields filled in."""
        try:
            return [{"role": role, "content": tpl.format(**fields)} for role, tpl in self.sections()]
        except (KeyError, IndexError, ValueError) as e:
            raise InputError(
                f"{self.source}: cannot fill the prompt ({type(e).__name__}: {e}); its fields are "
                f"{', '.join('{' + f + '}' for f in FIELDS)}, and a literal brace is written twice"
            ) from None

    def check(self, fields: Sequence[str] = FIELDS, needs: Sequence[Sequence[str]] = (LOWER_TEXT,)) -> Prompt:
        """Reject, before any work, a template that has no user message, names a field not in `fields`, or uses no
        field of a group in `needs` (by default the lower level's text: without it the model is asked about
        nothing). `ask` checks its own fields and needs ({context} and {question}) here too."""
        if not any(role == "user" for role, _ in self.sections()):
            raise InputError(f"{self.source}: the prompt has no user message")
        try:
            names = {name for _, tpl in self.sections() for _, name, _, _ in string.Formatter().parse(tpl) if name}
        except ValueError as e:
            raise InputError(f"{self.source}: not a valid template ({e}); write a literal brace twice") from None
        used = {n.split(".")[0].split("[")[0] for n in names}
        unknown = sorted(n for n in used if n not in fields)
        if unknown:
            raise InputError(f"{self.source}: unknown field(s) {unknown}; the fields are {', '.join(fields)}")
        for group in needs:
            if not used & set(group):
                braced = " or ".join("{" + f + "}" for f in group)
                raise InputError(f"{self.source}: the prompt must use {braced}; it uses "
                                 f"{', '.join('{' + f + '}' for f in sorted(used)) or 'no field'}")  # fmt: skip
        return self


def default_prompt(name: str) -> Prompt:
    """One of the prompts shipped with the package (`summarize`, `segment`, `video`)."""
    if name not in DEFAULTS:
        raise ValueError(f"no default prompt {name!r}; the defaults are {', '.join(DEFAULTS)}")
    text = resources.files("videorecap.llm").joinpath("prompts", f"{name}.txt").read_text(encoding="utf-8")
    return Prompt(f"default:{name}", text)


def load_prompt(
    path: str | os.PathLike[str],
    flag: str = "--prompt",
    *,
    fields: Sequence[str] = FIELDS,
    needs: Sequence[Sequence[str]] = (LOWER_TEXT,),
) -> Prompt:
    """A user's prompt file, checked (`Prompt.check` with `fields` and `needs`)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{flag} {p}: cannot read the prompt file ({getattr(e, 'strerror', None) or e})") from None
    return Prompt(str(p), text).check(fields, needs)
