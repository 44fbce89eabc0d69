"""Batched text generation for the gated GPT-2 decoder: greedy, beam search and sampling, with a KV cache.

Every sequence starts from BOS alone (Video ReCap has no text prompt) and stops at its first EOS. With the cache,
each step feeds one token per sequence; the cross-attention keys/values of the context are computed once; and
finished sequences leave the batch, so a batch costs what its longest caption costs only for the rows still going.

`greedy(..., use_cache=False)` is the original code's loop (the whole prefix is recomputed every step); it exists
as the reference the cached path must match token for token, and for the benchmark.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Literal

import torch

from videorecap.model.decoder import GatedGPT2

if TYPE_CHECKING:
    from videorecap.config import Level
    from videorecap.model.recap import VideoRecap


@dataclass
class DecodeConfig:
    """How to turn the decoder's logits into text."""

    strategy: Literal["greedy", "beam", "sample"] = "greedy"
    max_new_tokens: int | None = None  # None: the model's default for the level (77 clip/segment, 120 video)
    num_beams: int = 5  # beam search
    length_penalty: float = 1.0  # beam search: scores are divided by length ** length_penalty
    temperature: float = 1.0  # sampling
    top_k: int = 0  # sampling: keep the k most likely tokens (0 = all)
    top_p: float = 1.0  # sampling: nucleus, keep the smallest set with this much probability mass
    seed: int | None = None  # sampling: makes it reproducible
    use_cache: bool = True  # False = the original's recompute-everything loop (greedy only)

    def __post_init__(self) -> None:
        if self.strategy not in ("greedy", "beam", "sample"):
            raise ValueError(f"unknown decoding strategy {self.strategy!r}; use greedy, beam or sample")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be at least 1")
        if self.num_beams < 1:
            raise ValueError("num_beams must be at least 1")
        if self.temperature <= 0:
            raise ValueError("temperature must be positive")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p must be in (0, 1]")
        if self.top_k < 0:
            raise ValueError("top_k must be >= 0")

    def to_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def generate(
    decoder: GatedGPT2,
    context: torch.Tensor,
    *,
    bos_id: int,
    eos_id: int,
    max_new_tokens: int,
    cfg: DecodeConfig | None = None,
) -> list[list[int]]:
    """Token ids of one caption per context row (B, Nc, C), without BOS, cut before the first EOS."""
    cfg = cfg or DecodeConfig()
    if cfg.strategy == "beam":
        return beam_search(decoder, context, bos_id, eos_id, max_new_tokens, cfg.num_beams, cfg.length_penalty)
    if cfg.strategy == "sample":
        return _decode(decoder, context, bos_id, eos_id, max_new_tokens, cfg)
    if not cfg.use_cache:
        return greedy_recompute(decoder, context, bos_id, eos_id, max_new_tokens)
    return _decode(decoder, context, bos_id, eos_id, max_new_tokens, cfg)


