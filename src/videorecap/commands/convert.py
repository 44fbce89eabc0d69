"""Convert released weights into videorecap checkpoint folders.

  videorecap convert official videorecap_clip.pt models/clip
      an original Video ReCap checkpoint (clip, segment, video or unified) -> a model folder with model.safetensors,
      config.json, tokenizer.json (GPT-2's, built offline, unless --tokenizer) and meta.json
  videorecap convert lavila clip_openai_timesformer_base.baseline.ep_0003.pth models/lavila-encoder
      LaViLa's dual encoder -> an encoder-only folder (its video tower), for `videorecap features --encoder`

The level and every size are read from the tensors' shapes and the stored args. Files are read with
torch.load(weights_only=True) (argparse.Namespace allowed), so nothing in them is executed. Every tensor of the
source is used or dropped by design (the summary counts them; --verbose lists the dropped ones with the reason);
anything else, a missing tensor or a shape mismatch is an error naming the key. See docs/released-weights.md.
"""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from videorecap.commands._options import check_new_folder

HELP = "convert released Video ReCap / LaViLa weights into checkpoint folders"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("format", choices=("official", "lavila"), help="official: Video ReCap .pt; lavila: .pth")
    parser.add_argument("source", type=Path, metavar="SRC", help="the released checkpoint file")
    parser.add_argument("output", type=Path, metavar="OUT_DIR", help="the checkpoint folder to write")
    parser.add_argument(
        "--tokenizer",
        type=Path,
        metavar="DIR",
        help="official only: tokenizer.json, or a folder with one or with vocab.json + merges.txt "
        "(default: GPT-2's BPE, built offline)",
    )
    parser.add_argument(
        "--level",
        choices=("clip", "segment", "video", "unified"),
        help="official only: the level, when the checkpoint does not tell (it must agree with its parts)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace OUT_DIR if it is a checkpoint folder")
    parser.add_argument(
        "--verbose", dest="list_dropped", action="store_true", help="list every dropped source key and why"
    )


def _read(path: Path) -> tuple[Mapping[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """(state_dict, args, other top-level entries) of a released checkpoint file."""
    from videorecap.checkpoint import safe_torch_load
    from videorecap.errors import CheckpointError

    if path.is_dir():
        raise CheckpointError(f"{path} is a folder; give the released .pt/.pth file itself")
    obj = safe_torch_load(path)
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a checkpoint dict with a 'state_dict'")
    if "state_dict" in obj:
        sd = obj["state_dict"]
        if not isinstance(sd, dict):
            raise CheckpointError(f"{path}: 'state_dict' is a {type(sd).__name__}, not a dict of tensors")
    elif obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        sd = obj  # a bare state dict
    else:
        keys = ", ".join(repr(k) for k in list(obj)[:8])
        raise CheckpointError(f"{path}: no 'state_dict' in this file (top-level keys: {keys or 'none'})")
    raw = obj.get("args") if sd is not obj else None
    if isinstance(raw, argparse.Namespace):
        args = vars(raw)
    elif isinstance(raw, dict):
        args = raw
    else:
        args = {}
    extra = {k: v for k, v in obj.items() if k in ("epoch", "best_acc1") and isinstance(v, int | float)}
    return sd, args, extra


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def _check_output(out: Path, overwrite: bool) -> None:
    # fail before reading a large file; checkpoint.save_* checks again (and refuses non-checkpoint folders)
    from videorecap.errors import InputError

    if out.exists() and not overwrite and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"{out} already exists; pass --overwrite to replace it")


def _build(factory: Any, state: Mapping[str, torch.Tensor]) -> Any:
    # built on the meta device (no random init) and given the converted tensors
    with torch.device("meta"):
        module = factory()
    module.load_state_dict(state, strict=True, assign=True)
    return module.eval()


def _print_report(report: Any, list_dropped: bool) -> None:
    for note in report.notes:
        print(f"  {note}")
    n_used, n_dropped = len(report.used), len(report.dropped)
    hint = "" if list_dropped or not n_dropped else " (--verbose lists them)"
    print(f"  tensors: {n_used} used, {n_dropped} dropped by design{hint}")
    if list_dropped:
        for reason, keys in report.dropped_by_reason().items():
            print(f"  dropped, {reason}:")
            for k in keys:
                print(f"    {k}")


def run(args: argparse.Namespace) -> int:
    from videorecap.errors import InputError

    _check_output(args.output, args.overwrite)
    check_new_folder(args.output, "OUT_DIR")
    if args.format == "lavila" and (args.tokenizer or args.level):
        raise InputError("--tokenizer and --level apply to `convert official` only")
    state, ckpt_args, extra = _read(args.source)
    meta = {"source": {"file": args.source.name, "sha256": _sha256(args.source), "format": args.format, **extra}}
    if args.format == "official":
        return _official(args, state, ckpt_args, meta)
    return _lavila(args, state, meta)


def _official(args: argparse.Namespace, state: Any, ckpt_args: dict[str, Any], meta: dict[str, Any]) -> int:
    from videorecap.checkpoint import save_pretrained
    from videorecap.config import TokenConfig
    from videorecap.convert.official import official_to_recap
    from videorecap.errors import InputError
    from videorecap.model.recap import VideoRecap
    from videorecap.tokenizer import Tokenizer

    tok = Tokenizer.from_file(args.tokenizer) if args.tokenizer else Tokenizer.gpt2()
    tokens = TokenConfig(bos_token_id=tok.bos_id, eos_token_id=tok.eos_id, pad_token_id=tok.pad_id)
    cfg, sd, report = official_to_recap(state, ckpt_args, level=args.level, tokens=tokens, source=str(args.source))
    if tok.vocab_size > cfg.decoder.vocab_size:
        where = args.tokenizer or "GPT-2's tokenizer"
        raise InputError(
            f"{where}: {tok.vocab_size} tokens do not fit the checkpoint's {cfg.decoder.vocab_size}-token vocabulary"
        )
    model = _build(lambda: VideoRecap(cfg), sd)
    meta["source"]["args"] = {k: v for k, v in ckpt_args.items() if isinstance(v, str | int | float | bool | None)}
    meta["conversion"] = report.to_dict()
    save_pretrained(model, args.output, tokenizer=tok, meta=meta, overwrite=args.overwrite)
    print(f"converted {args.source} -> {args.output}: {cfg.level}-level Video ReCap")
    _print_report(report, args.list_dropped)
    return 0


def _lavila(args: argparse.Namespace, state: Any, meta: dict[str, Any]) -> int:
    from videorecap.checkpoint import save_encoder
    from videorecap.convert.lavila import lavila_to_encoder
    from videorecap.model.encoder import VideoEncoder

    cfg, sd, report = lavila_to_encoder(state, source=str(args.source))
    encoder = _build(lambda: VideoEncoder(cfg), sd)
    meta["conversion"] = report.to_dict()
    save_encoder(encoder, args.output, meta=meta, overwrite=args.overwrite)
    print(f"converted {args.source} -> {args.output}: LaViLa video encoder")
    _print_report(report, args.list_dropped)
    return 0
