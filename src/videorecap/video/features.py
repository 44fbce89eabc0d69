"""Feature extraction: the encoder's CLS feature of every 4-s window of a video, as the original stores it.

`extract_features(path, encoder)` returns a `(windows, width)` float32 array, one row per clip window of
`sampling.window_plan` (the plan `videorecap caption` uses; the layout the segment and video levels read: row `i` is
the window `[4 i, 4 i + 4)`, `ceil(duration / 4)` rows, less one when a tail shorter than `min_tail_seconds` joins
the last window), or with `all_tokens=True` the encoder's whole token output `(N, 1 + T * P, width)` whose row 0 is
that CLS feature.

`extract_video(...)` is the resumable per-video driver used by `videorecap features`: the result goes to
`{out_dir}/{video_id}.npy` through an atomic rename, finished videos are skipped, and a long video is checkpointed
in chunks of windows (entries `c00003` of a resumable store, `videorecap.store`, in `{chunk_dir}/{video_id}/`) so
that an interrupted run resumes at the first missing chunk, seeking there instead of decoding from the start.

Decoding and transforms run in a background thread (`reader.prefetch`), batches of windows go through the encoder
under `torch.inference_mode`; on a GPU with bf16/fp16 autocast and pinned host memory, on a CPU in fp32.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from videorecap import fileio
from videorecap.errors import InputError, VideoError
from videorecap.store import Store, file_identity
from videorecap.store import clear as clear_store
from videorecap.video.io import VideoInfo, probe
from videorecap.video.reader import iter_windows, prefetch
from videorecap.video.sampling import DEFAULT_MIN_TAIL_SECONDS, segment_feature_windows, window_plan
from videorecap.video.transforms import eval_transform

logger = logging.getLogger(__name__)

Window = tuple[float, float]

# Windows per checkpoint chunk: 225 x 4 s = 15 minutes of video.
DEFAULT_CHUNK_WINDOWS = 225


# ---- encoder plumbing -------------------------------------------------------------------------------------------
def encoder_geometry(encoder: nn.Module) -> tuple[int, int, int]:
    """(num_frames, image_size, width) of an encoder with a `config` (or `cfg`) `EncoderConfig`."""
    cfg = getattr(encoder, "config", None) or getattr(encoder, "cfg", None)
    if cfg is None:
        raise ValueError("the encoder has no `config`; pass num_frames and image_size explicitly")
    return int(cfg.num_frames), int(cfg.image_size), int(cfg.width)


def autocast_dtype(device: str | torch.device, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype for `device`: None (fp32) on CPU; bf16 on GPUs that have it, else fp16."""
    dev = torch.device(device)
    if precision == "fp32" or dev.type != "cuda":
        return None
    if precision == "fp16":
        return torch.float16
    if precision == "bf16":
        return torch.bfloat16
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


@dataclass
class _Batch:
    first: int  # index of the first window of the batch
    x: torch.Tensor  # (B, 3, T, S, S)


