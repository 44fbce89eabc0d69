"""The text decoder: GPT-2 with Flamingo-style tanh-gated cross-attention.

References:
- Radford et al., "Language Models are Unsupervised Multitask Learners" (GPT-2); layout and names follow
  karpathy/nanoGPT and the OpenAI/Hugging Face weights (`wte`, `wpe`, `h`, `ln_f`, `c_attn`, `c_proj`, `c_fc`);
- Alayrac et al., "Flamingo", NeurIPS 2022: a gated cross-attention + dense block inserted *before* each chosen
  self-attention block, with tanh gates initialised at 0 so the untrained model is exactly the language model;
- LaViLa's narrator and Video ReCap use this with cross-attention in every layer and a squared-ReLU dense block.

Linear weights are stored [out, in] (nn.Linear). The released checkpoints use GPT-2's Conv1D [in, out]; the
converters transpose.

Decoding uses a KV cache: self-attention keys/values grow by one token per step, and the cross-attention
keys/values are computed once per sequence from the (fixed) context.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from videorecap.config import DecoderConfig


def gelu_new(x: torch.Tensor) -> torch.Tensor:
    # GPT-2's tanh approximation of GELU
    return F.gelu(x, approximate="tanh")


def attend_one(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout_p: float) -> torch.Tensor:
    """Attention of queries q (B, H, T, hd) over k, v without a mask: `F.scaled_dot_product_attention`, except for
    one bf16/fp16 query row per sequence on a CPU (a decoding step), where PyTorch's fused CPU kernel measured 3-6x
    slower than fp32 (bench_precision.py); there two matmuls with the softmax in fp32 are faster than either.
    fp32 always takes the fused kernel, so fp32 results are those of the original arithmetic."""
    if q.shape[-2] != 1 or q.dtype == torch.float32 or q.device.type != "cpu" or dropout_p > 0:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
    scores = torch.matmul(q, k.transpose(-1, -2)).float() * (1.0 / math.sqrt(q.shape[-1]))  # (B, H, 1, N)
    return torch.matmul(scores.softmax(-1).to(v.dtype), v)


@dataclass
class LayerCache:
    """Keys/values of one layer. Self-attention: preallocated (B, H, max_len, hd), filled up to `DecoderCache.len`.
    Cross-attention: (B, H, Nc, hd), computed once."""

    k: torch.Tensor
    v: torch.Tensor
    xk: torch.Tensor | None
    xv: torch.Tensor | None


class DecoderCache:
    """The KV cache of every layer while decoding, and how many tokens it holds."""

    def __init__(self, layers: list[LayerCache]) -> None:
        self.layers = layers
        self.len = 0  # tokens already in the self-attention cache

    def reorder(self, index: torch.Tensor) -> None:
        """Keep batch rows `index` (beam search); cross-attention K/V are reordered too (beams share contexts)."""
        for c in self.layers:
            c.k, c.v = c.k.index_select(0, index), c.v.index_select(0, index)
            if c.xk is not None:
                c.xk, c.xv = c.xk.index_select(0, index), c.xv.index_select(0, index)


class SelfAttention(nn.Module):
    """Causal multi-head self-attention (nanoGPT's CausalSelfAttention), with an optional KV cache."""

    def __init__(self, cfg: DecoderConfig) -> None:
        super().__init__()
        self.n_head = cfg.n_head
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.dropout = cfg.dropout

    def forward(self, x: torch.Tensor, cache: LayerCache | None, pos: int) -> torch.Tensor:
        B, T, C = x.shape  # T new tokens, at positions [pos, pos + T)
        q, k, v = self.c_attn(x).split(C, dim=2)  # each (B, T, C)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B, H, T, hd)
        if cache is not None:
            # write this step's keys/values at [pos, pos+T) and attend over everything so far
            cache.k[:, :, pos : pos + T] = k
            cache.v[:, :, pos : pos + T] = v
            k, v = cache.k[:, :, : pos + T], cache.v[:, :, : pos + T]  # (B, H, pos+T, hd)
        p = self.dropout if self.training else 0.0
        if T == 1:
            y = attend_one(q, k, v, p)  # one new token sees the whole prefix
        elif pos == 0:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p)
        else:  # several new tokens after a prefix: causal mask offset by pos
            mask = torch.ones(T, pos + T, dtype=torch.bool, device=x.device).tril(diagonal=pos)  # (T, pos+T)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        y = y.transpose(1, 2).reshape(B, T, C)  # (B, H, T, hd) -> heads side by side (B, T, C)
        return F.dropout(self.c_proj(y), self.dropout, self.training)


