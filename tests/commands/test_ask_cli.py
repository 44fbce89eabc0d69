"""`videorecap ask`: one question with its evidence, the EgoSchema runner's exit codes, and one-line usage errors.
(The language-model path against a real `videorecap serve` process: tests/llm/test_ask_served.py.)"""

from __future__ import annotations

import json
import re

import pytest

from videorecap import cli
from videorecap.synth import world as w
from videorecap.synth.questions import make_questions, truth_captions


@pytest.fixture
def captions(tmp_path):
    """Two synthetic videos' ground-truth captions (DIR/<vid>/captions.json) and their questions file."""
    caps = tmp_path / "caps"
    qs = []
    for k in range(2):
        s = w.make_script([5, k], 3.0, vid=f"v{k}")
        truth_captions(s).save(caps / s.vid / "captions.json")
        qs += make_questions(s)
    qfile = tmp_path / "questions.json"
    qfile.write_text(json.dumps([q.to_egoschema() for q in qs]))
    (tmp_path / "subset_answers.json").write_text(json.dumps({q.q_uid: q.answer for q in qs}))
    return caps, qfile, qs


def _code(argv) -> int:
    try:
        return cli.main([str(a) for a in argv])
    except SystemExit as e:
        return int(e.code)


def test_one_question_prints_the_answer_and_timestamped_evidence(captions, capsys):
    caps, _, qs = captions
    q = next(q for q in qs if q.kind == "objects")
    argv = ["ask", caps / q.video / "captions.json", q.question, "--choices", *q.choices, "--evidence", "2"]
    assert _code(argv) == 0
    out = capsys.readouterr().out
    assert "answered by: retrieval baseline (no LLM)" in out
    answer = re.search(r"^answer: ([A-E])\. (.+)$", out, re.M)
    assert answer and answer.group(2) == q.choices[ord(answer.group(1)) - ord("A")]
    evidence = re.findall(r"^  \[(\d+:\d\d)-(\d+:\d\d)\] (.+)  \((clip|segment|video)\)$", out, re.M)
    assert len(evidence) == 2
    # an open question: the moments closest to it
    assert _code(["ask", caps / q.video / "captions.json", "When did C use the cutting board?"]) == 0
    assert "evidence:" in capsys.readouterr().out


def test_the_context_option_and_budget_reach_the_answer(captions, capsys):
    caps, _, qs = captions
    q = qs[0]
    base = ["ask", caps / q.video / "captions.json", q.question, "--choices", *q.choices]
    assert _code([*base, "--context", "summary"]) == 0
    out = capsys.readouterr().out
    assert "context: summary" in out and "of 1 moments" in out and "(video)" in out and "(clip)" not in out
    assert _code([*base, "--context", "clips", "--context-chars", "300"]) == 0
    chars = int(re.search(r"context: clips, (\d+) characters", capsys.readouterr().out).group(1))
    assert chars <= 300


def test_the_answers_of_synth_questions_are_found_beside_them(captions, tmp_path, capsys):
    # `synth questions` writes questions_test.json and answers_test.json: no accuracy was printed without --answers
    caps, qfile, qs = captions
    qfile.rename(tmp_path / "questions_test.json")
    (tmp_path / "subset_answers.json").rename(tmp_path / "answers_test.json")
    argv = ["ask", "--questions", tmp_path / "questions_test.json", "--captions", caps, "-o", tmp_path / "res"]
    assert _code(argv) == 0
    text = capsys.readouterr().out
    assert f"answers: {tmp_path / 'answers_test.json'}" in text and "accuracy:" in text


