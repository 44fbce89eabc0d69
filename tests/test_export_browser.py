"""index.html in a real headless Chromium, driven over the Chrome DevTools Protocol.

Needs Debian's `chromium` (`apt-get install -y chromium`) and the `websocket-client` package (test extra). Without
the browser these tests skip, with the install command as the reason, so `pip install -e ".[test]" && python -m pytest`
passes on a machine that has nothing but pip; `VIDEORECAP_REQUIRE_BROWSER=1` (set by .ci/run) turns that skip into a
failure, so CI cannot pass without running them. The page is opened from disk (`file://`, as users do) and from a
localhost HTTP server (with Range support, as media elements expect), and plays short videos made here with PyAV:
VP9/WebM, a Matroska file whose streams start at 3.5 s, and HEVC, which Chromium cannot play.
"""

from __future__ import annotations

import contextlib
import http.server
import re
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from _browser import CDP, INSTALL_HINT, REQUIRE_ENV, chromium, make_webm, open_browser

from videorecap.export import display_text, write_outputs
from videorecap.results import Caption, CaptionResult, VideoMeta
from videorecap.search.bm25 import BM25, tokenize
from videorecap.video.io import probe
from videorecap.video.testing import make_video
from videorecap.video.webcopy import make_web_copy

pytestmark = pytest.mark.browser

DURATION = 20.0  # seconds of test video
CLIP_S, SEG_S = 2.0, 8.0  # windows shrunk to fit the short video: 10 clips, 3 segments


# ---- fixtures: video, outputs, server, browser -------------------------------------------------------------------
def _make_video(path: Path, seconds: float = DURATION, fps: int = 5) -> None:
    make_webm(path, seconds, fps)


def _result(video: Path) -> CaptionResult:
    def spans(w: float) -> list[tuple[float, float]]:
        n = int(np.ceil(DURATION / w))
        return [(i * w, min((i + 1) * w, DURATION)) for i in range(n)]

    card = {"domain": "synthetic", "note": "knows only the synthetic kitchen world"}
    return CaptionResult(
        video=VideoMeta("browser-test", str(video), DURATION, 5.0, 64, 48, partial=True, covered=[[0.0, 16.0]]),
        clips=[
            Caption(s, e, f'#C C picks <b>item</b> {i} & "more" </script>') for i, (s, e) in enumerate(spans(CLIP_S))
        ],
        segments=[Caption(s, e, f"segment {i} <script>alert(1)</script>") for i, (s, e) in enumerate(spans(SEG_S))],
        summary=Caption(0.0, DURATION, "The summary: </p><img src=x onerror=alert(1)> --> it ends."),
        model={"clip": {"source": "models/stub", "preset": "stub", "level": "clip", "card": card}},
        windows={"clip": CLIP_S, "segment": SEG_S},
    )


def _shown(c: Caption) -> str:
    return display_text(c.text)  # the clip captions as the page shows them: "C picks ...", no "#C"


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


