"""The one local HTTP server: routes, JSON, server-sent events and static files, on the standard library.

Every command that serves something uses it: `videorecap live --serve` (a page fed by server-sent events),
`videorecap serve` (an OpenAI-compatible chat endpoint for the project's own text model, and a web app over a folder
of captioned videos). It binds to 127.0.0.1 unless told otherwise: these are local tools, not public services.

    app = App("videorecap live")
    app.route("GET", "/api/state", lambda req: json_response(state))
    events = EventStream()
    app.route("GET", "/events", events.handler)       # text/event-stream; late subscribers get the history first
    app.static("/", folder)                             # files under `folder`; no path escapes it; byte ranges
    app.route("GET", "/media", lambda req: file_response(req, path))   # one file, with byte ranges (seeking)
    with app.serve(port=0) as server:                   # port 0: a free port; server.url tells which
        events.publish("clip", {"text": "..."})
        ...

A server that cannot listen (the port taken, a host this machine does not have) raises an `InputError` whose one line
says so and names the option to change (`listen_error`); `check_listen` finds that out before a command does its
slow work (loading models), by binding the address once and letting it go.

A handler takes a `Request` and returns a `Response` (or raises `HTTPError` for a client mistake, answered as JSON
`{"error": {"message": ..., "type": ...}}`, the shape OpenAI-compatible clients expect). A response body is bytes,
or an iterator of bytes for a stream (sent as it is produced, connection closed at the end).
"""

from __future__ import annotations

import errno
import json
import logging
import mimetypes
import queue
import re
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from videorecap.errors import InputError

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

MAX_RANGE = 8 * 1024 * 1024  # the most bytes one range response carries (a player asks again for the rest)
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def file_response(req: Request, path: str | Path, content_type: str | None = None) -> Response:
    """The file at `path`: whole (streamed in chunks), or the single byte range a `Range: bytes=a-b` header asks for
    (206, at most `MAX_RANGE` bytes; a media element seeks with such requests, and plays without them only from
    the start). A range past the end is a 416."""
    path = Path(path)
    ctype = content_type or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if ctype.startswith("text/") or ctype in ("application/json", "application/javascript"):
        ctype += "; charset=utf-8"
    size = path.stat().st_size
    m = _RANGE.fullmatch(req.headers.get("range", "").strip())
    if m is None or not (m[1] or m[2]):
        if size <= MAX_RANGE:
            return Response(path.read_bytes(), content_type=ctype, headers={"Accept-Ranges": "bytes"})
        return Response(_chunks(path), content_type=ctype, headers={"Accept-Ranges": "bytes"})
    if m[1]:
        start, end = int(m[1]), min(int(m[2]) if m[2] else size - 1, size - 1)
    else:  # "bytes=-N": the last N bytes
        start, end = max(size - int(m[2]), 0), size - 1
    if start > end:
        return Response(b"", 416, ctype, {"Content-Range": f"bytes */{size}"})
    end = min(end, start + MAX_RANGE - 1)
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read(end - start + 1)
    headers = {"Content-Range": f"bytes {start}-{start + len(data) - 1}/{size}", "Accept-Ranges": "bytes"}
    return Response(data, 206, ctype, headers)


def _chunks(path: Path, size: int = 1024 * 1024) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(size):
            yield chunk


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
            return file_response(req, p)

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

    def serve(
        self, host: str = "127.0.0.1", port: int = 0, *, host_flag: str | None = "--host", port_flag: str = "--port"
    ) -> Server:
        """Start serving in a background thread; use as a context manager or call `close()`.

        Raises:
            InputError: it cannot listen on host:port (`listen_error`; the flags are the options named there).
        """
        return Server(self, host, port, host_flag=host_flag, port_flag=port_flag)


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET  # "::1", "::": IPv6; names and dotted quads: IPv4


def listen_error(
    e: OSError | OverflowError, host: str, port: int, *, host_flag: str | None = "--host", port_flag: str = "--port"
) -> InputError:
    """The one line for a server that cannot listen on host:port, naming the option to change (`host_flag`: None
    where the host is not an option)."""
    where = _netloc(host, port)
    if isinstance(e, OverflowError):  # the command line checks this (port_number); a library caller may not
        return InputError(f"{port_flag} {port}: not a port; give 0-65535 (0: any free port)")
    if isinstance(e, socket.gaierror) or e.errno == errno.EADDRNOTAVAIL:
        what = f"{host_flag} {host}" if host_flag else host
        return InputError(
            f"{what}: not an address or name this machine has (127.0.0.1: this machine only; 0.0.0.0: every interface)"
        )
    if e.errno == errno.EADDRINUSE:
        return InputError(
            f"cannot listen on {where}: address already in use (another program uses the port: choose another with "
            f"{port_flag}, or {port_flag} 0 for any free port)"
        )
    if e.errno in (errno.EACCES, errno.EPERM) and 0 < port < 1024:
        return InputError(
            f"cannot listen on {where}: permission denied (ports below 1024 need privileges: choose another with "
            f"{port_flag})"
        )
    return InputError(f"cannot listen on {where}: {e.strerror or e}")


def check_listen(host: str, port: int, *, host_flag: str | None = "--host", port_flag: str = "--port") -> None:
    """Raise `listen_error`'s InputError now if a server could not listen on host:port: bind it once, as the server
    does, and let it go. A command calls this before its slow work; the port may still be taken in between, and
    then the server's own bind says the same."""
    try:
        with socket.socket(_family(host), socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as HTTPServer does (allow_reuse_address)
            s.bind((host, port))
    except (OSError, OverflowError) as e:
        raise listen_error(e, host, port, host_flag=host_flag, port_flag=port_flag) from None


class _HTTPServer6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


class Server:
    def __init__(
        self, app: App, host: str, port: int, *, host_flag: str | None = "--host", port_flag: str = "--port"
    ) -> None:
        handler = type("_Handler", (_RequestHandler,), {"app": app})
        cls = _HTTPServer6 if _family(host) == socket.AF_INET6 else ThreadingHTTPServer
        try:
            self.httpd = cls((host, port), handler)
        except (OSError, OverflowError) as e:
            raise listen_error(e, host, port, host_flag=host_flag, port_flag=port_flag) from None
        self.httpd.daemon_threads = True  # an open event stream must not keep the process alive at exit
        # "" listens on every interface, as "0.0.0.0" does: the URL names that address, not an empty host
        self.host, self.port = host or self.httpd.server_address[0], self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name=f"{app.name} http", daemon=True)
        self._thread.start()
        log.info("%s serving on %s", app.name, self.url)

    @property
    def every_interface(self) -> bool:
        """Listening on every interface (0.0.0.0, ::, or an empty host), for other machines too."""
        return self.host in ("0.0.0.0", "::")

    @property
    def url(self) -> str:
        """The address a browser on this machine opens: the loopback one when listening on every interface (Windows'
        browsers refuse http://0.0.0.0; other machines use this machine's own name or address, `remote_hint`)."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        return f"http://{_netloc(host, self.port)}"

    def remote_hint(self) -> str | None:
        """For a server on every interface, how other machines reach it (None otherwise)."""
        if not self.every_interface:
            return None
        there = _netloc(socket.gethostname(), self.port)
        return f"listening on every interface: from another machine open http://{there}/ (or this machine's address)"

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
