"""Does the summary of a long video read its last part? The real recap-synth model, `caption` under both policies.

    python benchmarks/bench_long_summary.py                   # a 3-hour video (three 1-hour parts)
    python benchmarks/bench_long_summary.py --hours 0.5       # the quick mode: three 10-minute parts
    python benchmarks/bench_long_summary.py --hours 0.5 --seeds 5   # five such videos, tallied
    python benchmarks/bench_long_summary.py --hours 0.5 --probe     # + what the video model names for other inputs
    python benchmarks/bench_long_summary.py --train WORK      # + a video level trained on videos across homes
    python benchmarks/bench_long_summary.py --train W1 --train-long W2   # + one trained on spread text

The video visits three homes (world.HOMES) one after the other in equal parts (`make_script(homes=3)`), so the
activities of the last part occur nowhere before it (each home has its own 8 activities, and its own floor colour).
It is drawn into one mp4 (64 px, 2 fps: exactly the middle frames of the clip windows' four sub-windows) and
captioned by `videorecap caption --model recap-synth` twice into the same folder:

- by default (the summary reads descriptions spread across the whole video, `summary_input.policy == "spread"`),
- with `--original-settings` (the original's first `max_text_tokens` tokens, 256 for recap-synth: about 9 minutes
  of its 40-s descriptions); the second run reuses the clip captions and segment descriptions from the first run's
  cache, so only the summary is made again.

For each it reports which parts the descriptions read by the summary come from (captions.json `summary_input`),
and which activities the summary names (`world.activities_named`), by part; the question is whether activities of
the last part appear in it. The descriptions and the summary are the model's own (clip -> segment -> video, from
the pixels), not the world's ground truth, which is shown for reference.

The bundled video level was trained on videos of 4 minutes in one home. `--train WORK` also trains a video level
the same way (configs/recap-synth.yaml's video stage, from the bundled segment level, on the bundled clip and
segment levels' own captions and descriptions) on 160 videos of 7 minutes that visit 1, 2 or 3 homes (`synth make
--minutes 7 --homes 1-3`: their text fits the 256 tokens, and a summary there lists the activities of every home
visited), about 10 minutes on 2 cores (kept in WORK: a second run reuses it); every video is then captioned with
both video levels (the clip and segment levels are the bundled ones in both).

`--train-long WORK` trains one more video level the same way, on 160 videos of 21 minutes across 1-3 homes whose
text does not fit: each training video's text is the descriptions `caption` would read by default (spread to fit
the 256 tokens, 13-16 of 32), its target the world's summary of those descriptions (150-175 tokens), and the level
decodes up to 200 tokens (also when captioning: `--max-tokens video=200`). So it is trained on what a long video
gives it; about 20 minutes on 2 cores.

`--probe` then feeds the video model other inputs made from the same video (the last part's descriptions alone; the
spread text with the features of one part, or zeros; no text; one more level of recursion: summaries of consecutive
chunks of descriptions that fit, then a summary of those) and says which parts' activities each summary names.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from videorecap.synth.render import iter_frames, render_video
from videorecap.synth.world import HOMES, VideoScript, activities_named, make_script

FPS = 2.0  # frames at 0.5, 1.5, 2.5, 3.5 s of each 4-s window: the middle frames of its four sub-windows
SIZE = 64
TRAIN_VIDEOS, TRAIN_MINUTES, TRAIN_HOMES = 160, 7.0, "1-3"
LONG_MINUTES, LONG_TOKENS = 21.0, 200  # --train-long: 13-16 descriptions read of 32; their summaries: 150-175 tokens


def long_script(hours: float, seed: int) -> VideoScript:
    """One video of `hours` across three homes, in equal parts."""
    return make_script([seed, 31], hours * 60, homes=3, vid="long")


def train_video_level(work: Path, minutes: float = TRAIN_MINUTES, *, spread: bool = False) -> Path:
    """A video level trained on videos across homes (see the module doc), in work/run/video/final; reused when
    there. The clip and segment levels are the bundled ones, copied into the run (with their tokenizer) so the
    recipe skips them.

    `spread` (`--train-long`): every training video's text is fitted to the video level's limit as `caption` fits
    it by default (`fit_video_text(..., "spread")` over the generated descriptions), its target is the world's
    summary of the descriptions read (`summarize`), and the level decodes up to LONG_TOKENS tokens: on videos
    longer than the limit it learns to summarise descriptions spread over the whole video, as a 3-hour video gives.
    """
    import yaml

    from videorecap.synth.model import bundled_model_dir

    run, data = work / "run", work / "data"
    final = run / "video" / "final"
    if (final / "model.safetensors").is_file():
        print(f"trained video level: {final} (reused)")
        return final
    t0 = time.perf_counter()
    if not (data / "world.json").is_file():
        _cli("synth", "make", "-o", str(data), "--videos", str(TRAIN_VIDEOS), "--minutes", str(minutes),
             "--homes", TRAIN_HOMES, "--seed", "0")  # fmt: skip
    t_data = time.perf_counter() - t0
    for level in ("clip", "segment"):
        if not (run / level / "final").is_dir():
            shutil.copytree(bundled_model_dir() / level, run / level / "final")
    # the run reads the bundled levels' words (the recipe would otherwise train a tokenizer of its own)
    shutil.copyfile(bundled_model_dir() / "video" / "tokenizer.json", run / "tokenizer.json")
    recipe = Path(__file__).resolve().parent.parent / "configs" / "recap-synth.yaml"
    if spread:
        d = yaml.safe_load(recipe.read_text())
        for stage in d["stages"]:
            if stage["name"] == "video":
                stage["max_tokens"] = LONG_TOKENS
        recipe = work / "recipe.yaml"
        recipe.write_text(yaml.safe_dump(d))
        for step in ("features", "captions", "descriptions"):
            _cli("train", str(recipe), "--data-root", str(data), "-o", str(run), "--stage", step)
        _fit_rows(run)
    _cli("train", str(recipe), "--data-root", str(data), "-o", str(run))
    print(f"trained video level: {final} (data {t_data:.0f} s, training {time.perf_counter() - t0 - t_data:.0f} s, "
          f"{TRAIN_VIDEOS} videos of {minutes:g} min across {TRAIN_HOMES} homes"
          f"{', text spread to fit' if spread else ''})")  # fmt: skip
    return final


def _fit_rows(run: Path) -> None:
    """Fit every generated video row's text as `caption` does, with the summary of what it reads as the target."""
    from videorecap.checkpoint import read_config, recap_config
    from videorecap.data import hcap
    from videorecap.data.text import fit_video_text
    from videorecap.synth.model import bundled_model_dir
    from videorecap.synth.world import summarize
    from videorecap.tokenizer import Tokenizer

    tok = Tokenizer.from_file(run / "tokenizer.json")
    count = lambda texts: [len(i) for i in tok.encode_batch(texts)]  # noqa: E731
    video = bundled_model_dir() / "video"  # the level trained here has its config
    limit = recap_config(read_config(video), video).tokens.max_text_tokens
    fitted = 0
    for f in sorted((run / "data").glob("videos_*.json")):
        rows = hcap.load_level(f, "video")
        for r in rows:
            assert len(r["segment_descriptions"]) == len(r["segment_descriptions_pred"]), r["vid"]
            read = fit_video_text(r["segment_descriptions_pred"], count, limit, "spread").read
            if len(read) < len(r["segment_descriptions_pred"]):
                fitted += 1
            r["segment_descriptions_pred"] = [r["segment_descriptions_pred"][i] for i in read]
            r["segment_descriptions"] = [r["segment_descriptions"][i] for i in read]
            r["video_summary"] = summarize(r["segment_descriptions"])
        hcap.save_videos(f, rows)
    print(f"fitted the text of {fitted} training rows to {limit} tokens (spread)")


