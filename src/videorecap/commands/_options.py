"""Option types and checks shared by the commands: one definition of each, one wording of each error.

The `add_*_argument` functions define the options that several commands share (the output folder, the device, the
token limits, the partial-video flag) with one spelling, one metavar and one help text; docs/cli.md lists them and
tests/commands/test_help.py checks every command's `--help` against them.

The `type=` functions reject an impossible value (NaN, zero, a negative count, a 1-ms window) while the command
line is parsed, as one line naming the option. The `*_output*` checks run first thing in a command, before any
model loads or video decodes: an output that cannot be written is an `InputError`, never a traceback at the end.
"""

from __future__ import annotations

import argparse
import math
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from videorecap.errors import InputError

LEVEL_NAMES = ("clip", "segment", "video")  # the levels --max-tokens may name (config.LEVELS, without importing it)
FEATURE_LEVEL_NAMES = ("segment", "video")  # the levels --num-features may name (levelio.FEATURE_LEVELS)

# Shortest clip or segment window an option accepts: below this a window holds too few frames to mean anything.
MIN_WINDOW_SECONDS = 0.1

THREADS_HELP = (
    "CPU threads for the model (default: the cores less one for video decoding, or $OMP_NUM_THREADS when set); "
    "also accepted before the command"
)
DEVICE_HELP = "cpu, cuda, cuda:N or mps; also accepted before the command"
OUTPUT_HELP = "output folder, created when missing"
MAX_TOKENS_HELP = "max new tokens: N for every level, or some levels as clip=N,segment=N,video=N"
NUM_FEATURES_HELP = (
    "CLS features the segment and video levels read (the original's num_video_feat: 80/256 in the current "
    "scripts, 40/512 for the released weights): K for both, or segment=K,video=K"
)
PARTIAL_HELP = "on a decode error part-way through a video, keep the windows decoded before it instead of failing"
ORIGINAL_SETTINGS_HELP = "behave as the original Video ReCap code where ours differs"


def _number(text: str, kind: type) -> float:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected {'an integer' if kind is int else 'a number'}, got {text!r}"
        ) from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1 (batch sizes, counts, threads)."""
    value = int(_number(text, int))
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def nonnegative_int(text: str) -> int:
    """An integer >= 0 (worker counts)."""
    value = int(_number(text, int))
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


PER_CORE_MAX = 4  # threads or worker processes per usable core that --threads and --workers accept


def per_core_count(text: str, *, minimum: int = 1) -> int:
    """An integer from `minimum` to PER_CORE_MAX per usable core (`runtime.cpu_count`): --threads and --workers.
    Thousands of OpenMP threads hang or crash the process, and thousands of loader processes stall the machine; more
    than a few per core only wait for each other."""
    from videorecap.runtime import cpu_count

    value = positive_int(text) if minimum == 1 else nonnegative_int(text)
    cores = cpu_count()
    if value > PER_CORE_MAX * cores:
        raise argparse.ArgumentTypeError(
            f"{value} is more than {PER_CORE_MAX} per core: at most {PER_CORE_MAX * cores} on the {cores} "
            f"core{'s' if cores != 1 else ''} this process may use"
        )
    return value


def thread_count(text: str) -> int:
    """--threads N: 1 to PER_CORE_MAX per usable core."""
    return per_core_count(text)


def worker_count(text: str) -> int:
    """--workers N: 0 (load in the main process) to PER_CORE_MAX per usable core."""
    return per_core_count(text, minimum=0)


def port_number(text: str) -> int:
    """A TCP port, 0-65535 (0: any free port; the server prints the one it got). Every flag that takes a port."""
    value = int(_number(text, int))
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port from 0 to 65535 (0: any free port), got {value}")
    return value


def listen_host(text: str) -> str:
    """The address a server listens on (`--host`); an empty one (an unset shell variable, most likely) is refused
    rather than taken as every interface, which would print an unusable URL and expose the server."""
    if not text.strip():
        raise argparse.ArgumentTypeError(
            "empty; give an address, e.g. 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)"
        )
    return text.strip()


def positive_float(text: str) -> float:
    """A finite number > 0 (rates such as --grid-fps)."""
    value = _number(text, float)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def nonnegative_float(text: str) -> float:
    """A finite number >= 0."""
    value = _number(text, float)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def at_most(kind: Callable[[str], float], limit: float) -> Callable[[str], float]:
    """The type `kind` (positive_int, positive_float, ...) with an upper bound: a value whose work would not fit
    (memory, time) is refused at parsing, not part-way through."""

    def check(text: str) -> float:
        value = kind(text)
        if value > limit:
            raise argparse.ArgumentTypeError(f"must be at most {limit:g}, got {text}")
        return value

    check.__name__ = kind.__name__
    return check


def finite_float(text: str) -> float:
    """Any finite number (a beam search length penalty may be negative)."""
    return _number(text, float)


def unit_fraction(text: str) -> float:
    """A number in (0, 1] (a nucleus mass)."""
    value = _number(text, float)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 1, got {text}")
    return value


def seed(text: str) -> int:
    """A random seed: an integer from 0 to `runtime.SEED_MAX`, which every consumer takes (torch, numpy)."""
    from videorecap.runtime import SEED_MAX

    value = int(_number(text, int))
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"must be an integer from 0 to {SEED_MAX}, got {value}")
    return value


def output_path(text: str) -> Path:
    """The path of -o: not empty (`Path("")` is the current folder, which nobody means by an empty value)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty; give a folder (use . for the current one)")
    return Path(text)


