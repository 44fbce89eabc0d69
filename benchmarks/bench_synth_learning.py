"""Train recap-synth with the one-command curriculum and show what it learns (issue #7 §2-§4).

    python benchmarks/bench_synth_learning.py --work runs/synth-bench \
        [--bundle src/videorecap/assets/recap-synth] [--results benchmarks/RESULTS.md] [--skip-table4]

Steps (under --work; a step whose output exists is skipped, so a killed run continues):

1. data: `videorecap synth make -o WORK/data --videos 160 --minutes 4 --seed 0` (128 train / 16 val / 16 test).
2. the recipe `configs/recap-synth.yaml`, exactly as `videorecap train configs/recap-synth.yaml --data-root
   WORK/data --output-dir WORK/runs/video+text` runs it: clip stage on pixels -> the clip model's features and
   captions for every video -> segment stage -> generated descriptions -> video stage. Each step is timed.
3. held-out evaluation: `make_video(seed=1000, index=0..3)` (4-minute videos never seen in training, the set the
   bundled model's test regenerates), captioned through the `caption` pipeline, scored per level (original
   protocol) against a constant baseline (the most frequent training text of each level).
4. Table 4: the segment and video stages rerun with `modalities: video` and `modalities: text`, starting from the
   same clip stage and generated captions (copied), scored on the same held-out videos.
5. --bundle: copy the trained model to the package with RECIPE.yaml (recipe, data command, seeds, timings, machine)
   and metrics.json (the held-out scores the bundled model's test reproduces).
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import platform
import shutil
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from _machine import describe, machine_block

from videorecap.checkpoint import load_model, save_pretrained
from videorecap.data import hcap
from videorecap.pipeline import Captioner
from videorecap.synth.make import make_dataset
from videorecap.synth.model import SYNTH_CARD, heldout_metrics
from videorecap.train.recipe import Curriculum, load_recipe

logger = logging.getLogger("bench_synth_learning")

ROOT = Path(__file__).resolve().parents[1]
RECIPE_FILE = ROOT / "configs" / "recap-synth.yaml"
DATA = {"videos": 160, "minutes": 4.0, "seed": 0}
DATA_COMMAND = "videorecap synth make -o DATA --videos 160 --minutes 4 --seed 0"
HELDOUT = {"videos": 4, "minutes": 4.0, "seed": 1000}
# outputs of the steps shared by the Table 4 variants (the clip stage and its generated captions/features)
SHARED = ["clip", "tokenizer.json", "data/features", "data/features.done.json", "data/captions.done.json",
          "data/all_captions.json", "data/segments_train.pkl", "data/segments_val.pkl"]  # fmt: skip


def curriculum(work: Path, tag: str, modalities: str | None = None) -> Curriculum:
    recipe = load_recipe(RECIPE_FILE)
    recipe.output_dir = str(work / "runs" / tag)
    recipe.data.root = str(work / "data")
    if modalities is not None:
        for st in recipe.stages:
            if st.name in ("segment", "video"):
                st.modalities = modalities
    return Curriculum(recipe, progress=True)


def run_timed(cur: Curriculum) -> dict[str, float]:
    times = {}
    for step in [s.name for s in cur.steps]:
        t = time.perf_counter()
        state = cur.run(step)[step]
        times[step] = time.perf_counter() - t
        logger.info("%s: %s in %.1f s", step, state, times[step])
    return times


def share_clip_stage(work: Path, src: str, dst: str) -> None:
    for rel in SHARED:
        a, b = work / "runs" / src / rel, work / "runs" / dst / rel
        if b.exists() or not a.exists():
            continue
        b.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if a.is_dir() else shutil.copy2)(a, b)


def constant_baseline(data: Path) -> dict[str, str]:
    """The most frequent training text of each level."""
    texts = {
        "clip": [r.caption for r in hcap.load_level(data / "clips_train.pkl", "clip")],
        "segment": [r["segment_description"] for r in hcap.load_level(data / "segments_train.pkl", "segment")],
        "video": [r["video_summary"] for r in hcap.load_level(data / "videos_train.json", "video")],
    }
    return {lv: collections.Counter(t).most_common(1)[0][0] for lv, t in texts.items()}


def evaluate(run_dir: Path, work: Path, baseline: dict[str, str] | None) -> dict[str, Any]:
    return heldout_metrics(Captioner.load(run_dir), work / "heldout", baseline=baseline, **HELDOUT)


def bundle(run_dir: Path, out: Path, scores: dict, times: dict[str, float]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    recipe = yaml.safe_load(RECIPE_FILE.read_text())
    for lv in ("clip", "segment", "video"):
        model, tok = load_model(run_dir / lv / "final")
        if (out / lv).exists():
            shutil.rmtree(out / lv)
        save_pretrained(model, out / lv, tokenizer=tok, meta={"recipe": recipe, "data": DATA, "card": SYNTH_CARD})
    rec = {
        "how": [f"{DATA_COMMAND}", "videorecap train configs/recap-synth.yaml --data-root DATA --output-dir RUN"],
        "produced_by": "python benchmarks/bench_synth_learning.py --work WORK --bundle BUNDLE",
        "data": DATA,
        "recipe": recipe,
        "train_seconds": {k: round(v, 1) for k, v in times.items()},
        "machine": describe(),
    }
    (out / "RECIPE.yaml").write_text(yaml.safe_dump(rec, sort_keys=False))
    (out / "metrics.json").write_text(
        json.dumps({"heldout": HELDOUT, "protocol": "original", "metrics": scores["model"]}, indent=2) + "\n"
    )


def _cells(s: dict[str, float], sep: str = " | ") -> str:
    meteor = f"{s['meteor']:.1f}" if "meteor" in s else "-"
    return sep.join([f"{s['cider']:.1f}", f"{s['rouge_l']:.1f}", meteor])


def markdown(scores: dict, table4: dict, times: dict[str, float]) -> str:
    h = HELDOUT
    lines = [
        "",
        "## recap-synth learns the synthetic world (issue #7 §4)",
        "",
        f"`python benchmarks/bench_synth_learning.py --work WORK` on {platform.machine()}, {torch.get_num_threads()} "
        f"torch threads. Data: `{DATA_COMMAND}`; training: `configs/recap-synth.yaml` through the curriculum runner.",
        "",
        machine_block(),
        "",
        f"Held-out: {h['videos']} videos of {h['minutes']:g} min (`make_video(seed={h['seed']}, index=0..3)`), "
        f"original protocol, x100; items per level: {scores['counts']}.",
        "Wall time per step: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in times.items())
        + f" (training total {sum(v for k, v in times.items() if k != 'evaluate') / 60:.1f} min).",
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
            "Table 4 on the synthetic world (segment and video stages retrained from the same clip stage and "
            "generated captions, by input; C / R / M):",
            "",
            "| inputs | segment | video |",
            "|---|---|---|",
        ]
        for mod in ("video", "text", "video+text"):
            if mod in table4:
                m = table4[mod]["model"]
                lines.append(f"| {mod} | {_cells(m['segment'], ' / ')} | {_cells(m['video'], ' / ')} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--bundle", type=Path, help="copy the trained model here (clip/ segment/ video/ + RECIPE.yaml)")
    ap.add_argument("--results", type=Path, help="append the markdown tables to this file")
    ap.add_argument("--skip-table4", action="store_true")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    work = a.work
    data = work / "data"
    times: dict[str, float] = {}
    t = time.perf_counter()
    if not (data / "world.json").is_file():
        make_dataset(data, videos=DATA["videos"], minutes=DATA["minutes"], seed=DATA["seed"], progress=True)
    times["data"] = time.perf_counter() - t
    times.update(run_timed(curriculum(work, "video+text")))
    baseline = constant_baseline(data)
    t = time.perf_counter()
    scores = evaluate(work / "runs" / "video+text", work, baseline)
    times["evaluate"] = time.perf_counter() - t
    (work / "scores.json").write_text(json.dumps({"scores": scores, "times": times}, indent=2))
    if a.bundle:
        bundle(work / "runs" / "video+text", a.bundle, scores, times)

    table4: dict[str, dict] = {"video+text": scores}
    if not a.skip_table4:
        for mod in ("video", "text"):
            share_clip_stage(work, "video+text", mod)
            run_timed(curriculum(work, mod, modalities=mod))
            table4[mod] = evaluate(work / "runs" / mod, work, None)
        (work / "table4.json").write_text(json.dumps(table4, indent=2))
    md = markdown(scores, table4, times)
    print(md)
    if a.results:
        with open(a.results, "a", encoding="utf-8") as f:
            f.write(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
