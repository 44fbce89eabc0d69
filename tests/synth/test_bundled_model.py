"""The bundled recap-synth model: it loads, and reproduces the validation metrics recorded in metrics.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from videorecap.config import RecapConfig
from videorecap.pipeline import Captioner
from videorecap.synth.model import bundled_model_dir, heldout_metrics
from videorecap.synth.world import make_script

BUNDLE = bundled_model_dir()


def _files() -> list[Path]:
    return [p for p in BUNDLE.rglob("*") if p.is_file()]


def test_bundle_is_complete_and_small() -> None:
    for level in ("clip", "segment", "video"):
        for f in ("config.json", "model.safetensors", "tokenizer.json", "meta.json"):
            assert (BUNDLE / level / f).is_file(), f"{level}/{f}"
    assert (BUNDLE / "RECIPE.yaml").is_file() and (BUNDLE / "metrics.json").is_file()
    assert sum(p.stat().st_size for p in _files()) <= 20 * 2**20


def test_bundled_model_loads_as_the_preset() -> None:
    cap = Captioner.load(BUNDLE)
    assert cap.levels == ("clip", "segment", "video")
    for level in cap.levels:
        model = cap.model(level)
        want = RecapConfig.from_name("recap-synth", level=level)
        assert model.config.to_dict() == want.to_dict()
        assert all(p.dtype.is_floating_point and p.dtype.itemsize == 4 for p in model.parameters())
        # the bundled tokenizer (trained by the recipe on the training captions) fits the model and writes every
        # text of the world without an unknown piece
        tok = cap.tokenizer(level)
        assert tok.vocab_size <= model.config.decoder.vocab_size
        script = make_script(4242, 4.0)
        texts = [t for *_, t in script.clip_rows()] + [r["segment_description"] for r in script.segment_rows()]
        for t in texts + [script.video_row()["video_summary"]]:
            assert tok.decode(tok.encode(t)) == tok.normalize(t)


def test_reproduces_recorded_metrics(tmp_path: Path) -> None:
    recorded = json.loads((BUNDLE / "metrics.json").read_text())
    h = recorded["heldout"]
    metrics = [m for m in ("cider", "rouge_l") if m in recorded["metrics"]["clip"]]
    got = heldout_metrics(
        Captioner.load(BUNDLE),
        tmp_path,
        videos=h["videos"],
        minutes=h["minutes"],
        seed=h["seed"],
        metrics=metrics,
    )
    for level, scores in recorded["metrics"].items():
        for m in metrics:
            assert got["model"][level][m] == pytest.approx(scores[m], abs=0.05), (level, m)


def test_bundled_model_card_says_synthetic() -> None:
    from videorecap.checkpoint import read_card
    from videorecap.synth.model import SYNTH_CARD

    for level in ("clip", "segment", "video"):
        assert read_card(BUNDLE / level) == SYNTH_CARD