def _batches(
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
) -> Iterator[_Batch]:
    """Decode + transform windows, grouped into batches (runs in the prefetch thread)."""
    buf: list[torch.Tensor] = []
    first = first_index
    for i, frames in iter_windows(path, windows, num_frames, info=info, grid_fps=grid_fps, allow_partial=allow_partial):
        if not buf:
            first = first_index + i
        buf.append(eval_transform(frames, image_size))  # (3, T, S, S)
        if len(buf) == batch_size:
            x = torch.stack(buf)
            yield _Batch(first, x.pin_memory() if pin else x)
            buf = []
    if buf:
        x = torch.stack(buf)
        yield _Batch(first, x.pin_memory() if pin else x)


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
    """Timing of one encode run: windows done, seconds in total and spent waiting for decoded frames."""

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
    amp = autocast_dtype(dev, precision)
    pin = dev.type == "cuda"
    stats = stats if stats is not None else EncodeStats()
    t_last = time.perf_counter()
    waited = 0.0
    producer = _batches(path, windows, first_index, num_frames, image_size, batch_size, info, grid_fps,
                        allow_partial, pin)  # fmt: skip
    with _eval_mode(encoder), prefetch(producer, depth=prefetch_depth) as batches:
        for batch in batches:
            t0 = time.perf_counter()
            x = batch.x.to(dev, non_blocking=pin)
            with torch.inference_mode(), torch.autocast(dev.type, dtype=amp, enabled=amp is not None):
                out = encoder(x) if all_tokens else encoder(x, cls_only=True)
            out = out.float().cpu().numpy()
            stats.encode_seconds += time.perf_counter() - t0
            stats.windows += out.shape[0]
            stats.wait_seconds += batches.wait_seconds - waited
            waited = batches.wait_seconds
            stats.seconds += time.perf_counter() - t_last
            t_last = time.perf_counter()
            if all_tokens:
                yield batch.first, np.ascontiguousarray(out[:, 0]), out
            else:
                yield batch.first, out, None


def extract_features(
    path: str | os.PathLike[str],
    encoder: nn.Module,
    *,
    clip_seconds: float = 4.0,
    batch_size: int = 8,
    all_tokens: bool = False,
    chunk_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
    device: str | torch.device = "cpu",
    precision: str = "auto",
    windows: Sequence[Window] | None = None,
    grid_fps: float | None = None,
    allow_partial: bool = False,
    chunk_windows: int = DEFAULT_CHUNK_WINDOWS,
    min_tail_seconds: float = DEFAULT_MIN_TAIL_SECONDS,
) -> np.ndarray:
    """Features of every `clip_seconds` window of one video (or of `windows`).

    Returns:
        (N, width) float32 CLS features, one per window of `window_plan(duration, clip_seconds,
        min_tail_seconds=min_tail_seconds).clips` (`ceil(duration / clip_seconds)` without a short tail); with
        `all_tokens`, the (N, 1 + T * P, width) token outputs. With `allow_partial`, N may be smaller for a broken
        file.

    With `chunk_dir`, finished chunks of `chunk_windows` windows are saved there while the video is processed, so a
    call interrupted part-way resumes at the first missing chunk; they are removed once the whole result is back.
    """
    path = Path(path)
    info = probe(path)
    if windows is not None:
        plan = list(windows)
    else:
        plan = window_plan(info.duration, clip_seconds, min_tail_seconds=min_tail_seconds).clips
    cls, tokens = _extract_chunked(
        path, encoder, plan, info=info, batch_size=batch_size, all_tokens=all_tokens, chunk_dir=chunk_dir,
        chunk_windows=chunk_windows, progress=progress, device=device, precision=precision, grid_fps=grid_fps,
        allow_partial=allow_partial, key=path.stem,
    )  # fmt: skip
    if chunk_dir is not None:
        remove_chunks(chunk_dir, path.stem)  # the caller has the whole result now
    return tokens if all_tokens else cls  # type: ignore[return-value]