def window_seconds(text: str) -> float:
    """A window length in seconds: finite and at least `MIN_WINDOW_SECONDS`."""
    value = _number(text, float)
    if value < MIN_WINDOW_SECONDS:
        raise argparse.ArgumentTypeError(f"must be at least {MIN_WINDOW_SECONDS:g} seconds, got {text}")
    return value


def device_name(text: str) -> str:
    """cpu, cuda, cuda:N or mps (whether the hardware is there is checked once the command starts)."""
    from videorecap.runtime import parse_device

    try:
        return parse_device(text)
    except InputError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a device; use cpu, cuda, cuda:N or mps") from None


def parse_max_tokens(spec: str) -> dict[str, int]:
    """`"77"` (every level) or `"clip=77,segment=77,video=120"` (some levels) -> `{level: tokens}`; a later part
    wins (`"50,video=100"`). The one parser of `--max-tokens`, for `caption` and `evaluate`.

    Raises:
        InputError: a part that is not N or LEVEL=N, an unknown level, or a count below 1.
    """
    return _per_level_counts(spec, "--max-tokens", LEVEL_NAMES, "clip=77,video=120")


def parse_num_features(spec: str) -> dict[str, int]:
    """`"40"` (both feature levels) or `"segment=40,video=512"` -> `{level: K}`, as `parse_max_tokens`. The one
    parser of `--num-features`, for `caption` and `evaluate`.

    Raises:
        InputError: a part that is not K or LEVEL=K, a level other than segment or video, or a count below 1.
    """
    return _per_level_counts(spec, "--num-features", FEATURE_LEVEL_NAMES, "segment=40,video=512")


def _per_level_counts(spec: str, option: str, levels: tuple[str, ...], example: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        level, sep, value = part.partition("=")
        try:
            n = int(value if sep else level)
        except ValueError:
            raise InputError(f"{option}: {part!r} is not N or LEVEL=N with N an integer (e.g. {example})") from None
        if n < 1:
            raise InputError(f"{option}: {part!r} must be at least 1")
        if not sep:
            out.update(dict.fromkeys(levels, n))
            continue
        if level.strip() not in levels:
            names = f"{', '.join(levels[:-1])} or {levels[-1]}"
            raise InputError(f"{option}: unknown level {level.strip()!r}; use {names}")
        out[level.strip()] = n
    if not out:
        raise InputError(f"{option}: {spec!r} names no count; give N or LEVEL=N")
    return out


def max_tokens(text: str) -> dict[str, int]:
    """argparse type of --max-tokens (see `parse_max_tokens`): a mistake is a usage error naming the option."""
    try:
        return parse_max_tokens(text)
    except InputError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("--max-tokens: ")) from None


