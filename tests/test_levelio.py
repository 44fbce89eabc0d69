"""Level I/O: one check of `uniform|masking`, the decoding-length precedence, and the config split around it."""

from __future__ import annotations

import pytest

from videorecap.config import ArchConfig, RecapConfig, TrainOptions, preset_training
from videorecap.levelio import (
    FeatureSampling,
    LevelIO,
    check_sampling,
    max_tokens_overrides,
    resolve_max_new_tokens,
)


def test_sampling_is_checked_in_one_place_and_every_user_goes_through_it() -> None:
    from videorecap.data import feature_sampling
    from videorecap.data.datasets import SegmentDataset
    from videorecap.infer.hierarchy import Step
    from videorecap.train.loop import TrainArgs

    message = "sampling must be 'uniform' or 'masking', not 'mean'"
    assert check_sampling("masking") == "masking"
    for bad in (
        lambda: check_sampling("mean"),
        lambda: FeatureSampling(8, "mean"),  # type: ignore[arg-type]
        lambda: LevelIO(video={"num_features": 8, "sampling": "mean"}),  # type: ignore[arg-type]
        lambda: feature_sampling.sample(__import__("numpy").zeros((4, 2)), 2, "mean"),
        lambda: SegmentDataset([], feature_dir=".", num_features=4, sampling="mean"),
        lambda: Step(lambda xs: [], 4, "mean"),
        lambda: TrainArgs(name="s", levels=["segment"], sampling="mean"),
    ):
        with pytest.raises(ValueError, match=message):
            bad()


def test_feature_counts_are_whole_and_positive() -> None:
    for n in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="num_features must be a whole number of at least 1"):
            FeatureSampling(n, "uniform")  # type: ignore[arg-type]


def test_replace_features_sets_one_value_or_one_per_level() -> None:
    io = LevelIO()
    assert (io.segment, io.video) == (FeatureSampling(80, "uniform"), FeatureSampling(256, "masking"))  # official
    both = io.replace_features(num_features=40)
    assert (both.segment.num_features, both.video.num_features) == (40, 40)
    per = io.replace_features(num_features={"segment": 40, "video": 512}, sampling={"segment": "masking"})
    assert (per.segment, per.video) == (FeatureSampling(40, "masking"), FeatureSampling(512, "masking"))
    assert io.segment == FeatureSampling(80, "uniform")  # a copy: the original is unchanged
    with pytest.raises(ValueError, match="unknown feature level"):
        io.replace_features(num_features={"clip": 3})
    with pytest.raises(ValueError, match="reads pixels"):
        io.features("clip")


@pytest.mark.parametrize(
    ("overrides", "want"),
    [
        ((), {"clip": 12, "segment": 16, "video": 20}),  # nothing given: the level I/O defaults
        ((None, None), {"clip": 12, "segment": 16, "video": 20}),
        ((30,), {"clip": 30, "segment": 30, "video": 30}),  # one number: every level
        (({"video": 50},), {"clip": 12, "segment": 16, "video": 50}),  # a mapping: only its levels
        (({"video": 50}, 30), {"clip": 30, "segment": 30, "video": 50}),  # the more specific first wins
        ((30, {"video": 50}), {"clip": 30, "segment": 30, "video": 30}),
        (({"clip": 5}, {"clip": 7, "segment": 8}, 9), {"clip": 5, "segment": 8, "video": 9}),
    ],
)
def test_max_new_tokens_precedence(overrides: tuple, want: dict[str, int]) -> None:
    io = LevelIO(max_new_tokens={"clip": 12, "segment": 16, "video": 20})
    assert {lv: resolve_max_new_tokens(lv, io, *overrides) for lv in want} == want


def test_max_tokens_overrides_merge_without_defaults_and_check_values() -> None:
    assert max_tokens_overrides({"video": 100}, {"clip": 77, "segment": 77, "video": 120}) == {
        "clip": 77,
        "segment": 77,
        "video": 100,
    }
    assert max_tokens_overrides(None, None) == {}
    with pytest.raises(ValueError, match="at least 1"):
        max_tokens_overrides(0)
    # a zero for one level and a misspelt level were ignored silently (the default length was used)
    with pytest.raises(ValueError, match="max_new_tokens for clip must be a whole number of at least 1, not 0"):
        max_tokens_overrides({"clip": 0})
    with pytest.raises(ValueError, match="unknown level.* clips; use clip, segment, video"):
        max_tokens_overrides({"clips": 5})
    assert max_tokens_overrides({"clip": None, "video": 9}) == {"video": 9}  # None: says nothing


def test_every_caller_resolves_through_the_one_function(monkeypatch: pytest.MonkeyPatch) -> None:
    # generate_ids (DecodeConfig.max_new_tokens) and the collator (a recipe's max_tokens) give what the resolver says
    import torch
    from _helpers import tiny_recap

    from videorecap.data.collate import Collator
    from videorecap.infer import decode
    from videorecap.infer.decode import DecodeConfig, generate_ids

    model = tiny_recap("clip")
    video = torch.randn(1, 3, model.config.encoder.num_frames, 32, 32)
    seen: list[int] = []
    monkeypatch.setattr(decode, "generate", lambda *a, **k: seen.append(k["max_new_tokens"]) or [[]])
    generate_ids(model, "clip", video=video)
    generate_ids(model, "clip", video=video, decode=DecodeConfig(max_new_tokens=5))
    assert seen == [model.config.io.max_new_tokens["clip"], 5] == [12, 5]

    class Tok:
        bos_id, eos_id, pad_id = 1, 2, 0

    assert Collator.for_config(Tok(), model.config, "clip").max_caption_tokens == 12
    assert Collator.for_config(Tok(), model.config, "clip", max_tokens=7).max_caption_tokens == 7


def test_the_config_has_an_architecture_and_a_level_io_and_no_training_options() -> None:
    cfg = RecapConfig.from_name("recap-tiny", level="segment", segment_num_features=5, decoder={"dropout": 0.0})
    assert isinstance(cfg.arch, ArchConfig) and isinstance(cfg.io, LevelIO)
    assert cfg.num_features("segment") == 5 and cfg.sampling("video") == "masking" and cfg.decoder.dropout == 0.0
    assert set(cfg.to_dict()) == {"arch", "io"}
    assert RecapConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="train_decoder is a training option"):
        RecapConfig.from_name("recap-tiny", train_decoder=True)
    # the presets' training options live with the preset, not in the config
    assert preset_training("recap-base") == TrainOptions()
    assert preset_training("recap-synth") == TrainOptions(True, True, True)
    # ReCap-U: different counts per feature level
    u = RecapConfig.from_name("recap-u-base", io={"segment": {"num_features": 40}})
    assert (u.num_features("segment"), u.num_features("video"), u.sampling("segment")) == (40, 512, "uniform")
