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

Several videos (`caption_videos`, `videorecap caption A.mp4 B.mp4 ...`): the decoder takes rows of several videos in
one call (`decode_batch` rows): a video's last clip rows with the next video's first ones, and the segments and
summaries of a group of videos, which the engines hand out (`close`, `pending`, `describe`) instead of decoding them
one video at a time. The texts are those of each video alone; `caption_video` is a group of one.

Everything a later run can reuse (clip results in chunks, then the segments, then the summary) is an entry of one
`videorecap.store.Store` in `<out>/.cache/`, written atomically and made under a fingerprint of the video file, the
models' config and weights, and the options: a run killed at any moment and started again redoes at most one chunk
and ends with identical files, and a run with other settings never reuses an entry.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from videorecap.config import LEVELS, Level
from videorecap.errors import CheckpointError, DataError, InputError, VideoError
from videorecap.infer.batch import CaptionItem, caption_batch
from videorecap.infer.decoding_config import DecodeConfig
from videorecap.infer.hierarchy import Hierarchy, SegmentInput, Step, TextFit, VideoInput
from videorecap.infer.options import CaptionOptions, HierarchyOptions, check_windows, needed_levels
from videorecap.levelio import LevelIO, resolve_max_new_tokens
from videorecap.model.recap import VideoRecap
from videorecap.results import Caption, CaptionResult, SummaryInput, VideoMeta
from videorecap.runtime import encoder_map
from videorecap.store import Store, file_identity, model_fingerprint
from videorecap.tokenizer import Tokenizer
from videorecap.video.io import VideoInfo, probe
from videorecap.video.reader import READER_VERSION, iter_windows, prefetch
from videorecap.video.sampling import segment_min_tail, window_plan
from videorecap.video.transforms import eval_transform

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

CACHE_VERSION = 2  # 2: entries of a videorecap.store.Store, the engine for the higher levels


# ---- models -------------------------------------------------------------------------------------------------------
@dataclass
class Captioner:
    """The model (and tokenizer) used for each level: one ReCap-U model for all three, or one per level."""

    models: dict[str, tuple[VideoRecap, Tokenizer]]
    sources: dict[str, str] = field(default_factory=dict)  # level -> where the model came from (for captions.json)
    # the resolved precision the models run in (runtime.resolve_precision): set by `use_precision`
    precision: str = "fp32"
    compiled: bool = False  # the clip encoder runs compiled code (`compile_encoder`)

    def __post_init__(self) -> None:
        for level, pair in self.models.items():
            if level not in LEVELS:
                raise InputError(f"Captioner: unknown level {level!r}; use clip, segment, video")
            if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], VideoRecap)
                    and isinstance(pair[1], Tokenizer)):  # fmt: skip
                got = repr(pair)[:80]
                raise InputError(f"Captioner: models[{level!r}] must be a (VideoRecap, Tokenizer) pair, not {got}")
            model = pair[0]
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

    def use_precision(self, precision: str, device: str | torch.device = "cpu") -> str:
        """Run the models in `precision` (`--precision`: auto, fp32, bf16, int8) on `device`: resolve it, prepare
        the weights in place (`runtime.prepare_model`), and return what it resolved to. Once per Captioner: a
        prepared model cannot go back to fp32 (load it again)."""
        from videorecap.runtime import prepare_model, resolve_precision

        resolved = resolve_precision(device, precision)
        if resolved == self.precision:
            return resolved
        if self.precision != "fp32":
            raise ValueError(f"the models already run in {self.precision}; load them again for {resolved}")
        for model in {id(m): m for m, _ in self.models.values()}.values():  # a ReCap-U model serves several levels
            prepare_model(model, resolved)
        self.precision = resolved
        _log_precision(resolved, precision, device)
        return resolved

    def compile_encoder(self) -> None:
        """Run the clip level's video encoder as code compiled for this machine (`compiled.compile_for_inference`,
        `--compile`): loaded from the on-disk cache, or compiled into it at the first batch (`videorecap.compiled`)."""
        from videorecap.compiled import compile_for_inference

        model = self.model("clip") if "clip" in self.models else None
        if model is not None and model.encoder is not None:
            model.encoder = compile_for_inference(model.encoder, self.precision)  # type: ignore[assignment]
            self.compiled = True

    def compute(self, device: str | torch.device) -> Any:
        """The context every forward pass of these models runs under (autocast for bf16/fp16, else nothing)."""
        from videorecap.runtime import compute_context

        return compute_context(device, self.precision)

    @staticmethod
    def model_paths(
        model: str | os.PathLike[str] | None = None,
        *,
        clip: str | os.PathLike[str] | None = None,
        segment: str | os.PathLike[str] | None = None,
        video: str | os.PathLike[str] | None = None,
        levels: Sequence[str] | str | None = None,
    ) -> dict[str, Path]:
        """The checkpoint folder of each level `load` would read, from the same arguments; only config.json files are
        read, so a command checks its models with it before it creates anything.

        Raises:
            CheckpointError: a model that is no folder, no bundled model's name, or no checkpoint.
            InputError: no model, or none for a level of `levels`.
        """
        from videorecap.checkpoint import read_config, recap_config

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
        return paths

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
        precision: str = "fp32",
    ) -> Captioner:
        """Load from a checkpoint folder (ReCap-U, or one level), a folder with `clip/ segment/ video/`
        checkpoints, the name of a bundled model (`recap-synth`), and/or one folder per level.

        With `levels`, only the models those levels need are loaded, and a missing one is an `InputError` raised
        before any weights are read. `precision` (auto, fp32, bf16, int8) is applied with `use_precision`; the
        library's default is fp32, the original's arithmetic (the CLI's is auto).
        """
        from videorecap.checkpoint import load_model
        from videorecap.runtime import check_device, prepare_model, resolve_precision

        check_device(str(device))
        paths = cls.model_paths(model, clip=clip, segment=segment, video=video, levels=levels)
        resolved = resolve_precision(device, precision)
        models: dict[str, tuple[VideoRecap, Tokenizer]] = {}
        loaded: dict[Path, tuple[VideoRecap, Tokenizer]] = {}
        for lv, p in paths.items():
            if p not in loaded:  # a ReCap-U folder serves several levels with one model
                m, tok = load_model(p, device=device, tokenizer_path=tokenizer)
                # Each model is put in its precision as soon as it is read, so that int8's transient (the fp32 layers
                # it replaces) holds one level's weights on top of the others, not all three levels' fp32 weights.
                loaded[p] = (prepare_model(m, resolved), tok)  # type: ignore[assignment]
            models[lv] = loaded[p]
        sources = {lv: str(p) for lv, p in paths.items()}
        out = cls(_need_tokenizer(models, sources), sources, precision=resolved)
        _log_precision(resolved, precision, device)
        return out