def test_the_runner_writes_results_and_resumes(captions, tmp_path, capsys):
    caps, qfile, qs = captions
    out = tmp_path / "res"
    argv = ["ask", "--questions", qfile, "--captions", caps, "-o", out, "--context", "hierarchy"]
    assert _code(argv) == 0
    text = capsys.readouterr().out
    assert f"answers: {tmp_path / 'subset_answers.json'}" in text  # found beside the questions
    assert f"answered {len(qs)} of {len(qs)} questions" in text and "accuracy:" in text
    result = json.loads((out / "results.json").read_text())
    assert result["questions"] == len(qs) and result["with_truth"] == len(qs)
    assert _code(argv) == 0
    assert f"{len(qs)} read back from an earlier run" in capsys.readouterr().out
    # a video without captions: the others are answered, one error line each, exit 1
    (caps / "v1" / "captions.json").unlink()
    assert _code(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == sum(q.video == "v1" for q in qs) and all("v1" in e and "no captions" in e for e in err)
    # captions without a summary, asked with the summary context: those questions fail, one line each
    from videorecap.results import CaptionResult

    r = CaptionResult.load(caps / "v0" / "captions.json")
    r.summary, r.levels = None, ["clip", "segment"]
    r.save(caps / "v0" / "captions.json")
    assert _code([*argv[:-2], "--context", "summary", "--no-progress"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == len(qs) and sum("no video summary" in e for e in err) == sum(q.video == "v0" for q in qs)


def test_a_folder_another_job_holds_is_refused_or_waited_for(captions, tmp_path, capsys, hold_folder):
    caps, qfile, qs = captions
    out = tmp_path / "res"
    argv = ["ask", "--questions", qfile, "--captions", caps, "-o", out, "--no-progress"]
    hold_folder(out, 1.5)
    assert _code(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "another-job" in err[0] and "--wait" in err[0], err
    assert not (out / "results.json").exists()
    assert _code([*argv, "--wait"]) == 0  # waits for the holder, then answers
    assert f"answered {len(qs)} of {len(qs)} questions" in capsys.readouterr().out
    assert (out / "results.json").is_file()


@pytest.mark.parametrize(
    "extra, say",
    [
        (["--questions", "Q"], "--questions FILE and --captions DIR go together"),
        (["--questions", "Q", "--captions", "C"], "needs -o OUT"),
        (["--questions", "Q", "--captions", "C", "-o", "results.json"], "give a folder"),
        (["--questions", "Q", "--captions", "C", "-o", "o", "--choices", "a", "b"], "--choices is for one"),
        (["cap.json"], "give CAPTIONS.json and a QUESTION"),
        (["cap.json", "why?", "--questions", "Q"], "give either"),
        (["cap.json", "why?", "--choices", "only one"], "give 2 to 26 choices"),
        (["cap.json", "why?", "--wait"], "--wait is for --questions"),
        (["cap.json", "why?", "--choices", "a", "b", "a"], "--choices: 'a' given twice"),
        (["cap.json", "why?", "--prompt", "p.txt"], "--prompt needs --llm URL or --text-model DIR"),
        (["cap.json", "why?", "--llm", "http://127.0.0.1:9/v1", "--text-model", "m"], "exactly one of --llm"),
    ],
)
def test_usage_mistakes_are_one_line_exit_2(captions, tmp_path, capsys, monkeypatch, extra, say):
    caps, qfile, qs = captions
    monkeypatch.chdir(tmp_path)
    (tmp_path / "C").mkdir()
    (tmp_path / "Q").write_text(qfile.read_text())
    (tmp_path / "cap.json").write_text((caps / "v0" / "captions.json").read_text())
    assert _code(["ask", *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and say in err, err


def test_a_prompt_file_with_unknown_fields_is_refused_before_any_work(captions, tmp_path, capsys):
    caps, _, _ = captions
    p = tmp_path / "p.txt"
    p.write_text("[user]\n{context}\n{question}\n{answer_here}\n")
    argv = ["ask", caps / "v0" / "captions.json", "why?", "--llm", "http://127.0.0.1:9/v1", "--prompt", p]
    assert _code(argv) == 2
    assert "answer_here" in capsys.readouterr().err
