"""Synthetic EgoSchema-style questions: each answer checked against the script by an independent reading of it."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from videorecap import cli
from videorecap.errors import DataError
from videorecap.synth import world as w
from videorecap.synth.questions import (
    KINDS,
    base_verb,
    counted_action,
    dataset_scripts,
    make_questions,
    times,
    truth_captions,
    write_questions,
)

SCRIPTS = [w.make_script([7, k], 6.0, vid=f"v{k}") for k in range(25)]


def _past(name: str) -> str:
    return w.ACTIVITY_TYPES[name].phrase("past", [])


def _gerund(name: str) -> str:
    at = w.ACTIVITY_TYPES[name]
    return at.gerund.format(o=at.default)


def test_every_kind_is_asked_and_each_question_is_well_formed():
    seen = Counter()
    positions = Counter()
    for s in SCRIPTS:
        for q in make_questions(s, seed=3):
            seen[q.kind] += 1
            positions[q.answer] += 1
            assert len(q.choices) == 5 and len(set(q.choices)) == 5, q
            assert 0 <= q.answer < 5 and q.video == s.vid and q.q_uid == f"{s.vid}-{q.kind}"
            row = q.to_egoschema()
            assert [row[f"option {i}"] for i in range(5)] == list(q.choices)
    assert set(seen) == set(KINDS) and min(seen.values()) >= 20
    assert set(positions) == set(range(5))  # the right answer is not always in one place


def test_answers_agree_with_the_script():
    for s in SCRIPTS:
        acts = s.activities
        names = Counter(a.name for a in acts)
        for q in make_questions(s, seed=1):
            right = q.choices[q.answer]
            if q.kind == "order":
                done = [n for n in (a.name for a in acts) if n in right_order_names(right)]
                assert right == "C " + ", then ".join(_past(n) for n in done)
                for wrong in q.choices:
                    assert sorted(right_order_names(wrong)) == sorted(done)
            elif q.kind in ("after", "before"):
                asked = next(a for a in acts if _gerund(a.name) in q.question)
                assert names[asked.name] == 1  # asked by name: it happens once
                i = acts.index(asked)
                j = i + 1 if q.kind == "after" else i - 1
                assert right == f"C {_past(acts[j].name)}"
                assert all(c != right for k, c in enumerate(q.choices) if k != q.answer)
            elif q.kind == "objects":
                asked = next(a for a in acts if q.question.endswith(f"while {_gerund(a.name)}?"))
                i = acts.index(asked)
                named = {m for a in s.actions if a.activity == i for m in a.mentions}
                assert right.removeprefix("the ") in named
                assert not any(c.removeprefix("the ") in named for k, c in enumerate(q.choices) if k != q.answer)
            elif q.kind == "count":
                action = re.fullmatch(r"How many times did C (.+)\?", q.question).group(1)
                verb, _, rest = action.partition(" ")
                # an independent reading: the captions that say it, with "something" standing for any object
                rx = re.compile(
                    r"#C C " + re.escape(verb[:-1]) + r"\w* " + re.escape(rest).replace("something", r"(?:the |a )?.+")
                )
                n = sum(1 for a in s.actions if rx.fullmatch(a.caption))
                assert right == times(n), (q.question, n)


def right_order_names(choice: str) -> list[str]:
    parts = choice.removeprefix("C ").split(", then ")
    by_past = {_past(n): n for n in w.ACTIVITY_TYPES}
    return [by_past[p] for p in parts]


def test_questions_are_deterministic_in_the_seed():
    s = SCRIPTS[0]
    assert make_questions(s, seed=5) == make_questions(s, seed=5)
    assert any(make_questions(x, seed=5) != make_questions(x, seed=6) for x in SCRIPTS[:5])
    only = make_questions(s, seed=5, kinds=["count"])  # a kind's question does not depend on the others asked
    assert only == [q for q in make_questions(s, seed=5) if q.kind == "count"]
    with pytest.raises(ValueError, match="unknown question kind"):
        make_questions(s, kinds=["why"])


def test_verbs_and_counted_actions_read_as_english():
    table = {"carries": "carry", "washes": "wash", "closes": "close", "presses": "press", "fries": "fry",
             "does": "do", "has": "have", "ties": "tie", "squeezes": "squeeze", "mixes": "mix", "puts": "put",
             "empties": "empty", "switches": "switch", "lays": "lay"}  # fmt: skip
    assert {v: base_verb(v) for v in table} == table
    assert counted_action("tea.take_cup") == "take something from the rack"
    assert counted_action("cat.spoon") == "spoon something into something"
    assert counted_action("tea.stove_on") == "turn on the stove"
    assert times(1) == "once" and times(2) == "twice" and times(3) == "three times" and times(12) == "12 times"


def test_truth_captions_are_the_script():
    s = SCRIPTS[1]
    r = truth_captions(s)
    assert [c.text for c in r.clips] == [c.caption for c in s.clips]
    assert [c.text for c in r.segments] == [g.description for g in s.segments] and r.summary.text == s.summary
    assert r.levels == ["clip", "segment", "video"]


def test_synth_questions_command_writes_beside_the_data(tmp_path, capsys):
    data = tmp_path / "d"
    assert cli.main(["synth", "make", "-o", str(data), "--videos", "3", "--minutes", "1.5", "-q"]) == 0
    assert cli.main(["synth", "questions", str(data), "--splits", "test,val"]) == 0
    out = capsys.readouterr().out
    assert "test:" in out and "val:" in out and not (data / "questions_train.json").exists()
    rows = json.loads((data / "questions_test.json").read_text())
    answers = json.loads((data / "answers_test.json").read_text())
    assert rows and set(answers) == {r["q_uid"] for r in rows}
    script = dataset_scripts(data, "test")[0]
    assert rows == [q.to_egoschema() for q in make_questions(script)]
    assert answers == {q.q_uid: q.answer for q in make_questions(script)}
    # the same call writes the same bytes
    before = (data / "questions_test.json").read_bytes()
    write_questions(data, splits=["test"])
    assert (data / "questions_test.json").read_bytes() == before


def test_a_dataset_that_does_not_match_its_seed_is_refused(tmp_path, capsys):
    from videorecap.data import hcap

    data = tmp_path / "d"
    assert cli.main(["synth", "make", "-o", str(data), "--videos", "3", "--minutes", "1", "-q"]) == 0
    rows = hcap.load_clips(data / "clips_test.pkl")
    hcap.save_clips(data / "clips_test.pkl", [(r.vid, r.start, r.end, "#C C opens the fridge") for r in rows])
    with pytest.raises(DataError, match="differ from what world.json"):
        dataset_scripts(data, "test")
    assert cli.main(["synth", "questions", str(data), "--splits", "nope"]) == 2
    assert "no split 'nope'" in capsys.readouterr().err
    assert cli.main(["synth", "questions", str(tmp_path / "missing")]) == 2


def test_questions_of_a_dataset_across_homes(tmp_path):
    # `synth make --homes 1-3`: the scripts are drawn again with each video's home count (world.json's "homes")
    data = tmp_path / "d"
    assert cli.main(["synth", "make", "-o", str(data), "--videos", "6", "--splits", "train,test", "--minutes", "1.5",
                     "--homes", "1-3", "-q"]) == 0  # fmt: skip
    scripts = dataset_scripts(data, "train")
    assert [len(s.visits) for s in scripts] == [1, 2, 3, 1, 2]  # 6 videos: train 5, test 1
    write_questions(data, splits=["train"])
    assert json.loads((data / "questions_train.json").read_text())
