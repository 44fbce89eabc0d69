"""Level I/O: what each hierarchy level reads and writes, beyond what the weights need.

A model's configuration has two parts (`config.RecapConfig`): the architecture (`config.ArchConfig`: sizes, query
counts, special tokens; what the weights need) and this, the level I/O:

- the segment and video levels read `num_features` CLS features of the 4-s windows, picked by `sampling`
  (`uniform` or `masking`, data/feature_sampling.py); the official scripts use 80 / 256, the released checkpoints
  40 / 512 (their `args.num_video_feat`);
- the window lengths: one clip caption per `clip_seconds`, one segment description per `segment_seconds`;
- the default decoding length of each level (`max_new_tokens`, the original's `max_gen_tokens`);
- the inputs of the segment and video levels (`modalities`, the paper's Table 4 ablation).

The defaults here are the official values, written once; presets state only what differs. Checkpoints store the
level I/O next to the architecture (checkpoint.py), and a recipe or a command-line option changes it without
rebuilding the model: `LevelIO.replace_features`, `resolve_max_new_tokens`.

Training options (which parts train) are neither: they are `config.TrainOptions`, held by the recipe.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

Sampling = Literal["uniform", "masking"]
SAMPLINGS: tuple[str, ...] = ("uniform", "masking")
Modalities = Literal["video+text", "video", "text"]
MODALITIES: tuple[str, ...] = ("video+text", "video", "text")
FEATURE_LEVELS: tuple[str, ...] = ("segment", "video")  # the levels that read CLS features
_LEVEL_NAMES: tuple[str, ...] = ("clip", "segment", "video")


def check_sampling(kind: object, what: str = "sampling") -> Sampling:
    """`kind` if it is a feature sampling name; the one check of `uniform|masking` (ValueError naming `what`)."""
    if kind not in SAMPLINGS:
        raise ValueError(f"{what} must be 'uniform' or 'masking', not {kind!r}")
    return kind  # type: ignore[return-value]


@dataclass(frozen=True)
class FeatureSampling:
    """How many CLS features a level reads (K) and how they are picked from a video's N rows."""

    num_features: int
    sampling: Sampling

    def __post_init__(self) -> None:
        if isinstance(self.num_features, bool) or not isinstance(self.num_features, int) or self.num_features < 1:
            raise ValueError(f"num_features must be a whole number of at least 1, not {self.num_features!r}")
        check_sampling(self.sampling)