def num_features(text: str) -> dict[str, int]:
    """argparse type of --num-features (see `parse_num_features`): a mistake is a usage error naming the option."""
    try:
        return parse_num_features(text)
    except InputError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("--num-features: ")) from None


def field_default(cls: type, name: str) -> Any:
    """The default of a dataclass field: a flag that fills a typed option takes its default from there, so that
    the option class is the one place it is written."""
    import dataclasses

    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    raise ValueError(f"{cls.__name__}.{name} has no default")


def add_output_argument(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    detail: str,
    *,
    required: bool = False,
    default: Path | None = None,
    old_names: tuple[str, ...] = (),
) -> None:
    """-o/--output OUT, the folder a command writes into (`args.output`, a Path or None).

    `detail` follows the shared help text (what goes into the folder, the default). `old_names` are earlier
    spellings (train's --output-dir, synth's --out): still accepted so that existing scripts keep working, but
    hidden from --help.
    """
    if required and old_names:
        # required: -o or an old name (argparse's own `required` would want -o itself), not both
        parser = parser.add_mutually_exclusive_group(required=True)
    parser.add_argument(
        "-o",
        "--output",
        required=required and not old_names,
        type=output_path,
        default=default,
        metavar="OUT",
        help=f"{OUTPUT_HELP}: {detail}",
    )
    for name in old_names:
        parser.add_argument(name, dest="output", type=output_path, default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def add_device_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup, default: str) -> None:
    """--device on a command (`args.device`, None when not given); `default` says what None means there.

    SUPPRESS keeps the value given before the command when it is not repeated after it."""
    parser.add_argument(
        "--device",
        type=device_name,
        default=argparse.SUPPRESS,
        metavar="DEVICE",
        help=f"{DEVICE_HELP} (default: {default})",
    )


def add_hw_decode_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--hw-decode DEVICE (`args.hw_decode`, None: software), applied by `apply_hw_decode` (caption, features,
    evaluate --videos, live)."""
    parser.add_argument(
        "--hw-decode",
        metavar="DEVICE",
        help="decode the video on a hardware decoder through FFmpeg: cuda (NVIDIA NVDEC, on the model's GPU; "
        "cuda:N for GPU N); a codec the device does not decode is decoded in software. Not with --ray, whose "
        "decoding runs on CPU workers (default: software decoding on the CPU)",
    )


def apply_hw_decode(args: argparse.Namespace, device: str) -> None:
    """Check `--hw-decode` (the device opens; not with --ray) and decode with it from now on (InputError, exit 2).
    A plain `cuda` decodes on the model's GPU, `device` (each torchrun rank on its own)."""
    if args.hw_decode is None:
        return
    from videorecap.errors import InputError
    from videorecap.video.io import set_hw_decode

    if getattr(args, "ray", None) is not None:
        raise InputError("--hw-decode does not apply with --ray: the cluster decodes on its CPU workers")
    spec = args.hw_decode
    if spec == "cuda" and device.startswith("cuda:"):
        spec = device
    set_hw_decode(spec)


def add_max_tokens_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--max-tokens N | clip=N,segment=N,video=N (`args.max_tokens`: `{level: tokens}` or None)."""
    parser.add_argument(
        "--max-tokens",
        type=max_tokens,
        default=None,
        metavar="N|LEVEL=N,...",
        help=f"{MAX_TOKENS_HELP} (default: the model's)",
    )


def add_model_arguments(group: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """The models of a captioning run (caption, live): --model, or one folder per level, and --tokenizer; resolved by
    `pipeline.Captioner.load` (`pipeline.resolve_model` for names and folders)."""
    group.add_argument("--model", help="checkpoint folder (ReCap-U or one level), a folder with clip/ segment/ video/, "
                       "or recap-synth (the bundled model)")  # fmt: skip
    group.add_argument("--clip-model", help="checkpoint folder of the clip level")
    group.add_argument("--segment-model", help="checkpoint folder of the segment level")
    group.add_argument("--video-model", help="checkpoint folder of the video level")
    group.add_argument("--tokenizer", help="tokenizer folder (vocab.json + merges.txt, or tokenizer.json)")


def check_models(args: argparse.Namespace, levels: Any) -> None:
    """The models of `add_model_arguments` that are missing, no checkpoint, or lack one of `levels`: one line
    (CheckpointError or InputError, exit 2) before the output folder is made. `Captioner.model_paths` makes the same
    resolution as `Captioner.load`, reading only config.json files."""
    from videorecap.pipeline import Captioner

    Captioner.model_paths(args.model, clip=args.clip_model, segment=args.segment_model, video=args.video_model,
                          levels=levels)  # fmt: skip


def add_num_features_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--num-features K | segment=K,video=K (`args.num_features`: `{level: K}` or None), over the models' level I/O."""
    parser.add_argument(
        "--num-features",
        type=num_features,
        default=None,
        metavar="K|LEVEL=K,...",
        help=f"{NUM_FEATURES_HELP} (default: the model's)",
    )