def _log_precision(resolved: str, asked: str, device: str | torch.device) -> None:
    logger.info("precision: %s (asked: %s) on %s", resolved, asked, device)


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
        # the clip captions and (N, C) CLS features once every window is decoded (`clips`)
        self.clip_result: tuple[list[Caption], np.ndarray] | None = None
        self.device = torch.device(opts.device)
        # every cached piece (clip chunks, segments, summary) is an entry of one store, keyed by the fingerprint
        self.store = Store.open(cache_dir, self.fingerprint()) if cache_dir is not None else None

    # -- cache ------------------------------------------------------------------------------------------------------
    def fingerprint(self) -> dict[str, Any]:
        """Everything the cached results depend on: the video file, the models' config and weights, the options."""
        return {
            "cache_version": CACHE_VERSION,
            "reader": READER_VERSION,  # which frames the clip chunks were computed from
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
            # only when not the defaults, so that the entries of earlier runs (fp32, one batch size) stay valid
            **({"precision": self.cap.precision} if self.cap.precision != "fp32" else {}),
            **({"decode_batch": self.decode_batch} if self.decode_batch != self.opts.batch_size else {}),
            **({"compiled": True} if self.cap.compiled else {}),  # its sums differ in the last bits
        }

    @property
    def decode_batch(self) -> int:
        return self.opts.decode_batch or self.opts.batch_size

    @property
    def chunk_size(self) -> int:
        """Windows per cached chunk of clip results: whole decode batches, so a resumed video (captioned alone)
        decodes the same rows together as an uninterrupted one."""
        return -(-max(self.opts.batch_size * self.opts.chunk_batches, self.decode_batch) // self.decode_batch) * (
            self.decode_batch
        )

    def _changed_features(self) -> dict[str, Any]:
        """`{level: {"num_features", "sampling"}}` of the feature levels the options read differently from the model."""
        out = {}
        for lv in self.opts.levels:
            if lv != "clip" and (f := self.io(lv).features(lv)) != self.cap.model(lv).config.io.features(lv):
                out[lv] = asdict(f)
        return out

    def max_tokens(self, level: str) -> int:
        return level_max_tokens(self.cap, level, self.opts)

    def _decode_cfg(self, level: str) -> DecodeConfig:
        return level_decode(self.cap, level, self.opts)

    # -- clip level -------------------------------------------------------------------------------------------------
    def clips(self, bar: Callable[..., Any], rows: _ClipRows | None = None) -> tuple[list[Caption], np.ndarray] | None:
        """Clip captions for every window, and the (N, C) CLS features: also kept as `clip_result`.

        The encoder tokens wait in `rows` and are decoded `decode_batch` rows per call (several encoder batches at
        once), and at each chunk boundary, so that every cached chunk is whole. Without `rows` the last ones are
        decoded at the end. With `rows` shared by a group of videos (`caption_videos`), the last rows (fewer than a
        decode batch) wait there for the next video's rows, and this returns None: `clip_result` is set, and the
        last chunk saved, once they are decoded (at the latest when the group calls `rows.decode()`).
        """
        windows = self.plan.clips
        enc = self.cap.model("clip").encoder
        assert enc is not None
        B, chunk = self.opts.batch_size, self.chunk_size
        done, texts, feats = self.cached_clips()
        shared = rows is not None
        if rows is None:
            rows = self.clip_rows()
        self.clip_result = None
        pending_t: list[str] = []  # decoded texts of the chunk being filled, from window `start`
        pending_f: list[np.ndarray] = []  # CLS rows of every window encoded since `start` (decoded or not)
        start = done

        def save() -> None:
            nonlocal start, pending_t, pending_f
            n = len(pending_t)
            f = np.concatenate(pending_f) if len(pending_f) > 1 else pending_f[0]
            # copies, so that a saved chunk does not keep the rows encoded after it alive, nor they the chunk
            head, rest = (f, f[n:]) if n == len(f) else (f[:n].copy(), f[n:].copy())
            self._save_chunk(start, pending_t, [head])
            texts.extend(pending_t)
            feats.append(head)
            start, pending_t, pending_f = start + n, [], [rest]

        def arrived(new: list[str]) -> None:  # texts of this video's next rows, in order
            pending_t.extend(new)
            if len(pending_t) >= chunk or start + len(pending_t) == len(windows):
                save()
            if start == len(windows):
                self.clip_result = self._clip_result(texts, feats)

        with bar(total=len(windows), initial=done, desc=f"{self.video_id} clips", unit="clip") as pbar:
            if done == len(windows):
                self.clip_result = self._clip_result(texts, feats)
                return self.clip_result
            encoded = done

            def encode(batch: list[torch.Tensor]) -> torch.Tensor:
                return encode_clips(self.cap, batch, self.device)  # (b, 1+T*P, C), in a worker thread

            try:
                with (
                    prefetch(self._frames(windows[done:], enc.config.image_size), depth=2 * B) as frames,
                    encoder_map(encode, _batched(frames, B), self.device, enc) as batches,
                ):
                    # several batches are encoded at once (each as it would be alone); they come back in order
                    for tokens in batches:
                        pending_f.append(cls_features(tokens))
                        rows.add(tokens, arrived)
                        encoded += len(tokens)
                        pbar.update(len(tokens))
                        rows.decode(full_only=True)
                        if encoded - start >= chunk:
                            rows.decode()  # a chunk boundary: its rows (and any rows before them) now
                if not shared or encoded < len(windows):  # alone, or the decoder stopped early (allow_partial)
                    rows.decode()
            except BaseException:
                rows.discard(arrived)  # a failed video's rows are not decoded with the others
                raise
            if encoded < len(windows):
                if pending_t:
                    save()
                self.clip_result = self._clip_result(texts, feats)
        return self.clip_result

    def clip_rows(self) -> _ClipRows:
        """A queue of encoder tokens for this video's clip decoding (and that of the videos after it, in a group)."""
        return _ClipRows(self.cap, self._decode_cfg("clip"), self.device, self.decode_batch)

    def _clip_result(self, texts: list[str], feats: list[np.ndarray]) -> tuple[list[Caption], np.ndarray]:
        windows = self.plan.clips
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
        width = self.cap.model("clip").config.encoder.width
        return captions, np.concatenate(feats) if feats else np.zeros((0, width), np.float32)

    def cached_clips(self) -> tuple[int, list[str], list[np.ndarray]]:
        """The clip results already in the store, from window 0: (windows done, their texts, their features)."""
        windows = self.plan.clips
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
        return done, texts, feats

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
        from videorecap.data.datasets import load_npy

        width = self.cap.model(self.opts.levels[-1]).config.encoder.width
        try:
            feats = load_npy(f, width)  # the checks of training's and evaluate's features: one place, one wording
        except DataError as e:
            raise InputError(str(e)) from None
        if feats.ndim != 2 or feats.shape[0] == 0:
            raise InputError(f"{f}: expected a (windows, width) array, got shape {feats.shape}")
        if not np.isfinite(feats).all():  # NaN would give empty captions above it, without a word
            raise InputError(f"{f}: holds NaN or infinite values; compute the features again")
        return feats.astype(np.float32, copy=False)

    # -- segment and video levels: the hierarchy engine -------------------------------------------------------------
    @property
    def higher_end(self) -> float:
        """Where the higher levels end: the video's end, or where decoding stopped for a partly decoded file."""
        return self.info.duration if self.covered_end is None else self.covered_end

    def engine(self, clips: list[Caption], feats: np.ndarray, segment: Step, video: Step | None) -> Hierarchy:
        """The hierarchy engine of this video, fed every clip and closed at its end: the full batches of `D` complete
        windows are described on the way (as a live input's would be), the rest wait in its queue (`pending()`), for
        `_higher_levels` to describe with the other videos' rests. Descriptions in the store are reused."""
        cached = self.store.get("segments") if self.store is not None else None
        engine = Hierarchy(
            clip_seconds=self.clip_seconds,
            segment_seconds=self.segment_seconds,
            segment=segment,
            video=video,
            batch_size=self.decode_batch,
            segment_min_tail=segment_min_tail(self.clip_seconds, self.opts.min_tail_seconds),
            features=feats,  # offline: the whole array (the clips' CLS features, or precomputed ones)
            known_segments=[Caption(**c) for c in cached.rows] if cached is not None else [],
        )
        for c in clips:
            engine.add_clip(c.start, c.end, c.text)
        engine.close(self.higher_end)
        return engine

    def n_segments(self) -> int:
        """The segment windows of the part that decoded (their descriptions in the store included)."""
        return len(
            window_plan(self.higher_end, self.clip_seconds, self.segment_seconds, self.opts.min_tail_seconds).segments
        )

    def known_segments(self) -> int:
        cached = self.store.get("segments") if self.store is not None else None
        return len(cached.rows) if cached is not None else 0

    def save_segments(self, segments: list[Caption]) -> None:
        if self.store is not None and self.store.get("segments") is None:
            self.store.put("segments", rows=[c.to_dict() for c in segments])

    @property
    def _summary_key(self) -> str:
        # the summary depends on the policy; "summary" is the key of the original's ("first"), as before
        return "summary" if self.opts.summary_text == "first" else f"summary-{self.opts.summary_text}"

    def cached_summary(self) -> Caption | None:
        entry = self.store.get(self._summary_key) if self.store is not None else None
        return Caption(**entry.rows) if entry is not None else None

    def save_summary(self, summary: Caption) -> None:
        if self.store is not None:
            self.store.put(self._summary_key, rows=summary.to_dict())

    def result(self, clips: list[Caption], segments: list[Caption], summary: Caption | None) -> CaptionResult:
        info = self.info
        out = CaptionResult(
            video=VideoMeta(
                id=self.video_id,
                path=str(self.path),
                duration=info.duration,
                fps=info.fps or None,
                width=info.width,
                height=info.height,
                rotation=info.rotation % 360,
                start_time=info.start_time,  # caption times count from the first frame; a player may not
                codec=info.codec,
                partial=self.covered_end is not None,
                covered=None if self.covered_end is None else [[0.0, self.covered_end]],
            ),
            clips=clips,
            segments=segments,
            summary=summary,
            model=describe_model(self.cap, self.opts.levels),
            decoding={
                **self.opts.decode.to_dict(),
                "max_new_tokens": {lv: self.max_tokens(lv) for lv in self.opts.levels},
            },
            windows={"clip": self.clip_seconds, "segment": self.segment_seconds},
            levels=list(self.opts.levels),
            summary_input=self.summary_input,
        )
        logger.info("%s: %d clips, %d segments", self.path, len(clips), len(segments))
        return out

    def _step(self, level: str, pbar: Any) -> Step:
        return level_step(self.cap, level, self.opts, self._decode_cfg(level), self.device, pbar.update)

    def io(self, level: str) -> LevelIO:
        return level_io(self.cap, level, self.opts)


