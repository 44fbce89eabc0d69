"""Moment search on the synthetic world: does it find the moment, and how fast over 100 h of captions.

    python benchmarks/bench_search.py --work WORK [--videos 12] [--hours 100]      # the numbers in RESULTS.md
    python benchmarks/bench_search.py --work WORK --quick                          # 3 videos, 2 h: a smoke run

1. Quality. Held-out scripts of the synthetic world (split "heldout", never trained on) are rendered and captioned
   by the bundled recap-synth model (`videorecap caption --model recap-synth`); their ground truth is written as
   captions.json too. Queries are generated from the scripts, each with its true time windows:
   - `caption`: an action's caption as the world words it ("C puts the kettle on the stove");
   - `paraphrase`: the same action in other words, as a user might ask ("when did I place the kettle on the hob");
   - `activity`: an activity ("C makes tea"), whose true window is the whole activity.
   The true windows of a query are every occurrence of that action (same caption) or activity in any video, so a
   hit in another video where the same thing happens counts. A returned moment matches when its temporal IoU with a
   true window of its video is at least 0.5. Reported: recall@1 and @5 (a match among the first 1 / 5 moments) and
   the median IoU of the first moment (0 when it is in a video without the thing), for lexical, semantic and
   hybrid search, over the model's captions and over the ground-truth captions; and two ablations of hybrid:
   reciprocal-rank fusion instead of the normalised score sum, and every window its own moment (no merging of adjacent
   windows, no suppression of windows inside better ones).
2. Speed. 100 h of caption text from the world's templates (100 one-hour scripts' ground truth, clip 4 s, segment
   40 s) in one folder: corpus load, BM25 build, index build from scratch (each distinct text embedded once: the
   count is printed, for extrapolating to more varied captions), index reuse, one changed file, and per-query
   latency (median, p10-p90, max over the queries) in process (a long-running server) and as a CLI call (cold).

Prints markdown for benchmarks/RESULTS.md, with the command, the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from videorecap.search.index import embeddings, load_corpus
from videorecap.search.moments import Searcher
from videorecap.synth.make import truth_result, video_id, video_seed
from videorecap.synth.render import render_video
from videorecap.synth.world import ACTIVITY_TYPES, VideoScript, make_script
from videorecap.text.embed import TextEmbedder

IOU = 0.5
MODES = ("lexical", "semantic", "hybrid")


# ---- queries -------------------------------------------------------------------------------------------------------
# Other words for the world's verbs and nouns (a user does not know how the captions are worded).
_VERB_SYNONYMS = {
    "put": "place", "take": "grab", "turn on": "switch on", "turn off": "switch off", "pour": "tip", "open": "open up",
    "close": "shut", "cut": "slice", "fill": "top up", "carry": "bring", "wash": "clean", "wipe": "clean",
    "add": "put", "switch on": "turn on", "press": "push", "sweep": "brush", "empty": "tip out", "hang": "hang up",
}  # fmt: skip
_NOUN_SYNONYMS = {
    "stove": "hob", "fridge": "refrigerator", "cupboard": "cabinet", "sink": "basin", "bin": "trash can",
    "rack": "drying rack", "tap": "faucet", "counter": "worktop", "mug": "coffee cup", "plant": "houseplant",
    "saucepan": "pot", "kettle": "water boiler", "table": "dining table", "shelf": "ledge", "broom": "brush",
}  # fmt: skip


def _base(verb: str) -> str:
    if verb.endswith("ies"):
        return verb[:-3] + "y"
    if re.search(r"(sh|ch|ss|x)es$", verb):
        return verb[:-2]
    return verb[:-1] if verb.endswith("s") else verb


def paraphrase(caption: str) -> str:
    """ "#C C puts the kettle on the stove" -> "when did I place the water boiler on the hob"."""
    words = caption.removeprefix("#C C ").split()
    rest = " ".join([_base(words[0]), *words[1:]])
    for a, b in _VERB_SYNONYMS.items():
        if rest == a or rest.startswith(a + " "):
            rest = b + rest[len(a) :]
            break
    rest = re.sub(r"\b(" + "|".join(_NOUN_SYNONYMS) + r")\b", lambda m: _NOUN_SYNONYMS[m[1]], rest)
    return f"when did I {rest}"


def queries(scripts: Sequence[VideoScript], per_video: int, seed: int) -> list[dict]:
    """Queries with their true windows {vid: [(start, end), ...]} over all the scripts."""
    by_caption: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    by_activity: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for s in scripts:
        for a in s.actions:
            by_caption[a.caption][s.vid].append((a.start, a.end))
        for act in s.activities:
            by_activity[act.name][s.vid].append((act.start, act.end))
    rng = np.random.default_rng(seed)
    out = []
    for s in scripts:
        for i in rng.choice(len(s.actions), size=min(per_video, len(s.actions)), replace=False):
            a = s.actions[int(i)]
            truth = dict(by_caption[a.caption])
            out.append({"kind": "caption", "q": a.caption.removeprefix("#C "), "truth": truth})
            out.append({"kind": "paraphrase", "q": paraphrase(a.caption), "truth": truth})
        for act in {a.name: a for a in s.activities}.values():
            q = "C " + ACTIVITY_TYPES[act.name].phrase("full", ())
            out.append({"kind": "activity", "q": q.strip(), "truth": dict(by_activity[act.name])})
    # one query per distinct text (an activity of two videos is asked once)
    return list({(q["kind"], q["q"]): q for q in out}.values())


def iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else 0.0


def evaluate(searcher: Searcher, qs: list[dict], mode: str, **kw) -> dict[str, dict[str, float]]:
    per_kind: dict[str, list[tuple[bool, bool, float]]] = defaultdict(list)
    for q in qs:
        moments = searcher.search(q["q"], 5, mode, **kw)
        ious = [max((iou((m.start, m.end), w) for w in q["truth"].get(m.video.id, [])), default=0.0) for m in moments]
        per_kind[q["kind"]].append((bool(ious) and ious[0] >= IOU, any(x >= IOU for x in ious), ious[0] if ious else 0))
    return {
        kind: {
            "n": len(rows),
            "r1": 100 * sum(r[0] for r in rows) / len(rows),
            "r5": 100 * sum(r[1] for r in rows) / len(rows),
            "miou": statistics.median(r[2] for r in rows),
        }
        for kind, rows in per_kind.items()
    }


# ---- the machine ---------------------------------------------------------------------------------------------------
def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (
        f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} with {torch.get_num_threads()} threads, "
        f"Python {platform.python_version()}; load average (1/5/15 min) {load}"
    )


# ---- 1. quality ----------------------------------------------------------------------------------------------------
def quality(work: Path, videos: int, minutes: float, per_video: int, seed: int, embedder: TextEmbedder) -> list[str]:
    scripts = [make_script(video_seed(seed, "heldout", i), minutes, vid=video_id("heldout", i)) for i in range(videos)]
    (work / "videos").mkdir(parents=True, exist_ok=True)
    for s in scripts:
        truth_result(s, str(work / "videos" / f"{s.vid}.mp4")).save(work / "gt" / s.vid / "captions.json")
        if not (work / "videos" / f"{s.vid}.mp4").exists():
            render_video(s, work / "videos" / f"{s.vid}.mp4", size=64, fps=8.0)
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "videorecap", "caption", str(work / "videos"), "--model", "recap-synth"]
    cmd += ["-o", str(work / "model"), "--no-progress", "-q"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    print(f"captioned {videos} videos with recap-synth in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    qs = queries(scripts, per_video, seed)
    counts = defaultdict(int)
    for q in qs:
        counts[q["kind"]] += 1
    lines = [
        f"{videos} held-out videos of {minutes:g} min (seed {seed}); queries: "
        + ", ".join(f"{n} {k}" for k, n in counts.items())
        + f"; a moment matches at temporal IoU >= {IOU}. R@1 / R@5 in %, median IoU of the first moment.",
        "",
        "| captions | search | caption words: R@1 | R@5 | IoU | paraphrase: R@1 | R@5 | IoU "
        "| activity: R@1 | R@5 | IoU |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in ("model", "gt"):
        corpus = load_corpus(work / name)
        s = Searcher(corpus, embeddings(corpus, embedder), embedder)
        runs = [(m, m, {}) for m in MODES]
        runs += [("hybrid, reciprocal-rank fusion", "hybrid", {"fusion": "rrf"})]
        runs += [("hybrid, windows unmerged", "hybrid", {"merge": False})]
        for label, mode, kw in runs:
            r = evaluate(s, qs, mode, **kw)
            cells = []
            for kind in ("caption", "paraphrase", "activity"):
                x = r[kind]
                cells += [f"{x['r1']:.0f}", f"{x['r5']:.0f}", f"{x['miou']:.2f}"]
            who = "recap-synth" if name == "model" else "ground truth"
            lines.append(f"| {who} | {label} | " + " | ".join(cells) + " |")
    return lines


# ---- 2. speed ------------------------------------------------------------------------------------------------------
def _spread(xs: list[float]) -> str:
    q = np.percentile(xs, [10, 50, 90])
    return f"{q[1] * 1e3:.1f} ms (p10-p90 {q[0] * 1e3:.1f}-{q[2] * 1e3:.1f}, max {max(xs) * 1e3:.1f})"


def speed(work: Path, hours: int, seed: int, embedder: TextEmbedder, n_queries: int) -> list[str]:
    root = work / f"{hours}h"
    scripts = []
    for i in range(hours):
        s = make_script(video_seed(seed, "speed", i), 60.0, vid=video_id("speed", i))
        scripts.append(s)
        truth_result(s).save(root / s.vid / "captions.json")
    t0 = time.perf_counter()
    corpus = load_corpus(root)
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    _ = corpus.bm25
    t_bm25 = time.perf_counter() - t0
    n_unique = len({d.text for d in corpus.docs})
    for p in (root / ".videorecap-search").glob("*/*.npy"):  # from scratch
        p.unlink()
    t0 = time.perf_counter()
    emb = embeddings(corpus, embedder)
    t_build = time.perf_counter() - t0
    t0 = time.perf_counter()
    emb = embeddings(load_corpus(root), embedder)
    t_reuse = time.perf_counter() - t0
    changed = truth_result(make_script(video_seed(seed, "speed-changed", 0), 60.0, vid=scripts[0].vid))
    changed.save(root / scripts[0].vid / "captions.json")
    corpus = load_corpus(root)
    t0 = time.perf_counter()
    emb = embeddings(corpus, embedder)
    t_one = time.perf_counter() - t0
    s = Searcher(corpus, emb, embedder)
    qs = [q["q"] for q in queries(scripts[:20], 3, seed)][:n_queries]
    lat: dict[str, list[float]] = {}
    for mode in MODES:
        s.search(qs[0], 10, mode)  # warm up
        lat[mode] = []
        for q in qs:
            t0 = time.perf_counter()
            s.search(q, 10, mode)
            lat[mode].append(time.perf_counter() - t0)
    cli = {}
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    for mode in ("lexical", "hybrid"):
        cli[mode] = []
        for q in qs[:5]:
            t0 = time.perf_counter()
            cmd = [sys.executable, "-m", "videorecap", "search", str(root), q, "--mode", mode, "--no-progress"]
            subprocess.run(cmd, check=True, capture_output=True, env=env)
            cli[mode].append(time.perf_counter() - t0)
    lines = [
        f"{hours} h of captions ({len(corpus.videos)} captions files, {len(corpus.docs):,} texts: clip captions every "
        f"4 s, segment descriptions every 40 s; {n_unique:,} distinct texts), {len(qs)} queries:",
        "",
        "| step | time |",
        "| --- | ---: |",
        f"| read the folder (load_corpus) | {t_load:.2f} s |",
        f"| BM25 index (first query) | {t_bm25:.2f} s |",
        f"| embedding index from scratch ({n_unique:,} distinct texts embedded) | {t_build:.1f} s "
        f"({n_unique / t_build:.0f} texts/s) |",
        f"| read the folder again + the stored index, nothing changed ({emb.nbytes / 2**20:.0f} MB as float32) "
        f"| {t_reuse:.2f} s |",
        f"| embedding index, one of {hours} files changed | {t_one:.2f} s |",
    ]
    for mode in MODES:
        lines.append(f"| query, in process ({mode}) | {_spread(lat[mode])} |")
    for mode, xs in cli.items():
        lines.append(f"| `videorecap search` CLI call, cold ({mode}, index built) | {statistics.median(xs):.2f} s |")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, required=True, help="scratch folder (videos, captions, indexes)")
    p.add_argument("--videos", type=int, default=12, help="held-out videos for the quality part")
    p.add_argument("--minutes", type=float, default=4.0)
    p.add_argument("--per-video", type=int, default=6, help="actions drawn as queries per video")
    p.add_argument("--hours", type=int, default=100, help="hours of captions for the speed part")
    p.add_argument("--queries", type=int, default=50, help="queries timed in the speed part")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="3 videos, 2 h, 10 queries: checks that it runs")
    args = p.parse_args()
    if args.quick:
        args.videos, args.hours, args.queries = 3, 2, 10
    embedder = TextEmbedder.load()
    start = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    head = [
        f"Run {start}: `python benchmarks/bench_search.py {' '.join(sys.argv[1:])}`",
        "",
        f"Machine: {machine()}",
        "",
    ]
    q = quality(args.work / "quality", args.videos, args.minutes, args.per_video, args.seed, embedder)
    sp = speed(args.work / "speed", args.hours, args.seed, embedder, args.queries)
    print(
        "\n".join(
            [*head, *q, "", *sp, "", f"Load average at the end: {' / '.join(f'{x:.2f}' for x in os.getloadavg())}"]
        )
    )
    (args.work / "bench_search.json").write_text(json.dumps({"quality": q, "speed": sp}, indent=1))


if __name__ == "__main__":
    main()