@dataclass
class LevelIO:
    """What the levels read and write (see the module docstring). Defaults: the official values."""

    segment: FeatureSampling = field(default_factory=lambda: FeatureSampling(80, "uniform"))
    video: FeatureSampling = field(default_factory=lambda: FeatureSampling(256, "masking"))
    # window sizes the model was trained with (seconds): the caption pipeline defaults to these
    clip_seconds: float = 4.0
    segment_seconds: float = 180.0
    # default decoding length per level; a recipe or the command line overrides it (`resolve_max_new_tokens`)
    max_new_tokens: dict[str, int] = field(default_factory=lambda: {"clip": 77, "segment": 77, "video": 120})
    # inputs of the segment and video levels; the clip level always reads video
    modalities: Modalities = "video+text"

    def __post_init__(self) -> None:
        for name in FEATURE_LEVELS:  # from JSON/YAML: {"num_features": 80, "sampling": "uniform"}
            v = getattr(self, name)
            if isinstance(v, Mapping):
                unknown = set(v) - {"num_features", "sampling"}
                if unknown:
                    raise ValueError(f"unknown {name} feature field(s): {', '.join(sorted(unknown))}")
                setattr(self, name, FeatureSampling(**v))
            elif not isinstance(v, FeatureSampling):
                raise ValueError(f"{name} must be a FeatureSampling or a mapping, not {type(v).__name__}")
        for name in ("clip_seconds", "segment_seconds"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not (v > 0 and math.isfinite(v)):
                raise ValueError(f"{name} must be a positive number, not {v!r}")
        if not isinstance(self.max_new_tokens, Mapping):
            raise ValueError(f"max_new_tokens must be an object of {{level: tokens}}, not {self.max_new_tokens!r}")
        self.max_new_tokens = dict(self.max_new_tokens)
        for lv, n in self.max_new_tokens.items():
            if lv not in _LEVEL_NAMES:
                raise ValueError(f"max_new_tokens: unknown level {lv!r}; use clip, segment or video")
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise ValueError(f"max_new_tokens[{lv}] must be a whole number of at least 1, not {n!r}")
        if self.modalities not in MODALITIES:
            raise ValueError(f"modalities must be 'video+text', 'video' or 'text', not {self.modalities!r}")

    def features(self, level: str) -> FeatureSampling:
        """The feature count and sampling of a segment or video level."""
        if level not in FEATURE_LEVELS:
            raise ValueError(f"the {level} level reads pixels, not CLS features")
        return getattr(self, level)  # type: ignore[no-any-return]

    def replace_features(
        self, num_features: int | Mapping[str, int] | None = None, sampling: str | Mapping[str, str] | None = None
    ) -> LevelIO:
        """A copy with other feature counts / samplings: one value for both feature levels, or `{level: value}`."""
        counts = _per_level(num_features, "num_features")
        kinds = _per_level(sampling, "sampling")
        out = replace(self, max_new_tokens=dict(self.max_new_tokens))
        for lv in FEATURE_LEVELS:
            old = self.features(lv)
            setattr(out, lv, FeatureSampling(counts.get(lv, old.num_features), kinds.get(lv, old.sampling)))
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LevelIO:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown level I/O field(s): {', '.join(sorted(unknown))}")
        return cls(**d)


def _per_level(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        bad = set(value) - set(FEATURE_LEVELS)
        if bad:
            raise ValueError(f"{what}: unknown feature level(s) {', '.join(sorted(bad))}; use segment or video")
        return dict(value)
    return dict.fromkeys(FEATURE_LEVELS, value)


# ---- decoding length ------------------------------------------------------------------------------------------------
MaxTokens = int | Mapping[str, int] | None


def max_tokens_overrides(*overrides: MaxTokens, levels: tuple[str, ...] = _LEVEL_NAMES) -> dict[str, int]:
    """`{level: tokens}` of the levels some override names: the first override that names a level wins.

    Each override is None (says nothing), one number (every level), or `{level: tokens}` (those levels). Give them
    most specific first: an option given on the command line, then a settings bundle such as
    `evaluate --original-settings`, then the recipe's value.
    """
    out: dict[str, int] = {}
    for ov in reversed(overrides):  # the least specific first, so that a more specific one overwrites it
        if ov is None:
            continue
        if isinstance(ov, Mapping):
            unknown = sorted(set(map(str, ov)) - set(_LEVEL_NAMES))
            if unknown:  # a misspelt level would otherwise be ignored silently
                raise ValueError(f"max_new_tokens: unknown level(s) {', '.join(unknown)}; use clip, segment, video")
            per_level = {lv: n for lv, n in ov.items() if n is not None}  # None: this override says nothing
        else:
            per_level = dict.fromkeys(levels, ov)
        for lv, n in per_level.items():
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise ValueError(f"max_new_tokens for {lv} must be a whole number of at least 1, not {n!r}")
        out.update({lv: n for lv, n in per_level.items() if lv in levels})
    return out


def resolve_max_new_tokens(level: str, io: LevelIO, *overrides: MaxTokens) -> int:
    """The decoding length of `level`: the first override that names it (command line or recipe, see
    `max_tokens_overrides`), else the level I/O default. The one place this precedence is written."""
    chosen = max_tokens_overrides(*overrides, levels=(level,)).get(level)
    if chosen is not None:
        return chosen
    if level not in io.max_new_tokens:
        raise ValueError(f"the model's level I/O has no decoding length for the {level} level")
    return io.max_new_tokens[level]
