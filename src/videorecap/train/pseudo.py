"""The curriculum's generation steps: the lower level's text that the next stage trains on (reference §2.1, §4.2).

- Clip captions: every `clip_seconds` window `[k*4, min(k*4+4, dur))` of every video is captioned by the clip model
  (pixels decoded in one pass per video, or rows of precomputed clip features). Each segment row's `captions_pred`
  becomes the captions whose window lies inside the segment (`c[1] >= start and c[2] <= end`).
- Segment descriptions: every segment row is described by the segment model from its sliced, sampled features and
  its generated captions. Each video row's `segment_descriptions_pred` becomes its descriptions in time order (a
  video with no segment rows gets one description per `segment_seconds` window, as the caption pipeline does).

Results are kept per video in a resumable store (`videorecap.store`) in `cache_dir`, under a fingerprint of the
model's weights and the step's inputs, so an interrupted step resumes at the next video (and a step run with other
settings starts over), and under torchrun each rank takes its share of the videos. The user's annotation files are
never modified: the filled copies are written by the caller into the output folder.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from videorecap import distributed
from videorecap.data.collate import Collator
from videorecap.data.datasets import SegmentDataset, load_npy
from videorecap.errors import DataError
from videorecap.infer.batch import caption_batch
from videorecap.store import Store, fingerprint_key, model_fingerprint

logger = logging.getLogger(__name__)

Caption = list[Any]  # [vid, start, end, text], the released layout of captions_pred


def video_durations(segment_rows: Sequence[dict], video_rows: Sequence[dict]) -> dict[str, float]:
    """The duration of every video named in the annotation rows: the largest `end_sec` it has."""
    out: dict[str, float] = {}
    for r in [*segment_rows, *video_rows]:
        end = r.get("end_sec")
        if end is not None:
            out[r["vid"]] = max(out.get(r["vid"], 0.0), float(end))
        else:
            out.setdefault(r["vid"], 0.0)
    return out


def _open_store(cache_dir: str | os.PathLike[str], fingerprint: dict[str, Any]) -> Store:
    """The step's store, opened (and reset if made with other settings) by the main rank before the others."""
    store = Store.open(cache_dir, fingerprint) if distributed.is_main() else None
    distributed.barrier()
    return store if store is not None else Store.open(cache_dir, fingerprint, shared=True)


def _bar(items: Sequence[Any], progress: bool, desc: str) -> Any:
    if not progress:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="video", dynamic_ncols=True)