# ---- one level's settings: shared by the file pipeline and live sessions (live/) -------------------------------------
def check_run(captioner: Captioner, opts: HierarchyOptions) -> None:
    """What a run's options ask of its models, checked before any input is read (InputError, the CLI's exit 2): the
    device there, a model for every level, token limits the decoders can reach, and a segment window that holds clip
    windows."""
    from videorecap.runtime import check_device

    check_device(opts.device, "device")  # (a Captioner loaded elsewhere was not checked for this device)
    missing = [lv for lv in opts.levels if lv not in captioner.levels]
    if missing:
        raise missing_levels_error(missing, captioner.levels)
    for level in opts.levels:
        n = level_max_tokens(captioner, level, opts)
        positions = captioner.model(level).decoder.config.n_positions
        most = positions if opts.decode.lengths == "original" else positions - 1  # (+ BOS, as decode.generate)
        if n > most:
            raise InputError(
                f"--max-tokens {n} for the {level} level: its decoder has {positions} positions, so at most {most}"
            )
    ref = captioner.model(opts.levels[0]).config
    check_windows(opts.clip_seconds or ref.clip_seconds, opts.segment_seconds or ref.segment_seconds)


def level_max_tokens(captioner: Captioner, level: str, opts: HierarchyOptions) -> int:
    """A per-level option, then one length for every level, then the model's level I/O."""
    io = captioner.model(level).config.io
    return resolve_max_new_tokens(level, io, opts.max_new_tokens, opts.decode.max_new_tokens)


