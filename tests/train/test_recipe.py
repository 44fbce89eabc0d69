"""The one-command curriculum: recipes validate, every step runs and is skipped once complete."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from videorecap.checkpoint import read_config, recap_config
from videorecap.cli import main as cli_main
from videorecap.config import RecapConfig
from videorecap.data import hcap
from videorecap.errors import InputError
from videorecap.levelio import FeatureSampling
from videorecap.model.recap import VideoRecap
from videorecap.train.recipe import (
    Curriculum,
    init_from_state,
    load_recipe,
    recipe_from_dict,
    resample_queries,
    run_recipe,
)


def _final_config(stage_dir: Path) -> RecapConfig:
    """The model config a stage's final checkpoint stores."""
    folder = stage_dir / "final"
    return recap_config(read_config(folder), folder)


CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def tiny_recipe(root: Path, out: Path, **extra) -> dict:
    stage = {"epochs": 2, "batch_size": 2, "lr": 2e-3, "lr_end": 1e-4, "warmup_steps": 1}
    d = {
        "output_dir": str(out),
        "seed": 0,
        "tokenizer": "word-level",
        "model": {"preset": "recap-tiny"},
        "data": {
            "root": str(root),
            "annotations": "annotations",
            "features": "features",
            "clip_features": "clip_features",
        },
        "stages": [{"name": "clip", **stage}, {"name": "segment", **stage}, {"name": "video", **stage}],
        "validation": {"caption_samples": 0},
        "generate": {"batch_size": 4},
    }
    d.update(extra)
    return d


def test_every_recipe_in_configs_loads():
    files = sorted(CONFIGS.glob("*.yaml"))
    assert len(files) >= 3
    for f in files:
        r = load_recipe(f)
        assert r.stages and all(s.levels for s in r.stages)


def test_unknown_keys_are_named(tmp_path):
    d = tiny_recipe(tmp_path, tmp_path / "out")
    d["stages"][1]["lrr"] = 1.0
    with pytest.raises(InputError, match="stages\\[1\\].*unknown key 'lrr'"):
        recipe_from_dict(d)
    d = tiny_recipe(tmp_path, tmp_path / "out", colour="red")
    with pytest.raises(InputError, match="unknown key 'colour'"):
        recipe_from_dict(d)
    p = tmp_path / "r.yaml"
    p.write_text(yaml.safe_dump({**tiny_recipe(tmp_path, tmp_path / "o"), "data": {"root": ".", "vidoes": "v"}}))
    with pytest.raises(InputError, match="r.yaml: data: unknown key 'vidoes'"):
        load_recipe(p)


def test_yaml_numbers_are_read_as_numbers_or_named(tmp_path):
    """PyYAML reads `lr: 1e-3` (YAML 1.1: no dot) as the string '1e-3'; it used to fail deep in the optimizer."""
    d = tiny_recipe(tmp_path, tmp_path / "out")
    text = yaml.safe_dump(d).replace("lr: ", "lr: 1e-3 #", 1)
    p = tmp_path / "r.yaml"
    p.write_text(text)
    assert yaml.safe_load(text)["stages"][0]["lr"] == "1e-3"
    r = load_recipe(p)
    assert r.stages[0].lr == 0.001 and isinstance(r.stages[0].lr, float)
    for key, value, says in [
        ("lr", "fast", r"stages\[0\]: lr must be a number, got 'fast'"),
        ("lr", "nan", r"stages\[0\]: lr must be a finite number, got 'nan'"),
        ("batch_size", "8", r"stages\[0\]: batch_size must be a whole number, got '8'"),
        ("max_steps", 2.5, r"stages\[0\]: max_steps must be a whole number, got 2.5"),
        ("epochs", True, r"stages\[0\]: epochs must be a finite number, got True"),
    ]:
        bad = tiny_recipe(tmp_path, tmp_path / "out")
        bad["stages"][0][key] = value
        with pytest.raises(InputError, match=says):
            recipe_from_dict(bad)
    bad = tiny_recipe(tmp_path, tmp_path / "out", seed="zero")
    with pytest.raises(InputError, match="recipe: seed must be a whole number, got 'zero'"):
        recipe_from_dict(bad)
    bad = tiny_recipe(tmp_path, tmp_path / "out")
    bad["data"]["cache_frames"] = "yes please"
    with pytest.raises(InputError, match="data: cache_frames must be true or false"):
        recipe_from_dict(bad)


