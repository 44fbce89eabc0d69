"""The recursion: a video file -> clip captions -> segment descriptions -> a video summary.

For one video:

1. **clip**: every `clip_seconds` window `[i, min(i+4, dur))` of `sampling.window_plan` (a tail shorter than
   `min_tail_seconds` joins the last window) is decoded in one pass over the file (in a background thread),
   encoded by the clip model's TimeSformer into all tokens, and captioned (batched, KV-cached). The CLS token of
   each window is kept as that window's feature: (N, C), a few MB even for hours of video. With `allow_partial`, a
   file that stops decoding part-way is captioned at every level over the part that decoded (`VideoMeta.partial`,
   `covered`).
2. **segment**: every `segment_seconds` window gets a description from its features (the original's slice
   `[int(s/4) : int(e//4)+1]`, sampled to the model's feature count) and the clip captions that lie inside it,
   joined as the original joins them.
3. **video**: one summary from all features (sampled the model's way, masked) and the segment descriptions,
   fitted to the video model's text limit (512 tokens): all of them when they fit, else as many as fit chosen
   evenly across the video (`summary_text="spread"`), or the first 512 tokens as the original
   (`summary_text="first"`, `caption --original-settings`); see `infer.hierarchy`.

Levels 2 and 3 are `infer.hierarchy.Hierarchy`, the incremental engine that a live input drives too: here it is
fed every clip result of the file and then told where the video ends.

Everything a later run can reuse (clip results in chunks, then the segments, then the summary) is an entry of one
`videorecap.store.Store` in `<out>/.cache/`, written atomically and made under a fingerprint of the video file, the
models' config and weights, and the options: a run killed at any moment and started again redoes at most one chunk
and ends with identical files, and a run with other settings never reuses an entry.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from videorecap.config import LEVELS, Level
from videorecap.errors import CheckpointError, InputError, VideoError
from videorecap.infer.batch import CaptionItem, caption_batch
from videorecap.infer.decode import DecodeConfig
from videorecap.infer.hierarchy import Hierarchy, SegmentInput, Step, TextFit, VideoInput
from videorecap.levelio import LevelIO, resolve_max_new_tokens
from videorecap.model.recap import VideoRecap
from videorecap.results import SUMMARY_POLICIES, Caption, CaptionResult, SummaryInput, VideoMeta
from videorecap.store import Store, file_identity, model_fingerprint
from videorecap.tokenizer import Tokenizer
from videorecap.video.io import VideoInfo, probe
from videorecap.video.reader import iter_windows, prefetch
from videorecap.video.sampling import DEFAULT_MIN_TAIL_SECONDS, segment_min_tail, window_plan
from videorecap.video.transforms import eval_transform

logger = logging.getLogger(__name__)

CACHE_VERSION = 2  # 2: entries of a videorecap.store.Store, the engine for the higher levels


# ---- models -------------------------------------------------------------------------------------------------------
@dataclass
class Captioner:
    """The model (and tokenizer) used for each level: one ReCap-U model for all three, or one per level."""

    models: dict[str, tuple[VideoRecap, Tokenizer]]
    sources: dict[str, str] = field(default_factory=dict)  # level -> where the model came from (for captions.json)

    def __post_init__(self) -> None:
        for level, (model, _) in self.models.items():
            if level not in model.config.levels:
                raise CheckpointError(
                    f"{self.sources.get(level, 'model')}: a {model.config.level}-level model cannot caption "
                    f"the {level} level"
                )
            model.eval()
        if "clip" in self.models and self.models["clip"][0].encoder is None:
            raise CheckpointError("the clip-level model has no video encoder")

    @property
    def levels(self) -> tuple[Level, ...]:
        return tuple(lv for lv in LEVELS if lv in self.models)

    def model(self, level: str) -> VideoRecap:
        return self.models[level][0]

    def tokenizer(self, level: str) -> Tokenizer:
        return self.models[level][1]

    @classmethod
    def load(
        cls,
        model: str | os.PathLike[str] | None = None,
        *,
        clip: str | os.PathLike[str] | None = None,
        segment: str | os.PathLike[str] | None = None,
        video: str | os.PathLike[str] | None = None,
        device: str = "cpu",
        tokenizer: str | os.PathLike[str] | None = None,
        levels: Sequence[str] | str | None = None,
    ) -> Captioner:
        """Load from a checkpoint folder (ReCap-U, or one level), a folder with `clip/ segment/ video/`
        checkpoints, the name of a bundled model (`recap-synth`), and/or one folder per level.

        With `levels`, only the models those levels need are loaded, and a missing one is an `InputError` raised
        before any weights are read.
        """
        from videorecap.checkpoint import load_model, read_config, recap_config
        from videorecap.runtime import check_device

        check_device(str(device))
        paths: dict[str, Path] = {}  # level -> checkpoint folder
        if model is not None:
            root = resolve_model(model)
            if (root / "config.json").is_file():
                for lv in recap_config(read_config(root), root / "config.json").levels:
                    paths[lv] = root
            else:
                for lv in LEVELS:
                    # clip/ segment/ video/ checkpoints, or a `videorecap train` output folder (<level>/final/)
                    for cand in (root / lv, root / lv / "final"):
                        if (cand / "config.json").is_file():
                            paths[lv] = cand
                            break
                if not paths:
                    raise CheckpointError(
                        f"{root}: not a model: expected a checkpoint folder (config.json), clip/ segment/ video/ "
                        "checkpoint folders inside it, or a `videorecap train` output folder"
                    )
        for lv, p in (("clip", clip), ("segment", segment), ("video", video)):
            if p is not None:
                paths[lv] = resolve_model(p)
        if not paths:
            raise InputError("no model given")
        if levels is not None:
            wanted = needed_levels(levels)
            missing = [lv for lv in wanted if lv not in paths]
            if missing:
                raise missing_levels_error(missing, tuple(lv for lv in LEVELS if lv in paths))
            paths = {lv: p for lv, p in paths.items() if lv in wanted}
        models: dict[str, tuple[VideoRecap, Tokenizer]] = {}
        loaded: dict[Path, tuple[VideoRecap, Tokenizer]] = {}
        for lv, p in paths.items():
            if p not in loaded:  # a ReCap-U folder serves several levels with one model
                loaded[p] = load_model(p, device=device, tokenizer_path=tokenizer)  # type: ignore[assignment]
            models[lv] = loaded[p]
        sources = {lv: str(p) for lv, p in paths.items()}
        return cls(_need_tokenizer(models, sources), sources)


def resolve_model(model: str | os.PathLike[str]) -> Path:
    """A model folder from what the user gave: a path, or the name of a bundled model (`recap-synth`).

    Raises:
        CheckpointError: a path that does not exist and is no bundled model's name, or a file (a checkpoint or weights
            file given where its folder, or a converted folder, is expected: the message says what to do).
    """
    from videorecap.checkpoint import describe_file

    p = Path(model)
    if p.exists():
        if not p.is_dir():
            raise CheckpointError(describe_file(p))
        return p
    bundled = bundled_models()
    if str(model) in bundled:
        return bundled[str(model)]
    raise CheckpointError(
        f"{p}: no such model folder (bundled model{'s' if len(bundled) > 1 else ''}: {', '.join(bundled)})"
    )


def bundled_models() -> dict[str, Path]:
    """Models shipped inside the package, by name."""
    from videorecap.config import BUNDLED_MODELS, bundled_model_dir

    return {name: bundled_model_dir(name) for name in BUNDLED_MODELS}


def needed_levels(levels: Sequence[str] | str) -> tuple[Level, ...]:
    """The levels a run needs: every level up to the highest one named ("clip,segment", ["video"], ...)."""
    names = [x.strip() for x in levels.split(",")] if isinstance(levels, str) else [str(x).strip() for x in levels]
    names = [x for x in names if x]
    bad = sorted(set(names) - set(LEVELS))
    if bad:
        raise InputError(f"unknown level(s) {', '.join(bad)}; use clip, segment, video")
    if not names:
        raise InputError("no level to caption")
    # the recursion needs every level below the highest one asked for
    return LEVELS[: max(LEVELS.index(x) for x in names) + 1]  # type: ignore[arg-type]


def missing_levels_error(missing: Sequence[str], have: Sequence[str]) -> InputError:
    return InputError(
        f"no model for the {', '.join(missing)} level(s): give one (e.g. --{missing[0]}-model) or stop earlier "
        f"with --levels {','.join(have)}"
    )


def _need_tokenizer(models: dict, sources: dict[str, str]) -> dict:
    for lv, (_, tok) in models.items():
        if tok is None:
            raise CheckpointError(f"{sources[lv]}: the checkpoint has no tokenizer.json; pass --tokenizer DIR")
    return models


# ---- options --------------------------------------------------------------------------------------------------------
@dataclass
class CaptionOptions:
    """How to caption. `None` means the model's own value (window sizes, token limits)."""

    levels: tuple[Level, ...] | str = LEVELS  # a sequence of levels, or one string: "clip" or "clip,segment"
    clip_seconds: float | None = None
    segment_seconds: float | None = None
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    max_new_tokens: dict[str, int] = field(default_factory=dict)  # per-level override
    num_features: dict[str, int] = field(default_factory=dict)  # segment/video: override of the models' level I/O
    batch_size: int = 8
    grid_fps: float | None = None  # 30 = the original's fixed 30-fps frame grid
    features_dir: Path | None = None  # precomputed CLS features {video_id}.npy
    allow_partial: bool = False  # keep the windows decoded before a mid-stream decode error
    min_tail_seconds: float = DEFAULT_MIN_TAIL_SECONDS  # a shorter last window joins the previous one
    device: str = "cpu"
    progress: bool = False
    chunk_batches: int = 4  # clip results are cached every chunk_batches * batch_size windows
    # which segment descriptions the video level reads when they exceed its text limit: "spread" (evenly across the
    # video) or "first" (the first 512 tokens, as the original; `caption --original-settings`)
    summary_text: str = "spread"

    def __post_init__(self) -> None:
        self.levels = needed_levels(self.levels)
        if self.batch_size < 1:
            raise InputError("--batch-size must be at least 1")
        for name in ("clip_seconds", "segment_seconds", "grid_fps"):
            v = getattr(self, name)
            if v is not None and not (v > 0 and math.isfinite(v)):  # NaN fails every comparison
                raise InputError(f"--{name.replace('_', '-')} must be a positive number, got {v}")
        if not (self.min_tail_seconds >= 0 and math.isfinite(self.min_tail_seconds)):
            raise InputError(f"--min-tail-seconds must be 0 or more, got {self.min_tail_seconds}")
        if self.summary_text not in SUMMARY_POLICIES:
            raise InputError(f"summary_text must be one of {', '.join(SUMMARY_POLICIES)}, got {self.summary_text!r}")
        try:
            LevelIO().replace_features(num_features=self.num_features or None)
        except ValueError as e:
            raise InputError(f"--num-features: {e}") from None


