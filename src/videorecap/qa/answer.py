"""Answering one question about a video from its captions, with the moments that answer rests on.

Two answerers share one preparation (`prepare`): the context's moments (`qa.context`), their sentence embeddings
(`videorecap.text.embed`, the one embedding model), the question's, and the context fitted to the budget with the
moments ranked by relevance to the question and its choices.

- `RetrievalAnswerer` needs no LLM: it retrieves the `retrieve` moments of the fitted context closest to the
  question, then picks the choice whose embedding is closest to one of them (the highest cosine over the retrieved
  moments). Its evidence is those moments, closest to the picked choice first. It reads meaning, not order or
  counts: on "in what order ..." or "how many times ..." questions it is expected to be near chance.
- `LLMAnswerer` sends the fitted context, the question and the choices (labelled A, B, ...) to a chat backend
  (`videorecap.llm`: any OpenAI-compatible server, or `videorecap serve --text-model`) and reads the reply with
  `qa.parse.parse_answer`. Its evidence is the context's moments closest to the question together with the picked
  choice (to the question alone when the reply picked none).

The prompt is a prompt file of `videorecap.llm.prompts` (a user message, or [system] and [user] sections) with the
fields {context}, {question}, {options} and {instruction}; `DEFAULT_PROMPT_TEXT` is the default, and a user's own
file replaces it (`videorecap ask --prompt FILE`, docs/ask.md).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from videorecap.errors import InputError
from videorecap.llm.prompts import Prompt
from videorecap.qa.context import DEFAULT_BUDGET_CHARS, DEFAULT_CONTEXT, Context, Moment, fit, moments
from videorecap.qa.parse import label, parse_answer
from videorecap.results import CaptionResult

logger = logging.getLogger(__name__)

# The default prompt, in the prompt-file format of `videorecap.llm.prompts` ([system] and [user] sections); a user's
# file with the same fields replaces it (--prompt FILE).
DEFAULT_PROMPT_TEXT = """[system]
You answer questions about a video from its time-stamped captions. C is the camera wearer.
[user]
Captions of the video:

{context}
Question: {question}
{options}
{instruction}
"""
CHOICE_INSTRUCTION = "Answer with the letter of the correct option only."
OPEN_INSTRUCTION = "Answer in one short sentence."
PROMPT_FIELDS = ("context", "question", "options", "instruction")


@dataclass(frozen=True)
class AskOptions:
    """How a question is answered (the same for every answerer)."""

    context: str = DEFAULT_CONTEXT  # clips, hierarchy or summary (qa.context.CONTEXTS)
    budget_chars: int = DEFAULT_BUDGET_CHARS  # the context's length limit
    retrieve: int = 8  # moments the retrieval answerer compares the choices with
    evidence: int = 3  # moments reported as evidence
    max_tokens: int = 64  # the LLM's reply limit
    temperature: float = 0.0

    def __post_init__(self) -> None:
        for name in ("budget_chars", "retrieve", "evidence", "max_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")


@dataclass
class Answer:
    """One question's answer: the choice picked (None: no choices, or a reply that picks none), the answerer's
    reply as it came, the evidence and the size of the context it was given."""

    prediction: int | None
    reply: str
    evidence: list[Moment]
    context_chars: int
    context_moments: int
    dropped_moments: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "prediction": self.prediction,
            "reply": self.reply,
            "evidence": [m.to_dict() for m in self.evidence],
            "context_chars": self.context_chars,
            "context_moments": self.context_moments,
            "dropped_moments": self.dropped_moments,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Answer:
        return cls(
            d["prediction"],
            d["reply"],
            [Moment(m["level"], m["start"], m["end"], m["text"]) for m in d["evidence"]],
            d["context_chars"],
            d["context_moments"],
            d.get("dropped_moments", 0),
        )


# ---- embeddings ------------------------------------------------------------------------------------------------------
class Embeddings:
    """The sentence embedding of each text, computed once (a video's captions serve all of its questions)."""

    def __init__(self, embedder: Any) -> None:
        # a videorecap.text.embed.TextEmbedder, or a function that returns one, called at the first use (a server
        # then comes up at once and loads the model with the first question: text.embed.shared_embedder)
        self._embedder = embedder
        self._memo: dict[str, np.ndarray] = {}

    @property
    def embedder(self) -> Any:
        if not hasattr(self._embedder, "embed"):
            self._embedder = self._embedder()
        return self._embedder

    @property
    def name(self) -> str:
        return str(getattr(self.embedder, "name", type(self.embedder).__name__))

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) unit rows."""
        todo = list(dict.fromkeys(t for t in texts if t not in self._memo))
        if todo:
            for t, e in zip(todo, self.embedder.embed(todo), strict=True):
                self._memo[t] = e
        if not texts:
            return np.zeros((0, int(getattr(self.embedder, "dim", 0))), np.float32)
        return np.stack([self._memo[t] for t in texts])


# ---- one question, prepared ------------------------------------------------------------------------------------------
@dataclass
class Prepared:
    """A question with its context, ready for an answerer."""

    question: str
    choices: tuple[str, ...]
    context: Context
    moment_emb: np.ndarray  # (M, D) embeddings of context.moments
    question_emb: np.ndarray  # (D,) the question alone
    embed: Embeddings = field(repr=False)


def _check_choices(choices: Sequence[str]) -> tuple[str, ...]:
    if isinstance(choices, str):  # one string would be taken as its letters
        raise InputError(f"choices: give a list of the answers to choose from, not one string ({choices!r})")
    choices = tuple(str(c) for c in choices)
    if len(choices) == 1 or len(choices) > 26:
        raise InputError(f"give 2 to 26 choices, not {len(choices)}")
    if any(not c.strip() for c in choices):
        raise InputError("a choice is empty")
    return choices


def prepare(
    result: CaptionResult,
    question: str,
    choices: Sequence[str],
    opts: AskOptions,
    embed: Embeddings,
    *,
    source: str = "captions",
) -> Prepared:
    """The context of `opts.context` fitted to `opts.budget_chars`, its moments ranked by relevance to the question
    and its choices."""
    if not question.strip():
        raise InputError("the question is empty")
    choices = _check_choices(choices)
    if not callable(embed):  # (a TextEmbedder is wrapped: Embeddings(embedder))
        raise InputError(f"embed: give an Embeddings (texts -> vectors), e.g. Embeddings(embedder), not {embed!r:.60}")
    items = moments(result, opts.context, source=source)
    emb = embed([m.text for m in items])
    query = " ".join([question, *choices])
    relevance = emb @ embed([query])[0]
    ctx = fit(items, opts.budget_chars, relevance.tolist())
    index = {id(m): i for i, m in enumerate(items)}
    ctx_emb = emb[[index[id(m)] for m in ctx.moments]] if ctx.moments else emb[:0]
    return Prepared(question, choices, ctx, ctx_emb, embed([question])[0], embed)


def _top(scores: np.ndarray, k: int) -> list[int]:
    """Indices of the k highest scores, best first, ties to the earlier index."""
    return [int(i) for i in np.argsort(-scores, kind="stable")[:k]]


def _answer(p: Prepared, prediction: int | None, reply: str, evidence: list[Moment]) -> Answer:
    return Answer(prediction, reply, evidence, len(p.context.text), len(p.context.moments), p.context.dropped)


# ---- answerers -------------------------------------------------------------------------------------------------------
class RetrievalAnswerer:
    """The baseline that needs no LLM (see the module docstring)."""

    name = "retrieval"

    def __init__(self, opts: AskOptions) -> None:
        self.opts = opts

    def identity(self) -> dict[str, Any]:
        return {"answerer": self.name}

    def answer_many(self, prepared: Sequence[Prepared]) -> list[Answer]:
        return [self.answer(p) for p in prepared]

    def answer(self, p: Prepared) -> Answer:
        moments_ = list(p.context.moments)
        if not moments_:
            return _answer(p, None, "", [])
        retrieved = _top(p.moment_emb @ p.question_emb, self.opts.retrieve)
        if not p.choices:
            ev = [moments_[i] for i in retrieved[: self.opts.evidence]]
            return _answer(p, None, "\n".join(m.line() for m in ev), ev)
        choice_emb = p.embed(list(p.choices))  # (K, D)
        sims = choice_emb @ p.moment_emb[retrieved].T  # (K, R)
        best = sims.max(axis=1)
        pick = int(np.argmax(best))  # ties: the earlier choice
        order = np.argsort(-sims[pick], kind="stable")[: self.opts.evidence]
        ev = [moments_[retrieved[int(j)]] for j in order]
        reply = f"{label(pick)} (cosine {best[pick]:.3f})"
        return _answer(p, pick, reply, ev)


class ChatBackend(Protocol):
    """What the LLM answerer needs of a `videorecap.llm.backend` backend."""

    def chat_many(
        self, requests: Sequence[list[dict[str, str]]], *, max_tokens: int, temperature: float
    ) -> list[str]: ...


def default_prompt() -> Prompt:
    return Prompt("default:ask", DEFAULT_PROMPT_TEXT)


def load_prompt(path: str | Path | None) -> Prompt:
    """The prompt: the default, or the user's file (the `videorecap.llm.prompts` format), which must use {context}
    and {question} and no field other than PROMPT_FIELDS."""
    if path is None:
        return default_prompt()
    from videorecap.llm.prompts import load_prompt as load_prompt_file

    return load_prompt_file(path, fields=PROMPT_FIELDS, needs=(("context",), ("question",)))


def render_prompt(prompt: Prompt, p: Prepared) -> list[dict[str, str]]:
    """The chat messages for one question."""
    options = "\n".join(f"{label(i)}. {c}" for i, c in enumerate(p.choices))
    return prompt.messages(
        context=p.context.text,
        question=p.question,
        options=options,
        instruction=CHOICE_INSTRUCTION if p.choices else OPEN_INSTRUCTION,
    )


class LLMAnswerer:
    """A chat backend answers; `parse_answer` reads its reply (see the module docstring)."""

    name = "llm"

    def __init__(
        self, backend: ChatBackend, opts: AskOptions, *, prompt: Prompt | None = None, describe: Any = None
    ) -> None:
        self.backend = backend
        self.opts = opts
        self.prompt = prompt or default_prompt()
        self.describe = describe  # JSON-able: which backend and model (results and the store's fingerprint)

    def identity(self) -> dict[str, Any]:
        return {
            "answerer": self.name,
            "backend": self.describe,
            "prompt": self.prompt.hash,
            "max_tokens": self.opts.max_tokens,
            "temperature": self.opts.temperature,
        }

    def answer_many(self, prepared: Sequence[Prepared]) -> list[Answer]:
        replies = self.backend.chat_many(
            [render_prompt(self.prompt, p) for p in prepared],
            max_tokens=self.opts.max_tokens,
            temperature=self.opts.temperature,
        )
        return [self._read(p, r) for p, r in zip(prepared, replies, strict=True)]

    def answer(self, p: Prepared) -> Answer:
        return self.answer_many([p])[0]

    def _read(self, p: Prepared, reply: str) -> Answer:
        pick = parse_answer(reply, p.choices) if p.choices else None
        if not p.context.moments:
            return _answer(p, pick, reply, [])
        query = p.question if pick is None else f"{p.question} {p.choices[pick]}"
        scores = p.moment_emb @ p.embed([query])[0]
        ev = [p.context.moments[i] for i in _top(scores, self.opts.evidence)]
        return _answer(p, pick, reply, ev)


def answerer_for(
    backend: ChatBackend | None, opts: AskOptions, prompt: Prompt | None = None
) -> RetrievalAnswerer | LLMAnswerer:
    """The answerer of `videorecap ask` and of the web app's ask box: the retrieval baseline without a language
    model (`backend` None), else the backend's replies read by `parse_answer`."""
    if backend is None:
        return RetrievalAnswerer(opts)
    return LLMAnswerer(backend, opts, prompt=prompt, describe={"backend": backend.name, "model": backend.model})


def web_ask(answerer: RetrievalAnswerer | LLMAnswerer, opts: AskOptions, embed: Embeddings) -> Any:
    """`ask(result, question) -> {"answer", "evidence", "answered_by"}` for the folder web app (`search.webapp`):
    an open question (no choices) about one video, answered from its captions like `videorecap ask`."""

    def ask(result: CaptionResult, question: str) -> dict[str, Any]:
        a = answerer.answer(prepare(result, question, (), opts, embed, source=result.video.id))
        return {
            "answer": a.reply,
            "evidence": [m.to_dict() for m in a.evidence],
            "answered_by": answerer.identity(),
        }

    return ask