# ---- chunked, resumable extraction ------------------------------------------------------------------------------
def _extract_chunked(
    path: Path,
    encoder: nn.Module,
    plan: Sequence[Window],
    *,
    info: VideoInfo,
    batch_size: int,
    all_tokens: bool,
    chunk_dir: str | os.PathLike[str] | None,
    chunk_windows: int,
    progress: bool,
    device: str | torch.device,
    precision: str,
    grid_fps: float | None,
    allow_partial: bool,
    key: str,
    stats: EncodeStats | None = None,
    on_windows: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """CLS (and token) features of `plan`, resuming from and saving to chunk files when `chunk_dir` is set."""
    if chunk_windows < 1:
        raise ValueError(f"chunk_windows must be >= 1, got {chunk_windows}")
    n = len(plan)
    num_chunks = (n + chunk_windows - 1) // chunk_windows
    done: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
    store = None
    if chunk_dir is not None and num_chunks > 1:  # a video of one chunk has nothing to resume
        nf, size, width = encoder_geometry(encoder)
        store = Store.open(
            chunk_store_path(chunk_dir, key),
            {"plan": [plan[0], plan[-1], n] if plan else [], "nf": nf, "size": size, "width": width,
             "tokens": all_tokens, "grid": grid_fps, "chunk": chunk_windows, "video": file_identity(path)},
        )  # fmt: skip
        done = _load_chunks(store, num_chunks, all_tokens)
        if done:
            logger.info("%s: resuming, %d of %d chunks already done", path, len(done), num_chunks)
    missing = [c for c in range(num_chunks) if c not in done]

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n, desc=key[:30], unit="clip", leave=False, dynamic_ncols=True)
        bar.update(sum(len(v[0]) for v in done.values()))

    # Contiguous runs of missing chunks are decoded in one pass each (usually a single run at the end).
    runs: list[list[int]] = []
    for c in missing:
        if runs and runs[-1][-1] == c - 1:
            runs[-1].append(c)
        else:
            runs.append([c])
    partial_stop = False
    try:
        for run in runs:
            lo, hi = run[0] * chunk_windows, min(n, (run[-1] + 1) * chunk_windows)
            cur_chunk = run[0]
            cls_buf: list[np.ndarray] = []
            tok_buf: list[np.ndarray] = []
            got = lo
            for first, cls, tok in encode_windows(
                path, encoder, plan[lo:hi], first_index=lo, batch_size=batch_size, all_tokens=all_tokens,
                device=device, precision=precision, grid_fps=grid_fps, info=info, allow_partial=allow_partial,
                stats=stats,
            ):  # fmt: skip
                for j in range(cls.shape[0]):
                    idx = first + j
                    cls_buf.append(cls[j])
                    if tok is not None:
                        tok_buf.append(tok[j])
                    got = idx + 1
                    end_of_chunk = min(n, (cur_chunk + 1) * chunk_windows)
                    if got == end_of_chunk:
                        arr = np.stack(cls_buf).astype(np.float32)
                        tarr = np.stack(tok_buf).astype(np.float32) if all_tokens else None
                        done[cur_chunk] = (arr, tarr)
                        if store is not None:
                            store.put(
                                _chunk_key(cur_chunk), arrays={"cls": arr, **({"tokens": tarr} if all_tokens else {})}
                            )
                        cls_buf, tok_buf = [], []
                        cur_chunk += 1
                if bar is not None:
                    bar.update(cls.shape[0])
                if on_windows is not None:
                    on_windows(cls.shape[0])
            if got < hi:  # allow_partial stopped early: keep what is contiguous from window 0
                if cls_buf:
                    done[cur_chunk] = (np.stack(cls_buf).astype(np.float32),
                                       np.stack(tok_buf).astype(np.float32) if all_tokens else None)  # fmt: skip
                partial_stop = True
                break
    finally:
        if bar is not None:
            bar.close()

    parts = []
    for c in range(num_chunks):
        if c not in done:
            break
        parts.append(done[c])
        if len(done[c][0]) < min(chunk_windows, n - c * chunk_windows):
            break  # a partial last chunk
    if partial_stop:
        logger.warning("%s: kept %d of %d windows", path, sum(len(p[0]) for p in parts), n)
    width = encoder_geometry(encoder)[2]
    cls_all = np.concatenate([p[0] for p in parts]) if parts else np.zeros((0, width), np.float32)
    tok_all = None
    if all_tokens:
        tok_all = np.concatenate([p[1] for p in parts]) if parts else np.zeros((0, 0, width), np.float32)  # type: ignore[misc]
    return cls_all, tok_all


def chunk_store_path(chunk_dir: str | os.PathLike[str], key: str) -> Path:
    """The resumable store (`videorecap.store`) of one output's chunks: `{chunk_dir}/{key}/`."""
    return Path(chunk_dir) / key


