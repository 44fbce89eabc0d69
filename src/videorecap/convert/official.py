"""The released Video ReCap checkpoints (clip, segment, video, unified) -> our `VideoRecap`.

The original saves `{'epoch', 'state_dict', 'optimizer', 'scaler', 'args'}` with DDP's `module.` prefix on every
key (reference §8). After stripping it:

    vision_model.*                          -> encoder.*              (LaViLa names, identical)
    video_queries, text_queries             -> the same
    {video,text}_mapper.mapper.bert.*       -> {video,text}_aligner.* (the Q-Former, renamed below)
    text_decoder.transformer.*              -> decoder.*              (convert.gpt2: renames + Conv1D transposes)

Dropped by design, each with its reason in the report: the Q-Formers' BERT word/position embeddings and
`position_ids` (the queries take no input ids), the text feed-forward `intermediate`/`output` of every layer (the
queries use `intermediate_query`/`output_query`), the MLM head `cls.predictions.*`, the tied `lm_head.weight` (after
checking it equals `wte`), and GPT-2's stale causal-mask buffers `attn.bias`/`masked_bias`. Any other key is an error.

Sizes come from the tensors' shapes, heads are width / 64. The level:

- `vision_model.*` and no `text_mapper.*`: clip; both: unified (ReCap-U);
- `text_mapper.*` and no `vision_model.*`: segment or video, decided by, in order, an explicit `level`, the file
  name of `args.metadata` (the training annotations: `segments_*` or `videos_*`), then the video query count
  (32 = segment, 256 = video, reference §1.3), then `args.video_sampling_type` (uniform = segment, masking = video).

From `args`: `num_video_feat` and `video_sampling_type` (the feature count and sampling of a segment or video model;
for ReCap-U they describe the clip loader, so its 512-feature settings of `recap-u-base` are kept) and
`max_gen_tokens` (the decoding length of the model's level; ReCap-U's video level keeps 120).
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import PurePath
from typing import Any

import torch

from videorecap.config import (
    AlignerConfig,
    ArchConfig,
    DecoderConfig,
    EncoderConfig,
    ModelLevel,
    RecapConfig,
    TokenConfig,
)
from videorecap.convert.gpt2 import CONV1D_SUFFIXES, STALE_BUFFER, gpt2_key
from videorecap.convert.lavila import encoder_config_from, heads_for, layer_indices, require
from videorecap.convert.report import ConversionReport, check_against_model, strip_module_prefix
from videorecap.errors import CheckpointError
from videorecap.levelio import SAMPLINGS, LevelIO, check_sampling

logger = logging.getLogger(__name__)

WHAT = "Video ReCap"
GPT2_VOCAB = 50257

# Q-Former names inside bert.encoder.layer.N -> ours inside {video,text}_aligner.layers.N (longest match first)
_QFORMER_RENAMES = (
    ("attention.self.", "attn."),
    ("attention.output.dense.", "attn.out."),
    ("attention.output.LayerNorm.", "attn.ln."),
    ("crossattention.self.", "xattn."),
    ("crossattention.output.dense.", "xattn.out."),
    ("crossattention.output.LayerNorm.", "xattn.ln."),
    ("intermediate_query.dense.", "fc1."),
    ("output_query.dense.", "fc2."),
    ("output_query.LayerNorm.", "ffn_ln."),
)

R_BERT_WORDS = "unused BERT word/position embeddings of the Q-Former (the queries take no input ids)"
R_POSITION_IDS = "the Q-Former's position_ids buffer (derivable, unused)"
R_TEXT_FFN = "the Q-Former's text feed-forward (intermediate/output); the queries use intermediate_query/output_query"
R_MLM = "the Q-Former's masked-language-model head cls.predictions (never used)"
R_LM_HEAD = "lm_head.weight, tied to (and equal to) transformer.wte.weight"
R_STALE = "GPT-2's stale causal-mask buffer (attn.bias / masked_bias), derivable"

_LEVEL_QUERIES = {32: "segment", 256: "video"}  # video query counts of the released segment / video models


def official_key(key: str) -> tuple[str | None, str | None]:
    """Our key for an original key (without `module.`), or (None, reason) for a key dropped by design.

    (None, None) means no rule knows the key.
    """
    if key.startswith("vision_model."):
        return "encoder." + key.removeprefix("vision_model."), None
    if key in ("video_queries", "text_queries"):
        return key, None
    m = re.match(r"(video|text)_mapper\.mapper\.(.+)$", key)
    if m:
        ours, rest = f"{m.group(1)}_aligner.", m.group(2)
        if rest.startswith("cls.predictions."):
            return None, R_MLM
        if rest.startswith("bert.embeddings."):
            sub = rest.removeprefix("bert.embeddings.")
            if sub.startswith("LayerNorm."):
                return ours + "ln." + sub.removeprefix("LayerNorm."), None
            if sub.startswith(("word_embeddings.", "position_embeddings.")):
                return None, R_BERT_WORDS
            if sub == "position_ids":
                return None, R_POSITION_IDS
            return None, None
        m = re.match(r"bert\.encoder\.layer\.(\d+)\.(.+)$", rest)
        if m:
            n, sub = m.groups()
            for old, new in _QFORMER_RENAMES:
                if sub.startswith(old):
                    return f"{ours}layers.{n}.{new}{sub.removeprefix(old)}", None
            if sub.startswith(("intermediate.dense.", "output.dense.", "output.LayerNorm.")):
                return None, R_TEXT_FFN
        return None, None
    if key.startswith("text_decoder."):
        rest = key.removeprefix("text_decoder.")
        if rest == "lm_head.weight":
            return None, R_LM_HEAD
        if not rest.startswith("transformer."):
            return None, None
        if STALE_BUFFER.search(rest):
            return None, R_STALE
        ours = gpt2_key(rest)
        return ("decoder." + ours if ours else None), None
    return None, None


# ---- config inference ---------------------------------------------------------------------------------------------
def _cross_freq(layers: int, cross: list[int], source: str, where: str) -> int:
    """The frequency f with cross-attention exactly in layers 0, f, 2f, ... (what our modules build)."""
    if not cross or cross[0] != 0:
        raise CheckpointError(f"{source}: {where} has cross-attention in layers {cross}; expected it in layer 0 first")
    freq = cross[1] - cross[0] if len(cross) > 1 else max(layers, 1)
    if cross != list(range(0, layers, freq)):
        raise CheckpointError(
            f"{source}: {where} has cross-attention in layers {cross}, which is not every n-th layer from 0"
        )
    return freq


def _aligner_config(sd: Mapping[str, torch.Tensor], prefix: str, source: str) -> tuple[AlignerConfig, str]:
    """Sizes of one Q-Former from its tensors (keys `{prefix}bert.*`). Also returns a one-line description."""
    p = prefix + "bert."
    width = require(sd, p + "embeddings.LayerNorm.weight", source, 1).shape[0]
    keys = list(sd)
    layers = layer_indices(keys, re.escape(p) + r"encoder\.layer\.(\d+)\.", source, prefix + "bert.encoder")
    if not layers:
        raise CheckpointError(f"{source}: no {p}encoder.layer.* tensors")
    cross = sorted(
        {int(m.group(1)) for k in keys if (m := re.match(re.escape(p) + r"encoder\.layer\.(\d+)\.crossattention\.", k))}
    )
    freq = _cross_freq(len(layers), cross, source, prefix.rstrip("."))
    inter = require(sd, p + "encoder.layer.0.intermediate_query.dense.weight", source, 2).shape[0]
    context = require(sd, p + "encoder.layer.0.crossattention.self.key.weight", source, 2).shape[1]
    cfg = AlignerConfig(
        width=width,
        layers=len(layers),
        heads=heads_for(width, p + "embeddings.LayerNorm.weight", source),
        intermediate=inter,
        cross_attention_freq=freq,
        context_width=context,
    )
    desc = f"{cfg.layers} layers, width {width}, FFN {inter}, cross-attention in layers {cross} to {context}-d context"
    return cfg, desc


def _decoder_config(sd: Mapping[str, torch.Tensor], source: str) -> DecoderConfig:
    p = "text_decoder.transformer."
    vocab, n_embd = require(sd, p + "wte.weight", source, 2).shape
    n_pos = require(sd, p + "wpe.weight", source, 2).shape[0]
    keys = list(sd)
    layers = layer_indices(keys, re.escape(p) + r"h\.(\d+)\.", source, "text_decoder")
    if not layers:
        raise CheckpointError(f"{source}: no {p}h.* tensors")
    cross = sorted({int(m.group(1)) for k in keys if (m := re.match(re.escape(p) + r"h\.(\d+)\.crossattention\.", k))})
    freq = _cross_freq(len(layers), cross, source, "text_decoder")
    # Conv1D weights are [in, out]: c_attn maps the context (in) to K and V (2 x n_embd)
    context = require(sd, p + "h.0.crossattention.c_attn.weight", source, 2).shape[0]
    xmlp = require(sd, p + "h.0.mlp_crossattention.c_fc.weight", source, 2).shape[1]
    if xmlp % n_embd:
        raise CheckpointError(f"{source}: {p}h.0.mlp_crossattention.c_fc.weight is {xmlp} wide, not k x {n_embd}")
    gated = p + "h.0.alpha_cattn" in sd
    return DecoderConfig(
        vocab_size=vocab,
        n_positions=n_pos,
        n_embd=n_embd,
        n_layer=len(layers),
        n_head=heads_for(n_embd, p + "wte.weight", source),
        cross_attn_freq=freq,
        context_width=context,
        gated=gated,
        xattn_mlp_ratio=xmlp // n_embd,
    )


def _arg(args: Mapping[str, Any], name: str, kind: type) -> Any:
    v = args.get(name)
    return v if isinstance(v, kind) and not isinstance(v, bool) else None


def _feature_level(
    args: Mapping[str, Any], num_video_queries: int, report: ConversionReport, source: str
) -> ModelLevel:
    """Segment or video, for a model with a text aligner and no encoder (the rule in the module docstring)."""
    meta = _arg(args, "metadata", str)
    if meta:
        name = PurePath(meta).name.lower()
        if "segment" in name:
            report.notes.append(f"level segment: from args.metadata {meta!r}")
            return "segment"
        if "video" in name:
            report.notes.append(f"level video: from args.metadata {meta!r}")
            return "video"
    if num_video_queries in _LEVEL_QUERIES:
        level = _LEVEL_QUERIES[num_video_queries]
        report.notes.append(f"level {level}: from the {num_video_queries} video queries (32 segment, 256 video)")
        return level  # type: ignore[return-value]
    sampling = _arg(args, "video_sampling_type", str)
    if sampling in SAMPLINGS:
        level = "segment" if sampling == "uniform" else "video"
        report.notes.append(f"level {level}: from args.video_sampling_type {sampling!r}")
        return level  # type: ignore[return-value]
    raise CheckpointError(
        f"{source}: cannot tell a segment-level from a video-level model ({num_video_queries} video queries and no "
        "args.metadata or args.video_sampling_type); say which with --level"
    )


def official_to_recap(
    state_dict: Mapping[str, torch.Tensor],
    args: Mapping[str, Any] | None = None,
    *,
    level: ModelLevel | None = None,
    tokens: TokenConfig | None = None,
    source: str = "state dict",
) -> tuple[RecapConfig, dict[str, torch.Tensor], ConversionReport]:
    """Convert a released Video ReCap state dict.

    Args:
        state_dict: the checkpoint's `state_dict` (keys with or without `module.`; fp16 or fp32 tensors).
        args: the checkpoint's `args` as a dict (`vars(ckpt['args'])`); missing settings take the level's defaults.
        level: force the level instead of inferring it (must agree with which parts exist).
        tokens: special token ids; default GPT-2's (BOS = EOS = 50256, pad 0), which needs GPT-2's vocabulary.
        source: the file name, for error messages.

    Returns:
        The model config, its state dict (fp32, keys as in `VideoRecap.state_dict()`), and the report.

    Raises:
        CheckpointError: not a Video ReCap state dict, an unknown key, a tensor the model needs that is missing, a
            shape that does not fit the sizes inferred from the other tensors, or sizes our modules cannot build.
    """
    from videorecap.model.recap import VideoRecap

    args = dict(args or {})
    names = strip_module_prefix(state_dict, source)
    sd = {k: state_dict[orig] for k, orig in names.items()}
    _check_official(sd, source)
    report = ConversionReport(source_format="videorecap-official")
    out, origin, unknown = _map_keys(sd, names, report)
    _check_tied_head(sd, names, source)

    # ---- sizes from shapes
    has_vision = any(k.startswith("vision_model.") for k in sd)
    has_text = any(k.startswith("text_mapper.") for k in sd) or "text_queries" in sd
    video_al, video_desc = _aligner_config(sd, "video_mapper.mapper.", source)
    text_al, text_desc = copy.deepcopy(video_al), ""
    if has_text:
        text_al, text_desc = _aligner_config(sd, "text_mapper.mapper.", source)
    dec = _decoder_config(sd, source)
    nv = require(sd, "video_queries", source, 2).shape[0]
    nt = require(sd, "text_queries", source, 2).shape[0] if has_text else 0
    inferred = _level_of(has_vision, has_text, level, args, nv, report, source)
    if has_vision:
        enc = encoder_config_from(sd, "vision_model.", source)
    else:
        # segment/video models read precomputed CLS features as wide as the video aligner's context
        enc = EncoderConfig(width=video_al.context_width, heads=max(1, video_al.context_width // 64))
    _check_parts_fit(enc, video_al, text_al, dec, has_vision, has_text, source)
    tokens = _special_tokens(tokens, dec, source)

    preset = RecapConfig.from_name("recap-u-base" if inferred == "unified" else "recap-base", level=inferred)
    arch = ArchConfig(
        name=f"videorecap-{inferred}",
        level=inferred,
        encoder=enc,
        video_aligner=video_al,
        text_aligner=text_al,
        decoder=dec,
        tokens=tokens,
        num_video_queries=nv,
        num_text_queries=nt,
    )
    io = _fit_lengths(_io_from_args(preset.io, inferred, args, report), dec, report)
    cfg = RecapConfig(arch=arch, io=io)

    check_against_model(lambda: VideoRecap(cfg), out, origin, source, WHAT, unknown)
    report.used = {origin[k]: k for k in out}
    if has_vision:
        report.notes.append(f"encoder: {enc.layers} layers, width {enc.width}, {enc.num_frames} frames")
    report.notes.append(f"video_mapper: {nv} queries, {video_desc}")
    if has_text:
        report.notes.append(f"text_mapper: {nt} queries, {text_desc}")
    report.notes.append(
        f"decoder: {dec.n_layer} layers, width {dec.n_embd}, vocab {dec.vocab_size}, {dec.n_positions} positions"
    )
    logger.info("converted a %s-level Video ReCap: %d used, %d dropped", inferred, len(out), len(report.dropped))
    return cfg, out, report


def _check_official(sd: Mapping[str, torch.Tensor], source: str) -> None:
    """Refuse what is not a Video ReCap state dict (naming LaViLa's converter when it is a LaViLa one)."""
    if "text_decoder.transformer.wte.weight" not in sd or not any(k.startswith("video_mapper.") for k in sd):
        hint = ""
        if any(k.startswith("visual.") for k in sd):
            hint = "; it looks like a LaViLa dual-encoder checkpoint: use `videorecap convert lavila`"
        raise CheckpointError(
            f"{source}: not an original Video ReCap checkpoint (no text_decoder.transformer.wte.weight or "
            f"video_mapper.* tensors){hint}"
        )


def _map_keys(
    sd: Mapping[str, torch.Tensor], names: Mapping[str, str], report: ConversionReport
) -> tuple[dict[str, torch.Tensor], dict[str, str], list[str]]:
    """Map every key to ours, or drop it with a reason (in `report`), or collect it as unknown.

    Returns (our state dict in fp32, our key -> the file's key, the file's unknown keys).
    """
    out: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    unknown: list[str] = []
    for k, orig in names.items():
        ours, reason = official_key(k)
        if ours is None:
            if reason is None:
                unknown.append(orig)
            else:
                report.dropped[orig] = reason
            continue
        v = sd[k]
        if k.startswith("text_decoder.") and k.endswith(CONV1D_SUFFIXES) and v.dim() == 2:
            v = v.t()  # Conv1D [in, out] -> nn.Linear [out, in]
        out[ours] = (v.float() if v.is_floating_point() else v).contiguous()
        origin[ours] = orig
    return out, origin, unknown


def _check_tied_head(sd: Mapping[str, torch.Tensor], names: Mapping[str, str], source: str) -> None:
    """Our decoder ties lm_head to wte: a file whose lm_head differs cannot be represented."""
    lm_head, wte = sd.get("text_decoder.lm_head.weight"), sd["text_decoder.transformer.wte.weight"]
    if lm_head is not None and (
        lm_head.shape != wte.shape or not (lm_head.is_meta or wte.is_meta or torch.equal(lm_head, wte))
    ):  # (meta tensors carry no values: a shape-only dry run checks only the shape)
        raise CheckpointError(
            f"{source}: {names['text_decoder.lm_head.weight']!r} differs from the token embedding wte; this model "
            "ties them, so it cannot represent this checkpoint"
        )


def _level_of(
    has_vision: bool,
    has_text: bool,
    level: ModelLevel | None,
    args: Mapping[str, Any],
    nv: int,
    report: ConversionReport,
    source: str,
) -> ModelLevel:
    """The model's level: the given one (which must fit the parts present), or inferred from the parts and args."""
    if not (has_vision or has_text):
        raise CheckpointError(
            f"{source}: neither vision_model.* nor text_mapper.* tensors: a Video ReCap model has at least one"
        )
    if level is not None:
        # which parts each level has: (video encoder, text aligner)
        parts_of = {"clip": (True, False), "segment": (False, True), "video": (False, True), "unified": (True, True)}
        if parts_of[level] != (has_vision, has_text):
            parts = f"{'a' if has_vision else 'no'} video encoder and {'a' if has_text else 'no'} text aligner"
            raise CheckpointError(f"{source}: holds a model with {parts}, which cannot be a {level}-level one")
        report.notes.append(f"level {level}: given")
        return level
    if has_vision:
        return "unified" if has_text else "clip"
    return _feature_level(args, nv, report, source)


def _check_parts_fit(
    enc: EncoderConfig,
    video_al: AlignerConfig,
    text_al: AlignerConfig,
    dec: DecoderConfig,
    has_vision: bool,
    has_text: bool,
    source: str,
) -> None:
    """The parts must fit together (our modules assume it; a mismatch would only fail at run time)."""
    checks = [(video_al.width, dec.context_width, "video_mapper width", "the decoder's cross-attention context")]
    if has_vision:
        checks.append((video_al.context_width, enc.width, "video_mapper context", "the encoder width"))
    if has_text:
        checks.append((text_al.width, video_al.width, "text_mapper width", "the video_mapper width"))
        checks.append((text_al.context_width, dec.n_embd, "text_mapper context", "the decoder's embedding width"))
    for a, b, what_a, what_b in checks:
        if a != b:
            raise CheckpointError(f"{source}: {what_a} ({a}) differs from {what_b} ({b})")


def _special_tokens(tokens: TokenConfig | None, dec: DecoderConfig, source: str) -> TokenConfig:
    """The given special token ids (or GPT-2's, which need GPT-2's vocabulary), checked against the vocabulary."""
    if tokens is None:
        if dec.vocab_size != GPT2_VOCAB:
            raise CheckpointError(
                f"{source}: the decoder has {dec.vocab_size} tokens, not GPT-2's {GPT2_VOCAB}; give its tokenizer "
                "(--tokenizer)"
            )
        tokens = TokenConfig()
    for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
        if not 0 <= getattr(tokens, name) < dec.vocab_size:
            raise CheckpointError(
                f"{source}: {name}={getattr(tokens, name)} is outside the decoder's {dec.vocab_size}-token vocabulary"
            )
    return tokens


def _io_from_args(io: LevelIO, level: ModelLevel, args: Mapping[str, Any], report: ConversionReport) -> LevelIO:
    """The level I/O: the preset's, with the feature count, sampling and decoding length of the stored args (see
    the module docstring). `args.num_video_feat` goes straight into the level I/O, which checkpoints store."""
    if not args:
        report.notes.append("no args in the checkpoint: feature counts, sampling and lengths are the level defaults")
        return io
    n = _arg(args, "num_video_feat", int)
    sampling = _arg(args, "video_sampling_type", str)
    if level in ("segment", "video"):
        if sampling == "random":
            sampling = "uniform"  # the original's evaluation maps its broken 'random' to 'uniform'
        try:
            kind = check_sampling(sampling) if sampling is not None else None
        except ValueError:
            kind = None
            report.notes.append(
                f"args.video_sampling_type {sampling!r} is not supported; using {io.features(level).sampling}"
            )
        io = io.replace_features(
            num_features={level: n} if n is not None and n > 0 else None, sampling={level: kind} if kind else None
        )
        f = io.features(level)
        report.notes.append(
            f"{level} features: {f.num_features}, {f.sampling} sampling "
            f"(args.num_video_feat={n}, args.video_sampling_type={args.get('video_sampling_type')!r})"
        )
    elif level == "unified":
        report.notes.append(
            f"ReCap-U: segment/video levels read {io.segment.num_features}/{io.video.num_features} features "
            "(train_unified.py's loaders); args.num_video_feat is the clip loader's frame count"
        )
    gen = _arg(args, "max_gen_tokens", int)
    if gen is not None and gen > 0:
        targets = ["clip", "segment"] if level == "unified" else [level]
        io = replace(io, max_new_tokens={**io.max_new_tokens, **dict.fromkeys(targets, gen)})
        report.notes.append(f"max_new_tokens {io.max_new_tokens} (args.max_gen_tokens={gen} for {'/'.join(targets)})")
    return io


def _fit_lengths(io: LevelIO, dec: DecoderConfig, report: ConversionReport) -> LevelIO:
    # BOS + the new tokens must fit the decoder's positions
    limit = dec.n_positions - 1
    lengths = dict(io.max_new_tokens)
    for lv, n in io.max_new_tokens.items():
        if n > limit:
            lengths[lv] = limit
            report.notes.append(f"max_new_tokens[{lv}] {n} cut to {limit}: the decoder has {limit + 1} positions")
    return replace(io, max_new_tokens=lengths)
