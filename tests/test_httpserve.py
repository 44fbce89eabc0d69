"""The one local HTTP server, over real sockets on loopback."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest

from videorecap import httpserve
from videorecap.errors import InputError
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


def test_files_answer_byte_ranges(tmp_path, monkeypatch) -> None:
    data = bytes(range(256)) * 40  # 10,240 bytes
    (tmp_path / "v.webm").write_bytes(data)
    app = App()
    app.static("/", tmp_path)

    def ranged(url: str, rng: str) -> tuple[int, dict[str, str], bytes]:
        req = urllib.request.Request(url, headers={"Range": rng})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    monkeypatch.setattr(httpserve, "MAX_RANGE", 4096)  # a range larger than this is cut, and says so
    with app.serve() as server:
        url = server.url + "/v.webm"
        status, headers, body = ranged(url, "bytes=100-199")
        assert (status, body, headers["Content-Range"]) == (206, data[100:200], "bytes 100-199/10240")
        assert headers["Content-Type"] == "video/webm" and headers["Accept-Ranges"] == "bytes"
        status, headers, body = ranged(url, "bytes=10000-")
        assert (status, body, headers["Content-Range"]) == (206, data[10000:], "bytes 10000-10239/10240")
        status, headers, body = ranged(url, "bytes=-40")
        assert (status, body) == (206, data[-40:])
        status, headers, body = ranged(url, "bytes=0-")  # what a media element asks first
        assert (status, body, headers["Content-Range"]) == (206, data[:4096], "bytes 0-4095/10240")
        assert ranged(url, "bytes=20000-")[0] == 416
        status, headers, body = ranged(url, "")  # no range: the whole file, streamed
        assert (status, body) == (200, data)


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


def _listening_port() -> tuple[socket.socket, int]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s, s.getsockname()[1]


def test_a_server_that_cannot_listen_says_why_and_names_the_option() -> None:
    busy, port = _listening_port()
    with busy:
        for listen in (App().serve, httpserve.check_listen):
            with pytest.raises(InputError) as e:
                listen("127.0.0.1", port)
            assert str(e.value) == (
                f"cannot listen on 127.0.0.1:{port}: address already in use (another program uses the port: "
                "choose another with --port, or --port 0 for any free port)"
            )
        with pytest.raises(InputError, match=r"choose another with --serve, or --serve 0"):
            App().serve("127.0.0.1", port, host_flag=None, port_flag="--serve")
    for host in ("999.1.1.1", "10.9.9.9"):  # not an address at all; an address of another machine
        with pytest.raises(InputError, match=rf"^--host {host}: not an address or name this machine has \("):
            httpserve.check_listen(host, 0)
    with pytest.raises(InputError, match=r"^999\.1\.1\.1: not an address"):
        App().serve("999.1.1.1", 0, host_flag=None)
    with pytest.raises(InputError, match=r"^--port 70000: not a port; give 0-65535"):  # OverflowError from bind
        App().serve("127.0.0.1", 70000)


def test_the_url_names_a_host_a_browser_can_open() -> None:
    with App().serve("", 0) as server:  # "" is every interface, as 0.0.0.0
        # what a browser here opens (Windows' refuse 0.0.0.0), and how other machines reach it
        assert server.every_interface and server.url == f"http://127.0.0.1:{server.port}"
        assert _get(server.url + "/nothing")[0] == 404
        assert f"http://{socket.gethostname()}:{server.port}/" in server.remote_hint()
    with App().serve("127.0.0.1", 0) as server:
        assert not server.every_interface and server.remote_hint() is None
    if socket.has_ipv6:
        try:
            server = App().serve("::1", 0)
        except InputError:
            pytest.skip("no IPv6 loopback here")
        with server:
            assert server.url == f"http://[::1]:{server.port}"
            assert _get(server.url + "/nothing")[0] == 404
