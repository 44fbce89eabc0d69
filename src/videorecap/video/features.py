"""The feature-extraction job runner: the encoder's CLS feature of every 4-s window of videos, as the original
stores them.

`extract_features(path, encoder)` returns a `(windows, width)` float32 array, one row per clip window of
`sampling.window_plan` (the plan `videorecap caption` uses; the layout the segment and video levels read: row `i` is
the window `[4 i, 4 i + 4)`, `ceil(duration / 4)` rows, less one when a tail shorter than `min_tail_seconds` joins
the last window), or with `all_tokens=True` the encoder's whole token output `(N, 1 + T * P, width)` whose row 0 is
that CLS feature.

`extract_job(...)` is the resumable per-output driver used by `videorecap features` (`run_jobs` runs a process's
share of them): the result goes to `{out_dir}/{video_id}.npy` through an atomic rename; an existing output is
skipped only when it is whole (readable, 2-D float32, one row per window of the video's plan, the encoder's width),
else it is recomputed with a warning; a long video is checkpointed in chunks of windows (entries `c00003` of a
resumable store, `videorecap.store`, in `{chunk_dir}/{video_id}/`) so that an interrupted run resumes at the first
missing chunk, seeking there instead of decoding from the start. The chunks' fingerprint holds the encoder's weights
hash, the precision and whether the encoder is compiled, so a run resumed with another encoder (or another
`--precision`, or `--compile` switched) starts the video over instead of mixing rows of both.

The encoder step itself (decoding, batching, autocast) is `video/encode.py`.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from videorecap import fileio
from videorecap.errors import InputError, VideoError, describe_os_error
from videorecap.store import Store, file_identity, weights_hash
from videorecap.store import clear as clear_store
from videorecap.video.encode import EncodeStats, Window, encode_windows, encoder_geometry
from videorecap.video.io import VideoInfo, probe
from videorecap.video.reader import READER_VERSION
from videorecap.video.sampling import DEFAULT_MIN_TAIL_SECONDS, segment_feature_windows, window_plan

logger = logging.getLogger(__name__)

# Windows per checkpoint chunk: 225 x 4 s = 15 minutes of video.
DEFAULT_CHUNK_WINDOWS = 225


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
Parts = dict[int, tuple[np.ndarray, np.ndarray | None]]  # chunk index -> (cls (n, width), tokens (n, L, width))


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
    done: Parts = {}
    store = None
    if chunk_dir is not None and num_chunks > 1:  # a video of one chunk has nothing to resume
        store = _open_chunk_store(chunk_dir, key, path, encoder, plan, all_tokens, grid_fps, chunk_windows, precision)
        done = _load_chunks(store, num_chunks, all_tokens)
        if done:
            logger.info("%s: resuming, %d of %d chunks already done", path, len(done), num_chunks)

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n, desc=key[:30], unit="clip", leave=False, dynamic_ncols=True)
        bar.update(sum(len(v[0]) for v in done.values()))

    def counted(k: int) -> None:
        if bar is not None:
            bar.update(k)
        if on_windows is not None:
            on_windows(k)

    partial_stop = False
    try:
        # Contiguous runs of missing chunks are decoded in one pass each (usually a single run at the end).
        for run in _missing_runs(num_chunks, done):
            complete = _encode_run(
                path, encoder, plan, run, done, store, chunk_windows=chunk_windows, batch_size=batch_size,
                all_tokens=all_tokens, device=device, precision=precision, grid_fps=grid_fps, info=info,
                allow_partial=allow_partial, stats=stats, on_windows=counted,
            )  # fmt: skip
            if not complete:  # allow_partial stopped early: keep what is contiguous from window 0
                partial_stop = True
                break
    finally:
        if bar is not None:
            bar.close()
    return _assemble(done, n, num_chunks, chunk_windows, encoder_geometry(encoder)[2], all_tokens, path, partial_stop)


def _open_chunk_store(
    chunk_dir: str | os.PathLike[str],
    key: str,
    path: Path,
    encoder: nn.Module,
    plan: Sequence[Window],
    all_tokens: bool,
    grid_fps: float | None,
    chunk_windows: int,
    precision: str,
) -> Store:
    """The chunk store of one output, under the fingerprint of everything its rows depend on.

    The encoder's weights hash is part of it: chunks a run made with another encoder (same geometry, other weights)
    are dropped when the store opens, so a resumed output never mixes rows of two encoders. So are `precision` (as
    the run was given it) and whether the encoder runs compiled (`--compile`), which change the rows in their last
    bits at least; each only when not the default, so that the chunks of plain fp32 runs keep their key.
    """
    from videorecap.compiled import CompiledEncoder

    nf, size, width = encoder_geometry(encoder)
    n = len(plan)
    fingerprint = {
        "plan": [plan[0], plan[-1], n] if plan else [], "nf": nf, "size": size, "width": width,
        "tokens": all_tokens, "grid": grid_fps, "chunk": chunk_windows, "video": file_identity(path),
        "weights": weights_hash(encoder), "reader": READER_VERSION,
        **({"precision": precision} if precision != "fp32" else {}),
        **({"compiled": True} if isinstance(encoder, CompiledEncoder) else {}),
    }  # fmt: skip
    return Store.open(chunk_store_path(chunk_dir, key), fingerprint)


def _missing_runs(num_chunks: int, done: Parts) -> list[list[int]]:
    """The chunks not in `done`, grouped into runs of consecutive indices (each run is decoded in one pass)."""
    runs: list[list[int]] = []
    for c in range(num_chunks):
        if c in done:
            continue
        if runs and runs[-1][-1] == c - 1:
            runs[-1].append(c)
        else:
            runs.append([c])
    return runs


def _encode_run(
    path: Path,
    encoder: nn.Module,
    plan: Sequence[Window],
    run: list[int],
    done: Parts,
    store: Store | None,
    *,
    chunk_windows: int,
    batch_size: int,
    all_tokens: bool,
    device: str | torch.device,
    precision: str,
    grid_fps: float | None,
    info: VideoInfo,
    allow_partial: bool,
    stats: EncodeStats | None,
    on_windows: Callable[[int], None],
) -> bool:
    """Encode the windows of one run of chunks into `done` (and the store, chunk by chunk as each fills).

    Returns False when `allow_partial` stopped the decoding early; the windows decoded so far are then kept in
    `done` as a short last chunk (not stored: a rerun tries that chunk again).
    """
    n = len(plan)
    lo, hi = run[0] * chunk_windows, min(n, (run[-1] + 1) * chunk_windows)
    cur_chunk = run[0]
    cls_buf: list[np.ndarray] = []
    tok_buf: list[np.ndarray] = []
    got = lo
    for first, cls, tok in encode_windows(
        path, encoder, plan[lo:hi], first_index=lo, batch_size=batch_size, all_tokens=all_tokens, device=device,
        precision=precision, grid_fps=grid_fps, info=info, allow_partial=allow_partial, stats=stats,
    ):  # fmt: skip
        for j in range(cls.shape[0]):
            cls_buf.append(cls[j])
            if tok is not None:
                tok_buf.append(tok[j])
            got = first + j + 1
            if got == min(n, (cur_chunk + 1) * chunk_windows):  # the chunk is full: keep and store it
                arr = np.stack(cls_buf).astype(np.float32)
                tarr = np.stack(tok_buf).astype(np.float32) if all_tokens else None
                done[cur_chunk] = (arr, tarr)
                if store is not None:
                    store.put(_chunk_key(cur_chunk), arrays={"cls": arr, **({"tokens": tarr} if all_tokens else {})})
                cls_buf, tok_buf = [], []
                cur_chunk += 1
        on_windows(cls.shape[0])
    if got < hi:
        if cls_buf:
            done[cur_chunk] = (np.stack(cls_buf).astype(np.float32),
                               np.stack(tok_buf).astype(np.float32) if all_tokens else None)  # fmt: skip
        return False
    return True


def _assemble(
    done: Parts,
    n: int,
    num_chunks: int,
    chunk_windows: int,
    width: int,
    all_tokens: bool,
    path: Path,
    partial_stop: bool,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The chunks that are contiguous from window 0, concatenated: (cls (N, width), tokens or None)."""
    parts = []
    for c in range(num_chunks):
        if c not in done:
            break
        parts.append(done[c])
        if len(done[c][0]) < min(chunk_windows, n - c * chunk_windows):
            break  # a partial last chunk
    if partial_stop:
        logger.warning("%s: kept %d of %d windows", path, sum(len(p[0]) for p in parts), n)
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
    encoder_id: str | None = None,
) -> JobResult:
    """Write the features of one job atomically; skip it when its output exists and is whole (`_reusable`). Never
    raises for one video's failure (a bad video, a write error, running out of memory): it gives a "failed" result
    with a one-line message (the traceback of an unexpected error is logged at debug level).

    `encoder_id` is what the folder's record says made the output (default: `weights_hash(encoder)`). Ray's per-video
    step passes the driver's, so that an actor whose precision stores other weights (a GPU actor's bf16) records what
    the driver checks."""
    plan_of = functools.partial(_job_plan, job, clip_seconds=clip_seconds, min_tail_seconds=min_tail_seconds,
                                min_segment_windows=min_segment_windows)  # fmt: skip
    if not overwrite and is_finished(job, out_dir, encoder, plan_of, all_tokens=all_tokens, tokens_dtype=tokens_dtype,
                                     allow_partial=allow_partial, encoder_id=encoder_id):  # fmt: skip
        if chunk_dir is not None:  # a run killed after writing the output, before dropping its chunks
            remove_chunks(chunk_dir, job.key)
        return JobResult(job, "skipped")
    t0 = time.perf_counter()
    stats = EncodeStats()
    try:
        info = probe(job.video)
        plan = plan_of(info)
        cls, tok = _extract_chunked(
            job.video, encoder, plan, info=info, batch_size=batch_size, all_tokens=all_tokens,
            chunk_dir=chunk_dir, chunk_windows=chunk_windows, progress=progress, device=device,
            precision=precision, grid_fps=grid_fps, allow_partial=allow_partial, key=job.key, stats=stats,
            on_windows=on_windows,
        )  # fmt: skip
        write_output(job, out_dir, encoder, cls, tok, tokens_dtype=tokens_dtype, chunk_dir=chunk_dir,
                     encoder_id=encoder_id)  # fmt: skip
    except VideoError as e:
        logger.debug("%s failed: %s", job.video, e)
        return JobResult(job, "failed", error=str(e), seconds=time.perf_counter() - t0, stats=stats)
    except OSError as e:  # a full disk, a permission: this video fails, the others go on (the disk may recover)
        logger.debug("%s failed", job.video, exc_info=True)
        error = f"{job.video}: failed: {describe_os_error(e, out_dir)}"
        return JobResult(job, "failed", error=error, seconds=time.perf_counter() - t0, stats=stats)
    except Exception as e:  # noqa: BLE001 - out of memory, a bug: this video fails, the others go on
        logger.debug("%s failed", job.video, exc_info=True)
        what = " ".join(str(e).split())[:300] or type(e).__name__
        error = f"{job.video}: failed with {type(e).__name__}: {what}"
        return JobResult(job, "failed", error=error, seconds=time.perf_counter() - t0, stats=stats)
    return JobResult(job, "done", windows=len(cls), seconds=time.perf_counter() - t0, stats=stats)


