"""`config.check_config`: every model config is checked on construction, presets and overrides included."""

from __future__ import annotations

import pytest

from videorecap.config import LEVELS, RecapConfig, check_config, list_presets


@pytest.mark.parametrize("name", list_presets())
def test_every_preset_passes(name: str) -> None:
    levels = ["unified"] if name.startswith("recap-u") else [*LEVELS, "unified"]
    for level in levels:
        check_config(RecapConfig.from_name(name, level=level).arch)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"decoder": {"n_head": 3}}, r"decoder.n_head \(3\) must divide decoder.n_embd \(32\)"),
        ({"encoder": {"heads": 0}}, r"encoder.heads must be at least 1, got 0"),
        ({"video_aligner": {"width": "32"}}, r'video_aligner.width must be a whole number, got "32"'),
        ({"num_video_queries": 0}, r"num_video_queries must be at least 1, got 0"),
        ({"tokens": {"pad_token_id": -1}}, r"tokens.pad_token_id must be at least 0, got -1"),
    ],
)
def test_overrides_are_checked(overrides: dict, message: str) -> None:
    # a recipe's model overrides go through here: refused when built, not when a module divides by zero
    with pytest.raises(ValueError, match=message):
        RecapConfig.from_name("recap-tiny", **overrides)


def test_sections_a_level_does_not_build_need_only_the_right_types() -> None:
    # a segment model's encoder section only says how wide its features are (the converter guesses the heads); a
    # clip model builds no text aligner
    RecapConfig.from_name("recap-tiny", level="segment", encoder={"heads": 3})
    RecapConfig.from_name("recap-tiny", level="clip", text_aligner={"heads": 3, "context_width": 7})
    with pytest.raises(ValueError, match=r'encoder.heads must be a whole number, got "3"'):
        RecapConfig.from_name("recap-tiny", level="segment", encoder={"heads": "3"})
