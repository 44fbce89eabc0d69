"""ROUGE-L, two ways.

- `rouge_lsum`: summary-level ROUGE-L as `rougeLsum` of google-research `rouge_score` 0.1.2 computes it (the
  `original` protocol): texts are split into sentences at newlines, tokenised by `rouge_tokenize`, and scored by
  union-LCS with counts clipped so no token is matched twice; F1 of precision and recall. On one-line texts it is
  plain LCS-based ROUGE-L F1. With several references the best-F1 reference counts (`score_multi`).
- `rouge_l_coco`: the COCO caption toolkit's ROUGE-L (the `coco` protocol): tokens split on single spaces, LCS with
  each reference, the best precision and the best recall combined as F with beta = 1.2.

Pure Python, no Java, no `rouge_score` needed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from videorecap.metrics.normalize import rouge_sentences


@dataclass(frozen=True)
class RougeScore:
    precision: float
    recall: float
    fmeasure: float


_ZERO = RougeScore(0.0, 0.0, 0.0)


def lcs_table(a: Sequence[str], b: Sequence[str]) -> list[list[int]]:
    """`t[i][j]` = length of the longest common subsequence of `a[:i]` and `b[:j]`."""
    t = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        ai, row, prev = a[i - 1], t[i], t[i - 1]
        for j in range(1, len(b) + 1):
            row[j] = prev[j - 1] + 1 if ai == b[j - 1] else max(prev[j], row[j - 1])
    return t


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    return lcs_table(a, b)[-1][-1] if a and b else 0


def lcs_indices(ref: Sequence[str], cand: Sequence[str]) -> list[int]:
    """Indices into `ref` of one LCS of `ref` and `cand`.

    Which LCS (when several exist) decides the union in `rouge_lsum`; this walks back from the end, preferring to
    drop a `ref` token on ties, the same choice rouge_score makes.
    """
    t = lcs_table(ref, cand)
    i, j, out = len(ref), len(cand), []
    while i > 0 and j > 0:
        if ref[i - 1] == cand[j - 1]:
            out.append(i - 1)
            i -= 1
            j -= 1
        elif t[i][j - 1] > t[i - 1][j]:
            j -= 1
        else:
            i -= 1
    return out[::-1]


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def _summary_level_lcs(ref_sents: list[list[str]], cand_sents: list[list[str]]) -> RougeScore:
    m = sum(map(len, ref_sents))
    n = sum(map(len, cand_sents))
    if not ref_sents or not cand_sents or not m or not n:
        return _ZERO
    # A token is a hit at most as often as it occurs on both sides (no double counting across sentences).
    left_r = Counter(t for s in ref_sents for t in s)
    left_c = Counter(t for s in cand_sents for t in s)
    hits = 0
    for r in ref_sents:
        union = sorted(set().union(*(lcs_indices(r, c) for c in cand_sents)))
        for tok in (r[i] for i in union):
            if left_c[tok] > 0 and left_r[tok] > 0:
                hits += 1
                left_c[tok] -= 1
                left_r[tok] -= 1
    p, r = hits / n, hits / m
    return RougeScore(p, r, _f1(p, r))


def rouge_lsum(prediction: str, references: Sequence[str]) -> RougeScore:
    """rougeLsum of one prediction against its references (the reference with the best F1 counts)."""
    if not references:
        raise ValueError("rouge_lsum needs at least one reference")
    cand = rouge_sentences(prediction)
    best: RougeScore | None = None
    for ref in references:
        s = _summary_level_lcs(rouge_sentences(ref), cand)
        if best is None or s.fmeasure > best.fmeasure:  # first maximum wins, as np.argmax
            best = s
    assert best is not None
    return best


def rouge_l_coco(prediction: str, references: Sequence[str], beta: float = 1.2) -> float:
    """The COCO toolkit's ROUGE-L of one (already tokenised) prediction against its references."""
    if not references:
        raise ValueError("rouge_l_coco needs at least one reference")
    cand = prediction.split(" ")
    prec, rec = [], []
    for ref in references:
        toks = ref.split(" ")
        lcs = lcs_length(toks, cand)
        prec.append(lcs / len(cand))
        rec.append(lcs / len(toks))
    p, r = max(prec), max(rec)
    if p == 0 or r == 0:
        return 0.0
    return (1 + beta**2) * p * r / (r + beta**2 * p)
