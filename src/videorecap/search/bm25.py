"""Okapi BM25 over short caption texts, and the tokenizer that both it and the page's search box use.

Written here rather than taken from a package: it is thirty lines, the index needs no state beyond the token lists,
and index.html repeats the same tokenizer and formula in JavaScript (export.py), which the tests compare.

Tokens are runs of letters and digits, lower-cased, with a plural-style trailing "s" dropped from words longer than
three letters ("puts" -> "put", "eggs" -> "egg", "glass" stays): caption text says "C puts the cup", a user types
"put the cup". Nothing else is stemmed and no word is a stop word: a word in every caption ("c", "the") gets an
inverse document frequency near zero and so weighs nothing by itself.

Score of a document d for a query q (unique terms t), with Lucene's always-positive idf:

    idf(t)   = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))
    score(d) = sum_t idf(t) * tf(t, d) * (k1 + 1) / (tf(t, d) + k1 * (1 - b + b * |d| / avgdl))
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

_WORD = re.compile(r"[^\W_]+")  # letters and digits (Unicode), as JavaScript's /[\p{L}\p{N}]+/gu
K1 = 1.2
B = 0.75


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def tokenize(text: str) -> list[str]:
    """ "C puts the kettle on the stove." -> ["c", "put", "the", "kettle", "on", "the", "stove"]."""
    return [_stem(w) for w in _WORD.findall(text.lower())]


class BM25:
    """Scores of every document for a query, from an inverted index (term -> documents holding it, counts)."""

    def __init__(self, docs: Sequence[Sequence[str]], k1: float = K1, b: float = B) -> None:
        self.n = len(docs)
        self.k1 = k1
        lengths = np.array([len(d) for d in docs], dtype=np.float64)
        avgdl = float(lengths.mean()) if self.n and lengths.sum() > 0 else 1.0
        # the length part of the denominator, per document: k1 * (1 - b + b * |d| / avgdl)
        self._norm = k1 * (1.0 - b + b * lengths / avgdl)
        postings: dict[str, tuple[list[int], list[int]]] = {}
        for i, d in enumerate(docs):
            for term, tf in Counter(d).items():
                ids, tfs = postings.setdefault(term, ([], []))
                ids.append(i)
                tfs.append(tf)
        self._postings = {t: (np.array(ids), np.array(tfs, dtype=np.float64)) for t, (ids, tfs) in postings.items()}

    def idf(self, term: str) -> float:
        df = len(self._postings[term][0]) if term in self._postings else 0
        return math.log(1.0 + (self.n - df + 0.5) / (df + 0.5))

    def scores(self, query: Sequence[str]) -> np.ndarray:
        """(N,) float64: the BM25 score of every document for the query tokens (0 where no term occurs)."""
        out = np.zeros(self.n)
        for term in dict.fromkeys(query):  # unique terms, in query order
            if term not in self._postings:
                continue
            ids, tf = self._postings[term]
            out[ids] += self.idf(term) * tf * (self.k1 + 1.0) / (tf + self._norm[ids])
        return out
