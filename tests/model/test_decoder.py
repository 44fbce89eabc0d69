import os

import torch

from videorecap.config import RecapConfig
from videorecap.convert.gpt2 import gpt2_to_decoder
from videorecap.model.decoder import GatedGPT2

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _hf_pair():
    import transformers  # the independent reference (test extra)

    cfg = RecapConfig.from_name("recap-tiny").decoder
    hf_cfg = transformers.GPT2Config(
        vocab_size=cfg.vocab_size,
        n_positions=cfg.n_positions,
        n_embd=cfg.n_embd,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        activation_function="gelu_new",
        layer_norm_epsilon=cfg.eps,
    )
    hf = transformers.GPT2LMHeadModel(hf_cfg).eval()
    with torch.no_grad():  # random, non-trivial weights everywhere (LayerNorms too)
        for p in hf.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    ours = GatedGPT2(cfg).eval()
    sd, dropped = gpt2_to_decoder(hf.state_dict())
    missing, unexpected = ours.load_state_dict(sd, strict=False)
    assert not unexpected
    # only the new gated cross-attention parts are not in GPT-2
    assert missing and all(any(s in k for s in ("xattn", "xmlp")) for k in missing)
    assert all(k == "lm_head.weight" or k.endswith((".attn.bias", ".attn.masked_bias")) for k in dropped)
    return hf, ours, cfg


def test_gates_at_zero_equal_huggingface_gpt2():
    hf, ours, cfg = _hf_pair()
    ids = torch.randint(0, cfg.vocab_size, (3, 17))
    context = torch.randn(3, 5, cfg.context_width)
    with torch.no_grad():
        ref = hf(ids).logits
        got = ours(ids, context)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-4)


def test_gates_change_output_once_opened():
    _, ours, cfg = _hf_pair()
    ids = torch.randint(0, cfg.vocab_size, (2, 6))
    context = torch.randn(2, 5, cfg.context_width)
    with torch.no_grad():
        before = ours(ids, context)
        for blk in ours.h:
            blk.xattn_gate.fill_(0.7)
        after = ours(ids, context)
        other_ctx = ours(ids, torch.randn_like(context))
    assert not torch.allclose(before, after)
    assert not torch.allclose(after, other_ctx)  # the context now matters


def test_cached_forward_equals_full_forward():
    _, ours, cfg = _hf_pair()
    with torch.no_grad():
        for blk in ours.h:
            blk.xattn_gate.fill_(0.5)
            blk.xmlp_gate.fill_(-0.3)
        ids = torch.randint(0, cfg.vocab_size, (2, 9))
        ctx = torch.randn(2, 4, cfg.context_width)
        full = ours(ids, ctx)
        cache = ours.new_cache(ctx, max_len=9)
        parts = [ours(ids[:, :4], cache=cache)]  # a prefix of several tokens, then one at a time
        for t in range(4, 9):
            parts.append(ours(ids[:, t : t + 1], cache=cache))
        torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-5, rtol=1e-5)


def test_official_shapes_and_trainable_set():
    from videorecap.model.recap import VideoRecap

    m = VideoRecap(RecapConfig.from_name("recap-base", level="segment"))
    dec = {k: tuple(v.shape) for k, v in m.decoder.state_dict().items()}
    assert dec["h.0.xattn.c_kv.weight"] == (1536, 768)
    assert dec["h.11.xmlp.c_fc.weight"] == (3072, 768)
    assert dec["h.5.xattn_gate"] == ()
    trainable = sum(p.numel() for p in m.decoder.parameters() if p.requires_grad)
    assert abs(trainable - 85.09e6) < 0.01e6  # reference §1.7: cross-attention 85.05M + ln_1/ln_2
    frozen = {n for n, p in m.decoder.named_parameters() if not p.requires_grad}
    assert {"wte.weight", "wpe.weight", "ln_f.weight", "h.0.attn.c_attn.weight", "h.0.mlp.c_fc.weight"} <= frozen
