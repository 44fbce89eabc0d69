"""Corpus scale on a Ray cluster: `videorecap features|caption --ray [ADDRESS]` as a Ray Data pipeline.

`torchrun` shards a list statically over the GPUs of one machine; a corpus outgrows that (no load balancing, and a
failed node's share waits for a rerun). Here the same steps run as a streaming Ray Data pipeline, in four places:

1. **the driver** (the `videorecap` process) plans every video as a single process would: a finished output is
   skipped, finished chunks are read back from the video's store (features: `OUT/.chunks/ID/`, caption:
   `OUT/ID/.cache/`), and what is left becomes decode work, in the batches a single process would make (aligned
   to `--batch-size` from where it resumes);
2. **decode tasks** on CPU workers decode and transform those windows (`video.encode.decode_batches`), one row
   per batch;
3. **model actors** (one model each; a GPU each when the cluster has GPUs, else a CPU) run each batch through the
   step a single process runs (`video.encode.encode_batch` for features; `pipeline.caption_clips`, the encoder
   and the clip captions, for caption);
4. **the driver** collects each video's batches and writes them through the single-process writers: every whole
   chunk into the video's store, and, for features, the output file once the video is complete
   (`features.write_output`, atomic). For caption a second stage of actors then runs the per-video step of a
   single process (`caption_video` and the output writers) on every video: the clip level is read back from the
   store, the segment and video levels are computed, the outputs written.

So the outputs are those of a single process, byte for byte, and a rerun resumes from what is on disk. A video
whose decoding fails in step 2 goes to the per-video step as well, which reports it (or keeps the part that
decoded, with `--allow-partial`) exactly as a single process does. Ray retries a task and restarts an actor lost
with its node; a batch that arrives twice is taken once, and each video is finished once, by the driver. A killed
driver loses at most the chunks it had not written.

Every node reads the videos and the driver (and the caption actors) write the outputs at the same paths: the
inputs and `-o` must be on a filesystem that every node mounts at the same place (docs/ray.md).

Ray is an optional dependency (`pip install 'videorecap[ray]'`): nothing imports this module unless `--ray` is
given, and `require_ray` turns its absence into one line that says what to install.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from videorecap.errors import InputError, MissingDependencyError, VideoRecapError, describe_os_error
from videorecap.infer.decoding_config import DecodeConfig
from videorecap.pipeline import Captioner, CaptionOptions, ClipCache, caption_clips
from videorecap.runtime import resolve_precision
from videorecap.store import Store, weights_hash
from videorecap.video.encode import Window, decode_batches, encode_batch, encoder_compute, encoder_geometry
from videorecap.video.features import (
    FeatureJob,
    JobResult,
    _assemble,
    _chunk_key,
    _job_plan,
    _load_chunks,
    _missing_runs,
    _open_chunk_store,
    extract_job,
    is_finished,
    remove_chunks,
    write_output,
)
from videorecap.video.io import probe

logger = logging.getLogger(__name__)

# A decode row carries its windows as JSON; a file whose header claims more than this (a broken one can claim
# thousands of hours) goes to the per-video step, which plans windows lazily.
MAX_ROW_WINDOWS = 100_000

DECODE_TASKS_PER_WORKER = 100

INSTALL = "pip install 'videorecap[ray]'"


def require_ray() -> Any:
    """The `ray` module (with Ray Data), or a `MissingDependencyError` naming what to install."""
    try:
        import ray
        import ray.data  # noqa: F401 - the pipeline API; `ray` alone (ray-core) lacks it
    except ImportError:
        raise MissingDependencyError(f"--ray needs Ray Data, which is not installed: {INSTALL}") from None
    return ray


def connect(address: str | None, *, progress: bool = False) -> Any:
    """Connect to the Ray cluster at `address` ("host:port", "ray://host:10001", "auto"), or with None to the one
    `RAY_ADDRESS` or a local `ray start` names, else start a local Ray for this process. Returns `ray`."""
    ray = require_ray()
    if not ray.is_initialized():
        if address:
            _check_reachable(address)
        try:
            ray.init(address=address or None, logging_level=logging.WARNING)
        except (ConnectionError, ValueError, RuntimeError) as e:
            where = f"--ray {address}" if address else "--ray"
            raise InputError(f"{where}: cannot connect to a Ray cluster ({' '.join(str(e).split())[:200]})") from None
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # its per-run INFO lines; our summary says the rest
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = progress
    ctx.execution_options.preserve_order = False  # rows are matched by video and window, not by order
    return ray


def _check_reachable(address: str, timeout: float = 10.0) -> None:
    """A `host:port` (or `ray://host:port`) that accepts no connection is one line, at once: `ray.init` would wait
    for it for minutes."""
    hostport = address.split("://", 1)[-1]
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        if address in ("auto", "local"):
            return
        raise InputError(f"--ray {address}: expected the head's HOST:PORT (e.g. 10.0.0.1:6379) or ray://HOST:PORT")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        raise InputError(
            f"--ray {address}: no Ray head answers there ({e.strerror or e}); start one with `ray start --head` "
            "or check the address"
        ) from None


# ---- resources -------------------------------------------------------------------------------------------------------
@dataclass
class Placement:
    """Where the model actors run: `device` inside each actor ("cuda": its own GPU, which Ray makes cuda:0; or
    "cpu"), how many at most, and the Ray resources each one asks for."""

    device: str
    actors: int
    resources: dict[str, float]

    def compute(self) -> Any:
        ray = require_ray()
        return ray.data.ActorPoolStrategy(min_size=1, max_size=self.actors)


def placement(device: str | None, actors: int | None) -> Placement:
    """One actor per GPU of the cluster (or `actors`), each on its own GPU; on a cluster without GPUs (or with
    `--device cpu`), one actor per two CPUs, so that the decode tasks keep the other half."""
    ray = require_ray()
    res = ray.cluster_resources()
    gpus, cpus = int(res.get("GPU", 0)), int(res.get("CPU", 1))
    want = (device or "").split(":")[0]
    if want == "cuda" and gpus == 0:
        raise InputError(f"--device {device}: the Ray cluster has no GPU (it has {cpus} CPUs)")
    if want not in ("", "cuda", "cpu"):
        raise InputError(f"--device {device}: with --ray, use cpu or cuda (Ray gives each actor its own GPU)")
    if gpus and want != "cpu":
        return Placement("cuda", actors or gpus, {"num_gpus": 1})
    return Placement("cpu", actors or max(1, cpus // 2), {"num_cpus": 1})


# ---- the stages (run on the cluster) ---------------------------------------------------------------------------------
# Rows are dicts of numpy arrays with one row each (batch_size=1). Frames travel padded to `--batch-size` windows
# with a count, so that every row of a column has one shape.
def _decode(
    row: dict[str, np.ndarray], *, num_frames: int, image_size: int, batch_size: int, grid_fps: float | None
) -> Iterator[dict[str, np.ndarray]]:
    """Decode task: the windows of one row (one video, from window `first`) -> one row per batch of frames."""
    key, video, first = str(row["key"][0]), Path(str(row["video"][0])), int(row["first"][0])
    windows: list[Window] = [(float(s), float(e)) for s, e in json.loads(str(row["windows"][0]))]
    shape = (1, batch_size, 3, num_frames, image_size, image_size)
    try:
        info = probe(video)
        for b in decode_batches(video, windows, first, num_frames, image_size, batch_size, info, grid_fps,
                                allow_partial=False, pin=False):  # fmt: skip
            x = np.zeros(shape, np.float32)
            x[0, : b.x.shape[0]] = b.x.numpy()
            yield {"key": np.array([key]), "first": np.array([b.first]), "count": np.array([b.x.shape[0]]),
                   "error": np.array([""]), "x": x}  # fmt: skip
    except Exception as e:  # noqa: BLE001 - the video goes to the per-video step, which reports it as one would
        logger.info("%s: decoding failed in the decode stage (%s); it goes to the per-video step", video, e)
        yield {"key": np.array([key]), "first": np.array([-1]), "count": np.array([0]),
               "error": np.array([_one_line(e) or type(e).__name__]), "x": np.zeros(shape, np.float32)}  # fmt: skip


def _frames(row: dict[str, np.ndarray]) -> torch.Tensor | None:
    n = int(row["count"][0])
    # a copy: the batch may be a read-only view into Ray's object store
    return torch.from_numpy(np.array(row["x"][0, :n])) if n else None


# An actor whose model does not load on its node (the checkpoint's path is not mounted there, --compile finds no C++
# compiler there, its GPU has no memory left) would die in its constructor, and Ray would print the traceback of
# every attempt before failing the job with one more. Instead the actor starts without a model and answers every row
# with the reason in its `setup` column; the driver stops at the first such row with that one line (`_check_setup`).
# What other actors finished before is on disk, so a rerun resumes once the node is fixed.
_SETUP_ERRORS = (VideoRecapError, OSError, MemoryError, torch.OutOfMemoryError)


def _start(loader: Callable[[str], Any], device: str) -> tuple[Any, str]:
    """`loader(device)` in an actor: (the model, "") or (None, why it could not load here, naming the node)."""
    try:
        return loader(device), ""
    except _SETUP_ERRORS as e:
        return None, f"a model actor could not start on {socket.gethostname()}: {_one_line(e) or type(e).__name__}"


def _setup_row(row: dict[str, np.ndarray], why: str, keys: Sequence[str]) -> dict[str, np.ndarray]:
    """The answer of an actor without a model: the row's `keys` and the reason."""
    return {**{k: row[k] for k in keys}, "setup": np.array([why])}


