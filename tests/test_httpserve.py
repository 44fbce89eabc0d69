"""The one local HTTP server, over real sockets on loopback."""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.error
import urllib.request

import pytest

from videorecap.httpserve import App, EventStream, HTTPError, Request, json_response


def _get(url: str, data: bytes | None = None, method: str | None = None) -> tuple[int, str, bytes]:
    req = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers["Content-Type"], r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read()


def test_routes_json_errors_and_params() -> None:
    app = App("test")
    app.route(
        "GET",
        r"/api/items/(?P<name>[a-z]+)",
        lambda req: json_response({"name": req.params["name"], "q": req.arg("q")}),
    )

    def echo(req: Request):
        body = req.json()
        if not isinstance(body, dict):
            raise HTTPError(400, "want an object")
        return json_response({"got": body}, 201)

    def boom(req: Request):
        raise RuntimeError("bug")

    app.route("POST", "/echo", echo)
    app.route("GET", "/boom", boom)
    with app.serve() as server:
        status, ctype, body = _get(server.url + "/api/items/kettle?q=stove")
        assert (status, json.loads(body)) == (200, {"name": "kettle", "q": "stove"})
        assert ctype.startswith("application/json")
        status, _, body = _get(server.url + "/echo", json.dumps({"a": 1}).encode(), "POST")
        assert (status, json.loads(body)) == (201, {"got": {"a": 1}})
        status, _, body = _get(server.url + "/echo", b"not json", "POST")
        assert status == 400 and "not JSON" in json.loads(body)["error"]["message"]
        status, _, body = _get(server.url + "/echo", b"[1]", "POST")
        assert status == 400 and json.loads(body)["error"]["message"] == "want an object"
        assert _get(server.url + "/echo")[0] == 405  # GET on a POST-only path
        assert _get(server.url + "/nowhere")[0] == 404
        status, _, body = _get(server.url + "/boom")
        assert status == 500 and "bug" not in body.decode()  # no internals leak to the client


def test_static_files_stay_inside_their_folder(tmp_path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<p>hi</p>")
    (site / "a.vtt").write_text("WEBVTT\n")
    (tmp_path / "secret.txt").write_text("TOPSECRET")
    app = App()
    app.static("/", site)
    with app.serve() as server:
        status, ctype, body = _get(server.url + "/")
        assert (status, body) == (200, b"<p>hi</p>") and ctype.startswith("text/html")
        assert _get(server.url + "/a.vtt")[2] == b"WEBVTT\n"
        # A raw request line, so no client normalises the dots away.
        conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
        for path in ("/../secret.txt", "/%2e%2e/secret.txt", "/..%2fsecret.txt"):
            conn.request("GET", path)
            r = conn.getresponse()
            assert (r.status, b"TOPSECRET" in r.read()) == (404, False), path
        conn.close()


def _read_events(url: str, n: int, out: list, timeout: float = 10) -> None:
    conn = urllib.request.urlopen(url, timeout=timeout)
    buf = b""
    while len(out) < n:
        line = conn.readline()
        if not line:
            break
        buf += line
        if buf.endswith(b"\n\n"):
            fields = dict(
                ln.split(": ", 1) for ln in buf.decode().strip().split("\n") if ": " in ln and not ln.startswith(":")
            )
            if "data" in fields:
                out.append((fields.get("event"), json.loads(fields["data"])))
            buf = b""
    conn.close()


def test_event_stream_replays_history_then_goes_live() -> None:
    events = EventStream()
    app = App()
    app.route("GET", "/events", lambda req: events.handler(req, keepalive=0.2))
    events.publish("clip", {"i": 0})
    with app.serve() as server:
        got: list = []
        t = threading.Thread(target=_read_events, args=(server.url + "/events", 3, got))
        t.start()
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:  # the history arrives first
            time.sleep(0.02)
        events.publish("clip", {"i": 1})
        events.publish("summary", {"text": "x\ny"})  # a newline inside data survives
        t.join(15)
        assert got == [("clip", {"i": 0}), ("clip", {"i": 1}), ("summary", {"text": "x\ny"})]
        late: list = []
        _read_events(server.url + "/events", 3, late)  # a late subscriber sees everything
        assert late == got
        events.close()


@pytest.mark.parametrize("n", [1, 3])
def test_closing_a_stream_ends_every_subscriber(n: int) -> None:
    events = EventStream()
    app = App()
    app.route("GET", "/events", events.handler)
    with app.serve() as server:
        outs = [[] for _ in range(n)]
        threads = [threading.Thread(target=_read_events, args=(server.url + "/events", 99, o)) for o in outs]
        for t in threads:
            t.start()
        time.sleep(0.3)
        events.publish("end", {})
        events.close()
        for t in threads:
            t.join(10)
            assert not t.is_alive()
        assert all(o == [("end", {})] for o in outs)