def is_finished(
    job: FeatureJob,
    out_dir: str | os.PathLike[str],
    encoder: nn.Module,
    plan_of: Callable[[VideoInfo], list[Window]],
    *,
    all_tokens: bool,
    tokens_dtype: str,
    allow_partial: bool,
    encoder_id: str | None = None,
) -> bool:
    """Whether the output of `job` exists, is whole (`_reusable`) and was made by this encoder (`encoder_id`, default
    its weights hash): then it is skipped."""
    out = output_path(out_dir, job.key)
    tok_out = output_path(out_dir, job.key, tokens=True)
    if not out.exists() or (all_tokens and not tok_out.exists()):
        return False
    made_by = _encoder_records(out_dir)
    if made_by is not None and made_by.get(job.key) != (encoder_id or weights_hash(encoder)):
        logger.warning("%s: made with another encoder (or by an interrupted run); recomputing it", out)
        return False
    return _reusable(job, out, tok_out if all_tokens else None, plan_of, encoder, tokens_dtype, allow_partial)


def write_output(
    job: FeatureJob,
    out_dir: str | os.PathLike[str],
    encoder: nn.Module,
    cls: np.ndarray,
    tok: np.ndarray | None,
    *,
    tokens_dtype: str,
    chunk_dir: str | os.PathLike[str] | None,
    encoder_id: str | None = None,
) -> None:
    """Record the encoder that makes them (`encoder_id`, default its weights hash), then write the finished features
    of `job` (atomically, the tokens first: `ID.npy` marks the job done), and drop the job's chunks. The record comes
    first: a run killed between the two leaves a record without `ID.npy` (recomputed), never an `ID.npy` without its
    record (which, in a folder with no record yet, would read as made by an unknown encoder and be reused
    unchecked)."""
    if len(cls) == 0:
        raise VideoError(f"{job.video}: no window could be decoded")
    _record_encoder(out_dir, job.key, encoder_id or weights_hash(encoder))
    if tok is not None:
        fileio.save_npy(output_path(out_dir, job.key, tokens=True), tok.astype(tokens_dtype))
    fileio.save_npy(output_path(out_dir, job.key), cls.astype(np.float32))
    if chunk_dir is not None:
        remove_chunks(chunk_dir, job.key)


