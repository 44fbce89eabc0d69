"""DecodeConfig(lengths="original") on checkpoints written in the official format: the released code's caption ids.

The reference here is written from the original's description (reference-videorecap §4.1), not from our code: its
`generate(max_text_length=M)` loop recomputes the whole prefix, makes at most M - 1 steps, keeps decoding finished
rows, and breaks *before* appending the step at which every row has produced EOS; `decode_one` then cuts each row at
its first EOS after BOS, or, with no EOS, at the last position (which it leaves out).

To make each EOS case happen at a chosen step, the decoder of the tiny official checkpoint is set by hand: every
block adds nothing but the context (one context token per row, copied into the residual stream by the cross
attention), and one channel of the residual stream carries `4 * (position - end + 1.5)`, with `end` set per row by
its context. The EOS row of the tied lm_head reads that channel (through a large final-LayerNorm gain), so the EOS
logit jumps from about -300 to +300 exactly at the row's chosen step; the other channels pick varied words.
"""

from __future__ import annotations

import pytest
import torch
from fakes import official_args, random_model, tiny_config, write_official

from videorecap.config import TokenConfig
from videorecap.convert import load_official
from videorecap.infer.decode import DecodeConfig, generate, generate_ids
from videorecap.model.recap import VideoRecap
from videorecap.tokenizer import Tokenizer

M = 12  # the original's max_text_length: 11 decoder steps at most
NEVER = M + 6  # an end step the loop never reaches
K = 100.0  # the two constant channels that make the LayerNorm's scale (almost) independent of the rest


def reference_original(decoder, context, bos: int, eos: int, max_text_length: int) -> list[list[int]]:
    """The released code's greedy loop and decode_one, step by step."""
    ids = torch.full((context.shape[0], 1), bos, dtype=torch.long)
    reached = torch.zeros(context.shape[0], dtype=torch.bool)
    with torch.no_grad():
        for _ in range(max_text_length - 1):
            token = decoder(ids, context)[:, -1].argmax(-1, keepdim=True)
            reached = reached | (token[:, 0] == eos)
            if bool(reached.all()):
                break  # before appending this step's tokens
            ids = torch.cat([ids, token], dim=1)
    captions = []
    for row in ids.tolist():
        if bos == eos:  # BOS is an EOS too: look after position 0
            end = row[1:].index(eos) + 1 if eos in row[1:] else len(row) - 1
        else:
            end = row.index(eos) if eos in row else len(row) - 1
        captions.append(row[1:end])
    return captions


def forced_eos_model(bos: int, eos: int = 2, seed: int = 3) -> VideoRecap:
    """A tiny video-level model whose decoder ends each row at the step its context asks for."""
    tokens = TokenConfig(bos_token_id=bos, eos_token_id=eos, pad_token_id=0)
    model = random_model(tiny_config("video").override({"tokens": tokens}), seed=seed)
    dec = model.decoder
    g = torch.Generator().manual_seed(seed)
    n, cw = dec.config.n_embd, dec.config.context_width
    with torch.no_grad():
        for blk in dec.h:  # every block adds nothing...
            for lin in (blk.attn.c_proj, blk.mlp.c_proj) + ((blk.xmlp.c_proj,) if blk.cross else ()):
                lin.weight.zero_()
                lin.bias.zero_()
        x0 = dec.h[0]  # ...but layer 0's cross attention, which copies the context into channels [0, cw)
        assert x0.cross
        x0.xattn.c_kv.weight.zero_()
        x0.xattn.c_kv.bias.zero_()
        x0.xattn.c_kv.weight[n : n + cw] = torch.eye(cw)  # V = context (one context token: attention weight 1)
        x0.xattn.c_proj.weight.copy_(torch.eye(n))
        x0.xattn.c_proj.bias.zero_()
        x0.xattn_gate.fill_(20.0)  # tanh(20) == 1.0 in float32
        # channel 0: the end signal; 1 and 2: +K and -K; 3..: words
        dec.wte.weight.copy_(0.1 * torch.randn(dec.wte.weight.shape, generator=g))  # small: words follow p, ctx
        dec.wte.weight[:, :3] = 0.0
        dec.wte.weight[eos] = 0.0
        dec.wte.weight[eos, 0] = 0.01  # small: as BOS (== EOS in GPT-2) input it barely moves channel 0
        pos = torch.arange(dec.config.n_positions, dtype=torch.float32)
        dec.wpe.weight.copy_(torch.randn(dec.wpe.weight.shape, generator=g))
        dec.wpe.weight[:, 0] = 4.0 * pos
        dec.wpe.weight[:, 1] = K
        dec.wpe.weight[:, 2] = -K
        dec.ln_f.weight.fill_(1.0)
        dec.ln_f.weight[0] = 2e5  # EOS logit = 2e5 * 0.01 * channel0 / std (std ~ 12.6): about +-300 at +-2
        dec.ln_f.weight[1:3] = 0.0
        dec.ln_f.bias.zero_()
    return model