def add_partial_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup, detail: str) -> None:
    """--allow-partial (`args.allow_partial`); features' earlier --keep-partial stays a hidden alias."""
    parser.add_argument("--allow-partial", action="store_true", help=f"{PARTIAL_HELP}{detail}")
    parser.add_argument("--keep-partial", dest="allow_partial", action="store_true", help=argparse.SUPPRESS)


def add_original_settings_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup, detail: str) -> None:
    """--original-settings (`args.original_settings`): the original code's behaviour; `detail` says what that is in
    this command (evaluate: the original eval scripts' protocol; caption: the summary reads the first 512 tokens)."""
    parser.add_argument("--original-settings", action="store_true", help=f"{ORIGINAL_SETTINGS_HELP}: {detail}")


def add_threads_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--threads N on a command; SUPPRESS keeps the value given before the command when it is not repeated."""
    parser.add_argument("--threads", type=thread_count, default=argparse.SUPPRESS, metavar="N", help=THREADS_HELP)


def add_recursive_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument("--recursive", action="store_true", help="also take the videos in subfolders of a folder")


def add_min_tail_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    from videorecap.video.sampling import DEFAULT_MIN_TAIL_SECONDS

    parser.add_argument(
        "--min-tail-seconds",
        type=nonnegative_float,
        default=DEFAULT_MIN_TAIL_SECONDS,
        metavar="S",
        help=f"a last clip window shorter than S seconds joins the previous one, and a last segment shorter than a "
        f"clip window joins the previous segment (default: {DEFAULT_MIN_TAIL_SECONDS:g}; 0 keeps every tail, as "
        "the original)",
    )


def _writable(folder: Path, flag: str, path: Path) -> None:
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise InputError(f"{flag} {path}: cannot write there ({e.strerror or e})") from None


def prepare_output_dir(path: str | Path, flag: str = "-o") -> Path:
    """Create the output folder (with its parents) and check that it can be written; an `InputError` if not."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise InputError(f"{flag} {p}: exists and is not a folder; give a folder (it is created when missing)")
    from videorecap.lock import make_output_folder

    try:
        make_output_folder(p)  # made here: removed again if the job writes nothing in it (lock.output_lock)
    except OSError as e:
        raise InputError(f"{flag} {p}: cannot create the folder ({e.strerror or e})") from None
    _writable(p, flag, p)
    return p


def check_output_file(path: str | Path, flag: str) -> Path:
    """An output file: not an existing folder, and its folder can be created and written."""
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{flag} {p}: is a folder; give a file name")
    prepare_output_dir(p.parent if str(p.parent) else Path("."), flag)
    return p


