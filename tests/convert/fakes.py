"""Writers of fake released checkpoints in the original formats (reference-videorecap §8, reference-lavila §1.6).

A fake is built from one of OUR random models by the inverse mapping written out here, independently of the
converters: `module.` prefixes, the original's names, GPT-2's Conv1D [in, out] layout, and every tensor the
original stores that we drop (the Q-Former's BERT embeddings, position_ids, text feed-forward and MLM head, the tied
lm_head, the causal-mask buffers). Converting a fake and loading the result must give back the model exactly.

The geometry is tiny, but every width differs from the others (encoder 128, Q-Formers 64, decoder 128) and heads are
width / 64, so a mix-up of two sizes or a missing transpose shows up as a shape error.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from videorecap.config import AlignerConfig, ArchConfig, DecoderConfig, EncoderConfig, RecapConfig, TokenConfig
from videorecap.model.encoder import VideoEncoder
from videorecap.model.recap import VideoRecap

SMALL_VOCAB = 384
BERT_VOCAB = 40  # rows of the unused BERT word embeddings in the fakes
BERT_POSITIONS = 24

# per level: (video queries, text queries)
QUERIES = {"clip": (16, 0), "segment": (4, 8), "video": (12, 8), "unified": (16, 8)}


def tiny_config(
    level: str, vocab: int = SMALL_VOCAB, queries: tuple[int, int] | None = None, n_positions: int = 128
) -> RecapConfig:
    """A tiny model of `level` whose sizes follow the released ones' rules (heads = width / 64)."""
    enc = EncoderConfig(image_size=16, patch_size=8, num_frames=2, width=128, layers=2, heads=2)
    video_al = AlignerConfig(width=64, layers=3, heads=1, intermediate=96, cross_attention_freq=2, context_width=128)
    text_al = AlignerConfig(width=64, layers=3, heads=1, intermediate=96, cross_attention_freq=2, context_width=128)
    dec = DecoderConfig(vocab_size=vocab, n_positions=n_positions, n_embd=128, n_layer=2, n_head=2, context_width=64)
    tokens = TokenConfig() if vocab == 50257 else TokenConfig(bos_token_id=1, eos_token_id=2, pad_token_id=0)
    nv, nt = queries or QUERIES[level]
    arch = ArchConfig(
        name="fake",
        level=level,  # type: ignore[arg-type]
        encoder=enc,
        video_aligner=video_al,
        text_aligner=text_al,
        decoder=dec,
        tokens=tokens,
        num_video_queries=nv,
        num_text_queries=nt,
    )
    return RecapConfig(arch=arch)


