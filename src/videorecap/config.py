"""Typed model configuration and named presets.

Every size of the model lives here. `RecapConfig.from_name("recap-base", level="segment")` gives the official
sizes of one hierarchy level; `recap-tiny` is the same architecture shrunk for tests; `recap-synth` is the small
model trained on the project's synthetic world.

The levels are called `clip`, `segment` and `video` everywhere. A model is either one level's captioner
(`level` is one of those three) or a unified ReCap-U model (`level="unified"`) that serves all three.
"""

from __future__ import annotations

import copy
import importlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any, Literal

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


# Query counts and decoding lengths per level, from the official scripts (reference §1.3, §1.6, §3.2).
_LEVEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "clip": {"num_video_queries": 256, "num_text_queries": 0},
    "segment": {"num_video_queries": 32, "num_text_queries": 256},
    "video": {"num_video_queries": 256, "num_text_queries": 256},
    "unified": {"num_video_queries": 256, "num_text_queries": 256},
}


@dataclass
class RecapConfig:
    """The whole Video ReCap model.

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
    # Higher levels: how many 4-s CLS features the model sees, and how they are sampled (reference §6.2).
    segment_num_features: int = 80
    segment_sampling: Literal["uniform", "masking"] = "uniform"
    video_num_features: int = 256
    video_sampling: Literal["uniform", "masking"] = "masking"
    # Window sizes the model was trained with (seconds): one clip caption per `clip_seconds`, one segment
    # description per `segment_seconds`, one summary per video. The caption pipeline defaults to these.
    clip_seconds: float = 4.0
    segment_seconds: float = 180.0
    # Decoding lengths per level (the original's max_gen_tokens).
    max_new_tokens: dict[str, int] = field(default_factory=lambda: {"clip": 77, "segment": 77, "video": 120})
    # The official encoder is frozen; recap-synth trains its small encoder at the clip stage.
    train_encoder: bool = False
    # Train the Q-Former's self-attention and FFNs too (the original freezes them at their random init).
    train_aligner: bool = False
    # Train GPT-2's own weights too (the original freezes them and trains cross-attention + ln_1/ln_2 only). Needed
    # when the decoder starts from random weights, as in recap-synth.
    train_decoder: bool = False
    # Inputs of the segment and video levels: the paper's Table 4 ablation ("video", "text" or both).
    modalities: Literal["video+text", "video", "text"] = "video+text"

    # ---- derived ----------------------------------------------------------------------------------------------
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

    def num_features(self, level: Level) -> int:
        return self.segment_num_features if level == "segment" else self.video_num_features

    def sampling(self, level: Level) -> str:
        return self.segment_sampling if level == "segment" else self.video_sampling

    # ---- construction -----------------------------------------------------------------------------------------
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
                setattr(self, f, _from_dict(cls, v))
        if self.level not in _LEVEL_DEFAULTS:
            raise ValueError(f"unknown level {self.level!r}; expected one of clip, segment, video, unified")
        if self.level == "clip" and self.num_text_queries:
            raise ValueError("the clip level has no text input: num_text_queries must be 0")
        if self.modalities not in ("video+text", "video", "text"):
            raise ValueError(f"modalities must be 'video+text', 'video' or 'text', not {self.modalities!r}")
        if self.modalities == "text" and not self.num_text_queries:
            raise ValueError("modalities='text' needs a text aligner (num_text_queries > 0)")
        for f in ("segment_sampling", "video_sampling"):
            if getattr(self, f) not in ("uniform", "masking"):
                raise ValueError(f"{f} must be 'uniform' or 'masking', not {getattr(self, f)!r}")

    @classmethod
    def from_name(cls, name: str, **overrides: Any) -> RecapConfig:
        """A named preset, e.g. `from_name("recap-base", level="segment")`.

        Raises:
            ValueError: for an unknown name or an unknown override.
        """
        if name not in _PRESETS and name in _BUNDLED_PRESETS:
            importlib.import_module(_BUNDLED_PRESETS[name])  # registers the preset on first use
        if name not in _PRESETS:
            raise ValueError(f"{name!r} is not a known model preset; known: {', '.join(list_presets())}")
        level = overrides.pop("level", None)
        cfg = _PRESETS[name](level)
        known = {f.name for f in fields(cls)}
        for k, v in overrides.items():
            if k not in known:
                raise ValueError(f"unknown config field {k!r}")
            setattr(cfg, k, v)
        cfg.__post_init__()
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RecapConfig:
        return _from_dict(cls, d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def _from_dict(cls: type, d: dict[str, Any]) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s): {', '.join(sorted(unknown))}")
    return cls(**d)


# ---- presets ----------------------------------------------------------------------------------------------------
def _recap_base(level: ModelLevel | None) -> RecapConfig:
    # The official sizes: TimeSformer-B (4 frames, 224 px), two 12-layer Q-Formers, GPT-2 small.
    level = level or "clip"
    return RecapConfig(name="recap-base", level=level, **_LEVEL_DEFAULTS[level])


def _recap_u_base(level: ModelLevel | None) -> RecapConfig:
    # ReCap-U: one shared model for all levels; its feature levels read 512 features (train_unified.py).
    if level not in (None, "unified"):
        raise ValueError("recap-u-base is a unified model; use recap-base for a single level")
    return RecapConfig(
        name="recap-u-base",
        level="unified",
        num_video_queries=256,
        num_text_queries=256,
        segment_num_features=512,
        segment_sampling="uniform",
        video_num_features=512,
        video_sampling="masking",
    )


def _recap_tiny(level: ModelLevel | None) -> RecapConfig:
    # For tests: the same architecture, a few thousand times smaller. 2 frames of 32 px, 2-layer everything.
    level = level or "clip"
    enc = EncoderConfig(image_size=32, patch_size=8, num_frames=2, width=32, layers=2, heads=2)
    al = AlignerConfig(width=32, layers=2, heads=2, intermediate=64, context_width=32)
    dec = DecoderConfig(vocab_size=128, n_positions=128, n_embd=32, n_layer=2, n_head=2, context_width=32)
    # the official 256/32 query counts, divided by 32
    queries = {"clip": (8, 0), "segment": (2, 8), "video": (8, 8), "unified": (8, 8)}[level]
    return RecapConfig(
        name="recap-tiny",
        level=level,
        encoder=enc,
        video_aligner=al,
        text_aligner=copy.deepcopy(al),
        decoder=dec,
        tokens=TokenConfig(bos_token_id=1, eos_token_id=2, pad_token_id=0, max_text_tokens=64),
        num_video_queries=queries[0],
        num_text_queries=queries[1],
        segment_num_features=8,
        video_num_features=16,
        max_new_tokens={"clip": 12, "segment": 16, "video": 20},
    )


_PRESETS = {
    "recap-base": _recap_base,
    "recap-u-base": _recap_u_base,
    "recap-tiny": _recap_tiny,
}


# Presets defined in the package they belong to, by the module that registers them (with `register_preset`) when
# imported. Named by string and imported with importlib on first use, so that config, the lowest layer, imports
# nothing above it (tests/test_layering.py).
_BUNDLED_PRESETS = {"recap-synth": "videorecap.synth.model"}


# Trained models shipped in the package, in videorecap/assets/<name>/, by preset name
BUNDLED_MODELS = ("recap-synth",)


def bundled_model_dir(name: str = "recap-synth") -> Path:
    """The folder of a trained model shipped in the package, `videorecap/assets/<name>/` (clip/ segment/ video/)."""
    return Path(str(resources.files("videorecap") / "assets" / name))


def register_preset(name: str, factory: Callable[[ModelLevel | None], RecapConfig]) -> None:
    """Add a named preset: `factory(level)` returns the config of that level (None: the preset's default)."""
    _PRESETS[name] = factory


def list_presets() -> list[str]:
    """Every preset name `RecapConfig.from_name` accepts, bundled ones included."""
    return sorted(set(_PRESETS) | set(_BUNDLED_PRESETS))
