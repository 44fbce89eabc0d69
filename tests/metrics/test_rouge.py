"""ROUGE-L: hand-computed values, and agreement with google-research rouge_score (test-only reference)."""

import random

import pytest
from rouge_score import rouge_scorer

from videorecap.metrics.normalize import rouge_tokenize
from videorecap.metrics.rouge import lcs_length, rouge_l_coco, rouge_lsum


def test_rouge_tokenize_matches_rouge_score_default_tokenizer():
    assert rouge_tokenize("#C C picks-up the Café!  2 eggs") == ["c", "c", "picks", "up", "the", "caf", "2", "eggs"]
    assert rouge_tokenize("  ...  ") == []


def test_lcs_length():
    assert lcs_length("a b c d".split(), "a c e".split()) == 2
    assert lcs_length([], ["a"]) == 0


def test_rouge_lsum_hand_computed_single_line():
    # LCS("the cat sat on the mat", "the cat lay on the mat") = "the cat on the mat": P = R = F = 5/6
    s = rouge_lsum("The cat sat on the mat.", ["the cat lay on the mat"])
    assert s.precision == pytest.approx(5 / 6) and s.recall == pytest.approx(5 / 6)
    assert s.fmeasure == pytest.approx(5 / 6)
    # LCS("a b c d", "a c e") = 2: P = 2/4, R = 2/3, F1 = 4/7
    s = rouge_lsum("a b c d", ["a c e"])
    assert (s.precision, s.recall, s.fmeasure) == pytest.approx((0.5, 2 / 3, 4 / 7))


def test_rouge_lsum_hand_computed_multi_line_union_lcs():
    # ref sentences [a b c], [d e]; candidate [a c], [d x e]. Union LCS: {a, c} and {d, e}: 4 hits of 5 and 5.
    s = rouge_lsum("a c\nd x e", ["a b c\nd e"])
    assert (s.precision, s.recall, s.fmeasure) == pytest.approx((0.8, 0.8, 0.8))
    # Double counting is prevented: one "a" in the candidate can only be a hit once.
    s = rouge_lsum("a", ["a\na"])
    assert (s.precision, s.recall) == pytest.approx((1.0, 0.5))


def test_rouge_lsum_extremes_and_multi_reference():
    assert rouge_lsum("C opens the door", ["c opens the door"]).fmeasure == 1.0
    assert rouge_lsum("", ["c opens the door"]).fmeasure == 0.0
    assert rouge_lsum("!!!", ["c opens the door"]).fmeasure == 0.0
    # The reference with the best F1 counts.
    assert rouge_lsum("c opens the door", ["x y z", "c opens a door"]).fmeasure == pytest.approx(0.75)


def test_rouge_l_coco_hand_computed():
    # P = 2/4, R = 2/3, beta = 1.2: (1 + 1.44) P R / (R + 1.44 P)
    p, r = 0.5, 2 / 3
    assert rouge_l_coco("a b c d", ["a c e"]) == pytest.approx(2.44 * p * r / (r + 1.44 * p))
    # best precision and best recall may come from different references
    assert rouge_l_coco("a b", ["a", "a b c d"]) == pytest.approx(2.44 * 1.0 * 1.0 / (1.0 + 1.44 * 1.0))
    assert rouge_l_coco("x", ["a b"]) == 0.0


def test_rouge_lsum_agrees_with_rouge_score_on_random_texts():
    rng = random.Random(0)
    words = ["the", "a", "man", "C", "#C", "cuts", "onion", "knife", "picks", "up", "it's", "café", "2", "x-y"]
    scorer = rouge_scorer.RougeScorer(["rougeLsum"], use_stemmer=False)

    def text() -> str:
        lines = [" ".join(rng.choice(words) for _ in range(rng.randint(0, 9))) for _ in range(rng.randint(1, 3))]
        return "\n".join(lines)

    for _ in range(300):
        pred, refs = text(), [text() for _ in range(rng.randint(1, 3))]
        ours = rouge_lsum(pred, refs)
        theirs = scorer.score_multi(refs, pred)["rougeLsum"]
        assert (ours.precision, ours.recall, ours.fmeasure) == pytest.approx(
            (theirs.precision, theirs.recall, theirs.fmeasure), abs=1e-12
        ), (pred, refs)
