"""Checkpoint folders: `model.safetensors` + `config.json` + `tokenizer.json` + `meta.json`.

A videorecap checkpoint is a folder:

    model.safetensors   every tensor of `model.state_dict()` (parameters and persistent buffers), fp32 by default
    config.json         {"format_version": 1, "kind": "recap", **RecapConfig.to_dict()}
                        or, for an encoder-only folder, {"format_version": 1, "kind": "encoder", "encoder": {...}}
    tokenizer.json      the model's tokenizer (absent for GPT-2-tokenizer models: `Tokenizer.gpt2()` is used)
    meta.json           library version, creation time, and free-form metadata (recipe, seed, metrics, source)

Folders are written atomically: everything goes into a hidden temporary folder next to the target, which is then
renamed into place, so a half-written checkpoint never exists under the final name. Loading is strict (every key,
every shape) and never unpickles anything: safetensors and JSON only. The released `.pt`/`.pth` files of the
original code are pickles; `safe_torch_load` reads them with `torch.load(weights_only=True)` for the converters.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import pickle
import pickletools
import re
import shutil
import struct
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn as nn
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from videorecap import fileio
from videorecap.config import EncoderConfig, RecapConfig
from videorecap.errors import CheckpointError, InputError
from videorecap.tokenizer import GPT2_EOT_ID, GPT2_VOCAB_SIZE, TOKENIZER_FILE, Tokenizer

if TYPE_CHECKING:
    from videorecap.model.encoder import VideoEncoder
    from videorecap.model.recap import VideoRecap

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
META_FILE = "meta.json"
ENCODER_PREFIX = "encoder."


# ---- saving ---------------------------------------------------------------------------------------------------------
def save_pretrained(
    model: VideoRecap,
    out_dir: str | os.PathLike[str],
    *,
    tokenizer: Tokenizer | None = None,
    meta: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write `model` as a checkpoint folder.

    Args:
        model: a `VideoRecap` (anything with `.config: RecapConfig` and a state_dict).
        out_dir: the folder to create.
        tokenizer: saved as `tokenizer.json`; its special ids must match `model.config.tokens`. Leave it out for
            models that use the GPT-2 tokenizer (the loader builds it offline).
        meta: free-form JSON-able metadata (recipe, seed, metrics, source file...), merged into `meta.json`.
        overwrite: replace an existing checkpoint folder (an empty folder is always fine; a folder that is not a
            checkpoint is never replaced).
        dtype: store floating-point tensors in this dtype (default: float32).

    Returns:
        The checkpoint folder.

    Raises:
        CheckpointError: `out_dir` exists and `overwrite` is false, or it is not a checkpoint folder.
        ValueError: the tokenizer does not match the model config.
    """
    cfg: RecapConfig = model.config
    if tokenizer is not None:
        _check_tokenizer(tokenizer, cfg, "the given tokenizer", exc=ValueError)
    tensors = _tensors_to_save(model.state_dict(), dtype or torch.float32)
    config = {"format_version": FORMAT_VERSION, "kind": "recap", **cfg.to_dict()}
    info = _meta(meta, tensors, extra={"name": cfg.name, "level": cfg.level})
    with _atomic_folder(out_dir, overwrite) as tmp:
        _write_safetensors(tmp / MODEL_FILE, tensors)
        fileio.write_json(tmp / CONFIG_FILE, config)
        fileio.write_json(tmp / META_FILE, info)
        if tokenizer is not None:
            tokenizer.save(tmp / TOKENIZER_FILE)
    logger.info("saved %s (%d tensors) to %s", cfg.name, len(tensors), out_dir)
    return Path(out_dir)