def random_model(cfg: RecapConfig, seed: int = 0) -> VideoRecap:
    """A model with every tensor random (gates and the encoder's zero-initialised time branch included), eval mode."""
    g = torch.Generator().manual_seed(seed)
    model = VideoRecap(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("_gate"):
                p.fill_(0.5 + 0.1 * torch.rand((), generator=g).item())
            else:
                p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model.eval()


def _conv1d(t: torch.Tensor) -> torch.Tensor:
    return t.t().contiguous()  # nn.Linear [out, in] -> GPT-2 Conv1D [in, out]


def official_state_dict(model: VideoRecap, dtype: torch.dtype = torch.float32, seed: int = 1) -> dict[str, Any]:
    """The state dict the original code would save for `model` (keys with `module.`)."""
    g = torch.Generator().manual_seed(seed)
    cfg = model.config
    ours = {k: v.detach().clone() for k, v in model.state_dict().items()}
    taken: set[str] = set()
    out: dict[str, torch.Tensor] = {}

    def take(key: str) -> torch.Tensor:
        taken.add(key)
        return ours[key]

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=g)

    def put(key: str, value: torch.Tensor) -> None:
        out["module." + key] = value.to(dtype) if value.is_floating_point() else value

    for k in list(ours):
        if k.startswith("encoder."):
            put("vision_model." + k.removeprefix("encoder."), take(k))
    put("video_queries", take("video_queries"))
    if cfg.has_text:
        put("text_queries", take("text_queries"))

    for side in ("video", "text") if cfg.has_text else ("video",):
        al_cfg: AlignerConfig = getattr(cfg, f"{side}_aligner")
        a, m = f"{side}_aligner.", f"{side}_mapper.mapper."
        d, inner = al_cfg.width, al_cfg.intermediate
        words = rand(BERT_VOCAB, d)
        put(m + "bert.embeddings.word_embeddings.weight", words)
        put(m + "bert.embeddings.position_embeddings.weight", rand(BERT_POSITIONS, d))
        put(m + "bert.embeddings.position_ids", torch.arange(BERT_POSITIONS)[None])
        for wb in ("weight", "bias"):
            put(m + f"bert.embeddings.LayerNorm.{wb}", take(a + f"ln.{wb}"))
        for i in range(al_cfg.layers):
            src, dst = f"{m}bert.encoder.layer.{i}.", f"{a}layers.{i}."
            pairs = [
                ("attention.self.query", "attn.query"),
                ("attention.self.key", "attn.key"),
                ("attention.self.value", "attn.value"),
                ("attention.output.dense", "attn.out"),
                ("attention.output.LayerNorm", "attn.ln"),
                ("intermediate_query.dense", "fc1"),
                ("output_query.dense", "fc2"),
                ("output_query.LayerNorm", "ffn_ln"),
            ]
            if i % al_cfg.cross_attention_freq == 0:
                pairs += [
                    ("crossattention.self.query", "xattn.query"),
                    ("crossattention.self.key", "xattn.key"),
                    ("crossattention.self.value", "xattn.value"),
                    ("crossattention.output.dense", "xattn.out"),
                    ("crossattention.output.LayerNorm", "xattn.ln"),
                ]
            for theirs, mine in pairs:
                for wb in ("weight", "bias"):
                    put(f"{src}{theirs}.{wb}", take(f"{dst}{mine}.{wb}"))
            # the text feed-forward that the queries never use
            put(src + "intermediate.dense.weight", rand(inner, d))
            put(src + "intermediate.dense.bias", rand(inner))
            put(src + "output.dense.weight", rand(d, inner))
            put(src + "output.dense.bias", rand(d))
            put(src + "output.LayerNorm.weight", rand(d))
            put(src + "output.LayerNorm.bias", rand(d))
        put(m + "cls.predictions.bias", rand(BERT_VOCAB))
        put(m + "cls.predictions.transform.dense.weight", rand(d, d))
        put(m + "cls.predictions.transform.dense.bias", rand(d))
        put(m + "cls.predictions.transform.LayerNorm.weight", rand(d))
        put(m + "cls.predictions.transform.LayerNorm.bias", rand(d))
        put(m + "cls.predictions.decoder.weight", words)  # tied to the word embeddings

    dec: DecoderConfig = cfg.decoder
    t, o = "text_decoder.transformer.", "decoder."
    wte = take(o + "wte.weight")
    put(t + "wte.weight", wte)
    put(t + "wpe.weight", take(o + "wpe.weight"))
    mask = torch.tril(torch.ones(1, 1, dec.n_positions, dec.n_positions, dtype=torch.uint8))
    for i in range(dec.n_layer):
        src, dst = f"{t}h.{i}.", f"{o}h.{i}."
        linear = [("attn.c_attn", "attn.c_attn"), ("attn.c_proj", "attn.c_proj")]
        linear += [("mlp.c_fc", "mlp.c_fc"), ("mlp.c_proj", "mlp.c_proj")]
        norms = [("ln_1", "ln_1"), ("ln_2", "ln_2")]
        put(src + "attn.bias", mask)
        put(src + "attn.masked_bias", torch.tensor(-1e4))
        if i % dec.cross_attn_freq == 0:
            linear += [
                ("crossattention.q_attn", "xattn.c_q"),
                ("crossattention.c_attn", "xattn.c_kv"),
                ("crossattention.c_proj", "xattn.c_proj"),
                ("mlp_crossattention.c_fc", "xmlp.c_fc"),
                ("mlp_crossattention.c_proj", "xmlp.c_proj"),
            ]
            norms += [("ln_cross_attn", "ln_xattn"), ("ln_2_crossattention", "ln_xmlp")]
            put(src + "crossattention.bias", mask)
            put(src + "crossattention.masked_bias", torch.tensor(-1e4))
            put(src + "alpha_cattn", take(dst + "xattn_gate"))
            put(src + "alpha_dense", take(dst + "xmlp_gate"))
        for theirs, mine in linear:
            put(f"{src}{theirs}.weight", _conv1d(take(f"{dst}{mine}.weight")))
            put(f"{src}{theirs}.bias", take(f"{dst}{mine}.bias"))
        for theirs, mine in norms:
            for wb in ("weight", "bias"):
                put(f"{src}{theirs}.{wb}", take(f"{dst}{mine}.{wb}"))
    for wb in ("weight", "bias"):
        put(f"{t}ln_f.{wb}", take(f"{o}ln_f.{wb}"))
    out["module.text_decoder.lm_head.weight"] = out["module." + t + "wte.weight"]  # tied: the same tensor

    left = set(ours) - taken
    assert not left, f"fake is incomplete: {sorted(left)[:5]}"
    return out