def level_decode(captioner: Captioner, level: str, opts: CaptionOptions) -> DecodeConfig:
    """The run's decoding settings with the level's token limit (`level_max_tokens`)."""
    d = DecodeConfig(**opts.decode.to_dict())
    d.max_new_tokens = level_max_tokens(captioner, level, opts)
    return d


def level_io(captioner: Captioner, level: str, opts: CaptionOptions) -> LevelIO:
    """The level I/O of `level`: its model's, with the options' feature counts (`--num-features`)."""
    return captioner.model(level).config.io.replace_features(num_features=opts.num_features or None)


def level_step(
    captioner: Captioner,
    level: str,
    opts: CaptionOptions,
    decode: DecodeConfig,
    device: torch.device | str,
    done: Callable[[int], Any] | None = None,
) -> Step:
    """The engine's view of a level: its captioner (the model, batched) and its feature count and sampling; `done`
    is told how many inputs each call captioned (a progress bar)."""
    model, tok = captioner.model(level), captioner.tokenizer(level)
    cfg = model.config

    def caption(items: list[SegmentInput] | list[VideoInput]) -> list[str]:
        # the engine samples; caption_batch stacks the sampled rows and their masks and builds the text ids
        batch = [CaptionItem(x.features, x.text, x.mask) for x in items]
        with captioner.compute(device):
            texts = caption_batch(model, tok, level, batch, decode, device=device)
        if done is not None:
            done(len(items))
        return texts

    fit = None
    if level == "video" and cfg.has_text:  # descriptions fitted to the text the model reads (its collator's limit)
        fit = TextFit.for_tokenizer(tok, cfg.tokens.max_text_tokens, opts.summary_text)
    features = level_io(captioner, level, opts).features(level)
    return Step(caption, features.num_features, features.sampling, fit)