def test_settings_of_the_wrong_type_are_named(tmp_path, capsys):
    """`model: null` was `AttributeError: 'NoneType' object has no attribute 'items'` from `to_dict` (with --list
    too); strings, lists, mappings and nested settings are checked like the numbers, naming the key."""
    for change, says in [
        (lambda d: d.update(model=None), "recipe: model must be a mapping, got null"),
        (lambda d: d.update(generate=None), "recipe: generate must be a mapping, got null"),
        (lambda d: d.update(output_dir=5), "recipe: output_dir must be a string, got 5"),
        (lambda d: d["model"].update(overrides=None), "recipe: model: overrides must be a mapping, got null"),
        (lambda d: d["data"].update(root=["a"]), r"recipe: data: root must be a string, got \['a'\]"),
        (lambda d: d["stages"][0].update(levels="clip"), r"stages\[0\]: levels must be a list, got 'clip'"),
        (lambda d: d["stages"][0].update(levels=[1]), r"stages\[0\]: levels\[0\] must be a string, got 1"),
        (lambda d: d["stages"][0].update(betas=[0.9]), r"stages\[0\]: betas must be a list of 2 items"),
        (lambda d: d["stages"][0].update(mix={"clip": "2"}), r"stages\[0\]: mix: clip must be a whole number"),
        (
            lambda d: d["stages"][0].update(num_features=True),
            r"stages\[0\]: num_features must be a mapping, a whole number or null, got True",
        ),
        (lambda d: d["validation"].update(metrics="cider"), "validation: metrics must be a list, got 'cider'"),
    ]:
        bad = tiny_recipe(tmp_path, tmp_path / "out")
        change(bad)
        with pytest.raises(InputError, match=says):
            recipe_from_dict(bad)
    # what is right still loads, a YAML number string in a list included
    good = tiny_recipe(tmp_path, tmp_path / "out", validation=None)
    good["stages"][0].update(betas=[0.9, "1e-3"], num_features=3, mix={"clip": 2})
    recipe = recipe_from_dict(good)
    assert recipe.stages[0].betas == (0.9, 0.001) and recipe.validation is None
    # the command: one line, exit 2, with --list and without, and no run folder
    p = tmp_path / "r.yaml"
    p.write_text(yaml.safe_dump({**yaml.safe_load((CONFIGS / "recap-tiny.yaml").read_text()), "model": None}))
    for extra in (["--list"], []):
        assert cli_main(["train", str(p), "--data-root", str(tmp_path), "-o", str(tmp_path / "run"), *extra]) == 2
        err = capsys.readouterr().err
        assert err == "videorecap train: error: " + f"{p}: model must be a mapping, got null\n"
        assert not (tmp_path / "run").exists()


