"""Batched text generation for the gated GPT-2 decoder: greedy, beam search and sampling, with a KV cache.

Every sequence starts from BOS alone (Video ReCap has no text prompt) and stops at its first EOS. With the cache,
each step feeds one token per sequence; the cross-attention keys/values of the context are computed once; and
finished sequences leave the batch, so a batch costs what its longest caption costs only for the rows still going.

`greedy_recompute` is the original code's loop (the whole prefix is recomputed every step); it exists as the
reference the cached path must match token for token, and for the benchmark.

Caption lengths (`DecodeConfig.lengths`). The default, "full", keeps every token the decoder chose, up to
`max_new_tokens` of them. "original" reproduces the released code's ids exactly: its `generate(max_text_length=M)`
makes at most M - 1 decoder steps, stops *before* appending the step at which every row has produced EOS, and its
`decode_one` drops the last token of a row whose ids hold no EOS. So a row that never ends keeps M - 2 tokens and
the row(s) ending last lose their last real word (a batch of one always does). See docs/released-weights.md.

`between_steps(fn)` runs `fn` between the decoding steps of every generation in its block: a caller that must not
wait for a long decode (the live session captions a clip window that arrives while a segment is being described)
does that work there, and the decode then goes on where it was (its state is local, so the ids are unchanged).

`return_scores=True` also gives each caption's per-token log-probabilities (`TokenScores`): its confidence (mean
log-prob) and perplexity, as the original computes it, exp of the mean negative log-likelihood over the caption's
tokens and its EOS.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, overload

import torch

from videorecap.infer.decoding_config import DecodeConfig  # re-exported: `infer.decode.DecodeConfig` still works
from videorecap.levelio import resolve_max_new_tokens
from videorecap.model.decoder import GatedGPT2

if TYPE_CHECKING:
    from videorecap.config import Level
    from videorecap.model.recap import VideoRecap


@dataclass(frozen=True)
class TokenScores:
    """Log-probabilities (natural log, of the model's own logits) of one generated caption.

    Attributes:
        logprobs: one per returned token id.
        eos_logprob: the EOS that ends the caption; None when the caption stops without one (cut at the length
            limit, or, with lengths="original", a row whose EOS the original never appended).
    """

    logprobs: list[float]
    eos_logprob: float | None = None

    def _all(self) -> list[float]:
        return self.logprobs + ([] if self.eos_logprob is None else [self.eos_logprob])

    @property
    def confidence(self) -> float:
        """Mean log-prob over the caption's tokens and its EOS (<= 0; closer to 0 is surer). NaN when empty."""
        lp = self._all()
        return sum(lp) / len(lp) if lp else math.nan

    @property
    def perplexity(self) -> float:
        """exp(mean negative log-likelihood) over the tokens and the EOS: the original's perplexity, which its
        `generate(target=...)` computes over the caption tokens with EOS, padding left out."""
        return math.exp(-self.confidence)


Scored = tuple[list[list[int]], list[TokenScores]]

_BETWEEN_STEPS: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar(
    "videorecap_between_steps", default=None
)


@contextlib.contextmanager
def between_steps(fn: Callable[[], None]) -> Iterator[None]:
    """Call `fn` before each decoding step of every `generate` in this block (this thread only). `fn` runs with
    the hook unset, so the decodes it starts itself are not interrupted (no recursion)."""
    token = _BETWEEN_STEPS.set(fn)
    try:
        yield
    finally:
        _BETWEEN_STEPS.reset(token)


def _step_point() -> None:
    fn = _BETWEEN_STEPS.get()
    if fn is not None:
        token = _BETWEEN_STEPS.set(None)
        try:
            fn()
        finally:
            _BETWEEN_STEPS.reset(token)


@overload
def generate(
    decoder: GatedGPT2,
    context: torch.Tensor,
    *,
    bos_id: int,
    eos_id: int,
    max_new_tokens: int,
    cfg: DecodeConfig | None = ...,
    return_scores: Literal[False] = ...,
) -> list[list[int]]: ...


@overload
def generate(
    decoder: GatedGPT2,
    context: torch.Tensor,
    *,
    bos_id: int,
    eos_id: int,
    max_new_tokens: int,
    cfg: DecodeConfig | None = ...,
    return_scores: Literal[True],
) -> Scored: ...


@torch.no_grad()
def generate(
    decoder: GatedGPT2,
    context: torch.Tensor,
    *,
    bos_id: int,
    eos_id: int,
    max_new_tokens: int,
    cfg: DecodeConfig | None = None,
    return_scores: bool = False,
) -> list[list[int]] | Scored:
    """Token ids of one caption per context row (B, Nc, C), without BOS, cut before the first EOS.

    `max_new_tokens` is the most tokens a caption gets; with `cfg.lengths == "original"` it is the original's
    `max_text_length` M instead (BOS counted: at most M - 1 decoder steps, M - 2 tokens for a row that never ends).
    With `return_scores`, returns `(ids, scores)`, one `TokenScores` per row: the log-softmax of the logits each
    token was chosen from (for sampling, the model's logits before temperature, top-k and top-p).
    """
    cfg = cfg or DecodeConfig()
    # BOS and the caption's tokens take one position each: a limit the decoder cannot reach is refused before any
    # memory is taken (the KV cache is sized by it), not after decoding up to the last position
    longest = max_new_tokens if cfg.lengths == "original" else 1 + max_new_tokens
    if longest > decoder.config.n_positions:
        most = decoder.config.n_positions - (0 if cfg.lengths == "original" else 1)
        raise ValueError(
            f"max_new_tokens={max_new_tokens} is more than this decoder's {decoder.config.n_positions} positions "
            f"allow: at most {most}"
        )
    if cfg.lengths == "original":
        out = original_lengths(decoder, context, bos_id, eos_id, max_new_tokens, cfg)
    elif cfg.strategy == "beam":
        out = beam_search(
            decoder, context, bos_id, eos_id, max_new_tokens, cfg.num_beams, cfg.length_penalty, return_scores=True
        )
    elif cfg.strategy == "greedy" and not cfg.use_cache:
        out = greedy_recompute(decoder, context, bos_id, eos_id, max_new_tokens, return_scores=True)
    else:
        out = _decode(decoder, context, bos_id, eos_id, max_new_tokens, cfg)
    return out if return_scores else out[0]


def _token_logprobs(logits: torch.Tensor, tokens: torch.Tensor) -> list[float]:
    """log-softmax of `logits` (A, V) at `tokens` (A,), in float32 whatever the model's dtype."""
    return logits.float().log_softmax(-1).gather(1, tokens[:, None]).squeeze(1).tolist()


def _generator(cfg: DecodeConfig, device: torch.device) -> torch.Generator | None:
    if cfg.strategy != "sample":
        return None
    gen = torch.Generator(device=device)
    gen.manual_seed(cfg.seed if cfg.seed is not None else torch.seed())
    return gen


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
) -> Scored:
    """Greedy or sampling with the KV cache; finished rows are dropped from the batch."""
    B = context.shape[0]
    gen = _generator(cfg, context.device)
    cache = decoder.new_cache(context, max_len=1 + max_new_tokens)
    ids = torch.full((B, 1), bos_id, dtype=torch.long, device=context.device)
    logits = decoder(ids, cache=cache)[:, -1]  # (B, V)
    rows = list(range(B))  # original index of each active row
    out: list[list[int]] = [[] for _ in range(B)]
    lps: list[list[float]] = [[] for _ in range(B)]
    eos_lp: list[float | None] = [None] * B
    for step in range(max_new_tokens):
        _step_point()
        nxt = _pick(logits, cfg, gen)  # (A,)
        toks = nxt.tolist()
        tok_lp = _token_logprobs(logits, nxt)
        keep = []
        for i, t in enumerate(toks):
            if t == eos_id:
                eos_lp[rows[i]] = tok_lp[i]
                continue
            out[rows[i]].append(t)
            lps[rows[i]].append(tok_lp[i])
            keep.append(i)
        if not keep or step == max_new_tokens - 1:
            break
        if len(keep) < len(toks):  # some rows finished: shrink the batch and the cache
            idx = torch.tensor(keep, device=context.device)
            cache.reorder(idx)
            nxt = nxt[idx]
            rows = [rows[i] for i in keep]
        logits = decoder(nxt[:, None], cache=cache)[:, -1]
    return out, [TokenScores(lp, e) for lp, e in zip(lps, eos_lp, strict=True)]


