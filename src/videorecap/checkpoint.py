"""Checkpoint folders: `model.safetensors` + `config.json` + `tokenizer.json` + `meta.json`.

A videorecap checkpoint is a folder:

    model.safetensors   every tensor of `model.state_dict()` (parameters and persistent buffers), fp32 by default
    config.json         {"format_version": 2, "kind": "recap", "arch": {...}, "io": {...}}: the architecture and the
                        level I/O (`RecapConfig.to_dict()`); format 1 (written before the split) is one flat dict of
                        every RecapConfig field, training options included, and is still read (they are ignored);
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
import json
import logging
import os
import pickle
import re
import shutil
import struct
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
from videorecap.config import BUNDLED_MODELS, EncoderConfig, RecapConfig, encoder_from_dict
from videorecap.convert.sniff import describe_bytes, describe_released, sniff_file
from videorecap.errors import CheckpointError, InputError
from videorecap.tokenizer import GPT2_EOT_ID, GPT2_VOCAB_SIZE, TOKENIZER_FILE, Tokenizer

if TYPE_CHECKING:
    from videorecap.model.encoder import VideoEncoder
    from videorecap.model.recap import VideoRecap

logger = logging.getLogger(__name__)

FORMAT_VERSION = 2  # of config.json: 2 = {"arch", "io"}; 1 = the flat RecapConfig (read, not written)
ENCODER_FORMAT_VERSION = 1  # an encoder-only folder's config.json has not changed
WEIGHTS_FORMAT_VERSION = 1  # the safetensors metadata: the tensors' names and layout have not changed
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
    if not isinstance(getattr(model, "config", None), RecapConfig):
        raise TypeError(f"save_pretrained: give a VideoRecap model, not {type(model).__name__}")
    cfg: RecapConfig = model.config
    if tokenizer is not None:
        _check_tokenizer(tokenizer, cfg, "the given tokenizer", exc=ValueError)
    tensors = _tensors_to_save(model.state_dict(), dtype or torch.float32)
    config = {"format_version": FORMAT_VERSION, "kind": "recap", **cfg.to_dict()}  # architecture + level I/O
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
    if not isinstance(getattr(encoder, "config", None), EncoderConfig):
        whole = isinstance(getattr(encoder, "config", None), RecapConfig)
        hint = " (a whole model: give its .encoder)" if whole else ""
        raise TypeError(f"save_encoder: give a video encoder, not {type(encoder).__name__}{hint}")
    ecfg: EncoderConfig = encoder.config
    tensors = _tensors_to_save({ENCODER_PREFIX + k: v for k, v in encoder.state_dict().items()}, dtype or torch.float32)
    config = {"format_version": ENCODER_FORMAT_VERSION, "kind": "encoder", "encoder": asdict(ecfg)}
    info = _meta(meta, tensors, extra={"kind": "encoder"})
    with _atomic_folder(out_dir, overwrite) as tmp:
        _write_safetensors(tmp / MODEL_FILE, tensors)
        fileio.write_json(tmp / CONFIG_FILE, config)
        fileio.write_json(tmp / META_FILE, info)
    logger.info("saved encoder (%d tensors) to %s", len(tensors), out_dir)
    return Path(out_dir)


def _tensors_to_save(state: Mapping[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    if dtype not in (torch.float32, torch.float16, torch.bfloat16):  # what the loader reads back
        raise ValueError(f"dtype: a checkpoint stores float32, float16 or bfloat16, not {dtype}")
    out = {}
    for k, v in state.items():
        v = v.detach()
        if v.is_floating_point() and v.dtype != dtype:
            v = v.to(dtype)
        out[k] = v.to("cpu").contiguous()
    return out


def _write_safetensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    # through fileio, as every file we write: safetensors alone leaves the file 0600, unreadable to the other users of
    # a shared model folder whose other files are 0644
    with fileio.atomic_path(path) as tmp:
        try:
            metadata = {"format": "pt", "videorecap_format_version": str(WEIGHTS_FORMAT_VERSION)}
            save_file(tensors, str(tmp), metadata=metadata)
        except SafetensorError as e:
            # safetensors reports a failed write (a full disk, a permission) as its own error type, "... (os error
            # 28)": turn it back into the OSError it is, so that callers and the CLI report it as one line naming the
            # file
            m = re.search(r"os error (\d+)", str(e))
            if m is None:
                raise
            code = int(m[1])
            raise OSError(code, os.strerror(code), str(path)) from None
        # safetensors writes the metadata from a Rust HashMap, whose order changes from one save to the next: rewrite
        # the JSON header with sorted keys so that one model always gives the same bytes. Same content, so same length
        # or shorter; the format pads a header with spaces. Tensor offsets count from the header's end, which stays.
        with open(tmp, "rb+") as f:  # atomic_path flushes it to disk
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
            stable = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
            if len(stable) > n:  # cannot happen with compact JSON of the same content; never grow into the data
                raise RuntimeError(f"{path}: the sorted safetensors header is longer than the original")
            f.seek(8)
            f.write(stable + b" " * (n - len(stable)))


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
    tmp = fileio.temp_dir(out)  # a ".name.RANDOM8.tmp" folder: cleaned as a leftover if we are killed
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
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise CheckpointError(f"{cfg_path}: cannot read the checkpoint config ({_json_error(e)})") from e
    if not isinstance(d, dict) or d.get("kind") not in ("recap", "encoder"):
        raise CheckpointError(f'{cfg_path}: not a videorecap checkpoint config (no "kind": "recap" or "encoder")')
    version = d.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{cfg_path}: checkpoint format version {version!r} is not supported (this videorecap reads up to "
            f"{FORMAT_VERSION}); upgrade videorecap"
        )
    check_sizes(d, folder)
    return d


# The largest whole number a size field of a config may hold: far above any real model (GPT-2's vocabulary is
# 50,257), far below what would make building the module take minutes or exhaust memory.
MAX_CONFIG_INT = 1 << 24
# safetensors' own limit on the header: anything larger is not a safetensors file
_MAX_HEADER_BYTES = 100_000_000


def read_header(path: str | os.PathLike[str]) -> dict[str, tuple[str, tuple[int, ...]]]:
    """`{name: (dtype, shape)}` of every tensor of a safetensors file, from its JSON header only (no tensor data).

    Raises:
        CheckpointError: not a safetensors file (unreadable, or a header that is not one).
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            n = int.from_bytes(head, "little") if len(head) == 8 else -1
            if not 2 <= n <= min(_MAX_HEADER_BYTES, os.fstat(f.fileno()).st_size - 8):
                raise ValueError("no safetensors header")
            header = json.loads(f.read(n))
        out = {}
        for name, entry in header.items():
            if name != "__metadata__":
                out[name] = (str(entry["dtype"]), tuple(int(x) for x in entry["shape"]))
        return out
    except (OSError, ValueError, TypeError, KeyError, AttributeError, RecursionError) as e:
        raise CheckpointError(f"{path}: corrupt or truncated safetensors file ({_one_line(e)})") from e


