"""The training loop: plain PyTorch, one or several levels, resumable bit for bit, optional DDP.

One *stage* trains one model on one or more levels. Each level has a `LevelData` (its train and val datasets and its
collator) and a persistent stream of batches. An *iteration* takes, for each level in order, `mix[level]` optimizer
steps of `accumulation` micro-batches each (ReCap-U's alternate batching; a single-level stage is the special case
of one level, one step). The learning rate is set once per iteration from the cosine schedule, so all levels of an
iteration share it, as in the original.

Determinism (what makes kill-and-resume bit-exact):

- The order of each level's samples in its epoch `e` is a permutation drawn from `(seed, level, e)`; under DDP each
  rank takes every `world`-th index of it (padded as `DistributedSampler`), so the union of the ranks' batches is the
  single-process batch of the same global size.
- Each sample's own randomness (augmentation, frame jitter) is seeded from `(seed, epoch, index)` in a forked RNG,
  so it does not depend on workers, skipped batches or what ran before; the global RNG is left to the model
  (dropout) and is saved in every checkpoint.
- A checkpoint (`last/`) holds the weights plus `train_state.pt`: optimizer, scaler, RNG states, iteration and each
  stream's (epoch, batch position). A restarted run loads it and continues with the next batch.

Loss normalisation: with `loss_mode="tokens"` each optimizer step's loss is the mean over every target token of all
its micro-batches on all ranks (token counts are all-reduced first), so gradient accumulation and DDP give the same
gradient as one big batch.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset

from videorecap import distributed, fileio
from videorecap.config import LEVELS, Level
from videorecap.errors import CheckpointError, InputError
from videorecap.infer.batch import caption_batch
from videorecap.infer.decoding_config import DecodeConfig
from videorecap.levelio import LevelIO
from videorecap.runtime import autocast_dtype
from videorecap.train.optim import CosineSchedule, build_optimizer, set_lr
from videorecap.train.state import (
    TRAIN_STATE_FILE,
    load_train_state,
    rng_state,
    save_train_state,
    set_rng_state,
)

logger = logging.getLogger(__name__)

FINAL_DIR = "final"
LAST_DIR = "last"
LOG_FILE = "log.jsonl"


@dataclass
class TrainArgs:
    """The settings of one training stage (one level of Video ReCap, or one phase of ReCap-U)."""

    name: str = "clip"
    """Stage name; also the folder under the output dir."""
    levels: list[str] = field(default_factory=lambda: ["clip"])
    """The levels trained in this stage, in alternate-batching order (one level for Video ReCap)."""
    mix: dict[str, int] = field(default_factory=dict)
    """Optimizer steps per level per iteration (ReCap-U's mix; a missing level means 1)."""
    epochs: float = 1.0
    """Epochs of the first level's data."""
    max_steps: int | None = None
    """Stop after this many iterations instead (tests, benchmarks)."""
    batch_size: int = 8
    """Samples per micro-batch per process."""
    accumulation: int = 1
    """Micro-batches per optimizer step (gradient accumulation)."""
    lr: float = 3e-5
    """Peak learning rate."""
    lr_start: float = 1e-6
    """Learning rate at the start of the warm-up."""
    lr_end: float = 1e-5
    """Learning rate at the end of the cosine schedule."""
    warmup_epochs: float = 1.0
    """Linear warm-up length in epochs (ignored when `warmup_steps` is set)."""
    warmup_steps: int | None = None
    """Linear warm-up length in iterations."""
    schedule_offset_epochs: float = 0.0
    """Start this many epochs down the cosine curve (the original's later stages start at epoch 5 or 15)."""
    weight_decay: float = 0.01
    """AdamW weight decay (not on biases, LayerNorms and 1-d tensors)."""
    betas: tuple[float, float] = (0.9, 0.999)
    """AdamW betas."""
    eps: float = 1e-8
    """AdamW epsilon."""
    grad_clip: float | None = 1.0
    """Clip the global gradient norm to this (None: no clipping)."""
    loss_mode: str = "tokens"
    """"tokens": cross-entropy averaged over real target tokens; "all": the original's mean over every position."""
    precision: str = "auto"
    """"auto" (bf16 on a GPU that has it, else fp16; fp32 on CPU), "fp32", "fp16" or "bf16"."""
    num_workers: int = 0
    """DataLoader worker processes per level."""
    init_from: str = "previous"
    """"previous" (the previous stage's final model), "scratch", or a checkpoint folder."""
    modalities: str | None = None
    """Inputs of the segment and video levels: "video+text", "video" or "text" (None: the model's)."""
    num_features: int | dict[str, int] | None = None
    """Features the segment/video levels see: one count for both, or {segment: K, video: K} (None: the model's)."""
    sampling: str | dict[str, str] | None = None
    """Feature sampling of the segment/video levels, "uniform" or "masking", or {level: kind} (None: the model's)."""
    max_tokens: int | None = None
    """Max caption tokens (None: the model's decoding length of the level, 77/77/120 officially)."""
    max_text_tokens: int | None = None
    """Max previous-level text tokens (None: the model's, 512 officially)."""

    def __post_init__(self) -> None:
        self.levels = list(self.levels)
        self.betas = tuple(self.betas)  # type: ignore[assignment]
        if not self.levels or any(lv not in LEVELS for lv in self.levels) or len(set(self.levels)) != len(self.levels):
            raise ValueError(f"stage {self.name!r}: levels must be distinct names among clip, segment, video")
        for lv, n in self.mix.items():
            if lv not in self.levels or int(n) < 1:
                raise ValueError(f"stage {self.name!r}: mix must give a positive count for levels of the stage")
        checks = [
            (self.epochs > 0, "epochs must be positive"),
            (self.max_steps is None or self.max_steps > 0, "max_steps must be positive"),
            (self.batch_size >= 1, "batch_size must be at least 1"),
            (self.accumulation >= 1, "accumulation must be at least 1"),
            (self.lr > 0 and self.lr_end >= 0 and self.lr_start >= 0, "learning rates must be positive"),
            (self.warmup_epochs >= 0, "warmup_epochs must be >= 0"),
            (self.warmup_steps is None or self.warmup_steps >= 0, "warmup_steps must be >= 0"),
            (self.schedule_offset_epochs >= 0, "schedule_offset_epochs must be >= 0"),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (self.grad_clip is None or self.grad_clip > 0, "grad_clip must be positive or null"),
            (self.loss_mode in ("tokens", "all"), "loss_mode must be 'tokens' or 'all'"),
            (self.precision in ("auto", "fp32", "fp16", "bf16"), "precision must be auto, fp32, fp16 or bf16"),
            (self.num_workers >= 0, "num_workers must be >= 0"),
            (self.max_tokens is None or self.max_tokens >= 1, "max_tokens must be positive"),
            (self.max_text_tokens is None or self.max_text_tokens >= 1, "max_text_tokens must be positive"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(f"stage {self.name!r}: {msg}")
        try:
            self.level_io(LevelIO())  # modalities, feature counts and sampling are checked where they are defined
        except ValueError as e:
            raise ValueError(f"stage {self.name!r}: {e}") from None

    def level_io(self, io: LevelIO) -> LevelIO:
        """`io` (the model's level I/O) with this stage's modalities, feature counts and sampling, and its caption
        length as the decoding length of its levels, so that a checkpoint captions as long as it was trained to."""
        io = io.replace_features(self.num_features, self.sampling)
        if self.modalities is not None:
            io = replace(io, modalities=self.modalities)
        if self.max_tokens is not None:
            io = replace(io, max_new_tokens={**io.max_new_tokens, **dict.fromkeys(self.levels, self.max_tokens)})
        return io

    def steps_per_iteration(self, level: str) -> int:
        return int(self.mix.get(level, 1))


@dataclass
class ValArgs:
    """Validation during training (rank 0 only)."""

    every_steps: int = 0
    """Validate every this many iterations (0: at the end of every epoch); always at the end of the stage."""
    max_batches: int | None = None
    """Cap on validation batches per level (None: the whole val set)."""
    caption_every_steps: int = 0
    """Generate captions and score them every this many iterations (0: only at the end of the stage)."""
    caption_samples: int = 0
    """Validation samples per level to caption and score (0: no caption metrics)."""
    metrics: list[str] = field(default_factory=lambda: ["cider", "rouge_l"])
    """Caption metrics (see `videorecap.metrics.scorers`; METEOR needs Java)."""


@dataclass
class LevelData:
    """One level's data for a stage: datasets and the collator that batches them."""

    level: Level
    train: Dataset
    collate: Callable[[Sequence[dict[str, Any]]], dict[str, Any]]
    val: Dataset | None = None


@dataclass
class StepInfo:
    """What an `on_step` callback sees after each iteration (and its checkpoint, if one was due)."""

    step: int
    total_steps: int
    losses: dict[str, float]
    lr: float
    checkpointed: bool


# ---- data streams -------------------------------------------------------------------------------------------------
def _mix_seed(*parts: int) -> int:
    """A 63-bit seed from small integers (a fixed, platform-independent mix)."""
    h = 1469598103934665603
    for p in parts:
        h = ((h ^ (int(p) & 0xFFFFFFFFFFFF)) * 1099511628211) % (1 << 64)
    return h % (1 << 63)


class _Seeded(Dataset):
    """Wraps a dataset so that index `(epoch, i)` runs `dataset[i]` with the global RNGs seeded from (seed, epoch, i).

    The global RNG state outside is untouched (forked), so samples never perturb the model's dropout stream.
    """

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset = dataset
        self.seed = seed

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, i = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_mix_seed(self.seed, epoch, i))
            return self.dataset[i]


class _Stream:
    """A level's endless, resumable stream of batches: epoch after epoch, each in a seeded order.

    `position` is how many batches of the current epoch were handed out; the epoch's batch plan is a pure function
    of (seed, level, epoch, rank, world), so a stream rebuilt at (epoch, position) continues exactly.
    """

    def __init__(
        self,
        data: LevelData,
        *,
        batch_size: int,
        seed: int,
        rank: int,
        world: int,
        multiple: int,
        num_workers: int,
        epoch: int = 0,
        position: int = 0,
    ) -> None:
        self.data = data
        self.level = data.level
        self.batch_size = batch_size
        self.seed = seed
        self.rank, self.world = rank, world
        self.num_workers = num_workers
        self.dataset = _Seeded(data.train, _mix_seed(seed, LEVELS.index(data.level)))
        n = len(data.train)  # type: ignore[arg-type]
        per_rank = math.ceil(n / world)
        # whole optimizer steps only, so an epoch ends on a step boundary
        self.batches_per_epoch = (per_rank // batch_size) // multiple * multiple
        if self.batches_per_epoch == 0:
            raise InputError(
                f"{data.level} level: {n} training samples are too few for a batch of {batch_size} x {multiple} "
                f"accumulation step(s) x {world} process(es)"
            )
        self.epoch, self.position = epoch, position
        self._it: Iterator[dict[str, Any]] | None = None

    def plan(self, epoch: int) -> list[list[tuple[int, int]]]:
        """The batches of `epoch` for this rank, as lists of `(epoch, index)` keys."""
        n = len(self.dataset)
        g = torch.Generator().manual_seed(_mix_seed(self.seed, LEVELS.index(self.level), epoch))
        order = torch.randperm(n, generator=g).tolist()
        if self.world > 1:  # DistributedSampler: pad by wrapping around, then every world-th index
            total = math.ceil(n / self.world) * self.world
            order = (order * math.ceil(total / n))[:total][self.rank :: self.world]
        b = self.batch_size
        return [[(epoch, i) for i in order[k * b : (k + 1) * b]] for k in range(self.batches_per_epoch)]

    def _start(self) -> None:
        batches = self.plan(self.epoch)[self.position :]
        g = torch.Generator().manual_seed(_mix_seed(self.seed, 7, self.epoch, self.position))  # worker seeds only
        loader = DataLoader(
            self.dataset,
            batch_sampler=batches,
            collate_fn=self.data.collate,
            num_workers=self.num_workers,
            generator=g,  # never touch the global RNG when an iterator starts
        )
        self._it = iter(loader)

    def next(self) -> dict[str, Any]:
        if self.position >= self.batches_per_epoch:
            self.epoch, self.position, self._it = self.epoch + 1, 0, None
        if self._it is None:
            self._start()
        batch = next(self._it)  # type: ignore[arg-type]
        self.position += 1
        return batch

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}


def _to(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _forward(
    model: nn.Module, level: str, batch: dict[str, Any], loss_mode: str, amp: torch.dtype | None
) -> torch.Tensor:
    device_type = batch["caption_ids"].device.type
    ctx = torch.autocast(device_type, dtype=amp) if amp is not None else contextlib.nullcontext()
    with ctx:
        loss, _ = model(
            level,
            batch["caption_ids"],
            video=batch["video"],
            video_mask=batch["video_mask"],
            text_ids=batch["text_ids"],
            text_mask=batch["text_mask"],
            loss_mode=loss_mode,
        )
    return loss


def _count(batch: dict[str, Any], loss_mode: str, pad_id: int) -> int:
    """How many positions this micro-batch's loss is averaged over."""
    targets = batch["caption_ids"][:, 1:]
    return int(targets.numel() if loss_mode == "all" else (targets != pad_id).sum())


# ---- checkpoint folders -------------------------------------------------------------------------------------------
def _recover_last(stage_dir: Path) -> None:
    """Finish or roll back a `last/` swap interrupted between its two renames."""
    last, new, old = stage_dir / LAST_DIR, stage_dir / ".last-new", stage_dir / ".last-old"
    if not last.exists() and old.exists():
        os.rename(old, last)
    for p in (new, old):
        if p.exists():
            shutil.rmtree(p, ignore_errors=True)


def _save_last(stage_dir: Path, model: nn.Module, tokenizer: Any, meta: dict[str, Any], state: dict) -> None:
    """Write weights + train state to `.last-new/`, then swap it in for `last/` (never a half-written `last/`)."""
    from videorecap.checkpoint import save_pretrained

    last, new, old = stage_dir / LAST_DIR, stage_dir / ".last-new", stage_dir / ".last-old"
    save_pretrained(model, new, tokenizer=tokenizer, meta=meta, overwrite=True)  # type: ignore[arg-type]
    save_train_state(new / TRAIN_STATE_FILE, state)
    if last.exists():
        os.rename(last, old)
    os.rename(new, last)
    shutil.rmtree(old, ignore_errors=True)


def load_weights(model: nn.Module, folder: Path) -> None:
    """Load a checkpoint folder's `model.safetensors` into `model`, strictly."""
    from safetensors.torch import load_file

    path = folder / "model.safetensors"
    try:
        tensors = load_file(str(path))
    except Exception as e:  # noqa: BLE001 - any read failure means a corrupt or missing file
        raise CheckpointError(f"{path}: cannot read the model weights ({e})") from None
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: does not match the model of this stage ({str(e).splitlines()[0]})") from None


# ---- logging ------------------------------------------------------------------------------------------------------
class _Log:
    """JSONL metrics (+ TensorBoard when installed), written by rank 0 only."""

    def __init__(self, path: Path, enabled: bool, resume_step: int, tensorboard: bool) -> None:
        self.path = path
        self.enabled = enabled
        self.tb = None
        if not enabled:
            return
        if path.exists():  # drop what a killed run logged after its last checkpoint: it will be redone
            keep = []
            for line in path.read_text(encoding="utf-8").splitlines():
                with contextlib.suppress(json.JSONDecodeError):
                    if json.loads(line).get("step", 0) <= resume_step:
                        keep.append(line)
            fileio.write_text(path, "".join(k + "\n" for k in keep))
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(path.parent / "tensorboard"))
            except ImportError:
                logger.info("TensorBoard is not installed (pip install 'videorecap[tensorboard]'); logging JSONL only")

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for k, v in record.items():
                if isinstance(v, (int, float)) and k != "step":
                    self.tb.add_scalar(k, v, record.get("step", 0))

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


# ---- validation ---------------------------------------------------------------------------------------------------
@torch.no_grad()
def validate(
    model: nn.Module,
    data: Sequence[LevelData],
    *,
    batch_size: int,
    loss_mode: str,
    device: torch.device,
    max_batches: int | None = None,
    caption_samples: int = 0,
    tokenizer: Any = None,
    metrics: Sequence[str] = ("cider", "rouge_l"),
) -> dict[str, float]:
    """Validation loss per level (token-weighted mean) and, with `caption_samples`, caption metrics on a subset."""
    out: dict[str, float] = {}
    was_training = model.training
    model.eval()
    pad = model.config.tokens.pad_token_id  # type: ignore[union-attr]
    try:
        with torch.random.fork_rng(devices=[]):  # validation never moves the training RNG
            for d in data:
                if d.val is None or len(d.val) == 0:  # type: ignore[arg-type]
                    continue
                loader = DataLoader(d.val, batch_size=batch_size, collate_fn=d.collate)
                total, count = 0.0, 0
                for k, batch in enumerate(loader):
                    if max_batches is not None and k >= max_batches:
                        break
                    batch = _to(batch, device)
                    n = _count(batch, loss_mode, pad)
                    total += float(_forward(model, d.level, batch, loss_mode, None)) * n
                    count += n
                if count:
                    out[f"val/{d.level}/loss"] = total / count
                if caption_samples and tokenizer is not None:
                    out.update(_caption_metrics(model, d, caption_samples, batch_size, tokenizer, metrics, device))
    finally:
        model.train(was_training)
    return out


def _caption_metrics(
    model: nn.Module,
    d: LevelData,
    n: int,
    batch_size: int,
    tokenizer: Any,
    metrics: Sequence[str],
    device: torch.device,
) -> dict[str, float]:
    from torch.utils.data import Subset

    assert d.val is not None
    subset = Subset(d.val, range(min(n, len(d.val))))  # type: ignore[arg-type]
    preds: list[str] = []
    refs: list[list[str]] = []
    # decode as long as the stage trains its targets to be (the recipe's max_tokens), not the model's default length
    decode = DecodeConfig(max_new_tokens=getattr(d.collate, "max_caption_tokens", None))
    for batch in DataLoader(subset, batch_size=batch_size, collate_fn=d.collate):
        batch = _to(batch, device)
        preds.extend(caption_batch(model, tokenizer, d.level, batch, decode))  # type: ignore[arg-type]
        eos = model.config.tokens.eos_token_id  # type: ignore[union-attr]
        for row in batch["caption_ids"][:, 1:].tolist():
            refs.append([tokenizer.decode(row[: row.index(eos)] if eos in row else row)])
    try:
        from videorecap.metrics.scorers import score_captions

        scores = score_captions(preds, refs, metrics=metrics)
    except Exception as e:  # noqa: BLE001 - metrics are a convenience; never stop training for them
        logger.warning("caption metrics skipped for the %s level: %s", d.level, e)
        return {}
    return {f"val/{d.level}/{k}": v for k, v in scores.items()}


# ---- the loop -----------------------------------------------------------------------------------------------------
def train_stage(
    model: nn.Module,
    data: Sequence[LevelData],
    args: TrainArgs,
    stage_dir: str | os.PathLike[str],
    *,
    seed: int = 0,
    checkpoint_every: int = 0,
    val: ValArgs | None = None,
    tokenizer: Any = None,
    meta: dict[str, Any] | None = None,
    device: str | torch.device | None = None,
    progress: bool = False,
    tensorboard: bool = True,
    on_step: Callable[[StepInfo], None] | None = None,
) -> Path:
    """Train `model` on `data` (one `LevelData` per level of `args.levels`, in order); return the final folder.

    Resumes from `stage_dir/last/` when it exists. Writes `last/` every `checkpoint_every` iterations (0: at the end
    of every epoch) and `final/` (a checkpoint folder, written last and atomically) when done. Only rank 0 writes.

    Args:
        model: a `VideoRecap` (or anything with its forward/generate signature, `.config` and `.state_dict()`).
        data: the levels' data, in the order they are trained in each iteration.
        args: the stage settings.
        stage_dir: this stage's folder (`final/`, `last/`, `log.jsonl`).
        seed: the run's seed (data order, sample augmentation; the model's init is the caller's).
        checkpoint_every: iterations between checkpoints (0: every epoch).
        val: validation settings (None: no validation).
        tokenizer: saved with the checkpoints; decodes generated captions for caption metrics.
        meta: free-form metadata stored in every checkpoint's meta.json (the resolved recipe, ...).
        device: default `distributed.default_device()`.
        progress: show a progress bar with loss, lr and samples/s.
        tensorboard: also log to TensorBoard when it is installed.
        on_step: called after every iteration (tests use it to simulate a crash).
    """
    stage_dir = Path(stage_dir)
    if [d.level for d in data] != list(args.levels):
        raise ValueError(f"data levels {[d.level for d in data]} do not match the stage's levels {args.levels}")
    distributed.init_if_needed()
    rank, world = distributed.rank_world()
    device = torch.device(device or distributed.default_device())
    streams = _make_streams(data, args, seed, rank, world)
    plan = _plan_steps(args, streams, val, checkpoint_every)
    run = _StageRun(model, data, args, stage_dir, streams, plan, tokenizer, dict(meta or {}), device, rank, world)
    run.resume()
    log = _Log(stage_dir / LOG_FILE, run.main, run.step, tensorboard)
    net = _parallel(model, args, device, world)

    bar = _stage_bar(args.name, plan.total, run.step) if progress and run.main else None
    t0, seen = time.perf_counter(), 0
    try:
        while run.step < plan.total:
            lr, losses, samples = run.iteration(net)
            seen += samples
            rate = seen / max(time.perf_counter() - t0, 1e-9)
            log.write(
                {"step": run.step, "lr": lr, "samples_per_s": rate, **{f"train/{k}/loss": v for k, v in losses.items()}}
            )
            if bar is not None:
                bar.update(1)
                bar.set_postfix(
                    {**{k: f"{v:.4f}" for k, v in losses.items()}, "lr": f"{lr:.2e}", "samples/s": f"{rate:.1f}"}
                )
            done = run.step == plan.total
            if val is not None and (done or run.step % plan.val_every == 0):
                run.validate(val, log)
            checkpointed = done or run.step % plan.ckpt_every == 0
            if checkpointed:
                run.checkpoint()
            if on_step is not None:
                on_step(StepInfo(run.step, plan.total, losses, lr, checkpointed))
    finally:
        if bar is not None:
            bar.close()
        log.close()
    return run.save_final()


def _stage_bar(name: str, total: int, initial: int) -> Any:
    """The stage's progress bar (loss, lr and samples/s go in its postfix)."""
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=name, unit="it", dynamic_ncols=True)


def _make_streams(data: Sequence[LevelData], args: TrainArgs, seed: int, rank: int, world: int) -> list[_Stream]:
    """One batch stream per level, each a whole number of optimizer steps long per epoch."""
    return [
        _Stream(
            d,
            batch_size=args.batch_size,
            seed=seed,
            rank=rank,
            world=world,
            multiple=args.accumulation * args.steps_per_iteration(d.level),
            num_workers=args.num_workers,
        )
        for d in data
    ]


@dataclass
class _StepPlan:
    """How long a stage runs and when it checkpoints and validates, in iterations."""

    total: int
    schedule: CosineSchedule
    ckpt_every: int
    val_every: int  # 0 without validation


def _plan_steps(args: TrainArgs, streams: Sequence[_Stream], val: ValArgs | None, checkpoint_every: int) -> _StepPlan:
    """Iterations, the learning-rate schedule and the checkpoint/validation periods of a stage.

    An epoch is one pass over the first level's data; the schedule may start `schedule_offset_epochs` in (a stage
    that continues another's cosine curve), and warmup never outlasts the whole schedule.
    """
    first = streams[0]
    iters_per_epoch = first.batches_per_epoch // (args.accumulation * args.steps_per_iteration(first.level))
    total = args.max_steps or max(1, round(args.epochs * iters_per_epoch))
    offset = round(args.schedule_offset_epochs * iters_per_epoch)
    warmup = args.warmup_steps if args.warmup_steps is not None else round(args.warmup_epochs * iters_per_epoch)
    schedule = CosineSchedule(
        lr=args.lr,
        lr_end=args.lr_end,
        total_steps=max(offset + total, warmup, 1),
        warmup_steps=min(warmup, offset + total),
        lr_start=args.lr_start,
        offset_steps=offset,
    )
    ckpt_every = checkpoint_every or iters_per_epoch
    val_every = (val.every_steps or iters_per_epoch) if val is not None else 0
    return _StepPlan(total, schedule, ckpt_every, val_every)


def _parallel(model: nn.Module, args: TrainArgs, device: torch.device, world: int) -> nn.Module:
    """The module the steps run through: `model` itself, or under torchrun its DistributedDataParallel wrapper."""
    if world <= 1:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    # a stage of several levels, or a model without both inputs, leaves some parameters without a gradient
    find_unused = len(args.levels) > 1 or model.config.modalities != "video+text"  # type: ignore[union-attr]
    return DDP(
        model,
        device_ids=[device.index] if device.type == "cuda" else None,
        find_unused_parameters=find_unused,
        bucket_cap_mb=200,
    )


class _StageRun:
    """The training state of one stage (model, optimizer, scaler, streams, iteration) and its named steps."""

    def __init__(
        self,
        model: nn.Module,
        data: Sequence[LevelData],
        args: TrainArgs,
        stage_dir: Path,
        streams: list[_Stream],
        plan: _StepPlan,
        tokenizer: Any,
        meta: dict[str, Any],
        device: torch.device,
        rank: int,
        world: int,
    ) -> None:
        self.model, self.data, self.args, self.stage_dir = model, data, args, stage_dir
        self.streams, self.plan, self.tokenizer, self.meta = streams, plan, tokenizer, meta
        self.device, self.rank, self.world, self.main = device, rank, world, rank == 0
        self.amp = autocast_dtype(device, args.precision)
        self.pad = model.config.tokens.pad_token_id  # type: ignore[union-attr]
        model.to(device)
        model.train()
        self.optimizer = build_optimizer(
            model,  # type: ignore[arg-type]
            lr=args.lr,
            weight_decay=args.weight_decay,
            betas=args.betas,
            eps=args.eps,
        )
        # loss scaling only for fp16: bf16 has fp32's exponent range
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp == torch.float16)
        self.trainable = [p for p in model.parameters() if p.requires_grad]
        self.step = 0

    def resume(self) -> None:
        """Continue from `last/` when it holds this stage's state: weights, optimizer, scaler, data positions, RNG."""
        if self.main:
            _recover_last(self.stage_dir)
        distributed.barrier()
        last = self.stage_dir / LAST_DIR
        if not (last / TRAIN_STATE_FILE).is_file():
            return
        state = load_train_state(last / TRAIN_STATE_FILE)
        if state.get("stage") != self.args.name or len(state.get("streams", [])) != len(self.streams):
            raise CheckpointError(f"{last}: holds the state of another stage ({state.get('stage')!r})")
        load_weights(self.model, last)
        self.model.to(self.device)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        for s, st in zip(self.streams, state["streams"], strict=True):
            s.epoch, s.position = int(st["epoch"]), int(st["position"])
        self.step = int(state["step"])
        rngs = state["rng"]
        set_rng_state(rngs[self.rank] if self.rank < len(rngs) else rngs[0])
        logger.info("%s: resumed at iteration %d of %d from %s", self.args.name, self.step, self.plan.total, last)

    def iteration(self, net: nn.Module) -> tuple[float, dict[str, float], int]:
        """One iteration: every level's optimizer steps at this iteration's learning rate.

        Returns (lr, the last loss of each level, samples seen by all ranks).
        """
        args = self.args
        lr = self.plan.schedule(self.step)
        set_lr(self.optimizer, lr)
        losses: dict[str, float] = {}
        samples = 0
        for stream in self.streams:
            for _ in range(args.steps_per_iteration(stream.level)):
                losses[stream.level] = _optimizer_step(
                    net, self.optimizer, self.scaler, stream, args, self.trainable, self.amp, self.device, self.pad,
                    self.world,
                )  # fmt: skip
                samples += args.batch_size * args.accumulation * self.world
        self.step += 1
        return lr, losses, samples

    def checkpoint(self) -> None:
        """Write `last/` (rank 0) with every rank's RNG state, so each continues its own dropout stream."""
        rngs = [rng_state()]
        if self.world > 1:
            import torch.distributed as dist

            gathered: list[Any] = [None] * self.world
            dist.all_gather_object(gathered, rngs[0])
            rngs = gathered
        if self.main:
            state = {
                "stage": self.args.name,
                "step": self.step,
                "total_steps": self.plan.total,
                "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict(),
                "streams": [s.state() for s in self.streams],
                "rng": rngs,
            }
            meta = {**self.meta, "stage": self.args.name, "step": self.step}
            _save_last(self.stage_dir, self.model, self.tokenizer, meta, state)
        distributed.barrier()

    def validate(self, val: ValArgs, log: _Log) -> None:
        """Validation losses (and caption metrics when due) on rank 0, logged; the other ranks wait."""
        if self.main:
            step = self.step
            due = step == self.plan.total or (val.caption_every_steps and step % val.caption_every_steps == 0)
            res = validate(
                self.model,
                self.data,
                batch_size=self.args.batch_size,
                loss_mode=self.args.loss_mode,
                device=self.device,
                max_batches=val.max_batches,
                caption_samples=val.caption_samples if due else 0,
                tokenizer=self.tokenizer,
                metrics=val.metrics,
            )
            if res:
                log.write({"step": step, **res})
                logger.info("%s step %d: %s", self.args.name, step, ", ".join(f"{k} {v:.4g}" for k, v in res.items()))
        distributed.barrier()

    def save_final(self) -> Path:
        """Write `final/` (rank 0, atomically) and return it."""
        final = self.stage_dir / FINAL_DIR
        if self.main:
            from videorecap.checkpoint import save_pretrained

            meta = {**self.meta, "stage": self.args.name, "step": self.step}
            save_pretrained(self.model, final, tokenizer=self.tokenizer, meta=meta, overwrite=True)  # type: ignore[arg-type]
            logger.info("%s: done after %d iterations; model in %s", self.args.name, self.step, final)
        distributed.barrier()
        return final


