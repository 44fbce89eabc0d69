"""The whole Video ReCap recipe in one command: a YAML file validated into typed settings, and the curriculum runner.

Video ReCap (`kind: recap`, reference §2.1):

1. `clip` stage;
2. `captions`: the clip model captions every 4-s window of every train and val video; the copies
   `out/data/segments_{split}.pkl` get those captions in `captions_pred`;
3. `segment` stage, initialised from the clip model (video queries resampled 256 -> 32; text aligner new);
4. `descriptions`: the segment model describes every segment; the copies `out/data/videos_{split}.json` get them in
   `segment_descriptions_pred`;
5. `video` stage, initialised from the segment model (queries 32 -> 256).

ReCap-U (`kind: unified`, reference §2.2) runs phases of one shared model (clip; clip + segment; all three) with the
same generation steps in front of the first phase that needs them. An optional `features` step (after the first
stage that trains the clip level) extracts the segment/video levels' CLS features with the clip model's encoder.

Every step is skipped when its final artefact exists (`final/` of a stage, a `*.done.json` marker of a generation
step, each written last and atomically), and a stage with a `last/` checkpoint resumes from it, so an interrupted
recipe started again with the same command continues where it stopped.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import logging
import math
import os
import types
import typing
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from videorecap import distributed, fileio
from videorecap.config import LEVELS, TRAIN_OPTION_KEYS, RecapConfig, TrainOptions, preset_training
from videorecap.data import hcap
from videorecap.errors import CheckpointError, InputError
from videorecap.runtime import SEED_MAX, check_device, is_seed
from videorecap.train.loop import FINAL_DIR, LevelData, StepInfo, TrainArgs, ValArgs, args_dict, train_stage

logger = logging.getLogger(__name__)


# ---- the recipe ------------------------------------------------------------------------------------------------------
@dataclass
class DataArgs:
    """Where the dataset is. Relative paths are taken from `root` (itself relative to the working directory)."""

    root: str = "."
    """Folder the other paths are relative to."""
    annotations: str = "."
    """Folder of the Ego4D-HCap files: clips_{split}.pkl, segments_{split}.pkl, videos_{split}.json."""
    videos: str | None = None
    """Folder of the videos `{vid}{video_ext}` (the clip level from pixels)."""
    features: str | None = None
    """Folder of `{vid}.npy` 4-s CLS features (the segment and video levels)."""
    clip_features: str | None = None
    """Folder of per-video clip-window features `{vid}.npy` (the clip level without decoding videos)."""
    video_ext: str = ".mp4"
    """Suffix of the video files."""
    pseudo_annotations: str | None = None
    """Folder of pseudo-labels (`videorecap pseudo-label`): segments_{train}_pseudo.pkl, videos_{train}_pseudo.json,
    mixed into the segment and video stages' training rows, in front of the labelled ones (the original's
    --metadata_pseudo)."""
    pseudo_ratio: float | None = None
    """Pseudo rows per labelled row of a level (e.g. 1.0: as many as labelled; drawn with the seed, repeated when
    there are too few); null: every pseudo row once, as the original concatenates them."""
    train_split: str = "train"
    """Split name of the training files."""
    val_split: str | None = "val"
    """Split name of the validation files (null: none)."""
    grid_fps: float | None = None
    """30 reproduces the original's fixed 30-fps frame grid; null samples frames by timestamp."""
    cache_frames: bool = False
    """Clip level from videos: keep decoded clip frames in memory (small datasets such as the synthetic world)."""
    random_crop: bool = True
    """Clip level from videos: the original's training crop (RandomResizedCrop, scale 0.5-1). The synthetic world
    turns it off: its objects sit at the frame's edges, and a crop that cuts them out makes the caption
    unpredictable from the pixels, so a model trained from scratch learns to ignore the video."""

    def path(self, p: str | None) -> Path | None:
        return None if p is None else Path(self.root) / p


@dataclass
class ModelArgs:
    """The model: a named preset (and overrides), optionally starting from a checkpoint folder, and which parts
    train (the training options, which are not part of the model config)."""

    preset: str = "recap-base"
    """Model preset (`videorecap.config.list_presets()`)."""
    checkpoint: str | None = None
    """Checkpoint folder the first stage (and `init_from: scratch` stages) start from, e.g. converted weights."""
    overrides: dict[str, Any] = field(default_factory=dict)
    """Model config fields to change (`RecapConfig.override`): architecture fields, nested configs as dicts
    ({decoder: {dropout: 0.0}}), level I/O keys ({segment_seconds: 40.0, io: {video: {num_features: 512}}})."""
    train_encoder: bool | None = None
    """Train the video encoder (null: the preset's choice; the official encoder is frozen)."""
    train_aligner: bool | None = None
    """Train the Q-Formers' self-attention and FFNs too (null: the preset's; the original trains cross-attention)."""
    train_decoder: bool | None = None
    """Train GPT-2's own weights too (null: the preset's; needed when the decoder starts from random weights)."""

    def __post_init__(self) -> None:
        self.training()  # a training option in `overrides` that is not true/false is the recipe's error

    def training(self) -> TrainOptions:
        """The training options: the preset's, then `overrides` (recipes written before the split put `train_*`
        there), then this recipe's `train_*` keys."""
        opts = asdict(preset_training(self.preset))
        opts.update({k: v for k, v in self.overrides.items() if k in TRAIN_OPTION_KEYS})
        opts.update({k: getattr(self, k) for k in TRAIN_OPTION_KEYS if getattr(self, k) is not None})
        return TrainOptions(**opts)

    def config_overrides(self) -> dict[str, Any]:
        """`overrides` without the training options that older recipes put there."""
        return {k: v for k, v in self.overrides.items() if k not in TRAIN_OPTION_KEYS}


