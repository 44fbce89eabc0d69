"""The one local HTTP server: routes, JSON, server-sent events and static files, on the standard library.

Every command that serves something uses it: `videorecap live --serve` (a page fed by server-sent events),
`videorecap serve` (an OpenAI-compatible chat endpoint for the project's own text model, and a web app over a folder
of captioned videos). It binds to 127.0.0.1 unless told otherwise: these are local tools, not public services.

    app = App("videorecap live")
    app.route("GET", "/api/state", lambda req: json_response(state))
    events = EventStream()
    app.route("GET", "/events", events.handler)       # text/event-stream; late subscribers get the history first
    app.static("/", folder)                             # files under `folder`; no path escapes it
    with app.serve(port=0) as server:                   # port 0: a free port; server.url tells which
        events.publish("clip", {"text": "..."})
        ...

A handler takes a `Request` and returns a `Response` (or raises `HTTPError` for a client mistake, answered as JSON
`{"error": {"message": ..., "type": ...}}`, the shape OpenAI-compatible clients expect). A response body is bytes,
or an iterator of bytes for a stream (sent as it is produced, connection closed at the end).
"""

from __future__ import annotations

import json
import logging
import mimetypes
import queue
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

log = logging.getLogger(__name__)

MAX_BODY = 16 * 1024 * 1024  # a request body larger than this is refused (413): nothing we serve needs more


