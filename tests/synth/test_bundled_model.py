"""The bundled recap-synth model: it loads, and reproduces the validation metrics recorded in metrics.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from videorecap.config import RecapConfig
from videorecap.pipeline import Captioner
from videorecap.synth.model import bundled_model_dir, heldout_pairs, score_pairs
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
    assert recorded["protocol"] == "original"
    h = recorded["heldout"]
    metrics = [m for m in ("cider", "rouge_l") if m in recorded["metrics"]["clip"]]
    assert metrics == ["cider", "rouge_l"]
    pairs = heldout_pairs(Captioner.load(BUNDLE), tmp_path, videos=h["videos"], minutes=h["minutes"], seed=h["seed"])
    ours = score_pairs(pairs, metrics)
    theirs = _independent_scores(pairs)
    for level, scores in recorded["metrics"].items():
        for m in metrics:
            assert ours[level][m] == pytest.approx(scores[m], abs=0.05), (level, m)
            # not only numbers the same code wrote: scorers outside videorecap agree on the same predictions
            assert theirs[level][m] == pytest.approx(scores[m], abs=0.05), (level, m, "independent")


def _independent_scores(pairs: dict[str, list[tuple[str, str]]]) -> dict[str, dict[str, float]]:
    """CIDEr-D by pycocoevalcap's own `Cider` class, ROUGE-L by Google's `rouge_score` (rougeLsum F1, what the
    original's eval.py reports), after the original protocol's only normalisation (strip, lower case), x100.

    pycocoevalcap's `Rouge` class is a different ROUGE-L (recall-weighted, beta 1.2); it is checked to be close
    to, not equal to, the recorded number.
    """
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
    from rouge_score import rouge_scorer

    lsum = rouge_scorer.RougeScorer(["rougeLsum"])
    out = {}
    for level, ps in pairs.items():
        preds = [p.strip().lower() for p, _ in ps]
        refs = [t.strip().lower() for _, t in ps]
        gts = {i: [r] for i, r in enumerate(refs)}
        res = {i: [p] for i, p in enumerate(preds)}
        cider, _ = Cider().compute_score(gts, res)
        rouge_l = sum(lsum.score(r, p)["rougeLsum"].fmeasure for p, r in zip(preds, refs, strict=True)) / len(ps)
        coco_rouge, _ = Rouge().compute_score(gts, res)
        assert abs(100 * coco_rouge - 100 * rouge_l) < 5.0, (level, coco_rouge, rouge_l)
        out[level] = {"cider": 100.0 * cider, "rouge_l": 100.0 * rouge_l}
    return out


def test_bundled_model_card_says_synthetic() -> None:
    from videorecap.checkpoint import read_card
    from videorecap.synth.model import SYNTH_CARD

    for level in ("clip", "segment", "video"):
        assert read_card(BUNDLE / level) == SYNTH_CARD