def check_new_folder(path: str | Path, flag: str) -> Path:
    """A folder that is written as a whole later (atomically, next to its final place): its parent must be
    writable, and the path must not be a file."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise InputError(f"{flag} {p}: exists and is not a folder")
    parent = p.parent if str(p.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        raise InputError(f"{flag} {p}: {parent} is a file, not a folder")
    prepare_output_dir(parent, flag)
    return p


def add_wait_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument(
        "--wait",
        action="store_true",
        help="when another job is writing the output folder, wait for it to finish (default: stop at once, exit 2)",
    )


def add_llm_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup, *, text_model: bool = True) -> None:
    """The text-model backend: --llm URL | --text-model DIR, with --llm-model, --llm-key-env, --llm-concurrency,
    --llm-timeout and --llm-retries.
    `text_model=False` leaves --text-model out (`serve` defines its own: the model it serves).

    `open_llm_backend(args, cache_dir)` turns them into a backend (`videorecap.llm.backend.open_backend`). The API key
    is read from the environment variable --llm-key-env names, never from a flag or a file.
    """
    from videorecap.llm.backend import DEFAULT_CONCURRENCY, DEFAULT_KEY_ENV, DEFAULT_RETRIES, DEFAULT_TIMEOUT

    parser.add_argument(
        "--llm",
        default=None,
        metavar="URL",
        help="an OpenAI-compatible server (vLLM, llama.cpp, Ollama, a hosted API, videorecap serve), e.g. "
        "http://127.0.0.1:8000/v1",
    )
    parser.add_argument(
        "--llm-model", default=None, metavar="NAME", help="the model on the --llm server (default: its first)"
    )
    parser.add_argument(
        "--llm-key-env",
        default=DEFAULT_KEY_ENV,
        metavar="VAR",
        help=f"environment variable holding the server's API key (default: {DEFAULT_KEY_ENV}; unset: no key sent)",
    )
    if text_model:
        parser.add_argument(
            "--text-model",
            type=Path,
            default=None,
            metavar="DIR",
            help="the project's own text model (a checkpoint folder of a text-summarizer recipe), run in this process",
        )
    parser.add_argument(
        "--llm-concurrency",
        type=positive_int,
        default=DEFAULT_CONCURRENCY,
        metavar="N",
        help=f"requests to the --llm server in flight at once (default: {DEFAULT_CONCURRENCY})",
    )
    parser.add_argument(
        "--llm-timeout",
        type=positive_float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"the longest wait for one answer from the --llm server before it counts as failed and is retried "
        f"(default: {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--llm-retries",
        type=nonnegative_int,
        default=DEFAULT_RETRIES,
        metavar="N",
        help=f"further attempts of a request to the --llm server after a timeout, a dropped connection, 429 or 5xx, "
        f"waiting 0.5 s, 1 s, 2 s, ... between them (default: {DEFAULT_RETRIES}; 0: fail at the first)",
    )


def check_llm_arguments(args: argparse.Namespace) -> None:
    """`add_llm_arguments`' flags checked without a server or weights (`llm.backend.check_backend`): one line before
    the command creates its outputs."""
    from videorecap.llm.backend import check_backend

    check_backend(args.llm, getattr(args, "text_model", None), args.llm_model)


def open_llm_backend(args: argparse.Namespace, cache_dir: str | Path | None = None, device: str = "cpu") -> Any:
    """The backend of `add_llm_arguments`' flags; answers cached in `cache_dir` when given."""
    from videorecap.llm.backend import open_backend

    return open_backend(
        args.llm,
        getattr(args, "text_model", None),
        args.llm_model,
        key_env=args.llm_key_env,
        concurrency=args.llm_concurrency,
        timeout=args.llm_timeout,
        retries=args.llm_retries,
        cache_dir=cache_dir,
        device=device,
    )


PRECISION_ENV = "VIDEORECAP_PRECISION"  # the default of --precision when set (the tests pin fp32 with it)
PRECISION_HELP = (
    "arithmetic of the models: auto (the fastest path here that passed its fidelity gate: bf16 on a GPU or a CPU with "
    "AMX/AVX512_BF16, fp32-onednn on a CPU where oneDNN's kernels measure faster, else fp32), fp32 (the original's, "
    "bit for bit), fp32-onednn (fp32 through oneDNN's matrix kernels: last-bit differences; CPU), bf16, or int8 "
    "(CPU, dynamic quantization; opt-in)"
)


