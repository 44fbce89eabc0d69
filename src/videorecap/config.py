"""Typed model configuration and named presets.

A model config (`RecapConfig`) has two parts: the architecture (`ArchConfig`: what the weights need) and the level
I/O (`levelio.LevelIO`: feature counts and sampling, window seconds, default decoding lengths, modalities).
Training options (`TrainOptions`: which parts train) are not part of it; recipes hold them.

Every size of the model lives here. `RecapConfig.from_name("recap-base", level="segment")` gives the official
sizes of one hierarchy level; `recap-tiny` is the same architecture shrunk for tests; `recap-synth` is the small
model trained on the project's synthetic world.

The levels are called `clip`, `segment` and `video` everywhere. A model is either one level's captioner
(`level` is one of those three) or a unified ReCap-U model (`level="unified"`) that serves all three.
"""

from __future__ import annotations

import copy
import functools
import importlib
import json
import math
import typing
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from videorecap.levelio import FEATURE_LEVELS, FeatureSampling, LevelIO

Level = Literal["clip", "segment", "video"]
ModelLevel = Literal["clip", "segment", "video", "unified"]
LEVELS: tuple[Level, ...] = ("clip", "segment", "video")


@dataclass
class EncoderConfig:
    """LaViLa's TimeSformer ("frozen-in-time" divided space-time attention)."""

    image_size: int = 224
    patch_size: int = 16
    num_frames: int = 4  # rows of temporal_embed; fewer frames at run time are allowed
    width: int = 768
    layers: int = 12
    heads: int = 12
    mlp_ratio: float = 4.0
    ln_pre_eps: float = 1e-5  # ln_pre is a plain nn.LayerNorm in LaViLa
    eps: float = 1e-6  # norm1/norm2/norm3 and the final norm

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    @property
    def num_tokens(self) -> int:
        """Tokens out of the encoder for one clip: CLS + frames x patches (785 at official sizes)."""
        return 1 + self.num_frames * self.num_patches


@dataclass
class AlignerConfig:
    """A Q-Former: learned queries with BERT-style post-LN layers, cross-attending to a context."""

    width: int = 768
    layers: int = 12
    heads: int = 12
    intermediate: int = 3072
    cross_attention_freq: int = 2  # cross-attention in layers 0, 2, 4, ...
    context_width: int = 768
    dropout: float = 0.1
    eps: float = 1e-12
    # init std of the cross-attention output projection. BERT's 0.02 is what the released (trained) weights started
    # from; a Q-Former trained from scratch against an encoder trained from scratch passes almost nothing of the
    # context at that scale (the learned queries dominate its post-LN residual), and the decoder then learns to
    # ignore the video. recap-synth uses a larger value.
    cross_init_std: float = 0.02


@dataclass
class DecoderConfig:
    """GPT-2 with Flamingo-style tanh-gated cross-attention before self-attention."""

    vocab_size: int = 50257
    n_positions: int = 1024
    n_embd: int = 768
    n_layer: int = 12
    n_head: int = 12
    cross_attn_freq: int = 1  # gated cross-attention in layers i with i % freq == 0
    context_width: int = 768  # width of the aligner outputs fed to cross-attention
    gated: bool = True  # tanh gates initialised at 0 (the model starts as plain GPT-2)
    xattn_mlp_ratio: int = 4  # squared-ReLU MLP after cross-attention: n_embd -> 4 n_embd -> n_embd
    dropout: float = 0.1
    eps: float = 1e-5


@dataclass
class TokenConfig:
    bos_token_id: int = 50256
    eos_token_id: int = 50256  # GPT-2: BOS == EOS == <|endoftext|>
    pad_token_id: int = 0  # the original pads with 0 ("!") and ignores it in the loss
    max_text_tokens: int = 512  # previous-level text fed to the text aligner


# Query counts per level, from the official scripts (reference §1.3, §1.6, §3.2).
_LEVEL_QUERIES: dict[str, dict[str, int]] = {
    "clip": {"num_video_queries": 256, "num_text_queries": 0},
    "segment": {"num_video_queries": 32, "num_text_queries": 256},
    "video": {"num_video_queries": 256, "num_text_queries": 256},
    "unified": {"num_video_queries": 256, "num_text_queries": 256},
}


