"""The OpenAI-compatible endpoint of the own text model, on the one local HTTP server (`videorecap.httpserve`).

    GET  /v1/models             {"object": "list", "data": [{"id": NAME, "object": "model", "owned_by": "videorecap",
                                 "weights": HASH}]}   (NAME: videorecap-text-HASH8 unless --model-name)
    POST /v1/chat/completions   {"model", "messages", "max_tokens", "temperature"} -> {"choices": [{"message":
                                 {"role": "assistant", "content": ...}, "finish_reason": "stop"}], "usage": ...}

Requests are answered one model forward at a time (a lock: the server's threads share one model). A request with
`"stream": true` is refused (400): nothing here streams. `n` must be 1.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from typing import Any

from videorecap.errors import InputError
from videorecap.httpserve import App, HTTPError, Request, Response, json_response
from videorecap.llm.textmodel import TextModel, input_text

OWNER = "videorecap"  # what /v1/models says owns the model: clients tell the own text model by it


def _number(body: dict[str, Any], key: str, default: float, kind: type) -> Any:
    v = body.get(key, default)
    if v is None:
        return default
    # (Python's JSON reader takes NaN and Infinity, which no setting means)
    if (
        isinstance(v, bool)
        or not isinstance(v, int | float)
        or not math.isfinite(v)
        or (kind is int and not float(v).is_integer())
    ):
        raise HTTPError(400, f"'{key}' must be {'an integer' if kind is int else 'a number'}, got {v!r}")
    return kind(v)


def text_model_app(model: TextModel) -> App:
    """An `App` serving `model` at /v1/models and /v1/chat/completions."""
    app = App("videorecap serve")
    mount_text_model(app, model)
    return app


def mount_text_model(app: App, model: TextModel) -> None:
    """Add /v1/models and /v1/chat/completions serving `model` to `app` (`videorecap serve`, alone or beside the
    folder web app)."""
    lock = threading.Lock()
    created = int(time.time())

    def models(req: Request) -> Response:
        entry = {"id": model.name, "object": "model", "created": created, "owned_by": OWNER, "weights": model.weights}
        return json_response({"object": "list", "data": [entry]})

    def chat(req: Request) -> Response:
        body = req.json()
        if not isinstance(body, dict):
            raise HTTPError(400, "the request body must be a JSON object")
        if body.get("model") not in (None, model.name):
            raise HTTPError(404, f"no model {body.get('model')!r} here; this server has {model.name!r}", "not_found")
        if body.get("stream"):
            raise HTTPError(400, "streaming is not supported by this server; send stream: false")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise HTTPError(400, "'messages' must be a non-empty list of {role, content} objects")
        max_tokens = _number(body, "max_tokens", model.max_new_tokens, int)
        max_tokens = _number(body, "max_completion_tokens", max_tokens, int)
        temperature = _number(body, "temperature", 0.0, float)
        if max_tokens < 1 or temperature < 0 or _number(body, "n", 1, int) != 1:
            raise HTTPError(400, "max_tokens must be at least 1, temperature 0 or more, and n 1")
        try:
            text = input_text(messages)
        except InputError as e:
            raise HTTPError(400, str(e)) from None
        with lock:
            answer = model.summarize([text], max_tokens=max_tokens, temperature=temperature)[0]
        n_in, n_out = len(model.tokenizer.encode(text)), len(model.tokenizer.encode(answer))
        return json_response(
            {
                "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model.name,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": n_in, "completion_tokens": n_out, "total_tokens": n_in + n_out},
            }
        )

    app.route("GET", "/v1/models", models)
    app.route("POST", "/v1/chat/completions", chat)