@torch.no_grad()
def generate_clip_captions(
    model: Any,
    tokenizer: Any,
    durations: dict[str, float],
    cache_dir: str | os.PathLike[str],
    *,
    video_root: str | os.PathLike[str] | None = None,
    clip_features: str | os.PathLike[str] | None = None,
    video_ext: str = ".mp4",
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> dict[str, list[Caption]]:
    """Captions of every clip window of every video, `{vid: [[vid, start, end, caption], ...]}` in time order.

    Reads pixels from `video_root/{vid}{video_ext}`, or rows of `clip_features/{vid}.tokens.npy` (one row per
    window, `(N, L, C)`; or CLS rows `{vid}.npy`, `(N, C)`). This rank captions its share of the videos; the result
    holds every video's captions once all ranks are done (read back from the cache).
    """
    from videorecap.video.sampling import clip_windows

    if (video_root is None) == (clip_features is None):
        raise ValueError("give exactly one of video_root and clip_features")
    cfg = model.config
    model.eval()
    vids = sorted(durations)
    store = _open_store(
        cache_dir,
        {
            "step": "clip captions",
            "model": model_fingerprint(model),
            "videos": None if video_root is None else str(Path(video_root).resolve()),
            "video_ext": video_ext,
            "clip_features": None if clip_features is None else str(Path(clip_features).resolve()),
            "durations": fingerprint_key(durations),
            "batch_size": batch_size,
        },
    )
    for vid in _bar(distributed.shard(vids), progress, "clip captions"):
        if store.get(vid) is not None:
            continue
        if clip_features is not None:
            # all tokens `{vid}.tokens.npy` (N, L, C) as the clip dataset reads them, else CLS rows `{vid}.npy`
            fpath = Path(clip_features) / f"{vid}.tokens.npy"
            feats = load_npy(fpath if fpath.is_file() else fpath.with_name(f"{vid}.npy"))
            n = feats.shape[0]
            dur = durations[vid] or n * cfg.clip_seconds
            windows = clip_windows(dur, cfg.clip_seconds)[:n]
            inputs = (torch.from_numpy(np.array(feats[k], dtype=np.float32)) for k in range(len(windows)))
            inputs = (x if x.ndim == 2 else x[None] for x in inputs)  # (L, C) or (1, C)
        else:
            from videorecap.video.io import probe
            from videorecap.video.reader import iter_windows
            from videorecap.video.transforms import eval_transform

            vpath = Path(video_root) / f"{vid}{video_ext}"  # type: ignore[arg-type]
            if not vpath.is_file():
                raise DataError(f"{vpath}: video file not found (needed to caption {vid})")
            info = probe(vpath)
            windows = clip_windows(info.duration, cfg.clip_seconds)
            frames = iter_windows(vpath, windows, cfg.encoder.num_frames, info=info, allow_partial=True)
            inputs = (eval_transform(f, cfg.encoder.image_size) for _, f in frames)  # (3, T, H, W)
        texts: list[str] = []
        chunk: list[torch.Tensor] = []
        for x in inputs:
            chunk.append(x)
            if len(chunk) == batch_size:
                texts += _caption(model, tokenizer, torch.stack(chunk).to(device))
                chunk = []
        if chunk:
            texts += _caption(model, tokenizer, torch.stack(chunk).to(device))
        caps = [[vid, float(s), float(e), t] for (s, e), t in zip(windows, texts, strict=False)]
        store.put(vid, rows=caps)
    return _gather(store, vids, "clip captions")


def _gather(store: Store, vids: Sequence[str], what: str) -> dict[str, Any]:
    """Every video's stored results (all ranks' shares), once every rank has written its own."""
    distributed.barrier()
    out = {}
    for vid in vids:
        entry = store.get(vid)
        if entry is None:
            raise DataError(f"{store.path(vid)}: {what} of {vid} are missing after generation")
        out[vid] = entry.rows
    return out


def _caption(model: Any, tokenizer: Any, video: torch.Tensor) -> list[str]:
    return caption_batch(model, tokenizer, "clip", {"video": video})


def fill_captions(segment_rows: Sequence[dict], captions: dict[str, list[Caption]]) -> list[dict]:
    """Copies of the segment rows whose `captions_pred` are the generated captions lying inside each segment."""
    out = []
    for r in segment_rows:
        r = dict(r)
        if "start_sec" in r and "end_sec" in r and r["vid"] in captions:
            s, e = r["start_sec"], r["end_sec"]
            r["captions_pred"] = [list(c) for c in captions[r["vid"]] if c[1] >= s and c[2] <= e]
        else:
            logger.warning("segment of %s has no start/end or no captions; keeping its captions_pred", r["vid"])
        out.append(r)
    return out


@torch.no_grad()
def generate_segment_descriptions(
    model: Any,
    tokenizer: Any,
    segment_rows: Sequence[dict],
    video_rows: Sequence[dict],
    captions: dict[str, list[Caption]],
    feature_dir: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str],
    *,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> dict[str, list[str]]:
    """`{vid: [description, ...]}` in time order for every video of `segment_rows` and `video_rows`.

    `segment_rows` must already carry the generated `captions_pred` (`fill_captions`). A video with no segment
    rows is described over its `segment_seconds` windows, with the captions of `captions` inside each.
    """
    from videorecap.video.sampling import segment_windows

    cfg = model.config
    model.eval()
    by_vid: dict[str, list[dict]] = {}
    for r in segment_rows:
        by_vid.setdefault(r["vid"], []).append(r)
    durations = video_durations(segment_rows, video_rows)
    for v in video_rows:
        if v["vid"] not in by_vid:
            caps = captions.get(v["vid"], [])
            rows = []
            for s, e in segment_windows(durations[v["vid"]], cfg.segment_seconds):
                inside = [c for c in caps if c[1] >= s and c[2] <= e]
                rows.append({"vid": v["vid"], "start_sec": s, "end_sec": e, "captions_pred": inside})
            by_vid[v["vid"]] = rows
    collate = Collator.for_config(tokenizer, cfg, "segment")
    vids = sorted(by_vid)
    store = _open_store(
        cache_dir,
        {
            "step": "segment descriptions",
            "model": model_fingerprint(model),
            "features": str(Path(feature_dir).resolve()),
            "rows": fingerprint_key(by_vid),  # the segment rows with their captions: what the model reads
            "batch_size": batch_size,
        },
    )
    for vid in _bar(distributed.shard(vids), progress, "segment descriptions"):
        if store.get(vid) is not None:
            continue
        rows = sorted(by_vid[vid], key=lambda r: (r.get("start_sec") or 0.0, str(r.get("sid"))))
        ds = SegmentDataset(
            rows,
            feature_dir=feature_dir,
            num_features=cfg.io.segment.num_features,
            sampling=cfg.io.segment.sampling,
            clip_seconds=cfg.clip_seconds,
        )
        descs: list[str] = []
        for k in range(0, len(ds), batch_size):
            batch = collate([{**ds[i], "caption": None} for i in range(k, min(k + batch_size, len(ds)))])
            descs += caption_batch(model, tokenizer, "segment", batch, device=device)
        store.put(vid, rows=descs)
    return _gather(store, vids, "segment descriptions")


def fill_descriptions(video_rows: Sequence[dict], descriptions: dict[str, list[str]]) -> list[dict]:
    """Copies of the video rows whose `segment_descriptions_pred` are the generated descriptions, in time order."""
    out = []
    for r in video_rows:
        r = dict(r)
        if r["vid"] in descriptions:
            r["segment_descriptions_pred"] = list(descriptions[r["vid"]])
            r.pop("version", None)  # now a plain list, whatever the file said
        out.append(r)
    return out
