"""Training throughput per level at recap-base sizes: our loop vs the original loop's characteristics.

"ours": `videorecap.train.loop.train_stage` (token-mean loss, persistent per-level iterators, seeded per-sample RNG).
"original": a re-creation of the original loop's characteristics that differ: the loss averaged over every position
(padding included) and a new DataLoader iterator built for every batch (`next(iter(loader))`, as train_unified.py),
which restarts its worker processes each step. Same model, data, batch size and optimizer otherwise.

Inputs are synthetic tensors of the official shapes (clip: all 785 encoder tokens of a window, i.e. the frozen
encoder's output; segment: 80 CLS features + 512 text tokens; video: 256 masked features + 512 text tokens) so the
numbers measure the trainable part and the data path, not video decoding.

    python benchmarks/bench_train.py --steps 4 --batch-size 2 --workers 2      # prints markdown
    python benchmarks/bench_train.py --append                                  # also appends to RESULTS.md

Each (level, variant) runs in its own process so peak memory (max RSS, or CUDA max allocated) is its own.
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
from torch.utils.data import DataLoader, Dataset


class _Tok:
    """GPT-2-sized stand-in tokenizer: words hashed into the vocabulary."""

    bos_id = eos_id = 50256
    pad_id = 0

    def encode(self, text: str) -> list[int]:
        return [1 + (hash(w) % 50000) for w in text.split()]

    def decode(self, ids: list[int]) -> str:
        return " ".join(map(str, ids))


class _Synthetic(Dataset):
    def __init__(self, level: str, n: int = 64) -> None:
        self.level, self.n = level, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        g = torch.Generator().manual_seed(i)
        words = [
            f"w{int(x)}" for x in torch.randint(0, 10_000, (int(torch.randint(5, 30, (1,), generator=g)),), generator=g)
        ]
        text = " ".join(f"t{j}" for j in range(400)) if self.level != "clip" else None
        if self.level == "clip":
            video, mask = torch.randn(785, 768, generator=g), None
        elif self.level == "segment":
            video, mask = torch.randn(80, 768, generator=g), None
        else:
            video = torch.randn(256, 768, generator=g)
            mask = torch.arange(256) < 200
        return {"video": video, "video_mask": mask, "text": text, "caption": " ".join(words), "meta": {}}


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one(level: str, variant: str, steps: int, batch_size: int, workers: int, device: str) -> dict:
    from videorecap.config import RecapConfig
    from videorecap.data.collate import Collator
    from videorecap.model.recap import VideoRecap
    from videorecap.train.loop import LevelData, TrainArgs, _forward, train_stage
    from videorecap.train.optim import build_optimizer

    dev = torch.device(device)
    torch.manual_seed(0)
    cfg = RecapConfig.from_name("recap-base", level=level)
    model = VideoRecap(cfg)  # the original's training options: the encoder frozen
    ds = _Synthetic(level)
    col = Collator(_Tok(), max_caption_tokens=cfg.io.max_new_tokens[level], max_text_tokens=512)
    warm = 1
    if variant == "ours":
        times: list[float] = []

        def tick(info) -> None:  # noqa: ANN001
            times.append(time.perf_counter())

        args = TrainArgs(
            name=level,
            levels=[level],
            max_steps=steps + warm + 1,  # the last step also writes the final checkpoint: not timed
            batch_size=batch_size,
            num_workers=workers,
            warmup_steps=0,
        )
        with tempfile.TemporaryDirectory() as tmp:
            train_stage(
                model,
                [LevelData(level, ds, col)],
                args,
                tmp,
                device=dev,
                on_step=tick,
                tensorboard=False,
                checkpoint_every=10**9,
            )
        elapsed = times[warm + steps - 1] - times[warm - 1]
    else:  # the original's characteristics
        model.to(dev).train()
        opt = build_optimizer(model, lr=3e-5)
        amp = torch.float16 if dev.type == "cuda" else None
        scaler = torch.amp.GradScaler(dev.type, enabled=amp is not None)
        loader = DataLoader(
            ds, batch_size=batch_size, shuffle=True, collate_fn=col, num_workers=workers, drop_last=True
        )
        trainable = [p for p in model.parameters() if p.requires_grad]
        for k in range(steps + warm):
            if k == warm:
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
            batch = next(iter(loader))  # a new iterator (and new workers) every step
            batch = {k2: v.to(dev) if isinstance(v, torch.Tensor) else v for k2, v in batch.items()}
            opt.zero_grad(set_to_none=True)
            loss = _forward(model, level, batch, "all", amp)
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            scaler.step(opt)
            scaler.update()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - t0
    return {"level": level, "variant": variant, "samples_per_s": steps * batch_size / elapsed, "peak_mb": _peak_mb(dev)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--levels", default="clip,segment,video")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--append", action="store_true", help="append the table to benchmarks/RESULTS.md")
    p.add_argument("--one", nargs=2, metavar=("LEVEL", "VARIANT"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.one:
        print(json.dumps(one(a.one[0], a.one[1], a.steps, a.batch_size, a.workers, a.device)))
        return
    rows = []
    for level in a.levels.split(","):
        for variant in ("original", "ours"):
            cmd = [
                sys.executable,
                __file__,
                "--one",
                level,
                variant,
                "--steps",
                str(a.steps),
                "--batch-size",
                str(a.batch_size),
                "--workers",
                str(a.workers),
                "--device",
                a.device,
            ]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
            rows.append(json.loads(out))
            print(f"{level} {variant}: {rows[-1]['samples_per_s']:.2f} samples/s", file=sys.stderr)
    machine = (
        torch.cuda.get_device_name(0)
        if a.device.startswith("cuda")
        else f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU threads, torch threads "
        f"{torch.get_num_threads()}"
    )
    cmd = (
        f"python benchmarks/bench_train.py --steps {a.steps} --batch-size {a.batch_size} --workers {a.workers} "
        f"--device {a.device}"
    )
    lines = [
        f"## Training throughput, recap-base sizes ({a.device}: {machine})",
        "",
        f"`{cmd}`",
        "",
        "| level | loop | samples/s | peak memory (MiB) |",
        "| --- | --- | ---: | ---: |",
    ]
    for r in rows:
        lines.append(f"| {r['level']} | {r['variant']} | {r['samples_per_s']:.2f} | {r['peak_mb']:.0f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.append:
        with open(Path(__file__).with_name("RESULTS.md"), "a", encoding="utf-8") as f:
            f.write("\n" + text)


if __name__ == "__main__":
    main()
