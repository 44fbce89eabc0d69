"""`videorecap ask` with a language model: against a real `videorecap serve --text-model` process on loopback, and
the same model in-process (--text-model). The tiny text model is a summariser, so what is checked is the plumbing
(prompt out, reply back, parsed or counted as unparseable, evidence, cache and resume), not that it is right."""

from __future__ import annotations

import json
import re

from videorecap import cli
from videorecap.synth import world as w
from videorecap.synth.questions import make_questions, truth_captions


def _world(tmp_path):
    caps = tmp_path / "caps"
    qs = []
    for k in range(2):
        s = w.make_script([3, k], 2.0, vid=f"v{k}")
        truth_captions(s).save(caps / s.vid / "captions.json")
        qs += make_questions(s)
    qfile = tmp_path / "questions.json"
    qfile.write_text(json.dumps([{**q.to_egoschema(), "answer": q.answer} for q in qs]))
    return caps, qfile, qs


def test_ask_against_a_served_text_model(served_text_model, tmp_path, capsys):
    caps, qfile, qs = _world(tmp_path)
    url = served_text_model.url  # printed with its /v1
    q = qs[0]
    argv = ["ask", caps / q.video / "captions.json", q.question, "--choices", *q.choices, "--llm", url]
    argv += ["--context-chars", "1200"]
    assert cli.main([str(a) for a in argv]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^answered by: videorecap-text-[0-9a-f]{8} at http://127\.0\.0\.1:\d+/v1$", out, re.M), out
    assert re.search(r"^answer: ([A-E]\. .+|none of the choices could be read from the reply .+)$", out, re.M), out
    assert len(re.findall(r"^  \[\d+:\d\d-\d+:\d\d\] .+  \((clip|segment|video)\)$", out, re.M)) == 3

    out_dir = tmp_path / "res"
    run = ["ask", "--questions", qfile, "--captions", caps, "-o", out_dir, "--llm", url, "--context-chars", "1200"]
    assert cli.main([str(a) for a in run + ["--no-progress"]]) == 0
    result = json.loads((out_dir / "results.json").read_text())
    assert result["answered"] + result["unparseable"] == len(qs) == result["with_truth"]
    assert result["answerer"]["backend"]["model"].startswith("videorecap-text-")
    for row in result["per_question"]:
        assert row["reply"].strip() and row["context_chars"] <= 1200  # a real reply to each real prompt
        assert row["status"] == ("answered" if row["prediction"] is not None else "unparseable")
    # the server's replies are cached beside the results: the same run with the server gone (and its model named,
    # since nobody can be asked for it) asks nothing
    served_text_model.stop()
    run += ["--llm-model", result["answerer"]["backend"]["model"]]
    (out_dir / "results.json").unlink()
    import shutil

    shutil.rmtree(out_dir / ".cache" / "answers")  # the answers too: only the LLM's response cache is left
    assert cli.main([str(a) for a in run + ["--no-progress"]]) == 0
    assert json.loads((out_dir / "results.json").read_text())["predictions"] == result["predictions"]


def test_ask_with_the_text_model_in_process_gives_the_served_answers(text_model_dir, tmp_path, capsys):
    caps, _, qs = _world(tmp_path)
    q = qs[1]
    argv = ["ask", caps / q.video / "captions.json", q.question, "--choices", *q.choices]
    argv += ["--text-model", text_model_dir, "--context", "summary"]
    assert cli.main([str(a) for a in argv]) == 0
    out = capsys.readouterr().out
    assert f"in this process ({text_model_dir})" in out and "context: summary" in out
