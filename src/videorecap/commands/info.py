"""Show what a model is: its level(s), sizes, parameter counts (trainable / frozen per part) and tokenizer.

MODEL is a checkpoint folder or a preset name (the list below). A preset is built on PyTorch's "meta" device, so
even recap-base is described instantly and without weights; a checkpoint folder is described from its config.json,
tokenizer.json and meta.json (the weights file is not read). Parameter counts follow what a training run freezes:
for the official sizes what the original trains (the encoder is frozen, only the Q-Formers' cross-attention
trains, and in GPT-2 only the gated cross-attention blocks and each block's ln_1/ln_2 train); for a model named
after a preset, what that preset's recipes train (recap-synth, trained from scratch, trains everything).

presets:
  recap-base     Video ReCap as released (TimeSformer-B, GPT-2 with gated cross-attention)
  recap-u-base   ReCap-U: one model for all three levels
  recap-tiny     the same architecture shrunk, for tests
  recap-synth    the small model of the synthetic world (the bundled model's architecture)

examples:
  videorecap info recap-base --level segment
  videorecap info runs/synth/clip --json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from videorecap.config import RecapConfig, list_presets, preset_training
from videorecap.errors import InputError

HELP = "show a model's levels, sizes, parameter counts and tokenizer (checkpoint folder or preset)"

_LEVEL_CHOICES = ("clip", "segment", "video", "unified")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model", metavar="MODEL", help="checkpoint folder, or a preset name (e.g. recap-base, recap-tiny, recap-synth)"
    )
    parser.add_argument(
        "--level", choices=_LEVEL_CHOICES, default=None, help="level of a preset (default: the preset's own)"
    )
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON instead of text")


def run(args: argparse.Namespace) -> int:
    info = model_info(args.model, level=args.level)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        sys.stdout.write(format_info(info))
    return 0


# ---- gathering --------------------------------------------------------------------------------------------------
def model_info(model: str, *, level: str | None = None) -> dict[str, Any]:
    """Everything `videorecap info` shows, as a JSON-able dict.

    Raises:
        InputError: MODEL is neither an existing path nor a preset, or --level is given with a checkpoint folder.
        CheckpointError: MODEL is a path but not a readable checkpoint folder.
    """
    from videorecap import checkpoint

    path = Path(model)
    if path.exists():
        if level is not None:
            raise InputError(f"{model}: --level only applies to presets; a checkpoint folder has its own level")
        d = checkpoint.read_config(path)
        meta = checkpoint.read_meta(path)
        files = {p.name: p.stat().st_size for p in sorted(path.iterdir()) if p.is_file()}
        if d["kind"] == "encoder":
            return _encoder_info(path, d, meta, files)
        cfg = checkpoint.recap_config(d, path / checkpoint.CONFIG_FILE)
        info: dict[str, Any] = {"source": "checkpoint", "path": str(path)}
        info.update(_recap_info(cfg))
        info["tokenizer"] = _tokenizer_info(cfg, path)
        info["meta"] = meta
        info["files"] = files
        return info
    try:
        # from_name also registers presets defined elsewhere on first use (recap-synth)
        cfg = RecapConfig.from_name(model, **({"level": level} if level else {}))
    except ValueError as e:
        if model not in list_presets():
            known = ", ".join(list_presets())
            raise InputError(f"{model}: no such checkpoint folder, and not a preset (known presets: {known})") from e
        raise InputError(f"{model}: {e}") from e
    info = {"source": "preset", "preset": model}
    info.update(_recap_info(cfg))
    info["tokenizer"] = _tokenizer_info(cfg, None)
    return info


def _recap_info(cfg: RecapConfig) -> dict[str, Any]:
    import torch

    from videorecap.model.recap import PARTS, VideoRecap

    with torch.device("meta"):  # shapes and requires_grad only: no memory, no init
        model = VideoRecap(cfg, preset_training(cfg.name))  # training options are not in the config: the preset's
    counts = model.parameter_counts()
    params: dict[str, dict[str, int]] = {}
    for part in [*PARTS, *sorted(set(counts) - set(PARTS))]:
        if part in counts:
            c = counts[part]
            params[part] = {"trainable": c["trainable"], "frozen": c["frozen"], "total": c["trainable"] + c["frozen"]}
    params["total"] = {k: sum(p[k] for p in params.values()) for k in ("trainable", "frozen", "total")}

    enc, va, ta, dec = cfg.encoder, cfg.video_aligner, cfg.text_aligner, cfg.decoder
    sizes: dict[str, Any] = {
        "encoder": (
            {
                "image_size": enc.image_size,
                "patch_size": enc.patch_size,
                "num_frames": enc.num_frames,
                "width": enc.width,
                "layers": enc.layers,
                "heads": enc.heads,
                "tokens_per_clip": enc.num_tokens,
            }
            if cfg.has_encoder
            else None
        ),
        "feature_width": enc.width,
        "video_aligner": _aligner_sizes(va),
        "text_aligner": _aligner_sizes(ta) if cfg.has_text else None,
        "decoder": {
            "vocab_size": dec.vocab_size,
            "n_positions": dec.n_positions,
            "n_embd": dec.n_embd,
            "n_layer": dec.n_layer,
            "n_head": dec.n_head,
            "cross_attention_layers": math.ceil(dec.n_layer / dec.cross_attn_freq),
            "gated": dec.gated,
        },
        "queries": {"video": cfg.num_video_queries, "text": cfg.num_text_queries},
        "context_tokens": cfg.num_video_queries + cfg.num_text_queries,
        "features": {
            lv: {"count": cfg.num_features(lv), "sampling": cfg.sampling(lv)}
            for lv in cfg.levels
            if lv in ("segment", "video")
        },
        "windows": {"clip_seconds": cfg.clip_seconds, "segment_seconds": cfg.segment_seconds},
        "max_new_tokens": {lv: cfg.io.max_new_tokens[lv] for lv in cfg.levels if lv in cfg.io.max_new_tokens},
        "max_text_tokens": cfg.tokens.max_text_tokens if cfg.has_text else None,
    }
    return {"name": cfg.name, "level": cfg.level, "levels": list(cfg.levels), "sizes": sizes, "parameters": params}


def _aligner_sizes(a: Any) -> dict[str, Any]:
    return {
        "width": a.width,
        "layers": a.layers,
        "heads": a.heads,
        "intermediate": a.intermediate,
        "cross_attention_layers": math.ceil(a.layers / a.cross_attention_freq),
        "context_width": a.context_width,
    }


def _tokenizer_info(cfg: RecapConfig, folder: Path | None) -> dict[str, Any]:
    from videorecap.tokenizer import GPT2_EOT_ID, GPT2_VOCAB_SIZE, TOKENIZER_FILE, Tokenizer

    t = cfg.tokens
    ids = {"bos_id": t.bos_token_id, "eos_id": t.eos_token_id, "pad_id": t.pad_token_id}
    if folder is not None and (folder / TOKENIZER_FILE).is_file():
        try:
            return {"source": TOKENIZER_FILE, **Tokenizer.from_file(folder / TOKENIZER_FILE).describe()}
        except InputError as e:
            return {"source": TOKENIZER_FILE, "error": str(e), **ids}
    if cfg.decoder.vocab_size == GPT2_VOCAB_SIZE and t.bos_token_id == t.eos_token_id == GPT2_EOT_ID:
        return {"source": "gpt2", "type": "BPE", "vocab_size": GPT2_VOCAB_SIZE, **ids}
    source = "none" if folder is not None else "trained with the model"
    return {"source": source, "vocab_size": cfg.decoder.vocab_size, **ids}


def _encoder_info(path: Path, d: dict[str, Any], meta: dict[str, Any], files: dict[str, int]) -> dict[str, Any]:
    import torch

    from videorecap.config import EncoderConfig
    from videorecap.errors import CheckpointError
    from videorecap.model.encoder import VideoEncoder

    try:
        ecfg = EncoderConfig(**d["encoder"])
    except (KeyError, TypeError) as e:
        raise CheckpointError(f"{path / 'config.json'}: bad encoder config ({e})") from e
    with torch.device("meta"):
        enc = VideoEncoder(ecfg)
    n = sum(p.numel() for p in enc.parameters())
    return {
        "source": "checkpoint",
        "path": str(path),
        "kind": "encoder",
        "sizes": {
            "encoder": {
                "image_size": ecfg.image_size,
                "patch_size": ecfg.patch_size,
                "num_frames": ecfg.num_frames,
                "width": ecfg.width,
                "layers": ecfg.layers,
                "heads": ecfg.heads,
                "tokens_per_clip": ecfg.num_tokens,
            }
        },
        "parameters": {"encoder": {"total": n}, "total": {"total": n}},
        "meta": meta,
        "files": files,
    }


# ---- text output ------------------------------------------------------------------------------------------------
def _m(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1_000_000 else f"{n:,}"


def _layers(n: int) -> str:
    return f"{n} layer" if n == 1 else f"{n} layers"


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def format_info(info: dict[str, Any]) -> str:
    """The human-readable report of `model_info`."""
    lines: list[str] = []
    where = info.get("path") or info.get("preset")
    s = info["sizes"]
    if info.get("kind") == "encoder":
        e = s["encoder"]
        lines.append(f"{where}: encoder-only checkpoint")
        lines.append(_enc_line(e))
        lines.append(f"parameters: {_m(info['parameters']['total']['total'])}")
    else:
        how = "preset, built without weights" if info["source"] == "preset" else "checkpoint"
        lines.append(f"{where}: {info['name']}, {info['level']} level ({how})")
        lines.append(f"levels:        {', '.join(info['levels'])}")
        lines.append(
            _enc_line(s["encoder"]) if s["encoder"] else f"encoder:       none (reads {s['feature_width']}-d features)"
        )
        for key, label in (("video_aligner", "video aligner"), ("text_aligner", "text aligner")):
            a = s[key]
            if a:
                lines.append(
                    f"{label + ':':<14} Q-Former, {a['layers']} layers, width {a['width']}, {a['heads']} heads, "
                    f"FFN {a['intermediate']}, cross-attention in {_layers(a['cross_attention_layers'])} "
                    f"(context {a['context_width']})"
                )
        d = s["decoder"]
        lines.append(
            f"decoder:       GPT-2, {d['n_layer']} layers, width {d['n_embd']}, {d['n_head']} heads, vocab "
            f"{d['vocab_size']}, {d['n_positions']} positions, {'gated ' if d['gated'] else ''}cross-attention in "
            f"{_layers(d['cross_attention_layers'])}"
        )
        q = s["queries"]
        text_q = f" + {q['text']} text" if q["text"] else ""
        lines.append(f"queries:       {q['video']} video{text_q} = {s['context_tokens']} context tokens")
        if s["features"]:
            feats = ", ".join(f"{lv} {f['count']} ({f['sampling']})" for lv, f in s["features"].items())
            lines.append(f"features:      {feats}")
        w = s["windows"]
        lines.append(f"windows:       clip {w['clip_seconds']:g} s, segment {w['segment_seconds']:g} s")
        mx = ", ".join(f"{lv} {n}" for lv, n in s["max_new_tokens"].items())
        text_tokens = f"; previous-level text up to {s['max_text_tokens']} tokens" if s["max_text_tokens"] else ""
        lines.append(f"max tokens:    {mx}{text_tokens}")
        lines.append(f"tokenizer:     {_tok_line(info['tokenizer'])}")
        lines.append("")
        lines.append(f"{'parameters':<16}{'trainable':>12}{'frozen':>12}{'total':>12}")
        for part, c in info["parameters"].items():
            if part == "total":
                lines.append("-" * 52)
            lines.append(f"{part:<16}{_m(c['trainable']):>12}{_m(c['frozen']):>12}{_m(c['total']):>12}")
    meta = info.get("meta")
    if meta:
        lines.append("")
        for k, v in meta.items():
            shown = json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else v
            if k == "dtypes" and isinstance(v, list):
                shown = ", ".join(map(str, v))
            lines.append(f"{k + ':':<20} {shown}")
    if info.get("files"):
        lines.append("files:               " + ", ".join(f"{n} ({_size(b)})" for n, b in info["files"].items()))
    return "\n".join(lines) + "\n"


def _enc_line(e: dict[str, Any]) -> str:
    return (
        f"encoder:       TimeSformer, {e['num_frames']} frames of {e['image_size']} px, patch {e['patch_size']}, "
        f"{e['layers']} layers, width {e['width']}, {e['heads']} heads ({e['tokens_per_clip']} tokens per clip)"
    )


def _tok_line(t: dict[str, Any]) -> str:
    ids = f"bos {t['bos_id']}, eos {t['eos_id']}, pad {t['pad_id']}"
    if t["source"] == "gpt2":
        return f"GPT-2 byte-level BPE (built offline), {t['vocab_size']} tokens, {ids}"
    if t["source"] == "tokenizer.json":
        if "error" in t:
            return f"tokenizer.json (unreadable: {t['error']})"
        return f"tokenizer.json ({t['type']}), {t['vocab_size']} tokens, {ids}"
    if t["source"] == "none":
        return f"none in the folder (pass --tokenizer), {ids}"
    return f"{t['source']} (up to {t['vocab_size']} tokens), {ids}"