def contexts(ends: list[int | None], width: int, seed: int = 0) -> torch.Tensor:
    """One context token per row: channel 0 puts the row's first EOS at step `end` (None: never), words elsewhere."""
    g = torch.Generator().manual_seed(seed)
    ctx = 1.5 * torch.randn(len(ends), 1, width, generator=g)
    ctx[:, 0, 1:3] = 0.0
    for i, end in enumerate(ends):
        # logits at position p choose step p + 1: channel 0 = 4 * (p - end + 1.5) is +2 at p = end - 1, -2 before
        ctx[i, 0, 0] = -4.0 * ((NEVER if end is None else end) - 1.5)
    return ctx


@pytest.fixture(scope="module", params=[2, 1], ids=["bos-is-eos", "bos-differs"])
def released(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> VideoRecap:
    """The forced-EOS model written as the original's .pt and loaded back with load_official."""
    bos = request.param
    folder = tmp_path_factory.mktemp("official")
    src = write_official(folder / "videorecap_video.pt", forced_eos_model(bos), official_args("video"))
    words = Tokenizer.train_word_level(["c picks up the cup", "c puts the knife on the table"]).save(folder / "t.json")
    model, tok = load_official(src, tokenizer=Tokenizer.from_file(words, bos_id=bos, eos_id=2))
    assert (tok.bos_id, tok.eos_id) == (model.config.tokens.bos_token_id, 2) == (bos, 2)
    return model


def _run(model: VideoRecap, ctx: torch.Tensor, **decode) -> list[list[int]]:
    t = model.config.tokens
    n = decode.pop("max_new_tokens")
    cfg = DecodeConfig(**decode)
    return generate(model.decoder, ctx, bos_id=t.bos_token_id, eos_id=t.eos_token_id, max_new_tokens=n, cfg=cfg)


def _check(model: VideoRecap, ends: list[int | None]) -> tuple[list[list[int]], list[list[int]]]:
    """Our original-lengths ids (cached and recomputed) equal the reference; returns (them, default mode's)."""
    ctx = contexts(ends, model.config.decoder.context_width)
    t = model.config.tokens
    full = _run(model, ctx, max_new_tokens=M - 1)  # the default mode with the same number of decoder steps
    for j, end in enumerate(ends):  # the forcing works: each row's own EOS comes at its chosen step
        assert len(full[j]) == (M - 1 if end is None else end - 1), (j, end, full[j])
    assert all(len(set(row)) >= 3 for row in full if len(row) >= 4), "the captions should hold varied words"
    ref = reference_original(model.decoder, ctx, t.bos_token_id, t.eos_token_id, M)
    for use_cache in (True, False):
        got = _run(model, ctx, lengths="original", max_new_tokens=M, use_cache=use_cache)
        assert got == ref, f"use_cache={use_cache}"
    return ref, full


def test_a_row_that_never_ends_loses_its_last_token(released: VideoRecap) -> None:
    ref, full = _check(released, [None, 4])
    assert len(ref[0]) == M - 2 and ref[0] == full[0][:-1]  # 11 steps, decode_one keeps 10 tokens
    assert ref[1] == full[1] and len(ref[1]) == 3  # ended at step 4 while the other went on: intact


def test_rows_ending_early_while_others_continue_are_intact(released: VideoRecap) -> None:
    ref, full = _check(released, [5, None, 2, 8])
    assert [ref[0], ref[2], ref[3]] == [full[0], full[2], full[3]]
    assert ref[1] == full[1][:-1]


def test_a_row_ending_at_the_last_step_while_another_goes_on_keeps_every_token(released: VideoRecap) -> None:
    ref, full = _check(released, [M - 1, None])
    assert ref[0] == full[0] and len(ref[0]) == M - 2  # its EOS was appended at the last step
    assert ref[1] == full[1][:-1] and len(ref[1]) == M - 2


def test_when_all_rows_end_the_last_to_end_loses_its_last_token(released: VideoRecap) -> None:
    ref, full = _check(released, [3, 6, 9])
    assert ref[0] == full[0] and ref[1] == full[1]  # their EOS was appended: cut there, nothing lost
    # the loop broke before appending step 9, where the last EOS came, so decode_one found no EOS in that row
    assert len(full[2]) == 8 and ref[2] == full[2][:-1]


def test_rows_ending_together_last_all_lose_a_token(released: VideoRecap) -> None:
    ref, full = _check(released, [9, 4, 9])
    assert ref[1] == full[1]
    assert ref[0] == full[0][:-1] and ref[2] == full[2][:-1]
    ref, full = _check(released, [M - 1, M - 1])  # the length limit and the last EOS at once
    assert ref == [row[:-1] for row in full] and len(ref[0]) == M - 3


def test_a_batch_of_one_always_loses_its_last_token(released: VideoRecap) -> None:
    for end in (2, 7):
        ref, full = _check(released, [end])
        assert ref[0] == full[0][:-1] and len(ref[0]) == end - 2


def test_an_immediate_eos_gives_an_empty_caption(released: VideoRecap) -> None:
    ref, _ = _check(released, [1, None, 5])
    assert ref[0] == []
    ref, _ = _check(released, [1])
    assert ref == [[]]


def test_the_model_path_matches_the_reference_on_real_contexts(released: VideoRecap) -> None:
    """generate_ids (aligners in front) with lengths="original" gives the reference's ids for its contexts."""
    g = torch.Generator().manual_seed(5)
    x = {
        "video": torch.randn(4, 10, released.config.encoder.width, generator=g),
        "video_mask": torch.ones(4, 10, dtype=torch.bool),
        "text_ids": torch.randint(3, 300, (4, 9), generator=g),
        "text_mask": torch.ones(4, 9, dtype=torch.bool),
    }
    got = generate_ids(released, "video", **x, decode=DecodeConfig(lengths="original", max_new_tokens=M))
    with torch.no_grad():
        ctx = released.context("video", **x)
    t = released.config.tokens
    assert got == reference_original(released.decoder, ctx, t.bos_token_id, t.eos_token_id, M)


def test_sampling_keeps_the_original_random_stream(released: VideoRecap) -> None:
    """Sampling draws for every row at every step, finished or not, as the original's loop does."""
    t = released.config.tokens
    ctx = contexts([None, 3, 6], released.config.decoder.context_width)
    got = _run(released, ctx, strategy="sample", temperature=0.8, seed=11, lengths="original", max_new_tokens=M)
    # the reference: the original's loop with torch.multinomial on softmax(logits / T), from the same generator
    g = torch.Generator().manual_seed(11)
    ids = torch.full((3, 1), t.bos_token_id, dtype=torch.long)
    reached = torch.zeros(3, dtype=torch.bool)
    with torch.no_grad():
        for _ in range(M - 1):
            probs = (released.decoder(ids, ctx)[:, -1].float() / 0.8).softmax(-1)
            token = torch.multinomial(probs, 1, generator=g)
            reached = reached | (token[:, 0] == t.eos_token_id)
            if bool(reached.all()):
                break
            ids = torch.cat([ids, token], dim=1)
    want = []
    for row in ids.tolist():
        rest = row[1:]
        want.append(rest[: rest.index(t.eos_token_id)] if t.eos_token_id in rest else rest[:-1])
    assert got == want
    assert len(got[0]) == M - 2  # the forced EOS decides the lengths whatever is drawn
    # top_k=1 sampling is the greedy original
    k1 = _run(released, ctx, strategy="sample", top_k=1, seed=1, lengths="original", max_new_tokens=M)
    assert k1 == _run(released, ctx, lengths="original", max_new_tokens=M)
