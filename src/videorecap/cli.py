"""The `videorecap` command line.

Each command lives in `videorecap.commands.<name>` and exposes:

- `HELP`: one line for `videorecap --help`;
- `add_arguments(parser)`: its flags (with help strings);
- `run(args) -> int`: the exit code.

A `VideoRecapError` (a user mistake: bad file, bad flag, missing dependency) becomes one line on stderr and its
exit code, never a traceback. Only the CLI prints; the library logs. The options several commands share, the
global flags and the exit codes (`EXIT_CODES`) are documented once, in docs/cli.md.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import textwrap
from collections.abc import Sequence
from typing import NoReturn

# Commands that run a model or decode video: they take --threads, and get a thread setting that does not
# oversubscribe the CPU (runtime.set_threads) before they start. The commands that take --device define it
# themselves (commands/_options.add_device_argument); `takes_device` finds them.
COMPUTING = frozenset(
    {"demo", "caption", "features", "train", "evaluate", "serve", "pseudo-label", "ask", "live", "search"}
)

# `videorecap <name>` -> module videorecap.commands.<module>. Order is the order of `--help`.
COMMANDS: dict[str, str] = {
    "demo": "demo",
    "caption": "caption",
    "live": "live",
    "features": "features",
    "train": "train",
    "evaluate": "evaluate",
    "score": "score",
    "search": "search",
    "convert": "convert",
    "info": "info",
    "synth": "synth",
    "serve": "serve",
    "pseudo-label": "pseudo_label",
    "ask": "ask",
}

# The exit codes of every command (docs/cli.md has the same table; tests/commands/test_help.py checks both).
EXIT_CODES: dict[int, str] = {
    0: "done: every input succeeded",
    1: "some inputs failed (each said in one line on stderr); the others were done",
    2: "usage or configuration error (a bad flag, file, model or output), found before any work",
    130: "interrupted (Ctrl-C); a run started again continues where it stopped",
}

GLOBAL_GROUP = "global options (also accepted before the command)"


def _load(name: str):  # noqa: ANN202 - returns a module
    return importlib.import_module(f"videorecap.commands.{COMMANDS[name]}")


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (the option and what is wrong), exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _epilog() -> str:
    codes = "\n".join(f"  {code:<4} {meaning}" for code, meaning in EXIT_CODES.items())
    note = textwrap.fill(
        "The global options may also be given after the command; --threads and --device only to the commands "
        "that use them (see their --help).",
        width=79,
    )
    return f"{note}\n\nexit codes (every command):\n{codes}\n\nsee docs/cli.md for the options every command shares"


def _add_global_arguments(p: argparse.ArgumentParser | argparse._ArgumentGroup, after: bool) -> None:
    """-v/--verbose and -q/--quiet: before the command (`after` False) and again on every command.

    After the command the defaults are SUPPRESS, so that a flag given only before it is not overwritten, and -v
    counts into its own destination (argparse parses a command into a fresh namespace), added up in `main`.
    """
    p.add_argument(
        "-v",
        "--verbose",
        dest="_verbose_after" if after else "verbose",
        action="count",
        default=argparse.SUPPRESS if after else 0,
        help="more log output (-vv for debug)",
    )
    p.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=argparse.SUPPRESS if after else False,
        help="warnings and errors only, no progress bars",
    )


def takes_device(parser: argparse.ArgumentParser) -> bool:
    """Whether a command's parser defines --device (a command that places a model on a device)."""
    return any("--device" in a.option_strings for a in parser._actions)


def command_parsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """`{name: parser}` of every command of `build_parser()`."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _has_subcommands(parser: argparse.ArgumentParser) -> bool:
    return any(isinstance(a, argparse._SubParsersAction) for a in parser._actions)


def build_parser() -> argparse.ArgumentParser:
    from videorecap import __version__
    from videorecap.commands._options import DEVICE_HELP, THREADS_HELP, add_threads_argument, device_name, thread_count

    parser = _Parser(
        prog="videorecap",
        description=textwrap.fill(  # wrapped here: the raw formatter keeps the exit code table of the epilog
            "Hierarchical captions for videos of any length (Video ReCap, CVPR 2024): a caption for every clip "
            "window (4 s), a description for every segment window (the model's: 180 s for Video ReCap, 40 s for "
            "the bundled recap-synth) and a summary of the whole video.",
            width=79,
        ),
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"videorecap {__version__}")
    _add_global_arguments(parser, after=False)
    parser.add_argument("--threads", type=thread_count, default=None, metavar="N", help=THREADS_HELP)
    device = parser.add_argument("--device", type=device_name, default=None, metavar="DEVICE")
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
        # a command with actions of its own (synth make) takes the global flags after its action too
        for q in [p, *command_parsers(p).values()] if _has_subcommands(p) else [p]:
            g = q.add_argument_group(GLOBAL_GROUP)
            _add_global_arguments(g, after=True)
            if name in COMPUTING:
                add_threads_argument(g)
        p.set_defaults(_run=mod.run)
    users = ", ".join(name for name, p in command_parsers(parser).items() if takes_device(p))
    device.help = f"{DEVICE_HELP.split(';')[0]}, for the commands that take it ({users})"
    return parser


def _merge_global_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Add up -v given before and after the command; reject a global flag the command does not use (exit 2)."""
    args.verbose += getattr(args, "_verbose_after", 0)
    if args.verbose and args.quiet:
        parser.error("-q/--quiet and -v/--verbose contradict each other; give one")
    if args.quiet:
        args.no_progress = True  # every command's progress bars follow args.no_progress
    if args.threads is not None and args.command not in COMPUTING:
        parser.error(f"--threads does not apply to `{args.command}` (it runs no model)")
    if args.device is not None and not takes_device(command_parsers(parser)[args.command]):
        parser.error(f"--device does not apply to `{args.command}` (it places no model on a device)")


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    _merge_global_flags(parser, args)
    logging.basicConfig(
        level=[logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)],
        format="%(levelname)s %(name)s: %(message)s",
    )
    from videorecap.errors import VideoRecapError, describe_os_error

    try:
        if args.device:
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