@dataclass
class ArchConfig:
    """The architecture: everything the weights need (sizes, query counts, special tokens), nothing else.

    `has_encoder` is true for the clip level and ReCap-U: they read pixels. Segment and video levels read
    precomputed 4-s CLS features (`encoder.width` wide) and the previous level's text.
    """

    name: str = "recap-base"
    level: ModelLevel = "clip"
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    video_aligner: AlignerConfig = field(default_factory=AlignerConfig)
    text_aligner: AlignerConfig = field(default_factory=AlignerConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    tokens: TokenConfig = field(default_factory=TokenConfig)
    num_video_queries: int = 256
    num_text_queries: int = 0  # 0 = no text aligner (the clip level)

    @property
    def has_encoder(self) -> bool:
        return self.level in ("clip", "unified")

    @property
    def has_text(self) -> bool:
        return self.num_text_queries > 0

    @property
    def levels(self) -> tuple[Level, ...]:
        """The levels this model can caption."""
        return LEVELS if self.level == "unified" else (self.level,)

    def __post_init__(self) -> None:
        # Accept plain dicts for the nested configs (from JSON/YAML).
        for f, cls in (
            ("encoder", EncoderConfig),
            ("video_aligner", AlignerConfig),
            ("text_aligner", AlignerConfig),
            ("decoder", DecoderConfig),
            ("tokens", TokenConfig),
        ):
            v = getattr(self, f)
            if isinstance(v, dict):
                setattr(self, f, _from_dict(cls, v, f"{f}."))
        check_config(self)  # every field's type and what the modules need of the sizes, before anything reads them
        if self.level not in _LEVEL_QUERIES:
            raise ValueError(f"unknown level {self.level!r}; expected one of clip, segment, video, unified")
        if self.level == "clip" and self.num_text_queries:
            raise ValueError("the clip level has no text input: num_text_queries must be 0")


@dataclass
class TrainOptions:
    """Which parts train beyond the original's choice (reference §1.3, §1.4). Training options, held by the recipe
    (`model.train_*` keys); not part of the model config, so checkpoints do not store them."""

    train_encoder: bool = False  # the official encoder is frozen; recap-synth trains its small one at the clip stage
    # the Q-Former's self-attention and FFNs too (the original freezes them at their random init)
    train_aligner: bool = False
    # GPT-2's own weights too (the original trains cross-attention + ln_1/ln_2 only); needed when the decoder starts
    # from random weights, as in recap-synth
    train_decoder: bool = False

    def __post_init__(self) -> None:
        for f in fields(self):
            if not isinstance(getattr(self, f.name), bool):
                raise ValueError(f"{f.name} must be true or false, got {getattr(self, f.name)!r}")


TRAIN_OPTION_KEYS = tuple(f.name for f in fields(TrainOptions))
_ARCH_KEYS = tuple(f.name for f in fields(ArchConfig))
# The flat keys of the level I/O in configs written before the split (format 1) and in `from_name` overrides.
_FLAT_IO_KEYS = (
    "segment_num_features",
    "segment_sampling",
    "video_num_features",
    "video_sampling",
    "clip_seconds",
    "segment_seconds",
    "max_new_tokens",
    "modalities",
)


@dataclass
class RecapConfig:
    """The whole Video ReCap model: its architecture (`arch`) and its level I/O (`io`, videorecap.levelio).

    The architecture's fields read through (`cfg.decoder`, `cfg.level`, `cfg.has_text`, ...); change them on
    `cfg.arch`. Checkpoints store both parts (checkpoint.py).
    """

    arch: ArchConfig = field(default_factory=ArchConfig)
    io: LevelIO = field(default_factory=LevelIO)

    def __post_init__(self) -> None:
        if isinstance(self.arch, dict):
            self.arch = _from_dict(ArchConfig, self.arch)
        if isinstance(self.io, dict):
            self.io = LevelIO.from_dict(self.io)
        for name, cls in (("arch", ArchConfig), ("io", LevelIO)):
            if not isinstance(getattr(self, name), cls):
                raise ValueError(
                    f"{name} must be an object of {cls.__name__} fields, got {_shown(getattr(self, name))}"
                )
        if self.io.modalities == "text" and not self.arch.num_text_queries:
            raise ValueError("modalities='text' needs a text aligner (num_text_queries > 0)")

    # ---- the architecture, read through -------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.arch.name

    @property
    def level(self) -> ModelLevel:
        return self.arch.level

    @property
    def encoder(self) -> EncoderConfig:
        return self.arch.encoder

    @property
    def video_aligner(self) -> AlignerConfig:
        return self.arch.video_aligner

    @property
    def text_aligner(self) -> AlignerConfig:
        return self.arch.text_aligner

    @property
    def decoder(self) -> DecoderConfig:
        return self.arch.decoder

    @property
    def tokens(self) -> TokenConfig:
        return self.arch.tokens

    @property
    def num_video_queries(self) -> int:
        return self.arch.num_video_queries

    @property
    def num_text_queries(self) -> int:
        return self.arch.num_text_queries

    @property
    def has_encoder(self) -> bool:
        return self.arch.has_encoder

    @property
    def has_text(self) -> bool:
        return self.arch.has_text

    @property
    def levels(self) -> tuple[Level, ...]:
        return self.arch.levels

    # ---- the level I/O, read through ----------------------------------------------------------------------------
    @property
    def clip_seconds(self) -> float:
        return self.io.clip_seconds

    @property
    def segment_seconds(self) -> float:
        return self.io.segment_seconds

    @property
    def modalities(self) -> str:
        return self.io.modalities

    def num_features(self, level: Level) -> int:
        return self.io.features(level).num_features

    def sampling(self, level: Level) -> str:
        return self.io.features(level).sampling

    # ---- construction -----------------------------------------------------------------------------------------
    @classmethod
    def from_name(cls, name: str, **overrides: Any) -> RecapConfig:
        """A named preset, e.g. `from_name("recap-base", level="segment")`, with overrides (see `override`).

        Raises:
            ValueError: for an unknown name or an unknown override.
        """
        _import_bundled(name)
        if name not in _PRESETS:
            raise ValueError(f"{name!r} is not a known model preset; known: {', '.join(list_presets())}")
        level = overrides.pop("level", None)
        if level is not None and level not in (*LEVELS, "unified"):  # (a preset's tables are keyed by level)
            raise ValueError(f"unknown level {level!r}; expected one of clip, segment, video, unified")
        return _PRESETS[name](level).override(overrides)

    def override(self, overrides: Mapping[str, Any]) -> RecapConfig:
        """A copy with fields changed: an architecture field (`decoder={"dropout": 0.0}` merges into the nested
        config, an object replaces it), a flat level I/O key (`segment_num_features=40`, `modalities="video"`,
        `max_new_tokens={"video": 100}`), or `io={...}` (LevelIO fields).

        Raises:
            ValueError: an unknown key, or a training option (`train_*`: a recipe key, not a model field).
        """
        arch, io = asdict(self.arch), self.io.to_dict()
        for k, v in overrides.items():
            if k in TRAIN_OPTION_KEYS:
                raise ValueError(f"{k} is a training option, not a model config field: set it in the recipe's model")
            if k in _ARCH_KEYS:
                arch[k] = {**arch[k], **v} if isinstance(arch[k], dict) and isinstance(v, dict) else v
            elif k == "io" and isinstance(v, Mapping):
                io = _merge(io, v)
            elif k in _FLAT_IO_KEYS:
                io = _merge(io, _nest_io({k: v}))
            else:
                raise ValueError(f"unknown config field {k!r}")
        return RecapConfig(arch=_from_dict(ArchConfig, arch), io=LevelIO.from_dict(io))

    def to_dict(self) -> dict[str, Any]:
        """`{"arch": {...}, "io": {...}}` (what checkpoint config.json files hold, format 2)."""
        return {"arch": asdict(self.arch), "io": self.io.to_dict()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RecapConfig:
        """From `to_dict`'s form, or from the flat form written before the split (`from_flat_dict`)."""
        if set(d) <= {"arch", "io"}:
            return cls(arch=d.get("arch", {}), io=d.get("io", {}))  # type: ignore[arg-type]
        return cls.from_flat_dict(d)

    @classmethod
    def from_flat_dict(cls, d: Mapping[str, Any]) -> RecapConfig:
        """From the flat RecapConfig of format-1 checkpoints (one dict of every field). Their training options
        (`train_encoder`, `train_aligner`, `train_decoder`) belong to a recipe and are ignored here."""
        unknown = set(d) - set(_ARCH_KEYS) - set(_FLAT_IO_KEYS) - set(TRAIN_OPTION_KEYS)
        if unknown:
            raise ValueError(f"unknown RecapConfig field(s): {', '.join(sorted(unknown))}")
        arch = {k: v for k, v in d.items() if k in _ARCH_KEYS}
        io = _merge(LevelIO().to_dict(), _nest_io({k: v for k, v in d.items() if k in _FLAT_IO_KEYS}))
        return cls(arch=_from_dict(ArchConfig, arch), io=LevelIO.from_dict(io))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def _nest_io(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Flat level I/O keys (`segment_num_features`) -> LevelIO's nested form (`{"segment": {"num_features": ..}}`)."""
    out: dict[str, Any] = {}
    for k, v in flat.items():
        lv, _, rest = k.partition("_")
        if lv in FEATURE_LEVELS and rest in ("num_features", "sampling"):
            out.setdefault(lv, {})[rest] = v
        else:
            out[k] = v
    return out


def _merge(base: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """`base` updated by `new`, one level of mappings deep (`{"segment": {"num_features": 40}}` keeps the sampling)."""
    out = dict(base)
    for k, v in new.items():
        old = out.get(k)
        if isinstance(old, Mapping) and isinstance(v, Mapping):
            out[k] = {**old, **v}
        elif isinstance(old, FeatureSampling) and isinstance(v, Mapping):
            out[k] = {**asdict(old), **v}
        else:
            out[k] = v
    return out


def _from_dict(cls: type, d: Any, where: str = "") -> Any:
    """`cls(**d)` of a parsed JSON/YAML section, refusing what is not a mapping and unknown field names. The values
    are checked by `check_config`."""
    what = where.rstrip(".") or cls.__name__
    if not isinstance(d, Mapping):
        raise ValueError(f"{what} must be an object of {cls.__name__} fields, got {_shown(d)}")
    unknown = set(d) - {f.name for f in fields(cls)}
    if unknown:
        raise ValueError(f"unknown {what} field(s): {', '.join(sorted(unknown))}")
    return cls(**d)


def encoder_from_dict(d: Any, where: str = "encoder.") -> EncoderConfig:
    """The `EncoderConfig` of a parsed JSON/YAML section (an encoder-only checkpoint's), checked like every config.

    Raises:
        ValueError: not a mapping, an unknown field, or a value `check_config` refuses (named `{where}field`).
    """
    enc: EncoderConfig = _from_dict(EncoderConfig, d, where)
    check_config(enc, where)
    return enc


# ---- checking -------------------------------------------------------------------------------------------------------
# Whole-number fields that may be 0 (no text aligner, a token id); every other one counts or sizes something (>= 1)
_INTS_FROM_ZERO = frozenset({"num_text_queries", "bos_token_id", "eos_token_id", "pad_token_id"})
# Number fields that may be 0 (a probability, an init scale); every other one is a ratio or an epsilon (> 0)
_FLOATS_FROM_ZERO = frozenset({"dropout", "cross_init_std"})


def check_config(cfg: ArchConfig | EncoderConfig, where: str = "") -> None:
    """Check an architecture config (or an encoder section alone): every field against its annotation (whole numbers,
    numbers, true/false, strings, a Literal's values, nested sections), their bounds, and what the modules need of
    the sizes together: heads that divide their width, and the widths the parts pass to each other (checked for the
    parts the level uses). `ArchConfig` runs it on construction, so every config (a checkpoint's config.json, a
    preset, a recipe's overrides) passes here before a module is built.

    Raises:
        ValueError: naming the field (`{where}decoder.n_head`) and what it must be.
    """
    _check_types(cfg, where)
    if isinstance(cfg, EncoderConfig):
        _check_encoder(cfg, where)
        return
    if cfg.has_encoder:  # the other levels' encoder section only says how wide their features are
        _check_encoder(cfg.encoder, f"{where}encoder.")
    parts = [("video_aligner", cfg.video_aligner)]
    if cfg.has_text:  # a clip-level model's text aligner section is not built
        parts.append(("text_aligner", cfg.text_aligner))
    for name, al in parts:
        _check_divides(al.width, al.heads, f"{where}{name}.width", f"{where}{name}.heads")
        _check_same(al.width, cfg.decoder.context_width, f"{where}{name}.width", f"{where}decoder.context_width")
    dec = cfg.decoder
    _check_divides(dec.n_embd, dec.n_head, f"{where}decoder.n_embd", f"{where}decoder.n_head")
    if cfg.has_encoder:
        _check_same(
            cfg.video_aligner.context_width,
            cfg.encoder.width,
            f"{where}video_aligner.context_width",
            f"{where}encoder.width",
        )
    if cfg.has_text:  # the text aligner reads the decoder's token embeddings
        _check_same(
            cfg.text_aligner.context_width, dec.n_embd, f"{where}text_aligner.context_width", f"{where}decoder.n_embd"
        )
    for f in fields(cfg.tokens):
        token_id = getattr(cfg.tokens, f.name)
        if f.name.endswith("_token_id") and token_id >= dec.vocab_size:
            raise ValueError(
                f"{where}tokens.{f.name} is {token_id}, outside the vocabulary of {where}decoder.vocab_size "
                f"({dec.vocab_size})"
            )


def _check_encoder(e: EncoderConfig, where: str) -> None:
    _check_divides(e.width, e.heads, f"{where}width", f"{where}heads")
    if e.patch_size > e.image_size:
        raise ValueError(f"{where}patch_size ({e.patch_size}) is larger than {where}image_size ({e.image_size})")
    if int(e.width * e.mlp_ratio) < 1:
        raise ValueError(f"{where}mlp_ratio ({e.mlp_ratio}) leaves the MLP of a {e.width}-wide encoder no width")


def _check_divides(width: int, heads: int, width_key: str, heads_key: str) -> None:
    if width % heads:
        raise ValueError(f"{heads_key} ({heads}) must divide {width_key} ({width}): each head is width / heads wide")


def _check_same(a: int, b: int, a_key: str, b_key: str) -> None:
    if a != b:
        raise ValueError(f"{a_key} ({a}) must equal {b_key} ({b}): one part's output is the other's input")


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _check_types(cfg: Any, where: str) -> None:
    """Each field of a config dataclass against its annotation, nested sections included (see `check_config`)."""
    for f in fields(cfg):
        key, v, kind = f"{where}{f.name}", getattr(cfg, f.name), _hints(type(cfg))[f.name]
        if is_dataclass(kind):
            if not isinstance(v, kind):  # type: ignore[arg-type]
                raise ValueError(f"{key} must be an object of {kind.__name__} fields, got {_shown(v)}")
            _check_types(v, f"{key}.")
        elif typing.get_origin(kind) is Literal:
            if not any(v == c and type(v) is type(c) for c in typing.get_args(kind)):
                raise ValueError(f"{key} must be one of {', '.join(map(str, typing.get_args(kind)))}, got {_shown(v)}")
        elif kind is bool:
            if not isinstance(v, bool):
                raise ValueError(f"{key} must be true or false, got {_shown(v)}")
        elif kind is str:
            if not isinstance(v, str) or not v:
                raise ValueError(f"{key} must be a non-empty string, got {_shown(v)}")
        elif kind is int:
            least = 0 if f.name in _INTS_FROM_ZERO else 1
            if isinstance(v, bool) or not isinstance(v, int):
                raise ValueError(f"{key} must be a whole number, got {_shown(v)}")
            if v < least:
                raise ValueError(f"{key} must be at least {least}, got {v}")
        elif kind is float:
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise ValueError(f"{key} must be a number, got {_shown(v)}")
            if f.name == "dropout" and not 0 <= v < 1:
                raise ValueError(f"{key} must be at least 0 and below 1, got {v}")
            if v < 0 or (v == 0 and f.name not in _FLOATS_FROM_ZERO):
                raise ValueError(f"{key} must be {'at least' if f.name in _FLOATS_FROM_ZERO else 'above'} 0, got {v}")


def _shown(v: Any) -> str:
    """A value as the JSON file spells it (`"128"`, `null`), cut short."""
    try:
        text = json.dumps(v)
    except (TypeError, ValueError):
        text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


# ---- presets ----------------------------------------------------------------------------------------------------
def _recap_base(level: ModelLevel | None) -> RecapConfig:
    # The official sizes: TimeSformer-B (4 frames, 224 px), two 12-layer Q-Formers, GPT-2 small; the official I/O.
    level = level or "clip"
    return RecapConfig(arch=ArchConfig(name="recap-base", level=level, **_LEVEL_QUERIES[level]))


def _recap_u_base(level: ModelLevel | None) -> RecapConfig:
    # ReCap-U: one shared model for all levels; its feature levels read 512 features (train_unified.py).
    if level not in (None, "unified"):
        raise ValueError("recap-u-base is a unified model; use recap-base for a single level")
    return RecapConfig(
        arch=ArchConfig(name="recap-u-base", level="unified", **_LEVEL_QUERIES["unified"]),
        io=LevelIO().replace_features(num_features=512),
    )


def _recap_tiny(level: ModelLevel | None) -> RecapConfig:
    # For tests: the same architecture, a few thousand times smaller. 2 frames of 32 px, 2-layer everything.
    level = level or "clip"
    enc = EncoderConfig(image_size=32, patch_size=8, num_frames=2, width=32, layers=2, heads=2)
    al = AlignerConfig(width=32, layers=2, heads=2, intermediate=64, context_width=32)
    dec = DecoderConfig(vocab_size=128, n_positions=128, n_embd=32, n_layer=2, n_head=2, context_width=32)
    # the official 256/32 query counts, divided by 32
    queries = {"clip": (8, 0), "segment": (2, 8), "video": (8, 8), "unified": (8, 8)}[level]
    arch = ArchConfig(
        name="recap-tiny",
        level=level,
        encoder=enc,
        video_aligner=al,
        text_aligner=copy.deepcopy(al),
        decoder=dec,
        tokens=TokenConfig(bos_token_id=1, eos_token_id=2, pad_token_id=0, max_text_tokens=64),
        num_video_queries=queries[0],
        num_text_queries=queries[1],
    )
    io = LevelIO(max_new_tokens={"clip": 12, "segment": 16, "video": 20})
    return RecapConfig(arch=arch, io=io.replace_features(num_features={"segment": 8, "video": 16}))


_PRESETS: dict[str, Callable[[ModelLevel | None], RecapConfig]] = {
    "recap-base": _recap_base,
    "recap-u-base": _recap_u_base,
    "recap-tiny": _recap_tiny,
}
# The training options a recipe starts from for a preset (its `model.train_*` keys change them); the official
# presets train what the original trains.
_PRESET_TRAINING: dict[str, TrainOptions] = {}


# Presets defined in the package they belong to, by the module that registers them (with `register_preset`) when
# imported. Named by string and imported with importlib on first use, so that config, the lowest layer, imports
# nothing above it (tests/test_layering.py).
_BUNDLED_PRESETS = {"recap-synth": "videorecap.synth.model"}


# Trained models shipped in the package, in videorecap/assets/<name>/, by preset name
BUNDLED_MODELS = ("recap-synth",)


def bundled_model_dir(name: str = "recap-synth") -> Path:
    """The folder of a trained model shipped in the package, `videorecap/assets/<name>/` (clip/ segment/ video/)."""
    return Path(str(resources.files("videorecap") / "assets" / name))


def _import_bundled(name: str) -> None:
    if name not in _PRESETS and name in _BUNDLED_PRESETS:
        importlib.import_module(_BUNDLED_PRESETS[name])  # registers the preset on first use


def register_preset(
    name: str, factory: Callable[[ModelLevel | None], RecapConfig], training: TrainOptions | None = None
) -> None:
    """Add a named preset: `factory(level)` returns the config of that level (None: the preset's default);
    `training`: the training options its recipes start from (default: the original's, `TrainOptions()`)."""
    _PRESETS[name] = factory
    if training is not None:
        _PRESET_TRAINING[name] = training


def preset_training(name: str) -> TrainOptions:
    """The training options a recipe of preset `name` starts from (a copy)."""
    _import_bundled(name)
    return replace(_PRESET_TRAINING.get(name, TrainOptions()))


def list_presets() -> list[str]:
    """Every preset name `RecapConfig.from_name` accepts, bundled ones included."""
    return sorted(set(_PRESETS) | set(_BUNDLED_PRESETS))
