import math

import pytest
import torch
from _helpers import sharp_decoder

from videorecap.infer.decode import DecodeConfig, beam_search, generate, greedy_recompute
from videorecap.model.decoder import GatedGPT2


def _decoder(seed: int = 0, eos_bias: float = 0.0) -> tuple[GatedGPT2, torch.Tensor]:
    return sharp_decoder(seed, eos_bias, rows=6)


# (seed, eos bias) pairs whose captions end at different steps, some at the length limit
VARIED = [(0, 1.0), (0, 1.5), (2, 1.0)]


@pytest.mark.parametrize("seed,bias", VARIED)
def test_cached_greedy_equals_recompute_loop(seed, bias):
    dec, ctx = _decoder(seed, eos_bias=bias)
    cached = generate(dec, ctx, bos_id=1, eos_id=2, max_new_tokens=20)
    ref = greedy_recompute(dec, ctx, bos_id=1, eos_id=2, max_new_tokens=20)
    assert cached == ref
    lengths = {len(c) for c in cached}
    assert len(lengths) > 1, "the test should cover rows finishing at different steps"


def test_no_eos_in_output_and_length_limit():
    dec, ctx = _decoder(3)
    out = generate(dec, ctx, bos_id=1, eos_id=2, max_new_tokens=7)
    assert all(len(o) <= 7 and 2 not in o for o in out)


@pytest.mark.parametrize("cfg", [DecodeConfig(), DecodeConfig(strategy="beam", num_beams=2),
                                 DecodeConfig(lengths="original")])  # fmt: skip
def test_a_limit_beyond_the_decoders_positions_is_refused_before_decoding(cfg, monkeypatch):
    dec, ctx = _decoder(3)
    n = dec.config.n_positions
    most = n if cfg.lengths == "original" else n - 1  # BOS takes a position, counted in the original's length
    assert len(generate(dec, ctx[:1], bos_id=1, eos_id=2, max_new_tokens=most, cfg=cfg)[0]) <= most
    caches = []
    monkeypatch.setattr(dec, "new_cache", lambda *a, **k: caches.append(k) or pytest.fail("cache allocated"))
    for limit in (most + 1, 10**6):  # 10**6 took gigabytes for the cache, then decoded until the last position
        with pytest.raises(
            ValueError, match=f"max_new_tokens={limit} is more than .* {n} positions allow: at most {most}"
        ):
            generate(dec, ctx, bos_id=1, eos_id=2, max_new_tokens=limit, cfg=cfg)
    assert not caches


@pytest.mark.parametrize("seed,bias", VARIED)
def test_beam_search_with_one_beam_is_greedy(seed, bias):
    dec, ctx = _decoder(seed, eos_bias=bias)
    greedy = generate(dec, ctx, bos_id=1, eos_id=2, max_new_tokens=15)
    beam1 = beam_search(dec, ctx, 1, 2, 15, num_beams=1)
    assert beam1 == greedy


def _seq_logprob(dec, ctx_row, seq, bos=1, eos=2, max_new=12):
    ids = torch.tensor([[bos] + seq + ([eos] if len(seq) < max_new else [])])
    with torch.no_grad():
        logp = dec(ids[:, :-1], ctx_row[None]).log_softmax(-1)[0]
    return logp.gather(1, ids[0, 1:, None]).sum().item(), ids.shape[1] - 1


def test_beam_search_finds_at_least_as_likely_captions_as_greedy():
    dec, ctx = _decoder(4, eos_bias=1.0)
    greedy = generate(dec, ctx, bos_id=1, eos_id=2, max_new_tokens=12)
    beams = beam_search(dec, ctx, 1, 2, 12, num_beams=4, length_penalty=0.0)  # penalty 0: pure log-prob
    better = 0
    for i in range(ctx.shape[0]):
        g, _ = _seq_logprob(dec, ctx[i], greedy[i])
        b, _ = _seq_logprob(dec, ctx[i], beams[i])
        assert b >= g - 1e-4
        better += b > g + 1e-4
    assert better >= 1  # on this random model, beam search does find something better somewhere


def test_sampling_is_seeded_and_respects_top_k():
    dec, ctx = _decoder(5)
    cfg = DecodeConfig(strategy="sample", seed=123, temperature=1.5)
    a = generate(dec, ctx, bos_id=1, eos_id=2, max_new_tokens=10, cfg=cfg)
    b = generate(dec, ctx, bos_id=1, eos_id=2, max_new_tokens=10, cfg=cfg)
    c = generate(dec, ctx, bos_id=1, eos_id=2, max_new_tokens=10, cfg=DecodeConfig(strategy="sample", seed=7))
    assert a == b and a != c
    # top_k=1 is greedy whatever the temperature
    k1 = generate(dec, ctx, bos_id=1, eos_id=2, max_new_tokens=10, cfg=DecodeConfig(strategy="sample", top_k=1))
    assert k1 == generate(dec, ctx, bos_id=1, eos_id=2, max_new_tokens=10)
    # a tiny nucleus is greedy too (only the top token survives)
    p0 = generate(dec, ctx, bos_id=1, eos_id=2, max_new_tokens=10, cfg=DecodeConfig(strategy="sample", top_p=1e-6))
    assert p0 == k1


