"""index.html in a real headless Chromium, driven over the Chrome DevTools Protocol.

Needs Debian's `chromium` (`apt-get install -y chromium`) and the `websocket-client` package (test extra). Without
the browser these tests skip, with the install command as the reason, so `pip install -e ".[test]" && python -m pytest`
passes on a machine that has nothing but pip; `VIDEORECAP_REQUIRE_BROWSER=1` (set by .ci/run) turns that skip into a
failure, so CI cannot pass without running them. The page is served from a localhost HTTP server
(with Range support, as media elements expect) and plays a short VP9 video made here with PyAV.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import re
import shutil
import subprocess
import tempfile
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

from videorecap.export import write_outputs
from videorecap.results import Caption, CaptionResult, VideoMeta

pytestmark = pytest.mark.browser

DURATION = 20.0  # seconds of test video
CLIP_S, SEG_S = 2.0, 8.0  # windows shrunk to fit the short video: 10 clips, 3 segments
INSTALL_HINT = "apt-get update && apt-get install -y chromium  (or set VIDEORECAP_CHROMIUM to a Chromium binary)"
REQUIRE_ENV = "VIDEORECAP_REQUIRE_BROWSER"


# ---- fixtures: video, outputs, server, browser -------------------------------------------------------------------
def _make_video(path: Path, seconds: float = DURATION, fps: int = 5) -> None:
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


def _result(video: Path) -> CaptionResult:
    def spans(w: float) -> list[tuple[float, float]]:
        n = int(np.ceil(DURATION / w))
        return [(i * w, min((i + 1) * w, DURATION)) for i in range(n)]

    return CaptionResult(
        video=VideoMeta("browser-test", str(video), DURATION, 5.0, 64, 48),
        clips=[Caption(s, e, f'clip {i}: C picks <b>item</b> & "more"') for i, (s, e) in enumerate(spans(CLIP_S))],
        segments=[Caption(s, e, f"segment {i} <script>alert(1)</script>") for i, (s, e) in enumerate(spans(SEG_S))],
        summary=Caption(0.0, DURATION, "The summary: </p><img src=x onerror=alert(1)> --> it ends."),
        model={"name": "stub"},
        windows={"clip": CLIP_S, "segment": SEG_S},
    )


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with single-range `Range: bytes=a-b` support (media elements seek with range requests)."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep the test output clean
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", ""))
        path = Path(self.translate_path(self.path))
        if not m or not path.is_file():
            return super().do_GET()
        data = path.read_bytes()
        start = int(m.group(1) or 0)
        end = min(int(m.group(2)) if m.group(2) else len(data) - 1, len(data) - 1)
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(str(path)))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        self.wfile.write(data[start : end + 1])


def _chromium() -> str:
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
def _open_page(root: Path, result: CaptionResult) -> Iterator[CDP]:
    """Write the outputs of `result` to root/out, serve root over HTTP and open out/index.html in Chromium."""
    exe = _chromium()
    write_outputs(result, root / "out")  # the page refers to ../video.webm

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: _RangeHandler(*a, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]

    args = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"]
    args += ["--disable-background-networking", "--disable-component-update", "--disable-sync"]
    args += ["--mute-audio", "--autoplay-policy=no-user-gesture-required", "--window-size=1200,900"]
    args += [f"--user-data-dir={root / 'profile'}", "--remote-debugging-port=0", "about:blank"]
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
        cdp.send("Page.navigate", url=f"http://127.0.0.1:{port}/out/index.html")
        cdp.wait_event("Page.loadEventFired")
        # wait for the video's metadata so seeks are real
        cdp.eval(
            "new Promise(r => { const v = document.getElementById('player');"
            " if (v.readyState >= 1) r(); else v.addEventListener('loadedmetadata', r); })"
        )
        yield cdp
    finally:
        if cdp is not None:
            cdp.close()
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
        server.shutdown()


@pytest.fixture(scope="module")
def page() -> Iterator[tuple[CDP, CaptionResult]]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _make_video(root / "video.webm")
        result = _result(root / "video.webm")
        with _open_page(root, result) as cdp:
            yield cdp, result


# ---- tests ----------------------------------------------------------------------------------------------------------
def _current(cdp: CDP) -> tuple[list[str], list[str]]:
    return (
        cdp.eval("[...document.querySelectorAll('.clip.current .x')].map(e => e.textContent)"),
        cdp.eval("[...document.querySelectorAll('.seg.current > button .x')].map(e => e.textContent)"),
    )


def _seek_and_wait(cdp: CDP, t: float) -> None:
    cdp.eval(
        "new Promise(r => { const v = document.getElementById('player');"
        f" v.addEventListener('seeked', () => setTimeout(r, 50), {{once: true}}); v.currentTime = {t}; }})"
    )


def test_page_loads_without_errors_and_shows_three_levels(page):
    cdp, result = page
    assert cdp.eval("document.getElementById('player').error") is None
    assert cdp.eval("document.getElementById('player').duration") == pytest.approx(DURATION, abs=0.5)
    assert cdp.eval("document.querySelector('#summary .summary-text').textContent") == result.summary.text
    segs = cdp.eval("[...document.querySelectorAll('.seg > button .x')].map(e => e.textContent)")
    assert segs == [s.text for s in result.segments]
    clips = cdp.eval("[...document.querySelectorAll('.clip .x')].map(e => e.textContent)")
    assert clips == [c.text for c in result.clips]
    # model text stayed text: no element was injected, no alert ran
    assert cdp.eval("document.querySelectorAll('img, b, #timeline script, #summary script').length") == 0
    assert cdp.eval("document.querySelectorAll('track').length") == 2
    assert cdp.errors() == []


def test_click_seeks_and_highlights(page):
    cdp, result = page
    # open the second segment's fold with a real click, then click its third clip
    cdp.click(".seg:nth-child(2) details > summary")
    assert cdp.eval("document.querySelector('.seg:nth-child(2) details').open") is True
    target = result.clips[int(SEG_S / CLIP_S) + 2]  # clip 6, starts at 12 s, in segment 1
    cdp.click(".seg:nth-child(2) .clip:nth-child(3) button")
    assert cdp.eval("document.getElementById('player').currentTime") == pytest.approx(target.start, abs=0.1)
    cdp.eval("new Promise(r => setTimeout(r, 100))")
    clips, segs = _current(cdp)
    assert clips == [target.text] and segs == [result.segments[1].text]
    assert cdp.eval("document.querySelector('.clip.current').getAttribute('aria-current')") == "true"

    # clicking a segment head seeks to its start
    cdp.click(".seg:nth-child(3) > button")
    assert cdp.eval("document.getElementById('player').currentTime") == pytest.approx(16.0, abs=0.1)
    assert _current(cdp) == ([result.clips[8].text], [result.segments[2].text])
    assert cdp.errors() == []


def test_seek_and_timeupdate_highlight(page):
    cdp, result = page
    # a time inside clip 2 (4-6 s), segment 0: found by binary search, on `seeked`
    _seek_and_wait(cdp, 5.3)
    assert _current(cdp) == ([result.clips[2].text], [result.segments[0].text])
    _seek_and_wait(cdp, 19.9)
    assert _current(cdp) == ([result.clips[9].text], [result.segments[2].text])
    # play across a clip boundary: `timeupdate` moves the highlight on
    _seek_and_wait(cdp, 7.7)
    cdp.eval(
        "new Promise((r, j) => { const v = document.getElementById('player');"
        " const f = () => { if (v.currentTime >= 8.3) { v.pause(); v.removeEventListener('timeupdate', f); r(); } };"
        " v.addEventListener('timeupdate', f); v.play().catch(j); setTimeout(() => j('no progress'), 5000); })"
    )
    cdp.eval("new Promise(r => setTimeout(r, 50))")
    assert _current(cdp) == ([result.clips[4].text], [result.segments[1].text])
    assert cdp.errors() == []


def test_keyboard_seek(page):
    cdp, result = page
    cdp.eval("document.querySelector('.seg:nth-child(1) details').open = true")
    cdp.eval("document.querySelector('.seg:nth-child(1) .clip:nth-child(2) button').focus()")
    for kind in ("keyDown", "keyUp"):
        cdp.send("Input.dispatchKeyEvent", type=kind, key="Enter", code="Enter", windowsVirtualKeyCode=13, text="\r")
    assert cdp.eval("document.getElementById('player').currentTime") == pytest.approx(result.clips[1].start, abs=0.1)
    # "]" jumps to the next segment
    cdp.eval("document.body.focus()")
    for kind in ("keyDown", "keyUp"):
        cdp.send("Input.dispatchKeyEvent", type=kind, key="]", code="BracketRight", text="]")
    assert cdp.eval("document.getElementById('player').currentTime") == pytest.approx(SEG_S, abs=0.1)
    assert cdp.errors() == []


def test_chromium_is_installed():
    assert Path(_chromium()).exists()


def test_missing_chromium_skips_with_the_hint_unless_required(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # a folder with no chromium in it
    monkeypatch.delenv("VIDEORECAP_CHROMIUM", raising=False)
    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match=re.escape(INSTALL_HINT)):
        _chromium()
    monkeypatch.setenv(REQUIRE_ENV, "0")
    with pytest.raises(pytest.skip.Exception):
        _chromium()
    monkeypatch.setenv(REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match=rf"{re.escape(INSTALL_HINT)} \({REQUIRE_ENV} is set"):
        _chromium()


@pytest.mark.slow
def test_three_hour_video_with_2700_clips():
    """The page stays right and quick at full scale: 2,700 clips, 60 segments, random seeks highlight correctly."""
    hours3 = 3 * 3600.0
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _make_video(root / "video.webm", seconds=hours3, fps=1)
        result = CaptionResult(
            video=VideoMeta("long", str(root / "video.webm"), hours3, 1.0, 64, 48),
            clips=[Caption(i * 4.0, i * 4.0 + 4.0, f"clip {i} C does something") for i in range(2700)],
            segments=[Caption(i * 180.0, i * 180.0 + 180.0, f"segment {i}") for i in range(60)],
            summary=Caption(0.0, hours3, "summary"),
        )
        with _open_page(root, result) as cdp:
            assert cdp.eval("document.getElementById('player').duration") == pytest.approx(hours3, abs=1)
            loaded_ms = cdp.eval("performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd")
            check = cdp.eval(
                """(async () => {
              const v = document.getElementById('player');
              for (let i = 0; i < 40; i++) {
                const t = (i * 7919.3) % 10795;
                await new Promise(r => { v.addEventListener('seeked', r, {once: true}); v.currentTime = t; });
                const c = document.querySelector('.clip.current'), s = document.querySelector('.seg.current');
                if (+c.dataset.start !== Math.floor(t / 4) * 4 || +s.dataset.start !== Math.floor(t / 180) * 180)
                  return 'wrong highlight at ' + t;
              }
              const t0 = performance.now();
              for (let i = 0; i < 1000; i++) v.dispatchEvent(new Event('timeupdate'));
              return (performance.now() - t0) / 1000;
            })()"""
            )
            assert not isinstance(check, str), check
            print(f"2,700 clips: DOMContentLoaded {loaded_ms:.0f} ms, timeupdate handler {check * 1000:.1f} us")
            assert cdp.errors() == []
