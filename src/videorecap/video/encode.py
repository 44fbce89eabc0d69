"""The encoder step: windows of one video -> the encoder's CLS features (and, optionally, all its tokens).

`encode_windows(path, encoder, windows)` decodes and transforms the windows in a background thread
(`reader.prefetch`), runs them through the encoder batch by batch under `torch.inference_mode` (on a GPU with
bf16/fp16 autocast, `runtime.autocast_dtype`, and pinned host memory; on a CPU in fp32), and yields
`(first_window_index, cls (B, width), tokens (B, L, width) or None)` in order. It knows nothing of output files,
resuming or many videos: that is the job runner, `video/features.py`.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from videorecap.runtime import autocast_dtype, compute_context, encoder_map
from videorecap.video.io import VideoInfo, probe
from videorecap.video.reader import iter_windows, prefetch
from videorecap.video.transforms import eval_transform

Window = tuple[float, float]


# ---- the encoder step ------------------------------------------------------------------------------------------------
def encoder_geometry(encoder: nn.Module) -> tuple[int, int, int]:
    """(num_frames, image_size, width) of an encoder with a `config` (or `cfg`) `EncoderConfig`."""
    cfg = getattr(encoder, "config", None) or getattr(encoder, "cfg", None)
    if cfg is None:
        raise ValueError("the encoder has no `config`; pass num_frames and image_size explicitly")
    return int(cfg.num_frames), int(cfg.image_size), int(cfg.width)


@dataclass
class DecodedBatch:
    first: int  # index of the first window of the batch
    x: torch.Tensor  # (B, 3, T, S, S)


def decode_batches(
    path: Path,
    windows: Sequence[Window],
    first_index: int,
    num_frames: int,
    image_size: int,
    batch_size: int,
    info: VideoInfo,
    grid_fps: float | None,
    allow_partial: bool,
    pin: bool,
) -> Iterator[DecodedBatch]:
    """Decode + transform windows, grouped into batches of `batch_size` from `first_index` (runs in the prefetch
    thread here, and in the Ray pipeline's decode tasks, `videorecap.raydata`)."""
    buf: list[torch.Tensor] = []
    first = first_index
    for i, frames in iter_windows(path, windows, num_frames, info=info, grid_fps=grid_fps, allow_partial=allow_partial):
        if not buf:
            first = first_index + i
        buf.append(eval_transform(frames, image_size))  # (3, T, S, S)
        if len(buf) == batch_size:
            x = torch.stack(buf)
            yield DecodedBatch(first, x.pin_memory() if pin else x)
            buf = []
    if buf:
        x = torch.stack(buf)
        yield DecodedBatch(first, x.pin_memory() if pin else x)


@contextlib.contextmanager
def _eval_mode(encoder: nn.Module) -> Iterator[None]:
    """Dropout off while extracting; the previous mode is restored after."""
    was = encoder.training
    encoder.eval()
    try:
        yield
    finally:
        encoder.train(was)


@dataclass
class EncodeStats:
    """Timing of one encode run: windows done, seconds in total and spent waiting for decoded frames, and the
    encoder's seconds summed over its batches (above the total when several batches were encoded at once:
    `runtime.encoder_workers`)."""

    windows: int = 0
    seconds: float = 0.0
    wait_seconds: float = 0.0
    encode_seconds: float = 0.0


def encode_windows(
    path: str | os.PathLike[str],
    encoder: nn.Module,
    windows: Sequence[Window],
    *,
    first_index: int = 0,
    batch_size: int = 8,
    all_tokens: bool = False,
    device: str | torch.device = "cpu",
    precision: str = "auto",
    num_frames: int | None = None,
    image_size: int | None = None,
    grid_fps: float | None = None,
    info: VideoInfo | None = None,
    allow_partial: bool = False,
    prefetch_depth: int = 4,
    stats: EncodeStats | None = None,
) -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
    """Yield `(first_window_index, cls (B, width), tokens (B, L, width) or None)` batch by batch, in order."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    path = Path(path)
    info = info or probe(path)
    if num_frames is None or image_size is None:
        nf, size, _ = encoder_geometry(encoder)
        num_frames = num_frames or nf
        image_size = image_size or size
    dev = torch.device(device)
    pin = dev.type == "cuda"
    stats = stats if stats is not None else EncodeStats()
    t_last = time.perf_counter()
    waited = 0.0
    producer = decode_batches(path, windows, first_index, num_frames, image_size, batch_size, info, grid_fps,
                        allow_partial, pin)  # fmt: skip

    def encode(batch: DecodedBatch) -> tuple[DecodedBatch, np.ndarray, np.ndarray | None, float]:
        t0 = time.perf_counter()  # in a worker thread: a context of its own (autocast is per thread)
        cls, tokens = encode_batch(encoder, batch.x, device=dev, compute=encoder_compute(dev, precision),
                                   all_tokens=all_tokens, non_blocking=pin)  # fmt: skip
        return batch, cls, tokens, time.perf_counter() - t0

    with (
        _eval_mode(encoder),
        prefetch(producer, depth=prefetch_depth) as batches,
        # batches encoded at once (`runtime.encoder_workers`), each as it would be alone; back in order
        encoder_map(encode, batches, dev, encoder) as encoded,
    ):
        for batch, cls, tokens, seconds in encoded:
            stats.encode_seconds += seconds
            stats.windows += cls.shape[0]
            stats.wait_seconds += batches.wait_seconds - waited
            waited = batches.wait_seconds
            stats.seconds += time.perf_counter() - t_last
            t_last = time.perf_counter()
            yield batch.first, cls, tokens


def encoder_compute(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The context the encoder runs under for `precision`. bf16/int8 asked for by name on a CPU (the CLI resolves
    its `auto` with runtime.resolve_precision) use the resolved precision's context; otherwise (a library caller's
    "auto", a GPU) autocast_dtype's rule (fp32 on a CPU)."""
    if device.type == "cpu" and precision in ("bf16", "int8"):
        return compute_context(device, precision)
    amp = autocast_dtype(device, precision)
    return torch.autocast(device.type, dtype=amp, enabled=amp is not None)


def encode_batch(
    encoder: nn.Module,
    x: torch.Tensor,
    *,
    device: torch.device,
    compute: contextlib.AbstractContextManager,
    all_tokens: bool = False,
    non_blocking: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """One batch of transformed windows `(B, 3, T, S, S)` through the encoder under `compute` (`encoder_compute`):
    `(cls (B, width), tokens (B, L, width) or None)`, float32. The one place the encoder runs for features
    (`encode_windows`, and the Ray pipeline's model stage, `videorecap.raydata`), so both give the same bytes for the
    same batch."""
    x = x.to(device, non_blocking=non_blocking)
    with torch.inference_mode(), compute:
        out = encoder(x) if all_tokens else encoder(x, cls_only=True)
    out = out.float().cpu().numpy()
    if all_tokens:
        return np.ascontiguousarray(out[:, 0]), out
    return out, None
