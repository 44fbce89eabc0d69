"""`infer.decode.between_steps`: a hook run before every decoding step (the live session captions waiting clip
windows there while a segment is described) leaves the generated ids unchanged and is not re-entered."""

import pytest
import torch
from _helpers import sharp_decoder

from videorecap.infer.decode import DecodeConfig, between_steps, generate
from videorecap.model.decoder import GatedGPT2

MAX = 12


def _decoder() -> tuple[GatedGPT2, torch.Tensor]:
    return sharp_decoder(0, eos_bias=1.0, rows=4)  # EOS likely enough that rows end at different steps


def _gen(dec: GatedGPT2, ctx: torch.Tensor, cfg: DecodeConfig) -> list[list[int]]:
    return generate(dec, ctx, bos_id=1, eos_id=2, max_new_tokens=MAX, cfg=cfg)


def test_hook_runs_once_per_greedy_step_and_a_decode_inside_it_is_not_interrupted() -> None:
    dec, ctx = _decoder()
    cfg = DecodeConfig()
    plain, plain_inner = _gen(dec, ctx, cfg), _gen(dec, ctx[:2], cfg)
    calls: list[int] = []
    inner: list[list[list[int]]] = []

    def hook() -> None:
        calls.append(len(calls))
        if len(calls) == 3:  # other work done between two steps: a decode of its own, not hooked itself
            inner.append(_gen(dec, ctx[:2], cfg))

    with between_steps(hook):
        hooked = _gen(dec, ctx, cfg)
    assert hooked == plain and inner == [plain_inner]
    steps = max(min(len(ids) + 1, MAX) for ids in plain)  # each row's tokens and its EOS, at most MAX picks
    assert len(calls) == steps > 3
    _gen(dec, ctx, cfg)  # outside the block: no hook
    assert len(calls) == steps


@pytest.mark.parametrize(
    "cfg",
    [
        DecodeConfig(strategy="beam", num_beams=3),
        DecodeConfig(use_cache=False),
        DecodeConfig(lengths="original"),
        DecodeConfig(strategy="sample", seed=3, top_k=5),
    ],
    ids=["beam", "recompute", "original-lengths", "sample"],
)
def test_every_decoding_loop_calls_the_hook_and_keeps_its_ids(cfg: DecodeConfig) -> None:
    dec, ctx = _decoder()
    plain = _gen(dec, ctx, cfg)
    calls: list[int] = []
    with between_steps(lambda: calls.append(1)):
        hooked = _gen(dec, ctx, cfg)
    assert hooked == plain and len(calls) > 1