def encode_clips(
    captioner: Captioner, frames: Sequence[torch.Tensor], device: torch.device | str = "cpu"
) -> torch.Tensor:
    """The clip model's encoder over a batch of windows: transformed frames `(3, T, S, S)` each -> `(b, 1+T*P, C)`."""
    enc = captioner.model("clip").encoder
    assert enc is not None
    x = torch.stack(list(frames)).to(device)  # (b, 3, T, S, S)
    with torch.no_grad(), captioner.compute(device):
        return enc(x)


def caption_clip_tokens(
    captioner: Captioner, tokens: torch.Tensor, decode: DecodeConfig, device: torch.device | str = "cpu"
) -> list[str]:
    """Clip captions from encoder tokens `(b, 1+T*P, C)` (rows of several encoder batches may be decoded together)."""
    with captioner.compute(device):
        return caption_batch(captioner.model("clip"), captioner.tokenizer("clip"), "clip", {"video": tokens}, decode)


def cls_features(tokens: torch.Tensor) -> np.ndarray:
    """The windows' CLS features `(b, C)`, float32. A copy: `tokens[:, 0]` is a view, and its array would keep every
    token of the batch alive (1 + T*P rows per window) for as long as the features are kept: memory growing with the
    video."""
    return tokens[:, 0].float().cpu().numpy().copy()