def add_precision_argument(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, extra: tuple[str, ...] = ()
) -> None:
    """--precision auto|fp32|fp32-onednn|bf16|int8 (`args.precision`); default `$VIDEORECAP_PRECISION`, else auto.
    `extra` names more accepted values (features keeps fp16 on a GPU). A bad value, given or from the environment, is a
    usage error naming where it came from (argparse runs `type` on a string default too)."""
    import os

    from videorecap.runtime import PRECISIONS

    choices = (*PRECISIONS, *extra)
    env = os.environ.get(PRECISION_ENV)

    def precision(text: str) -> str:
        if text not in choices:
            where = f" (from ${PRECISION_ENV})" if text == env else ""
            raise argparse.ArgumentTypeError(f"{text!r}{where} is not a precision; use {', '.join(choices)}")
        return text

    default = env or "auto"
    more = f"; also {', '.join(extra)} on a GPU" if extra else ""  # features keeps fp16, as it did before
    parser.add_argument(
        "--precision",
        type=precision,
        default=default,
        metavar="|".join(PRECISIONS),  # one spelling on every command; `more` names the extra values
        help=f"{PRECISION_HELP}{more} (default: {default})",
    )


def add_compile_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--compile (`args.compile`): the video encoder compiled once per machine and cached (`videorecap.compiled`)."""
    parser.add_argument(
        "--compile",
        action="store_true",
        help="compile the video encoder for this machine (AOTInductor): once, about a minute at recap-base, kept in "
        "$VIDEORECAP_CACHE_DIR (default ~/.cache/videorecap), so later runs load it in seconds; compiling needs a C++ "
        "compiler on a CPU (with --ray, on every machine), loading does not; not with int8. Worth it for long jobs: "
        "a video-hour ran 1.13-1.23x faster on our test CPU",
    )


def check_compile_arguments(args: argparse.Namespace, device: str) -> None:
    """--compile's mistakes, before the output folder is made: int8, no C++ compiler for a CPU model. With --ray the
    compiler is looked for here, on the driver's machine (the actors compile on theirs, into each node's cache)."""
    if not getattr(args, "compile", False):
        return
    import torch

    from videorecap.compiled import check_compile

    check_compile(args.precision, torch.device(device))


def prepare_compiled_encoder(encoder: Any, command: str) -> None:
    """--compile: load the compiled encoder before the work starts, or compile it with a line saying so (else the
    first batch would stand still for a minute without a word)."""
    import sys

    from videorecap.compiled import CompiledEncoder

    if not isinstance(encoder, CompiledEncoder):
        return
    x = encoder.example()
    if not encoder.cached(x):
        print(
            f"videorecap {command}: compiling the video encoder for this machine ({encoder.precision}; once, about a "
            f"minute at recap-base) into {encoder.cache}",
            file=sys.stderr,
        )
    encoder.prepare(x)


def compile_clip_encoder(captioner: Any, command: str, prepare: bool = True) -> None:
    """--compile for a `pipeline.Captioner`: its clip encoder compiled (`Captioner.compile_encoder`), then loaded or
    compiled now (`prepare_compiled_encoder`); with `prepare=False` only at its first batch, for models that may
    never run it (a Ray driver's, which only give fingerprints)."""
    captioner.compile_encoder()
    if prepare:
        prepare_compiled_encoder(captioner.model("clip").encoder, command)


def add_ray_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """`--ray [ADDRESS]` and `--ray-actors N` (features and caption; docs/ray.md)."""
    parser.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="run on a Ray cluster as a Ray Data pipeline (pip install 'videorecap[ray]'): ADDRESS is the head's "
        "host:port (or ray://host:10001); without it, the cluster RAY_ADDRESS or a local `ray start` names, else a "
        "Ray started for this run. Write --ray=ADDRESS, or put --ray after the inputs (docs/ray.md)",
    )
    parser.add_argument(
        "--ray-actors",
        type=positive_int,
        metavar="N",
        help="with --ray: model actors at most (default: one per GPU of the cluster; without GPUs, one per 2 CPUs)",
    )


def connect_ray(args: argparse.Namespace) -> Any:
    """Check the --ray options and connect (videorecap.raydata.connect); None without --ray."""
    if args.ray is None:
        if args.ray_actors is not None:
            raise InputError("--ray-actors needs --ray")
        return None
    from videorecap import distributed

    if distributed.rank_world()[1] > 1:
        raise InputError("--ray runs the whole job from one process: start it without torchrun")
    from videorecap import raydata

    return raydata.connect(args.ray or None, progress=not args.no_progress)
