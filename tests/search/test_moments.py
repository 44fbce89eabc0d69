"""Ranking modes, reciprocal-rank fusion, and hits merged into moments."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _helpers import write_captions

from videorecap.errors import InputError
from videorecap.search.index import embeddings, load_corpus
from videorecap.search.moments import Searcher, fuse, ranks

KETTLE = "#C C puts the kettle on the stove"


def test_fuse_is_reciprocal_rank() -> None:
    # ranking A: doc 2 then doc 0; ranking B: doc 0 then doc 1
    a, b = np.array([0.5, 0.0, 0.9, 0.0]), np.array([0.8, 0.3, 0.0, 0.0])
    got = fuse([(np.array([2, 0]), a), (np.array([0, 1]), b)], n=4, k=60)
    assert got == pytest.approx([1 / 62 + 1 / 61, 1 / 62, 1 / 61, 0.0])
    # doc 0, second and first, beats doc 2, first in one ranking only
    assert np.argmax(got) == 0
    # equal scores share the best of their ranks: docs 1, 2, 3 tie for second
    tied = np.array([0.9, 0.5, 0.5, 0.5])
    assert fuse([(np.array([0, 1, 2, 3]), tied)], n=4, k=60) == pytest.approx([1 / 61, 1 / 62, 1 / 62, 1 / 62])


def test_ranks_best_first_ties_in_doc_order_and_masked() -> None:
    s = np.array([0.5, 2.0, 0.0, 2.0, 1.0])
    mask = np.array([True, True, True, True, False])
    assert ranks(s, mask, 10).tolist() == [1, 3, 0, 2]
    assert ranks(s, mask, 10, positive=True).tolist() == [1, 3, 0]
    assert ranks(s, mask, 2).tolist() == [1, 3]


@pytest.fixture
def kitchen(tmp_path: Path) -> Path:
    clips = [
        (0.0, 4.0, "#C C fills the kettle with water"),
        (4.0, 8.0, KETTLE),
        (8.0, 12.0, KETTLE),  # the same action over two windows: one moment
        (12.0, 16.0, "#C C turns on the stove"),
        (16.0, 20.0, KETTLE),  # not adjacent to 4-12: a moment of its own
        (40.0, 44.0, "#C C opens the fridge"),
    ]
    segs = [(0.0, 40.0, "C makes tea with the kettle on the stove"), (40.0, 80.0, "C puts away the groceries")]
    write_captions(tmp_path / "a" / "captions.json", "a", clips, segs)
    write_captions(tmp_path / "b" / "captions.json", "b", [(0.0, 4.0, "#C C waters the plant in the red pot")])
    return tmp_path


def test_adjacent_windows_that_say_the_same_merge_into_one_moment(kitchen: Path) -> None:
    s = Searcher(load_corpus(kitchen))
    top = s.search("kettle on the stove", k=3, mode="lexical", level="clip")
    assert [(m.video.id, m.start, m.end, m.level, len(m.hits)) for m in top[:2]] == [
        ("a", 4.0, 12.0, "clip", 2),
        ("a", 16.0, 20.0, "clip", 1),
    ]
    assert top[0].text == "C puts the kettle on the stove" and top[0].score == top[0].best.lexical
    # without merging, each window is its own result
    raw = s.search("kettle on the stove", k=3, mode="lexical", level="clip", merge=False)
    assert [(m.start, m.end) for m in raw] == [(4.0, 8.0), (8.0, 12.0), (16.0, 20.0)]


def test_a_window_inside_a_better_moment_is_folded_into_it(kitchen: Path) -> None:
    s = Searcher(load_corpus(kitchen))
    # "tea" is only in the segment description: the segment wins, the kettle clips inside it are its context
    top = s.search("tea kettle", k=5, mode="lexical")
    assert (top[0].level, top[0].start, top[0].end) == ("segment", 0.0, 40.0)
    assert all(not (m.video.id == "a" and m.end <= 40.0) for m in top[1:])
    assert ("clip", 4.0, 12.0, "C puts the kettle on the stove") in top[0].context
    # levels can be searched alone
    assert {m.level for m in s.search("kettle", k=10, mode="lexical", level="segment")} == {"segment"}


def test_lexical_finds_only_shared_words_and_bad_arguments_are_one_line(kitchen: Path) -> None:
    s = Searcher(load_corpus(kitchen))
    assert s.search("helicopter", mode="lexical") == []
    with pytest.raises(InputError, match="query is empty"):
        s.search("  ", mode="lexical")
    with pytest.raises(InputError, match="--mode"):
        s.search("kettle", mode="fuzzy")
    with pytest.raises(InputError, match="-k"):
        s.search("kettle", k=0, mode="lexical")


def test_semantic_and_hybrid_find_other_words_for_the_same_thing(kitchen: Path, embedder) -> None:
    corpus = load_corpus(kitchen)
    s = Searcher(corpus, embeddings(corpus, embedder), embedder)
    q = "someone hydrating a houseplant"  # no word of any caption: only meaning finds "C waters the plant"
    assert s.search(q, k=3, mode="lexical") == []
    assert s.search(q, k=1, mode="semantic")[0].video.id == "b"
    top = s.search(q, k=1, mode="hybrid")[0]
    assert top.video.id == "b" and top.best.semantic is not None and top.best.lexical == 0.0
    # hybrid: each hit's score is its min-max normalised BM25 and cosine, summed (over every doc searched)
    q = "kettle on the stove"
    hits = s.hits(q, "hybrid")
    all_lex = {h.doc: h.lexical for h in s.hits(q, "lexical")}  # docs without a query word score 0
    all_sem = {h.doc: h.semantic for h in s.hits(q, "semantic")}  # every doc
    assert len(all_sem) == len(corpus.docs)
    lex = [all_lex.get(i, 0.0) for i in range(len(corpus.docs))]
    lo_l, hi_l, lo_s, hi_s = min(lex), max(lex), min(all_sem.values()), max(all_sem.values())
    for h in hits[:5]:
        assert h.score == pytest.approx((lex[h.doc] - lo_l) / (hi_l - lo_l) + (all_sem[h.doc] - lo_s) / (hi_s - lo_s))
    # the reciprocal-rank alternative: the best hit's score is its two (shared-on-ties) reciprocal ranks summed
    rrf = s.hits(q, "hybrid", fusion="rrf")[0]
    lex_rank = 1 + sum(x > rrf.lexical for x in all_lex.values())  # rrf.lexical > 0: it is in the lexical ranking
    sem_rank = 1 + sum(x > rrf.semantic for x in all_sem.values())
    assert rrf.score == pytest.approx(1 / (60 + lex_rank) + 1 / (60 + sem_rank))


def test_a_bad_limit_or_fusion_is_refused_not_guessed(kitchen: Path) -> None:
    s = Searcher(load_corpus(kitchen))
    assert len(s.hits("kettle", mode="lexical", limit=None)) == len(s.hits("kettle", mode="lexical", limit=100))
    for limit in (-1, 0, 2.5):  # -1 dropped the last hit as a slice would
        with pytest.raises(InputError, match="limit must be a whole number of at least 1"):
            s.hits("kettle", mode="lexical", limit=limit)
    with pytest.raises(InputError, match="--fusion must be one of sum, rrf, not 'sun'"):  # ignored in lexical mode
        s.hits("kettle", mode="lexical", fusion="sun")
