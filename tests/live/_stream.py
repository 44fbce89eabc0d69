"""Real streams for the live tests, run as a separate process (`python _stream.py MODE ...`).

append SRC DST SPEED: copy the MPEG-TS file SRC into DST at SPEED times real time (each packet's bytes are written
    once the wall clock reaches its timestamp), then create DST.done (the end marker).
serve SRC SPEED DROP_AT: serve SRC as a live MPEG-TS stream over HTTP on 127.0.0.1 (videorecap.httpserve, port printed
    on stdout): every request gets the stream from the live position on, in real time; the first connection is cut
    when the stream reaches DROP_AT seconds (a disconnect); once the file has been streamed the server exits.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import av

DURATION = 22.5  # the tests' recording: 6 clip windows (the last one 2.5 s), 3 segment windows of 8 s (the last 6.5 s)
SEGMENT_SECONDS = 8.0


def start_stream(*args: object) -> subprocess.Popen:
    """This file run as a separate process (a writer appending a file, or an HTTP stream server)."""
    return subprocess.Popen([sys.executable, __file__, *map(str, args)], stdout=subprocess.PIPE, text=True)


def packets(src: str) -> list[tuple[int, float]]:
    """(byte offset, seconds from the first packet) of each video packet, in file order."""
    out = []
    with av.open(src) as c:
        stream = c.streams.video[0]
        t0 = None
        for p in c.demux(stream):
            if p.pos is None or p.pos < 0 or p.pts is None:
                continue
            t = float(p.pts * p.time_base)
            t0 = t if t0 is None else t0
            out.append((p.pos, max(t - t0, 0.0)))
    return out


def append(src: str, dst: str, speed: float) -> None:
    data = Path(src).read_bytes()
    marks = packets(src)
    start = time.monotonic()
    written = 0
    with open(dst, "ab") as f:
        for pos, t in marks:
            wait = start + t / speed - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if pos > written:
                f.write(data[written:pos])
                f.flush()
                written = pos
        f.write(data[written:])
    Path(dst + ".done").touch()


def serve(src: str, speed: float, drop_at: float) -> None:
    from videorecap.httpserve import App, Response

    data = Path(src).read_bytes()
    marks = packets(src)
    total = marks[-1][1]
    start = time.monotonic()
    connections = 0
    finished = threading.Event()

    def body(first: bool) -> Iterator[bytes]:
        now = (time.monotonic() - start) * speed
        i = next((k for k, (_, t) in enumerate(marks) if t >= now), len(marks))
        at = marks[i][0] - marks[i][0] % 188 if i < len(marks) else len(data)
        if i == 0:
            at = 0
        for pos, t in marks[i + 1 :]:
            if first and t >= drop_at:
                return  # the disconnect
            wait = start + t / speed - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if pos > at:
                yield data[at:pos]
                at = pos
        yield data[at:]
        finished.set()

    def stream(req: object) -> Response:
        nonlocal connections
        connections += 1
        return Response(body(connections == 1), content_type="video/mp2t")

    app = App("test stream")
    app.route("GET", "/stream.ts", stream)
    with app.serve() as server:
        print(server.port, flush=True)
        finished.wait(total / speed + 60)
        time.sleep(0.5)


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "append":
        append(sys.argv[2], sys.argv[3], float(sys.argv[4]))
    elif mode == "serve":
        serve(sys.argv[2], float(sys.argv[3]), float(sys.argv[4]))
    else:
        raise SystemExit(f"unknown mode {mode}")
