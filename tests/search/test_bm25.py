"""BM25 and its tokenizer, against a case computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from videorecap.search.bm25 import BM25, tokenize


def test_tokenize_lowercases_splits_and_drops_a_plural_s() -> None:
    assert tokenize("#C C puts the Kettle, on the stove's glass!") == [
        "c", "c", "put", "the", "kettle", "on", "the", "stove", "s", "glass",
    ]  # fmt: skip
    assert tokenize("eggs bus was 42 dishes") == ["egg", "bus", "was", "42", "dishe"]
    assert tokenize("Café_au lait") == ["café", "au", "lait"]  # "_" separates, like JavaScript's \p{L}\p{N}
    assert tokenize("") == [] and tokenize(" .,;") == []


def test_scores_match_the_formula_computed_by_hand() -> None:
    # N = 3 docs, lengths 2, 1, 3: avgdl = 2; k1 = 1.2, b = 0.75
    bm = BM25([["kettle", "stove"], ["kettle"], ["cup", "cup", "table"]])
    # "kettle": df = 2, idf = ln(1 + (3 - 2 + 0.5) / (2 + 0.5)) = ln(1.6)
    # doc 0: tf 1, k1 * (1 - b + b * 2/2) = 1.2        -> 1 * 2.2 / (1 + 1.2)
    # doc 1: tf 1, k1 * (1 - b + b * 1/2) = 0.75       -> 1 * 2.2 / (1 + 0.75)
    s = bm.scores(["kettle"])
    assert s == pytest.approx([math.log(1.6) * 2.2 / 2.2, math.log(1.6) * 2.2 / 1.75, 0.0])
    assert s[1] > s[0]  # the shorter document, same count: more of it is about the kettle
    # "cup": df = 1, idf = ln(1 + 2.5 / 1.5); doc 2: tf 2, k1 * (0.25 + 0.75 * 3/2) = 1.65 -> 2 * 2.2 / (2 + 1.65)
    cup = math.log(1 + 2.5 / 1.5) * 4.4 / 3.65
    assert bm.scores(["cup"]) == pytest.approx([0.0, 0.0, cup])
    # a query is a set of terms: repeats count once; unknown words add nothing; scores add up over terms
    assert bm.scores(["cup", "kettle", "cup", "spoon"]) == pytest.approx(s + np.array([0.0, 0.0, cup]))
    assert bm.idf("spoon") == pytest.approx(math.log(1 + 3.5 / 0.5))


def test_empty_corpus_and_empty_docs() -> None:
    assert BM25([]).scores(["x"]).shape == (0,)
    assert BM25([[], []]).scores(["x"]).tolist() == [0.0, 0.0]