# ---- the per-video run ----------------------------------------------------------------------------------------------
class _Run:
    """One video: windows, cache, and the three levels."""

    def __init__(
        self,
        path: Path,
        captioner: Captioner,
        opts: CaptionOptions,
        cache_dir: Path | None,
        info: VideoInfo,
        video_id: str,
    ) -> None:
        self.path, self.cap, self.opts, self.info, self.video_id = path, captioner, opts, info, video_id
        ref = captioner.model(captioner.levels[0]).config
        self.clip_seconds = opts.clip_seconds or ref.clip_seconds
        self.segment_seconds = opts.segment_seconds or ref.segment_seconds
        self.plan = window_plan(info.duration, self.clip_seconds, self.segment_seconds, opts.min_tail_seconds)
        # the end of the decoded part when a broken file stopped the clip level early (allow_partial), else None
        self.covered_end: float | None = None
        # which descriptions the summary read, when they did not all fit the video model's text limit
        self.summary_input: SummaryInput | None = None
        self.device = torch.device(opts.device)
        # every cached piece (clip chunks, segments, summary) is an entry of one store, keyed by the fingerprint
        self.store = Store.open(cache_dir, self.fingerprint()) if cache_dir is not None else None

    # -- cache ------------------------------------------------------------------------------------------------------
    def fingerprint(self) -> dict[str, Any]:
        """Everything the cached results depend on: the video file, the models' config and weights, the options."""
        return {
            "cache_version": CACHE_VERSION,
            "video": file_identity(self.path),
            "models": {lv: model_fingerprint(self.cap.model(lv)) for lv in self.opts.levels},
            "windows": [self.clip_seconds, self.segment_seconds, self.opts.min_tail_seconds],
            "decode": self.opts.decode.to_dict(),
            "max_new_tokens": {lv: self.max_tokens(lv) for lv in self.opts.levels},
            "batch_size": self.opts.batch_size,
            "grid_fps": self.opts.grid_fps,
            "features_dir": str(self.opts.features_dir) if self.opts.features_dir else None,
            # only what differs from the models' level I/O, so that the caches of runs without it keep their keys
            **({"features": changed} if (changed := self._changed_features()) else {}),
        }

    def _changed_features(self) -> dict[str, Any]:
        """`{level: {"num_features", "sampling"}}` of the feature levels the options read differently from the model."""
        out = {}
        for lv in self.opts.levels:
            if lv != "clip" and (f := self.io(lv).features(lv)) != self.cap.model(lv).config.io.features(lv):
                out[lv] = asdict(f)
        return out

    def max_tokens(self, level: str) -> int:
        # a per-level option, then one length for every level, then the model's level I/O
        io = self.cap.model(level).config.io
        return resolve_max_new_tokens(level, io, self.opts.max_new_tokens, self.opts.decode.max_new_tokens)

    def _decode_cfg(self, level: str) -> DecodeConfig:
        d = DecodeConfig(**self.opts.decode.to_dict())
        d.max_new_tokens = self.max_tokens(level)
        return d

    # -- clip level -------------------------------------------------------------------------------------------------
    def clips(self, bar: Callable[..., Any]) -> tuple[list[Caption], np.ndarray]:
        """Clip captions for every window, and the (N, C) CLS features."""
        windows = self.plan.clips
        model = self.cap.model("clip")
        enc = model.encoder
        assert enc is not None
        B = self.opts.batch_size
        chunk = B * self.opts.chunk_batches
        texts: list[str] = []
        feats: list[np.ndarray] = []
        # reuse finished chunks (a short one is where an earlier run of a broken file stopped: go on from there)
        done = 0
        while done < len(windows) and self.store is not None:
            entry = self.store.get(_chunk_key(done))  # None: not done yet, or unreadable (dropped, with a warning)
            if entry is None:
                break
            part_f, part_t = entry.arrays["features"], list(entry.rows)
            feats.append(part_f)
            texts.extend(part_t)
            done += len(part_t)
            if not part_t:
                break
        with bar(total=len(windows), initial=done, desc=f"{self.video_id} clips", unit="clip") as pbar:
            if done < len(windows):
                size = enc.config.image_size
                frames_iter = self._frames(windows[done:], size)
                pending_t: list[str] = []
                pending_f: list[np.ndarray] = []
                start = done
                with prefetch(frames_iter, depth=2 * B) as frames:
                    for batch in _batched(frames, B):
                        x = torch.stack(batch).to(self.device)  # (b, 3, T, S, S)
                        with torch.no_grad():
                            tokens = enc(x)  # (b, 1+T*P, C)
                        tok = self.cap.tokenizer("clip")
                        pending_t += caption_batch(model, tok, "clip", {"video": tokens}, self._decode_cfg("clip"))
                        # a copy: `tokens[:, 0]` is a view, and its array would keep every token of the batch
                        # alive (1 + T*P rows per window) until the clip stage ends: memory growing with the video
                        pending_f.append(tokens[:, 0].float().cpu().numpy().copy())
                        pbar.update(len(batch))
                        if len(pending_t) >= chunk or start + len(pending_t) == len(windows):
                            self._save_chunk(start, pending_t, pending_f)
                            texts += pending_t
                            feats += pending_f
                            start += len(pending_t)
                            pending_t, pending_f = [], []
                if start < len(windows) and pending_t:  # the decoder stopped early (allow_partial)
                    self._save_chunk(start, pending_t, pending_f)
                    texts += pending_t
                    feats += pending_f
        if len(texts) < len(windows):
            if not texts:
                raise VideoError(
                    f"{self.path}: no window could be decoded (the first {windows[0][1]:g} s do not decode); "
                    "nothing to caption"
                )
            windows = windows[: len(texts)]
            self.covered_end = windows[-1][1]
            logger.warning(
                "%s: captioned the first %.2f s of %.2f s (the rest does not decode)",
                self.path,
                self.covered_end,
                self.info.duration,
            )
        captions = [Caption(s, e, t) for (s, e), t in zip(windows, texts, strict=True)]
        cls_feats = np.concatenate(feats) if feats else np.zeros((0, enc.config.width), np.float32)
        return captions, cls_feats

    def _frames(self, windows: Sequence[tuple[float, float]], size: int) -> Iterator[torch.Tensor]:
        enc = self.cap.model("clip").encoder
        assert enc is not None
        for _, frames in iter_windows(
            self.path,
            windows,
            enc.config.num_frames,
            grid_fps=self.opts.grid_fps,
            info=self.info,
            allow_partial=self.opts.allow_partial,
        ):
            yield eval_transform(frames, size)  # (3, T, S, S), normalised, in the decode thread

    def _save_chunk(self, start: int, texts: list[str], feats: list[np.ndarray]) -> None:
        if self.store is not None:
            self.store.put(_chunk_key(start), arrays={"features": np.concatenate(feats)}, rows=texts)

    # -- features for the higher levels ------------------------------------------------------------------------------
    def load_features(self) -> np.ndarray | None:
        if self.opts.features_dir is None:
            return None
        f = Path(self.opts.features_dir) / f"{self.video_id}.npy"
        if not f.is_file():
            raise InputError(f"{f}: no precomputed features for video {self.video_id}")
        try:
            feats = np.load(f, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise InputError(f"{f}: not a readable .npy feature file ({e})") from None
        if feats.ndim != 2 or feats.shape[0] == 0:
            raise InputError(f"{f}: expected a (windows, width) array, got shape {feats.shape}")
        width = self.cap.model(self.opts.levels[-1]).config.encoder.width
        if feats.shape[1] != width:
            raise InputError(f"{f}: features of width {feats.shape[1]}, but the model reads {width}-wide features")
        return feats.astype(np.float32, copy=False)

    # -- segment and video levels: the hierarchy engine -------------------------------------------------------------
    def higher_levels(
        self, clips: list[Caption], feats: np.ndarray, bar: Callable[..., Any]
    ) -> tuple[list[Caption], Caption | None]:
        """Segment descriptions and the summary, from the clip captions and the (N, C) features.

        The recursion itself (windows, joins, slices, sampling, batching) is `infer.hierarchy.Hierarchy`, the
        same engine a live input drives; here it is fed every clip of the file, then told where the video ends
        (where decoding stopped, for a partly decoded file). Finished levels are reused from the store.
        """
        levels = self.opts.levels
        if "segment" not in levels:
            return [], None
        end = self.info.duration if self.covered_end is None else self.covered_end  # only what decoded
        cached = self.store.get("segments") if self.store is not None else None
        known = [Caption(**c) for c in cached.rows] if cached is not None else []
        n_windows = len(window_plan(end, self.clip_seconds, self.segment_seconds, self.opts.min_tail_seconds).segments)
        want_video = "video" in levels
        with (
            bar(total=n_windows, initial=len(known), desc=f"{self.video_id} segments", unit="segment") as seg_bar,
            bar(total=1 if want_video else 0, desc=f"{self.video_id} summary", unit="video") as video_bar,
        ):
            engine = Hierarchy(
                clip_seconds=self.clip_seconds,
                segment_seconds=self.segment_seconds,
                segment=self._step("segment", seg_bar),
                video=self._step("video", video_bar) if want_video else None,
                batch_size=self.opts.batch_size,
                segment_min_tail=segment_min_tail(self.clip_seconds, self.opts.min_tail_seconds),
                features=feats,  # offline: the whole array (the clips' CLS features, or precomputed ones)
                known_segments=known,
            )
            for c in clips:
                engine.add_clip(c.start, c.end, c.text)
            engine.finish(end)
            segments = engine.segments
            if cached is None and self.store is not None:
                self.store.put("segments", rows=[c.to_dict() for c in segments])
            if not want_video:
                return segments, None
            fitted = engine.video_input().fitted
            if fitted is not None and fitted.tokens > fitted.max_tokens:  # recorded only when not all fit
                self.summary_input = fitted
            # the summary depends on the policy; "summary" is the key of the original's ("first"), as before
            key = "summary" if self.opts.summary_text == "first" else f"summary-{self.opts.summary_text}"
            cached_summary = self.store.get(key) if self.store is not None else None
            if cached_summary is not None:
                return segments, Caption(**cached_summary.rows)
            summary = engine.summary()
        if self.store is not None:
            self.store.put(key, rows=summary.to_dict())
        return segments, summary

    def _step(self, level: str, pbar: Any) -> Step:
        """The engine's view of a level: its captioner (the model, batched) and its feature count and sampling."""
        model, tok = self.cap.model(level), self.cap.tokenizer(level)
        cfg = model.config
        decode = self._decode_cfg(level)

        def caption(items: list[SegmentInput] | list[VideoInput]) -> list[str]:
            # the engine samples; caption_batch stacks the sampled rows and their masks and builds the text ids
            batch = [CaptionItem(x.features, x.text, x.mask) for x in items]
            texts = caption_batch(model, tok, level, batch, decode, device=self.device)
            pbar.update(len(items))
            return texts

        fit = None
        if level == "video" and cfg.has_text:  # descriptions fitted to the text the model reads (its collator's limit)
            fit = TextFit.for_tokenizer(tok, cfg.tokens.max_text_tokens, self.opts.summary_text)
        features = self.io(level).features(level)
        return Step(caption, features.num_features, features.sampling, fit)

    def io(self, level: str) -> LevelIO:
        """The level I/O of `level`: its model's, with the options' feature counts (`--num-features`)."""
        return self.cap.model(level).config.io.replace_features(num_features=self.opts.num_features or None)


def _chunk_key(start: int) -> str:
    return f"clips-{start:07d}"  # one entry per chunk of clip results, named by its first window


def _batched(it: Iterator[torch.Tensor], n: int) -> Iterator[list[torch.Tensor]]:
    batch: list[torch.Tensor] = []
    for x in it:
        batch.append(x)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


def _bar_factory(progress: bool) -> Callable[..., Any]:
    if progress:
        from tqdm.auto import tqdm

        return lambda **kw: tqdm(leave=False, dynamic_ncols=True, **kw)
    return lambda **kw: _NoBar()


class _NoBar:
    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *a: object) -> None:
        pass

    def update(self, n: int = 1) -> None:
        pass


