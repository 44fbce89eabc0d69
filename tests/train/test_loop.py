"""The training loop: it learns, it resumes bit for bit, its schedule and parameter groups are the original's."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from traindata import corpus

from videorecap.config import RecapConfig, TrainOptions
from videorecap.data import datasets
from videorecap.data.collate import Collator
from videorecap.infer.batch import caption_batch
from videorecap.model.recap import VideoRecap
from videorecap.tokenizer import Tokenizer
from videorecap.train.loop import LevelData, StepInfo, TrainArgs, train_stage
from videorecap.train.optim import CosineSchedule, param_groups


def _setup(root: Path, level: str = "segment", n: int | None = None, **overrides):
    tok = Tokenizer.train_word_level(corpus())
    torch.manual_seed(0)
    cfg = RecapConfig.from_name("recap-tiny", level=level, **overrides)
    model = VideoRecap(cfg)
    files = {"segment": "segments_train.pkl", "video": "videos_train.json"}
    ds = datasets.for_config(level, root / "annotations" / files[level], cfg, feature_dir=root / "features")
    if n is not None:
        ds.rows = ds.rows[:n]
    col = Collator(tok, max_caption_tokens=16, max_text_tokens=64)
    return model, LevelData(level, ds, col), tok


def _fixed_loss(model, data: LevelData) -> float:
    batch = data.collate([data.train[i] for i in range(len(data.train))])
    model.eval()
    with torch.no_grad():
        loss, _ = model(
            data.level,
            batch["caption_ids"],
            video=batch["video"],
            video_mask=batch["video_mask"],
            text_ids=batch["text_ids"],
            text_mask=batch["text_mask"],
        )
    model.train()
    return float(loss)


def test_one_step_lowers_the_loss_on_a_fixed_batch(hcap_root, tmp_path):
    model, data, tok = _setup(hcap_root, n=4)
    before = _fixed_loss(model, data)
    args = TrainArgs(name="segment", levels=["segment"], max_steps=1, batch_size=4, lr=1e-2, warmup_steps=0)
    final = train_stage(model, [data], args, tmp_path / "out", tokenizer=tok)
    after = _fixed_loss(model, data)
    assert after < before - 1e-3
    assert (final / "model.safetensors").is_file()
    records = [json.loads(x) for x in (tmp_path / "out" / "log.jsonl").read_text().splitlines()]
    assert records[0]["step"] == 1 and "train/segment/loss" in records[0] and "samples_per_s" in records[0]


def test_a_few_hundred_steps_reproduce_the_captions(hcap_root, tmp_path):
    # a handful of segments, everything trainable, no dropout: the model must learn them by heart
    model, data, tok = _setup(hcap_root, n=3)
    for part in (model.config.decoder, model.config.video_aligner, model.config.text_aligner):
        part.dropout = 0.0
    model = VideoRecap(model.config, TrainOptions(train_decoder=True, train_aligner=True))
    args = TrainArgs(
        name="segment",
        levels=["segment"],
        max_steps=250,
        batch_size=3,
        lr=3e-3,
        lr_end=1e-4,
        warmup_steps=10,
        weight_decay=0.0,
    )
    train_stage(model, [data], args, tmp_path / "out", tokenizer=tok)
    model.eval()
    samples = [data.train[i] for i in range(3)]
    batch = data.collate(samples)
    assert caption_batch(model, tok, "segment", batch) == [s["caption"] for s in samples]


def _run(root: Path, out: Path, crash_at: int | None = None) -> VideoRecap:
    model, data, tok = _setup(root)
    args = TrainArgs(
        name="segment", levels=["segment"], epochs=3, batch_size=2, accumulation=1, lr=1e-3, warmup_steps=2
    )

    def crash(info: StepInfo) -> None:
        if crash_at is not None and info.step == crash_at:
            raise KeyboardInterrupt("simulated kill")

    train_stage(model, [data], args, out, seed=3, checkpoint_every=2, tokenizer=tok, on_step=crash)
    return model


def test_kill_and_resume_is_bit_exact(hcap_root, tmp_path):
    ref = _run(hcap_root, tmp_path / "ref")
    # crash after iteration 5: the last checkpoint is at 4, so iteration 5 is redone (with the same dropout)
    with pytest.raises(KeyboardInterrupt):
        _run(hcap_root, tmp_path / "crash", crash_at=5)
    assert not (tmp_path / "crash" / "final").exists()
    state = torch.load(tmp_path / "crash" / "last" / "train_state.pt", weights_only=True)
    assert state["step"] == 4
    resumed = _run(hcap_root, tmp_path / "crash")
    a, b = ref.state_dict(), resumed.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed run ended with different weights"
    # the log of the resumed run has each step once, in order
    steps = [r["step"] for r in map(json.loads, (tmp_path / "crash" / "log.jsonl").read_text().splitlines())]
    assert steps == sorted(set(steps)) == list(range(1, len(steps) + 1))


def test_cosine_schedule_is_the_originals():
    s = CosineSchedule(lr=3e-5, lr_end=1e-5, total_steps=15, warmup_steps=1, lr_start=1e-6)
    assert s(0) == pytest.approx(3e-5)  # a one-iteration warm-up ends at the peak
    w = CosineSchedule(lr=1.0, lr_end=0.0, total_steps=10, warmup_steps=5, lr_start=0.0)
    assert [w(i) for i in range(5)] == pytest.approx([0, 0.25, 0.5, 0.75, 1.0])
    assert w(5 + 5 - 1) == pytest.approx(0.5 * (1 + math.cos(math.pi * 4 / 5)))
    # the segment stage of the original: epochs 5..15 of a 15-epoch curve, no warm-up left
    seg = CosineSchedule(lr=3e-5, lr_end=1e-5, total_steps=15, warmup_steps=1, lr_start=1e-6, offset_steps=5)
    assert seg(0) == pytest.approx(1e-5 + 1e-5 * (1 + math.cos(math.pi * 4 / 14)))
    assert 2.5e-5 < seg(0) < 2.7e-5


def test_parameter_groups_follow_the_original():
    model = VideoRecap(RecapConfig.from_name("recap-tiny", level="segment"))
    decay, no_decay = param_groups(model, 0.01)
    names = {id(p): n for n, p in model.named_parameters()}
    d = {names[id(p)] for p in decay["params"]}
    nd = {names[id(p)] for p in no_decay["params"]}
    assert "video_queries" in d and "text_queries" in d  # the learned queries do get decay
    assert all("bias" not in n and "ln" not in n for n in d)
    assert any(n.endswith("ln_1.weight") for n in nd) and any(n.endswith(".bias") for n in nd)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert d | nd == trainable and not d & nd


def test_streams_cover_each_epoch_once_and_shard_like_distributed_sampler(hcap_root):
    from videorecap.train.loop import _Stream

    _, data, _ = _setup(hcap_root)
    n = len(data.train)  # 6
    one = _Stream(data, batch_size=2, seed=1, rank=0, world=1, multiple=1, num_workers=0)
    epoch0 = [k for b in one.plan(0) for _, k in b]
    assert sorted(epoch0) == list(range(n)) and epoch0 != [k for b in one.plan(1) for _, k in b]
    ranks = [_Stream(data, batch_size=1, seed=1, rank=r, world=2, multiple=1, num_workers=0) for r in range(2)]
    plans = [[k for b in s.plan(0) for _, k in b] for s in ranks]
    assert sorted(plans[0] + plans[1]) == list(range(n))
    # the first global batch of 2 single-process samples is rank 0's first + rank 1's first
    assert sorted(epoch0[:2]) == sorted([plans[0][0], plans[1][0]])
    # resuming mid-epoch continues with the very next batch
    one.next(), one.next()
    again = _Stream(data, batch_size=2, seed=1, rank=0, world=1, multiple=1, num_workers=0, epoch=0, position=2)
    assert torch.equal(one.next()["video"], again.next()["video"])


def test_a_corrupt_train_state_says_what_deleting_it_does(hcap_root, tmp_path):
    from videorecap.errors import CheckpointError

    ref = _run(hcap_root, tmp_path / "ref")
    with pytest.raises(KeyboardInterrupt):
        _run(hcap_root, tmp_path / "crash", crash_at=5)
    state = tmp_path / "crash" / "last" / "train_state.pt"
    state.write_bytes(state.read_bytes()[:100])  # a disk that filled up under an older version, say
    with pytest.raises(CheckpointError) as e:
        _run(hcap_root, tmp_path / "crash")
    assert str(e.value).startswith(f"{state}: the training state is corrupt (")
    assert str(e.value).endswith("; delete it to train this stage again from its start (the progress saved in last/ "
                                 "cannot be resumed)") and "\n" not in str(e.value)  # fmt: skip
    # and that is what deleting it does: the stage trains from its start, to the same weights as an unbroken run
    state.unlink()
    again = _run(hcap_root, tmp_path / "crash")
    a, b = ref.state_dict(), again.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_validation_captions_decode_as_long_as_the_stage_trains_its_targets(hcap_root, monkeypatch):
    # a recipe's max_tokens (the collator's caption length) is also the length its validation captions decode to,
    # not the model's default: a stage trained on long targets is not scored on captions cut shorter
    from videorecap.train import loop

    model, data, tok = _setup(hcap_root, n=4)
    seen = []

    def fake(model, tokenizer, level, batch, decode=None, **kw):  # noqa: ANN001, ANN003, ANN202
        seen.append(decode.max_new_tokens)
        return ["C does it"] * len(batch["caption_ids"])

    monkeypatch.setattr(loop, "caption_batch", fake)
    for length in (5, 200):
        data.collate.max_caption_tokens = length
        data.val = data.train
        loop._caption_metrics(model, data, 2, 2, tok, ["rouge_l"], torch.device("cpu"))
        assert seen[-1] == length