def _chunk_key(c: int) -> str:
    return f"c{c:05d}"


def _load_chunks(store: Store, num_chunks: int, tokens: bool) -> dict[int, tuple[np.ndarray, np.ndarray | None]]:
    out: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
    for c in range(num_chunks):
        entry = store.get(_chunk_key(c))  # an unreadable chunk is dropped (with a warning) and recomputed
        if entry is None:
            continue
        if "cls" not in entry.arrays or (tokens and "tokens" not in entry.arrays):
            logger.warning("%s: chunk %d lacks its arrays; recomputing it", store.root, c)
            continue
        out[c] = (entry.arrays["cls"], entry.arrays["tokens"] if tokens else None)
    return out


def remove_chunks(root: str | os.PathLike[str], key: str) -> None:
    """Delete the chunks of one output (after its final file is written)."""
    clear_store(chunk_store_path(root, key))


# ---- the per-video driver ---------------------------------------------------------------------------------------
@dataclass
class FeatureJob:
    """One output file: the windows of `video` whose features go to `{out_dir}/{key}.npy`."""

    video: Path
    key: str  # the output name: a video id, or a segment id (`sid`)
    start: float | None = None  # a segment job: [start, end) of the video
    end: float | None = None


@dataclass
class JobResult:
    job: FeatureJob
    status: str  # "done", "skipped" or "failed"
    windows: int = 0
    seconds: float = 0.0
    error: str | None = None
    stats: EncodeStats = field(default_factory=EncodeStats)


def output_path(out_dir: str | os.PathLike[str], key: str, tokens: bool = False) -> Path:
    return Path(out_dir) / (f"{key}.tokens.npy" if tokens else f"{key}.npy")


def extract_job(
    job: FeatureJob,
    out_dir: str | os.PathLike[str],
    encoder: nn.Module,
    *,
    clip_seconds: float = 4.0,
    min_tail_seconds: float = DEFAULT_MIN_TAIL_SECONDS,
    min_segment_windows: int = 45,
    batch_size: int = 8,
    all_tokens: bool = False,
    tokens_dtype: str = "float16",
    chunk_dir: str | os.PathLike[str] | None = None,
    chunk_windows: int = DEFAULT_CHUNK_WINDOWS,
    device: str | torch.device = "cpu",
    precision: str = "auto",
    grid_fps: float | None = None,
    allow_partial: bool = False,
    overwrite: bool = False,
    progress: bool = False,
    on_windows: Callable[[int], None] | None = None,
) -> JobResult:
    """Write the features of one job atomically; skip it when its output exists. Never raises for one video's
    failure (a bad video, a write error, running out of memory): it gives a "failed" result with a one-line message
    (the traceback of an unexpected error is logged at debug level)."""
    out = output_path(out_dir, job.key)
    tok_out = output_path(out_dir, job.key, tokens=True)
    if not overwrite and out.exists() and (not all_tokens or tok_out.exists()):
        return JobResult(job, "skipped")
    t0 = time.perf_counter()
    stats = EncodeStats()
    try:
        info = probe(job.video)
        if job.start is None:
            plan = window_plan(info.duration, clip_seconds, min_tail_seconds=min_tail_seconds).clips
        else:
            end = min(job.end if job.end is not None else info.duration, info.duration)
            plan = segment_feature_windows(job.start, end, min_segment_windows, clip_seconds)
            if not plan:
                raise VideoError(f"{job.video}: segment {job.key} [{job.start}, {job.end}) is outside the video")
        cls, tok = _extract_chunked(
            job.video, encoder, plan, info=info, batch_size=batch_size, all_tokens=all_tokens,
            chunk_dir=chunk_dir, chunk_windows=chunk_windows, progress=progress, device=device,
            precision=precision, grid_fps=grid_fps, allow_partial=allow_partial, key=job.key, stats=stats,
            on_windows=on_windows,
        )  # fmt: skip
        if len(cls) == 0:
            raise VideoError(f"{job.video}: no window could be decoded")
        if tok is not None:
            fileio.save_npy(tok_out, tok.astype(tokens_dtype))
        fileio.save_npy(out, cls.astype(np.float32))
        if chunk_dir is not None:
            remove_chunks(chunk_dir, job.key)
    except VideoError as e:
        logger.debug("%s failed: %s", job.video, e)
        return JobResult(job, "failed", error=str(e), seconds=time.perf_counter() - t0, stats=stats)
    except Exception as e:  # noqa: BLE001 - a full disk, out of memory, a bug: this video fails, the others go on
        logger.debug("%s failed", job.video, exc_info=True)
        what = " ".join(str(e).split())[:300] or type(e).__name__
        error = f"{job.video}: failed with {type(e).__name__}: {what}"
        return JobResult(job, "failed", error=error, seconds=time.perf_counter() - t0, stats=stats)
    return JobResult(job, "done", windows=len(cls), seconds=time.perf_counter() - t0, stats=stats)