def _pick(logits: torch.Tensor, cfg: DecodeConfig, gen: torch.Generator | None) -> torch.Tensor:
    """Next token per row from logits (A, V)."""
    if cfg.strategy == "greedy":
        return logits.argmax(-1)
    logits = logits.float() / cfg.temperature
    if cfg.top_k:
        kth = logits.topk(min(cfg.top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if cfg.top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        # drop a token when the mass *before* it already reaches top_p (the top token always stays)
        drop = (cum - sorted_logits.softmax(-1)) >= cfg.top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    probs = logits.softmax(-1)
    return torch.multinomial(probs, 1, generator=gen).squeeze(1)


def _decode(
    decoder: GatedGPT2,
    context: torch.Tensor,
    bos_id: int,
    eos_id: int,
    max_new_tokens: int,
    cfg: DecodeConfig,
) -> list[list[int]]:
    """Greedy or sampling with the KV cache; finished rows are dropped from the batch."""
    B = context.shape[0]
    gen = None
    if cfg.strategy == "sample":
        gen = torch.Generator(device=context.device)
        gen.manual_seed(cfg.seed if cfg.seed is not None else torch.seed())
    cache = decoder.new_cache(context, max_len=1 + max_new_tokens)
    ids = torch.full((B, 1), bos_id, dtype=torch.long, device=context.device)
    logits = decoder(ids, cache=cache)[:, -1]  # (B, V)
    rows = list(range(B))  # original index of each active row
    out: list[list[int]] = [[] for _ in range(B)]
    for step in range(max_new_tokens):
        nxt = _pick(logits, cfg, gen)  # (A,)
        toks = nxt.tolist()
        keep = []
        for i, t in enumerate(toks):
            if t == eos_id:
                continue
            out[rows[i]].append(t)
            keep.append(i)
        if not keep or step == max_new_tokens - 1:
            break
        if len(keep) < len(toks):  # some rows finished: shrink the batch and the cache
            idx = torch.tensor(keep, device=context.device)
            cache.reorder(idx)
            nxt = nxt[idx]
            rows = [rows[i] for i in keep]
        logits = decoder(nxt[:, None], cache=cache)[:, -1]
    return out


def greedy_recompute(
    decoder: GatedGPT2, context: torch.Tensor, bos_id: int, eos_id: int, max_new_tokens: int
) -> list[list[int]]:
    """The original's greedy loop: no cache, the whole prefix and the cross-attention recomputed every step."""
    B = context.shape[0]
    ids = torch.full((B, 1), bos_id, dtype=torch.long, device=context.device)
    done = torch.zeros(B, dtype=torch.bool, device=context.device)
    for _ in range(max_new_tokens):
        nxt = decoder(ids, context)[:, -1].argmax(-1)
        ids = torch.cat([ids, nxt[:, None]], dim=1)
        done |= nxt == eos_id
        if done.all():
            break
    return [_cut(row[1:], eos_id) for row in ids.tolist()]


def _cut(ids: list[int], eos_id: int) -> list[int]:
    return ids[: ids.index(eos_id)] if eos_id in ids else ids


def beam_search(
    decoder: GatedGPT2,
    context: torch.Tensor,
    bos_id: int,
    eos_id: int,
    max_new_tokens: int,
    num_beams: int,
    length_penalty: float = 1.0,
) -> list[list[int]]:
    """Beam search with a KV cache. Hypotheses are ranked by sum of log-probs / (generated length ** penalty)."""
    B, K = context.shape[0], num_beams
    dev = context.device
    ctx = context.repeat_interleave(K, dim=0)  # (B*K, Nc, C)
    cache = decoder.new_cache(ctx, max_len=1 + max_new_tokens)
    tokens = torch.full((B * K, 1), bos_id, dtype=torch.long, device=dev)
    logp = decoder(tokens, cache=cache)[:, -1].float().log_softmax(-1)  # (B*K, V)
    V = logp.shape[-1]
    scores = torch.zeros(B, K, device=dev)
    scores[:, 1:] = float("-inf")  # all beams start identical: expand only the first one at step 0
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(B)]
    done = [False] * B
    seqs: list[list[int]] = [[] for _ in range(B * K)]

    for step in range(max_new_tokens):
        length = step + 1  # generated tokens in a hypothesis ending here (its EOS included)
        cand = (scores.view(-1, 1) + logp).view(B, K * V)
        top_s, top_i = cand.topk(min(2 * K, K * V), dim=-1)  # (B, 2K)
        next_beam, next_tok, next_score = [], [], []
        for b in range(B):
            if done[b]:  # keep the batch shape: pad with a dead beam
                next_beam += [b * K] * K
                next_tok += [eos_id] * K
                next_score += [float("-inf")] * K
                continue
            chosen = 0
            for rank, (s, i) in enumerate(zip(top_s[b].tolist(), top_i[b].tolist(), strict=True)):
                beam, tok = b * K + i // V, i % V
                if tok == eos_id:
                    if rank < K:  # only an EOS among the top K may end a hypothesis
                        finished[b].append((s / length**length_penalty, seqs[beam]))
                    continue
                next_beam.append(beam)
                next_tok.append(tok)
                next_score.append(s)
                chosen += 1
                if chosen == K:
                    break
            # done when K hypotheses are finished and no live beam can still beat the worst of them
            if len(finished[b]) >= K:
                worst = sorted(h[0] for h in finished[b])[-K]
                best_live = max(next_score[-K:]) / length**length_penalty
                done[b] = best_live <= worst
        if all(done) or step == max_new_tokens - 1:
            last_scores = next_score
            break
        idx = torch.tensor(next_beam, device=dev)
        seqs = [seqs[j] + [t] for j, t in zip(next_beam, next_tok, strict=True)]
        scores = torch.tensor(next_score, device=dev).view(B, K)
        cache.reorder(idx)
        logp = decoder(torch.tensor(next_tok, device=dev)[:, None], cache=cache)[:, -1].float().log_softmax(-1)
    else:  # pragma: no cover - loop always breaks
        last_scores = []

    results = []
    for b in range(B):
        hyps = list(finished[b])
        if not done[b]:  # live beams at the length limit count as hypotheses too
            for j in range(K):
                s = last_scores[b * K + j] if last_scores else float("-inf")
                if s != float("-inf"):
                    seq = seqs[next_beam[b * K + j]] + [next_tok[b * K + j]]
                    hyps.append((s / len(seq) ** length_penalty, seq))
        results.append(max(hyps, key=lambda h: h[0])[1] if hyps else [])
    return results


@torch.no_grad()
def generate_ids(
    model: VideoRecap,
    level: Level,
    *,
    video: torch.Tensor | None = None,
    video_mask: torch.Tensor | None = None,
    text_ids: torch.Tensor | None = None,
    text_mask: torch.Tensor | None = None,
    decode: DecodeConfig | None = None,
) -> list[list[int]]:
    """One caption per batch row of a level's inputs, as token ids (no BOS, cut before the first EOS).

    The model's cross-attention context (`VideoRecap.context`) is decoded with `decode`; its `max_new_tokens`
    defaults to the model's limit for the level. Callers build the inputs with `infer.batch.caption_batch`.
    """
    decode = decode or DecodeConfig()
    ctx = model.context(level, video, video_mask, text_ids, text_mask)  # (B, Nv + Nt, D)
    n = decode.max_new_tokens or model.config.max_new_tokens[level]
    t = model.config.tokens
    return generate(model.decoder, ctx, bos_id=t.bos_token_id, eos_id=t.eos_token_id, max_new_tokens=n, cfg=decode)
