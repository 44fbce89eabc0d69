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


def build_parser() -> argparse.ArgumentParser:
    from videorecap import __version__

    parser = argparse.ArgumentParser(
        prog="videorecap",
        description=(
            "Hierarchical captions for videos of any length (Video ReCap, CVPR 2024): a caption every 4 s, "
            "a description every 3 min and a summary of the whole video."
        ),
    )
    parser.add_argument("--version", action="version", version=f"videorecap {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
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
    from videorecap.errors import VideoRecapError

    try:
        return int(args._run(args) or 0)
    except VideoRecapError as e:
        print(f"videorecap {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"videorecap {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