# Which encoder made each output of a folder (key -> weights hash), so that a rerun with another encoder recomputes
# the finished outputs instead of skipping them. A folder written before this record existed has none: its outputs
# are reused as before (after `_reusable`'s checks).
ENCODER_RECORD = ".videorecap-features.json"


def _encoder_records(out_dir: str | os.PathLike[str]) -> dict[str, str] | None:
    path = Path(out_dir) / ENCODER_RECORD
    try:
        made_by = json.loads(path.read_text(encoding="utf-8")).get("encoders")
    except FileNotFoundError:
        return None
    except (OSError, ValueError, AttributeError, RecursionError):
        logger.warning("%s: unreadable; every output of the folder is checked again", path)
        return {}
    return made_by if isinstance(made_by, dict) else {}


def _record_encoder(out_dir: str | os.PathLike[str], key: str, digest: str) -> None:
    # read-modify-write, atomically; torchrun ranks of one job may race here, and a lost entry only means that
    # output is recomputed by the next run, never that another encoder's output is reused
    made_by = _encoder_records(out_dir) or {}
    made_by[key] = digest
    fileio.write_json(Path(out_dir) / ENCODER_RECORD, {"encoders": dict(sorted(made_by.items()))})


def _job_plan(
    job: FeatureJob, info: VideoInfo, *, clip_seconds: float, min_tail_seconds: float, min_segment_windows: int
) -> list[Window]:
    """The windows of one job: the whole video's clip plan, or a segment's (at least `min_segment_windows`)."""
    if job.start is None:
        return window_plan(info.duration, clip_seconds, min_tail_seconds=min_tail_seconds).clips
    end = min(job.end if job.end is not None else info.duration, info.duration)
    plan = segment_feature_windows(job.start, end, min_segment_windows, clip_seconds)
    if not plan:
        raise VideoError(f"{job.video}: segment {job.key} [{job.start}, {job.end}) is outside the video")
    return plan


