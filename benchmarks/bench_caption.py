"""Wall time per hour of video for every stage of `videorecap caption`, per precision, and memory against length.

Part 1 (recap-base sizes, random weights, this CPU): the cost of each stage for one hour of video (900 clip
windows, 20 segments, 1 summary), from timed samples, each precision (`--precisions`) in a fresh process of its own
(so its peak memory, VmHWM, is its own):
  - encoder: TimeSformer-B forward on batches of 4-frame 224-px clips, per clip;
  - clip Q-Former: the clip level's video Q-Former (256 queries over the 785 encoder tokens), per clip;
  - clip / segment / video captions: the level's context (Q-Formers over features and text) and greedy decoding of
    a fixed number of tokens (EOS suppressed), KV-cached; in fp32 also the original's recompute-everything loop,
    with the greedy tokens of both paths checked identical. Caption lengths are the Ego4D-HCap averages in GPT-2
    tokens (7.7 / 15.8 / 25.6 words -> about 12 / 22 / 36 tokens with "#C C" and punctuation).
  Clip captions decode `--decode-batch` rows at once (`videorecap caption --decode-batch`; default: the encoder
  batch), segments `--batch` rows.
Part 2 (recap-tiny, real pipeline): peak resident memory of a whole `caption_video` run on a 10-minute and a
3-hour video, each in its own process (VmHWM), to show memory does not grow with video length.
Part 3 (the bundled recap-synth model, or `--model recap-base` with random weights; real pipeline, `--precision`,
default fp32): `--videos` synthetic videos of `--minutes` each
captioned one by one (`caption_video` per video) and together (`caption_videos`, `caption` given several videos:
their segments and summaries decoded in shared batches), in the same process: decode calls and rows per call per
level, wall time of each path (median of `--repeats`), and the outputs checked identical.
Part 4 (end to end, recap-base with random weights): a 1080p30 H.264 file of `--minutes` (rendered by the script:
a drifting texture, x264 "veryfast" with B-frames, as cameras write) captioned by `caption_video` at every level,
each precision of `--precisions` in a fresh process: wall time, scaled to an hour. Captions are cut at the token
counts of part 1, which random weights reach every time. Decoding the file alone is timed too (one pass over its
windows, as `caption` reads them): within `caption` it runs in a background thread, beside the model.

    python benchmarks/bench_caption.py                          # both parts, fp32/bf16/int8: ~15 min, 2 idle cores
    python benchmarks/bench_caption.py --part 1 --precisions fp32 --repeats 3
    python benchmarks/bench_caption.py --quick --allow-load     # checks the script: ~3 min
    python benchmarks/bench_caption.py --part 3 --videos 8 --minutes 1 --decode-batch 16    # ~2 min
    python benchmarks/bench_caption.py --part 3 --quick --allow-load                        # 3 videos: ~30 s
    python benchmarks/bench_caption.py --part 3 --model recap-base --precision auto --videos 8 --decode-batch 16 \
        --repeats 2                                                                         # ~15 min
    python benchmarks/bench_caption.py --part 4 --minutes 2 --precisions fp32-onednn,int8 --repeats 1   # ~8 min

Parts 3 and 4 take `PRECISION+compile` (e.g. `fp32-onednn+compile`): the clip encoder compiled as `--compile`
compiles it; part 4 compiles or loads it before the timing and says how long that took.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from _machine import LOADED_NOTE, Timing, add_timing_arguments, check_load, machine_block, run_child, timed, vm_hwm_mib

from videorecap.config import RecapConfig
from videorecap.infer.decode import DecodeConfig, _decode, greedy_recompute
from videorecap.model.recap import VideoRecap
from videorecap.runtime import compute_context, prepare_model, set_threads

TOKENS = {"clip": 12, "segment": 22, "video": 36}
PER_HOUR = {"clip": 900, "segment": 20, "video": 1}
NO_EOS = -1  # argmax never returns it: every row generates every token


def _open_gates(model: VideoRecap) -> VideoRecap:
    for blk in model.decoder.h:  # as in a trained model, so the context matters
        if blk.cross:
            blk.xattn_gate.data.fill_(0.5)
            blk.xmlp_gate.data.fill_(0.5)
    return model


def hour(precision: str, batch: int, decode_batch: int, repeats: int, recompute: bool) -> dict:
    """Part 1 for one precision (run in a child process): seconds per item of every stage, and this process's
    peak memory."""
    torch.manual_seed(0)
    out: dict[str, dict] = {}

    def rec(name: str, t: Timing, items: int, tokens: int | None = None) -> None:
        out[name] = {"per_item": t.median / items, "times": t.times, "loads": t.loads, "loaded": t.loaded}
        if tokens:
            out[name]["per_token"] = t.median / (items * tokens)

    with torch.inference_mode(), compute_context("cpu", precision):
        clip = prepare_model(
            _open_gates(VideoRecap(RecapConfig.from_name("recap-base", level="clip")).eval()), precision
        )
        x = torch.randn(batch, 3, 4, 224, 224)
        t = timed(lambda: clip.encoder(x), repeats)
        rec("encoder", t, batch)
        tokens = t.out
        t = timed(lambda: clip.context("clip", video=tokens), repeats)
        rec("clip Q-Former", t, batch)
        ctx1 = t.out[:1]
        models = {"clip": clip}
        for level in ("segment", "video"):
            m = VideoRecap(RecapConfig.from_name("recap-base", level=level)).eval()
            models[level] = prepare_model(_open_gates(m), precision)
        ctxs = {"clip": ctx1.expand(decode_batch, -1, -1).contiguous()}
        for level in ("segment", "video"):
            m = models[level]
            rows = batch if level == "segment" else 1
            feats = torch.randn(rows, m.config.num_features(level), m.config.encoder.width)
            text = torch.randint(0, 50257, (rows, 512 if level == "video" else 300))
            t = timed(lambda m=m, level=level, f=feats, s=text: m.context(level, video=f, text_ids=s), repeats)
            rec(f"{level} context (Q-Formers)", t, rows)
            ctxs[level] = t.out
        for level in ("clip", "segment", "video"):
            m, ctx, n = models[level], ctxs[level], TOKENS[level]
            bos = m.config.tokens.bos_token_id
            t = timed(lambda m=m, c=ctx, n=n, b=bos: _decode(m.decoder, c, b, NO_EOS, n, DecodeConfig())[0], repeats)
            rec(f"{level} captions", t, ctx.shape[0], n)
            if recompute:
                tr = timed(lambda m=m, c=ctx, n=n, b=bos: greedy_recompute(m.decoder, c, b, NO_EOS, n), 1, warmup=0)
                rec(f"{level} captions, original loop", tr, ctx.shape[0], n)
                # fp32 greedy: same arithmetic per token in both paths, so the same tokens
                assert tr.out == t.out, f"{level}: the cached and the original loop chose different tokens"
    out["peak_mib"] = vm_hwm_mib()  # type: ignore[assignment]
    return out


def part1(args: argparse.Namespace) -> list[str]:
    rows: dict[str, dict] = {}
    for prec in args.precisions.split(","):
        child = ["--child-hour", prec, "--batch", str(args.batch), "--decode-batch", str(args.decode_batch),
                 "--repeats", str(args.repeats), "--threads", str(args.threads or 0)]  # fmt: skip
        rows[prec] = run_child(__file__, child + (["--recompute"] if prec == "fp32" and not args.no_recompute else []))
    lines = [
        f"Encoder batch {args.batch}, clip decoding {args.decode_batch} rows at once, segments {args.batch}; per hour: "
        "900 clips, 20 segments of 180 s, 1 summary. Seconds per item (median of the timed runs).",
        "",
    ]
    stages = [
        ("encoder", "clip"),
        ("clip Q-Former", "clip"),
        ("clip captions", "clip"),
        ("segment context (Q-Formers)", "segment"),
        ("segment captions", "segment"),
        ("video context (Q-Formers)", "video"),
        ("video captions", "video"),
    ]
    precs = list(rows)
    head = "| stage | " + " | ".join(f"{p}: s/item (ms/token) | {p}: s per hour" for p in precs) + " |"
    lines += [head, "|---" * (1 + 2 * len(precs)) + "|"]
    totals = dict.fromkeys(precs, 0.0)
    for stage, level in stages:
        cells = []
        for p in precs:
            r = rows[p][stage]
            tok = f" ({1000 * r['per_token']:.1f})" if "per_token" in r else ""
            flag = "*" if r["loaded"] else ""
            cells += [f"{r['per_item']:.3f}{tok}{flag}", f"{r['per_item'] * PER_HOUR[level]:.0f}"]
            totals[p] += r["per_item"] * PER_HOUR[level]
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    cells = []
    for p in precs:
        cells += ["", f"**{totals[p]:.0f}** ({totals[p] / 60:.1f} min)"]
    lines.append("| **total (one video-hour)** | " + " | ".join(cells) + " |")
    cells = []
    for p in precs:
        cells += ["", f"{rows[p]['peak_mib']:.0f} MiB"]
    lines.append("| peak memory of the process (VmHWM) | " + " | ".join(cells) + " |")
    if "fp32" in rows and "clip captions, original loop" in rows["fp32"]:
        r = rows["fp32"]
        lines += ["", "The original's recompute-everything loop against the cached path, fp32, same process "
                  "(greedy tokens identical, checked):", "",
                  "| level | cached ms/token | original loop ms/token | ratio | original loop s per hour |",
                  "|---|---|---|---|---|"]  # fmt: skip
        for level in ("clip", "segment", "video"):
            o = r.get(f"{level} captions, original loop")
            if o is None:
                continue
            c = r[f"{level} captions"]
            lines.append(
                f"| {level} ({TOKENS[level]} tokens) | {1000 * c['per_token']:.2f} | {1000 * o['per_token']:.2f} | "
                f"{o['per_token'] / c['per_token']:.1f}x | {o['per_item'] * PER_HOUR[level]:.0f} |"
            )
    lines += ["", LOADED_NOTE]
    return lines


def _child_memory(video: str, out: str) -> None:
    # one caption run in a fresh process; prints its own peak RSS (VmHWM)
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
    print(json.dumps({"clips": len(res.clips), "segments": len(res.segments), "seconds": dt, "peak_mib": vm_hwm_mib()}))


def part2(quick: bool) -> list[str]:
    from videorecap.video.testing import make_video

    out = ["| video | clips | segments | wall time | peak RSS (VmHWM) |", "|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as d:
        for minutes in (10, 30) if quick else (10, 180):
            path = make_video(Path(d) / f"v{minutes}.mp4", duration=minutes * 60.0, fps=2.0, size=(48, 32))
            m = run_child(__file__, ["--child", str(path), str(Path(d) / f"cache{minutes}")])
            out.append(f"| {minutes} min (48x32, 2 fps) | {m['clips']} | {m['segments']} | {m['seconds']:.1f} s | "
                       f"{m['peak_mib']:.0f} MiB |")  # fmt: skip
    return out


def part3(
    videos: int, minutes: float, batch: int, decode_batch: int, repeats: int, model: str, precision: str
) -> list[str]:
    """Several short videos one by one and together (see the module docstring)."""
    from _models import captioner_for

    from videorecap import pipeline
    from videorecap.synth.make import make_video

    calls: list[tuple[str, int]] = []  # (level, rows) of every decode call
    real = pipeline.caption_batch

    def counted(model, tok, level, items, *a, **kw):  # noqa: ANN001, ANN002, ANN003, ANN202
        calls.append((level, len(items["video"]) if isinstance(items, dict) else len(items)))
        return real(model, tok, level, items, *a, **kw)

    pipeline.caption_batch = counted  # type: ignore[assignment]
    cap = captioner_for(model, precision)
    opts = pipeline.CaptionOptions(batch_size=batch, decode_batch=decode_batch)
    with tempfile.TemporaryDirectory() as d:
        paths = [Path(d) / f"v{k}.mp4" for k in range(videos)]
        for k, path in enumerate(paths):
            make_video(path, seed=0, minutes=minutes, index=k)
        pipeline.caption_video(paths[0], cap, opts)  # warm-up (allocator, kernels): untimed

        def alone() -> list[dict]:
            return [pipeline.caption_video(v, cap, opts).to_dict() for v in paths]

        def together() -> list[dict]:
            return [r.to_dict() for _, r, _ in pipeline.caption_videos([(v, None, None) for v in paths], cap, opts)]

        rows = {}
        for name, fn in (("one by one", alone), ("together", together)):
            calls.clear()
            t = timed(fn, repeats, warmup=0)
            per_run = calls[: len(calls) // max(1, repeats)]
            rows[name] = (t, per_run)
    same = rows["one by one"][0].out == rows["together"][0].out
    windows = "40-s segments" if model == "recap-synth" else "180-s segments, random weights: captions run to the limit"
    lines = [
        f"{videos} synthetic videos of {minutes:g} min, {model} ({windows}), {cap.precision}, encoder batch {batch}, "
        f"decode batch {decode_batch}; outputs identical one by one and together: **{'yes' if same else 'NO'}**.",
        "",
        "| path | wall, median (min-max) | clip calls (rows/call) | segment calls (rows/call) "
        "| video calls (rows/call) |",
        "|---|---|---|---|---|",
    ]
    for name, (t, per_run) in rows.items():
        cells = []
        for level in ("clip", "segment", "video"):
            n = [r for lv, r in per_run if lv == level]
            cells.append(f"{len(n)} ({sum(n) / max(1, len(n)):.1f})")
        lines.append(f"| {name} | {t.fmt(digits=2)} | " + " | ".join(cells) + " |")
    a, b = rows["one by one"][0].median, rows["together"][0].median
    lines += ["", f"together / one by one: {b / a:.2f} of the wall time ({a / b:.2f}x).", "", LOADED_NOTE]
    if not same:
        raise SystemExit("\n".join(lines) + "\nthe outputs differ: a bug")
    return lines


def make_1080p(path: Path, minutes: float, fps: int = 30) -> Path:
    """A 1080p30 H.264 file whose content moves as a camera's: 8-px blocks drifting by a few pixels a frame, x264
    veryfast with B-frames (bench_video's renderer, with other settings)."""
    from bench_video import make_1080p as render

    return render(
        path, minutes * 60, fps, block=8, margin=128, motion=lambda i: ((i // 2) % 128, i % 128),
        options={"preset": "veryfast", "crf": "23"},
    )  # fmt: skip


def end_to_end(video: str, precision: str, batch: int, decode_batch: int, repeats: int) -> dict:
    """Part 4 for one precision (in a child process): wall seconds of `caption_video`, and of decoding alone."""
    from _models import captioner_for, prepare_compiled
    from bench_video import decode_only

    from videorecap.pipeline import CaptionOptions, caption_video

    cap = captioner_for("recap-base", precision)
    compile_s = prepare_compiled(cap)  # PRECISION+compile: compiled (or loaded) before the timing, timed apart
    opts = CaptionOptions(batch_size=batch, decode_batch=decode_batch, max_new_tokens=dict(TOKENS))
    t = timed(lambda: caption_video(video, cap, opts), repeats)  # after a warm-up run, as every row here
    d = timed(lambda: decode_only(Path(video))["seconds"], repeats)
    return {"caption": t.to_dict(), "decode": d.to_dict(), "peak_mib": vm_hwm_mib(), "compile_s": compile_s}


def part4(args: argparse.Namespace) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        video = make_1080p(Path(tmp) / "1080p.mp4", args.minutes)
        rows = {}
        workers = [w.strip() for w in (args.encoder_workers or "").split(",") if w.strip()] or [""]
        for prec in args.precisions.split(","):
            for w in workers:  # "": the default policy (runtime.encoder_workers)
                child = ["--child-e2e", prec, video.as_posix(), "--batch", str(args.batch), "--decode-batch",
                         str(args.decode_batch), "--repeats", str(args.repeats),
                         "--threads", str(args.threads or 0)]  # fmt: skip
                name = f"{prec}, {w} encoder batch{'es' if w != '1' else ''} at once" if w else prec
                rows[name] = run_child(__file__, child, env={"VIDEORECAP_ENCODER_WORKERS": w})
    scale = 60 / args.minutes
    lines = [
        f"End to end: a {args.minutes:g}-min 1080p30 H.264 file (x264 veryfast, crf 23) captioned at every level "
        f"by `caption_video` (encoder batch {args.batch}, {args.decode_batch} clip rows decoded at once, captions "
        f"cut at {TOKENS['clip']} / {TOKENS['segment']} / {TOKENS['video']} tokens), each precision in its own "
        "process; minutes per video-hour = wall x 60 / minutes of video.",
        "",
        "| precision | caption wall, s (median, range) | per video-hour | decoding the file alone, s | decoding per "
        "video-hour | peak memory |",
        "|---|---|---|---|---|---|",
    ]  # fmt: skip
    for prec, r in rows.items():
        c, d = r["caption"], r["decode"]
        flag = "*" if c["loaded"] or d["loaded"] else ""
        if r.get("compile_s") is not None:
            prec = f"{prec} ({r['compile_s']:.0f} s to compile or load first, not in the wall)"
        lines.append(
            f"| {prec} | {c['median']:.1f} ({min(c['times']):.1f}-{max(c['times']):.1f}){flag} | "
            f"{c['median'] * scale / 60:.1f} min | {d['median']:.1f}{flag} | {d['median'] * scale / 60:.1f} min | "
            f"{r['peak_mib']:.0f} MiB |"
        )
    lines += ["", LOADED_NOTE]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", type=int, choices=[1, 2, 3, 4], help="default: 1 and 2")
    ap.add_argument("--videos", type=int, default=8, help="part 3: synthetic videos (default 8)")
    ap.add_argument("--minutes", type=float, default=1.0, help="parts 3 and 4: minutes per video (default 1)")
    ap.add_argument("--batch", type=int, default=8, help="encoder batch and segment rows (default 8)")
    ap.add_argument(
        "--model",
        default="recap-synth",
        choices=["recap-synth", "recap-base"],
        help="part 3: the bundled model, or recap-base with random weights (default %(default)s)",
    )
    ap.add_argument("--precision", default="fp32", help="part 3: as --precision (default %(default)s)")
    ap.add_argument(
        "--decode-batch", type=int, default=None, help="clip caption rows decoded at once (default: --batch)"
    )
    ap.add_argument("--precisions", default="fp32,fp32-onednn,bf16,int8", help="comma list (default %(default)s)")
    ap.add_argument("--no-recompute", action="store_true", help="leave out the original's loop (fp32)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: the CLI's default policy)")
    ap.add_argument("--encoder-workers", metavar="LIST", help="part 4: comma list of encoder batches at once, each "
                    "a row ($VIDEORECAP_ENCODER_WORKERS; default: the default policy only)")  # fmt: skip
    ap.add_argument(
        "--quick", action="store_true", help="batch 2, 1 repeat, part 2 at 10 and 30 min: checks the script"
    )
    add_timing_arguments(ap, repeats=3)
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--child-hour", help=argparse.SUPPRESS)
    ap.add_argument("--child-e2e", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--recompute", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        _child_memory(*a.child)
        return
    if a.quick and a.part == 3:  # the encoder batch stays: a decode batch of 2 would group no videos
        a.videos, a.repeats = min(a.videos, 3), 1
    elif a.quick:
        a.batch, a.repeats = 2, 1
    a.decode_batch = a.decode_batch or a.batch
    threads, _ = set_threads(a.threads or None)
    if a.child_hour:
        print(json.dumps(hour(a.child_hour, a.batch, a.decode_batch, a.repeats, a.recompute)))
        return
    if a.child_e2e:
        print(json.dumps(end_to_end(a.child_e2e[1], a.child_e2e[0], a.batch, a.decode_batch, a.repeats)))
        return
    check_load(a.allow_load, "bench_caption")
    argv = " ".join(sys.argv[1:])
    print(f"## Caption pipeline per video-hour (`python benchmarks/bench_caption.py {argv}`)\n")
    print(machine_block({"threads": f"torch {threads}", "repeats": f"{a.repeats} timed after 1 warm-up"}))
    print()
    if a.part in (None, 1):
        print("\n".join(part1(a)) + "\n")
    if a.part in (None, 2):
        print("\n".join(part2(a.quick)) + "\n")
    if a.part == 4:
        print("\n".join(part4(a)) + "\n")
    if a.part == 3:
        lines = part3(a.videos, a.minutes, a.batch, a.decode_batch, a.repeats, a.model, a.precision)
        print("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