@dataclass
class GenerateArgs:
    """The curriculum's caption-generation steps."""

    batch_size: int = 16
    """Windows or segments per generation batch."""
    pseudo_text: bool = True
    """Train higher levels on text generated by the trained lower-level model (false: the files' own text)."""
    features: bool = False
    """Extract `{vid}.npy` CLS features with the clip model's encoder after the clip stage."""


@dataclass
class Recipe:
    """A training recipe: data, model, stages, and how the run is checkpointed and validated."""

    output_dir: str
    """Run folder: {stage}/final, {stage}/last, {stage}/log.jsonl, data/."""
    data: DataArgs
    """The dataset."""
    stages: list[TrainArgs]
    """The stages (recap: clip, segment, video) or unified phases, in order."""
    kind: str = "recap"
    """"recap" (one model per level), "unified" (ReCap-U: one shared model), or "text-summarizer" (the text-only
    model: one stage whose `levels` name the pairs it trains on, segment: clip captions -> segment description,
    video: segment descriptions -> video summary; llm/textmodel.py)."""
    model: ModelArgs = field(default_factory=ModelArgs)
    """The model."""
    tokenizer: str = "gpt2"
    """"gpt2", "word-level" (trained on the training captions, for small models), or a tokenizer.json path."""
    seed: int = 0
    """Seed of the model init, data order and augmentation."""
    checkpoint_every: int = 0
    """Iterations between `last/` checkpoints (0: every epoch)."""
    validation: ValArgs | None = field(default_factory=ValArgs)
    """Validation settings (null: none)."""
    generate: GenerateArgs = field(default_factory=GenerateArgs)
    """The generation steps."""
    device: str | None = None
    """Device (default: cuda:LOCAL_RANK when a GPU is visible, else cpu)."""

    def __post_init__(self) -> None:
        if not is_seed(self.seed):
            raise ValueError(f"seed must be an integer from 0 to {SEED_MAX}, not {self.seed!r}")
        if self.kind not in ("recap", "unified", TEXT_KIND):
            raise ValueError(f"kind must be 'recap', 'unified' or '{TEXT_KIND}', not {self.kind!r}")
        if self.kind == TEXT_KIND and (len(self.stages) != 1 or "clip" in self.stages[0].levels):
            raise ValueError(f"a {TEXT_KIND} recipe has one stage, whose levels are among segment and video")
        if self.data.pseudo_ratio is not None and self.data.pseudo_ratio < 0:
            raise ValueError("data: pseudo_ratio must be 0 or more (or null: every pseudo row)")
        if not self.stages:
            raise ValueError("a recipe needs at least one stage")
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names) or any(n in ("data", "captions", "descriptions", "features") for n in names):
            raise ValueError(f"stage names must be distinct and not data/captions/descriptions/features: {names}")
        if self.kind == "recap":
            order = [LEVELS.index(s.levels[0]) for s in self.stages]
            if any(len(s.levels) != 1 for s in self.stages) or order != sorted(set(order)):
                raise ValueError("a recap recipe trains one level per stage, in the order clip, segment, video")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["stages"] = [args_dict(s) for s in self.stages]
        # training options left to the preset are not written, so recipe.json and the checkpoints' meta.json of a
        # recipe that does not set them stay as they were before these keys existed
        d["model"] = {k: v for k, v in d["model"].items() if not (k in TRAIN_OPTION_KEYS and v is None)}
        return d


_RECAP_LEVEL_NAMES = {lv: lv for lv in LEVELS}
TEXT_KIND = "text-summarizer"