class HTTPError(Exception):
    """A client mistake: answered with `status` and a JSON error body, never a traceback."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind


@dataclass
class Request:
    method: str
    path: str  # without the query string, percent-decoded
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes
    params: dict[str, str] = field(default_factory=dict)  # named groups of the route's pattern

    def arg(self, name: str, default: str | None = None) -> str | None:
        """The first value of a query parameter."""
        return self.query.get(name, [default])[0]

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise HTTPError(400, f"the request body is not JSON: {e}") from None


@dataclass
class Response:
    body: bytes | Iterable[bytes] = b""
    status: int = 200
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


def json_response(obj: Any, status: int = 200) -> Response:
    return Response(json.dumps(obj, ensure_ascii=False).encode(), status, "application/json; charset=utf-8")


def sse_event(data: Any, event: str | None = None, id: str | int | None = None) -> bytes:
    """One server-sent event (`data` as JSON unless it is already a string)."""
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    lines = [f"event: {event}"] if event else []
    if id is not None:
        lines.append(f"id: {id}")
    lines += [f"data: {line}" for line in text.split("\n")]
    return ("\n".join(lines) + "\n\n").encode()


Handler = Callable[[Request], Response]


class EventStream:
    """A broadcast of server-sent events: every subscriber gets the events published so far, then new ones live.

    Keeping the history means a page opened late (or reloaded) shows everything; `history` bounds it (the oldest
    events are dropped first). `close()` ends every subscriber's stream.
    """

    def __init__(self, history: int = 100_000) -> None:
        self._lock = threading.Lock()
        self._events: list[bytes] = []
        self._history = history
        self._subscribers: list[queue.Queue[bytes | None]] = []
        self._closed = False
        self._next_id = 0

    def publish(self, event: str, data: Any) -> None:
        with self._lock:
            msg = sse_event(data, event, self._next_id)
            self._next_id += 1
            self._events.append(msg)
            del self._events[: -self._history]
            for q in self._subscribers:
                q.put(msg)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for q in self._subscribers:
                q.put(None)

    def _stream(self, keepalive: float) -> Iterator[bytes]:
        q: queue.Queue[bytes | None] = queue.Queue()
        with self._lock:
            past, closed = list(self._events), self._closed
            if not closed:
                self._subscribers.append(q)
        try:
            yield b"retry: 2000\n\n"
            yield from past
            while not closed:
                try:
                    msg = q.get(timeout=keepalive)
                except queue.Empty:
                    yield b": keep-alive\n\n"  # a comment line: keeps proxies and the client's timer quiet
                    continue
                if msg is None:
                    break
                yield msg
        finally:
            with self._lock:
                if q in self._subscribers:
                    self._subscribers.remove(q)

    def handler(self, req: Request, keepalive: float = 15.0) -> Response:
        return Response(
            self._stream(keepalive),
            content_type="text/event-stream; charset=utf-8",
            headers={"Cache-Control": "no-store"},
        )


class App:
    """Routes by method and path pattern (a regex with named groups, matched in full); first match wins."""

    def __init__(self, name: str = "videorecap") -> None:
        self.name = name
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        self._routes.append((method.upper(), re.compile(pattern), handler))

    def static(self, prefix: str, folder: str | Path, index: str = "index.html") -> None:
        """Serve the files under `folder` at `prefix`; a path that leaves the folder is a 404."""
        root = Path(folder).resolve()
        prefix = prefix.rstrip("/")

        def serve_file(req: Request) -> Response:
            rel = req.path[len(prefix) :].lstrip("/") or index
            p = (root / rel).resolve()
            if p.is_dir():
                p = p / index
            if not p.is_relative_to(root) or not p.is_file():
                raise HTTPError(404, f"no such file: {req.path}", "not_found")
            ctype = mimetypes.guess_type(p.name)[0] or "application/octet-stream"
            if ctype.startswith("text/") or ctype in ("application/json", "application/javascript"):
                ctype += "; charset=utf-8"
            return Response(p.read_bytes(), content_type=ctype)

        self.route("GET", re.escape(prefix) + r"(/.*)?", serve_file)

    def dispatch(self, req: Request) -> Response:
        allowed = []
        for method, pattern, handler in self._routes:
            m = pattern.fullmatch(req.path)
            if m is None:
                continue
            if method != req.method:
                allowed.append(method)
                continue
            req.params = {k: v for k, v in m.groupdict().items() if v is not None}
            return handler(req)
        if allowed:
            raise HTTPError(405, f"{req.method} is not allowed on {req.path}; use {', '.join(sorted(set(allowed)))}")
        raise HTTPError(404, f"no such page: {req.path}", "not_found")

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> Server:
        """Start serving in a background thread; use as a context manager or call `close()`."""
        return Server(self, host, port)


class Server:
    def __init__(self, app: App, host: str, port: int) -> None:
        handler = type("_Handler", (_RequestHandler,), {"app": app})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True  # an open event stream must not keep the process alive at exit
        self.host, self.port = host, self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name=f"{app.name} http", daemon=True)
        self._thread.start()
        log.info("%s serving on %s", app.name, self.url)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class _RequestHandler(BaseHTTPRequestHandler):
    app: App
    protocol_version = "HTTP/1.1"

    def _handle(self) -> None:
        url = urlsplit(self.path)
        try:
            n = int(self.headers.get("Content-Length") or 0)
            if n > MAX_BODY:
                raise HTTPError(413, f"request body over {MAX_BODY} bytes")
            req = Request(
                method=self.command,
                path=unquote(url.path),
                query=parse_qs(url.query),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=self.rfile.read(n) if n > 0 else b"",
            )
            resp = self.app.dispatch(req)
        except HTTPError as e:
            resp = json_response({"error": {"message": e.message, "type": e.kind, "code": e.status}}, e.status)
        except Exception:  # a bug in a handler: the client gets a 500, the log gets the traceback
            log.exception("%s %s failed", self.command, self.path)
            resp = json_response({"error": {"message": "internal server error", "type": "server_error"}}, 500)
        self._send(resp)

    def _send(self, resp: Response) -> None:
        streaming = not isinstance(resp.body, bytes | bytearray)
        self.send_response(resp.status)  # the standard phrase for the code
        self.send_header("Content-Type", resp.content_type)
        for k, v in resp.headers.items():
            self.send_header(k, v)
        if streaming:
            self.send_header("Connection", "close")  # the end of the stream is the end of the connection
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(len(resp.body)))  # type: ignore[arg-type]
        self.end_headers()
        if self.command == "HEAD":
            return
        try:
            if streaming:
                for chunk in resp.body:
                    self.wfile.write(chunk)
                    self.wfile.flush()
            else:
                self.wfile.write(resp.body)  # type: ignore[arg-type]
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away (a closed tab): nothing to answer
        finally:
            close = getattr(resp.body, "close", None)
            if streaming and close is not None:
                close()  # runs the generator's cleanup (unsubscribes an event stream)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log.debug("%s %s", self.address_string(), format % args)