def official_args(level: str, **overrides: Any) -> dict[str, Any]:
    """`args` as the original's train.py stores them (the fields the converter reads, plus some it ignores)."""
    per_level = {
        "clip": ("datasets/clips_train.pkl", "pixel", 4, "uniform", 77),
        "segment": ("datasets/segments_train.pkl", "cls", 80, "uniform", 77),
        "video": ("datasets/videos_train.json", "cls", 256, "masking", 120),
        "unified": ("datasets/clips_train.pkl", "pixel", 4, "uniform", 77),
    }[level]
    args = {
        "metadata": per_level[0],
        "video_feature_type": per_level[1],
        "num_video_feat": per_level[2],
        "video_sampling_type": per_level[3],
        "max_gen_tokens": per_level[4],
        "decoder_name": "gpt2",
        "text_mapper_type": None if level == "clip" else "qformer",
        "caption_sample": "greedy",
        "caption_num_return_sequences": 1,
        "lr": 3e-5,
        "output_dir": "/checkpoint/somewhere",
    }
    args.update(overrides)
    return args


def _optimizer_state(n: int) -> dict[str, Any]:
    return {
        "state": {
            i: {"step": torch.tensor(5.0), "exp_avg": torch.zeros(3), "exp_avg_sq": torch.zeros(3)} for i in range(n)
        },
        "param_groups": [
            {"lr": 1e-5, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01, "params": list(range(n))}
        ],
    }


def write_official(
    path: Path,
    model: VideoRecap,
    args: dict[str, Any] | None,
    dtype: torch.dtype = torch.float32,
    state_dict: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Save `model` as the original's `torch.save` dict: epoch, state_dict, optimizer, scaler and args."""
    ckpt: dict[str, Any] = {
        "epoch": 5,
        "state_dict": state_dict if state_dict is not None else official_state_dict(model, dtype),
        "optimizer": _optimizer_state(2),
        "scaler": {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000},
    }
    if args is not None:
        ckpt["args"] = argparse.Namespace(**args)
    torch.save(ckpt, path)
    return path


# ---- LaViLa ---------------------------------------------------------------------------------------------------------
def random_encoder(cfg: EncoderConfig | None = None, seed: int = 0) -> VideoEncoder:
    g = torch.Generator().manual_seed(seed)
    enc = VideoEncoder(cfg or tiny_config("clip").encoder)
    with torch.no_grad():
        for p in enc.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return enc.eval()


def lavila_state_dict(encoder: VideoEncoder, dtype: torch.dtype = torch.float32, seed: int = 2) -> dict[str, Any]:
    """LaViLa's dual-encoder state dict: `module.visual.*` plus a (tiny) CLIP text tower and the projections."""
    g = torch.Generator().manual_seed(seed)
    w, embed, ctx, vocab = 32, 16, 8, 50

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=g)

    sd: dict[str, torch.Tensor] = {"visual." + k: v.detach().clone() for k, v in encoder.state_dict().items()}
    for i in range(2):
        r = f"transformer.resblocks.{i}."
        sd[r + "attn.in_proj_weight"] = rand(3 * w, w)
        sd[r + "attn.in_proj_bias"] = rand(3 * w)
        sd[r + "attn.out_proj.weight"] = rand(w, w)
        sd[r + "attn.out_proj.bias"] = rand(w)
        for ln in ("ln_1", "ln_2"):
            sd[r + f"{ln}.weight"], sd[r + f"{ln}.bias"] = rand(w), rand(w)
        sd[r + "mlp.c_fc.weight"], sd[r + "mlp.c_fc.bias"] = rand(4 * w, w), rand(4 * w)
        sd[r + "mlp.c_proj.weight"], sd[r + "mlp.c_proj.bias"] = rand(w, 4 * w), rand(w)
    sd["token_embedding.weight"] = rand(vocab, w)
    sd["positional_embedding"] = rand(ctx, w)
    sd["ln_final.weight"], sd["ln_final.bias"] = rand(w), rand(w)
    sd["image_projection"] = rand(encoder.config.width, embed)
    sd["text_projection"] = rand(w, embed)
    sd["logit_scale"] = torch.tensor(2.6593)
    return {"module." + k: (v.to(dtype) if v.is_floating_point() else v) for k, v in sd.items()}


def write_lavila(path: Path, encoder: VideoEncoder, dtype: torch.dtype = torch.float32) -> Path:
    """Save as LaViLa's main_pretrain.py does: state_dict plus epoch, criterion, optimizer, scaler, best_acc1, args."""
    torch.save(
        {
            "epoch": 3,
            "state_dict": lavila_state_dict(encoder, dtype),
            "criterion": {},
            "optimizer": _optimizer_state(1),
            "scaler": {"scale": 1024.0},
            "best_acc1": 0.0,
            "args": argparse.Namespace(model="CLIP_OPENAI_TIMESFORMER_BASE", clip_length=4, norm_embed=True),
        },
        path,
    )
    return path