def _cli(*args: str) -> None:
    r = subprocess.run([sys.executable, "-m", "videorecap", *args, "--no-progress"], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"videorecap {args[0]} failed ({r.returncode}):\n{r.stderr[-3000:]}")


def part_of(script: VideoScript, t: float) -> int:
    """The index of the part (home visit) time `t` is in."""
    return max(k for k, (start, _) in enumerate(script.visits) if start <= t)


def caption(video: Path, out: Path, *extra: str) -> float:
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "videorecap", "caption", str(video), "--model", "recap-synth", "-o", str(out)]
    r = subprocess.run([*cmd, "--no-progress", *extra], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"caption failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return time.perf_counter() - t0


VideoLevel = tuple[Path | None, int | None]  # (video level folder or None: the bundled one, its decoding length)


def caption_args(level: VideoLevel) -> tuple[str, ...]:
    """The `caption` arguments that use a video level."""
    folder, max_tokens = level
    return (*(("--video-model", str(folder)) if folder else ()), *(("--max-tokens", f"video={max_tokens}")
            if max_tokens else ()))  # fmt: skip


def run_one(hours: float, seed: int, work: Path, models: dict[str, VideoLevel]) -> dict[str, dict]:
    """One video: render, caption with each video level under both policies; per (model, policy) what the summary
    read and named, by part."""
    script = long_script(hours, seed)
    own = [set(HOMES[h]) for _, h in script.visits]
    video = work / "long.mp4"
    t0 = time.perf_counter()
    render_video(script, video, size=SIZE, fps=FPS)
    homes = ", ".join(str(h) for _, h in script.visits)
    print(f"\nseed {seed}: {hours:g} h = 3 parts of {script.duration / 180:g} min (homes {homes}), {SIZE} px, "
          f"{FPS:g} fps, rendered in {time.perf_counter() - t0:.0f} s")  # fmt: skip
    for k in range(3):
        truth = [a for a in activities_named(script.summary) if a in own[k]]
        print(f"  part {k + 1} ground truth: {', '.join(truth)}")
    out: dict[str, dict] = {}
    # one output folder for the video: its cache gives every run after the first the clip captions and segment
    # descriptions (the same clip and segment levels), so only the summary is made again
    shutil.rmtree(work / "out", ignore_errors=True)
    for name, level in models.items():
        for policy, extra in (("spread", ()), ("first", ("--original-settings",))):
            secs = caption(video, work / "out", *extra, *caption_args(level))
            d = json.loads((work / "out" / "long" / "captions.json").read_text())
            segs, summary = d["segments"], d["summary"]["text"]
            si = d.get("summary_input")
            read = si["segments"] if si else list(range(len(segs)))
            parts_read = sorted({part_of(script, segs[i]["start"]) + 1 for i in read})
            named = activities_named(summary)
            by_part = [[a for a in named if a in own[k]] for k in range(3)]
            late_in_text = sorted({a for i in read for a in activities_named(segs[i]["text"]) if a in own[2]})
            print(f"  {name} video level, {policy}: caption {secs:.0f} s; summary_input {json.dumps(si)}")
            print(f"    descriptions read: {len(read)} of {len(segs)}, from parts {parts_read}; last-part activities "
                  f"in them: {', '.join(late_in_text) or 'none'}")  # fmt: skip
            print(f"    summary names, by part: {' | '.join(', '.join(b) or 'none' for b in by_part)}")
            print(f"    summary: {summary}")
            out[f"{name}/{policy}"] = {"parts_read": parts_read, "late_in_text": bool(late_in_text), "by_part": by_part}
    out["script"] = script  # type: ignore[assignment]
    out["segments"] = [c["text"] for c in d["segments"]]  # type: ignore[assignment]
    return out


def probe(script: VideoScript, segs: list[str], video_model: Path | None, max_tokens: int | None = None) -> None:
    """Which parts' activities the video model names for other inputs of the same video (see the docstring)."""
    import numpy as np
    import torch

    from videorecap.data.feature_sampling import sample
    from videorecap.data.text import fit_video_text, video_text
    from videorecap.infer.batch import CaptionItem, caption_batch
    from videorecap.infer.decode import DecodeConfig
    from videorecap.pipeline import Captioner
    from videorecap.video.transforms import eval_transform

    cap = Captioner.load("recap-synth", video=video_model, levels=("clip", "video"))
    model, tok = cap.model("video"), cap.tokenizer("video")
    cfg = model.config
    encoder = cap.model("clip").encoder  # the levels' features are the clip model's CLS tokens, as in `caption`
    assert encoder is not None
    # CLS features of every 4-s window, from the drawn frames (the odd ones at 2 fps: the middle frames)
    frames = np.stack(list(iter_frames(script, size=SIZE, fps=FPS)))
    windows = frames[: len(frames) // 8 * 8].reshape(-1, 8, SIZE, SIZE, 3)[:, 1::2]
    x = torch.stack([eval_transform(w, SIZE) for w in windows])
    with torch.no_grad():
        allf = np.concatenate([encoder(b)[:, 0].numpy() for b in x.split(64)])
    starts = [int(t // script.clip_seconds) for t, _ in script.visits]  # each part's first window
    count = lambda texts: [len(i) for i in tok.encode_batch(texts)]  # noqa: E731
    n, third = len(segs), len(segs) // 3

    def summarise(text: str, f: np.ndarray) -> str:
        x, mask = sample(f, cfg.num_features("video"), cfg.sampling("video"))
        decode = DecodeConfig(max_new_tokens=max_tokens)  # None: the level's own limit
        return caption_batch(model, tok, "video", [CaptionItem(x, text, mask)], decode)[0]

    def show(name: str, text: str) -> None:
        by_part = [[a for a in activities_named(text) if a in HOMES[h]] for _, h in script.visits]
        print(f"  {name:34s} {' | '.join(', '.join(b) or 'none' for b in by_part)}")

    spread = fit_video_text(segs, count, cfg.tokens.max_text_tokens, "spread").text
    last = fit_video_text(segs[2 * third :], count, cfg.tokens.max_text_tokens, "first").text
    p1, p3 = allf[: starts[1]], allf[starts[2] :]
    show("spread text, all features", summarise(spread, allf))
    show("last part's text, all features", summarise(last, allf))
    show("spread text, part 1 features", summarise(spread, p1))
    show("spread text, part 3 features", summarise(spread, p3))
    show("spread text, zero features", summarise(spread, np.zeros_like(allf)))
    show("no text, all features", summarise("", allf))
    # one more level: consecutive chunks that fit, each summarised over its own span, then a summary of those
    chunks, i = [], 0
    while i < n:
        k = len(fit_video_text(segs[i:], count, cfg.tokens.max_text_tokens, "first").read)
        k = max(k - 1, 1) if i + k < n else k  # the last read description may be cut: leave it to the next chunk
        chunks.append((i, i + k))
        i += k
    clips_per_segment = round(script.segment_seconds / script.clip_seconds)
    sums = [summarise(video_text(segs[a:b]), allf[a * clips_per_segment : b * clips_per_segment]) for a, b in chunks]
    for (a, b), text in zip(chunks, sums, strict=True):
        show(f"recursion: chunk {a}-{b - 1}", text)
    show(
        "recursion: summary of the chunks",
        summarise(fit_video_text(sums, count, cfg.tokens.max_text_tokens, "spread").text, allf),
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hours", type=float, default=3.0, help="video length, three parts (default: 3)")
    p.add_argument("--seeds", type=int, default=1, help="videos to make, seeds 0..N-1 (default: 1)")
    p.add_argument("--work", type=Path, help="keep the last video and its outputs here (default: a temporary folder)")
    p.add_argument("--train", type=Path, metavar="WORK", help="also train a video level on videos across homes "
                   "here (or reuse it) and caption with it too (see above)")  # fmt: skip
    p.add_argument(
        "--train-long",
        type=Path,
        metavar="WORK",
        help="also train a video level on videos of "
        f"{LONG_MINUTES:g} min across homes with their text spread to fit, as on long videos (see above)",
    )
    p.add_argument("--probe", action="store_true", help="then probe the video model(s) on the last video (see above)")
    args = p.parse_args()

    from _machine import machine_block

    print(machine_block({"device": "cpu", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "unset")}))
    # name -> (its video level folder, None: the bundled one; its decoding length, None: the level's own)
    models: dict[str, VideoLevel] = {"bundled": (None, None)}
    if args.train:
        models["across-homes"] = (train_video_level(args.train), None)
    if args.train_long:
        final = train_video_level(args.train_long, LONG_MINUTES, spread=True)
        models["across-homes, long"] = (final, LONG_TOKENS)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for seed in range(args.seeds):
            results.append(run_one(args.hours, seed, work, models))
    if args.probe:
        for name, (video_model, max_tokens) in models.items():
            print(f"\nprobe of the {name} video level: activities the summary names, by part (part 1 | 2 | 3)")
            probe(results[-1]["script"], results[-1]["segments"], video_model, max_tokens)  # type: ignore[arg-type]
    n = len(results)
    print(f"\n{n} video(s) of {args.hours:g} h:")
    print("| video level | policy | last part in the text read | summary names part 1 / 2 / 3 activities | all three |")
    print("|---|---|---|---|---|")
    for name in models:
        for policy in ("spread", "first"):
            rows = [r[f"{name}/{policy}"] for r in results]
            text = sum(r["late_in_text"] for r in rows)
            named = " / ".join(str(sum(bool(r["by_part"][k]) for r in rows)) for k in range(3))
            every = sum(all(r["by_part"]) for r in rows)
            print(f"| {name} | {policy} | {text} of {n} | {named} of {n} videos | {every} of {n} |")


if __name__ == "__main__":
    main()
