"""AdamW with the original's parameter groups, and its cosine learning-rate schedule with linear warm-up.

Parameter groups (reference §3.1): weight decay applies to trainable tensors with ndim >= 2 whose name contains
neither "bias" nor "ln" (so the learned queries *do* get decay); everything else trainable gets none. Frozen tensors
are left out of the optimizer.

Schedule: the original's `cosine_scheduler` builds one value per iteration: a linear ramp from `lr_start` to `lr`
over the warm-up iterations, then `lr_end + (lr - lr_end) * (1 + cos(pi * i / n)) / 2` over the rest. The later
stages of the official recipe run a slice of a longer schedule (segment: epochs 5..15 of a 15-epoch curve, no
warm-up left); `offset_steps` reproduces that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups of the trainable parameters: with decay (ndim >= 2, no "bias"/"ln" in the name) and without."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim < 2 or "bias" in name or "ln" in name:
            no_decay.append(p)
        else:
            decay.append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def build_optimizer(
    model: nn.Module,
    *,
    lr: float,
    weight_decay: float = 0.01,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> torch.optim.AdamW:
    """AdamW over the trainable parameters with the original's decay groups."""
    groups = param_groups(model, weight_decay)
    if not groups:
        raise ValueError("the model has no trainable parameters")
    # foreach=False keeps the update order (and so the bits) the same across runs and resumes
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, foreach=False)


@dataclass
class CosineSchedule:
    """Learning rate per optimizer iteration: linear warm-up, then cosine decay to `lr_end`.

    Args:
        lr: the peak learning rate (after warm-up).
        lr_end: the final learning rate.
        total_steps: length of the whole curve, in iterations (offset included).
        warmup_steps: iterations of linear warm-up from `lr_start`.
        lr_start: the learning rate at iteration 0 of the warm-up.
        offset_steps: where this run starts on the curve (the original's later stages start partway down).
    """

    lr: float
    lr_end: float
    total_steps: int
    warmup_steps: int = 0
    lr_start: float = 0.0
    offset_steps: int = 0

    def __post_init__(self) -> None:
        if self.total_steps < 1:
            raise ValueError(f"total_steps must be positive, not {self.total_steps}")
        if not 0 <= self.warmup_steps <= self.total_steps:
            raise ValueError(f"warmup_steps must be in [0, total_steps], not {self.warmup_steps}")

    def __call__(self, step: int) -> float:
        """The learning rate of this run's iteration `step` (0-based)."""
        i = step + self.offset_steps
        if i < self.warmup_steps:
            # the original: np.linspace(lr_start, lr, warmup_iters), so the last warm-up value is lr itself
            if self.warmup_steps == 1:
                return self.lr
            return self.lr_start + (self.lr - self.lr_start) * i / (self.warmup_steps - 1)
        n = self.total_steps - self.warmup_steps
        j = min(i - self.warmup_steps, n)
        if n <= 0:
            return self.lr_end
        return self.lr_end + 0.5 * (self.lr - self.lr_end) * (1.0 + math.cos(math.pi * j / n))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for g in optimizer.param_groups:
        g["lr"] = lr