def check_sizes(d: Mapping[str, Any], folder: str | os.PathLike[str]) -> None:
    """Check a parsed `config.json` against sane bounds and against the shapes in the weights file's header.

    Done before any module is built: a config that says `"n_layer": 1e9` would otherwise make `info` or `caption`
    build modules for minutes before the weights are even compared. Only the header is read, not the tensors.

    Raises:
        CheckpointError: naming the config key that is out of bounds or does not match the weights.
    """
    folder = Path(folder)
    cfg_path = folder / CONFIG_FILE
    _check_ints(d, cfg_path)
    if d.get("kind") == "encoder":
        ecfg = encoder_config(d, cfg_path)
        expected = _implied_encoder(ecfg, "encoder.", "encoder.")
    else:
        cfg = recap_config(d, cfg_path)
        expected = _implied_recap(cfg)
    header = read_header(folder / MODEL_FILE)
    for key, value, tensor, axis in expected:
        if axis is None:  # a layer count: the indices of `tensor` + "N." in the file
            have = {int(m.group(1)) for k in header if (m := re.match(re.escape(tensor) + r"(\d+)\.", k))}
            got = max(have) + 1 if have else 0
            if got != value:
                raise CheckpointError(
                    f"{cfg_path}: {key} is {value}, but {MODEL_FILE} holds {got} layers ({tensor}N); the config does "
                    "not match the weights"
                )
        elif tensor in header:
            shape = header[tensor][1]
            if len(shape) <= abs(axis) - (axis < 0) or shape[axis] != value:
                raise CheckpointError(
                    f"{cfg_path}: {key} implies {value} for {tensor}, but {MODEL_FILE} stores the shape {list(shape)}; "
                    "the config does not match the weights"
                )


