"""Does the summary of a long video read its last part? The real recap-synth model, `caption` under both policies.

    python benchmarks/bench_long_summary.py                   # a 3-hour video (three 1-hour parts)
    python benchmarks/bench_long_summary.py --hours 0.5       # the quick mode: three 10-minute parts
    python benchmarks/bench_long_summary.py --hours 0.5 --seeds 5   # five such videos, tallied
    python benchmarks/bench_long_summary.py --hours 0.5 --probe     # + what the video model names for other inputs

The video is three parts of equal length, each a synthetic-world script set in another home (world.HOMES), so the
activities of the last part occur nowhere before it (each home has its own 8 activities, and its own floor colour).
The parts are drawn one after the other into one mp4 (64 px, 2 fps: exactly the middle frames of the clip windows'
four sub-windows), which is captioned by `videorecap caption --model recap-synth` twice into the same folder:

- by default (the summary reads descriptions spread across the whole video, `summary_input.policy == "spread"`),
- with `--original-settings` (the original's first `max_text_tokens` tokens, 256 for recap-synth: about 7 minutes
  of its 40-s descriptions); the second run reuses the clip captions and segment descriptions from the first run's
  cache, so only the summary is made again.

For each it reports which parts the descriptions read by the summary come from (captions.json `summary_input`),
and which activities the summary names (past tense, as the world writes summaries), by part; the question is
whether activities of the last part appear in it. The descriptions and the summary are the model's own (clip ->
segment -> video, from the pixels), not the world's ground truth, which is shown for reference.

`--probe` then feeds the video model other inputs made from the same video (the last part's descriptions alone; the
spread text with the features of one part, or zeros; no text; one more level of recursion: summaries of consecutive
chunks of descriptions that fit, then a summary of those) and says which parts' activities each summary names.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av

from videorecap.synth.render import iter_frames
from videorecap.synth.world import ACTIVITY_TYPES, HOMES, VideoScript, make_script

FPS = 2.0  # frames at 0.5, 1.5, 2.5, 3.5 s of each 4-s window: the middle frames of its four sub-windows
SIZE = 64


def parts_script(hours: float, seed: int) -> list[VideoScript]:
    """Three scripts of hours/3 each, set in homes 0, 1, 2 (the first seed, in order, that draws each home)."""
    minutes = hours * 60 / 3
    parts = []
    for home in range(len(HOMES)):
        k = 0
        while (s := make_script([seed, home, k], minutes, vid=f"part{home}")).home != home:
            k += 1
        parts.append(s)
    return parts


def render_parts(parts: list[VideoScript], path: Path) -> None:
    """The parts drawn one after the other into one H.264 mp4."""
    with av.open(os.fspath(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(FPS).limit_denominator(1000))
        stream.width = stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "18", "preset": "veryfast", "threads": "1"}
        for script in parts:
            for img in iter_frames(script, size=SIZE, fps=FPS):
                for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _phrase_patterns() -> dict[str, re.Pattern[str]]:
    """Each activity's summary phrases, "made tea ..." or "started making tea ...", by the words before `{o}`."""
    out = {}
    for name, at in ACTIVITY_TYPES.items():
        past = at.past.split("{o}")[0].strip()
        started = "started " + at.gerund.split("{o}")[0].strip()
        out[name] = re.compile(rf"\b(?:{re.escape(past)}|{re.escape(started)})\b")
    return out


PATTERNS = _phrase_patterns()


def activities_named(text: str) -> list[str]:
    return sorted(name for name, rx in PATTERNS.items() if rx.search(text))