@overload
def greedy_recompute(
    decoder: GatedGPT2,
    context: torch.Tensor,
    bos_id: int,
    eos_id: int,
    max_new_tokens: int,
    return_scores: Literal[False] = ...,
) -> list[list[int]]: ...


@overload
def greedy_recompute(
    decoder: GatedGPT2,
    context: torch.Tensor,
    bos_id: int,
    eos_id: int,
    max_new_tokens: int,
    return_scores: Literal[True],
) -> Scored: ...


def greedy_recompute(
    decoder: GatedGPT2,
    context: torch.Tensor,
    bos_id: int,
    eos_id: int,
    max_new_tokens: int,
    return_scores: bool = False,
) -> list[list[int]] | Scored:
    """The original's greedy loop: no cache, the whole prefix and the cross-attention recomputed every step."""
    B = context.shape[0]
    ids = torch.full((B, 1), bos_id, dtype=torch.long, device=context.device)
    done = torch.zeros(B, dtype=torch.bool, device=context.device)
    lps: list[list[float]] = [[] for _ in range(B)]
    for _ in range(max_new_tokens):
        _step_point()
        logits = decoder(ids, context)[:, -1]
        nxt = logits.argmax(-1)
        for row, lp in zip(lps, _token_logprobs(logits, nxt), strict=True):
            row.append(lp)
        ids = torch.cat([ids, nxt[:, None]], dim=1)
        done |= nxt == eos_id
        if done.all():
            break
    out = [_cut(row[1:], lp, eos_id) for row, lp in zip(ids.tolist(), lps, strict=True)]
    ids_out = [o[0] for o in out]
    return (ids_out, [o[1] for o in out]) if return_scores else ids_out


