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
from pathlib import Path
from typing import Any

from videorecap.commands._options import add_output_argument, check_new_folder

HELP = "convert released Video ReCap / LaViLa weights into checkpoint folders"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("format", choices=("official", "lavila"), help="official: Video ReCap .pt; lavila: .pth")
    parser.add_argument("source", type=Path, metavar="SRC", help="the released checkpoint file")
    # OUT_DIR stays positional (`convert FORMAT SRC OUT_DIR`, as cp SRC DST) and -o OUT is the same, as everywhere
    parser.add_argument("output_dir", type=Path, nargs="?", metavar="OUT_DIR", help="the checkpoint folder to write")
    add_output_argument(parser, "the checkpoint folder, the same as OUT_DIR (give one of them)")
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
    # -v/--verbose (a global flag) also lists every dropped source key and why


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

    if (args.output_dir is None) == (args.output is None):
        raise InputError("give the checkpoint folder to write once: OUT_DIR or -o OUT")
    args.output = args.output if args.output is not None else args.output_dir
    args.list_dropped = args.verbose > 0
    _check_output(args.output, args.overwrite)
    check_new_folder(args.output, "OUT_DIR")
    if args.format == "lavila" and (args.tokenizer or args.level):
        raise InputError("--tokenizer and --level apply to `convert official` only")
    from videorecap.convert.load import read_released

    state, ckpt_args, extra = read_released(args.source)
    meta = {"source": {"file": args.source.name, "sha256": _sha256(args.source), "format": args.format, **extra}}
    if args.format == "official":
        return _official(args, state, ckpt_args, meta)
    return _lavila(args, state, meta)


def _official(args: argparse.Namespace, state: Any, ckpt_args: dict[str, Any], meta: dict[str, Any]) -> int:
    from videorecap.checkpoint import save_pretrained
    from videorecap.convert.load import official_model

    model, tok, report = official_model(
        state, ckpt_args, tokenizer=args.tokenizer, level=args.level, source=str(args.source)
    )
    cfg = model.config
    meta["source"]["args"] = {k: v for k, v in ckpt_args.items() if isinstance(v, str | int | float | bool | None)}
    meta["conversion"] = report.to_dict()
    save_pretrained(model, args.output, tokenizer=tok, meta=meta, overwrite=args.overwrite)
    print(f"converted {args.source} -> {args.output}: {cfg.level}-level Video ReCap")
    _print_report(report, args.list_dropped)
    return 0


def _lavila(args: argparse.Namespace, state: Any, meta: dict[str, Any]) -> int:
    from videorecap.checkpoint import save_encoder
    from videorecap.convert.lavila import lavila_to_encoder
    from videorecap.convert.load import build_assigned
    from videorecap.model.encoder import VideoEncoder

    cfg, sd, report = lavila_to_encoder(state, source=str(args.source))
    encoder = build_assigned(lambda: VideoEncoder(cfg), sd)
    meta["conversion"] = report.to_dict()
    save_encoder(encoder, args.output, meta=meta, overwrite=args.overwrite)
    print(f"converted {args.source} -> {args.output}: LaViLa video encoder")
    _print_report(report, args.list_dropped)
    return 0
