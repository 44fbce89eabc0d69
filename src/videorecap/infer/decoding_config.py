"""`DecodeConfig`: how a level's logits become text (strategy, length, beam and sampling settings).

Kept apart from decode.py, which runs the loops, so that what only reads the settings (the command line's flags and
`--help`, fingerprints) does not import torch.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

from videorecap.runtime import SEED_MAX, is_seed


@dataclass
class DecodeConfig:
    """How to turn the decoder's logits into text.

    With `lengths="original"`, `max_new_tokens` is read as the original's `max_text_length` (BOS counted), so the
    released models' 77 / 120 give their 76 / 119 decoder steps.
    """

    strategy: Literal["greedy", "beam", "sample"] = "greedy"
    max_new_tokens: int | None = None  # None: the model's level I/O default (levelio.resolve_max_new_tokens)
    num_beams: int = 5  # beam search
    length_penalty: float = 1.0  # beam search: scores are divided by length ** length_penalty
    temperature: float = 1.0  # sampling
    top_k: int = 0  # sampling: keep the k most likely tokens (0 = all)
    top_p: float = 1.0  # sampling: nucleus, keep the smallest set with this much probability mass
    seed: int | None = None  # sampling: makes it reproducible
    use_cache: bool = True  # False = the original's recompute-everything loop (greedy only)
    lengths: Literal["full", "original"] = "full"  # "original": the released code's caption lengths (see above)

    def __post_init__(self) -> None:
        if self.strategy not in ("greedy", "beam", "sample"):
            raise ValueError(f"unknown decoding strategy {self.strategy!r}; use greedy, beam or sample")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be at least 1")
        if self.num_beams < 1:
            raise ValueError("num_beams must be at least 1")
        # NaN passes every `<=` test: finiteness is checked first, or a NaN would decode a whole video before
        # failing in the sampler or in the JSON of the results
        if not math.isfinite(self.temperature) or self.temperature <= 0:
            raise ValueError(f"temperature must be a finite positive number, not {self.temperature}")
        if not math.isfinite(self.length_penalty):
            raise ValueError(f"length_penalty must be a finite number, not {self.length_penalty}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], not {self.top_p}")
        if self.top_k < 0:
            raise ValueError("top_k must be >= 0")
        if self.seed is not None and not is_seed(self.seed):
            raise ValueError(f"seed must be an integer from 0 to {SEED_MAX}, not {self.seed!r}")
        if self.lengths not in ("full", "original"):
            raise ValueError(f"unknown lengths {self.lengths!r}; use full or original")
        if self.lengths == "original" and self.strategy == "beam":
            # the original parses --caption-num-beams but never uses it: every script decodes greedily
            raise ValueError(
                "lengths='original' has no beam search counterpart: the original code decodes greedily "
                "(or samples); use strategy='greedy'"
            )

    def to_dict(self) -> dict:
        """The settings as a dict; `lengths` only when it is not the default, so that the fingerprints and the
        `decoding` records written before it existed stay the same."""
        d = asdict(self)
        if d["lengths"] == "full":
            del d["lengths"]
        return d