def _check_setup(row: dict[str, Any]) -> None:
    """Stop the driver at a row from an actor whose model did not load (`_start`).

    Raises:
        InputError: the node and the reason, in one line.
    """
    why = str(row.get("setup", ""))
    if why:
        raise InputError(f"--ray: {why}. What was finished is kept: fix that machine (or run without it) and run "
                         "again to resume")  # fmt: skip


class _EncodeActor:
    """Model actor of `features`: the encoder step of one batch. `loader(device)` gives the encoder ready to run there
    (in the run's precision for that device, compiled with --compile), as it does for the per-video step."""

    def __init__(self, loader: Callable[[str], nn.Module], device: str, precision: str, all_tokens: bool) -> None:
        self.device = torch.device(device)
        self.encoder, self.setup = _start(loader, device)
        precision = resolve_precision(self.device, precision)  # the user's choice (auto) resolved for this device
        self.compute = encoder_compute(self.device, precision)
        self.all_tokens = all_tokens

    def __call__(self, row: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.setup:
            return _setup_row(row, self.setup, ("key", "first", "count", "error"))
        x = _frames(row)
        pad = row["x"].shape[1]
        _, _, width = encoder_geometry(self.encoder)
        out = {k: row[k] for k in ("key", "first", "count", "error")}
        cls_pad = np.zeros((1, pad, width), np.float32)
        tok_pad = None
        if x is not None:
            cls, tok = encode_batch(
                self.encoder, x, device=self.device, compute=self.compute, all_tokens=self.all_tokens
            )
            cls_pad[0, : len(cls)] = cls
            if tok is not None:
                tok_pad = np.zeros((1, pad, *tok.shape[1:]), np.float32)
                tok_pad[0, : len(tok)] = tok
        out["cls"] = cls_pad
        if self.all_tokens:
            if tok_pad is None:  # an error row: the column still needs this row's shape
                cfg = self.encoder.config
                tok_pad = np.zeros((1, pad, cfg.num_tokens, width), np.float32)
            out["tokens"] = tok_pad
        out["setup"] = np.array([""])
        return out


class _ClipActor:
    """Model actor of `caption`: the encoder and the clip captions of one batch."""

    def __init__(self, loader: Callable[[str], Captioner], device: str, decode: dict[str, Any]) -> None:
        self.device = torch.device(device)
        self.captioner, self.setup = _start(loader, device)  # in the run's precision, on this actor's device
        if self.captioner is not None:
            self.model = self.captioner.model("clip")
            self.model.to(self.device)
        self.decode = DecodeConfig(**decode)

    def __call__(self, row: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.setup:
            return _setup_row(row, self.setup, ("key", "first", "count", "error"))
        x = _frames(row)
        pad = row["x"].shape[1]
        out = {k: row[k] for k in ("key", "first", "count", "error")}
        cls_pad = np.zeros((1, pad, self.model.config.encoder.width), np.float32)
        texts: list[str] = []
        if x is not None:
            texts, feats = caption_clips(self.captioner, list(x), self.decode, self.device)
            cls_pad[0, : len(feats)] = feats
        out["cls"] = cls_pad
        out["texts"] = np.array([json.dumps(texts, ensure_ascii=False)])
        out["setup"] = np.array([""])
        return out


class _PerVideoActor:
    """Actor of the per-video stage: `fn(item, model, device)` -> a JSON-able result, for one item."""

    def __init__(self, loader: Callable[[str], Any], device: str, fn: Callable[[Any, Any, str], Any]) -> None:
        self.device = device
        self.model, self.setup = _start(loader, device)
        self.fn = fn

    def __call__(self, row: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.setup:
            return _setup_row(row, self.setup, ("index",))
        result = self.fn(json.loads(str(row["item"][0])), self.model, self.device)
        return {"index": row["index"], "result": np.array([json.dumps(result, ensure_ascii=False)])}


# ---- driving the pipeline ------------------------------------------------------------------------------------------
def _model_rows(
    work: Sequence[dict[str, Any]],
    actor: type,
    actor_args: tuple[Any, ...],
    place: Placement,
    *,
    num_frames: int,
    image_size: int,
    batch_size: int,
    grid_fps: float | None,
) -> Iterator[dict[str, Any]]:
    """Stream the model stage's rows for `work` (one item per video: key, video, first, windows)."""
    ray = require_ray()
    ds = ray.data.from_items(list(work), override_num_blocks=len(work))  # one decode task per video
    ds = ds.map_batches(
        _decode,
        batch_size=1,
        batch_format="numpy",
        fn_kwargs={"num_frames": num_frames, "image_size": image_size, "batch_size": batch_size, "grid_fps": grid_fps},
        # a fresh decode worker process now and then (FFmpeg's buffers are not kept for ever); being different from
        # the actors' remote arguments, it also keeps Ray Data from fusing the decode tasks into the actors (it fuses
        # stages whose remote arguments are equal, as they are on a cluster of CPUs): decoding stays on CPU workers
        max_calls=DECODE_TASKS_PER_WORKER,
    )
    ds = ds.map_batches(
        actor,
        batch_size=1,
        batch_format="numpy",
        fn_constructor_args=actor_args,
        compute=place.compute(),
        **place.resources,
    )
    yield from ds.iter_rows()


def per_video(
    items: Sequence[Any],
    loader: Callable[[str], Any],
    fn: Callable[[Any, Any, str], Any],
    place: Placement,
) -> Iterator[tuple[int, Any]]:
    """Run `fn(item, model, device)` on every item (JSON-able) in an actor pool whose actors hold `loader(device)`;
    yield `(index of the item, its JSON-able result)` as each is done, in any order, each index once."""
    if not items:
        return
    ray = require_ray()
    rows = [{"index": i, "item": json.dumps(item, ensure_ascii=False)} for i, item in enumerate(items)]
    ds = ray.data.from_items(rows, override_num_blocks=len(rows))
    ds = ds.map_batches(
        _PerVideoActor,
        batch_size=1,
        batch_format="numpy",
        fn_constructor_args=(loader, place.device, fn),
        compute=place.compute(),
        **place.resources,
    )
    seen: set[int] = set()
    for row in ds.iter_rows():
        _check_setup(row)
        i = int(row["index"])
        if i not in seen:
            seen.add(i)
            yield i, json.loads(str(row["result"]))


def _windows_json(windows: Sequence[Window]) -> str:
    return json.dumps([[s, e] for s, e in windows])  # floats as repr: they come back bit for bit


def _one_line(e: BaseException) -> str:
    if isinstance(e, VideoRecapError):
        return str(e)
    if isinstance(e, OSError):
        return describe_os_error(e)
    return " ".join(str(e).split())[:300]


# ---- features ----------------------------------------------------------------------------------------------------
@dataclass
class _FeatureVideo:
    """The driver's state of one features job: its windows, its chunks done, the batches received."""

    job: FeatureJob
    windows: list[Window]
    chunk_windows: int
    store: Store | None
    done: dict[int, tuple[np.ndarray, np.ndarray | None]]
    all_tokens: bool
    batches: dict[int, tuple[np.ndarray, np.ndarray | None]] = field(default_factory=dict)  # first window -> rows
    t0: float = field(default_factory=time.perf_counter)

    @property
    def num_chunks(self) -> int:
        return (len(self.windows) + self.chunk_windows - 1) // self.chunk_windows

    def add(self, first: int, cls: np.ndarray, tok: np.ndarray | None) -> bool:
        """Take one batch; store each chunk it completes. True when every chunk is done."""
        self.batches.setdefault(first, (cls, tok))  # a batch Ray delivered twice (a retried task) counts once
        cw, n = self.chunk_windows, len(self.windows)
        for c in range(self.num_chunks):
            if c in self.done:
                continue
            lo, hi = c * cw, min(n, (c + 1) * cw)
            parts, i = [], lo
            while i < hi and i in self.batches:
                parts.append(self.batches[i])
                i += len(self.batches[i][0])
            if i < hi:
                continue
            arr = np.concatenate([p[0] for p in parts]).astype(np.float32)
            tarr = np.concatenate([p[1] for p in parts]).astype(np.float32) if self.all_tokens else None  # type: ignore[misc]
            self.done[c] = (arr, tarr)
            if self.store is not None:  # the chunk a single process would have stored, under its fingerprint
                self.store.put(_chunk_key(c), arrays={"cls": arr, **({"tokens": tarr} if tarr is not None else {})})
            for k in [k for k in self.batches if lo <= k < hi]:
                del self.batches[k]
        return len(self.done) == self.num_chunks


def run_features(
    jobs: Sequence[FeatureJob],
    out_dir: str | os.PathLike[str],
    encoder: nn.Module,
    loader: Callable[[str], nn.Module],
    place: Placement,
    *,
    on_result: Callable[[JobResult], None] | None = None,
    clip_seconds: float = 4.0,
    min_tail_seconds: float,
    min_segment_windows: int = 45,
    batch_size: int = 8,
    all_tokens: bool = False,
    tokens_dtype: str = "float16",
    chunk_dir: str | os.PathLike[str] | None = None,
    chunk_windows: int,
    precision: str = "auto",
    grid_fps: float | None = None,
    allow_partial: bool = False,
    overwrite: bool = False,
) -> list[JobResult]:
    """`video.features.run_jobs` on a Ray cluster: the same outputs, skipped and resumed the same way.

    `encoder` (on the driver, any device) gives the fingerprints of outputs and chunks; `loader(device)` builds the
    same encoder in each actor, ready to run on `device`: prepared for `precision` as resolved there
    (`runtime.prepare_model`) and compiled if the run compiles (`compiled.compile_for_inference`).
    """
    plan_kw = {"clip_seconds": clip_seconds, "min_tail_seconds": min_tail_seconds,
               "min_segment_windows": min_segment_windows}  # fmt: skip
    results: list[JobResult] = []

    def finish(res: JobResult) -> None:
        results.append(res)
        if on_result is not None:
            on_result(res)

    out = _FeatureOutput(out_dir, encoder, tokens_dtype, chunk_dir, finish)
    videos, work, fallback = _plan_features(jobs, out, plan_kw, overwrite=overwrite, all_tokens=all_tokens,
                                            allow_partial=allow_partial, grid_fps=grid_fps,
                                            chunk_windows=chunk_windows, precision=precision)  # fmt: skip
    if work:
        nf, size, _ = encoder_geometry(encoder)
        rows = _model_rows(work, _EncodeActor, (loader, place.device, precision, all_tokens), place,
                           num_frames=nf, image_size=size, batch_size=batch_size, grid_fps=grid_fps)  # fmt: skip
        fallback += _collect_features(rows, videos, {w["key"] for w in work}, all_tokens, out)

    if fallback:
        kw = {
            **plan_kw, "batch_size": batch_size, "all_tokens": all_tokens, "tokens_dtype": tokens_dtype,
            "chunk_dir": None if chunk_dir is None else str(chunk_dir), "chunk_windows": chunk_windows,
            "precision": precision, "grid_fps": grid_fps, "allow_partial": allow_partial, "overwrite": overwrite,
            "encoder_id": weights_hash(encoder),  # the driver's: the rows' outputs are recorded under it too
        }  # fmt: skip
        items = [{"video": str(j.video), "key": j.key, "start": j.start, "end": j.end} for j in fallback]
        fn = _FeatureJobFn(str(out_dir), kw)
        for i, r in per_video(items, loader, fn, place):
            finish(JobResult(fallback[i], r["status"], windows=r["windows"], seconds=r["seconds"], error=r["error"]))
    return results


@dataclass
class _FeatureOutput:
    """Where and how the driver writes a finished video's features, and whom it tells."""

    out_dir: str | os.PathLike[str]
    encoder: nn.Module
    tokens_dtype: str
    chunk_dir: str | os.PathLike[str] | None
    finish: Callable[[JobResult], None]

    def write(self, v: _FeatureVideo, fallback: list[FeatureJob]) -> None:
        _write_feature(v, self.out_dir, self.encoder, self.tokens_dtype, self.chunk_dir, self.finish, fallback)


def _plan_features(
    jobs: Sequence[FeatureJob],
    out: _FeatureOutput,
    plan_kw: dict[str, Any],
    *,
    overwrite: bool,
    all_tokens: bool,
    allow_partial: bool,
    grid_fps: float | None,
    chunk_windows: int,
    precision: str,
) -> tuple[dict[str, _FeatureVideo], list[dict[str, Any]], list[FeatureJob]]:
    """Skip what is done (as a single process), read back stored chunks, and list the windows still to encode:
    `(videos by key, work rows for the decode tasks, jobs for the per-video step)`."""
    videos: dict[str, _FeatureVideo] = {}
    work: list[dict[str, Any]] = []
    fallback: list[FeatureJob] = []  # jobs for the per-video step (extract_job in an actor)
    for job in jobs:

        def plan_of(info: Any, job: FeatureJob = job) -> list[Window]:
            return _job_plan(job, info, **plan_kw)

        if not overwrite and is_finished(job, out.out_dir, out.encoder, plan_of, all_tokens=all_tokens,
                                         tokens_dtype=out.tokens_dtype, allow_partial=allow_partial):  # fmt: skip
            if out.chunk_dir is not None:  # a run killed after writing the output, before dropping its chunks
                remove_chunks(out.chunk_dir, job.key)
            out.finish(JobResult(job, "skipped"))
            continue
        try:
            windows = plan_of(probe(job.video))
        except (VideoRecapError, OSError) as e:  # the per-video step reports it, as a single process does
            logger.info("%s: %s", job.video, e)
            fallback.append(job)
            continue
        v = _FeatureVideo(job, windows, chunk_windows, None, {}, all_tokens)
        if out.chunk_dir is not None and v.num_chunks > 1:  # as `_extract_chunked`: one chunk has nothing to resume
            v.store = _open_chunk_store(out.chunk_dir, job.key, job.video, out.encoder, windows, all_tokens,
                                        grid_fps, chunk_windows, precision)  # fmt: skip
            v.done = _load_chunks(v.store, v.num_chunks, all_tokens)
        if len(windows) > MAX_ROW_WINDOWS:
            fallback.append(job)
            continue
        videos[job.key] = v
        for run in _missing_runs(v.num_chunks, v.done):
            lo, hi = run[0] * chunk_windows, min(len(windows), (run[-1] + 1) * chunk_windows)
            work.append(
                {"key": job.key, "video": str(job.video), "first": lo, "windows": _windows_json(windows[lo:hi])}
            )
        if not work or work[-1]["key"] != job.key:  # every chunk was stored: only the output is left to write
            out.write(v, fallback)
    return videos, work, fallback


def _collect_features(
    rows: Iterable[dict[str, Any]],
    videos: dict[str, _FeatureVideo],
    pending: set[str],
    all_tokens: bool,
    out: _FeatureOutput,
) -> list[FeatureJob]:
    """Take the model actors' batches as they come (a repeated batch once), write each video when it is whole;
    the jobs left for the per-video step (a decode error, or, should it happen, a video never completed)."""
    fallback: list[FeatureJob] = []
    for row in rows:
        _check_setup(row)
        key = str(row["key"])
        if key not in pending:  # finished, or sent to the per-video step
            continue
        if str(row["error"]):
            pending.discard(key)
            fallback.append(videos[key].job)
            continue
        n = int(row["count"])
        tok = np.asarray(row["tokens"])[:n] if all_tokens else None
        if videos[key].add(int(row["first"]), np.asarray(row["cls"])[:n], tok):
            pending.discard(key)
            out.write(videos[key], fallback)
    return fallback + [videos[k].job for k in sorted(pending)]  # nothing should be left; if it is, per video


def _write_feature(
    v: _FeatureVideo,
    out_dir: str | os.PathLike[str],
    encoder: nn.Module,
    tokens_dtype: str,
    chunk_dir: str | os.PathLike[str] | None,
    finish: Callable[[JobResult], None],
    fallback: list[FeatureJob],
) -> None:
    n = len(v.windows)
    cls, tok = _assemble(v.done, n, v.num_chunks, v.chunk_windows, encoder_geometry(encoder)[2], v.all_tokens,
                         v.job.video, False)  # fmt: skip
    try:
        write_output(v.job, out_dir, encoder, cls, tok, tokens_dtype=tokens_dtype, chunk_dir=chunk_dir)
    except (VideoRecapError, OSError) as e:
        logger.info("%s: %s", v.job.video, e)
        fallback.append(v.job)  # the per-video step tries again and reports it as a single process does
        return
    finish(JobResult(v.job, "done", windows=n, seconds=time.perf_counter() - v.t0))


class _FeatureJobFn:
    """The per-video step of features: `extract_job` in an actor, for the jobs the pipeline could not finish."""

    def __init__(self, out_dir: str, kwargs: dict[str, Any]) -> None:
        self.out_dir, self.kwargs = out_dir, kwargs

    def __call__(self, item: dict[str, Any], encoder: nn.Module, device: str) -> dict[str, Any]:
        job = FeatureJob(Path(item["video"]), item["key"], item["start"], item["end"])
        res = extract_job(job, self.out_dir, encoder, device=device, **self.kwargs)
        return {"status": res.status, "windows": res.windows, "seconds": res.seconds, "error": res.error}


# ---- caption ---------------------------------------------------------------------------------------------------------
def precompute_clips(
    work: Sequence[tuple[Path, str]],
    out_dir: str | os.PathLike[str],
    captioner: Captioner,
    loader: Callable[[str], Captioner],
    opts: CaptionOptions,
    place: Placement,
) -> None:
    """Steps 1-4 of `caption`: the clip level of every `(video, id)` into `OUT/ID/.cache`, as `caption_video`
    stores it. A video that cannot be planned or decoded here is left to the per-video step, which reports it.

    `captioner` (on the driver) gives the store's fingerprint; `loader(device)` builds the clip model in each actor.
    """
    caches: dict[str, ClipCache] = {}
    items: list[dict[str, Any]] = []
    for path, vid in work:
        try:
            cache = ClipCache(path, captioner, opts, Path(out_dir) / vid / ".cache", vid)
        except (VideoRecapError, OSError) as e:
            logger.info("%s: %s; left to the per-video step", path, e)
            continue
        if not cache.complete and len(cache.missing) <= MAX_ROW_WINDOWS:
            caches[vid] = cache
            items.append(
                {"key": vid, "video": str(path), "first": cache.first, "windows": _windows_json(cache.missing)}
            )
    if not items:
        return
    enc = captioner.model("clip").encoder
    assert enc is not None
    rows = _model_rows(items, _ClipActor, (loader, place.device, next(iter(caches.values())).decode.to_dict()), place,
                       num_frames=enc.config.num_frames, image_size=enc.config.image_size,
                       batch_size=opts.batch_size, grid_fps=opts.grid_fps)  # fmt: skip
    for row in rows:
        _check_setup(row)
        cache = caches.get(str(row["key"]))
        if cache is None or str(row["error"]):
            caches.pop(str(row["key"]), None)  # the per-video step decodes it again and reports what fails
            continue
        n = int(row["count"])
        cache.add(int(row["first"]), json.loads(str(row["texts"])), np.asarray(row["cls"])[:n].copy())