class CrossAttention(nn.Module):
    """Text queries attend to the aligner outputs; no mask (every context position is real)."""

    def __init__(self, cfg: DecoderConfig) -> None:
        super().__init__()
        self.n_head = cfg.n_head
        self.c_q = nn.Linear(cfg.n_embd, cfg.n_embd)  # the original's q_attn
        self.c_kv = nn.Linear(cfg.context_width, 2 * cfg.n_embd)  # the original's c_attn (K then V)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.dropout = cfg.dropout

    def kv(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of the context (B, Nc, context_width), each (B, H, Nc, hd): computed once per sequence,
        since the context does not change while a caption is decoded."""
        B, N, _ = context.shape
        k, v = self.c_kv(context).split(self.c_q.out_features, dim=2)
        hd = self.c_q.out_features // self.n_head
        return (t.view(B, N, self.n_head, hd).transpose(1, 2) for t in (k, v))  # type: ignore[return-value]

    def forward(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape  # x: (B, T, C) text; k, v: (B, H, Nc, hd) from `kv`
        q = self.c_q(x).view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, H, T, hd)
        p = self.dropout if self.training else 0.0
        # no causal mask: every text position may look at the whole context
        y = attend_one(q, k, v, p).transpose(1, 2).reshape(B, T, C)  # (B, T, C)
        return F.dropout(self.c_proj(y), self.dropout, self.training)


class MLP(nn.Module):
    """Feed-forward (B, T, n_in) -> (B, T, n_hidden) -> (B, T, n_in): GELU in GPT-2's blocks, squared ReLU in
    the gated cross-attention blocks (as Flamingo/LaViLa)."""

    def __init__(self, n_in: int, n_hidden: int, act: str, dropout: float) -> None:
        super().__init__()
        self.c_fc = nn.Linear(n_in, n_hidden)
        self.c_proj = nn.Linear(n_hidden, n_in)
        self.act = act
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.c_fc(x)
        h = gelu_new(h) if self.act == "gelu_new" else F.relu(h).square()  # squared ReLU in the gated block
        return F.dropout(self.c_proj(h), self.dropout, self.training)


class Block(nn.Module):
    """One GPT-2 block (pre-LN self-attention + MLP), preceded, when `cross`, by the gated cross-attention block."""

    def __init__(self, cfg: DecoderConfig, cross: bool) -> None:
        super().__init__()
        n = cfg.n_embd
        self.cross = cross
        if cross:
            self.ln_xattn = nn.LayerNorm(n, eps=cfg.eps)
            self.xattn = CrossAttention(cfg)
            self.ln_xmlp = nn.LayerNorm(n, eps=cfg.eps)
            self.xmlp = MLP(n, cfg.xattn_mlp_ratio * n, "sqrelu", cfg.dropout)
            # tanh gates, zero at init: the block starts as the identity. Ungated (gated=False) adds plainly.
            self.xattn_gate = nn.Parameter(torch.zeros(())) if cfg.gated else None
            self.xmlp_gate = nn.Parameter(torch.zeros(())) if cfg.gated else None
        self.ln_1 = nn.LayerNorm(n, eps=cfg.eps)
        self.attn = SelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(n, eps=cfg.eps)
        self.mlp = MLP(n, 4 * n, "gelu_new", cfg.dropout)

    def forward(
        self,
        x: torch.Tensor,
        xkv: tuple[torch.Tensor, torch.Tensor] | None,
        cache: LayerCache | None,
        pos: int,
    ) -> torch.Tensor:
        # x: (B, T, n_embd) throughout; each sub-block adds to the residual stream
        if self.cross:
            assert xkv is not None
            a = self.xattn(self.ln_xattn(x), *xkv)  # (B, T, n_embd)
            # tanh(gate) in [-1, 1] scales the new path; at 0 the pretrained language model is untouched
            x = x + (a if self.xattn_gate is None else self.xattn_gate.tanh() * a)
            m = self.xmlp(self.ln_xmlp(x))
            x = x + (m if self.xmlp_gate is None else self.xmlp_gate.tanh() * m)
        x = x + self.attn(self.ln_1(x), cache, pos)
        return x + self.mlp(self.ln_2(x))


class GatedGPT2(nn.Module):
    """GPT-2 conditioned on a context (B, Nc, context_width) through gated cross-attention."""

    def __init__(self, cfg: DecoderConfig) -> None:
        super().__init__()
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.n_positions, cfg.n_embd)
        self.h = nn.ModuleList([Block(cfg, cross=(i % cfg.cross_attn_freq == 0)) for i in range(cfg.n_layer)])
        self.ln_f = nn.LayerNorm(cfg.n_embd, eps=cfg.eps)
        # lm_head is tied to wte (logits = h @ wte^T), so it is not a separate tensor. `lm_linear` computes it:
        # F.linear, or the kernel runtime.prepare_model picks for a precision (oneDNN's for "fp32-onednn")
        self.lm_linear: Callable[..., torch.Tensor] = F.linear
        self.apply(self._init)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):  # GPT-2's scaled init of residual projections
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
            if isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def embed(self, ids: torch.Tensor, pos: int = 0) -> torch.Tensor:
        """Token + position embeddings, (B, T) -> (B, T, n_embd). Also the higher levels' text encoder."""
        positions = torch.arange(pos, pos + ids.shape[1], device=ids.device)
        return self.wte(ids) + self.wpe(positions)

    def new_cache(self, context: torch.Tensor, max_len: int) -> DecoderCache:
        """Preallocate self-attention K/V for `max_len` tokens and compute the cross-attention K/V once."""
        B = context.shape[0]
        H, hd = self.config.n_head, self.config.n_embd // self.config.n_head
        layers = []
        for blk in self.h:
            k = context.new_zeros(B, H, max_len, hd)
            xk, xv = blk.xattn.kv(context) if blk.cross else (None, None)
            layers.append(LayerCache(k, torch.zeros_like(k), xk, xv))
        return DecoderCache(layers)

    def forward(
        self,
        ids: torch.Tensor,
        context: torch.Tensor | None = None,
        cache: DecoderCache | None = None,
    ) -> torch.Tensor:
        """Logits (B, T, vocab) for tokens `ids` (B, T).

        Without a cache, `ids` is the whole sequence (training, or the original recompute-everything decoding).
        With a cache, `ids` continues the cached prefix and the cache is advanced; `context` is then not needed.
        """
        pos = cache.len if cache is not None else 0
        if pos + ids.shape[1] > self.config.n_positions:
            raise ValueError(f"sequence longer than the decoder's {self.config.n_positions} positions")
        x = F.dropout(self.embed(ids, pos), self.config.dropout, self.training)  # (B, T, n_embd)
        for i, blk in enumerate(self.h):
            if cache is not None:
                lc = cache.layers[i]
                xkv = (lc.xk, lc.xv) if blk.cross else None
                x = blk(x, xkv, lc, pos)  # type: ignore[arg-type]
            else:  # no cache: a whole sequence per call, so each layer computes the context's K/V once here
                xkv = blk.xattn.kv(context) if blk.cross else None  # type: ignore[arg-type]
                x = blk(x, xkv, None, 0)
        if cache is not None:
            cache.len += ids.shape[1]
        x = self.ln_f(x)  # (B, T, n_embd)
        return self.lm_linear(x, self.wte.weight)  # tied lm_head: (B, T, vocab)
