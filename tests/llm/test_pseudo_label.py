"""`videorecap pseudo-label`: the unlabelled part of a dataset gets pseudo segment descriptions / video summaries in
the released formats, from the own text model or a server; and a recipe mixes them into training."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from videorecap.cli import main
from videorecap.data import hcap
from videorecap.data.text import segment_text, video_text
from videorecap.llm import backend as llm_backend
from videorecap.llm.prompts import default_prompt
from videorecap.llm.textmodel import TextModel
from videorecap.train.recipe import Curriculum, recipe_from_dict


def partly_labelled(hcap_data: Path, tmp_path: Path, *, drop_clips: str | None = None) -> Path:
    """A copy of the annotations whose train segments and videos are labelled for train0 only."""
    ann = tmp_path / "ann"
    shutil.copytree(hcap_data / "annotations", ann)
    segs = hcap.load_segments(ann / "segments_train.pkl")
    hcap.save_segments(ann / "segments_train.pkl", [r for r in segs if r["vid"] == "train0"])
    vids = hcap.load_videos(ann / "videos_train.json")
    hcap.save_videos(ann / "videos_train.json", [r for r in vids if r["vid"] == "train0"])
    if drop_clips is not None:
        clips = hcap.load_clips(ann / "clips_train.pkl")
        hcap.save_clips(ann / "clips_train.pkl", [c for c in clips if c.vid != drop_clips])
    return ann


def test_own_text_model_labels_what_has_no_label(hcap_data, text_model_dir, tmp_path, capsys):
    ann = partly_labelled(hcap_data, tmp_path)
    out = tmp_path / "labels"
    argv = ["pseudo-label", str(ann), "--text-model", str(text_model_dir), "-o", str(out), "--no-progress"]
    assert main([*argv, "--level", "segment"]) == 0
    assert "4 pseudo-labelled segment rows" in capsys.readouterr().err
    rows = hcap.load_segments(out / "segments_train_pseudo.pkl")  # the released format, restricted unpickler
    assert [(r["vid"], r["start_sec"], r["end_sec"]) for r in rows] == [
        ("train1", 0.0, 12.0), ("train1", 12.0, 24.0), ("train2", 0.0, 12.0), ("train2", 12.0, 24.0)
    ]  # fmt: skip
    model = TextModel.load(text_model_dir)
    expected = model.summarize([segment_text(r["captions_pred"]) for r in rows], max_tokens=77)
    assert [r["segment_description"] for r in rows] == [e.strip() for e in expected]
    clips = {(c.vid, c.start): c.caption for c in hcap.load_clips(ann / "clips_train.pkl")}
    assert all(c[3] == clips[(c[0], c[1])] for r in rows for c in r["captions_pred"])  # the clip file's captions
    assert rows[0]["provenance"] == {
        "backend": "videorecap", "model": model.name, "prompt": default_prompt("summarize").hash,
        "prompt_file": "default:summarize",
    }  # fmt: skip

    assert main([*argv, "--level", "video"]) == 0
    videos = hcap.load_videos(out / "videos_train_pseudo.json")
    assert [v["vid"] for v in videos] == ["train1", "train2"]
    descs = [[r["segment_description"] for r in rows if r["vid"] == v] for v in ("train1", "train2")]
    assert [v["segment_descriptions_pred"] for v in videos] == descs  # the pseudo descriptions, in time order
    assert [v["video_summary"] for v in videos] == model.summarize([video_text(d) for d in descs], max_tokens=77)


def test_llm_timeout_and_retries_reach_the_client(hcap_data, fault_server, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(llm_backend, "DEFAULT_BACKOFF", 0.01)
    ann = partly_labelled(hcap_data, tmp_path)
    argv = ["pseudo-label", str(ann), "--level", "segment", "--no-progress", "--llm-concurrency", "1"]
    # every answer of this server comes after 3 s: a 1-s timeout with no retry fails each request once
    server, log = fault_server("slow", 100)
    assert main([*argv, "-o", str(tmp_path / "a"), "--llm", server.url, "--llm-timeout", "1", "--llm-retries",
                 "0"]) == 1  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no answer within 1 s" in err[0], err
    assert len(log.read_text().splitlines()) == 4  # the 4 requests, each tried once
    # the first request fails with a 500 twice: one retry is not enough for it, two are
    server, log = fault_server("500", 2)
    assert main([*argv, "-o", str(tmp_path / "b"), "--llm", server.url, "--llm-retries", "1"]) == 1
    assert "500" in capsys.readouterr().err
    server, log = fault_server("500", 2)
    assert main([*argv, "-o", str(tmp_path / "c"), "--llm", server.url, "--llm-retries", "2"]) == 0
    assert len(log.read_text().splitlines()) == 4 + 2
    for bad in (["--llm-timeout", "0"], ["--llm-retries", "-1"]):
        with pytest.raises(SystemExit):
            main([*argv, "-o", str(tmp_path / "d"), "--llm", server.url, *bad])
        assert "must be" in capsys.readouterr().err


def test_a_server_labels_with_the_general_prompt_and_resumes(hcap_data, fault_server, tmp_path, capsys, monkeypatch):
    # the CLI's client with millisecond waits between retries (test_backend tests the waits themselves)
    monkeypatch.setattr(llm_backend, "DEFAULT_BACKOFF", 0.01)
    ann = partly_labelled(hcap_data, tmp_path)
    out = tmp_path / "labels"
    server, log = fault_server("die", 2)  # answers two requests, then dies
    argv = ["pseudo-label", str(ann), "--level", "segment", "-o", str(out), "--no-progress"]
    assert main([*argv, "--llm", server.url, "--llm-concurrency", "1"]) == 1  # one at a time: two are answered
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "requests to echo failed" in err[0] and "run the same command again" in err[0]
    assert not (out / "segments_train_pseudo.pkl").exists()  # no half-written output

    server, log = fault_server("ok")
    assert main([*argv, "--llm", server.url]) == 0
    assert len(log.read_text().splitlines()) == 2  # the two answered before the crash came from the cache
    rows = hcap.load_segments(out / "segments_train_pseudo.pkl")
    assert len(rows) == 4 and all(r["segment_description"].startswith("echo: Below are the captions") for r in rows)
    assert rows[0]["provenance"]["prompt"] == default_prompt("segment").hash  # not the own model: the general prompt
    assert rows[0]["provenance"]["backend"] == "openai" and rows[0]["provenance"]["url"] == server.url
    assert main([*argv, "--llm", server.url]) == 0  # a rerun asks nothing
    assert len(log.read_text().splitlines()) == 2

    prompt = tmp_path / "mine.txt"
    prompt.write_text("In {seconds:g} s: {text}")
    assert main([*argv, "--llm", server.url, "--prompt", str(prompt), "-o", str(tmp_path / "l2")]) == 0
    rows = hcap.load_segments(tmp_path / "l2" / "segments_train_pseudo.pkl")
    assert rows[0]["segment_description"] == "echo: In 12 s: " + segment_text(rows[0]["captions_pred"])


def test_a_folder_another_job_holds_is_refused_or_waited_for(hcap_data, fault_server, tmp_path, capsys, hold_folder):
    ann = partly_labelled(hcap_data, tmp_path)
    out = tmp_path / "labels"
    server, log = fault_server("ok")
    argv = ["pseudo-label", str(ann), "--level", "segment", "-o", str(out), "--no-progress", "--llm", server.url]
    hold_folder(out, 1.5)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "another-job" in err[0] and "--wait" in err[0], err
    assert not log.read_text()  # nothing was asked while another job held the folder
    assert main([*argv, "--wait"]) == 0  # waits for the holder, then labels
    assert len(hcap.load_segments(out / "segments_train_pseudo.pkl")) == 4


def test_a_wrong_data_folder_or_split_is_one_line_and_leaves_no_output_folder(hcap_data, tmp_path, capsys):
    ann = partly_labelled(hcap_data, tmp_path)
    (tmp_path / "empty").mkdir()
    (tmp_path / "file.txt").write_text("x")
    broken = tmp_path / "broken"
    shutil.copytree(ann, broken)
    (broken / "clips_train.pkl").write_bytes(b"")
    cases = [
        ([str(tmp_path / "empty")], "no train videos named"),
        ([str(tmp_path / "file.txt")], "no such folder"),
        ([str(ann), "--split", "foo"], "no foo videos named"),
        ([str(broken)], "clips_train.pkl"),
        ([str(ann), "--features", str(tmp_path / "file.txt")], "--features"),
    ]
    for args, message in cases:
        out = tmp_path / "labels"
        argv = ["pseudo-label", *args, "--level", "segment", "-o", str(out), "--llm", "http://127.0.0.1:9/v1"]
        assert main(argv) == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (args, err)
        assert not out.exists(), args


def test_unlabelled_clips_are_captioned_by_the_clip_model(hcap_data, text_model_dir, tmp_path, capsys):
    from _helpers import tiny_recap
    from traindata import corpus

    from videorecap.checkpoint import save_pretrained
    from videorecap.tokenizer import Tokenizer

    ann = partly_labelled(hcap_data, tmp_path, drop_clips="train2")
    base = ["pseudo-label", str(ann), "--level", "segment", "--text-model", str(text_model_dir), "--no-progress"]
    assert main([*base, "-o", str(tmp_path / "a")]) == 0  # train2 is named by no annotation file: not seen
    assert {r["vid"] for r in hcap.load_segments(tmp_path / "a" / "segments_train_pseudo.pkl")} == {"train1"}
    base += ["--features", str(hcap_data / "features")]  # its feature file names it
    assert main([*base, "-o", str(tmp_path / "a")]) == 2
    assert "--clip-model" in capsys.readouterr().err
    clip = tmp_path / "clip"
    model = tiny_recap("clip", encoder={"width": 32})  # make_hcap's clip features are 32 wide
    save_pretrained(model, clip, tokenizer=Tokenizer.train_word_level(corpus()))
    feats = hcap_data / "clip_features"
    assert main([*base, "-o", str(tmp_path / "b"), "--clip-model", str(clip), "--clip-features", str(feats)]) == 0
    rows = hcap.load_segments(tmp_path / "b" / "segments_train_pseudo.pkl")
    generated = [r for r in rows if r["vid"] == "train2"]
    assert len(generated) == 2 and all(r["provenance"]["clip_model"] == str(clip) for r in generated)
    assert [c[1] for c in generated[0]["captions_pred"]] == [0.0, 4.0, 8.0]  # every 4-s window of the segment
    assert "clip_model" not in [r for r in rows if r["vid"] == "train1"][0]["provenance"]
    # the video level captions no clips: the clip flags there are a mistake, said before any work
    capsys.readouterr()
    video = [*base[:3], "video", *base[4:], "-o", str(tmp_path / "c"), "--clip-model", str(clip)]
    assert main([*video, "--clip-features", str(feats)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--clip-model and --clip-features" in err[0] and "--level segment" in err[0]
    assert not (tmp_path / "c").exists()  # found before the output folder is made


def test_a_recipe_mixes_pseudo_labels_in_front(hcap_data, tmp_path):
    partly_labelled(hcap_data, tmp_path)  # tmp_path/ann: train0 labelled only
    labels = tmp_path / "labels"
    labels.mkdir()
    pseudo = [
        {"vid": "train1", "start_sec": 0.0, "end_sec": 12.0, "captions_pred": [["train1", 0.0, 4.0, "#C C cuts"]],
         "segment_description": "C pseudo", "provenance": {"backend": "x"}}
    ]  # fmt: skip
    hcap.save_segments(labels / "segments_train_pseudo.pkl", pseudo)
    stage = {"epochs": 1, "batch_size": 2}
    d = {
        "output_dir": str(tmp_path / "run"), "tokenizer": "word-level", "model": {"preset": "recap-tiny"},
        "data": {"root": str(tmp_path), "annotations": "ann", "features": str(hcap_data / "features"),
                 "pseudo_annotations": "labels"},
        "stages": [{"name": "segment", **stage}],
    }  # fmt: skip
    cur = Curriculum(recipe_from_dict(d))
    cfg = cur.base_config(cur.recipe.stages[0])
    data = cur.level_data("segment", cfg, cur.recipe.stages[0])
    assert [r["segment_description"] for r in data.train.rows][:1] == ["C pseudo"] and len(data.train) == 3
    assert len(data.val) == 4  # validation has no pseudo-labels
    assert "train_pseudo" in cur._load_rows("segment")  # the generation steps fill them like a split

    d["data"]["pseudo_ratio"] = 2.0  # two pseudo rows per labelled row: the one row, repeated
    cur = Curriculum(recipe_from_dict(d))
    rows = cur.level_data("segment", cfg, cur.recipe.stages[0]).train.rows
    assert [r["segment_description"] for r in rows].count("C pseudo") == 4 and len(rows) == 6

    d["stages"] = [{"name": "video", **stage}]
    cur = Curriculum(recipe_from_dict(d))
    with pytest.raises(Exception, match="videos_train_pseudo.json not found"):
        cur.level_data("video", cur.base_config(cur.recipe.stages[0]), cur.recipe.stages[0])
    json.dumps(d)  # the recipe stays plain data