def test_decode_config_validation():
    with pytest.raises(ValueError):
        DecodeConfig(strategy="nucleus")
    with pytest.raises(ValueError):
        DecodeConfig(top_p=0)
    with pytest.raises(ValueError):
        DecodeConfig(num_beams=0)


@pytest.mark.parametrize(
    "bad",
    [
        {"temperature": float("nan")},
        {"temperature": float("inf")},
        {"temperature": 0.0},
        {"length_penalty": float("nan")},
        {"length_penalty": float("-inf")},
        {"top_p": float("nan")},
        {"seed": -1},
        {"seed": 2**32},
        {"seed": 99999999999999999999},
    ],
)
def test_decode_config_rejects_non_finite_numbers_and_bad_seeds(bad):
    # a NaN passes `temperature <= 0`: it decoded a whole video, then failed writing results.json
    (name,) = bad
    with pytest.raises(ValueError, match=name):
        DecodeConfig(strategy="sample", **bad)
    DecodeConfig(strategy="sample", seed=2**32 - 1, length_penalty=-1.0)  # the limits themselves are fine


# ---- return_scores ----------------------------------------------------------------------------------------------
def _teacher_forced(dec, ctx, ids, scores, bos=1, eos=2):
    """Check each caption's scores against one forward pass over BOS + its ids (+ its EOS when it has one)."""
    for i, (row, sc) in enumerate(zip(ids, scores, strict=True)):
        assert len(sc.logprobs) == len(row)
        seq = [bos, *row] + ([eos] if sc.eos_logprob is not None else [])
        if len(seq) == 1:
            continue
        with torch.no_grad():
            logits = dec(torch.tensor([seq[:-1]]), ctx[i : i + 1])[0].float()
        target = torch.tensor(seq[1:])
        want = logits.log_softmax(-1).gather(1, target[:, None])[:, 0].tolist()
        got = sc.logprobs + ([sc.eos_logprob] if sc.eos_logprob is not None else [])
        assert got == pytest.approx(want, abs=1e-5)
        # the original's perplexity: exp of the mean cross-entropy over the caption's tokens with its EOS
        assert sc.perplexity == pytest.approx(torch.nn.functional.cross_entropy(logits, target).exp().item(), rel=1e-5)


@pytest.mark.parametrize(
    "cfg",
    [
        DecodeConfig(),
        DecodeConfig(use_cache=False),
        DecodeConfig(strategy="beam", num_beams=3),
        DecodeConfig(strategy="beam", num_beams=3, length_penalty=0.0),
        DecodeConfig(strategy="sample", seed=3, temperature=0.7, top_k=20),
        DecodeConfig(lengths="original"),
        DecodeConfig(lengths="original", use_cache=False),
    ],
    ids=["greedy", "greedy-recompute", "beam", "beam-no-penalty", "sample", "original", "original-recompute"],
)
@pytest.mark.parametrize("seed,bias", VARIED)
def test_scores_are_the_log_probs_of_a_teacher_forced_pass(cfg, seed, bias):
    dec, ctx = _decoder(seed, eos_bias=bias)
    n = 12
    ids, scores = generate(dec, ctx, bos_id=1, eos_id=2, max_new_tokens=n, cfg=cfg, return_scores=True)
    assert ids == generate(dec, ctx, bos_id=1, eos_id=2, max_new_tokens=n, cfg=cfg)  # same ids either way
    _teacher_forced(dec, ctx, ids, scores)
    if cfg.lengths == "full" and cfg.strategy != "beam":
        # the EOS is scored exactly when the caption ended before the limit
        assert [s.eos_logprob is None for s in scores] == [len(r) == n for r in ids]
        if (seed, bias) == VARIED[0]:  # both kinds of rows occur here
            assert any(s.eos_logprob is not None for s in scores) and any(s.eos_logprob is None for s in scores)


def test_confidence_and_perplexity():
    from videorecap.infer.decode import TokenScores

    s = TokenScores([-1.0, -2.0], -3.0)
    assert s.confidence == pytest.approx(-2.0)
    assert s.perplexity == pytest.approx(math.exp(2.0))
    cut = TokenScores([-0.5, -1.5])  # no EOS: the mean over the tokens only
    assert cut.confidence == pytest.approx(-1.0)
    assert math.isnan(TokenScores([]).confidence)
