"""Wall time per hour of video for each stage of `videorecap caption`, and memory against video length.

Part 1 (recap-base sizes, random weights, this CPU): the cost of each stage for one hour of video
(900 clip windows, 20 segments, 1 summary), from timed samples:
  - encoder: TimeSformer-B forward on batches of 4-frame 224-px clips;
  - clip / segment / video captions: batched decoding of a fixed number of tokens per caption (EOS suppressed),
    the KV-cached path against the original's recompute-everything loop. Caption lengths are the Ego4D-HCap
    averages in GPT-2 tokens (7.7 / 15.8 / 25.6 words -> about 12 / 22 / 36 tokens with "#C C" and punctuation).
Part 2 (recap-tiny, real pipeline): peak resident memory of a whole `caption_video` run on a 10-minute and a
3-hour video (each in its own process), to show memory does not grow with video length.

    python benchmarks/bench_caption.py            # both parts, prints markdown
    python benchmarks/bench_caption.py --part 2   # memory only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from videorecap.config import RecapConfig
from videorecap.infer.decode import greedy_recompute
from videorecap.model.recap import VideoRecap

TOKENS = {"clip": 12, "segment": 22, "video": 36}
PER_HOUR = {"clip": 900, "segment": 20, "video": 1}


def _gen_cached(model: VideoRecap, ctx: torch.Tensor, n: int) -> None:
    # the cached path of infer.decode.generate, with EOS impossible so exactly n tokens are produced
    from videorecap.infer.decode import DecodeConfig, _decode

    _decode(model.decoder, ctx, model.config.tokens.bos_token_id, -1, n, DecodeConfig())


def _time(fn, repeat: int = 1) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t0) / repeat


def part1(batch: int) -> list[str]:
    torch.manual_seed(0)
    rows = []
    with torch.no_grad():
        clip = VideoRecap(RecapConfig.from_name("recap-base", level="clip")).eval()
        x = torch.randn(batch, 3, 4, 224, 224)
        t_enc = _time(lambda: clip.encoder(x)) / batch
        rows.append(("encoder (TimeSformer-B, per clip)", t_enc, None, PER_HOUR["clip"]))
        tokens = clip.encoder(x)
        ctx = clip.context("clip", video=tokens)
        for level in ("clip", "segment", "video"):
            if level != "clip":
                m = VideoRecap(RecapConfig.from_name("recap-base", level=level)).eval()
                nf = m.config.num_features(level)
                feats = torch.randn(batch if level == "segment" else 1, nf, 768)
                text = torch.randint(0, 50257, (feats.shape[0], 512 if level == "video" else 300))
                ctx = m.context(level, video=feats, text_ids=text)
                model = m
            else:
                model = clip
            n = TOKENS[level]
            b = ctx.shape[0]
            t_cache = _time(lambda: _gen_cached(model, ctx, n)) / b  # noqa: B023
            t_full = _time(lambda: greedy_recompute(model.decoder, ctx, model.config.tokens.bos_token_id, -1, n)) / b  # noqa: B023
            rows.append((f"{level} captions ({n} tokens, per caption)", t_cache, t_full, PER_HOUR[level]))
    out = [
        f"Batch {batch}; per-hour figures assume 900 clips, 20 segments of 180 s and 1 summary.",
        "",
        "| stage | s / item (cached) | s / item (recompute) | speed-up | s per hour of video (cached) |",
        "|---|---|---|---|---|",
    ]
    total = 0.0
    for name, tc, tf, n in rows:
        total += tc * n
        sp = f"{tf / tc:.1f}x" if tf else "-"
        tf_s = f"{tf:.3f}" if tf else "-"
        out.append(f"| {name} | {tc:.3f} | {tf_s} | {sp} | {tc * n:.0f} |")
    out.append(f"| **total** | | | | **{total:.0f}** ({total / 3600:.2f} x real time) |")
    return out


def _child(video: str, out: str) -> None:
    # one caption run in a fresh process; prints its peak RSS
    from videorecap.pipeline import Captioner, CaptionOptions, caption_video
    from videorecap.tokenizer import Tokenizer

    torch.manual_seed(0)
    tok = Tokenizer.train_word_level([" ".join(f"w{i}" for i in range(120))])
    models = {
        lv: (VideoRecap(RecapConfig.from_name("recap-tiny", level=lv)), tok) for lv in ("clip", "segment", "video")
    }
    t0 = time.perf_counter()
    res = caption_video(video, Captioner(models), CaptionOptions(batch_size=16), cache_dir=out)
    dt = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB (Linux reports KiB)
    print(json.dumps({"clips": len(res.clips), "segments": len(res.segments), "seconds": dt, "peak_rss_mib": rss}))


def part2() -> list[str]:
    from videorecap.video.testing import make_video

    out = ["| video | clips | segments | wall time | peak RSS |", "|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as d:
        for minutes in (10, 180):
            path = make_video(Path(d) / f"v{minutes}.mp4", duration=minutes * 60.0, fps=2.0, size=(48, 32))
            r = subprocess.run(
                [sys.executable, __file__, "--child", str(path), str(Path(d) / f"cache{minutes}")],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            m = json.loads(r.stdout.strip().splitlines()[-1])
            out.append(f"| {minutes} min (48x32, 2 fps) | {m['clips']} | {m['segments']} | {m['seconds']:.1f} s | "
                       f"{m['peak_rss_mib']:.0f} MiB |")  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", type=int, choices=[1, 2])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--child", nargs=2)
    a = ap.parse_args()
    if a.child:
        _child(*a.child)
        return
    print("## Caption pipeline (`python benchmarks/bench_caption.py`)\n")
    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads, fp32.\n")  # fmt: skip
    if a.part in (None, 1):
        print("\n".join(part1(a.batch)) + "\n")
    if a.part in (None, 2):
        print("\n".join(part2()) + "\n")


if __name__ == "__main__":
    main()