def caption_clips(
    captioner: Captioner, frames: Sequence[torch.Tensor], decode: DecodeConfig, device: torch.device | str = "cpu"
) -> tuple[list[str], np.ndarray]:
    """The clip step for a batch of windows (a file's, or a live input's): frames -> encoder -> clip captions, and
    the windows' CLS features `(b, C)`."""
    tokens = encode_clips(captioner, frames, device)
    return caption_clip_tokens(captioner, tokens, decode, device), cls_features(tokens)


class _ClipRows:
    """Encoder tokens waiting for the clip decoder: one video's, or those of the consecutive videos of a group, whose
    last rows then share a decode batch with the next video's first ones. `decode` captions them `n` rows per call
    (several encoder batches, or videos, at once: the memory-bound decoder reads its weights once for them all) and
    hands each video its texts, in order, through the callback given with its rows."""

    def __init__(self, captioner: Captioner, decode: DecodeConfig, device: torch.device, n: int) -> None:
        self.captioner, self.decode_cfg, self.device, self.n = captioner, decode, device, n
        self._queue: list[tuple[torch.Tensor, Callable[[list[str]], None]]] = []  # (rows not decoded yet, to)

    @property
    def waiting(self) -> int:
        return sum(len(t) for t, _ in self._queue)

    def add(self, tokens: torch.Tensor, to: Callable[[list[str]], None]) -> None:
        """Queue `(b, 1+T*P, C)` encoder tokens; their texts go to `to` (in one or several calls) once decoded."""
        self._queue.append((tokens, to))

    def decode(self, full_only: bool = False) -> None:
        """Caption the waiting rows `n` per call: every row, or (`full_only`) only while `n` rows are waiting."""
        while self._queue and (not full_only or self.waiting >= self.n):
            parts, k = [], 0
            for tokens, _ in self._queue:
                parts.append(tokens[: self.n - k])
                k += len(parts[-1])
                if k == self.n:
                    break
            texts = caption_clip_tokens(self.captioner, parts[0] if len(parts) == 1 else torch.cat(parts),
                                        self.decode_cfg, self.device)  # fmt: skip
            while texts:  # hand them out: the first rows of the queue are the ones decoded
                tokens, to = self._queue[0]
                r = min(len(tokens), len(texts))
                if r == len(tokens):
                    self._queue.pop(0)
                else:
                    self._queue[0] = (tokens[r:], to)
                got, texts = texts[:r], texts[r:]
                to(got)

    def discard(self, to: Callable[[list[str]], None]) -> None:
        """Drop the rows queued with `to` (a video that failed)."""
        self._queue = [(t, cb) for t, cb in self._queue if cb is not to]

    def clear(self) -> None:
        self._queue = []