def test_a_recipe_that_is_not_text_is_one_line(tmp_path, capsys):
    """A video given as the recipe was a UnicodeDecodeError traceback."""
    p = tmp_path / "clip.mp4"
    p.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    with pytest.raises(InputError, match="clip.mp4: not a recipe: not UTF-8 text"):
        load_recipe(p)
    assert cli_main(["train", str(p), "-o", str(tmp_path / "run"), "--list"]) == 2
    err = capsys.readouterr().err
    assert err == f"videorecap train: error: {p}: not a recipe: not UTF-8 text\n"
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_the_recipes_device_gets_the_check_of_device(tmp_path, capsys):
    """`device: cuda` on a machine without CUDA was `AssertionError: Torch not compiled with CUDA enabled` from inside
    training, while `--device cuda` was one line: the recipe's device is checked when it loads, naming the file."""
    recipe = yaml.safe_load((CONFIGS / "recap-tiny.yaml").read_text())
    p = tmp_path / "r.yaml"
    for device, says in (("cuda", "device cuda: CUDA is not available"), ("banana", "device banana: not a device")):
        p.write_text(yaml.safe_dump({**recipe, "device": device}))
        with pytest.raises(InputError, match=f"r.yaml: {says}"):
            load_recipe(p)
        assert cli_main(["train", str(p), "-o", str(tmp_path / "run")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and says in err and "Traceback" not in err
        assert not (tmp_path / "run").exists()
    p.write_text(yaml.safe_dump({**recipe, "device": "cuda"}))
    assert load_recipe(p, device="cpu").device == "cpu"  # --device overrides it
    p.write_text(yaml.safe_dump({**recipe, "device": "CPU"}))
    assert load_recipe(p).device == "cpu"
    for seed in (-1, 2**32):  # numpy's default_rng refuses a negative seed part-way through
        with pytest.raises(InputError, match="seed must be an integer from 0 to 4294967295"):
            recipe_from_dict({**recipe, "seed": seed})


def test_query_resampling_uses_the_index_rule():
    q = torch.arange(256.0)[:, None].expand(256, 3)
    down = resample_queries(q, 32)
    assert down[:, 0].tolist() == [int(x) for x in __import__("numpy").arange(0, 256, 256 / 33)[1:]]
    up = resample_queries(down, 256)
    assert up.shape == (256, 3) and set(up[:, 0].tolist()) <= set(down[:, 0].tolist())
    # clip -> segment: everything shared is copied, the queries resampled, the text side new
    clip = VideoRecap(RecapConfig.from_name("recap-tiny", level="clip"))
    seg = VideoRecap(RecapConfig.from_name("recap-tiny", level="segment"))
    report = init_from_state(seg, clip.state_dict())
    assert report["resampled"] == ["video_queries 8->2"]
    assert any(k.startswith("text_aligner.") for k in report["new"]) and "text_queries" in report["new"]
    assert any(k.startswith("encoder.") for k in report["dropped"])
    assert torch.equal(seg.state_dict()["decoder.h.0.ln_1.weight"], clip.state_dict()["decoder.h.0.ln_1.weight"])
    # a longer position table at the next level (longer previous-level text): shared positions copied, rest fresh
    long_cfg = RecapConfig.from_name("recap-tiny", level="segment")
    long_cfg.decoder.n_positions = 200
    long = VideoRecap(long_cfg)
    fresh = long.state_dict()["decoder.wpe.weight"].clone()
    report = init_from_state(long, clip.state_dict())
    assert "decoder.wpe.weight 128->200 positions" in report["resampled"]
    wpe = long.state_dict()["decoder.wpe.weight"]
    assert torch.equal(wpe[:128], clip.state_dict()["decoder.wpe.weight"]) and torch.equal(wpe[128:], fresh[128:])


def test_curriculum_runs_end_to_end_and_resumes(hcap_root, tmp_path):
    out = tmp_path / "run"
    result = run_recipe(recipe_from_dict(tiny_recipe(hcap_root, out)))
    assert result == dict.fromkeys(["clip", "captions", "segment", "descriptions", "video"], "done")
    for stage in ("clip", "segment", "video"):
        assert (out / stage / "final" / "model.safetensors").is_file()
        assert (out / stage / "log.jsonl").is_file()
    # the segment copies carry generated captions, the user's files are untouched
    user = hcap.load_segments(hcap_root / "annotations" / "segments_train.pkl")
    gen = hcap.load_segments(out / "data" / "segments_train.pkl")
    assert len(gen) == len(user)
    for u, g in zip(user, gen, strict=True):
        assert [c[1:3] for c in g["captions_pred"]] == [c[1:3] for c in u["captions_pred"]]
        assert all(g["start_sec"] <= c[1] and c[2] <= g["end_sec"] for c in g["captions_pred"])
    assert user[0]["captions_pred"][0][3].startswith("#C C ")  # untouched
    vids = json.loads((out / "data" / "videos_val.json").read_text())
    segs_val = hcap.load_segments(out / "data" / "segments_val.pkl")
    assert [len(v["segment_descriptions_pred"]) for v in vids] == [
        sum(s["vid"] == v["vid"] for s in segs_val) for v in vids
    ]
    meta = json.loads((out / "segment" / "final" / "meta.json").read_text())
    assert meta["init"]["resampled"] == ["video_queries 8->2"] and meta["recipe"]["kind"] == "recap"
    meta = json.loads((out / "video" / "final" / "meta.json").read_text())
    assert meta["init"]["resampled"] == ["video_queries 2->8"]
    # a second run finds everything complete
    again = run_recipe(recipe_from_dict(tiny_recipe(hcap_root, out)))
    assert set(again.values()) == {"skipped"}


def test_cli_single_stage_and_list(hcap_root, tmp_path, capsys):
    out = tmp_path / "run"
    p = tmp_path / "tiny.yaml"
    d = tiny_recipe(hcap_root, out)
    d["stages"][1]["init_from"] = "scratch"
    d["stages"][1].update(modalities="text", max_tokens=9, max_text_tokens=20)
    p.write_text(yaml.safe_dump(d))
    assert cli_main(["train", str(p), "--stage", "segment", "--no-progress", "--max-steps", "2"]) == 0
    assert (out / "segment" / "final").is_dir() and not (out / "clip").exists()
    cfg = _final_config(out / "segment")
    assert cfg.io.modalities == "text"
    # the lengths the stage trained with are the ones the checkpoint captions with: its caption length for its
    # level (the others keep the preset's), and its text limit
    preset = RecapConfig.from_name("recap-tiny", level="segment")
    assert cfg.io.max_new_tokens == {**preset.io.max_new_tokens, "segment": 9}
    assert (cfg.tokens.max_text_tokens, preset.tokens.max_text_tokens) == (20, 64)
    assert cli_main(["train", str(p), "--list"]) == 0
    listing = capsys.readouterr().out
    assert "segment" in listing and "complete" in listing and "to do" in listing
    assert cli_main(["train", str(p), "--stage", "nope"]) == 2
    assert cli_main(["train", str(p), "--stage", "nope", "--list"]) == 2  # --list checks it too
    assert "--stage nope: no step of that name in this recipe" in capsys.readouterr().err
    assert json.loads((out / "recipe.json").read_text())["stages"][1]["max_tokens"] == 9  # written by the run
    # a mistake the stage's inputs show (a preset, the data) is one line, and leaves no run folder behind
    mistakes = [
        (lambda d: d["model"].update(preset="nope"), "'nope' is not a known model preset"),
        (lambda d: d["data"].update(root=str(tmp_path / "empty")), "clips_train.pkl: file not found"),
    ]
    for change, says in mistakes:
        d = tiny_recipe(hcap_root, tmp_path / "run2")
        change(d)
        p.write_text(yaml.safe_dump(d))
        (tmp_path / "empty").mkdir(exist_ok=True)
        capsys.readouterr()
        assert cli_main(["train", str(p), "--no-progress", "--max-steps", "1"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and says in err[0], err
        assert not (tmp_path / "run2").exists()


def test_recap_u_alternate_batching_runs_its_curriculum(hcap_root, tmp_path):
    out = tmp_path / "u"
    stage = {"epochs": 1, "batch_size": 2, "lr": 1e-3, "lr_end": 1e-4, "warmup_steps": 1}
    d = tiny_recipe(hcap_root, out, kind="unified")
    d["stages"] = [
        {"name": "clip", "levels": ["clip"], **stage},
        {"name": "clip+segment", "levels": ["clip", "segment"], "mix": {"segment": 2}, **stage},
        # ReCap-U reads a different number of features at each feature level
        {"name": "all", "levels": ["clip", "segment", "video"], "num_features": {"segment": 3, "video": 5}, **stage},
    ]
    result = run_recipe(recipe_from_dict(d))
    assert list(result) == ["clip", "captions", "clip+segment", "descriptions", "all"]
    cfg = _final_config(out / "all")
    assert cfg.level == "unified"
    # the checkpoint stores the stage's level I/O; the earlier stage kept the preset's
    assert (cfg.io.segment, cfg.io.video) == (FeatureSampling(3, "uniform"), FeatureSampling(5, "masking"))
    assert _final_config(out / "clip+segment").io.segment == RecapConfig.from_name("recap-tiny").io.segment
    logs = [json.loads(x) for x in (out / "clip+segment" / "log.jsonl").read_text().splitlines()]
    train = [r for r in logs if "lr" in r]
    assert all("train/clip/loss" in r and "train/segment/loss" in r for r in train)
    # iterations follow the first level's epoch: 18 train clips / batch 2
    assert len(train) == 18 // 2
    state = torch.load(out / "clip+segment" / "last" / "train_state.pt", weights_only=True)
    # the segment stream made 2 steps per iteration and kept its own (epoch, position) across its epochs: 6 segments
    # in batches of 2, cut to whole iterations of 2 steps = 2 batches per epoch
    seg = state["streams"][1]
    assert seg["epoch"] * 2 + seg["position"] == 2 * len(train)


def test_a_unified_recipe_sets_feature_counts_and_sampling_per_level(hcap_root, tmp_path):
    # recipe -> the stage's level I/O -> the datasets' sampling, without a model in between
    d = tiny_recipe(hcap_root, tmp_path / "u", kind="unified")
    d["stages"] = [
        {
            "name": "all",
            "levels": ["clip", "segment", "video"],
            "num_features": {"segment": 3, "video": 5},
            "sampling": {"video": "uniform"},
        }
    ]
    recipe = recipe_from_dict(d)
    cur = Curriculum(recipe)
    stage = recipe.stages[0]
    cfg = cur.base_config(stage)
    assert (cfg.io.segment, cfg.io.video) == (FeatureSampling(3, "uniform"), FeatureSampling(5, "uniform"))
    for level, k in (("segment", 3), ("video", 5)):
        data = cur.level_data(level, cfg, stage)
        item = data.train[0]
        assert item["video"].shape[0] == k and item.get("video_mask") is None  # uniform sampling: no mask
    # one value sets both feature levels; a wrong level or sampling name is the recipe's error, naming the stage
    d["stages"][0].update(num_features=7, sampling=None)
    cfg = Curriculum(recipe_from_dict(d)).base_config(recipe_from_dict(d).stages[0])
    assert (cfg.num_features("segment"), cfg.num_features("video")) == (7, 7)
    for bad, message in (
        ({"num_features": {"clip": 3}}, "unknown feature level"),
        ({"sampling": {"video": "mean"}}, "sampling must be 'uniform' or 'masking', not 'mean'"),
        ({"num_features": 0}, "num_features must be a whole number of at least 1"),
    ):
        d["stages"][0] = {"name": "all", "levels": ["clip", "segment", "video"], **bad}
        with pytest.raises(InputError, match=f"stage 'all'.*{message}"):
            recipe_from_dict(d)


def test_a_feature_file_of_the_wrong_width_or_empty_is_named(hcap_root, tmp_path):
    """Features of another width than the model's were `RuntimeError: mat1 and mat2 shapes cannot be multiplied`
    from the first forward pass, and an empty file numpy's `EOFError: No data left in file`."""
    import numpy as np

    from videorecap.errors import DataError

    recipe = recipe_from_dict(tiny_recipe(hcap_root, tmp_path / "run"))
    cur = Curriculum(recipe)
    stage = recipe.stages[1]  # segment
    cfg = cur.base_config(stage)
    assert cur.level_data("segment", cfg, stage).train[0]["video"].shape[-1] == cfg.encoder.width == 32
    f = hcap_root / "features" / "train0.npy"
    np.save(f, np.zeros((6, 7), np.float32))
    with pytest.raises(DataError, match="train0.npy: features of width 7, but the model reads 32-wide features"):
        cur.level_data("segment", cfg, stage).train[0]
    f.write_bytes(b"")
    with pytest.raises(DataError, match="train0.npy: not a readable .npy feature file \\(the file is empty\\)"):
        cur.level_data("segment", cfg, stage).train[0]
    # the clip level's all-token features too
    np.save(hcap_root / "clip_features" / "train0.tokens.npy", np.zeros((6, 2, 7), np.float32))
    with pytest.raises(DataError, match="train0.tokens.npy: features of width 7, but the model reads 32-wide"):
        cur.level_data("clip", cur.base_config(recipe.stages[0]), recipe.stages[0]).train[0]


def test_training_options_come_from_the_recipe_not_the_model_config(hcap_root, tmp_path):
    from videorecap.config import TrainOptions

    d = tiny_recipe(hcap_root, tmp_path / "r")
    recipe = recipe_from_dict(d)
    assert recipe.model.training() == TrainOptions()  # recap-tiny: what the original trains
    assert "train_decoder" not in recipe.to_dict()["model"]  # left to the preset: not written
    model, _ = Curriculum(recipe).build_model(0)
    assert not any(p.requires_grad for p in model.encoder.parameters())
    # the recipe's keys, and those older recipes put in model.overrides, set them; the model config has none
    d["model"] = {"preset": "recap-tiny", "train_encoder": True, "overrides": {"train_decoder": True}}
    recipe = recipe_from_dict(d)
    assert recipe.model.training() == TrainOptions(train_encoder=True, train_decoder=True)
    model, _ = Curriculum(recipe).build_model(0)
    assert all(p.requires_grad for p in model.encoder.parameters())
    assert all(p.requires_grad for p in model.decoder.parameters())
    assert "train_decoder" not in model.config.to_dict()["arch"] and "train_decoder" not in model.config.io.to_dict()
    # a preset trained from scratch trains everything unless the recipe says otherwise
    d["model"] = {"preset": "recap-synth", "train_aligner": False}
    assert recipe_from_dict(d).model.training() == TrainOptions(True, False, True)


def test_a_stage_from_a_checkpoint_with_other_words_is_refused_and_generation_uses_its_own_tokenizer(
    hcap_root, tmp_path
):
    import shutil

    from videorecap.errors import CheckpointError
    from videorecap.tokenizer import Tokenizer

    a, b = tmp_path / "a", tmp_path / "b"
    run_recipe(recipe_from_dict(tiny_recipe(hcap_root, a)), only="clip")
    run_recipe(recipe_from_dict(tiny_recipe(hcap_root, a)), only="captions")
    # run b starts with a's clip stage done, but with a tokenizer that numbers the same words differently
    shutil.copytree(a / "clip" / "final", b / "clip" / "final")
    words = list(Tokenizer.from_file(a / "tokenizer.json").backend.get_vocab())
    other = Tokenizer.train_word_level([" ".join(reversed(words)), *(["zebra"] * 50)], max_vocab=len(words) + 8)
    other.save(b / "tokenizer.json")
    assert other.backend.get_vocab() != Tokenizer.from_file(a / "tokenizer.json").backend.get_vocab()
    run_recipe(recipe_from_dict(tiny_recipe(hcap_root, b)), only="captions")
    # the captions are decoded with the clip checkpoint's own tokenizer: the same text as in run a
    caps_a = json.loads((a / "data" / "all_captions.json").read_text())
    assert json.loads((b / "data" / "all_captions.json").read_text()) == caps_a
    # and a stage that would start from it is refused, naming the fix
    with pytest.raises(CheckpointError, match="numbers the words differently"):
        run_recipe(recipe_from_dict(tiny_recipe(hcap_root, b)), only="segment")