# ---- public API -----------------------------------------------------------------------------------------------------
def describe_model(captioner: Captioner, levels: Sequence[str]) -> dict[str, Any]:
    """captions.json's `model`: per level, where the model came from, its preset and level, and its model card
    (meta.json `card`, when the checkpoint folder has one)."""
    from videorecap.checkpoint import read_card

    out: dict[str, Any] = {}
    for lv in (lv for lv in levels if lv in captioner.levels):  # a missing level is reported by caption_video
        source = captioner.sources.get(lv, "in-memory")
        m = captioner.model(lv).config
        out[lv] = {"source": source, "preset": m.name, "level": m.level}
        card = read_card(source) if Path(source).is_dir() else None
        if card:
            out[lv]["card"] = card
    return out


def caption_video(
    path: str | os.PathLike[str],
    captioner: Captioner,
    options: CaptionOptions | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    video_id: str | None = None,
) -> CaptionResult:
    """Caption one video at every level in `options.levels`; `cache_dir` makes the run resumable."""
    opts = options or CaptionOptions()
    missing = [lv for lv in opts.levels if lv not in captioner.levels]
    if missing:
        raise missing_levels_error(missing, captioner.levels)
    path = Path(path)
    info = probe(path)
    vid = video_id or path.stem
    t0 = time.perf_counter()
    run = _Run(path, captioner, opts, Path(cache_dir) if cache_dir else None, info, vid)
    bar = _bar_factory(opts.progress)
    clips, feats = run.clips(bar)
    pre = run.load_features()
    if pre is not None:
        feats = pre
    segments, summary = run.higher_levels(clips, feats, bar)
    result = CaptionResult(
        video=VideoMeta(
            id=vid,
            path=str(path),
            duration=info.duration,
            fps=info.fps or None,
            width=info.width,
            height=info.height,
            rotation=info.rotation % 360,
            start_time=info.start_time,  # caption times count from the first frame; a player may not
            codec=info.codec,
            partial=run.covered_end is not None,
            covered=None if run.covered_end is None else [[0.0, run.covered_end]],
        ),
        clips=clips,
        segments=segments,
        summary=summary,
        model=describe_model(captioner, opts.levels),
        decoding={**opts.decode.to_dict(), "max_new_tokens": {lv: run.max_tokens(lv) for lv in opts.levels}},
        windows={"clip": run.clip_seconds, "segment": run.segment_seconds},
        levels=list(opts.levels),
        summary_input=run.summary_input,
    )
    logger.info("%s: %d clips, %d segments in %.1fs", path, len(clips), len(segments), time.perf_counter() - t0)
    return result


def caption(
    path: str | os.PathLike[str],
    model: str | os.PathLike[str] | Captioner,
    **options: Any,
) -> CaptionResult:
    """Caption a video file: clip captions, segment descriptions and a summary, as typed objects.

    `model` is a checkpoint folder (ReCap-U or one level), a folder with `clip/ segment/ video/` checkpoints, or a
    `Captioner`, or `"recap-synth"` (the bundled model). Keyword options are `CaptionOptions` fields (e.g.
    `levels="clip,segment"` or `levels=("clip",)`, `batch_size=16`, `decode=DecodeConfig(strategy="beam")`).
    """
    opts = CaptionOptions(**options)  # a bad option is found before a model loads
    captioner = model if isinstance(model, Captioner) else Captioner.load(model, device=opts.device, levels=opts.levels)
    return caption_video(path, captioner, opts)