def _reusable(
    job: FeatureJob,
    out: Path,
    tok_out: Path | None,
    plan_of: Callable[[VideoInfo], list[Window]],
    encoder: nn.Module,
    tokens_dtype: str,
    allow_partial: bool,
) -> bool:
    """Whether an existing output is whole: readable float32 `(rows, width)` with one row per window of the job's
    plan (with `allow_partial`, 1 to that many), and the token file (if wanted) of the same rows in `tokens_dtype`.

    A truncated or foreign file (a crash outside our atomic writes, a copy cut short, another encoder's width) is
    recomputed with a warning instead of being taken as done.
    """
    width = encoder_geometry(encoder)[2]
    why = None
    try:
        cls = np.load(out, mmap_mode="r", allow_pickle=False)
        tok = np.load(tok_out, mmap_mode="r", allow_pickle=False) if tok_out is not None else None
    except (OSError, ValueError, EOFError) as e:  # a cut header or data shorter than the header says
        why = f"unreadable ({' '.join(str(e).split())[:120]})"
    else:
        if cls.ndim != 2 or cls.dtype != np.float32 or cls.shape[1] != width:
            why = f"shape {cls.shape} {cls.dtype}, expected (rows, {width}) float32"
        elif tok is not None and (tok.ndim != 3 or tok.dtype != np.dtype(tokens_dtype) or len(tok) != len(cls)):
            why = f"tokens of shape {tok.shape} {tok.dtype}, expected ({len(cls)}, tokens, {width}) {tokens_dtype}"
        else:
            try:
                n = len(plan_of(probe(job.video)))
            except Exception:  # noqa: BLE001 - the video cannot be read now: the job's own run reports why
                return False
            if not (0 < len(cls) <= n if allow_partial else len(cls) == n):
                why = f"{len(cls)} rows, expected {n} (one per window)"
    if why is None:
        return True
    logger.warning("%s: %s; recomputing it", out, why)
    return False


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
