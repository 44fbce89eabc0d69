"""The arithmetic floor of a video-hour on this CPU: how fast could recap-base go if every matrix product ran at
the speed this machine reaches on the encoder's own largest product?

Two measurements, both in this process:

- the work: multiply-adds of one recap-base clip in the encoder, the clip Q-Former and the decoder (per generated
  token, with the 785-token context), counted by `torch.utils.flop_counter.FlopCounterMode` on one forward pass (the
  matrix products and attention; element-wise steps are not counted, which only lowers the floor);
- the speed: GFLOP/s of the encoder's MLP product (1,570 rows x 768 -> 3,072, as at encoder batch 2) in fp32
  (PyTorch's default kernel), in int8 (`quantize_dynamic`'s Linear, as `--precision int8`) and, on a CPU with bf16
  matrix instructions (AMX or AVX512_BF16: `runtime.fast_bf16_cpu`), in bf16 (weights and input in bf16, as
  `--precision bf16` runs it), with 1 and with all usable torch threads, median of `--repeats` after a warm-up.

The floor per video-hour is the hour's work (900 clips; decoding 12 tokens per clip caption, as bench_caption) over
that speed: no real run can be faster, since the product measured is the best case of the model's shapes (large,
square-ish). It says whether a goal such as "an hour in 15 min on 2 cores" is in reach of this CPU at all, before
any engineering. Compare with bench_caption.py's measured hour.

    python benchmarks/bench_floor.py                 # about 1 min
"""

from __future__ import annotations

import argparse

import torch
from _machine import LOADED_NOTE, add_timing_arguments, check_load, machine_block, timed
from torch.utils.flop_counter import FlopCounterMode

from videorecap.config import RecapConfig
from videorecap.model.recap import VideoRecap
from videorecap.runtime import cpu_count, fast_bf16_cpu, quantize_int8, set_threads

CLIPS_PER_HOUR = 900
CLIP_TOKENS = 12  # generated tokens per clip caption (bench_caption's TOKENS["clip"])


def work_per_clip() -> dict[str, float]:
    """GFLOP (2 x multiply-adds) of one clip's encoder, clip Q-Former and one decoded token."""
    torch.manual_seed(0)
    model = VideoRecap(RecapConfig.from_name("recap-base", level="clip")).eval().requires_grad_(False)
    enc = model.encoder.config
    video = torch.randn(1, 3, enc.num_frames, enc.image_size, enc.image_size)
    out: dict[str, float] = {}
    with torch.no_grad():  # (FlopCounterMode's module hooks cannot take inference-mode tensors)
        with FlopCounterMode(display=False) as fc:
            tokens = model.encoder(video)
        out["encoder"] = fc.get_total_flops() / 1e9
        with FlopCounterMode(display=False) as fc:
            ctx = model.context("clip", video=tokens)
        out["clip Q-Former"] = fc.get_total_flops() / 1e9
        with FlopCounterMode(display=False) as fc:
            cache = model.decoder.new_cache(ctx, CLIP_TOKENS + 1)  # the context's K/V, once per caption
        out["decoding, context K/V per caption"] = fc.get_total_flops() / 1e9
        ids = torch.zeros(1, 1, dtype=torch.long)
        with FlopCounterMode(display=False) as fc:
            model.decoder(ids, cache=cache)
        out["decoding, per token"] = fc.get_total_flops() / 1e9
    return out


def speed(threads: int, repeats: int) -> dict[str, tuple[float, float, float, bool]]:
    """GFLOP/s (median, min, max) of the encoder's MLP product in fp32, int8 and (where the CPU has bf16 matrix
    instructions; emulated bf16 is many times slower than fp32) bf16 with `threads` torch threads, and whether a timed
    run started under load."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    x = torch.randn(1570, 768)
    fp32 = torch.nn.Linear(768, 3072).eval()
    int8 = quantize_int8(torch.nn.Sequential(torch.nn.Linear(768, 3072))).eval()  # (it silences torch's notices)
    kernels = [("fp32", fp32, x), ("int8", int8, x)]
    if fast_bf16_cpu():
        kernels.append(("bf16", torch.nn.Linear(768, 3072).eval().to(torch.bfloat16), x.to(torch.bfloat16)))
    gflop = 2 * 1570 * 768 * 3072 / 1e9
    out = {}
    with torch.inference_mode():
        for name, layer, inp in kernels:
            t = timed(lambda layer=layer, inp=inp: [layer(inp) for _ in range(20)], repeats)
            rates = sorted(20 * gflop / s for s in t.times)
            out[name] = (20 * gflop / t.median, rates[0], rates[-1], t.loaded)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_timing_arguments(ap, repeats=5)
    args = ap.parse_args()
    check_load(args.allow_load, "bench_floor")
    cores = cpu_count()
    set_threads(1)
    print("## The arithmetic floor of a video-hour (`python benchmarks/bench_floor.py`)\n")
    print(machine_block({"repeats": f"{args.repeats} timed after 1 warm-up, 20 products each"}))
    print()
    work = work_per_clip()
    # every stage once per clip, but a token's decoding once per generated token of each caption
    hour = {k: g * CLIPS_PER_HOUR * (CLIP_TOKENS if k == "decoding, per token" else 1) for k, g in work.items()}
    total = sum(hour.values())
    print("| stage | GFLOP per clip (per token: decoding) | GFLOP per video-hour (12 tokens per caption) |")
    print("|---|---:|---:|")
    for name, g in work.items():
        print(f"| {name} | {g:.2f} | {hour[name]:,.0f} |")
    print(f"| **clip level, per video-hour** | | **{total:,.0f}** |")
    print()
    print("| torch threads | kernel | GFLOP/s on the encoder's MLP product (median, range) | floor per video-hour |")
    print("|---|---|---|---|")
    for threads in sorted({1, cores}):
        for name, (med, lo, hi, loaded) in speed(threads, args.repeats).items():
            flag = "*" if loaded else ""
            print(f"| {threads} | {name} | {med:.0f} ({lo:.0f}-{hi:.0f}){flag} | {total / med / 60:.1f} min |")
    print()
    print("The segment and video levels add about 1 % (bench_caption.py part 1), decoding the video file more.")
    print(LOADED_NOTE)


if __name__ == "__main__":
    main()