def save_encoder(
    encoder: VideoEncoder,
    out_dir: str | os.PathLike[str],
    *,
    meta: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write an encoder-only checkpoint folder (what `videorecap features --encoder` and the LaViLa converter use).

    The tensors are stored under the same `encoder.` prefix as in a full model, so `load_encoder` reads both kinds.
    """
    ecfg: EncoderConfig = encoder.config
    tensors = _tensors_to_save({ENCODER_PREFIX + k: v for k, v in encoder.state_dict().items()}, dtype or torch.float32)
    config = {"format_version": FORMAT_VERSION, "kind": "encoder", "encoder": asdict(ecfg)}
    info = _meta(meta, tensors, extra={"kind": "encoder"})
    with _atomic_folder(out_dir, overwrite) as tmp:
        _write_safetensors(tmp / MODEL_FILE, tensors)
        fileio.write_json(tmp / CONFIG_FILE, config)
        fileio.write_json(tmp / META_FILE, info)
    logger.info("saved encoder (%d tensors) to %s", len(tensors), out_dir)
    return Path(out_dir)


def _tensors_to_save(state: Mapping[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in state.items():
        v = v.detach()
        if v.is_floating_point() and v.dtype != dtype:
            v = v.to(dtype)
        out[k] = v.to("cpu").contiguous()
    return out


def _write_safetensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    save_file(tensors, str(path), metadata={"format": "pt", "videorecap_format_version": str(FORMAT_VERSION)})
    # safetensors writes the metadata from a Rust HashMap, whose order changes from one save to the next: rewrite the
    # JSON header with sorted keys so that one model always gives the same bytes. Same content, so same length or
    # shorter; the format pads a header with spaces. Tensor offsets count from the header's end, which stays put.
    with open(path, "rb+") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        stable = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        if len(stable) > n:  # cannot happen with compact JSON of the same content; never grow into the data
            raise RuntimeError(f"{path}: the sorted safetensors header is longer than the original")
        f.seek(8)
        f.write(stable + b" " * (n - len(stable)))
        f.flush()
        os.fsync(f.fileno())


def _meta(meta: Mapping[str, Any] | None, tensors: Mapping[str, torch.Tensor], extra: dict[str, Any]) -> dict:
    from videorecap import __version__

    dtypes = sorted({str(t.dtype).removeprefix("torch.") for t in tensors.values()})
    ours = {
        "videorecap_version": __version__,
        "torch_version": torch.__version__.split("+")[0],
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "num_tensors": len(tensors),
        "num_parameters": sum(t.numel() for t in tensors.values()),
        "dtypes": dtypes,
        **extra,
    }
    # free-form metadata first; our own keys describe this file and win
    out = dict(meta or {})
    out.update(ours)
    json.dumps(out)  # fail now, before anything is written, if `meta` is not JSON-able
    return out


@contextlib.contextmanager
def _atomic_folder(out_dir: str | os.PathLike[str], overwrite: bool) -> Iterator[Path]:
    """Yield a temporary folder next to `out_dir`; on success it replaces `out_dir`, on error it is removed."""
    out = Path(out_dir)
    _check_replaceable(out, overwrite)
    tmp = fileio.temp_dir(out)  # a ".name.XXXXXXXX.tmp" folder: cleaned as a leftover if we are killed
    try:
        yield tmp
        if out.exists() or out.is_symlink():
            _check_replaceable(out, overwrite)  # it may have appeared while we were writing
        fileio.swap_dir(tmp, out)  # the old checkpoint is replaced as a whole, nothing carried over
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _check_replaceable(out: Path, overwrite: bool) -> None:
    if not (out.exists() or out.is_symlink()):
        return
    if not out.is_dir() or out.is_symlink():
        raise CheckpointError(f"{out} exists and is not a folder; refusing to replace it")
    empty = not any(out.iterdir())
    if empty:
        return
    if not (out / CONFIG_FILE).is_file():
        raise CheckpointError(f"{out} exists and is not a checkpoint folder (no {CONFIG_FILE}); refusing to replace it")
    if not overwrite:
        raise CheckpointError(f"{out} already exists; pass overwrite=True (--overwrite) to replace it")


# ---- reading --------------------------------------------------------------------------------------------------------
def read_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The parsed `config.json` of a checkpoint folder (with `kind` and `format_version`), after checking the folder.

    Raises:
        CheckpointError: `path` is not a checkpoint folder (the message says what it is when it can tell).
    """
    folder = _checkpoint_folder(Path(path))
    cfg_path = folder / CONFIG_FILE
    try:
        d = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{cfg_path}: cannot read the checkpoint config ({_one_line(e)})") from e
    if not isinstance(d, dict) or d.get("kind") not in ("recap", "encoder"):
        raise CheckpointError(f'{cfg_path}: not a videorecap checkpoint config (no "kind": "recap" or "encoder")')
    version = d.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{cfg_path}: checkpoint format version {version!r} is not supported (this videorecap reads up to "
            f"{FORMAT_VERSION}); upgrade videorecap"
        )
    return d


def read_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The checkpoint's `meta.json` ({} when absent)."""
    p = Path(path) / META_FILE
    if not p.is_file():
        return {}
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{p}: cannot read the checkpoint metadata ({_one_line(e)})") from e
    return d if isinstance(d, dict) else {}


def read_card(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The model card in the checkpoint's `meta.json`: `{"domain": ..., "note": ...}`, or None when it has none.

    `domain: "synthetic"` marks a model that knows only the synthetic world (`caption` warns, the page says so).
    """
    card = read_meta(path).get("card")
    return card if isinstance(card, dict) else None


def recap_config(d: Mapping[str, Any], source: str | os.PathLike[str]) -> RecapConfig:
    """The `RecapConfig` of a parsed kind-"recap" `config.json`."""
    fields = {k: v for k, v in d.items() if k not in ("format_version", "kind")}
    try:
        return RecapConfig.from_dict(fields)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{source}: bad model config ({_one_line(e)})") from e


def load_model(
    path: str | os.PathLike[str],
    *,
    device: str | torch.device = "cpu",
    tokenizer_path: str | os.PathLike[str] | None = None,
    dtype: torch.dtype | None = None,
) -> tuple[VideoRecap, Tokenizer | None]:
    """Load a checkpoint folder: the model in eval mode, and its tokenizer.

    Args:
        path: the checkpoint folder.
        device: where the weights go (read straight to that device).
        tokenizer_path: a tokenizer to use instead of the folder's (see `Tokenizer.from_file`).
        dtype: cast floating-point weights to this dtype (default: as stored).

    Returns:
        `(model, tokenizer)`. The tokenizer is the folder's `tokenizer.json`, else GPT-2's when the config uses
        GPT-2's vocabulary and special ids (the released weights), else None.

    Raises:
        CheckpointError: not a checkpoint folder (with a hint for original/LaViLa `.pt` files), a corrupt or truncated
            `model.safetensors`, missing/unexpected keys or shape mismatches (named), or a tokenizer that does not
            match the model.
    """
    from videorecap.runtime import check_device

    check_device(str(device))  # a missing GPU is said plainly, not blamed on the weights file
    folder = Path(path)
    d = read_config(folder)
    if d["kind"] != "recap":
        raise CheckpointError(
            f"{folder} is an encoder-only checkpoint: use it where a video encoder is expected "
            "(`videorecap features --encoder`), not as a captioning model"
        )
    cfg = recap_config(d, folder / CONFIG_FILE)
    tensors = _read_safetensors(folder / MODEL_FILE, device=device)

    from videorecap.model.recap import VideoRecap

    model = _build_and_load(lambda: VideoRecap(cfg), tensors, folder / MODEL_FILE)
    model.to(device)
    if dtype is not None:
        model.to(dtype)
    model.eval()

    tokenizer = _load_tokenizer(folder, cfg, tokenizer_path)
    return model, tokenizer


def load_encoder(path: str | os.PathLike[str], *, device: str | torch.device = "cpu") -> VideoEncoder:
    """The video encoder of a full model folder (clip level or unified) or of an encoder-only folder, in eval mode.

    Raises:
        CheckpointError: not a checkpoint folder, a model without an encoder, or weights that do not match.
    """
    folder = Path(path)
    d = read_config(folder)
    if d["kind"] == "encoder":
        try:
            ecfg = EncoderConfig(**d["encoder"])
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{folder / CONFIG_FILE}: bad encoder config ({_one_line(e)})") from e
    else:
        cfg = recap_config(d, folder / CONFIG_FILE)
        if not cfg.has_encoder:
            raise CheckpointError(
                f"{folder}: a {cfg.level}-level model has no video encoder (it reads precomputed features); use the "
                "clip-level or unified checkpoint, or an encoder-only folder"
            )
        ecfg = cfg.encoder
    tensors = _read_safetensors(folder / MODEL_FILE, device=device, prefix=ENCODER_PREFIX)

    from videorecap.model.encoder import VideoEncoder

    encoder = _build_and_load(lambda: VideoEncoder(ecfg), tensors, folder / MODEL_FILE)
    encoder.to(device)
    encoder.eval()
    return encoder


def _checkpoint_folder(path: Path) -> Path:
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint folder")
    if not path.is_dir():
        raise CheckpointError(describe_file(path))
    if not (path / CONFIG_FILE).is_file():
        pickles = sorted(p.name for p in path.iterdir() if p.suffix in (".pt", ".pth", ".bin", ".ckpt"))
        hint = f" (it holds {', '.join(pickles[:3])}: pass the file itself to `videorecap convert`)" if pickles else ""
        raise CheckpointError(f"{path} is not a videorecap checkpoint folder: no {CONFIG_FILE}{hint}")
    if not (path / MODEL_FILE).is_file():
        raise CheckpointError(f"{path}: the checkpoint folder has no {MODEL_FILE}")
    return path


def _read_safetensors(path: Path, *, device: str | torch.device, prefix: str = "") -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file (only those under `prefix`, with it stripped)."""
    dev = str(torch.device(device))
    try:
        with safe_open(str(path), framework="pt", device=dev) as f:
            keys = [k for k in f.keys() if k.startswith(prefix)]  # noqa: SIM118 - safe_open is not a Mapping
            return {k[len(prefix) :]: f.get_tensor(k) for k in keys}
    except (SafetensorError, OSError, RuntimeError, ValueError) as e:
        raise CheckpointError(f"{path}: corrupt or truncated safetensors file ({_one_line(e)})") from e


def _build_and_load(build: Any, tensors: dict[str, torch.Tensor], source: Path) -> Any:
    """Build a module and load `tensors` into it strictly, without paying for a random init when possible.

    The module is built on the meta device (no memory, no init) and the loaded tensors are assigned to it. If
    anything is left on the meta device afterwards (a non-persistent buffer, which no file holds), the module is
    built again for real and the tensors are copied in.
    """
    with torch.device("meta"):
        module: nn.Module = build()
    _check_keys(module.state_dict(), tensors, source)
    module.load_state_dict(tensors, strict=True, assign=True)
    if any(t.is_meta for t in [*module.parameters(), *module.buffers()]):
        module = build()
        module.load_state_dict(tensors, strict=True)
    return module


def _check_keys(expected: Mapping[str, torch.Tensor], got: Mapping[str, torch.Tensor], source: Path) -> None:
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    shapes = [
        f"{k} {tuple(got[k].shape)} (model: {tuple(expected[k].shape)})"
        for k in expected
        if k in got and got[k].shape != expected[k].shape
    ]
    problems = []
    for what, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)):
        if items:
            more = f" and {len(items) - 5} more" if len(items) > 5 else ""
            problems.append(f"{len(items)} {what}: {', '.join(items[:5])}{more}")
    if problems:
        raise CheckpointError(f"{source} does not match the model in its config: {'; '.join(problems)}")


