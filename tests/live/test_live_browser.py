"""The `--serve` page in a real headless Chromium: captions and the rolling summary appear while the stream runs.

Needs Chromium like tests/test_export_browser.py (tests/_browser.py's DevTools client): without it the test skips with
the install command as the reason, and VIDEORECAP_REQUIRE_BROWSER=1 makes that a failure.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from _browser import open_browser
from _stream import SEGMENT_SECONDS, start_stream

from videorecap.export import display_text
from videorecap.live.page import serve_page
from videorecap.live.session import LiveOptions, LiveSession

pytestmark = pytest.mark.browser


def _wait(cdp, expr: str, timeout: float = 60) -> object:  # noqa: ANN001 - a CDP client
    deadline = time.monotonic() + timeout
    while not (value := cdp.eval(expr)):
        assert time.monotonic() < deadline, f"timed out waiting for {expr}"
        time.sleep(0.1)
    return value


def test_live_page_shows_captions_and_summary_as_they_arrive(tmp_path: Path, recording: Path, captioner) -> None:
    with open_browser(tmp_path / "profile") as cdp:  # the browser first: a missing Chromium skips before any work
        src, out = tmp_path / "g.ts", tmp_path / "out"
        src.touch()
        session = LiveSession(str(src), captioner, out, LiveOptions(segment_seconds=SEGMENT_SECONDS))
        server = serve_page(session, 0)
        ended: list = []
        writer = start_stream("append", recording, src, 3.0)
        runner = threading.Thread(target=lambda: ended.append(session.run()), daemon=True)
        runner.start()
        try:
            cdp.send("Page.navigate", url=server.url + "/")
            cdp.wait_event("Page.loadEventFired")
            # the first caption shows while the stream is still being written
            _wait(cdp, "document.querySelectorAll('#clips li').length > 0")
            assert not ended and writer.poll() is None
            _wait(cdp, "document.getElementById('state').textContent.startsWith('ended')")
            runner.join(30)
            events = [json.loads(x) for x in (out / "live.jsonl").read_text().splitlines()]
            clips = [e for e in events if e["event"] == "clip"]
            shown = cdp.eval("[...document.querySelectorAll('#clips li .x')].map(e => e.textContent)")
            assert shown == [display_text(c["text"]) for c in reversed(clips)]  # newest first
            segs = [e for e in events if e["event"] == "segment"]
            assert cdp.eval("document.querySelectorAll('#segments li').length") == len(segs) > 0
            last = [e for e in events if e["event"] == "summary"][-1]
            assert cdp.eval("document.getElementById('summary').textContent") == display_text(last["text"])
            assert cdp.eval("document.getElementById('summary').dataset.final") == "1"
            status = json.loads(cdp.eval("fetch('/api/status').then(r => r.text())"))
            assert status["clips"] == len(clips)
            assert cdp.errors() == []
        finally:
            session.stop()
            server.close()
            writer.kill()
