"""The `videorecap` command line.

Each command lives in `videorecap.commands.<name>` and exposes:

- `HELP`: one line for `videorecap --help`;
- `add_arguments(parser)`: its flags (with help strings);
- `run(args) -> int`: the exit code.

A `VideoRecapError` (a user mistake: bad file, bad flag, missing dependency) becomes one line on stderr and its
exit code, never a traceback. Only the CLI prints; the library logs.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

# Commands that run a model or decode video: they take --threads, and get a thread setting that does not
# oversubscribe the CPU (runtime.set_threads) before they start.
COMPUTING = frozenset({"demo", "caption", "features", "train", "evaluate"})

# `videorecap <name>` -> module videorecap.commands.<module>. Order is the order of `--help`.
COMMANDS: dict[str, str] = {
    "demo": "demo",
    "caption": "caption",
    "features": "features",
    "train": "train",
    "evaluate": "evaluate",
    "score": "score",
    "convert": "convert",
    "info": "info",
    "synth": "synth",
}


def _load(name: str):  # noqa: ANN202 - returns a module
    return importlib.import_module(f"videorecap.commands.{COMMANDS[name]}")


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (the option and what is wrong), exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from videorecap import __version__
    from videorecap.commands._options import THREADS_HELP, positive_int

    parser = _Parser(
        prog="videorecap",
        description=(
            "Hierarchical captions for videos of any length (Video ReCap, CVPR 2024): a caption for every clip "
            "window (4 s), a description for every segment window (the model's: 180 s for Video ReCap, 40 s for "
            "the bundled recap-synth) and a summary of the whole video."
        ),
    )
    parser.add_argument("--version", action="version", version=f"videorecap {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    parser.add_argument("--threads", type=positive_int, default=None, metavar="N", help=THREADS_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        mod = _load(name)
        p = sub.add_parser(
            name,
            help=mod.HELP,
            description=(mod.__doc__ or mod.HELP).strip(),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        mod.add_arguments(p)
        if name in COMPUTING:
            from videorecap.commands._options import add_threads_argument

            add_threads_argument(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    logging.basicConfig(
        level=[logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)],
        format="%(levelname)s %(name)s: %(message)s",
    )
    from videorecap.errors import VideoRecapError, describe_os_error

    try:
        if getattr(args, "device", None):
            from videorecap.runtime import check_device

            args.device = check_device(args.device)  # a missing GPU is one line here, before any work
        if args.command in COMPUTING:
            from videorecap.runtime import set_threads

            set_threads(args.threads)
        return int(args._run(args) or 0)
    except VideoRecapError as e:
        _close_progress_bars()
        print(f"videorecap {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        _close_progress_bars()
        print(f"videorecap {args.command}: interrupted", file=sys.stderr)
        return 130
    except OSError as e:
        # The safety net for what no message at the source names: a full disk, a permission, a path under /proc.
        # The file and the system's reason are the one line; the traceback is for -v.
        _close_progress_bars()
        logging.getLogger("videorecap.cli").info("traceback", exc_info=True)
        print(f"videorecap {args.command}: error: {describe_os_error(e)}", file=sys.stderr)
        return 2
    except (RecursionError, MemoryError) as e:
        _close_progress_bars()
        logging.getLogger("videorecap.cli").info("traceback", exc_info=True)
        what = "nested too deeply" if isinstance(e, RecursionError) else "too large for the memory available"
        print(f"videorecap {args.command}: error: an input is {what} ({type(e).__name__}); run with -v for where",
              file=sys.stderr)  # fmt: skip
        return 1


def _close_progress_bars() -> None:
    """Close open tqdm bars so that a last message starts on a line of its own, not after a half-drawn bar."""
    tqdm_module = sys.modules.get("tqdm.std")
    if tqdm_module is None:
        return
    for bar in list(getattr(tqdm_module.tqdm, "_instances", ())):
        try:
            bar.close()
        except Exception:  # noqa: BLE001 - a bar that cannot be closed must not hide the message
            pass


if __name__ == "__main__":
    sys.exit(main())
