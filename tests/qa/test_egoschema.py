"""The EgoSchema-format runner: reading the files, counting what could not be answered, resuming through the store."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest

from videorecap.errors import DataError, InputError, VideoRecapError
from videorecap.qa.answer import AskOptions, Embeddings, LLMAnswerer, RetrievalAnswerer, prepare
from videorecap.qa.egoschema import load_answers, load_questions, run_questions
from videorecap.synth import world as w
from videorecap.synth.questions import make_questions, truth_captions
from videorecap.text.embed import TextEmbedder


@pytest.fixture(scope="module")
def embed() -> Embeddings:
    return Embeddings(TextEmbedder.load())


@pytest.fixture
def world(tmp_path):
    """Three synthetic videos' ground-truth captions and their questions in EgoSchema's files."""
    caps = tmp_path / "captions"
    questions = []
    for k in range(3):
        s = w.make_script([11, k], 4.0, vid=f"vid{k}")
        truth_captions(s).save(caps / s.vid / "captions.json")
        questions += make_questions(s, seed=0)
    qfile = tmp_path / "questions.json"
    qfile.write_text(json.dumps([q.to_egoschema() for q in questions]))
    afile = tmp_path / "subset_answers.json"
    afile.write_text(json.dumps({q.q_uid: q.answer for q in questions}))
    return caps, qfile, afile, questions


class Scripted:
    """A chat backend that replies from a list (a stand-in for a server, to drive the runner's bookkeeping; the
    real server is tested in tests/commands/test_ask_cli.py) and can fail on a given call."""

    def __init__(self, replies: Sequence[str], fail_on_call: int | None = None) -> None:
        self.replies = list(replies)
        self.calls = 0
        self.asked = 0
        self.fail_on_call = fail_on_call

    def chat_many(self, conversations, *, max_tokens, temperature):
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise VideoRecapError("the server went away")
        out = self.replies[self.asked : self.asked + len(conversations)]
        self.asked += len(conversations)
        return out


def test_reading_egoschema_files(tmp_path, world):
    _, qfile, afile, questions = world
    qs = load_questions(qfile)
    assert [q.q_uid for q in qs] == [q.q_uid for q in questions] and qs[0].choices == questions[0].choices
    assert load_answers(afile, qs) == {q.q_uid: q.answer for q in questions}
    # EgoSchema's own shape: the clip is named by q_uid, the answer may be "option N", extra fields are ignored
    f = tmp_path / "q.json"
    f.write_text(json.dumps([{"q_uid": "abc", "google_drive_id": "x", "question": "Why?", "option 0": "a",
                               "option 1": "b", "option 2": "c", "answer": "option 2"}]))  # fmt: skip
    (q,) = load_questions(f)
    assert (q.video, q.choices, q.answer) == ("abc", ("a", "b", "c"), 2)
    for rows, say in (
        ({"not": "a list"}, "expected an object"),
        ([{"question": "x", "option 0": "a", "option 1": "b"}], "no q_uid"),
        ([{"q_uid": "a", "question": "x", "option 0": "a"}], "needs options"),
        ([{"q_uid": "a", "question": "x", "option 0": "a", "option 1": "b", "answer": 7}], "not an option number"),
        ([{"q_uid": "a", "question": "x", "option 0": "a", "option 1": "b", "video": "../up"}], "not a plain name"),
        ([], "holds no questions"),
        ({}, "holds no questions"),
    ):
        f.write_text(json.dumps(rows))
        with pytest.raises(DataError, match=say):
            load_questions(f)
    with pytest.raises(InputError, match="no such file"):
        load_questions(tmp_path / "missing.json")


def test_retrieval_runner_scores_and_resumes(tmp_path, world, embed):
    caps, qfile, afile, questions = world
    qs = load_questions(qfile)
    answers = load_answers(afile, qs)
    opts = AskOptions()
    out = tmp_path / "out"
    s = run_questions(qs, caps, out, RetrievalAnswerer(opts), opts, embed, answers=answers)
    assert (s.total, s.answered, s.unparseable, s.no_captions, s.resumed) == (len(qs), len(qs), 0, [], 0)
    result = json.loads((out / "results.json").read_text())
    assert result["accuracy"] == s.accuracy and result["correct"] == sum(r["correct"] for r in result["per_question"])
    for r in result["per_question"]:
        assert r["evidence"] and all({"start", "end", "text", "level"} <= set(e) for e in r["evidence"])
        assert r["truth"] == answers[r["q_uid"]]
    # again: every answer is read back, none recomputed, the same results
    again = run_questions(qs, caps, out, RetrievalAnswerer(opts), opts, embed, answers=answers)
    assert again.resumed == len(qs) and again.correct == s.correct
    assert json.loads((out / "results.json").read_text()) == result
    # captions that changed are answered again, the others not
    r0 = caps / questions[0].video / "captions.json"
    r0.write_text(r0.read_text().replace('"C ', '"C quickly '))
    third = run_questions(qs, caps, out, RetrievalAnswerer(opts), opts, embed, answers=answers)
    assert third.resumed == len(qs) - sum(q.video == questions[0].video for q in qs)


def test_missing_captions_and_unparseable_replies_are_counted_not_fatal(tmp_path, world, embed):
    caps, qfile, _, questions = world
    qs = load_questions(qfile)
    gone = questions[-1].video
    (caps / gone / "captions.json").unlink()
    n_left = sum(q.video != gone for q in qs)
    replies = ["B", "I cannot tell from the captions.", '{"answer": 3}'] * n_left
    opts = AskOptions()
    backend = Scripted(replies)
    s = run_questions(qs, caps, tmp_path / "o", LLMAnswerer(backend, opts), opts, embed, batch_size=4)
    assert [q for q, _ in s.no_captions] == [q.q_uid for q in qs if q.video == gone]
    assert s.answered + s.unparseable == n_left and s.unparseable == replies[:n_left].count(
        "I cannot tell from the captions."
    )
    rows = {r["q_uid"]: r for r in json.loads((tmp_path / "o" / "results.json").read_text())["per_question"]}
    first = rows[qs[0].q_uid]
    assert first["prediction"] == 1 and first["reply"] == "B" and first["status"] == "answered"
    assert rows[qs[1].q_uid]["status"] == "unparseable" and rows[qs[1].q_uid]["prediction"] is None
    assert rows[qs[-1].q_uid]["status"] == "no captions"
    assert "truth" not in first and s.accuracy is None  # no answers given: no accuracy


def test_a_backend_that_dies_mid_run_loses_nothing_already_answered(tmp_path, world, embed):
    caps, qfile, afile, _ = world
    qs = load_questions(qfile)
    opts = AskOptions()
    out = tmp_path / "o"
    dying = Scripted(["A"] * len(qs), fail_on_call=2)
    with pytest.raises(VideoRecapError, match="went away"):
        run_questions(qs, caps, out, LLMAnswerer(dying, opts), opts, embed, batch_size=4)
    assert not (out / "results.json").exists()  # no half-written results
    healthy = Scripted(["C"] * len(qs))
    s = run_questions(qs, caps, out, LLMAnswerer(healthy, opts), opts, embed, batch_size=4)
    assert s.resumed == 4 and healthy.asked == len(qs) - 4
    preds = json.loads((out / "results.json").read_text())["predictions"]
    assert list(preds.values()) == [0] * 4 + [2] * (len(qs) - 4)  # the first batch's "A", then "C"


def test_the_llm_prompt_holds_the_fitted_context_and_labelled_choices(world, embed):
    caps, _, _, questions = world
    from videorecap.qa.answer import render_prompt
    from videorecap.results import CaptionResult

    q = questions[0]
    r = CaptionResult.load(caps / q.video / "captions.json")
    p = prepare(r, q.question, q.choices, AskOptions(context="summary", budget_chars=2000), embed)
    from videorecap.llm.prompts import Prompt

    messages = render_prompt(Prompt("t", "{context}\nQ: {question}\n{options}\n{instruction}"), p)
    assert [m["role"] for m in messages] == ["user"]
    user = messages[0]["content"]
    assert user.startswith("Video summary:\n[0:00-4:00] C ") and "Clip captions" not in user
    assert f"\nA. {q.choices[0]}\n" in user and f"E. {q.choices[4]}" in user
    assert "letter of the correct option" in user


def test_embeddings_from_a_loader_load_at_the_first_use_and_once():
    from videorecap.text.embed import shared_embedder

    calls = []

    def loader():
        calls.append(1)
        return shared_embedder()

    e = Embeddings(loader)
    assert calls == []  # a server comes up without loading the model
    a = e(["C cuts a tomato", "C waters the plants"])
    assert a.shape == (2, e.embedder.dim) and e.name == shared_embedder().name and calls == [1]
    assert (e(["C cuts a tomato"]) == a[:1]).all() and calls == [1]
    assert shared_embedder() is shared_embedder()  # one model per process (search and the ask box)


def test_answerer_for_is_the_baseline_without_a_backend_and_the_llm_with_one():
    from videorecap.qa.answer import answerer_for

    opts = AskOptions()
    assert isinstance(answerer_for(None, opts), RetrievalAnswerer)
    backend = Scripted(["B"])
    backend.name, backend.model = "scripted", "m1"  # what a real backend names itself by
    a = answerer_for(backend, opts)
    assert isinstance(a, LLMAnswerer) and a.describe == {"backend": "scripted", "model": "m1"}