@contextlib.contextmanager
def _open_page(root: Path, result: CaptionResult, *, via: str = "http", **write_kwargs: Any) -> Iterator[CDP]:
    """Write the outputs of `result` to root/out and open out/index.html in Chromium: from disk (`via="file"`) or
    served over HTTP from root. Waits until the video's metadata is loaded, or the video failed."""
    write_outputs(result, root / "out", **write_kwargs)  # the page refers to ../video.webm
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: _RangeHandler(*a, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        with open_browser(root / "profile") as cdp:
            url = root / "out" / "index.html"
            cdp.send("Page.navigate", url=url.as_uri() if via == "file" else f"http://127.0.0.1:{port}/out/index.html")
            cdp.wait_event("Page.loadEventFired")
            # wait for the video's metadata so seeks are real (or for the error of a video Chromium cannot play)
            cdp.eval(
                "new Promise(r => { const v = document.getElementById('player');"
                " if (v.readyState >= 1 || v.error) r(); else { v.addEventListener('loadedmetadata', r);"
                " v.addEventListener('error', r); } })"
            )
            yield cdp
    finally:
        server.shutdown()


@pytest.fixture(scope="module", params=["file", "http"])
def page(request: pytest.FixtureRequest) -> Iterator[tuple[CDP, CaptionResult]]:
    """The page opened from disk (as users do: browsers refuse `<track src>` there) and over HTTP."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _make_video(root / "video.webm")
        result = _result(root / "video.webm")
        with _open_page(root, result, via=request.param) as cdp:
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
    assert clips == [_shown(c) for c in result.clips]
    # model text stayed text: no element was injected, no alert ran
    assert cdp.eval("document.querySelectorAll('img, b, #timeline script, #summary script').length") == 0
    # the cues are embedded: both tracks exist and hold them, the captions show by default (also from file://)
    tracks = cdp.eval("[...document.getElementById('player').textTracks].map(t => [t.kind, t.mode, t.cues.length])")
    assert tracks == [["captions", "showing", len(result.clips)], ["chapters", "hidden", len(result.segments)]]
    cues = cdp.eval(
        "[...document.getElementById('player').textTracks[0].cues]"
        ".map(c => [c.startTime, c.endTime, c.getCueAsHTML().textContent])"
    )
    assert cues == [[c.start, c.end, _shown(c)] for c in result.clips]
    assert all("#C" not in c[2] for c in cues)
    chapters = cdp.eval("[...document.getElementById('player').textTracks[1].cues].map(c => c.text)")
    assert chapters == [s.text.replace("<", "&lt;").replace(">", "&gt;") for s in result.segments]
    # the model is named; its card's warning and the partial decode are visible banners
    assert "model: stub (models/stub)" in cdp.eval("document.querySelector('header .meta').textContent")
    banners = cdp.eval(
        "[...document.querySelectorAll('.banner')].filter(b => b.getBoundingClientRect().height > 0)"
        ".map(b => b.textContent)"
    )
    assert banners == [
        "Note: only 0:00–0:16 of 0:20 could be decoded; the rest has no captions.",
        "Note: the model stub (models/stub) knows only the synthetic kitchen world.",
    ]
    # the segment bar has visible labels (number and time range), not only tooltips
    labels = cdp.eval(
        "[...document.querySelectorAll('.bar .lbl')].map(e => { const r = e.getBoundingClientRect();"
        " return [e.textContent, r.width > 20 && r.height > 5 && getComputedStyle(e).visibility === 'visible',"
        " e.scrollWidth <= e.clientWidth]; })"
    )
    assert labels == [["1 · 0:00–0:08", True, True], ["2 · 0:08–0:16", True, True], ["3 · 0:16–0:20", True, True]]
    assert cdp.errors() == []


def test_captions_show_while_playing(page):
    cdp, result = page
    _seek_and_wait(cdp, 5.3)
    active = cdp.eval(
        "[...document.getElementById('player').textTracks[0].activeCues].map(c => c.getCueAsHTML().textContent)"
    )
    assert active == [_shown(result.clips[2])]
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
    assert clips == [_shown(target)] and segs == [result.segments[1].text]
    assert cdp.eval("document.querySelector('.clip.current').getAttribute('aria-current')") == "true"

    # clicking a segment head seeks to its start
    cdp.click(".seg:nth-child(3) > button")
    assert cdp.eval("document.getElementById('player').currentTime") == pytest.approx(16.0, abs=0.1)
    assert _current(cdp) == ([_shown(result.clips[8])], [result.segments[2].text])
    assert cdp.errors() == []


def test_seek_and_timeupdate_highlight(page):
    cdp, result = page
    # a time inside clip 2 (4-6 s), segment 0: found by binary search, on `seeked`
    _seek_and_wait(cdp, 5.3)
    assert _current(cdp) == ([_shown(result.clips[2])], [result.segments[0].text])
    _seek_and_wait(cdp, 19.9)
    assert _current(cdp) == ([_shown(result.clips[9])], [result.segments[2].text])
    # play across a clip boundary: `timeupdate` moves the highlight on
    _seek_and_wait(cdp, 7.7)
    cdp.eval(
        "new Promise((r, j) => { const v = document.getElementById('player');"
        " const f = () => { if (v.currentTime >= 8.3) { v.pause(); v.removeEventListener('timeupdate', f); r(); } };"
        " v.addEventListener('timeupdate', f); v.play().catch(j); setTimeout(() => j('no progress'), 5000); })"
    )
    cdp.eval("new Promise(r => setTimeout(r, 50))")
    assert _current(cdp) == ([_shown(result.clips[4])], [result.segments[1].text])
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


def _type(cdp: CDP, text: str) -> None:
    """Type into the search box with real key events (the page searches as one types)."""
    cdp.click("#q")
    cdp.eval("document.getElementById('q').select()")
    cdp.send("Input.insertText", text=text)


def test_search_box_ranks_like_videorecap_search_and_a_hit_seeks(page):
    cdp, result = page
    # the page's BM25 gives the scores of search/bm25.py over the same texts, in the same order
    texts = [_shown(c) for c in result.clips] + [_shown(s) for s in result.segments]
    for query in ("item 3", "Segment <script> 2", "more items"):
        _type(cdp, query)
        hits = cdp.eval("[...document.querySelectorAll('#hits button')].map(b => [+b.dataset.score, b.textContent])")
        scores = BM25([tokenize(t) for t in texts]).scores(tokenize(query))
        order = [i for i in np.lexsort((np.arange(len(texts)), -scores)) if scores[i] > 0]
        assert [h[0] for h in hits] == pytest.approx([scores[i] for i in order], rel=1e-9)
        assert len(hits) == len(order)
        assert all(h[1].endswith(texts[i]) for h, i in zip(hits, order, strict=True))
    # "item 3": clip 3 first, its words marked; model text stays text (no element injected)
    _type(cdp, "item 3")
    first = cdp.eval(
        "(() => { const b = document.querySelector('#hits button');"
        " return [b.querySelector('.t').textContent, b.querySelector('.lvl').textContent,"
        " [...b.querySelectorAll('mark')].map(m => m.textContent), b.querySelectorAll('b, script').length]; })()"
    )
    assert first == ["0:06", "clip", ["item", "3"], 0]
    status = cdp.eval("document.getElementById('search-status').textContent")
    assert status == f"{len(result.clips)} matches"
    # clicking the hit seeks the video there and the timeline follows
    cdp.click("#hits li:first-child button")
    assert cdp.eval("document.getElementById('player').currentTime") == pytest.approx(result.clips[3].start, abs=0.1)
    cdp.eval("new Promise(r => setTimeout(r, 100))")
    assert _current(cdp) == ([_shown(result.clips[3])], [result.segments[0].text])
    # typing "]" in the box is text, not the next-segment key; no match says so; Escape clears
    _type(cdp, "zebra ]")
    assert cdp.eval("document.getElementById('player').currentTime") == pytest.approx(result.clips[3].start, abs=0.1)
    assert cdp.eval("document.getElementById('search-status').textContent") == "No caption or segment matches."
    assert cdp.eval("document.querySelectorAll('#hits li').length") == 0
    for kind in ("keyDown", "keyUp"):
        cdp.send("Input.dispatchKeyEvent", type=kind, key="Escape", code="Escape", windowsVirtualKeyCode=27)
    assert cdp.eval("[document.getElementById('q').value, document.getElementById('search-status').textContent]") == [
        "",
        "",
    ]
    assert cdp.errors() == []


# ---- start offsets and videos Chromium cannot play -----------------------------------------------------------------
OFFSET_FPS = 10


def _grey_index(i: int, t: float) -> tuple[int, int, int]:
    return (2 * i,) * 3  # frame i (< 128) is grey 2*i: the picture tells which moment is showing


def _offset_result(video: Path) -> CaptionResult:
    info = probe(video)  # caption times count from the first frame, as the pipeline writes them
    meta = VideoMeta("offset", str(video), info.duration, info.fps, info.width, info.height,
                     start_time=info.start_time, codec=info.codec)  # fmt: skip
    return CaptionResult(
        video=meta,
        clips=[Caption(2.0 * i, 2.0 * i + 2.0, f"#C C does step {i}") for i in range(5)],
        segments=[Caption(0.0, 6.0, "first part"), Caption(6.0, 10.0, "second part")],
        windows={"clip": 2.0, "segment": 6.0},
    )


_SHOWN_FRAME = (
    "(() => { const v = document.getElementById('player'), c = document.createElement('canvas');"
    " c.width = v.videoWidth; c.height = v.videoHeight; const g = c.getContext('2d'); g.drawImage(v, 0, 0);"
    " const d = g.getImageData(0, 0, c.width, c.height).data; let s = 0;"
    " for (let i = 0; i < d.length; i += 4) s += d[i]; return Math.round(s / (d.length / 4) / 2); })()"
)


def _click_clip_and_check(cdp: CDP, result: CaptionResult, i: int, player_offset: float) -> None:
    """Clicking clip i seeks the player to its start (+ the offset of the player's timeline), shows the frame of that
    caption time, and highlights that clip and its caption cue."""
    cdp.eval("document.querySelectorAll('details').forEach(d => d.open = true)")
    cdp.eval(
        "new Promise(r => { const v = document.getElementById('player');"
        " v.addEventListener('seeked', () => setTimeout(r, 100), {once: true});"
        f" document.querySelectorAll('.clip button')[{i}].click(); }})"
    )
    c = result.clips[i]
    assert cdp.eval("document.getElementById('player').currentTime") == pytest.approx(c.start + player_offset, abs=0.05)
    assert cdp.eval(_SHOWN_FRAME) == round(c.start * OFFSET_FPS)  # the picture of that caption time
    assert _current(cdp)[0] == [display_text(c.text)]
    # inside the clip (at its start the previous cue, ending there, may still count as active) its cue is showing
    _seek_and_wait(cdp, c.start + 0.5 + player_offset)
    active = cdp.eval("[...document.getElementById('player').textTracks[0].activeCues].map(c => c.text)")
    assert active == [display_text(c.text)]


def test_start_offset_maps_caption_time_to_player_time(tmp_path):
    """An .mkv whose streams start at 3.5 s: Chromium's timeline runs 0-13.5 s with the first frame at 3.5 s, the
    captions 0-10 s. Clicks seek to caption start + 3.5 and the highlight follows caption time, not player time."""
    video = make_video(tmp_path / "offset.mkv", duration=10.0, fps=OFFSET_FPS, size=(64, 48), codec="libx264",
                       start_time=3.5, color_fn=_grey_index)  # fmt: skip
    result = _offset_result(video)
    assert result.video.start_time == 3.5 and result.video.duration == pytest.approx(10.0)
    with _open_page(tmp_path, result) as cdp:  # over HTTP: a file: video would taint the canvas that reads frames
        assert cdp.eval("document.getElementById('player').duration") == pytest.approx(13.5, abs=0.1)
        for i in (3, 0, 2):
            _click_clip_and_check(cdp, result, i, player_offset=3.5)
        # the highlight at a player time is the caption of player time - 3.5
        _seek_and_wait(cdp, 3.5 + 7.3)
        assert _current(cdp) == ([display_text(result.clips[3].text)], ["second part"])
        # "]" jumps to the next segment's start on the player's timeline
        _seek_and_wait(cdp, 3.5 + 1.0)
        cdp.eval("document.body.focus()")
        for kind in ("keyDown", "keyUp"):
            cdp.send("Input.dispatchKeyEvent", type=kind, key="]", code="BracketRight", text="]")
        assert cdp.eval("document.getElementById('player').currentTime") == pytest.approx(6.0 + 3.5, abs=0.05)
        assert cdp.errors() == []


@pytest.mark.skipif("libx265" not in av.codecs_available, reason="PyAV's FFmpeg has no HEVC encoder")
def test_unplayable_video_says_why_and_the_web_copy_plays(tmp_path):
    video = make_video(tmp_path / "phone.mkv", duration=10.0, fps=OFFSET_FPS, size=(64, 48), codec="libx265",
                       start_time=3.5, color_fn=_grey_index)  # fmt: skip
    result = _offset_result(video)
    with _open_page(tmp_path, result, via="file") as cdp:
        assert cdp.eval(
            "(() => { const v = document.getElementById('player'); return !!v.error || v.videoWidth === 0 })()"
        )
        err = cdp.eval(
            "(() => { const e = document.getElementById('video-error');"
            " return [e.hidden, e.getBoundingClientRect().height > 0, e.textContent]; })()"
        )
        assert err[:2] == [False, True]
        assert err[2].startswith("Your browser cannot play this video (HEVC in Matroska). Run `videorecap caption ")
        assert "--web-video`" in err[2]
    # --web-video: an H.264 copy that starts at 0, played by the page with no offset
    copy = make_web_copy(video, tmp_path / "out")
    with _open_page(tmp_path, result, via="http", web_video=copy.path) as cdp:
        assert cdp.eval("document.getElementById('player').error") is None
        assert cdp.eval("document.getElementById('video-error').hidden") is True
        assert cdp.eval("document.getElementById('player').getAttribute('src')") == "video.web.mp4"
        assert cdp.eval("document.getElementById('player').duration") == pytest.approx(10.0, abs=0.15)
        for i in (2, 4):
            _click_clip_and_check(cdp, result, i, player_offset=0.0)
        assert cdp.errors() == []


def test_chromium_is_installed():
    assert Path(chromium()).exists()


def test_missing_chromium_skips_with_the_hint_unless_required(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # a folder with no chromium in it
    monkeypatch.delenv("VIDEORECAP_CHROMIUM", raising=False)
    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match=re.escape(INSTALL_HINT)):
        chromium()
    monkeypatch.setenv(REQUIRE_ENV, "0")
    with pytest.raises(pytest.skip.Exception):
        chromium()
    monkeypatch.setenv(REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match=rf"{re.escape(INSTALL_HINT)} \({REQUIRE_ENV} is set"):
        chromium()


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
