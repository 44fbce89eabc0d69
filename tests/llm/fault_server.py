"""A small OpenAI-compatible server that misbehaves on purpose, run as a real process by the llm tests.

    python fault_server.py MODE N LOG     # prints "http://127.0.0.1:PORT/v1" when it listens

The first N chat requests misbehave as MODE says, the others get `echo: <last user message>`:
    ok         none misbehave
    malformed  a 200 answer that is not JSON
    nochoices  JSON without choices
    429        Too Many Requests, with Retry-After: 0
    500        an internal error
    slow       the answer comes after 3 s (the tests' client times out sooner)
    sleep      every answer takes 0.3 s (to see how many requests are in flight at once)
    die        after N good answers the process exits (a server crashing mid-job)
    401        Unauthorized (not retryable)
Every chat request received is appended to LOG (one JSON line: the content and the Authorization header), so a test
can see what reached the server.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

from videorecap.httpserve import App, HTTPError, Request, Response, json_response


def main() -> None:
    mode, n, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    lock = threading.Lock()
    count = {"chat": 0, "inflight": 0}
    app = App("fault server")

    def models(req: Request) -> Response:
        return json_response({"object": "list", "data": [{"id": "echo", "object": "model", "owned_by": "tests"}]})

    def chat(req: Request) -> Response:
        body = req.json()
        content = body["messages"][-1]["content"]
        with lock:
            count["chat"] += 1
            count["inflight"] += 1
            k, inflight = count["chat"], count["inflight"]
            with open(log, "a", encoding="utf-8") as f:
                record = {"content": content, "auth": req.headers.get("authorization"), "inflight": inflight}
                f.write(json.dumps(record) + "\n")
        try:
            return answer(content, k)
        finally:
            with lock:
                count["inflight"] -= 1

    def answer(content: str, k: int) -> Response:
        good = json_response(
            {"choices": [{"index": 0, "message": {"role": "assistant", "content": f"echo: {content}"}}]}
        )
        if mode == "die":
            if k > n:
                os._exit(3)  # the server dies mid-job: this request gets no answer
            return good
        if mode == "sleep":
            time.sleep(0.3)
            return good
        if mode == "ok" or k > n:
            return good
        if mode == "malformed":
            return Response(b'{"choices": [', content_type="application/json")
        if mode == "nochoices":
            return json_response({"object": "chat.completion"})
        if mode == "429":
            r = json_response({"error": {"message": "slow down"}}, 429)
            r.headers["Retry-After"] = "0"
            return r
        if mode == "500":
            raise RuntimeError("a bug on purpose")
        if mode == "slow":
            time.sleep(3)
            return good
        if mode == "401":
            raise HTTPError(401, "bad key", "authentication_error")
        raise SystemExit(f"unknown mode {mode}")

    app.route("GET", "/v1/models", models)
    app.route("POST", "/v1/chat/completions", chat)
    server = app.serve(port=0)
    print(f"{server.url}/v1", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
