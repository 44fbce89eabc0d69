"""The curriculum's generation steps resume from their store: per video, keyed by the model's weights."""

from __future__ import annotations

import logging

import pytest
import torch
from _helpers import open_gates
from traindata import corpus

from videorecap.config import RecapConfig
from videorecap.model.recap import VideoRecap
from videorecap.tokenizer import Tokenizer
from videorecap.train import pseudo

DURATIONS = {"train0": 24.0, "train1": 24.0, "train2": 24.0}  # 6 windows each: 2 batches of 4


@pytest.fixture
def clip_model():
    torch.manual_seed(0)
    tok = Tokenizer.train_word_level(corpus())
    cfg = RecapConfig.from_name("recap-tiny", level="clip")
    cfg.decoder.vocab_size = len(tok)  # every id the model can pick is a word of the tokenizer
    m = open_gates(VideoRecap(cfg).eval(), eos_shift=None)
    with torch.no_grad():
        m.decoder.wte.weight[:3] = 0.0  # pad, bos, eos: rarely picked, so the captions are not empty
    return m, tok


def test_clip_captions_resume_per_video_and_start_over_for_other_weights(
    clip_model, hcap_root, tmp_path, monkeypatch, caplog
):
    model, tok = clip_model

    def run(cache):
        return pseudo.generate_clip_captions(
            model, tok, DURATIONS, cache, clip_features=hcap_root / "clip_features", batch_size=4
        )

    full = run(tmp_path / "full")
    assert any(c[3] for caps in full.values() for c in caps)  # something was generated

    real = pseudo._caption
    calls = {"n": 0}

    def counting(*a, **kw):
        calls["n"] += 1
        if calls["n"] == limit:
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(pseudo, "_caption", counting)
    limit = 3  # killed in the second video
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "cache")
    limit, calls["n"] = 0, 0
    assert run(tmp_path / "cache") == full
    assert calls["n"] == 4  # the first video came from the store

    # a damaged entry is generated again, with a warning
    store_file = next((tmp_path / "cache").glob("train1.npz"))
    store_file.write_bytes(store_file.read_bytes()[:30])
    calls["n"] = 0
    with caplog.at_level(logging.WARNING):
        assert run(tmp_path / "cache") == full
    assert calls["n"] == 2 and "train1.npz: not a readable cache entry" in caplog.text

    # other weights (one number changed) never reuse the captions
    with torch.no_grad():
        model.decoder.wte.weight[5, 3] += 0.5
    calls["n"] = 0
    run(tmp_path / "cache")
    assert calls["n"] == 6
