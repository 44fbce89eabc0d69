"""Option types and checks shared by the commands: one definition of each, one wording of each error.

The `type=` functions reject an impossible value (NaN, zero, a negative count, a 1-ms window) while the command
line is parsed, as one line naming the option. The `*_output*` checks run first thing in a command, before any
model loads or video decodes: an output that cannot be written is an `InputError`, never a traceback at the end.
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

from videorecap.errors import InputError

# Shortest clip or segment window an option accepts: below this a window holds too few frames to mean anything.
MIN_WINDOW_SECONDS = 0.1

THREADS_HELP = (
    "CPU threads for the model (default: the cores less one for video decoding, or $OMP_NUM_THREADS when set); "
    "also accepted before the command"
)


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


def add_threads_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--threads N on a command; SUPPRESS keeps the value given before the command when it is not repeated."""
    parser.add_argument("--threads", type=positive_int, default=argparse.SUPPRESS, metavar="N", help=THREADS_HELP)


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
    try:
        p.mkdir(parents=True, exist_ok=True)
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
