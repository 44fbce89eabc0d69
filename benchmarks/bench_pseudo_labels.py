"""Do LLM pseudo-labels help when few videos are labelled? The paper's Table 6 on the synthetic world (issue 17 §2).

    python benchmarks/bench_pseudo_labels.py --work runs/pseudo-bench [--results benchmarks/RESULTS.md] [--quick]

Steps (under --work; a step whose output exists is skipped, so a killed run continues):

1. data: a synthetic world (`make_dataset`, seed 5: none of its videos is in the bundled model's training set),
   TRAIN train videos + 4 val videos of MINUTES minutes (3 segments of 40 s each).
2. `lab/`: the annotations with only every 4th train video (25 %) keeping its segment descriptions and its video
   summary; the clip narrations of every video stay (as in Ego4D, where narrations are dense and the hierarchical
   labels are few). The hidden labels of the other 75 % are kept aside to score the pseudo-labels.
3. the own text model: `videorecap train` with `kind: text-summarizer` (recap-synth sizes, text input only) on the
   labelled 25 %'s (clip captions -> segment description) and (segment descriptions -> video summary) pairs.
4. pseudo-labels: `videorecap serve --text-model ...` as a real process on loopback, and `videorecap pseudo-label
   lab --level segment --llm URL`, then `--level video`: the other 75 % get pseudo segment descriptions and video
   summaries (scored against their hidden true labels).
5. two arms, trained by the curriculum runner from the same clip model (the bundled recap-synth clip model, copied
   as the clip stage; its captions and features are regenerated per arm by the curriculum's steps), with the same
   segment- and video-stage settings and the same number of optimizer steps:
   - `labelled`: segment and video stages on the 25 % labelled only;
   - `pseudo`:   the same plus the pseudo-labels (`data.pseudo_annotations`).
   (`--full`: a third arm on 100 % true labels, the ceiling.)
6. held-out evaluation: `make_video(seed=1000, index=0..HELD-1)` (videos no model has seen), captioned end to end by
   the `caption` pipeline; segment and video CIDEr / ROUGE-L / METEOR (original protocol) of each arm.

Writes WORK/results.json and prints a markdown section (appended to --results when given).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _machine import machine_block

from videorecap.data import hcap
from videorecap.metrics.scorers import score_captions
from videorecap.pipeline import Captioner
from videorecap.synth.make import make_dataset
from videorecap.synth.model import bundled_model_dir, heldout_metrics
from videorecap.train.recipe import Curriculum, recipe_from_dict

logger = logging.getLogger("bench_pseudo_labels")

ROOT = Path(__file__).resolve().parents[1]
SEED = 5
LABELLED_EVERY = 4  # every 4th train video keeps its labels: 25 %


def settings(quick: bool) -> dict[str, Any]:
    if quick:  # a smoke test of the script (a minute or two): numbers mean nothing
        return {"train": 8, "minutes": 2.0, "held": 1, "text_steps": 20, "segment_steps": 10, "video_steps": 10,
                "segment_batch": 4, "video_batch": 2}  # fmt: skip
    return {"train": 60, "minutes": 2.0, "held": 5, "text_steps": 300, "segment_steps": 240, "video_steps": 160,
            "segment_batch": 16, "video_batch": 8}  # fmt: skip


def load_average() -> str:
    from _machine import describe

    return " ".join(f"{x:.2f}" for x in describe()["load_average"] or []) or "n/a"


# ---- 1-2: data ---------------------------------------------------------------------------------------------------
def make_data(work: Path, s: dict[str, Any]) -> None:
    data = work / "data"
    if not (data / "world.json").is_file():
        make_dataset(data, videos={"train": s["train"], "val": 4}, minutes=s["minutes"], seed=SEED,
                     splits=("train", "val"), progress=True)  # fmt: skip
    lab = work / "lab"
    if (lab / "videos_train.json").is_file():
        return
    lab.mkdir(parents=True, exist_ok=True)
    vids = sorted({r["vid"] for r in hcap.load_videos(data / "videos_train.json")})
    keep = set(vids[::LABELLED_EVERY])
    for name in ("clips_train.pkl", "clips_val.pkl", "segments_val.pkl", "videos_val.json"):
        shutil.copy2(data / name, lab / name)
    hcap.save_segments(lab / "segments_train.pkl", [r for r in hcap.load_segments(data / "segments_train.pkl")
                                                     if r["vid"] in keep])  # fmt: skip
    hcap.save_videos(lab / "videos_train.json", [r for r in hcap.load_videos(data / "videos_train.json")
                                                 if r["vid"] in keep])  # fmt: skip


# ---- 3: the text model -------------------------------------------------------------------------------------------
def tokenizer_file() -> str:
    return str(bundled_model_dir("recap-synth") / "clip" / "tokenizer.json")  # every level shares it


def train_text_model(work: Path, s: dict[str, Any]) -> Path:
    recipe = {
        "kind": "text-summarizer",
        "output_dir": str(work / "runs" / "text"),
        "seed": 0,
        "tokenizer": tokenizer_file(),
        "model": {"preset": "recap-synth", "train_decoder": True, "train_aligner": True},
        "data": {"root": str(work), "annotations": "lab"},
        "checkpoint_every": 100000,
        "validation": {"every_steps": 100, "max_batches": 4, "caption_samples": 16},
        "stages": [{"name": "text", "levels": ["segment", "video"], "epochs": 1000, "max_steps": s["text_steps"],
                    "batch_size": 8, "lr": 1.0e-3, "lr_start": 1.0e-5, "lr_end": 1.0e-5, "warmup_steps": 20}],
    }  # fmt: skip
    Curriculum(recipe_from_dict(recipe), progress=True).run()
    return work / "runs" / "text" / "text" / "final"


# ---- 4: pseudo-labels through the served text model ----------------------------------------------------------------
def pseudo_labels(work: Path, text_model: Path) -> dict[str, Any]:
    labels = work / "labels"
    if (labels / "videos_train_pseudo.json").is_file():
        return json.loads((work / "pseudo.json").read_text())
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    server = subprocess.Popen([sys.executable, "-m", "videorecap", "serve", "--text-model", str(text_model),
                               "--port", "0"], stdout=subprocess.PIPE, text=True, env=env)  # fmt: skip
    try:
        line = server.stdout.readline()  # type: ignore[union-attr]
        url = line[line.index("http://") :].split()[0]
        logger.info("text model served at %s", url)
        times = {}
        for level in ("segment", "video"):
            t = time.perf_counter()
            rc = subprocess.call([sys.executable, "-m", "videorecap", "pseudo-label", str(work / "lab"), "--level",
                                  level, "--llm", url, "-o", str(labels), "--no-progress"], env=env)  # fmt: skip
            times[level] = time.perf_counter() - t
            if rc != 0:
                raise SystemExit(f"pseudo-label --level {level} exited with {rc}")
    finally:
        server.terminate()
        server.wait(timeout=30)
    # how good are they: scored against the labels the 75 % really have (hidden from everything above)
    truth_s = {(r["vid"], r["start_sec"]): r["segment_description"]
               for r in hcap.load_segments(work / "data" / "segments_train.pkl")}  # fmt: skip
    truth_v = {r["vid"]: r["video_summary"] for r in hcap.load_videos(work / "data" / "videos_train.json")}
    seg = hcap.load_segments(labels / "segments_train_pseudo.pkl")
    vid = hcap.load_videos(labels / "videos_train_pseudo.json")
    out = {
        "rows": {"segment": len(seg), "video": len(vid)},
        "seconds": times,
        "provenance": seg[0]["provenance"] if seg else None,
        "quality": {
            "segment": score_captions(
                [r["segment_description"] for r in seg], [[truth_s[(r["vid"], r["start_sec"])]] for r in seg]
            ),
            "video": score_captions([r["video_summary"] for r in vid], [[truth_v[r["vid"]]] for r in vid]),
        },  # fmt: skip
        "examples": [(r["segment_description"], truth_s[(r["vid"], r["start_sec"])]) for r in seg[:3]],
    }
    (work / "pseudo.json").write_text(json.dumps(out, indent=2))
    return out


# ---- 5-6: the arms -------------------------------------------------------------------------------------------------
def arm_recipe(work: Path, arm: str, s: dict[str, Any]) -> dict[str, Any]:
    stage = {"epochs": 1000, "lr": 1.0e-3, "lr_start": 1.0e-5, "lr_end": 1.0e-5, "warmup_steps": 40}
    data: dict[str, Any] = {"root": str(work), "annotations": "data" if arm == "full" else "lab",
                            "videos": "data/videos"}  # fmt: skip
    if arm.startswith("pseudo"):
        data["pseudo_annotations"] = "labels"
    if arm.startswith("pseudo@"):  # a mixing ratio: pseudo rows per labelled row
        data["pseudo_ratio"] = float(arm.split("@")[1])
    return {
        "kind": "recap",
        "output_dir": str(work / "runs" / arm),
        "seed": 0,
        "tokenizer": tokenizer_file(),
        "model": {"preset": "recap-synth"},
        "data": data,
        "checkpoint_every": 100000,  # a final checkpoint only: `last/` every epoch of 3 steps costs more than training
        "validation": {"every_steps": 100, "max_batches": 4, "caption_samples": 0},
        "generate": {"batch_size": 64, "features": True},
        "stages": [
            {"name": "clip", "epochs": 1, "init_from": "scratch"},  # complete: the bundled clip model (copied)
            {"name": "segment", "batch_size": s["segment_batch"], "max_steps": s["segment_steps"], **stage},
            {"name": "video", "batch_size": s["video_batch"], "max_steps": s["video_steps"], **stage},
        ],
    }


def train_arm(work: Path, arm: str, s: dict[str, Any]) -> dict[str, float]:
    clip = work / "runs" / arm / "clip" / "final"
    if not (clip / "model.safetensors").is_file():
        shutil.copytree(bundled_model_dir("recap-synth") / "clip", clip)
    cur = Curriculum(recipe_from_dict(arm_recipe(work, arm, s)), progress=True)
    times = {}
    for step in [x.name for x in cur.steps]:
        t = time.perf_counter()
        cur.run(step)
        times[step] = round(time.perf_counter() - t, 1)
    return times


def evaluate(work: Path, arm: str, s: dict[str, Any]) -> dict[str, Any]:
    return heldout_metrics(Captioner.load(work / "runs" / arm), work / "heldout", videos=s["held"],
                           minutes=s["minutes"], seed=1000)  # fmt: skip


def _cells(m: dict[str, float]) -> str:
    return " | ".join(f"{m[k]:.1f}" for k in ("cider", "rouge_l", "meteor") if k in m)


def markdown(res: dict[str, Any], command: str) -> str:
    s, p = res["settings"], res["pseudo"]
    lines = [
        "",
        "## LLM pseudo-labels on the synthetic world: 25 % labelled + the own text model (issue 17 §2)",
        "",
        f"`{command}`; load average before / after: {res['load_before']} / {res['load_after']};"
        f" wall time {res['wall_min']:.1f} min.",
        "",
        res["machine"],
        "",
        f"World: seed {SEED}, {s['train']} train videos of {s['minutes']:g} min (3 segments of 40 s each);"
        f" {len(range(0, s['train'], LABELLED_EVERY))} of them ({100 // LABELLED_EVERY} %) keep their segment"
        " descriptions and video summary, all keep their clip narrations. Held out: "
        f"{s['held']} videos of {s['minutes']:g} min (`make_video(seed=1000)`), captioned end to end; items:"
        f" {res['arms']['labelled']['counts']['segment']} segments, {res['arms']['labelled']['counts']['video']}"
        " videos. Same clip model (the bundled recap-synth clip level) in every arm; segment / video stages from"
        f" scratch with the same settings and the same number of optimizer steps ({s['segment_steps']} /"
        f" {s['video_steps']}).",
        f"Text model: `kind: text-summarizer`, recap-synth sizes, {s['text_steps']} steps on the labelled pairs;"
        f" served by `videorecap serve` and called through `videorecap pseudo-label --llm URL`:"
        f" {p['rows']['segment']} pseudo segment descriptions and {p['rows']['video']} pseudo summaries"
        f" ({p['seconds']['segment']:.0f} s + {p['seconds']['video']:.0f} s).",
        "",
        "Pseudo-labels against the true labels they stand in for (C / R / M): segment "
        f"{_cells(p['quality']['segment']).replace(' | ', ' / ')}, "
        f"video {_cells(p['quality']['video']).replace(' | ', ' / ')}.",
        "",
        "| training labels | segment CIDEr | ROUGE-L | METEOR | video CIDEr | ROUGE-L | METEOR |",
        "|---|---|---|---|---|---|---|",
    ]
    names = {"labelled": "25 % true", "pseudo": "25 % true + 75 % pseudo (all, the original's concatenation)",
             "full": "100 % true (ceiling)"}  # fmt: skip
    for arm, r in res["arms"].items():
        m = r["model"]
        name = names.get(arm) or f"25 % true + pseudo, pseudo_ratio {arm.split('@')[1]}"
        lines.append(f"| {name} | {_cells(m['segment'])} | {_cells(m['video'])} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--results", type=Path, help="append the markdown section to this file")
    ap.add_argument("--quick", action="store_true", help="a smoke test of the script: tiny sizes, numbers mean nothing")
    ap.add_argument("--full", action="store_true", help="also train on 100 %% true labels (the ceiling)")
    ap.add_argument("--ratio", type=float, action="append", default=[], help="also an arm with this pseudo_ratio")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    s = settings(a.quick)
    work = a.work
    t0, load_before = time.perf_counter(), load_average()
    times: dict[str, Any] = {}
    t = time.perf_counter()
    make_data(work, s)
    times["data"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    text_model = train_text_model(work, s)
    times["text model"] = round(time.perf_counter() - t, 1)
    pseudo = pseudo_labels(work, text_model)
    arms = {}
    for arm in ["labelled", "pseudo", *(f"pseudo@{r:g}" for r in a.ratio)] + (["full"] if a.full else []):
        times[arm] = train_arm(work, arm, s)
        t = time.perf_counter()
        arms[arm] = evaluate(work, arm, s)
        times[f"evaluate {arm}"] = round(time.perf_counter() - t, 1)
    res = {
        "settings": s,
        "pseudo": pseudo,
        "arms": arms,
        "times": times,
        "wall_min": (time.perf_counter() - t0) / 60,
        "machine": machine_block(),
        "load_before": load_before,
        "load_after": load_average(),
    }
    (work / "results.json").write_text(json.dumps(res, indent=2))
    command = " ".join(["python benchmarks/bench_pseudo_labels.py --work WORK", *(["--quick"] if a.quick else []),
                        *(["--full"] if a.full else []), *(f"--ratio {r:g}" for r in a.ratio)])  # fmt: skip
    md = markdown(res, command)
    print(md)
    if a.results:
        with open(a.results, "a", encoding="utf-8") as f:
            f.write(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