# ---- inputs -----------------------------------------------------------------------------------------------------
def video_jobs(videos: Sequence[Path]) -> list[FeatureJob]:
    """One job per video, keyed by the file name without extension (the video id, made safe as a file name by
    `fileio.safe_output_name`: `ID.npy` is always inside the output folder)."""
    jobs = [FeatureJob(v, fileio.safe_output_name(v.stem)) for v in videos]
    keys: dict[str, Path] = {}
    for j in jobs:
        key = fileio.name_key(j.key)  # "A.mp4" and "a.mp4" would share one ID.npy on a case-insensitive disk
        if key in keys:
            raise InputError(f"{j.video}: same video id {j.key!r} as {keys[key]}; outputs would collide")
        keys[key] = j.video
    return jobs


def segment_jobs(segments_file: str | os.PathLike[str], video_root: str | os.PathLike[str]) -> list[FeatureJob]:
    """One job per segment of an Ego4D-HCap `segments_*.pkl` (or JSON): `{video_root}/{vid}.mp4` -> `{sid}.npy`."""
    from videorecap.data.hcap import load_segments

    root = Path(video_root)
    jobs = []
    for row in load_segments(segments_file):
        if "sid" not in row:
            raise InputError(f"{segments_file}: segment of video {row.get('vid')!r} has no 'sid'")
        video = root / f"{row['vid']}.mp4"
        sid = fileio.safe_output_name(str(row["sid"]))  # a hostile sid ("../x") must not write outside -o
        jobs.append(FeatureJob(video, sid, float(row["start_sec"]), float(row["end_sec"])))
    return jobs


def run_jobs(
    jobs: Sequence[FeatureJob],
    out_dir: str | os.PathLike[str],
    encoder: nn.Module,
    *,
    progress: bool = False,
    on_result: Callable[[JobResult], None] | None = None,
    **kwargs: Any,
) -> list[JobResult]:
    """Run `extract_job` over `jobs` (this process's share), one bar per video and one overall (clips/s).

    A failed video does not stop the others; `on_result` is called after each job (the CLI reports errors there).
    Keyword arguments go to `extract_job`.
    """
    overall = None
    if progress and len(jobs) > 1:
        from tqdm import tqdm

        overall = tqdm(total=len(jobs), desc="videos", unit="video", dynamic_ncols=True)
    results = []
    t0 = time.perf_counter()
    clips = 0

    def count(k: int) -> None:
        nonlocal clips
        clips += k
        if overall is not None:
            overall.set_postfix_str(f"{clips / max(time.perf_counter() - t0, 1e-9):.1f} clips/s", refresh=False)

    try:
        for job in jobs:
            res = extract_job(job, out_dir, encoder, progress=progress, on_windows=count, **kwargs)
            results.append(res)
            if on_result is not None:
                on_result(res)
            if overall is not None:
                overall.update(1)
    finally:
        if overall is not None:
            overall.close()
    return results
