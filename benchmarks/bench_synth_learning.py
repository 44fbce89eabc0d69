"""Train recap-synth on the synthetic world and show that it learns (issue #7 §2-§4).

    python benchmarks/bench_synth_learning.py --work /tmp/synth-run [--bundle src/videorecap/assets/recap-synth]
        [--results benchmarks/RESULTS.md] [--table4-epochs E]

Steps (all under --work; each is skipped when its output exists, so a killed run continues):

1. data: `make_dataset` (train/val/test, 4-minute videos, 64 px, 8 fps).
2. clip stage: the 64-px encoder, aligner and decoder from scratch on pixels (`train.loop.train_stage`).
3. generated captions: the clip model captions every video through the `caption` pipeline; its CLS features are
   saved as `{vid}.npy` and its captions replace the ground-truth ones as the segment level's input.
4. segment stage on the generated captions; then the segment model describes every segment.
5. video stage on the generated descriptions.
6. evaluation on held-out videos (`make_video` seeds, the same set the bundled model's test regenerates): the
   trained model vs a constant baseline (the most frequent training text of each level), CIDEr/ROUGE-L(/METEOR).
7. Table 4: the segment and video levels retrained with modalities video / text / video+text from the same clip
   model, scored on the held-out videos.

The curriculum here drives `train_stage` directly; `videorecap train configs/recap-synth.yaml` is the one-command
form once the recipe runner lands.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from videorecap.checkpoint import load_model, save_pretrained
from videorecap.config import RecapConfig
from videorecap.data import hcap
from videorecap.data.collate import Collator
from videorecap.data.datasets import for_config
from videorecap.model.recap import VideoRecap
from videorecap.pipeline import Captioner, CaptionOptions
from videorecap.synth.make import make_dataset
from videorecap.synth.model import PRESET, synth_tokenizer
from videorecap.train.loop import LevelData, TrainArgs, ValArgs, train_stage

logger = logging.getLogger("bench_synth_learning")

RECIPE: dict[str, Any] = {
    "preset": PRESET,
    "seed": 0,
    "data": {"videos": {"train": 60, "val": 4, "test": 4}, "minutes": 4.0, "seed": 0, "size": 64, "fps": 8.0},
    "stages": {
        "clip": {"epochs": 2, "batch_size": 32, "lr": 1e-3, "lr_start": 1e-5, "lr_end": 1e-5, "warmup_steps": 40},
        "segment": {"epochs": 60, "batch_size": 16, "lr": 1e-3, "lr_start": 1e-5, "lr_end": 1e-5, "warmup_steps": 40},
        "video": {"epochs": 150, "batch_size": 8, "lr": 1e-3, "lr_start": 1e-5, "lr_end": 1e-5, "warmup_steps": 40},
    },
    "heldout": {"videos": 4, "minutes": 4.0, "seed": 1000},
}


# ---- data -------------------------------------------------------------------------------------------------------
def make_data(work: Path, recipe: dict[str, Any]) -> Path:
    data = work / "data"
    if not (data / "world.json").exists():
        t = time.perf_counter()
        d = recipe["data"]
        make_dataset(data, videos=d["videos"], minutes=d["minutes"], seed=d["seed"], size=d["size"], fps=d["fps"])
        logger.info("data: %.1f s", time.perf_counter() - t)
    return data


def _level_data(level: str, cfg: RecapConfig, train_rows: Any, val_rows: Any, **kw: Any) -> LevelData:
    tok = synth_tokenizer()
    return LevelData(
        level,  # type: ignore[arg-type]
        for_config(level, train_rows, cfg, training=True, **kw),  # type: ignore[arg-type]
        Collator.for_config(tok, cfg, level),  # type: ignore[arg-type]
        for_config(level, val_rows, cfg, **kw) if val_rows is not None else None,  # type: ignore[arg-type]
    )


def train_level(
    level: str,
    out: Path,
    data: LevelData,
    recipe: dict[str, Any],
    modalities: str = "video+text",
    epochs: float | None = None,
) -> Path:
    final = out / "final"
    if (final / "config.json").exists():
        return final
    seed = recipe["seed"]
    torch.manual_seed(seed)
    cfg = RecapConfig.from_name(PRESET, level=level, modalities=modalities)
    model = VideoRecap(cfg)
    st = dict(recipe["stages"][level])
    if epochs is not None:
        st["epochs"] = epochs
    args = TrainArgs(name=level, levels=[level], init_from="scratch", num_workers=1 if level == "clip" else 0, **st)
    t = time.perf_counter()
    train_stage(
        model,
        [data],
        args,
        out,
        seed=seed,
        val=ValArgs(every_steps=10**9),
        tokenizer=synth_tokenizer(),
        meta={"recipe": recipe, "modalities": modalities},
        device="cpu",
        tensorboard=False,
    )
    logger.info("%s stage (%s): %.1f s", level, modalities, time.perf_counter() - t)
    return final


# ---- generated inputs of the next level ------------------------------------------------------------------------
def generate_clips(clip_dir: Path, data: Path, work: Path) -> Path:
    """Caption every video of the dataset with the clip model; save its CLS features and generated captions.

    Uses the caption pipeline's own clip pass, so features and captions are exactly what `caption` computes.
    """
    from videorecap.pipeline import _bar_factory, _Run  # the pipeline's clip pass also returns the features
    from videorecap.video.io import probe

    feats = work / "features"
    done = feats / "captions.json"
    if done.exists():
        return feats
    feats.mkdir(parents=True, exist_ok=True)
    cap = Captioner.load(clip=clip_dir)
    out: dict[str, list[list[Any]]] = {}
    t = time.perf_counter()
    opts = CaptionOptions(levels=("clip",), batch_size=64)
    for video in sorted((data / "videos").glob("*.mp4")):
        run = _Run(video, cap, opts, None, probe(video), video.stem)
        clips, f = run.clips(_bar_factory(False))
        np.save(feats / f"{video.stem}.npy", f.astype(np.float32))
        out[video.stem] = [[video.stem, c.start, c.end, c.text] for c in clips]
    logger.info("generated clip captions: %.1f s", time.perf_counter() - t)
    done.write_text(json.dumps(out))
    return feats


def with_generated_captions(rows: list[dict[str, Any]], captions: dict[str, list[list[Any]]]) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        r = dict(r)
        s, e = r["start_sec"], r["end_sec"]
        r["captions_pred"] = [c for c in captions[r["vid"]] if c[1] >= s and c[2] <= e]
        out.append(r)
    return out


@torch.no_grad()
def generate_rows(model_dir: Path, level: str, rows: list[dict[str, Any]], feats: Path) -> list[str]:
    model, tok = load_model(model_dir)
    assert tok is not None
    ds = for_config(level, rows, model.config, feature_dir=feats)  # type: ignore[arg-type]
    col = Collator.for_config(tok, model.config, level)  # type: ignore[arg-type]
    texts: list[str] = []
    for i in range(0, len(ds), 32):
        batch = col([{**ds[j], "caption": None} for j in range(i, min(i + 32, len(ds)))])
        ids = model.generate(
            level,  # type: ignore[arg-type]
            video=batch["video"],
            video_mask=batch["video_mask"],
            text_ids=batch["text_ids"],
            text_mask=batch["text_mask"],
        )
        texts += [tok.decode(x).strip() for x in ids]
    return texts


def with_generated_descriptions(
    videos: list[dict[str, Any]], segments: list[dict[str, Any]], texts: list[str]
) -> list[dict[str, Any]]:
    by_vid: dict[str, list[tuple[float, str]]] = collections.defaultdict(list)
    for r, t in zip(segments, texts, strict=True):
        by_vid[r["vid"]].append((r["start_sec"], t))
    out = []
    for v in videos:
        v = dict(v)
        v["segment_descriptions_pred"] = [t for _, t in sorted(by_vid[v["vid"]])]
        out.append(v)
    return out


# ---- evaluation ------------------------------------------------------------------------------------------------
def constant_baseline(data: Path) -> dict[str, str]:
    """The most frequent training text of each level."""
    texts = {
        "clip": [r.caption for r in hcap.load_level(data / "clips_train.pkl", "clip")],
        "segment": [r["segment_description"] for r in hcap.load_level(data / "segments_train.pkl", "segment")],
        "video": [r["video_summary"] for r in hcap.load_level(data / "videos_train.json", "video")],
    }
    return {lv: collections.Counter(t).most_common(1)[0][0] for lv, t in texts.items()}


def evaluate(model_dirs: dict[str, Path], work: Path, recipe: dict[str, Any], baseline: dict[str, str] | None) -> dict:
    from videorecap.synth.model import heldout_metrics

    h = recipe["heldout"]
    return heldout_metrics(
        Captioner.load(**{lv: p for lv, p in model_dirs.items()}),  # type: ignore[arg-type]
        work / "heldout",
        videos=h["videos"],
        minutes=h["minutes"],
        seed=h["seed"],
        baseline=baseline,
    )


# ---- main -------------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--bundle", type=Path, help="copy the trained model here (clip/ segment/ video/ + RECIPE.yaml)")
    ap.add_argument("--results", type=Path, help="append the markdown tables to this file")
    ap.add_argument("--table4-epochs", type=float, default=None, help="epochs of the Table 4 retrainings")
    ap.add_argument("--skip-table4", action="store_true")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (more than the free cores is very slow)")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(a.threads)
    recipe = RECIPE
    work = a.work
    work.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    data = make_data(work, recipe)
    times["data"] = time.perf_counter() - t0

    t = time.perf_counter()
    cfg_clip = RecapConfig.from_name(PRESET, level="clip")
    clip_data = _level_data(
        "clip", cfg_clip, data / "clips_train.pkl", data / "clips_val.pkl", video_root=data / "videos"
    )
    clip_dir = train_level("clip", work / "clip", clip_data, recipe)
    times["clip"] = time.perf_counter() - t

    t = time.perf_counter()
    feats = generate_clips(clip_dir, data, work)
    captions = json.loads((feats / "captions.json").read_text())
    times["generate_clips"] = time.perf_counter() - t

    seg_rows = {
        s: with_generated_captions(hcap.load_level(data / f"segments_{s}.pkl", "segment"), captions)
        for s in ("train", "val")
    }
    vid_rows = {s: hcap.load_level(data / f"videos_{s}.json", "video") for s in ("train", "val")}

    def segment_and_video(mod: str, tag: str, epochs: dict[str, float | None]) -> dict[str, Path]:
        cfg = RecapConfig.from_name(PRESET, level="segment", modalities=mod)
        sd = _level_data("segment", cfg, seg_rows["train"], seg_rows["val"], feature_dir=feats)
        seg_dir = train_level("segment", work / tag / "segment", sd, recipe, mod, epochs["segment"])
        gen = work / tag / "descriptions.json"
        if not gen.exists():
            descs = {s: generate_rows(seg_dir, "segment", seg_rows[s], feats) for s in ("train", "val")}
            gen.write_text(json.dumps(descs))
        descs = json.loads(gen.read_text())
        vr = {s: with_generated_descriptions(vid_rows[s], seg_rows[s], descs[s]) for s in ("train", "val")}
        cfg = RecapConfig.from_name(PRESET, level="video", modalities=mod)
        vd = _level_data("video", cfg, vr["train"], vr["val"], feature_dir=feats)
        video_dir = train_level("video", work / tag / "video", vd, recipe, mod, epochs["video"])
        return {"clip": clip_dir, "segment": seg_dir, "video": video_dir}

    t = time.perf_counter()
    main_dirs = segment_and_video("video+text", "video+text", {"segment": None, "video": None})
    times["segment+video"] = time.perf_counter() - t
    times["train_total"] = time.perf_counter() - t0
    logger.info("times: %s", times)

    baseline = constant_baseline(data)
    t = time.perf_counter()
    scores = evaluate(main_dirs, work, recipe, baseline)
    times["evaluate"] = time.perf_counter() - t
    (work / "scores.json").write_text(json.dumps({"scores": scores, "times": times}, indent=2))

    if a.bundle:
        bundle(main_dirs, a.bundle, recipe, scores, times)

    table4: dict[str, dict] = {}
    if not a.skip_table4:
        ep = a.table4_epochs
        for mod in ("video", "text"):
            dirs = segment_and_video(mod, mod, {"segment": ep, "video": ep})
            table4[mod] = evaluate(dirs, work, recipe, None)
        table4["video+text"] = scores
        if ep is not None:
            dirs = segment_and_video("video+text", f"video+text-{ep:g}", {"segment": ep, "video": ep})
            table4["video+text"] = evaluate(dirs, work, recipe, None)
        (work / "table4.json").write_text(json.dumps(table4, indent=2))

    md = markdown(scores, table4, times, recipe, a)
    print(md)
    if a.results:
        with open(a.results, "a", encoding="utf-8") as f:
            f.write(md)
    return 0


def bundle(dirs: dict[str, Path], out: Path, recipe: dict[str, Any], scores: dict, times: dict[str, float]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for lv, src in dirs.items():
        model, tok = load_model(src)
        if (out / lv).exists():
            shutil.rmtree(out / lv)
        save_pretrained(model, out / lv, tokenizer=tok, meta={"recipe": recipe, "seed": recipe["seed"]})
    rec = {
        "command": "python benchmarks/bench_synth_learning.py --work WORK --bundle src/videorecap/assets/recap-synth",
        **recipe,
        "train_seconds": {k: round(v, 1) for k, v in times.items()},
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, Python {sys.version.split()[0]}",
    }
    (out / "RECIPE.yaml").write_text(yaml.safe_dump(rec, sort_keys=False))
    model_scores = {lv: s for lv, s in scores["model"].items()}
    (out / "metrics.json").write_text(
        json.dumps({"heldout": recipe["heldout"], "protocol": "original", "metrics": model_scores}, indent=2) + "\n"
    )


def _cells(s: dict[str, float]) -> str:
    meteor = f"{s['meteor']:.1f}" if "meteor" in s else "-"
    return f"{s['cider']:.1f} | {s['rouge_l']:.1f} | {meteor}"


def markdown(scores: dict, table4: dict, times: dict[str, float], recipe: dict[str, Any], a: argparse.Namespace) -> str:
    h = recipe["heldout"]
    flags = f" --table4-epochs {a.table4_epochs:g}" if a.table4_epochs else ""
    seeds = f"`make_video(seed={h['seed']}, index=0..{h['videos'] - 1})`"
    lines = [
        "",
        "## recap-synth learns the synthetic world (issue #7 §4)",
        "",
        f"`python benchmarks/bench_synth_learning.py --work WORK{flags}` on {platform.machine()} "
        f"({torch.get_num_threads()} torch threads; 2 cores shared with other jobs).",
        f"Held-out: {h['videos']} videos of {h['minutes']:g} min ({seeds}), original protocol, x100; "
        f"counts per level: {scores['counts']}.",
        "Wall time: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in times.items()) + ".",
        "",
        "| level | model | CIDEr | ROUGE-L | METEOR |",
        "|---|---|---|---|---|",
    ]
    for lv in ("clip", "segment", "video"):
        lines.append(f"| {lv} | recap-synth | {_cells(scores['model'][lv])} |")
        lines.append(f"| {lv} | constant (most frequent training text) | {_cells(scores['baseline'][lv])} |")
    if table4:
        lines += [
            "",
            "Table 4 on the synthetic world: segment and video levels retrained from the same clip model, by input:",
            "",
            "| inputs | segment C / R / M | video C / R / M |",
            "|---|---|---|",
        ]
        for mod in ("video", "text", "video+text"):
            if mod in table4:
                m = table4[mod]["model"]
                seg, vid = _cells(m["segment"]).replace(" |", " /"), _cells(m["video"]).replace(" |", " /")
                lines.append(f"| {mod} | {seg} | {vid} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
