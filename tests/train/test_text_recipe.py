"""`kind: text-summarizer`: the own text-only model trained by the curriculum runner, and its recipe checks."""

from __future__ import annotations

import json

import pytest

from videorecap.checkpoint import load_model
from videorecap.errors import InputError
from videorecap.train.recipe import Curriculum, recipe_from_dict, run_recipe


def text_recipe(root, out, **stage) -> dict:
    return {
        "kind": "text-summarizer",
        "output_dir": str(out),
        "tokenizer": "word-level",
        "model": {"preset": "recap-tiny", "train_decoder": True, "train_aligner": True},
        "data": {"root": str(root), "annotations": "annotations"},
        "stages": [{"name": "text", "batch_size": 4, "lr": 3e-3, "warmup_steps": 2, **stage}],
        "validation": {"caption_samples": 2},
    }


def test_text_summarizer_trains_a_text_only_model_on_both_kinds_of_pairs(hcap_root, tmp_path):
    recipe = recipe_from_dict(text_recipe(hcap_root, tmp_path / "run", max_steps=3))
    assert recipe.stages[0].levels == ["segment", "video"]  # the default: both kinds of pairs
    cur = Curriculum(recipe)
    assert [s.kind for s in cur.steps] == ["train"]  # no generation steps: text in, text out
    data = cur.level_data("video", cur.base_config(recipe.stages[0]), recipe.stages[0])
    levels = [s["meta"]["level"] for s in data.train]
    assert levels.count("segment") == 6 and levels.count("video") == 3  # make_hcap: 3 videos of 2 segments
    first = data.train[0]
    assert first["text"].startswith("Summarize: #C C ") and "video" not in first
    assert run_recipe(recipe) == {"text": "done"}
    model, tok = load_model(tmp_path / "run" / "text" / "final")
    assert model.config.modalities == "text" and model.config.level == "video" and tok is not None
    assert "Summarize:" in tok.decode(tok.encode("Summarize: C"))  # the prompt is in the word-level vocabulary
    log = [json.loads(line) for line in (tmp_path / "run" / "text" / "log.jsonl").read_text().splitlines()]
    assert any("val/video/cider" in r for r in log)  # validation captions ran on text-only batches

    only_video = recipe_from_dict(text_recipe(hcap_root, tmp_path / "run2", levels=["video"]))
    data = Curriculum(only_video).level_data("video", cur.base_config(only_video.stages[0]), only_video.stages[0])
    assert {s["meta"]["level"] for s in data.train} == {"video"}


def test_text_summarizer_recipe_mistakes_are_named(hcap_root, tmp_path):
    d = text_recipe(hcap_root, tmp_path)
    d["stages"] = [{"name": "a", "levels": ["clip"]}]
    with pytest.raises(InputError, match="one stage, whose levels are among segment and video"):
        recipe_from_dict(d)
    d["stages"] = [{"name": "a"}, {"name": "b"}]
    with pytest.raises(InputError, match="one stage"):
        recipe_from_dict(d)