def _check_ints(d: Mapping[str, Any], cfg_path: Path, where: str = "") -> None:
    # Only the bound of a file's numbers: each field's type and the sizes' fit are `config.check_config`'s, run when
    # `recap_config`/`encoder_config` build the config
    for k, v in d.items():
        if isinstance(v, Mapping):
            _check_ints(v, cfg_path, f"{where}{k}.")
        elif isinstance(v, int) and not isinstance(v, bool) and abs(v) > MAX_CONFIG_INT:
            raise CheckpointError(f"{cfg_path}: {where}{k} is {v}, out of bounds (at most {MAX_CONFIG_INT})")


# (config key, the size it implies, tensor, axis) or, with axis None, (key, layer count, layer prefix, None)
_Implied = list[tuple[str, int, str, int | None]]


def _implied_encoder(e: EncoderConfig, key: str, prefix: str) -> _Implied:
    return [
        (f"{key}layers", e.layers, f"{prefix}blocks.", None),
        (f"{key}width", e.width, f"{prefix}cls_token", -1),
        (f"{key}num_frames", e.num_frames, f"{prefix}temporal_embed", 1),
        (f"{key}patch_size", e.patch_size, f"{prefix}patch_embed.proj.weight", 2),
        (f"{key}image_size", 1 + (e.image_size // max(e.patch_size, 1)) ** 2, f"{prefix}pos_embed", 1),
        (f"{key}mlp_ratio", int(e.width * e.mlp_ratio), f"{prefix}blocks.0.mlp.fc1.weight", 0),
    ]


def _implied_recap(cfg: RecapConfig) -> _Implied:
    out: _Implied = []
    if cfg.has_encoder:
        out += _implied_encoder(cfg.encoder, "encoder.", ENCODER_PREFIX)
    aligners = [("video_aligner", cfg.video_aligner, "num_video_queries", cfg.num_video_queries, "video_queries")]
    if cfg.has_text:
        aligners.append(("text_aligner", cfg.text_aligner, "num_text_queries", cfg.num_text_queries, "text_queries"))
    for name, a, qkey, queries, qtensor in aligners:
        out += [
            (f"{name}.layers", a.layers, f"{name}.layers.", None),
            (f"{name}.width", a.width, f"{name}.ln.weight", 0),
            (f"{name}.intermediate", a.intermediate, f"{name}.layers.0.fc1.weight", 0),
            (qkey, queries, qtensor, 0),
        ]
    dec = cfg.decoder
    out += [
        ("decoder.n_layer", dec.n_layer, "decoder.h.", None),
        ("decoder.vocab_size", dec.vocab_size, "decoder.wte.weight", 0),
        ("decoder.n_embd", dec.n_embd, "decoder.wte.weight", 1),
        ("decoder.n_positions", dec.n_positions, "decoder.wpe.weight", 0),
        ("decoder.xattn_mlp_ratio", dec.n_embd * dec.xattn_mlp_ratio, "decoder.h.0.xmlp.c_fc.weight", 0),
    ]
    return out


def encoder_config(d: Mapping[str, Any], source: str | os.PathLike[str]) -> EncoderConfig:
    """The `EncoderConfig` of a parsed kind-"encoder" `config.json`, checked (`config.check_config`)."""
    try:
        return encoder_from_dict(d.get("encoder"))
    except ValueError as e:
        raise CheckpointError(f"{source}: bad encoder config ({_one_line(e)})") from e


def read_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The checkpoint's `meta.json` ({} when absent)."""
    p = Path(path) / META_FILE
    if not p.is_file():
        return {}
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise CheckpointError(f"{p}: cannot read the checkpoint metadata ({_json_error(e)})") from e
    return d if isinstance(d, dict) else {}


def read_card(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The model card in the checkpoint's `meta.json`: `{"domain": ..., "note": ...}`, or None when it has none.

    `domain: "synthetic"` marks a model that knows only the synthetic world (`caption` warns, the page says so).
    """
    card = read_meta(path).get("card")
    return card if isinstance(card, dict) else None


def recap_config(d: Mapping[str, Any], source: str | os.PathLike[str]) -> RecapConfig:
    """The `RecapConfig` of a parsed kind-"recap" `config.json`, of format 2 (`{"arch", "io"}`) or 1 (flat), checked
    (every field's type, the sizes' fit: `config.check_config`)."""
    fields = {k: v for k, v in d.items() if k not in ("format_version", "kind")}
    try:
        if d.get("format_version") == 1:
            return RecapConfig.from_flat_dict(fields)
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
        dtype: cast floating-point weights to this dtype (default: the model's, float32; weights stored in float16 or
            bfloat16 are upcast).

    Returns:
        `(model, tokenizer)`. The tokenizer is the folder's `tokenizer.json`, else GPT-2's when the config uses
        GPT-2's vocabulary and special ids (the released weights), else None.

    Raises:
        CheckpointError: not a checkpoint folder (with a hint for original/LaViLa `.pt` files), a corrupt or truncated
            `model.safetensors`, missing/unexpected keys or shape mismatches (named), or a tokenizer that does not
            match the model.
    """
    from videorecap.runtime import check_device

    if dtype is not None and not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype: give a torch.dtype such as torch.float16, not {dtype!r}")
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


def encoder_config_at(path: str | os.PathLike[str]) -> EncoderConfig:
    """The video encoder's config of the checkpoint folder `path` (what `load_encoder` would build; only config.json
    is read, so a command checks the folder with it before it creates anything).

    Raises:
        CheckpointError: not a checkpoint folder, or a model without an encoder.
    """
    folder = Path(path)
    d = read_config(folder)
    if d["kind"] == "encoder":
        return encoder_config(d, folder / CONFIG_FILE)
    cfg = recap_config(d, folder / CONFIG_FILE)
    if not cfg.has_encoder:
        raise CheckpointError(
            f"{folder}: a {cfg.level}-level model has no video encoder (it reads precomputed features); use the "
            "clip-level or unified checkpoint, or an encoder-only folder"
        )
    return cfg.encoder


def load_encoder(path: str | os.PathLike[str], *, device: str | torch.device = "cpu") -> VideoEncoder:
    """The video encoder of a full model folder (clip level or unified) or of an encoder-only folder, in eval mode.

    Raises:
        CheckpointError: not a checkpoint folder, a model without an encoder, or weights that do not match.
    """
    folder = Path(path)
    ecfg = encoder_config_at(folder)
    tensors = _read_safetensors(folder / MODEL_FILE, device=device, prefix=ENCODER_PREFIX)

    from videorecap.model.encoder import VideoEncoder

    encoder = _build_and_load(lambda: VideoEncoder(ecfg), tensors, folder / MODEL_FILE)
    encoder.to(device)
    encoder.eval()
    return encoder


def _checkpoint_folder(path: Path) -> Path:
    if not path.exists():
        if str(path) in BUNDLED_MODELS:  # a name the CLI and Captioner.load take, given to the one-folder loader
            raise CheckpointError(
                f"{path}: no such checkpoint folder here; {path} is the model bundled in the package, one folder per "
                f"level: load all three with videorecap.Captioner.load({str(path)!r}), or one with "
                f"load_model(videorecap.config.bundled_model_dir({str(path)!r}) / 'clip')"
            )
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
    expected = module.state_dict()
    _check_keys(expected, tensors, source)
    tensors = _match_dtypes(expected, tensors, source)
    module.load_state_dict(tensors, strict=True, assign=True)
    if any(t.is_meta for t in [*module.parameters(), *module.buffers()]):
        module = build()
        module.load_state_dict(tensors, strict=True)
    return module


def _match_dtypes(
    expected: Mapping[str, torch.Tensor], got: dict[str, torch.Tensor], source: Path
) -> dict[str, torch.Tensor]:
    """The tensors in the model's dtypes: floating-point weights stored narrower (`save_pretrained(dtype=...)` writes
    float16 or bfloat16) are upcast, so the model computes as it was built; weights stored as integers are refused."""
    out = dict(got)
    for k, want in expected.items():
        have = got[k].dtype
        if have == want.dtype:
            continue
        if want.dtype.is_floating_point and have.is_floating_point:
            out[k] = got[k].to(want.dtype)
        else:
            raise CheckpointError(
                f"{source}: {k} is stored as {str(have).removeprefix('torch.')}, but the model needs "
                f"{str(want.dtype).removeprefix('torch.')}; the file is damaged or was not written by videorecap "
                "(convert the original weights again)"
            )
    return out


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
    if tok.vocab_size < cfg.decoder.vocab_size - 128:  # a vocabulary may be padded (to a multiple of 64, say), no more
        logger.warning(
            "%s: %d tokens for a model of %d: unless the model's vocabulary was padded, this is not its tokenizer "
            "and its captions will be other words",
            source, tok.vocab_size, cfg.decoder.vocab_size,
        )  # fmt: skip


# ---- foreign files --------------------------------------------------------------------------------------------------
def describe_file(path: Path) -> str:
    """A one-line error for a file given where a checkpoint folder is expected, saying what it is if we can tell."""
    released = describe_released(path)
    if released is not None:
        return released
    if sniff_file(path) == "safetensors":
        if (path.parent / CONFIG_FILE).is_file():
            return f"{path} is a bare safetensors file: give its folder, {path.parent}"
        return (
            f"{path} is a bare safetensors file; a videorecap checkpoint is the folder that holds {MODEL_FILE}, "
            f"{CONFIG_FILE} and {META_FILE}: give that folder"
        )
    return f"{path} is not a videorecap checkpoint (expected a folder with {CONFIG_FILE} and {MODEL_FILE})"


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
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint: {_what_file(path, e)}") from None
    except Exception as e:  # noqa: BLE001 - garbage bytes can break the unpickler in any way (KeyError, IndexError...)
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint: {_what_file(path, e)}") from None


def _what_file(path: Path, e: BaseException) -> str:
    # What the file is says more than the unpickler's error, which for bytes that are no pickle at all is noise (a
    # text file gave "(101)", a KeyError on the byte "e"); the error is kept for a file that looks like PyTorch's.
    what = describe_bytes(path)
    if what is None:
        return f"it looks like a PyTorch file but is damaged or truncated ({_one_line(e)[:200]})"
    if what == "a safetensors file" and (path.parent / CONFIG_FILE).is_file():
        return f"it is {what} of a videorecap checkpoint, already converted: use its folder, {path.parent}"
    return f"it is {what}; give the released .pt/.pth file"


def _json_error(e: BaseException) -> str:
    if isinstance(e, RecursionError):
        return "nested too deeply to be a config; the file is damaged or not a videorecap checkpoint"
    return _one_line(e)


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__
