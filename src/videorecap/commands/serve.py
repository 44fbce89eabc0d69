"""Serve the project's own text model behind an OpenAI-compatible endpoint on this machine.

`videorecap serve --text-model DIR` loads a text-only checkpoint folder (made by `videorecap train` with a
`kind: text-summarizer` recipe) and answers POST /v1/chat/completions and GET /v1/models, so that anything that
speaks to an OpenAI-compatible server (`--llm URL` of pseudo-label and ask, or another tool) can use it. It binds
to 127.0.0.1 unless --host says otherwise, prints its URL on stdout, and runs until interrupted (Ctrl-C).

examples:
  videorecap serve --text-model runs/text/text/final --port 8000
  videorecap pseudo-label data/synth --level segment --llm http://127.0.0.1:8000/v1 -o labels
"""

from __future__ import annotations

import argparse
import threading

from videorecap.commands._options import add_device_argument, nonnegative_int

HELP = "serve the own text model behind an OpenAI-compatible endpoint (/v1/chat/completions)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--text-model",
        required=True,
        metavar="DIR",
        help="the text model's checkpoint folder (videorecap train with a text-summarizer recipe)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine)")
    parser.add_argument(
        "--port", type=nonnegative_int, default=8000, metavar="N", help="port (default: 8000; 0: any free port)"
    )
    parser.add_argument(
        "--model-name",
        default=None,
        metavar="NAME",
        help="the model's name in /v1/models and in requests (default: videorecap-text-HASH, HASH from its weights)",
    )
    add_device_argument(parser, "cpu")


def run(args: argparse.Namespace) -> int:
    from videorecap.errors import InputError, describe_os_error
    from videorecap.llm.serve import text_model_app
    from videorecap.llm.textmodel import TextModel

    model = TextModel.load(args.text_model, device=args.device or "cpu", name=args.model_name)
    try:
        server = text_model_app(model).serve(args.host, args.port)
    except OSError as e:
        raise InputError(
            f"--host {args.host} --port {args.port}: cannot listen there ({describe_os_error(e)})"
        ) from None
    print(f"serving {model.name} at {server.url}/v1 (Ctrl-C stops)", flush=True)
    try:
        threading.Event().wait()  # the server runs in its own thread until the process is interrupted
    finally:
        server.close()
    return 0
