"""Headless Chromium driven over the Chrome DevTools Protocol, for the browser tests (marked `browser`).

Needs Debian's `chromium` (`apt-get install -y chromium`) and the `websocket-client` package (test extra). Without
the browser the tests skip, with the install command as the reason; `VIDEORECAP_REQUIRE_BROWSER=1` (set by .ci/run)
turns that skip into a failure. `open_browser(profile)` starts one and yields a `CDP` client of its page.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
import websocket

INSTALL_HINT = "apt-get update && apt-get install -y chromium  (or set VIDEORECAP_CHROMIUM to a Chromium binary)"
REQUIRE_ENV = "VIDEORECAP_REQUIRE_BROWSER"


def chromium() -> str:
    """The Chromium to drive; every browser test gets it here, so a missing one skips (or fails) them all alike."""
    exe = os.environ.get("VIDEORECAP_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        why = f"headless Chromium is needed for the index.html browser tests but was not found: {INSTALL_HINT}"
        if os.environ.get(REQUIRE_ENV, "") not in ("", "0"):
            pytest.fail(f"{why} ({REQUIRE_ENV} is set, so this is a failure, not a skip)")
        pytest.skip(why)
    return exe


class CDP:
    """A minimal Chrome DevTools Protocol client over one page's websocket."""

    def __init__(self, ws_url: str) -> None:
        self.ws = websocket.create_connection(ws_url, timeout=10, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]
            self.events.append(msg)

    def eval(self, expr: str) -> Any:
        r = self.send("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expr!r} threw: {r['exceptionDetails']}")
        return r["result"].get("value")

    def wait_event(self, method: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        for i, e in enumerate(self.events):
            if e.get("method") == method:
                return self.events.pop(i)
        while time.monotonic() < deadline:
            msg = json.loads(self.ws.recv())
            if msg.get("method") == method:
                return msg
            self.events.append(msg)
        raise TimeoutError(method)

    def errors(self) -> list[str]:
        self.send("Runtime.evaluate", expression="0")  # drain pending events
        out = []
        for e in self.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.exceptionThrown":
                out.append(f"exception: {p['exceptionDetails']}")
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append(f"console.{p['type']}: {[a.get('value', a.get('description')) for a in p['args']]}")
            elif m == "Log.entryAdded" and p["entry"]["level"] == "error":
                out.append(f"log: {p['entry'].get('text')} {p['entry'].get('url', '')}")
        return out

    def click(self, selector: str) -> None:
        """A real mouse click in the middle of the element (scrolled into view first)."""
        rect = self.eval(
            f"(() => {{ const el = document.querySelector({json.dumps(selector)});"
            " el.scrollIntoView({block: 'center'}); const r = el.getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=rect[0], y=rect[1], button="left", clickCount=1)

    def close(self) -> None:
        self.ws.close()


@contextlib.contextmanager
def open_browser(profile: Path) -> Iterator[CDP]:
    """Start headless Chromium (its profile in `profile`) and yield a CDP client of its blank page, with the Page,
    Runtime and Log domains enabled; the browser is stopped afterwards."""
    exe = chromium()
    args = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"]
    args += ["--disable-background-networking", "--disable-component-update", "--disable-sync"]
    args += ["--mute-audio", "--autoplay-policy=no-user-gesture-required", "--window-size=1200,900"]
    args += [f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    cdp = None
    try:
        deadline = time.monotonic() + 20
        debug_port = None
        while debug_port is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line and proc.poll() is not None:
                pytest.fail(f"chromium exited with code {proc.returncode}; is it installed? {INSTALL_HINT}")
            m = re.search(r"DevTools listening on ws://[^:]+:(\d+)/", line)
            debug_port = int(m.group(1)) if m else None
        assert debug_port, "chromium did not open its DevTools port"
        threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep its stderr pipe drained
        with urllib.request.urlopen(f"http://127.0.0.1:{debug_port}/json/list", timeout=5) as r:
            targets = [t for t in json.load(r) if t["type"] == "page"]
        cdp = CDP(targets[0]["webSocketDebuggerUrl"])
        for domain in ("Page", "Runtime", "Log"):
            cdp.send(f"{domain}.enable")
        yield cdp
    finally:
        if cdp is not None:
            cdp.close()
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()


def make_webm(path: Path, seconds: float, fps: int = 5) -> None:
    """A tiny VP9/WebM video whose colour changes every frame (so it is a real, decodable stream)."""
    with av.open(str(path), "w", format="webm") as out:
        stream = out.add_stream("libvpx-vp9", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.options = {"deadline": "realtime", "cpu-used": "8", "g": str(fps)}
        for i in range(int(seconds * fps)):
            img = np.full((48, 64, 3), (i * 7) % 256, dtype=np.uint8)
            img[:, : (i % 64), 1] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
