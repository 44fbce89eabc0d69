"""Question answering over the hierarchy on the synthetic world: accuracy per context (issue 17 §3).

    python benchmarks/bench_ask.py --work runs/ask-bench [--test-videos 20] [--append benchmarks/RESULTS.md]
    python benchmarks/bench_ask.py --work runs/ask-quick --quick     # 3 short videos, a few minutes on 2 cores

Steps (under --work; a step whose output exists is skipped, so a killed run continues):

1. data: `synth make` with --train-videos train and --test-videos test videos (seed 0), then `synth questions` on
   the test split: five-choice questions whose answers come from the scripts (order, objects, after, before,
   count).
2. captions of the test videos, two sources: the bundled recap-synth model (`videorecap caption VIDEOS --model
   recap-synth`, the real command) and the ground truth (the scripts' own text: the upper bound of answering from
   captions).
3. the own text model (`videorecap.llm`, a `kind: text-summarizer` recipe on the recap-synth preset, trained on
   the train split's (clip captions -> segment description) and (segment descriptions -> summary) pairs), unless
   --text-model DIR names one or --no-text-model skips it.
4. for each caption source x context (clips / hierarchy / summary): the EgoSchema runner (`qa.egoschema`) with the
   retrieval baseline (no LLM), then with the own text model served by a real `videorecap serve --text-model`
   process (--llm URL), at --text-budget characters (its input is 512 tokens at most).

Prints a Markdown section (per answerer, source and context: accuracy overall and per question kind, unparseable
replies) and appends it to --append.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _machine import load_average, machine_block

ROOT = Path(__file__).resolve().parents[1]
CONTEXTS = ("clips", "hierarchy", "summary")
KINDS = ("order", "objects", "after", "before", "count")


def sh(argv: list[str], **kw: Any) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return subprocess.run([sys.executable, "-m", "videorecap", *argv], check=True, env=env, **kw)


def make_data(work: Path, args: argparse.Namespace) -> Path:
    data = work / "data"
    if not (data / "questions_test.json").is_file():
        from videorecap.synth.make import make_dataset  # what `synth make` runs, with the split sizes given

        make_dataset(data, videos={"train": args.train_videos, "test": args.test_videos}, minutes=args.minutes,
                     seed=0, splits=("train", "test"))  # fmt: skip
        sh(["synth", "questions", str(data), "--splits", "test"])
    return data


def caption_sources(work: Path, data: Path) -> dict[str, Path]:
    from videorecap.synth.questions import dataset_scripts, truth_captions

    gt = work / "captions-truth"
    for s in dataset_scripts(data, "test"):
        if not (gt / s.vid / "captions.json").is_file():
            truth_captions(s).save(gt / s.vid / "captions.json")
    model = work / "captions-recap-synth"
    timings = work / "timings.json"
    t = json.loads(timings.read_text()) if timings.is_file() else {}
    if "caption_s" not in t:
        vids = [str(data / "videos" / f"{s.vid}.mp4") for s in dataset_scripts(data, "test")]
        t0 = time.perf_counter()
        sh(["caption", *vids, "--model", "recap-synth", "-o", str(model), "--no-progress", "-q"])
        t["caption_s"] = time.perf_counter() - t0
        timings.write_text(json.dumps(t))
    return {"recap-synth captions": model, "ground truth": gt}


def text_model(work: Path, data: Path, args: argparse.Namespace) -> Path | None:
    if args.no_text_model:
        return None
    if args.text_model is not None:
        return args.text_model
    out = work / "text-model"
    final = out / "text" / "final"
    if not final.is_dir():
        from videorecap.train.recipe import recipe_from_dict, run_recipe

        recipe = {
            "kind": "text-summarizer",
            "output_dir": str(out),
            "seed": 0,
            "tokenizer": "word-level",
            "model": {"preset": "recap-synth", "overrides": {"train_decoder": True, "train_aligner": True}},
            "data": {"root": str(data), "annotations": "."},
            "validation": {"caption_samples": 0, "max_batches": 2},
            "stages": [{"name": "text", "levels": ["segment", "video"], "epochs": args.text_epochs,
                        "batch_size": 16, "lr": 1e-3, "lr_start": 1e-5, "lr_end": 1e-5, "warmup_steps": 20}],
        }  # fmt: skip
        run_recipe(recipe_from_dict(recipe))
    return final


class Served:
    """`videorecap serve --text-model DIR --port 0` as a real process, its URL read from its first line."""

    def __init__(self, folder: Path) -> None:
        env = dict(os.environ, HF_HUB_OFFLINE="1")
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        argv = [sys.executable, "-m", "videorecap", "serve", "--text-model", str(folder), "--port", "0"]
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)
        line = self.p.stdout.readline()  # type: ignore[union-attr]
        self.url = line[line.index("http://") :].split()[0]

    def close(self) -> None:
        self.p.terminate()
        self.p.wait(timeout=30)


def run_all(work: Path, data: Path, sources: dict[str, Path], text_dir: Path | None, args: argparse.Namespace):
    from videorecap.llm.backend import open_backend
    from videorecap.qa.answer import AskOptions, Embeddings, LLMAnswerer, RetrievalAnswerer
    from videorecap.qa.egoschema import load_answers, load_questions, run_questions
    from videorecap.text.embed import TextEmbedder

    questions = load_questions(data / "questions_test.json")
    answers = load_answers(data / "answers_test.json", questions)
    embed = Embeddings(TextEmbedder.load())
    rows = []
    served = Served(text_dir) if text_dir is not None else None
    try:
        for source, caps in sources.items():
            for context in CONTEXTS:
                answerers = [("retrieval baseline", AskOptions(context=context, budget_chars=args.budget), None)]
                if served is not None:
                    answerers.append(("own text model", AskOptions(context=context, budget_chars=args.text_budget),
                                      served.url))  # fmt: skip
                for name, opts, url in answerers:
                    if url is None:
                        answerer: Any = RetrievalAnswerer(opts)
                    else:
                        backend = open_backend(url, None, None, cache_dir=work / "llm-cache")
                        answerer = LLMAnswerer(backend, opts, describe={"model": backend.model})
                    out = work / "results" / f"{name}-{source}-{context}".replace(" ", "_")
                    t0 = time.perf_counter()
                    s = run_questions(questions, caps, out, answerer, opts, embed, answers=answers)
                    dt = time.perf_counter() - t0
                    per = json.loads((out / "results.json").read_text())["per_question"]
                    by_kind = collections.defaultdict(list)
                    for r in per:
                        by_kind[r["kind"]].append(bool(r.get("correct")))
                    kinds = {k: (sum(v), len(v)) for k, v in by_kind.items()}
                    rows.append({"answerer": name, "source": source, "context": context, "budget": opts.budget_chars,
                                 "accuracy": s.accuracy, "n": s.with_truth, "unparseable": s.unparseable,
                                 "kinds": kinds, "seconds": dt})  # fmt: skip
                    print(f"{name:18} {source:22} {context:9} {100 * (s.accuracy or 0):5.1f} %", flush=True)
    finally:
        if served is not None:
            served.close()
    return rows


def markdown(rows: list[dict], args: argparse.Namespace, work: Path, n_questions: int) -> str:
    t = json.loads((work / "timings.json").read_text())
    lines = [
        "## Questions over the hierarchy: accuracy per context on the synthetic world (issue 17 §3, bench_ask.py)",
        "",
        f"`python benchmarks/bench_ask.py {' '.join(args.argv)}`",
        "",
        machine_block({"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "default")}),
        "",
        f"Load average at the end: {load_average():.1f} (1 min).",
        "",
        f"{args.test_videos} held-out test videos of {args.minutes:g} min (synth seed 0), {n_questions} five-choice "
        f"questions (chance 20 %) from `videorecap synth questions`. Captions: the bundled recap-synth model "
        f"(`videorecap caption`, {t['caption_s']:.0f} s for all videos) and the ground truth. Retrieval baseline: "
        f"context budget {args.budget} characters; own text model (recap-synth-sized text-summarizer, "
        f"{args.text_epochs} epochs on {args.train_videos} training videos, served by `videorecap serve`): "
        f"{args.text_budget} characters (its input is 512 tokens at most).",
        "",
        "| answerer | captions | context | accuracy | order | objects | after | before | count | unparseable |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        kinds = " | ".join(f"{r['kinds'][k][0]}/{r['kinds'][k][1]}" if k in r["kinds"] else "-" for k in KINDS)
        lines.append(f"| {r['answerer']} | {r['source']} | {r['context']} | {100 * (r['accuracy'] or 0):.1f} % | "
                     f"{kinds} | {r['unparseable']}/{r['n']} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--test-videos", type=int, default=20)
    ap.add_argument("--train-videos", type=int, default=40)
    ap.add_argument("--minutes", type=float, default=4.0)
    ap.add_argument("--budget", type=int, default=8000, help="the retrieval baseline's context characters")
    ap.add_argument("--text-budget", type=int, default=1500, help="the own text model's context characters")
    ap.add_argument("--text-epochs", type=int, default=30)
    ap.add_argument("--text-model", type=Path, default=None, help="an own text model folder (skips training)")
    ap.add_argument("--no-text-model", action="store_true")
    ap.add_argument("--quick", action="store_true", help="3 test videos of 2 min, 6 training videos, 3 epochs")
    ap.add_argument("--append", type=Path, default=None, help="append the Markdown section to this file")
    args = ap.parse_args()
    args.argv = ["WORK" if a == str(args.work) else a for a in sys.argv[1:]]
    if args.quick:
        args.test_videos, args.train_videos, args.minutes, args.text_epochs = 3, 6, 2.0, 3
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    data = make_data(work, args)
    sources = caption_sources(work, data)
    text_dir = text_model(work, data, args)
    n = len(json.loads((data / "questions_test.json").read_text()))
    rows = run_all(work, data, sources, text_dir, args)
    md = markdown(rows, args, work, n)
    print(md)
    if args.append is not None:
        with open(args.append, "a", encoding="utf-8") as f:
            f.write("\n" + md)


if __name__ == "__main__":
    main()
