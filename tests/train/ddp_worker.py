"""Run by test_ddp.py under `torch.distributed.run`: a few DDP steps of a tiny segment model; each rank saves its
parameters and the logged losses to OUT/rank{r}.pt. Also runnable as one process (the reference)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist

from videorecap import distributed
from videorecap.config import RecapConfig
from videorecap.data import datasets
from videorecap.data.collate import Collator
from videorecap.model.recap import VideoRecap
from videorecap.tokenizer import Tokenizer
from videorecap.train.loop import LevelData, StepInfo, TrainArgs, train_stage

sys.path.insert(0, str(Path(__file__).parent))
from traindata import corpus  # noqa: E402


def main(root: Path, out: Path, batch_size: int) -> None:
    torch.set_num_threads(1)
    tok = Tokenizer.train_word_level(corpus())
    torch.manual_seed(0)
    cfg = RecapConfig.from_name("recap-tiny", level="segment")
    for part in (cfg.decoder, cfg.video_aligner, cfg.text_aligner):  # no dropout: one process and two compute the same
        part.dropout = 0.0
    model = VideoRecap(cfg)
    ds = datasets.for_config("segment", root / "annotations" / "segments_train.pkl", cfg, feature_dir=root / "features")
    data = LevelData("segment", ds, Collator(tok, max_caption_tokens=16, max_text_tokens=64))
    args = TrainArgs(name="segment", levels=["segment"], max_steps=3, batch_size=batch_size, lr=1e-3, warmup_steps=0)
    losses: list[float] = []

    def record(info: StepInfo) -> None:
        losses.append(info.losses["segment"])

    train_stage(model, [data], args, out / "run", seed=5, on_step=record, device="cpu", tensorboard=False)
    rank, world = distributed.rank_world()
    torch.save({"losses": losses, "state": model.state_dict(), "world": world}, out / f"rank{rank}-of-{world}.pt")
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]))