def _load_tokenizer(folder: Path, cfg: RecapConfig, tokenizer_path: str | os.PathLike[str] | None) -> Tokenizer | None:
    if tokenizer_path is not None:
        tok = Tokenizer.from_file(tokenizer_path)  # an InputError names the file
        _check_tokenizer(tok, cfg, str(tokenizer_path))
        return tok
    if (folder / TOKENIZER_FILE).is_file():
        try:
            tok = Tokenizer.from_file(folder / TOKENIZER_FILE)
        except InputError as e:
            raise CheckpointError(str(e)) from e
        _check_tokenizer(tok, cfg, str(folder / TOKENIZER_FILE))
        return tok
    t = cfg.tokens
    if cfg.decoder.vocab_size == GPT2_VOCAB_SIZE and t.bos_token_id == t.eos_token_id == GPT2_EOT_ID:
        return Tokenizer.gpt2()  # the released models: GPT-2's tokenizer, built offline
    logger.warning("%s has no %s and does not use GPT-2's vocabulary: no tokenizer loaded", folder, TOKENIZER_FILE)
    return None


def _check_tokenizer(tok: Tokenizer, cfg: RecapConfig, source: str, exc: type[Exception] = CheckpointError) -> None:
    t = cfg.tokens
    ours = (tok.bos_id, tok.eos_id, tok.pad_id)
    theirs = (t.bos_token_id, t.eos_token_id, t.pad_token_id)
    if ours != theirs:
        raise exc(f"{source}: special ids bos/eos/pad {ours} do not match the model config's {theirs}")
    if tok.vocab_size > cfg.decoder.vocab_size:
        raise exc(f"{source}: {tok.vocab_size} tokens do not fit the model's vocabulary of {cfg.decoder.vocab_size}")


