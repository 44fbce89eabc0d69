"""EgoSchema's question files, and the resumable runner that answers them from a folder of captions.

EgoSchema's `questions.json` is a list of `{"q_uid", "question", "option 0", ..., "option 4"}` (plus fields we
ignore, such as google_drive_id); the answers are a separate `{q_uid: index}` file (`subset_answers.json` for its
public 500-question subset) or an `answer` field in each row. The clip of a question is named by its `q_uid`; a
row may name another video in `video` (the synthetic world asks several questions of one video), and its captions
are `<captions dir>/<video>/captions.json` (what `videorecap caption VIDEOS -o DIR` writes) or
`<captions dir>/<video>.json`.

`run_questions` answers every question through the one store (`videorecap.store`) in `<out>/.cache/answers`:
each answer is an entry as soon as its batch is back, so an interrupted run (Ctrl-C, a server that died) continues
where it stopped, and a question whose text or captions changed is answered again. It then writes `<out>/results.json`:
per question the prediction, the reply as it came, the evidence and, when answers are known, whether it was right;
overall the counts (answered, unparseable, no captions) and the accuracy.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from videorecap import fileio
from videorecap.errors import DataError, InputError
from videorecap.qa.answer import Answer, AskOptions, Embeddings, prepare
from videorecap.results import CaptionResult
from videorecap.store import Store

logger = logging.getLogger(__name__)

RESULTS_FORMAT = "videorecap.ask"
RESULTS_FILE = "results.json"


@dataclass(frozen=True)
class EgoQuestion:
    q_uid: str
    video: str
    question: str
    choices: tuple[str, ...]
    answer: int | None = None  # from the row's own `answer` field, when it has one
    kind: str | None = None  # the synthetic world's question kind (order, objects, ...), when given

    def digest(self) -> str:
        """A hash of what is asked: an answer stored for another text is not reused."""
        text = json.dumps([self.question, list(self.choices)], ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _read_json(path: Path, flag: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{flag} {path}: no such file") from None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise DataError(f"{flag} {path}: not a readable JSON file ({type(e).__name__}: {e})") from None


def _answer_index(value: Any, n: int, where: str) -> int:
    """An answer as EgoSchema writes it (an integer, or "3", or "option 3") -> its index."""
    text = str(value).strip().lower().removeprefix("option").strip()
    if isinstance(value, bool) or not text.isdigit() or not 0 <= int(text) < n:
        raise DataError(f"{where}: answer {value!r} is not an option number 0..{n - 1}")
    return int(text)


def load_questions(path: str | os.PathLike[str]) -> list[EgoQuestion]:
    """The questions of an EgoSchema-format file (see the module docstring); `DataError` names the bad row."""
    p = Path(path)
    rows = _read_json(p, "--questions")
    if isinstance(rows, dict):  # {q_uid: row}, as some reproductions keep them
        rows = [{"q_uid": k, **v} if isinstance(v, dict) else v for k, v in rows.items()]
    if not isinstance(rows, list):
        raise DataError(f"--questions {p}: expected a list of questions, found {type(rows).__name__}")
    out, seen = [], set()
    for k, row in enumerate(rows):
        where = f"--questions {p}: question {k}"
        if not isinstance(row, dict):
            raise DataError(f"{where}: expected an object, found {type(row).__name__}")
        q_uid, question = row.get("q_uid"), row.get("question")
        if not isinstance(q_uid, str) or not q_uid:
            raise DataError(f"{where}: no q_uid")
        if not isinstance(question, str) or not question.strip():
            raise DataError(f"{where} ({q_uid}): no question text")
        if q_uid in seen:
            raise DataError(f"{where}: q_uid {q_uid!r} appears twice")
        seen.add(q_uid)
        choices = []
        while f"option {len(choices)}" in row:
            c = row[f"option {len(choices)}"]
            if not isinstance(c, str) or not c.strip():
                raise DataError(f"{where} ({q_uid}): option {len(choices)} is not text")
            choices.append(c)
        if len(choices) < 2:
            raise DataError(f"{where} ({q_uid}): needs options 'option 0', 'option 1', ... (found {len(choices)})")
        answer = _answer_index(row["answer"], len(choices), f"{where} ({q_uid})") if "answer" in row else None
        video = row.get("video", q_uid)
        if not isinstance(video, str) or not video or "/" in video or "\\" in video or video in (".", ".."):
            raise DataError(f"{where} ({q_uid}): video {video!r} is not a plain name")
        kind = row.get("kind") if isinstance(row.get("kind"), str) else None
        out.append(EgoQuestion(q_uid, video, question, tuple(choices), answer, kind))
    if not out:  # an empty run would report "answered 0 of 0" and an accuracy of nothing
        raise DataError(f"--questions {p}: holds no questions")
    return out


def load_answers(path: str | os.PathLike[str], questions: Sequence[EgoQuestion]) -> dict[str, int]:
    """`{q_uid: index}` from an EgoSchema answers file (subset_answers.json); q_uids without a question are
    ignored (the subset file covers 500 of the 5,000 questions, and the other way round)."""
    p = Path(path)
    raw = _read_json(p, "--answers")
    if not isinstance(raw, dict):
        raise DataError(f"--answers {p}: expected an object {{q_uid: option number}}, found {type(raw).__name__}")
    n = {q.q_uid: len(q.choices) for q in questions}
    return {k: _answer_index(v, n[k], f"--answers {p}: {k}") for k, v in raw.items() if k in n}


def find_captions(captions_dir: Path, video: str) -> Path | None:
    for p in (captions_dir / video / "captions.json", captions_dir / f"{video}.json"):
        if p.is_file():
            return p
    return None


# ---- the runner ------------------------------------------------------------------------------------------------------
@dataclass
class RunSummary:
    total: int = 0
    answered: int = 0  # a choice was read out of the reply
    unparseable: int = 0  # a reply came, but it picked no choice
    # (q_uid, why): captions missing, unreadable, or without the level the context needs
    no_captions: list[tuple[str, str]] = field(default_factory=list)
    resumed: int = 0  # answers read back from the store
    with_truth: int = 0
    correct: int = 0

    @property
    def accuracy(self) -> float | None:
        """Right answers over the questions with a known answer (unanswered ones count as wrong, as EgoSchema's
        scorer does with a missing prediction)."""
        return self.correct / self.with_truth if self.with_truth else None


def run_questions(
    questions: Sequence[EgoQuestion],
    captions_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    answerer: Any,  # qa.answer.RetrievalAnswerer or LLMAnswerer
    opts: AskOptions,
    embed: Embeddings,
    *,
    answers: dict[str, int] | None = None,
    batch_size: int = 16,
    progress: bool = False,
) -> RunSummary:
    """Answer `questions` from the captions in `captions_dir`; write `<out_dir>/results.json` (module docstring)."""
    cap_dir, out = Path(captions_dir), Path(out_dir)
    truth = {q.q_uid: q.answer for q in questions if q.answer is not None}
    truth.update(answers or {})
    fingerprint = {
        "job": "ask",
        "answerer": answerer.identity(),
        "options": {
            "context": opts.context,
            "budget_chars": opts.budget_chars,
            "retrieve": opts.retrieve,
            "evidence": opts.evidence,
        },
        "embedder": embed.name,
    }
    store = Store.open(out / ".cache" / "answers", fingerprint)
    summary = RunSummary(total=len(questions))
    done, pending, loaded = _read_back(questions, cap_dir, store, summary)
    _answer_pending(pending, loaded, answerer, opts, embed, store, done, summary, batch_size, progress)
    rows = [_result_row(q, done.get(q.q_uid), truth, summary) for q in questions]
    result = {
        "format": RESULTS_FORMAT,
        "answerer": answerer.identity(),
        "context": opts.context,
        "budget_chars": opts.budget_chars,
        "embedder": embed.name,
        "questions": summary.total,
        "answered": summary.answered,
        "unparseable": summary.unparseable,
        "no_captions": len(summary.no_captions),
        "with_truth": summary.with_truth,
        "correct": summary.correct,
        "accuracy": summary.accuracy,
        "predictions": {q.q_uid: (done[q.q_uid].prediction if q.q_uid in done else None) for q in questions},
        "per_question": rows,
    }
    fileio.write_json(out / RESULTS_FILE, result)
    return summary


_Pending = list[tuple[EgoQuestion, str, Path]]  # a question, the digest of it and its captions, the captions file
_Loaded = dict[Path, tuple[str, CaptionResult]]  # a captions file -> (its content hash, its captions)


def _read_back(
    questions: Sequence[EgoQuestion], cap_dir: Path, store: Store, summary: RunSummary
) -> tuple[dict[str, Answer], _Pending, _Loaded]:
    """The answers stored for the same question and captions, the questions still to answer, the captions read."""
    done: dict[str, Answer] = {}
    pending: _Pending = []
    loaded: _Loaded = {}
    for q in questions:
        path = find_captions(cap_dir, q.video)
        if path is None:
            why = f"no captions for video {q.video} ({cap_dir / q.video / 'captions.json'} or {q.video}.json)"
            summary.no_captions.append((q.q_uid, why))
            continue
        try:
            if path not in loaded:
                raw = path.read_bytes()
                loaded[path] = (hashlib.sha256(raw).hexdigest()[:16], CaptionResult.load(path))
        except (InputError, OSError) as e:
            summary.no_captions.append((q.q_uid, str(e)))
            continue
        digest = f"{q.digest()}-{loaded[path][0]}"
        entry = store.get(q.q_uid)
        if entry is not None and entry.rows.get("digest") == digest:
            done[q.q_uid] = Answer.from_dict(entry.rows["answer"])
            summary.resumed += 1
        else:
            pending.append((q, digest, path))
    if summary.resumed:
        logger.info("%d answers read back from %s", summary.resumed, store.root)
    return done, pending, loaded


def _answer_pending(
    pending: _Pending,
    loaded: _Loaded,
    answerer: Any,
    opts: AskOptions,
    embed: Embeddings,
    store: Store,
    done: dict[str, Answer],
    summary: RunSummary,
    batch_size: int,
    progress: bool,
) -> None:
    """Answer the pending questions `batch_size` at a time, each answer stored as soon as it arrives."""
    bar = tqdm(total=len(pending), desc="ask", unit="question", disable=not progress or not pending)
    try:
        for s in range(0, len(pending), batch_size):
            batch, prepared = [], []
            for q, digest, path in pending[s : s + batch_size]:
                try:
                    prepared.append(prepare(loaded[path][1], q.question, q.choices, opts, embed, source=str(path)))
                except InputError as e:  # captions without the context's level (no summary for --context summary)
                    summary.no_captions.append((q.q_uid, str(e)))
                    continue
                batch.append((q, digest, path))
            answered = answerer.answer_many(prepared) if prepared else []
            for (q, digest, _), a in zip(batch, answered, strict=True):
                store.put(q.q_uid, rows={"digest": digest, "answer": a.to_dict()})
                done[q.q_uid] = a
            bar.update(len(pending[s : s + batch_size]))
    finally:
        bar.close()


def _result_row(q: EgoQuestion, a: Answer | None, truth: dict[str, int], summary: RunSummary) -> dict[str, Any]:
    """One question's row of results.json; counts it in `summary`."""
    row: dict[str, Any] = {"q_uid": q.q_uid, "video": q.video}
    if q.kind is not None:
        row["kind"] = q.kind
    if a is None:
        row.update({"prediction": None, "status": "no captions"})
    else:
        row.update(a.to_dict())
        row["status"] = "answered" if a.prediction is not None else "unparseable"
        summary.answered += a.prediction is not None
        summary.unparseable += a.prediction is None
    if q.q_uid in truth:
        row["truth"] = truth[q.q_uid]
        row["correct"] = a is not None and a.prediction == truth[q.q_uid]
        summary.with_truth += 1
        summary.correct += bool(row["correct"])
    return row