class ClipCache:
    """The clip level of one video computed elsewhere (the Ray pipeline's actors, `videorecap.raydata`), saved into
    the video's store as `caption_video` saves it, so that `caption_video` then reads it back instead of decoding.

    `missing` are the windows still to do (from `first`); `decode` is the clip level's decoding settings; `add`
    takes the results of one batch (in any order, a repeated batch is ignored) and saves each chunk once it is
    contiguous and whole. Opening it opens (and, for other settings, resets) the store, as `caption_video` does.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        captioner: Captioner,
        opts: CaptionOptions,
        cache_dir: str | os.PathLike[str],
        video_id: str,
    ) -> None:
        path = Path(path)
        self.run = _Run(path, captioner, opts, Path(cache_dir), probe(path), video_id)
        self.windows = self.run.plan.clips
        self.first, _, _ = self.run.cached_clips()
        self.decode = self.run._decode_cfg("clip")
        self._chunk = self.run.chunk_size
        self._next = self.first  # the first window not saved yet
        self._pending: dict[int, tuple[list[str], np.ndarray]] = {}  # first window of a batch -> its results

    @property
    def missing(self) -> list[tuple[float, float]]:
        return self.windows[self._next :]

    @property
    def complete(self) -> bool:
        return self._next >= len(self.windows)

    def add(self, first: int, texts: list[str], feats: np.ndarray) -> None:
        if first >= self._next and first not in self._pending:
            self._pending[first] = (texts, feats)
        while not self.complete:  # save every whole chunk that is contiguous from the last one saved
            size = min(self._chunk, len(self.windows) - self._next)
            got, texts_c, feats_c, i = 0, [], [], self._next
            while got < size and i in self._pending:
                t, f = self._pending[i]
                texts_c += t
                feats_c.append(f)
                got += len(t)
                i += len(t)
            if got < size:
                return
            self.run._save_chunk(self._next, texts_c, feats_c)
            for k in [k for k in self._pending if k < i]:
                del self._pending[k]
            self._next = i


def _chunk_key(start: int) -> str:
    return f"clips-{start:07d}"  # one entry per chunk of clip results, named by its first window


def _batched(it: Iterator[_T], n: int) -> Iterator[list[_T]]:
    batch: list[_T] = []
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
    if cache_dir is not None and Path(cache_dir).exists() and not Path(cache_dir).is_dir():
        raise InputError(f"cache_dir {cache_dir}: is a file, not a folder")
    ((_, out, _),) = caption_videos([(path, video_id, cache_dir)], captioner, options)
    if isinstance(out, Exception):
        raise out
    return out


VideoJob = tuple[str | os.PathLike[str], str | None, str | os.PathLike[str] | None]  # (path, video id, cache dir)


def caption_videos(
    videos: Sequence[VideoJob], captioner: Captioner, options: CaptionOptions | None = None
) -> Iterator[tuple[int, CaptionResult | Exception, float]]:
    """Caption several videos, `(path, video id or None, cache dir or None)` each, decoding rows of several videos
    together; yields `(index, result or the exception that failed it, seconds)` for each video, once it is done.

    Each video's clip windows are encoded on their own (its encoder batches, its cache chunks), and its clip rows are
    decoded `decode_batch` at a time; its last ones (fewer) wait for the next video's first rows. The videos are kept
    in a group until it fills a decode batch (`decode_batch` videos, or as many segment windows): the segment windows
    left in each engine after its full batches (a short video's are all of them) are decoded together,
    `decode_batch` rows per call, then the summaries. Greedy and beam-search rows do not depend on their batch
    partners, so every text is the one the video gets captioned alone (in fp32). Sampling decodes each video on its
    own: its random draws would depend on the other rows of a call.

    A group's videos are yielded once its summaries are made; each video's clip chunks and descriptions go to its
    store as soon as they are made, so an interrupted run redoes none of them. A failing video is yielded with its
    exception and the others go on. Memory is bounded by the group: its videos' CLS features (N, C), and fewer than
    2 * decode_batch waiting segment inputs and clip rows, never a whole video's clip tokens.
    """
    opts = options or CaptionOptions()
    check_run(captioner, opts)
    bar = _bar_factory(opts.progress)
    # sampled rows draw from one random stream per decode call, so next to other videos' rows a video's captions
    # would depend on the other inputs: with sampling every video is decoded on its own (reproducible with a seed)
    together = opts.decode.strategy != "sample"
    group: list[_Clipped] = []
    rows: _ClipRows | None = None  # the group's clip rows: a video's last ones wait for the next video's
    for i, (path, vid, cache_dir) in enumerate(videos):
        t0 = time.perf_counter()
        try:
            path = Path(path)
            run = _Run(path, captioner, opts, Path(cache_dir) if cache_dir else None, probe(path), vid or path.stem)
            pre = run.load_features()
            if rows is None or not together:
                rows = run.clip_rows()
            run.clips(bar, rows)
        except Exception as e:  # noqa: BLE001 - one video's failure is its own; the others go on
            yield i, e, time.perf_counter() - t0
            continue
        group.append(_Clipped(i, t0, run, pre))
        if not together or _group_full(group, run.decode_batch, "segment" in opts.levels):
            yield from _close_group(group, rows, bar)
            group = []
    if group:
        assert rows is not None
        yield from _close_group(group, rows, bar)


@dataclass
class _Clipped:
    """A video whose clip level is done (or whose last clip rows wait in the group's queue), waiting for the higher
    levels of its group."""

    index: int
    t0: float
    run: _Run
    features: np.ndarray | None  # precomputed features (`features_dir`), read instead of the clips' CLS features


def _group_full(group: list[_Clipped], decode_batch: int, segments: bool) -> bool:
    """A group holds up to `decode_batch` videos (one summary row each, or one clip tail each) or segment windows (so
    that at most 2 * decode_batch segment inputs wait at once; a video with that many is a group of its own)."""
    return len(group) >= decode_batch or (segments and sum(v.run.n_segments() for v in group) >= decode_batch)


def _close_group(
    group: list[_Clipped], rows: _ClipRows, bar: Callable[..., Any]
) -> Iterator[tuple[int, CaptionResult | Exception, float]]:
    """Decode the clip rows still waiting, then the group's higher levels; a video whose rows failed fails."""
    try:
        rows.decode()
    except Exception as e:  # noqa: BLE001 - decoded together, the videos still waiting fail together
        rows.clear()
        for v in group:
            if v.run.clip_result is None:
                yield v.index, e, time.perf_counter() - v.t0
        group = [v for v in group if v.run.clip_result is not None]
    if group:
        yield from _higher_levels(group, bar)


def _higher_levels(
    group: list[_Clipped], bar: Callable[..., Any]
) -> Iterator[tuple[int, CaptionResult | Exception, float]]:
    """The segment and video levels of a group of videos (see `caption_videos`), then each video's result."""
    first = group[0].run
    opts, D = first.opts, first.decode_batch
    done: dict[int, tuple[list[Caption], Caption | None]] = {}
    failed: dict[int, Exception] = {}
    if "segment" not in opts.levels:
        done = {v.index: ([], None) for v in group}
    else:
        want_video = "video" in opts.levels
        name = first.video_id if len(group) == 1 else f"{first.video_id} +{len(group) - 1}"
        n_windows = sum(v.run.n_segments() for v in group)
        known = sum(v.run.known_segments() for v in group)
        with (
            bar(total=n_windows, initial=known, desc=f"{name} segments", unit="segment") as seg_bar,
            bar(total=len(group) if want_video else 0, desc=f"{name} summary", unit="video") as video_bar,
        ):
            segment = first._step("segment", seg_bar)
            video = first._step("video", video_bar) if want_video else None
            engines: dict[int, Hierarchy] = {}
            for v in group:
                try:
                    clips, feats = v.run.clip_result
                    engines[v.index] = v.run.engine(clips, feats if v.features is None else v.features, segment, video)
                except Exception as e:  # noqa: BLE001 - one video's failure is its own
                    failed[v.index] = e
            runs = {v.index: v.run for v in group}
            try:
                # every engine's remaining windows as one list of rows, then each engine takes its texts back
                todo = {i: e.pending() for i, e in engines.items()}
                texts = _caption_rows(segment, [x for xs in todo.values() for x in xs], D)
                for i, xs in todo.items():
                    engines[i].describe(texts[: len(xs)])
                    texts = texts[len(xs) :]
                    runs[i].save_segments(engines[i].segments)
                summaries = {i: runs[i].cached_summary() for i in engines} if video is not None else {}
                inputs: dict[int, VideoInput] = {}
                for i in summaries:
                    inputs[i] = engines[i].video_input()
                    fitted = inputs[i].fitted
                    if fitted is not None and fitted.tokens > fitted.max_tokens:  # recorded only when not all fit
                        runs[i].summary_input = fitted
                todo_v = [i for i, c in summaries.items() if c is None]
                assert video is not None or not todo_v
                texts = _caption_rows(video, [inputs[i] for i in todo_v], D) if todo_v else []  # type: ignore[arg-type]
                for i, text in zip(todo_v, texts, strict=True):
                    summaries[i] = Caption(inputs[i].start, inputs[i].end, text)
                    runs[i].save_summary(summaries[i])
                done = {i: (e.segments, summaries.get(i)) for i, e in engines.items()}
            except Exception as e:  # noqa: BLE001 - decoded together, the group's videos fail together
                failed.update({i: e for i in engines})
    for v in group:
        if v.index in failed:
            yield v.index, failed[v.index], time.perf_counter() - v.t0
        else:
            yield v.index, v.run.result(v.run.clip_result[0], *done[v.index]), time.perf_counter() - v.t0


def _caption_rows(step: Step, items: list, n: int) -> list[str]:
    """One level's inputs of several videos captioned `n` rows per call (the engine's own batching, across videos)."""
    return [t for part in _batched(iter(items), n) for t in step.caption(part)]


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
    if not isinstance(path, (str, os.PathLike)):
        raise InputError(f"caption: path must be a video file's path (str or Path), not {path!r}")
    if not isinstance(model, (str, os.PathLike, Captioner)):
        raise InputError(f"caption: model must be a checkpoint folder, a model name or a Captioner, not {model!r}")
    captioner = model if isinstance(model, Captioner) else Captioner.load(model, device=opts.device, levels=opts.levels)
    return caption_video(path, captioner, opts)
