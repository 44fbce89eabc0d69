"""Ranking the docs of a corpus for a query, and turning the best hits into moments.

Modes:

- `lexical`: BM25 over the words (search/bm25.py); needs nothing beyond the package;
- `semantic`: cosine similarity of sentence embeddings (text/embed.py, the `search` extra), which also finds
  "C places the kettle on the hob" for a caption that says "puts" and "stove";
- `hybrid` (default): both, fused by an equal-weight sum of min-max normalised scores (each score mapped onto
  [0, 1] over the docs of the searched levels): `score(d) = norm(bm25)(d) + norm(cosine)(d)`. The scales do not
  meet otherwise: BM25 is unbounded and grows with the query's length and the rarity of its words, cosine sits in
  a narrow model-specific band. The alternative, reciprocal-rank fusion (`fusion="rrf"`: `sum 1 / (RRF_K + rank)`,
  Cormack et al. 2009, equal scores sharing their best rank), throws the scores away and keeps their order; on our
  benchmark the normalised sum found as many moments or more in every query set (benchmarks/RESULTS.md, "Moment
  search"), as Bruch et al. (2023, "An analysis of fusion functions for hybrid retrieval") found on text
  retrieval. A doc with no query word gets its semantic share only.

Moments (`merge=True`): the clip windows of a video are 4 s, and an action often spans two of them, captioned
alike. So the `CANDIDATES` best hits are grouped per video and level, and a run of adjacent windows (one starts
where the other ends) that say the same thing (same tokens) becomes one moment spanning them, scored by its best
hit. Then temporal non-maximum suppression: a moment that lies mostly (half of the shorter one or more) inside a
better moment of the same video (a clip inside a matching segment, or that segment around a better clip) is
dropped, its text kept as the better moment's context.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from videorecap.errors import InputError, is_count
from videorecap.search.bm25 import tokenize
from videorecap.search.index import Corpus, Doc, Video

if TYPE_CHECKING:
    from videorecap.text.embed import TextEmbedder

MODES = ("hybrid", "lexical", "semantic")
LEVELS = ("all", "clip", "segment")
FUSIONS = ("sum", "rrf")
RRF_K = 60
DEPTH = 1000  # how deep each ranking goes into the fusion
CANDIDATES = 200  # at least this many best hits (and 20 per moment asked for) are merged into moments
_ADJACENT_S = 0.25  # windows this close (seconds) touch


@dataclass
class Hit:
    doc: int
    score: float  # the mode's score: BM25, cosine or fused
    lexical: float | None = None  # BM25 score (lexical and hybrid modes)
    semantic: float | None = None  # cosine similarity (semantic and hybrid modes)


@dataclass
class Moment:
    video: Video
    start: float
    end: float
    level: str
    score: float
    hits: list[Hit]  # the merged windows, in time order
    text: str  # the text of the merged windows (they say the same thing)
    context: list[tuple[str, float, float, str]] = field(default_factory=list)  # (level, start, end, text) dropped

    @property
    def best(self) -> Hit:
        return max(self.hits, key=lambda h: h.score)

    def to_dict(self) -> dict[str, Any]:
        b = self.best
        return {
            "video": self.video.id,
            "key": self.video.key,
            "captions": str(self.video.captions),
            "page": None if self.video.page is None else str(self.video.page),
            "start": self.start,
            "end": self.end,
            "level": self.level,
            "score": self.score,
            "lexical": b.lexical,
            "semantic": b.semantic,
            "text": self.text,
            "windows": len(self.hits),
            "context": [{"level": lv, "start": s, "end": e, "text": t} for lv, s, e, t in self.context],
        }


def ranks(scores: np.ndarray, mask: np.ndarray, depth: int, positive: bool = False) -> np.ndarray:
    """Doc indices of the `depth` best scores among `mask` (best first; ties in doc order); `positive` keeps only
    scores above 0 (a BM25 score of 0 means no query word occurs)."""
    ok = mask & (scores > 0) if positive else mask.copy()
    idx = np.flatnonzero(ok)
    if len(idx) > depth:
        idx = idx[np.argpartition(-scores[idx], depth - 1)[:depth]]
    return idx[np.lexsort((idx, -scores[idx]))]


def fuse(rankings: Sequence[tuple[np.ndarray, np.ndarray]], n: int, k: int = RRF_K) -> np.ndarray:
    """Reciprocal-rank fusion: (n,) scores, sum over the rankings of 1 / (k + rank), rank 1 the best; a doc absent
    from a ranking gets nothing from it.

    Each ranking is (doc indices best first, the scores it ranked by). Equal scores share the best of their ranks
    (competition ranking, "1224"): captions repeat ("C turns on the tap" in every video), and identical texts must
    not be told apart by where their files happen to sit in the folder.
    """
    out = np.zeros(n)
    for order, scores in rankings:
        s = -scores[order]  # ascending, as `order` is best first
        rank = np.searchsorted(s, s, side="left") + 1  # the first position of each score: ties share it
        out[order] += 1.0 / (k + rank)
    return out


def _minmax(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    if not mask.any():
        return np.zeros_like(x)
    lo, hi = float(x[mask].min()), float(x[mask].max())
    return np.where(mask, (x - lo) / (hi - lo) if hi > lo else 0.0, 0.0)


class Searcher:
    """Searches one corpus. `embeddings` (rows of `index.embeddings`) and `embedder` are needed by the semantic and
    hybrid modes only."""

    def __init__(self, corpus: Corpus, embeddings: np.ndarray | None = None, embedder: TextEmbedder | None = None):
        if embeddings is not None and len(embeddings) != len(corpus.docs):
            raise ValueError(f"{len(embeddings)} embedding rows for {len(corpus.docs)} docs")
        self.corpus, self.embeddings, self.embedder = corpus, embeddings, embedder
        self._level = np.array([d.level for d in corpus.docs])

    def hits(
        self, query: str, mode: str = "hybrid", level: str = "all", fusion: str = "sum", limit: int | None = None
    ) -> list[Hit]:
        """The docs with a score, best first, at most `limit` (for `lexical`, only docs sharing a word with the
        query)."""
        if mode not in MODES:
            raise InputError(f"--mode must be one of {', '.join(MODES)}, not {mode!r}")
        if level not in LEVELS:
            raise InputError(f"--level must be one of {', '.join(LEVELS)}, not {level!r}")
        if not query.strip():
            raise InputError("the query is empty; say what happens, e.g. 'C puts the kettle on the stove'")
        if fusion not in FUSIONS:
            raise InputError(f"--fusion must be one of {', '.join(FUSIONS)}, not {fusion!r}")
        if limit is not None and not is_count(limit):
            raise InputError(f"limit must be a whole number of at least 1 (or None: every hit), not {limit!r}")
        n = len(self.corpus.docs)
        top = n if limit is None else min(limit, n)
        mask = np.ones(n, bool) if level == "all" else self._level == level
        lex = sem = None
        if mode != "semantic":
            lex = self.corpus.bm25.scores(tokenize(query))
        if mode != "lexical":
            if self.embeddings is None or self.embedder is None:
                raise ValueError(f"mode {mode!r} needs the embeddings and the embedder")
            sem = self.embeddings @ self.embedder.embed([query])[0]
        if mode == "lexical":
            assert lex is not None
            order, score = ranks(lex, mask, top, positive=True), lex
        elif mode == "semantic":
            assert sem is not None
            order, score = ranks(sem, mask, top), sem
        else:
            assert lex is not None and sem is not None
            if fusion == "rrf":
                score = fuse([(ranks(lex, mask, DEPTH, positive=True), lex), (ranks(sem, mask, DEPTH), sem)], n)
            else:  # "sum" (checked above)
                score = _minmax(lex, mask) + _minmax(sem, mask)
            order = ranks(score, mask & (score > 0), top)

        def val(x: np.ndarray | None, i: int) -> float | None:
            return None if x is None else float(x[i])

        return [Hit(int(i), float(score[i]), val(lex, i), val(sem, i)) for i in order]

    def search(
        self,
        query: str,
        k: int = 10,
        mode: str = "hybrid",
        level: str = "all",
        *,
        merge: bool = True,
        fusion: str = "sum",
    ) -> list[Moment]:
        """The k best moments for `query`, best first (see the module docstring)."""
        if k < 1:
            raise InputError(f"-k must be at least 1, not {k}")
        hits = self.hits(query, mode, level, fusion, limit=max(CANDIDATES, 20 * k))
        if not merge:
            return [self._moment([h]) for h in hits[:k]]
        return _suppress(self._merge(hits), k)

    def _moment(self, hits: list[Hit]) -> Moment:
        docs = [self.corpus.docs[h.doc] for h in hits]
        d0 = docs[0]
        return Moment(
            self.corpus.videos[d0.video], d0.start, docs[-1].end, d0.level, max(h.score for h in hits), hits, d0.text
        )

    def _merge(self, hits: list[Hit]) -> list[Moment]:
        groups: dict[tuple[int, str], list[Hit]] = {}
        for h in hits:
            d = self.corpus.docs[h.doc]
            groups.setdefault((d.video, d.level), []).append(h)
        moments = []
        for group in groups.values():
            group.sort(key=lambda h: self.corpus.docs[h.doc].start)
            run = [group[0]]
            for h in group[1:]:
                if _continues(self.corpus.docs[run[-1].doc], self.corpus.docs[h.doc]):
                    run.append(h)
                else:
                    moments.append(self._moment(run))
                    run = [h]
            moments.append(self._moment(run))
        moments.sort(key=lambda m: (-m.score, m.best.doc))
        return moments


def _continues(a: Doc, b: Doc) -> bool:
    return b.start - a.end <= _ADJACENT_S and tokenize(a.text) == tokenize(b.text)


def _suppress(moments: list[Moment], k: int) -> list[Moment]:
    kept: list[Moment] = []
    for m in moments:
        inside = next((o for o in kept if o.video is m.video and _mostly_inside(m, o)), None)
        if inside is not None:
            inside.context.append((m.level, m.start, m.end, m.text))
            continue
        kept.append(m)
        if len(kept) == k:
            break
    return kept


def _mostly_inside(a: Moment, b: Moment) -> bool:
    inter = min(a.end, b.end) - max(a.start, b.start)
    shorter = min(a.end - a.start, b.end - b.start)
    return inter > 0 and inter >= 0.5 * max(shorter, 1e-9)