def caption(video: Path, out: Path, *extra: str) -> float:
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "videorecap", "caption", str(video), "--model", "recap-synth", "-o", str(out)]
    r = subprocess.run([*cmd, "--no-progress", *extra], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"caption failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return time.perf_counter() - t0


def run_one(hours: float, seed: int, work: Path) -> dict[str, dict]:
    """One video: render, caption under both policies; per policy what the summary read and named, by part."""
    parts = parts_script(hours, seed)
    part_len = parts[0].duration
    own = [set(HOMES[s.home]) for s in parts]
    video = work / "long.mp4"
    t0 = time.perf_counter()
    render_parts(parts, video)
    print(f"\nseed {seed}: {hours:g} h = 3 parts of {part_len / 60:g} min (homes 0, 1, 2), {SIZE} px, {FPS:g} fps, "
          f"rendered in {time.perf_counter() - t0:.0f} s")  # fmt: skip
    for k, s in enumerate(parts):
        print(f"  part {k + 1} ground truth: {len(s.segments)} segments, {', '.join(activities_named(s.summary))}")
    out: dict[str, dict] = {}
    for policy, extra in (("spread", ()), ("first", ("--original-settings",))):
        secs = caption(video, work / "out", *extra)
        d = json.loads((work / "out" / "long" / "captions.json").read_text())
        segs, summary = d["segments"], d["summary"]["text"]
        si = d.get("summary_input")
        read = si["segments"] if si else list(range(len(segs)))
        parts_read = sorted({min(int(segs[i]["start"] // part_len), 2) + 1 for i in read})
        named = activities_named(summary)
        by_part = [[a for a in named if a in own[k]] for k in range(3)]
        late_in_text = sorted({a for i in read for a in activities_named_desc(segs[i]["text"]) if a in own[2]})
        print(f"  {policy}: caption {secs:.0f} s; summary_input {json.dumps(si)}")
        print(f"    descriptions read: {len(read)} of {len(segs)}, from parts {parts_read}; last-part activities "
              f"in them: {', '.join(late_in_text) or 'none'}")  # fmt: skip
        print(f"    summary names, by part: {' | '.join(', '.join(b) or 'none' for b in by_part)}")
        print(f"    summary: {summary}")
        out[policy] = {"parts_read": parts_read, "late_in_text": bool(late_in_text), "by_part": by_part}
    out["parts"] = parts  # type: ignore[assignment]
    out["segments"] = [c["text"] for c in d["segments"]]  # type: ignore[assignment]
    return out


def probe(parts: list[VideoScript], segs: list[str]) -> None:
    """Which parts' activities the video model names for other inputs of the same video (see the docstring)."""
    import numpy as np
    import torch

    from videorecap.data.feature_sampling import sample
    from videorecap.data.text import fit_video_text, video_text
    from videorecap.infer.batch import CaptionItem, caption_batch
    from videorecap.pipeline import Captioner
    from videorecap.video.transforms import eval_transform

    cap = Captioner.load("recap-synth", levels="video")
    model, tok = cap.model("video"), cap.tokenizer("video")
    cfg = model.config
    encoder = cap.model("clip").encoder  # the levels' features are the clip model's CLS tokens, as in `caption`
    assert encoder is not None
    feats = []  # CLS features of every 4-s window, from the drawn frames (the odd ones at 2 fps: the middle frames)
    for script in parts:
        frames = np.stack(list(iter_frames(script, size=SIZE, fps=FPS)))
        windows = frames[: len(frames) // 8 * 8].reshape(-1, 8, SIZE, SIZE, 3)[:, 1::2]
        x = torch.stack([eval_transform(w, SIZE) for w in windows])
        with torch.no_grad():
            feats.append(np.concatenate([encoder(b)[:, 0].numpy() for b in x.split(64)]))
    per_part = [len(f) for f in feats]
    allf = np.concatenate(feats)
    count = lambda texts: [len(i) for i in tok.encode_batch(texts)]  # noqa: E731
    n, third = len(segs), len(segs) // 3

    def summarise(text: str, f: np.ndarray) -> str:
        x, mask = sample(f, cfg.num_features("video"), cfg.sampling("video"))
        return caption_batch(model, tok, "video", [CaptionItem(x, text, mask)])[0]

    def show(name: str, text: str) -> None:
        by_part = [[a for a in activities_named(text) if a in HOMES[s.home]] for s in parts]
        print(f"  {name:34s} {' | '.join(', '.join(b) or 'none' for b in by_part)}")

    spread = fit_video_text(segs, count, cfg.tokens.max_text_tokens, "spread").text
    last = fit_video_text(segs[2 * third :], count, cfg.tokens.max_text_tokens, "first").text
    p1, p3 = allf[: per_part[0]], allf[-per_part[2] :]
    print("\nprobe: activities the summary names, by part (part 1 | part 2 | part 3)")
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
    clips_per_segment = round(parts[0].segment_seconds / parts[0].clip_seconds)
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
    p.add_argument("--probe", action="store_true", help="then probe the video model on the last video (see above)")
    args = p.parse_args()

    import torch

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, device cpu, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, load {os.getloadavg()[0]:.1f}")  # fmt: skip
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for seed in range(args.seeds):
            shutil.rmtree(work / "out", ignore_errors=True)
            results.append(run_one(args.hours, seed, work))
    if args.probe:
        probe(results[-1]["parts"], results[-1]["segments"])  # type: ignore[arg-type]
    n = len(results)
    print(f"\n{n} video(s) of {args.hours:g} h:")
    print("| policy | last part in the text read | summary names part 1 / 2 / 3 activities (videos) |")
    print("|---|---|---|")
    for policy in ("spread", "first"):
        text = sum(r[policy]["late_in_text"] for r in results)
        named = " / ".join(str(sum(bool(r[policy]["by_part"][k]) for r in results)) for k in range(3))
        print(f"| {policy} | {text} of {n} | {named} of {n} |")


def activities_named_desc(text: str) -> list[str]:
    """Activities a segment description names (present tense: "makes tea", "starts making tea", ...)."""
    found = []
    for name, at in ACTIVITY_TYPES.items():
        present = at.present.split("{o}")[0].strip()
        gerund = at.gerund.split("{o}")[0].strip()
        if re.search(rf"\b(?:{re.escape(present)}|(?:starts|finishes|continues) {re.escape(gerund)})\b", text):
            found.append(name)
    return found


if __name__ == "__main__":
    main()