# ---- foreign files --------------------------------------------------------------------------------------------------
def describe_file(path: Path) -> str:
    """A one-line error for a file given where a checkpoint folder is expected, saying what it is if we can tell."""
    kind = sniff_file(path)
    if kind == "videorecap-original":
        return (
            f"{path} is an original Video ReCap checkpoint: convert it first with "
            f"`videorecap convert official {path} OUT`"
        )
    if kind == "lavila":
        return f"{path} is a LaViLa checkpoint: convert its video encoder with `videorecap convert lavila {path} OUT`"
    if kind == "torch":
        return (
            f"{path} is a PyTorch pickle, not a videorecap checkpoint folder: this is a checkpoint file; convert it "
            f"first with `videorecap convert official {path} OUT` (Video ReCap weights) and give OUT"
        )
    if kind == "safetensors":
        if (path.parent / CONFIG_FILE).is_file():
            return f"{path} is a bare safetensors file: give its folder, {path.parent}"
        return (
            f"{path} is a bare safetensors file; a videorecap checkpoint is the folder that holds {MODEL_FILE}, "
            f"{CONFIG_FILE} and {META_FILE}: give that folder"
        )
    return f"{path} is not a videorecap checkpoint (expected a folder with {CONFIG_FILE} and {MODEL_FILE})"