def _optimizer_step(
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    stream: _Stream,
    args: TrainArgs,
    trainable: list[torch.Tensor],
    amp: torch.dtype | None,
    device: torch.device,
    pad: int,
    world: int,
) -> float:
    """One optimizer step on `accumulation` micro-batches of one level; returns the step's (global) mean loss."""
    batches = [_to(stream.next(), device) for _ in range(args.accumulation)]
    counts = torch.tensor([_count(b, args.loss_mode, pad) for b in batches], dtype=torch.float64)
    n_global = counts.sum().clone()
    if world > 1:
        import torch.distributed as dist

        n_global = n_global.to(device)
        dist.all_reduce(n_global)
        n_global = n_global.cpu()
    # each rank's share of the global mean; DDP then averages gradients over ranks, hence the factor `world`
    denom = max(float(n_global), 1.0) / world
    loss_sum = torch.zeros((), dtype=torch.float64)
    optimizer.zero_grad(set_to_none=True)
    for k, batch in enumerate(batches):
        sync = k == len(batches) - 1
        ctx = net.no_sync() if (world > 1 and not sync) else contextlib.nullcontext()  # type: ignore[operator]
        with ctx:
            loss = _forward(net, stream.level, batch, args.loss_mode, amp)
            weight = float(counts[k]) / denom
            scaler.scale(loss * weight).backward()
        loss_sum += loss.detach().double().cpu() * float(counts[k])
    if args.grad_clip is not None:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(trainable, args.grad_clip)
    scaler.step(optimizer)
    scaler.update()
    if world > 1:
        import torch.distributed as dist

        loss_sum = loss_sum.to(device)
        dist.all_reduce(loss_sum)
        loss_sum = loss_sum.cpu()
    return float(loss_sum) / max(float(n_global), 1.0)


def args_dict(args: TrainArgs) -> dict[str, Any]:
    """The stage settings as plain JSON-able values."""
    d = asdict(args)
    d["betas"] = list(args.betas)
    return d