def _build(cls: type, d: Any, where: str) -> Any:
    """A dataclass from a mapping: unknown keys are errors naming the key; nested dataclasses are built too."""
    if not isinstance(d, dict):
        raise InputError(f"{where}: expected a mapping, found {type(d).__name__}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    for k in d:
        if k not in known:
            raise InputError(f"{where}: unknown key {k!r} (known: {', '.join(known)})")
    kwargs = {}
    hints = typing.get_type_hints(cls)
    for k, v in d.items():
        sub = {"data": DataArgs, "model": ModelArgs, "generate": GenerateArgs, "validation": ValArgs}.get(k)
        if cls is Recipe and sub is not None and v is not None:
            v = _build(sub, v, f"{where}: {k}")
        kwargs[k] = _scalar(v, hints[k], f"{where}: {k}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise InputError(f"{where}: {e}") from None


def _scalar(v: Any, hint: Any, where: str) -> Any:
    """`v` checked against its field's type, so a mistake names its key instead of failing mid-run (a `model: null`
    was an AttributeError deep in the runner): numbers and bools, strings, lists, mappings and nested settings, the
    items of lists and mappings too. Returns `v`, its numbers converted as below.

    YAML 1.1 (PyYAML) reads `1e-3` (no dot) as a string: a float field takes any string that is a number.
    """
    allowed = set(typing.get_args(hint)) if typing.get_origin(hint) in (typing.Union, types.UnionType) else {hint}
    nullable = type(None) in allowed
    allowed.discard(type(None))
    if Any in allowed or (v is None and nullable):
        return v
    if not allowed <= {int, float, bool}:
        return _structured(v, allowed, nullable, where)
    if bool in allowed:
        if not isinstance(v, bool):
            raise InputError(f"{where} must be true or false, got {_shown(v)}")
        return v
    if float in allowed:
        if isinstance(v, str):
            try:
                number = float(v)
            except ValueError:
                raise InputError(f"{where} must be a number, got {v!r}") from None
            if not math.isfinite(number):
                raise InputError(f"{where} must be a finite number, got {v!r}")
            return number
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise InputError(f"{where} must be a finite number, got {_shown(v)}")
        return v
    if isinstance(v, bool) or not isinstance(v, int):
        raise InputError(f"{where} must be a whole number, got {_shown(v)}")
    return v


def _structured(v: Any, allowed: set[Any], nullable: bool, where: str) -> Any:
    """`_scalar` of a field that is not only a number: `v` must be one of the `allowed` kinds (a string, a list,
    a mapping, a nested settings class, a number of a union such as `int | dict[str, int]`)."""
    for kind in allowed:
        origin, args = typing.get_origin(kind) or kind, typing.get_args(kind)
        if origin in (int, float, bool):
            # true is no count, though Python's bool is an int
            if isinstance(v, bool) == (origin is bool) and isinstance(v, int if origin is int else int | float):
                return _scalar(v, kind, where)
        elif origin is str and isinstance(v, str | os.PathLike):
            return os.fspath(v)  # a library caller's Path is the text a YAML file would give
        elif origin in (list, tuple) and isinstance(v, list | tuple):
            if origin is tuple and len(v) != len(args):
                raise InputError(f"{where} must be a list of {len(args)} items, got {_shown(v)}")
            items = [_scalar(x, args[i] if origin is tuple else args[0], f"{where}[{i}]") for i, x in enumerate(v)]
            return items if origin is list else tuple(items)
        elif origin is dict and isinstance(v, dict):
            args = args or (Any, Any)
            for k in v:
                _scalar(k, args[0], f"{where}: key {k!r}")
            return {k: _scalar(x, args[1], f"{where}: {k}") for k, x in v.items()}
        elif dataclasses.is_dataclass(origin) and isinstance(v, origin):
            return v  # built by `_build`, which checked its fields
    kinds = sorted({_KIND_NAMES.get(typing.get_origin(k) or k, "a mapping") for k in allowed})
    kinds += ["null"] if nullable else []
    either = f"{', '.join(kinds[:-1])} or {kinds[-1]}" if len(kinds) > 1 else kinds[0]
    raise InputError(f"{where} must be {either}, got {_shown(v)}")


_KIND_NAMES = {
    bool: "true or false",
    int: "a whole number",
    float: "a number",
    str: "a string",
    list: "a list",
    tuple: "a list",
    dict: "a mapping",
}


def _shown(v: Any) -> str:
    """A value in a message: `null` as the YAML file spells it, anything else as Python writes it."""
    return "null" if v is None else repr(v)


def recipe_from_dict(d: dict[str, Any], where: str = "recipe") -> Recipe:
    """Validate a recipe mapping into a `Recipe` (InputError naming the key on any mistake)."""
    if not isinstance(d, dict):
        raise InputError(f"{where}: a recipe must be a mapping")
    d = dict(d)
    stages = d.get("stages")
    if not isinstance(stages, list) or not stages:
        raise InputError(f"{where}: 'stages' must be a non-empty list")
    built = []
    for i, s in enumerate(stages):
        if not isinstance(s, dict):
            raise InputError(f"{where}: stages[{i}] must be a mapping")
        s = dict(s)
        if "levels" not in s and s.get("name") in _RECAP_LEVEL_NAMES:
            s["levels"] = [s["name"]]
        elif "levels" not in s and d.get("kind") == TEXT_KIND:
            s["levels"] = ["segment", "video"]  # the text model learns both kinds of pairs by default
        built.append(_build(TrainArgs, s, f"{where}: stages[{i}]"))
    d["stages"] = built
    if "output_dir" not in d or "data" not in d:
        raise InputError(f"{where}: 'output_dir' and 'data' are required")
    recipe = _build(Recipe, d, where)
    if recipe.device is not None:
        # the check --device gets: `device: cuda` without a GPU is one line here, not an assertion inside torch
        recipe.device = check_device(str(recipe.device), f"{where}: device")
    return recipe


def load_recipe(path: str | os.PathLike[str], **overrides: Any) -> Recipe:
    """Read and validate a recipe YAML file. `overrides` replace top-level keys (e.g. output_dir)."""
    path = Path(path)
    try:
        d = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise InputError(f"{path}: cannot read the recipe ({e.strerror})") from None
    except UnicodeDecodeError:  # a video or other binary file given as the recipe
        raise InputError(f"{path}: not a recipe: not UTF-8 text") from None
    except yaml.YAMLError as e:
        raise InputError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(d, dict):
        raise InputError(f"{path}: a recipe must be a YAML mapping")
    for k, v in overrides.items():
        if v is not None:
            d[k] = v
    return recipe_from_dict(d, str(path))


# ---- initialisation between stages -----------------------------------------------------------------------------------
def resample_queries(q: torch.Tensor, k: int) -> torch.Tensor:
    """(n, D) queries -> (k, D) by the original's index rule `arange(0, n, n/(k+1))[1:]` (down- or up-sampling)."""
    n = q.shape[0]
    idx = np.arange(0, n, n / (k + 1)).astype(int)[1:][:k]
    return q[torch.from_numpy(idx)].clone()


def init_from_state(model: torch.nn.Module, source: dict[str, torch.Tensor]) -> dict[str, list[str]]:
    """Copy every tensor `model` shares with `source`; resample query tensors whose count differs, and copy the
    shared rows of a position table whose length differs.

    Returns:
        {"copied": [...], "resampled": [...], "new": [...] (kept fresh), "dropped": [...] (not in this model)}.

    Raises:
        CheckpointError: a shared tensor (other than the queries) with a different shape.
    """
    own = model.state_dict()
    report: dict[str, list[str]] = {"copied": [], "resampled": [], "new": [], "dropped": []}
    new_state = {}
    for k, v in own.items():
        if k not in source:
            report["new"].append(k)
            continue
        src = source[k]
        if src.shape == v.shape:
            new_state[k] = src
            report["copied"].append(k)
        elif k in ("video_queries", "text_queries") and src.ndim == 2 and src.shape[1] == v.shape[1]:
            new_state[k] = resample_queries(src, v.shape[0])
            report["resampled"].append(f"{k} {src.shape[0]}->{v.shape[0]}")
        elif k == "decoder.wpe.weight" and src.ndim == 2 and src.shape[1] == v.shape[1]:
            # a longer (or shorter) position table at the next level, whose previous-level text is longer:
            # the positions both have are copied, any extra ones keep their fresh init
            n = min(src.shape[0], v.shape[0])
            grown = v.clone()
            grown[:n] = src[:n]
            new_state[k] = grown
            report["resampled"].append(f"{k} {src.shape[0]}->{v.shape[0]} positions")
        else:
            raise CheckpointError(
                f"cannot initialise {k}: shape {tuple(src.shape)} in the source, {tuple(v.shape)} here"
            )
    report["dropped"] = sorted(set(source) - set(own))
    model.load_state_dict(new_state, strict=False)
    return report


def _summarise(report: dict[str, list[str]]) -> dict[str, Any]:
    parts = lambda names: sorted({n.split(".")[0] for n in names})  # noqa: E731
    return {
        "copied": len(report["copied"]),
        "resampled": report["resampled"],
        "new": parts(report["new"]),
        "dropped": parts(report["dropped"]),
    }


# ---- the runner ------------------------------------------------------------------------------------------------------
@dataclass
class _Step:
    kind: str  # "train", "captions", "descriptions", "features"
    name: str
    stage: TrainArgs | None = None


def plan(recipe: Recipe) -> list[_Step]:
    """The ordered steps of the recipe (generation steps go in front of the first stage that needs them)."""
    steps: list[_Step] = []
    trained: set[str] = set()
    for s in recipe.stages:
        if recipe.generate.pseudo_text and recipe.kind != TEXT_KIND:
            if "segment" in s.levels and "clip" in trained and not any(x.kind == "captions" for x in steps):
                steps.append(_Step("captions", "captions"))
            if "video" in s.levels and "segment" in trained and not any(x.kind == "descriptions" for x in steps):
                steps.append(_Step("descriptions", "descriptions"))
        steps.append(_Step("train", s.name, s))
        trained.update(s.levels)
        if recipe.generate.features and "clip" in s.levels and not any(x.kind == "features" for x in steps):
            steps.append(_Step("features", "features"))
    return steps


class Curriculum:
    """Runs a recipe step by step; each step skipped when complete. See the module docstring."""

    def __init__(
        self,
        recipe: Recipe,
        *,
        progress: bool = False,
        on_step: Callable[[StepInfo], None] | None = None,
        max_steps: int | None = None,
    ) -> None:
        self.recipe = recipe
        self.out = Path(recipe.output_dir)
        self.data_out = self.out / "data"
        self.progress = progress
        self.on_step = on_step
        self.max_steps = max_steps
        self.device = torch.device(recipe.device or distributed.default_device())
        self.steps = plan(recipe)
        self._tok: Any = None

    # ---- paths and files
    def _ann(self, level: str, split: str) -> Path:
        name = {"clip": f"clips_{split}.pkl", "segment": f"segments_{split}.pkl", "video": f"videos_{split}.json"}
        base = self.recipe.data.path(self.recipe.data.annotations)
        if split == self._pseudo_split():  # segments_train_pseudo.pkl, videos_train_pseudo.json
            base = self.recipe.data.path(self.recipe.data.pseudo_annotations)
        assert base is not None
        return base / name[level]

    def _rows_file(self, level: str, split: str) -> Path:
        """The generated copy when its step ran, else the user's file."""
        gen = {"segment": self.data_out / f"segments_{split}.pkl", "video": self.data_out / f"videos_{split}.json"}
        marker = {"segment": "captions", "video": "descriptions"}
        if level in gen and self._done(marker[level]):
            return gen[level]
        return self._ann(level, split)

    def _splits(self) -> list[str]:
        d = self.recipe.data
        return [d.train_split] + ([d.val_split] if d.val_split else [])

    def _pseudo_split(self) -> str | None:
        """The pseudo-labels' "split" (`train_pseudo`): the generation steps fill its rows like a split's."""
        d = self.recipe.data
        return f"{d.train_split}_pseudo" if d.pseudo_annotations is not None else None

    def _marker(self, name: str) -> Path:
        return self.data_out / f"{name}.done.json"

    def _done(self, name: str) -> bool:
        return self._marker(name).is_file()

    def _feature_dir(self) -> Path:
        if self._done("features"):
            return self.data_out / "features"
        p = self.recipe.data.path(self.recipe.data.features)
        if p is None:
            raise InputError("the recipe's data has no 'features' folder (and no features step) for segment/video")
        return p

    def is_complete(self, step: _Step) -> bool:
        if step.kind == "train":
            return (self.out / step.name / FINAL_DIR / "model.safetensors").is_file()
        return self._done(step.kind)

    # ---- the tokenizer
    def tokenizer(self) -> Any:
        if self._tok is not None:
            return self._tok
        from videorecap.tokenizer import Tokenizer

        spec = self.recipe.tokenizer
        if spec == "gpt2":
            self._tok = Tokenizer.gpt2()
        elif spec == "word-level":
            path = self.out / "tokenizer.json"
            if not path.is_file():
                if distributed.is_main():
                    texts = [
                        r.caption for r in hcap.load_level(self._ann("clip", self.recipe.data.train_split), "clip")
                    ]
                    for lv in ("segment", "video"):
                        f = self._ann(lv, self.recipe.data.train_split)
                        if f.is_file():
                            key = hcap.TARGET_KEYS[lv]
                            texts += [r[key] for r in hcap.load_level(f, lv) if r.get(key)]
                    if self.recipe.kind == TEXT_KIND:
                        from videorecap.data.datasets import SUMMARIZE_PROMPT

                        texts.append(SUMMARIZE_PROMPT)  # the text model reads it before every input
                    vocab = self.base_config(self.recipe.stages[0]).decoder.vocab_size
                    Tokenizer.train_word_level([t for t in texts if t], max_vocab=vocab).save(path)
                distributed.barrier()
            self._tok = Tokenizer.from_file(path)
        else:
            self._tok = Tokenizer.from_file(spec)
        return self._tok

    # ---- models
    def base_config(self, stage: TrainArgs) -> RecapConfig:
        """The model config of a stage: the preset, the recipe's overrides, then the stage's level I/O (modalities,
        feature counts and sampling: one value for both feature levels, or `{level: value}` as ReCap-U may want;
        caption length) and text limit. The stage's data is built from this config, and its checkpoints store it,
        so a trained level captions with the lengths it was trained on."""
        m = self.recipe.model
        level = "unified" if self.recipe.kind == "unified" else stage.levels[0]
        if self.recipe.kind == TEXT_KIND:
            level = "video"  # one text-only model for both kinds of pairs (its modalities are set to text below)
        try:
            cfg = RecapConfig.from_name(m.preset, level=level).override(m.config_overrides())
            io = stage.level_io(cfg.io)
            if self.recipe.kind == TEXT_KIND:
                io = dataclasses.replace(io, modalities="text")  # the text-only model reads no video
            arch = cfg.arch
            if stage.max_text_tokens is not None:  # the text limit it trains with is the one it captions with
                arch = dataclasses.replace(
                    arch, tokens=dataclasses.replace(arch.tokens, max_text_tokens=stage.max_text_tokens)
                )
            return RecapConfig(arch=arch, io=io)
        except (ValueError, TypeError) as e:
            raise InputError(f"recipe model for stage {stage.name!r}: {e}") from None

    def _previous_final(self, index: int) -> Path | None:
        if index == 0:
            return None
        return self.out / self.recipe.stages[index - 1].name / FINAL_DIR

    def build_model(self, index: int, cfg: RecapConfig | None = None) -> tuple[Any, dict[str, Any]]:
        """The stage's model (of `cfg`, default `base_config`), with the recipe's training options, initialised as
        its `init_from` says; returns (model, init report)."""
        from videorecap.model.recap import VideoRecap

        stage = self.recipe.stages[index]
        cfg = cfg or self.base_config(stage)
        torch.manual_seed(self.recipe.seed)
        model = VideoRecap(cfg, self.recipe.model.training())
        src: Path | None
        if stage.init_from == "previous":
            src = self._previous_final(index) or self._path_or_none(self.recipe.model.checkpoint)
        elif stage.init_from == "scratch":
            src = self._path_or_none(self.recipe.model.checkpoint)
        else:
            src = Path(stage.init_from)
        if src is None:
            return model, {"source": "random init"}
        if not (src / "model.safetensors").is_file():
            raise CheckpointError(f"{src}: no checkpoint to initialise stage {stage.name!r} from (model.safetensors)")
        self._check_same_words(src, stage.name)
        from safetensors.torch import load_file

        report = init_from_state(model, load_file(str(src / "model.safetensors")))
        model.set_trainable()
        summary = {"source": str(src), **_summarise(report)}
        logger.info("%s: initialised from %s: %s", stage.name, src, summary)
        return model, summary

    def _check_same_words(self, src: Path, stage_name: str) -> None:
        """A stage that starts from a checkpoint with its own tokenizer must read the same words as the run: the
        token embeddings and the output layer are indexed by the tokenizer's ids, so another word-to-id table
        would silently start the stage from the wrong words."""
        from videorecap.tokenizer import Tokenizer

        if not (src / "tokenizer.json").is_file():
            return
        theirs = Tokenizer.from_file(src / "tokenizer.json").backend.get_vocab()
        if theirs != self.tokenizer().backend.get_vocab():
            run_tok = self.out / "tokenizer.json" if self.recipe.tokenizer == "word-level" else self.recipe.tokenizer
            raise CheckpointError(
                f"stage {stage_name!r} starts from {src}, whose tokenizer numbers the words differently from this "
                f"run's ({run_tok}); give the run that checkpoint's tokenizer (copy {src / 'tokenizer.json'} to "
                f"{self.out / 'tokenizer.json'} before the first step, or set the recipe's tokenizer to it)"
            )

    @staticmethod
    def _path_or_none(p: str | None) -> Path | None:
        return Path(p) if p else None

    def _load_final(self, name: str) -> tuple[Any, Any]:
        """A stage's final checkpoint and its own tokenizer (the one it was trained with: generation steps decode
        with it, so their text is right whatever the run's tokenizer is)."""
        from videorecap.checkpoint import load_model

        return load_model(self.out / name / FINAL_DIR, device=self.device)

    def _last_stage_with(self, level: str, before: int) -> str:
        for s in reversed(self.recipe.stages[:before]):
            if level in s.levels:
                return s.name
        raise InputError(f"no stage before step {before} trains the {level} level")

    # ---- data
    def level_data(self, level: str, cfg: RecapConfig, stage: TrainArgs) -> LevelData:
        from videorecap.data import datasets
        from videorecap.data.collate import Collator

        d = self.recipe.data
        tok = self.tokenizer()
        collate = Collator.for_config(
            tok, cfg, level, max_tokens=stage.max_tokens, max_text_tokens=stage.max_text_tokens
        )

        if self.recipe.kind == TEXT_KIND:
            return self._text_data(stage, collate)

        def make(split: str, training: bool) -> Any:
            rows: Any = self._rows_file(level, split)
            if training and level != "clip" and d.pseudo_annotations is not None:
                rows = self._with_pseudo(level, hcap.load_level(rows, level))
            if level == "clip":
                feats = d.path(d.clip_features)
                videos = None if feats is not None else d.path(d.videos)
                if feats is None and videos is None:
                    raise InputError("the recipe's data needs 'videos' or 'clip_features' for the clip level")
                return datasets.for_config(
                    "clip",
                    rows,
                    cfg,
                    feature_dir=feats,
                    video_root=videos,
                    training=training,
                    video_ext=d.video_ext,
                    grid_fps=d.grid_fps,
                    **({"cache_frames": True} if d.cache_frames and videos is not None else {}),
                    **({"random_crop": False} if not d.random_crop and videos is not None else {}),
                )
            return datasets.for_config(level, rows, cfg, feature_dir=self._feature_dir())  # type: ignore[arg-type]

        val = make(d.val_split, False) if d.val_split and self._rows_file(level, d.val_split).is_file() else None
        return LevelData(level, make(d.train_split, True), collate, val)  # type: ignore[arg-type]

    def _text_data(self, stage: TrainArgs, collate: Any) -> LevelData:
        """The text model's (lower text -> upper text) pairs of the stage's levels (the model's level is video)."""
        from videorecap.data.datasets import TextPairDataset

        d = self.recipe.data

        def pairs(split: str) -> TextPairDataset:
            return TextPairDataset({lv: self._ann(lv, split) for lv in stage.levels if self._ann(lv, split).is_file()})

        val = pairs(d.val_split) if d.val_split else None
        return LevelData("video", pairs(d.train_split), collate, val if val is not None and len(val) else None)

    def _with_pseudo(self, level: str, rows: list[dict]) -> list[dict]:
        """The pseudo-labelled rows of `level` (mixed as `pseudo_ratio` says) in front of the labelled `rows`."""
        d = self.recipe.data
        path = self._rows_file(level, self._pseudo_split())  # type: ignore[arg-type]  # a generated copy once filled
        if not path.is_file():
            raise InputError(f"data.pseudo_annotations: {path} not found (made by videorecap pseudo-label)")
        pseudo = hcap.load_level(path, level)
        if d.pseudo_ratio is not None and pseudo:
            n = round(d.pseudo_ratio * len(rows))
            rng = np.random.default_rng(self.recipe.seed)
            rounds = [rng.permutation(len(pseudo)) for _ in range(-(-n // len(pseudo)))]  # each row once per round
            pseudo = [pseudo[i] for i in np.concatenate(rounds)[:n]] if n else []
        logger.info("%s: %d pseudo-labelled rows in front of %d labelled ones", level, len(pseudo), len(rows))
        return [*pseudo, *rows]

    # ---- steps
    def run(self, only: str | None = None) -> dict[str, Any]:
        """Run every step (or only the step named `only`); returns {step name: "done" | "skipped"}."""
        distributed.init_if_needed()
        names = [s.name for s in self.steps]
        if only is not None and only not in names:
            raise InputError(f"no step {only!r} in this recipe; its steps are {', '.join(names)}")
        if distributed.is_main():
            self.out.mkdir(parents=True, exist_ok=True)
        result: dict[str, Any] = {}
        for i, step in enumerate(self.steps):
            if only is not None and step.name != only:
                continue
            if self.is_complete(step):
                logger.info("step %s: complete, skipped", step.name)
                result[step.name] = "skipped"
                continue
            logger.info("step %s: running", step.name)
            if step.kind != "train":
                self._record_recipe()  # a train step records it once its model and data are built
            if step.kind == "train":
                assert step.stage is not None
                self._train(self.recipe.stages.index(step.stage))
            elif step.kind == "captions":
                self._captions(self._last_stage_with("clip", self._stage_index_after(i)))
            elif step.kind == "descriptions":
                self._descriptions(self._last_stage_with("segment", self._stage_index_after(i)))
            elif step.kind == "features":
                self._features(self._last_stage_with("clip", self._stage_index_after(i)))
            result[step.name] = "done"
        return result

    def _stage_index_after(self, step_index: int) -> int:
        """How many stages come before step `step_index`."""
        return sum(1 for s in self.steps[:step_index] if s.kind == "train")

    def _record_recipe(self) -> None:
        """Write OUT/recipe.json (what the run is made of, for the reader). Only once a step's inputs are built: a
        mistake they show (an unknown preset, a data root without annotations) then leaves no run folder behind."""
        if distributed.is_main():
            fileio.write_json(self.out / "recipe.json", self.recipe.to_dict())

    def _train(self, index: int) -> Path:
        stage = self.recipe.stages[index]
        cfg = self.base_config(stage)
        model, init = self.build_model(index, cfg)
        levels = stage.levels[:1] if self.recipe.kind == TEXT_KIND else stage.levels  # one dataset of all pairs
        data = [self.level_data(lv, cfg, stage) for lv in levels]  # the recipe's level I/O, not the model's
        self._record_recipe()
        if self.max_steps is not None:
            stage = dataclasses.replace(stage, max_steps=self.max_steps)
        meta = {"recipe": self.recipe.to_dict(), "init": init, "train": args_dict(stage)}
        if self.recipe.kind == TEXT_KIND:
            stage = dataclasses.replace(stage, levels=["video"])  # the pairs' levels are in meta; the model's is video
        return train_stage(
            model,
            data,
            stage,
            self.out / stage.name,
            seed=self.recipe.seed,
            checkpoint_every=self.recipe.checkpoint_every,
            val=self.recipe.validation,
            tokenizer=self.tokenizer() if self.recipe.tokenizer != "gpt2" else None,
            meta=meta,
            device=self.device,
            progress=self.progress,
            on_step=self.on_step,
        )

    def _fingerprint(self, stage_name: str) -> str:
        meta = (self.out / stage_name / FINAL_DIR / "meta.json").read_bytes()
        return hashlib.sha256(meta).hexdigest()[:12]

    def _load_rows(self, level: str) -> dict[str, list[dict]]:
        out = {}
        pseudo = self._pseudo_split()
        for split in self._splits() + ([pseudo] if pseudo else []):
            f = self._ann(level, split)
            out[split] = hcap.load_level(f, level) if f.is_file() else []
        return out

    def _captions(self, stage_name: str) -> None:
        from videorecap.train import pseudo

        d = self.recipe.data
        model, tok = self._load_final(stage_name)
        segs, vids = self._load_rows("segment"), self._load_rows("video")
        durations = pseudo.video_durations(
            [r for rs in segs.values() for r in rs], [r for rs in vids.values() for r in rs]
        )
        caps = pseudo.generate_clip_captions(
            model,
            tok,
            durations,
            self.data_out / "cache" / f"captions-{self._fingerprint(stage_name)}",
            video_root=None if d.clip_features else d.path(d.videos),
            clip_features=d.path(d.clip_features),
            video_ext=d.video_ext,
            batch_size=self.recipe.generate.batch_size,
            device=self.device,
            progress=self.progress,
        )
        if distributed.is_main():
            for split, rows in segs.items():
                hcap.save_segments(self.data_out / f"segments_{split}.pkl", pseudo.fill_captions(rows, caps))
            fileio.write_json(self.data_out / "all_captions.json", caps, indent=None)
            fileio.write_json(self._marker("captions"), {"model": stage_name, "videos": len(caps)})
        distributed.barrier()

    def _descriptions(self, stage_name: str) -> None:
        from videorecap.train import pseudo

        model, tok = self._load_final(stage_name)
        segs = {s: hcap.load_level(self._rows_file("segment", s), "segment") for s in self._splits()}
        vids = self._load_rows("video")
        caps_file = self.data_out / "all_captions.json"
        caps = json.loads(caps_file.read_text(encoding="utf-8")) if caps_file.is_file() else {}
        descs = pseudo.generate_segment_descriptions(
            model,
            tok,
            [r for rs in segs.values() for r in rs],
            [r for rs in vids.values() for r in rs],
            caps,
            self._feature_dir(),
            self.data_out / "cache" / f"descriptions-{self._fingerprint(stage_name)}",
            batch_size=self.recipe.generate.batch_size,
            device=self.device,
            progress=self.progress,
        )
        if distributed.is_main():
            for split, rows in vids.items():
                hcap.save_videos(self.data_out / f"videos_{split}.json", pseudo.fill_descriptions(rows, descs))
            fileio.write_json(self._marker("descriptions"), {"model": stage_name, "videos": len(descs)})
        distributed.barrier()

    def _features(self, stage_name: str) -> None:
        from videorecap.video.features import extract_features

        d = self.recipe.data
        model, _ = self._load_final(stage_name)
        if model.encoder is None or d.videos is None:
            raise InputError("the features step needs a clip model with an encoder and the recipe's 'videos' folder")
        segs, vids = self._load_rows("segment"), self._load_rows("video")
        names = sorted({r["vid"] for rs in [*segs.values(), *vids.values()] for r in rs})
        out_dir = self.data_out / "features"
        items = distributed.shard(names)
        if self.progress:
            from tqdm import tqdm

            items = tqdm(items, desc="features", unit="video")
        for vid in items:
            target = out_dir / f"{vid}.npy"
            if target.is_file():
                continue
            feats = extract_features(
                d.path(d.videos) / f"{vid}{d.video_ext}",  # type: ignore[operator]
                model.encoder,
                clip_seconds=model.config.clip_seconds,
                batch_size=self.recipe.generate.batch_size,
                chunk_dir=self.data_out / "cache" / "features",
                device=self.device,
            )
            fileio.save_npy(target, feats)
        distributed.barrier()
        if distributed.is_main():
            fileio.write_json(self._marker("features"), {"model": stage_name, "videos": len(names)})
        distributed.barrier()


def run_recipe(
    recipe: Recipe | str | os.PathLike[str],
    *,
    only: str | None = None,
    progress: bool = False,
    max_steps: int | None = None,
) -> dict[str, Any]:
    """Run a recipe (a `Recipe` or a YAML path) end to end, or only its step `only`."""
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    return Curriculum(copy.deepcopy(recipe), progress=progress, max_steps=max_steps).run(only)