def _cut(ids: list[int], lps: list[float], eos_id: int) -> tuple[list[int], TokenScores]:
    """The ids before the first EOS, with their scores and the EOS's."""
    if eos_id in ids:
        n = ids.index(eos_id)
        return ids[:n], TokenScores(lps[:n], lps[n])
    return ids, TokenScores(lps)


@torch.no_grad()
def original_lengths(
    decoder: GatedGPT2,
    context: torch.Tensor,
    bos_id: int,
    eos_id: int,
    max_text_length: int,
    cfg: DecodeConfig,
) -> Scored:
    """Greedy or sampling with the released code's caption lengths (`DecodeConfig(lengths="original")`).

    Like the original, every row stays in the batch until the end (a finished row keeps being decoded, and
    sampling draws for it too, so a seeded run consumes the random stream as the original does), there are at most
    `max_text_length - 1` steps, and the step at which the last rows produce EOS is not appended. Then, as
    `decode_one` does, a row is cut at its first EOS, and a row with no EOS in its ids loses its last token.
    With `cfg.use_cache` the steps use the KV cache; without it the whole prefix is recomputed, as the original.
    """
    B, dev = context.shape[0], context.device
    gen = _generator(cfg, dev)
    ids = torch.full((B, 1), bos_id, dtype=torch.long, device=dev)
    cache = decoder.new_cache(context, max_len=max_text_length) if cfg.use_cache else None
    logits = decoder(ids, cache=cache)[:, -1] if cache is not None else decoder(ids, context)[:, -1]
    ended = torch.zeros(B, dtype=torch.bool, device=dev)
    steps: list[torch.Tensor] = []  # the appended tokens, (B,) each
    step_lps: list[list[float]] = []
    for step in range(max_text_length - 1):
        _step_point()
        nxt = _pick(logits, cfg, gen)
        ended |= nxt == eos_id
        if ended.all():
            break  # before appending: the EOS of the rows ending now never reaches the ids
        steps.append(nxt)
        step_lps.append(_token_logprobs(logits, nxt))
        if step == max_text_length - 2:
            break
        if cache is not None:
            logits = decoder(nxt[:, None], cache=cache)[:, -1]
        else:
            ids = torch.cat([ids, nxt[:, None]], dim=1)
            logits = decoder(ids, context)[:, -1]
    gen_ids = torch.stack(steps, 1).tolist() if steps else [[] for _ in range(B)]
    out_ids, out_scores = [], []
    for b, row in enumerate(gen_ids):
        lps = [s[b] for s in step_lps]
        if eos_id in row:
            caption, scores = _cut(row, lps, eos_id)
        else:  # decode_one: with no EOS after BOS, its end index is the last position, which it leaves out
            caption, scores = row[:-1], TokenScores(lps[:-1])
        out_ids.append(caption)
        out_scores.append(scores)
    return out_ids, out_scores


