"""Picking the K feature vectors a segment- or video-level model sees (reference §6.2).

Segment and video levels read one CLS feature per 4-s window, `(N, C)`, and need exactly `K` of them:

- `uniform` (segments): K evenly spaced rows, `idx = arange(0, N, N / (K + 1)).astype(int)[1:]`, the original's rule.
  It skips row 0 and up-samples by repeating rows when N < K. No mask.
- `masking` (videos): when N > K the same rows; when N <= K all N rows followed by zero rows, with a mask that is
  true on the real rows.

**Fix of the original's off-by-one.** With floating-point steps `arange` can return one step too many; e.g. N=333,
K=80 gives 333/81 = 4.111..., and `arange` yields 82 values, so the original returned K+1 = 81 features, which breaks
batching. We keep the original's indices and cut them to the first K, so every index the original got right is
unchanged and the output always has exactly K rows.
"""

from __future__ import annotations

import numpy as np

from videorecap.levelio import Sampling as Sampling  # re-exported: the sampling names
from videorecap.levelio import check_sampling


def slice_features(feats: np.ndarray, start: float | None, end: float | None, clip_seconds: float = 4.0) -> np.ndarray:
    """The rows of a whole-video feature file covering `[start, end]` seconds: `feats[int(s/4) : int(e//4) + 1]`.

    Exactly the original's slice (row i covers `[4i, 4i+4)` s). A missing start means 0, a missing end the last row.
    The end row is inclusive, so a 180-s segment at 0 s gets 46 rows (0..45).
    """
    lo = int(start / clip_seconds) if start is not None else 0
    hi = int(end // clip_seconds) + 1 if end is not None else feats.shape[0]
    return feats[lo:hi]


def uniform_indices(n: int, k: int) -> np.ndarray:
    """The original's uniform row indices, cut to exactly k (see the module docstring)."""
    if n <= 0:
        raise ValueError("cannot sample from an empty feature array")
    if k <= 0:
        raise ValueError(f"number of features must be positive, not {k}")
    idx = np.arange(0, n, n / (k + 1)).astype(int)[1:]
    return idx[:k]


def sample_uniform(feats: np.ndarray, k: int) -> np.ndarray:
    """(N, C) -> (k, C): evenly spaced rows, repeating rows when N < k."""
    return feats[uniform_indices(feats.shape[0], k)]


def sample_masking(feats: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, C) -> ((k, C), (k,) bool): uniform rows when N > k, else all rows zero-padded to k, masked."""
    n = feats.shape[0]
    if k <= 0:
        raise ValueError(f"number of features must be positive, not {k}")
    mask = np.zeros(k, dtype=bool)
    if n > k:
        mask[:] = True
        return feats[uniform_indices(n, k)], mask
    mask[:n] = True
    out = np.zeros((k, *feats.shape[1:]), dtype=feats.dtype)
    out[:n] = feats
    return out, mask


def sample(feats: np.ndarray, k: int, kind: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Sample `k` rows with `kind` ("uniform" or "masking"); returns (features, mask or None)."""
    if check_sampling(kind) == "masking":
        return sample_masking(feats, k)
    return sample_uniform(feats, k), None
