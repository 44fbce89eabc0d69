"""The video-language aligner: a Q-Former (Li et al., "BLIP-2", ICML 2023), as Video ReCap uses it.

A fixed set of learned queries runs through BERT-style post-LayerNorm layers: self-attention among the queries,
cross-attention to a context (video features, or the embedded text of the previous level) in every
`cross_attention_freq`-th layer, and a feed-forward network. The output (B, Nq, D) is the decoder's cross-attention
context.

Only the parts that ever touch the queries exist here. The original builds a full BERT (word and position
embeddings, a text feed-forward, an MLM head) that the queries never use; the converter reports those tensors as
unused rather than carrying 80M dead parameters per aligner.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from videorecap.config import AlignerConfig


class BertAttention(nn.Module):
    """Multi-head attention with BERT's separate query/key/value projections and a post-LN residual."""

    def __init__(self, dim: int, heads: int, context_dim: int, dropout: float, eps: float) -> None:
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(context_dim, dim)
        self.value = nn.Linear(context_dim, dim)
        self.out = nn.Linear(dim, dim)
        self.ln = nn.LayerNorm(dim, eps=eps)

    def forward(self, x: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        B, Nq, D = x.shape  # x: (B, Nq, D) queries; context: (B, Nc, context_dim), Nc = Nq for self-attention
        H = self.heads
        q = self.query(x).view(B, Nq, H, D // H).transpose(1, 2)  # (B, H, Nq, hd)
        k = self.key(context).view(B, context.shape[1], H, D // H).transpose(1, 2)  # (B, H, Nc, hd)
        v = self.value(context).view(B, context.shape[1], H, D // H).transpose(1, 2)  # (B, H, Nc, hd)
        # mask: (B, Nc) True = attend; (B, 1, 1, Nc) broadcasts over heads and queries
        attn_mask = None if mask is None else mask[:, None, None, :].bool()
        p = self.dropout if self.training else 0.0  # attention-probability dropout, as BERT's attention dropout
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=p)  # (B, H, Nq, hd)
        y = y.transpose(1, 2).reshape(B, Nq, D)  # heads side by side again: (B, Nq, D)
        y = F.dropout(self.out(y), self.dropout, self.training)
        return self.ln(x + y)  # post-LN (normalise after the residual sum), as BERT; GPT-2 normalises before


class QFormerLayer(nn.Module):
    def __init__(self, cfg: AlignerConfig, cross: bool) -> None:
        super().__init__()
        d = cfg.width
        self.attn = BertAttention(d, cfg.heads, d, cfg.dropout, cfg.eps)
        # cross-attention keys/values come from the context (encoder width, or the decoder's embedding width)
        self.xattn = BertAttention(d, cfg.heads, cfg.context_width, cfg.dropout, cfg.eps) if cross else None
        # the queries' own feed-forward (the original's intermediate_query / output_query)
        self.fc1 = nn.Linear(d, cfg.intermediate)
        self.fc2 = nn.Linear(cfg.intermediate, d)
        self.ffn_ln = nn.LayerNorm(d, eps=cfg.eps)
        self.dropout = cfg.dropout

    def forward(self, x: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        # x: (B, Nq, D) queries, context: (B, Nc, C), mask: (B, Nc) or None
        x = self.attn(x, x)  # queries attend to each other, unmasked (every query is real)
        if self.xattn is not None:  # only every cross_attention_freq-th layer looks at the context
            x = self.xattn(x, context, mask)  # (B, Nq, D)
        y = F.dropout(self.fc2(F.gelu(self.fc1(x))), self.dropout, self.training)  # exact (erf) GELU, as BERT
        return self.ffn_ln(x + y)


class QueryAligner(nn.Module):
    """Q-Former over given queries: (B, Nq, D) queries x (B, Nc, C) context -> (B, Nq, D)."""

    def __init__(self, cfg: AlignerConfig) -> None:
        super().__init__()
        self.config = cfg
        self.ln = nn.LayerNorm(cfg.width, eps=cfg.eps)  # the original's embeddings.LayerNorm, applied to the queries
        self.layers = nn.ModuleList(
            [QFormerLayer(cfg, cross=(i % cfg.cross_attention_freq == 0)) for i in range(cfg.layers)]
        )
        self.apply(self._init)
        # a larger init of the cross-attention output lets the context through the post-LN residual at the start
        # of training (see AlignerConfig.cross_init_std); the original's 0.02 changes nothing here
        if cfg.cross_init_std != 0.02:  # 0.02 is what _init gave every Linear already
            for layer in self.layers:
                if layer.xattn is not None:
                    nn.init.normal_(layer.xattn.out.weight, std=cfg.cross_init_std)

    @staticmethod
    def _init(m: nn.Module) -> None:
        # BERT's init: normal(0, 0.02) weights, zero biases, LayerNorm 1/0
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, queries: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        # queries: (B, Nq, D), the learned queries expanded over the batch; context: (B, Nc, C); mask: (B, Nc)
        x = F.dropout(self.ln(queries), self.config.dropout, self.training)  # (B, Nq, D)
        if mask is not None and not bool(mask.any(dim=1).all()):
            # a row with nothing to attend to would give NaNs; let it attend to its (zero) padding instead
            mask = mask.clone()
            mask[~mask.any(dim=1)] = True
        for layer in self.layers:
            x = layer(x, context, mask)  # (B, Nq, D)
        return x