def sniff_file(path: str | os.PathLike[str]) -> str | None:
    """What a file looks like, from its bytes, without unpickling anything.

    Returns:
        "videorecap-original", "lavila", "torch" (another PyTorch zip or pickle), "safetensors", or None.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return None
    if head.startswith(b"PK\x03\x04"):
        return _classify(_zip_pickle_strings(path))
    if head[:1] == b"\x80" and 2 <= head[1:2][0] <= 5:  # pickle PROTO opcode: the legacy torch.save format
        return _classify(_pickle_strings(path))
    if len(head) >= 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < 100_000_000:
        return "safetensors"
    return None


def _classify(strings: set[str]) -> str:
    keys = {s.removeprefix("module.") for s in strings}
    if any(k.startswith(("text_decoder.", "video_mapper.", "text_mapper.")) for k in keys):
        return "videorecap-original"
    if any(k.startswith("visual.") for k in keys) and any("image_projection" in k for k in keys):
        return "lavila"
    return "torch"


def _zip_pickle_strings(path: Path, limit: int = 64 << 20) -> set[str]:
    try:
        with zipfile.ZipFile(path) as z:
            names = [n for n in z.namelist() if n.endswith("data.pkl")]
            if not names or z.getinfo(names[0]).file_size > limit:
                return set()
            data = z.read(names[0])
    except (zipfile.BadZipFile, OSError, KeyError):
        return set()
    return _strings_in_pickle(data)


def _pickle_strings(path: Path, limit: int = 64 << 20) -> set[str]:
    try:
        with open(path, "rb") as f:
            data = f.read(limit)
    except OSError:
        return set()
    return _strings_in_pickle(data)


def _strings_in_pickle(data: bytes, max_ops: int = 5_000_000) -> set[str]:
    # pickletools.genops only parses opcodes; nothing is imported or executed. A legacy torch file is several
    # pickles in a row followed by raw storage bytes, hence the loop and the tolerance for trailing garbage.
    out: set[str] = set()
    stream = io.BytesIO(data)
    ops = 0
    while stream.tell() < len(data) and ops < max_ops:
        try:
            for _op, arg, _pos in pickletools.genops(stream):
                ops += 1
                if isinstance(arg, str):
                    out.add(arg)
                if ops >= max_ops:
                    break
        except (ValueError, pickle.UnpicklingError, EOFError, UnicodeDecodeError):
            break
    return out


def safe_torch_load(path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu") -> Any:
    """`torch.load(weights_only=True)` that also allows `argparse.Namespace` (the released files pickle their args).

    Raises:
        CheckpointError: a missing or unreadable file, or a pickle that references any other global (named).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        m = re.search(r"GLOBAL ([\w.]+)", str(e))
        if m:
            raise CheckpointError(
                f"{path}: refused to unpickle `{m.group(1)}`: only tensors, plain containers and argparse.Namespace "
                "are allowed, and this file references something else (it may not be safe to load)"
            ) from None
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint") from None
    except Exception as e:  # noqa: BLE001 - garbage bytes can break the unpickler in any way (KeyError, IndexError...)
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({_one_line(e)[:200]})") from None


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__