# a hypothesis: (ranking score, tokens, their log-probs, the EOS's log-prob or None when cut at the length limit)
Hypothesis = tuple[float, list[int], list[float], float | None]


@overload
def beam_search(
    decoder: GatedGPT2,
    context: torch.Tensor,
    bos_id: int,
    eos_id: int,
    max_new_tokens: int,
    num_beams: int,
    length_penalty: float = ...,
    return_scores: Literal[False] = ...,
) -> list[list[int]]: ...


@overload
def beam_search(
    decoder: GatedGPT2,
    context: torch.Tensor,
    bos_id: int,
    eos_id: int,
    max_new_tokens: int,
    num_beams: int,
    length_penalty: float = ...,
    *,
    return_scores: Literal[True],
) -> Scored: ...


def beam_search(
    decoder: GatedGPT2,
    context: torch.Tensor,
    bos_id: int,
    eos_id: int,
    max_new_tokens: int,
    num_beams: int,
    length_penalty: float = 1.0,
    return_scores: bool = False,
) -> list[list[int]] | Scored:
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
    finished: list[list[Hypothesis]] = [[] for _ in range(B)]  # per row, the hypotheses that ended with EOS
    done = [False] * B
    seqs: list[list[int]] = [[] for _ in range(B * K)]
    seq_lps: list[list[float]] = [[] for _ in range(B * K)]

    for step in range(max_new_tokens):
        _step_point()
        length = step + 1  # generated tokens in a hypothesis ending here (its EOS included)
        cand = (scores.view(-1, 1) + logp).view(B, K * V)
        top_s, top_i = cand.topk(min(2 * K, K * V), dim=-1)  # (B, 2K)
        # candidate i of row b is token i % V after beam b*K + i // V, so its own log-prob is logp.view(B, K*V)[b, i]
        top_lp = logp.view(B, K * V).gather(1, top_i).tolist()
        next_beam, next_tok, next_score, next_lp = [], [], [], []
        for b in range(B):
            if done[b]:  # keep the batch shape: pad with a dead beam
                next_beam += [b * K] * K
                next_tok += [eos_id] * K
                next_score += [float("-inf")] * K
                next_lp += [0.0] * K
                continue
            live = _advance_row(
                b, K, V, eos_id, length**length_penalty, top_s[b].tolist(), top_i[b].tolist(), top_lp[b], seqs,
                seq_lps, finished[b],
            )  # fmt: skip
            for acc, vals in zip((next_beam, next_tok, next_score, next_lp), live, strict=True):
                acc += vals
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
        seq_lps = [seq_lps[j] + [lp] for j, lp in zip(next_beam, next_lp, strict=True)]
        scores = torch.tensor(next_score, device=dev).view(B, K)
        cache.reorder(idx)
        logp = decoder(torch.tensor(next_tok, device=dev)[:, None], cache=cache)[:, -1].float().log_softmax(-1)
    else:  # pragma: no cover - loop always breaks
        last_scores = []

    ids: list[list[int]] = []
    out_scores: list[TokenScores] = []
    for b in range(B):
        hyps: list[Hypothesis] = list(finished[b])
        if not done[b]:  # live beams at the length limit count as hypotheses too
            for j in range(b * K, (b + 1) * K):
                s = last_scores[j] if last_scores else float("-inf")
                if s != float("-inf"):
                    seq = seqs[next_beam[j]] + [next_tok[j]]
                    hyps.append((s / len(seq) ** length_penalty, seq, seq_lps[next_beam[j]] + [next_lp[j]], None))
        best = max(hyps, key=lambda h: h[0]) if hyps else (0.0, [], [], None)
        ids.append(best[1])
        out_scores.append(TokenScores(best[2], best[3]))
    return (ids, out_scores) if return_scores else ids


def _advance_row(
    b: int,
    K: int,
    V: int,
    eos_id: int,
    norm: float,
    top_s: list[float],
    top_i: list[int],
    top_lp: list[float],
    seqs: list[list[int]],
    seq_lps: list[list[float]],
    finished: list[Hypothesis],
) -> tuple[list[int], list[int], list[float], list[float]]:
    """One step of batch row `b`: its top 2K candidates (score, index into (K beams x V tokens), own log-prob) in
    rank order give up to K live continuations (beam, token, score, log-prob); an EOS among the top K ends a
    hypothesis instead, appended to `finished` with its score divided by `norm` (length ** penalty).

    2K candidates guarantee K live ones: at most K of them (one per beam) are EOS.
    """
    beams: list[int] = []
    toks: list[int] = []
    scores: list[float] = []
    lps: list[float] = []
    for rank, (s, i, lp) in enumerate(zip(top_s, top_i, top_lp, strict=True)):
        beam, tok = b * K + i // V, i % V
        if tok == eos_id:
            if rank < K:  # only an EOS among the top K may end a hypothesis
                finished.append((s / norm, seqs[beam], seq_lps[beam], lp))
            continue
        beams.append(beam)
        toks.append(tok)
        scores.append(s)
        lps.append(lp)
        if len(beams) == K:
            break
    return beams, toks, scores, lps


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
    return_scores: bool = False,
) -> list[list[int]] | Scored:
    """One caption per batch row of a level's inputs, as token ids (no BOS, cut before the first EOS).

    The model's cross-attention context (`VideoRecap.context`) is decoded with `decode`; its `max_new_tokens`
    defaults to the model's limit for the level. Callers build the inputs with `infer.batch.caption_batch`.
    With `return_scores=True` the result is `(ids, scores)`: a `TokenScores` per row (per-token log-probabilities,
    `confidence`, `perplexity`), as `generate` gives them.
    """
    decode = decode or DecodeConfig()
    if video is not None:
        if video.dtype == torch.float64:  # numpy's default: the model computes in float32 (or under autocast)
            video = video.float()
        if video.is_floating_point() and not bool(torch.isfinite(video).all()):  # (they gave empty captions)
            raise ValueError("video: holds NaN or infinite values")
        width = model.config.encoder.width
        if video.dim() == 3 and video.shape[-1] != width:  # (B, N, C) features
            raise ValueError(f"video: features of width {video.shape[-1]}; this model reads width {width}")
    # captions are made without dropout, whatever mode the model was left in (a new VideoRecap is in training mode:
    # its captions would change from call to call)
    was_training = model.training
    if was_training:
        model.eval()
    try:
        ctx = model.context(level, video, video_mask, text_ids, text_mask)  # (B, Nv + Nt, D)
        n = resolve_max_new_tokens(level, model.config.io, decode.max_new_tokens)
        t = model.config.tokens
        return generate(  # type: ignore[call-overload]
            model.decoder,
            ctx,
            bos_id=t.bos_token_id,
            eos_id=t.eos_token_id,
            max_new_tokens=n,
            cfg=decode,
            return_scores=return_scores,
        )
    finally:
        if was_training:
            model.train()
