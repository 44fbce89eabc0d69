"""A local web app over a folder of captioned videos: browse them, search moments across them, ask about one.

`mount(app, folder, ask=None)` adds its routes to an `httpserve.App` (`videorecap serve FOLDER` mounts it):

    GET  /                       the page (one HTML file; its script and style at /app.js and /app.css)
    GET  /api/videos             every video of the folder: key, id, duration, summary, counts
    GET  /api/videos/<key>       one video's summary, segment descriptions and clip captions, and its media URL
    GET  /api/search?q=&k=&mode=&level=   moments across the videos (as `videorecap search --json`)
    POST /api/ask                {"video": key, "question": "..."} -> ask(its captions, question), when `ask` is given
    GET  /media/<key>            the video (its web copy when `--web-video` wrote one), with byte ranges

The folder is read again when its captions files change (a `caption` run adding videos shows up on the next
request). Semantic and hybrid search use the stored index of `videorecap search` (search/index.py); without the
embedding wheel they answer lexically, with a note naming what to install. `ask(result, question)` (the video's
`CaptionResult`; `qa.answer.web_ask` builds one) returns a dict
with at least `answer` (text) and optionally `evidence`: [{"start", "end", "text"}] (moments the page can seek to);
a `VideoRecapError` it raises is shown as the user's mistake (400). `ask=None` hides the box.

Everything is served to 127.0.0.1 only by default (httpserve), and the page loads nothing from elsewhere.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from videorecap.errors import VideoRecapError
from videorecap.export import display_text
from videorecap.httpserve import App, HTTPError, Request, Response, file_response, json_response
from videorecap.results import CaptionResult
from videorecap.search.index import Corpus, Video, embeddings, load_corpus
from videorecap.search.moments import LEVELS, MODES, Searcher

log = logging.getLogger(__name__)

AskFn = Callable[[CaptionResult, str], dict[str, Any]]
WEB_COPIES = ("video.web.mp4", "video.web.webm")  # what `caption --web-video` writes beside captions.json
MAX_K = 100
_CSP = "default-src 'self'; media-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'"


class FolderApp:
    """The app's state: the folder's corpus (read again when files change) and, once needed, the embedder."""

    def __init__(self, folder: str | os.PathLike[str], ask: AskFn | None = None) -> None:
        self.folder = Path(folder)
        self.ask = ask
        self._lock = threading.Lock()
        self._signature: tuple[tuple[str, int, int], ...] | None = None
        self._corpus: Corpus | None = None
        self._searchers: dict[bool, Searcher] = {}
        self._embedder: Any = None
        self.semantic_note: str | None = None  # why semantic search is off (the wheel is missing)

    def _scan(self) -> tuple[tuple[str, int, int], ...]:
        sig = []
        for here, dirs, names in os.walk(self.folder):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for n in names:
                if n.endswith(".json") and not n.startswith("."):
                    try:
                        st = os.stat(os.path.join(here, n))
                    except OSError:
                        continue
                    sig.append((os.path.join(here, n), st.st_mtime_ns, st.st_size))
        return tuple(sorted(sig))

    def corpus(self) -> Corpus:
        with self._lock:
            sig = self._scan()
            if self._corpus is None or sig != self._signature:
                self._corpus, self._signature, self._searchers = load_corpus(self.folder), sig, {}
                log.info("%s: %d videos, %d texts", self.folder, len(self._corpus.videos), len(self._corpus.docs))
            return self._corpus

    def searcher(self, semantic: bool) -> Searcher:
        corpus = self.corpus()
        with self._lock:
            if semantic and self._embedder is None and self.semantic_note is None:
                from videorecap.text.embed import shared_embedder

                try:
                    self._embedder = shared_embedder()  # the ask box's too
                except VideoRecapError as e:
                    self.semantic_note = str(e)
            semantic = semantic and self._embedder is not None
            if semantic not in self._searchers:
                emb = embeddings(corpus, self._embedder) if semantic else None
                self._searchers[semantic] = Searcher(corpus, emb, self._embedder if semantic else None)
            return self._searchers[semantic]


def _caps(caps: list, narrator: str = "c") -> list[dict[str, Any]]:
    return [{"start": c.start, "end": c.end, "text": display_text(c.text, narrator)} for c in caps]


def media_file(video: Video, root: Path) -> Path | None:
    """The file to play: the web copy beside captions.json, else the source as captions.json names it (absolute,
    or relative to where `caption` ran, the folder, or the captions file's folder)."""
    for name in WEB_COPIES:
        p = video.captions.parent / name
        if p.is_file():
            return p
    src = Path(video.result.video.path)
    for p in [src] if src.is_absolute() else [src, root / src, video.captions.parent / src]:
        if p.is_file():
            return p
    return None


def _summary(v: Video) -> dict[str, Any]:
    r = v.result
    return {
        "key": v.key,
        "id": v.id,
        "duration": r.video.duration,
        "summary": None if r.summary is None else display_text(r.summary.text),
        "clips": len(r.clips),
        "segments": len(r.segments),
    }


def mount(app: App, folder: str | os.PathLike[str], *, ask: AskFn | None = None) -> FolderApp:
    """Add the web app's routes (see the module docstring) to `app`; returns its state."""
    state = FolderApp(folder, ask)

    def video_of(key: str) -> Video:
        v = state.corpus().video(key)
        if v is None:
            raise HTTPError(404, f"no video {key!r} in {state.folder}", "not_found")
        return v

    def page(req: Request) -> Response:
        return Response(
            _HTML.encode(), content_type="text/html; charset=utf-8", headers={"Content-Security-Policy": _CSP}
        )

    def asset(body: str, ctype: str) -> Callable[[Request], Response]:
        return lambda req: Response(body.encode(), content_type=f"{ctype}; charset=utf-8")

    def videos(req: Request) -> Response:
        corpus = state.corpus()
        return json_response(
            {
                "folder": str(state.folder),
                "videos": [_summary(v) for v in corpus.videos],
                "skipped": corpus.skipped,
                "ask": state.ask is not None,
            }
        )

    def video(req: Request) -> Response:
        v = video_of(req.params["key"])
        media = media_file(v, state.folder)
        web_copy = media is not None and media.name in WEB_COPIES
        r = v.result
        return json_response(
            {
                **_summary(v),
                "segment_list": _caps(r.segments),
                "clip_list": _caps(r.clips),
                "media": None if media is None else f"/media/{v.key}",
                # where caption time 0 sits on the player's clock (a web copy starts at 0), as in index.html
                "offset": 0.0 if web_copy else r.video.start_time,
                "ask": state.ask is not None,
            }
        )

    def search(req: Request) -> Response:
        q = (req.arg("q") or "").strip()
        mode, level = req.arg("mode", "hybrid") or "hybrid", req.arg("level", "all") or "all"
        if mode not in MODES or level not in LEVELS:
            raise HTTPError(400, f"mode must be one of {', '.join(MODES)} and level one of {', '.join(LEVELS)}")
        try:
            k = max(1, min(int(req.arg("k", "10") or 10), MAX_K))
        except ValueError:
            raise HTTPError(400, "k must be a whole number") from None
        if not q:
            raise HTTPError(400, "the query is empty")
        searcher = state.searcher(semantic=mode != "lexical")
        used = mode if searcher.embeddings is not None or mode == "lexical" else "lexical"
        moments = searcher.search(q, k, used, level)
        out = {"query": q, "mode": used, "level": level, "moments": [_moment(m) for m in moments]}
        if used != mode:
            out["note"] = f"{mode} search is off: {state.semantic_note}; these are lexical results"
        return json_response(out)

    def ask_route(req: Request) -> Response:
        if state.ask is None:
            raise HTTPError(404, "asking is not enabled on this server", "not_found")
        body = req.json()
        if not isinstance(body, dict) or not isinstance(body.get("video"), str):
            raise HTTPError(400, 'send {"video": KEY, "question": "..."}')
        question = str(body.get("question") or "").strip()
        if not question:
            raise HTTPError(400, "the question is empty")
        v = video_of(body["video"])
        try:
            answer = state.ask(v.result, question)
        except VideoRecapError as e:
            raise HTTPError(400, str(e)) from None
        return json_response(answer)

    def media(req: Request) -> Response:
        v = video_of(req.params["key"])
        p = media_file(v, state.folder)
        if p is None:
            raise HTTPError(404, f"the video file of {v.id} is not where captions.json says ({v.result.video.path})")
        return file_response(req, p)

    app.route("GET", r"/", page)
    app.route("GET", r"/app\.js", asset(_JS, "application/javascript"))
    app.route("GET", r"/app\.css", asset(_CSS, "text/css"))
    app.route("GET", r"/api/videos", videos)
    app.route("GET", r"/api/videos/(?P<key>.+)", video)
    app.route("GET", r"/api/search", search)
    app.route("POST", r"/api/ask", ask_route)
    app.route("GET", r"/media/(?P<key>.+)", media)
    return state


def _moment(m: Any) -> dict[str, Any]:
    d = m.to_dict()
    for k in ("captions", "page"):  # file paths are the server's business
        d.pop(k, None)
    return d


_HTML = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>videorecap</title>
<link rel="stylesheet" href="/app.css">
</head>
<body>
<header>
<h1><a href="#/">videorecap</a> <span id="folder" class="muted"></span></h1>
<form id="search-form" role="search">
<input type="search" id="q" placeholder="Find a moment, e.g. C puts the kettle on the stove" autocomplete="off"
  aria-label="Search all videos">
<select id="mode" aria-label="Search mode">
<option value="hybrid">hybrid</option><option value="semantic">semantic</option><option value="lexical">lexical</option>
</select>
<select id="level" aria-label="Search level">
<option value="all">clips and segments</option><option value="clip">clips</option>
<option value="segment">segments</option>
</select>
<button type="submit">Search</button>
</form>
</header>
<main>
<section id="results" hidden><h2>Moments</h2><p id="note" class="note" hidden></p><ol id="moments"></ol></section>
<section id="home"><h2>Videos</h2><p id="skipped" class="note" hidden></p><ol id="videos"></ol></section>
<section id="video" hidden>
<h2 id="video-title"></h2>
<div class="cols">
<div class="left">
<video id="player" controls preload="metadata"></video>
<p id="no-media" class="note" hidden></p>
<p id="summary"></p>
<form id="ask-form" hidden>
<input type="text" id="question" placeholder="Ask about this video" autocomplete="off" aria-label="Question">
<button type="submit">Ask</button>
</form>
<div id="answer" hidden><p id="answer-text"></p><ol id="evidence"></ol></div>
</div>
<ol id="timeline" class="right"></ol>
</div>
</section>
</main>
<script src="/app.js"></script>
</body>
</html>
"""

_CSS = """
:root { color-scheme: light dark; --accent: #2a6fdb; --muted: #777; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
header { padding: 0.6rem 1.2rem; border-bottom: 1px solid rgba(128, 128, 128, 0.3); }
h1 { font-size: 1.2rem; margin: 0 0 0.4rem; } h1 a { color: inherit; text-decoration: none; }
h2 { font-size: 1.05rem; }
main { padding: 0 1.2rem 1rem; }
.muted, .t, .lvl, .meta { color: var(--muted); }
.note { border-left: 4px solid #d08a00; background: rgba(208, 138, 0, 0.14); padding: 0.3rem 0.6rem; }
#search-form { display: flex; gap: 0.4rem; } #q { flex: 1; font: inherit; padding: 0.3rem 0.5rem; }
ol { list-style: none; margin: 0; padding: 0; }
li { margin: 0.15rem 0; }
button.seek, a.item { display: flex; gap: 0.6rem; width: 100%; text-align: left; font: inherit; color: inherit;
  background: none; border: 0; border-radius: 4px; padding: 0.25rem 0.4rem; cursor: pointer; text-decoration: none; }
button.seek:hover, a.item:hover { background: rgba(128, 128, 128, 0.15); }
.t, .lvl, .score { flex: none; font-variant-numeric: tabular-nums; }
.score { color: var(--accent); }
.cols { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 1rem; }
@media (max-width: 800px) { .cols { grid-template-columns: 1fr; } }
video { width: 100%; max-height: 70vh; background: #000; }
.right { max-height: 80vh; overflow-y: auto; }
.seg > button.seek { font-weight: 600; } .clips { padding-left: 1rem; }
#ask-form { display: flex; gap: 0.4rem; } #question { flex: 1; font: inherit; padding: 0.3rem 0.5rem; }
.current { background: rgba(42, 111, 219, 0.16); }
""".strip()

# Vanilla JS, no framework; every text from the server goes in with textContent, never innerHTML.
_JS = """
(function () {
  "use strict";
  function $(id) { return document.getElementById(id); }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function clock(t) {
    var s = Math.floor(Math.max(t, 0)), h = Math.floor(s / 3600), m = Math.floor(s % 3600 / 60), r = s % 60;
    return (h ? h + ":" + String(m).padStart(2, "0") : String(m)) + ":" + String(r).padStart(2, "0");
  }
  function api(url, opts) {
    return fetch(url, opts).then(function (r) {
      return r.json().then(function (body) {
        if (!r.ok) throw new Error((body.error && body.error.message) || ("HTTP " + r.status));
        return body;
      });
    });
  }
  function show(which) {
    ["home", "video"].forEach(function (s) { $(s).hidden = s !== which; });
  }
  var current = null;  // the video shown: {key, offset, clips}

  function listVideos() {
    return api("/api/videos").then(function (d) {
      $("folder").textContent = d.folder;
      var ol = $("videos");
      ol.textContent = "";
      if (!d.videos.length) ol.appendChild(el("li", "muted", "No captioned videos in this folder yet."));
      d.videos.forEach(function (v) {
        var li = el("li"), a = el("a", "item");
        a.href = "#/video/" + encodeURIComponent(v.key);
        a.appendChild(el("span", "t", clock(v.duration)));
        a.appendChild(el("strong", "", v.id));
        a.appendChild(el("span", "muted", v.summary || (v.clips + " clip captions")));
        li.appendChild(a);
        ol.appendChild(li);
      });
      $("skipped").hidden = !d.skipped.length;
      $("skipped").textContent = d.skipped.length ? "Skipped: " + d.skipped.join("; ") : "";
    });
  }

  function seekButton(start, label, text, cls) {
    var b = el("button", "seek " + (cls || ""));
    b.type = "button";
    b.setAttribute("data-t", start.toFixed(3));
    b.appendChild(el("span", "t", clock(start)));
    if (label) b.appendChild(el("span", "lvl", label));
    b.appendChild(el("span", "x", text));
    return b;
  }
  function seek(t) {
    var p = $("player");
    if (!current || !p.src) return;
    p.currentTime = t + current.offset;
  }

  function openVideo(key, t) {
    return api("/api/videos/" + encodeURIComponent(key)).then(function (v) {
      current = { key: v.key, offset: v.offset };
      show("video");
      $("video-title").textContent = v.id;
      $("summary").textContent = v.summary || "";
      var p = $("player");
      $("no-media").hidden = !!v.media;
      $("no-media").textContent = v.media ? "" : "The video file is not where captions.json says it is.";
      if (v.media) {
        if (p.getAttribute("src") !== v.media) p.src = v.media;
        var go = function () { seek(t || 0); };
        if (p.readyState >= 1) go(); else p.addEventListener("loadedmetadata", go, { once: true });
      } else {
        p.removeAttribute("src");
      }
      var tl = $("timeline");
      tl.textContent = "";
      var segs = v.segment_list, clips = v.clip_list, ci = 0;
      function clipItems(end) {
        var ol = el("ol", "clips");
        while (ci < clips.length && clips[ci].start < end) {
          var li = el("li", "clip");
          li.appendChild(seekButton(clips[ci].start, "", clips[ci].text));
          ol.appendChild(li);
          ci++;
        }
        return ol;
      }
      segs.forEach(function (s, i) {
        var li = el("li", "seg");
        li.appendChild(seekButton(s.start, "", s.text));
        li.appendChild(clipItems(i + 1 < segs.length ? segs[i + 1].start : Infinity));
        tl.appendChild(li);
      });
      if (ci < clips.length) { var li = el("li", "seg"); li.appendChild(clipItems(Infinity)); tl.appendChild(li); }
      $("ask-form").hidden = !v.ask;
      $("answer").hidden = true;
    });
  }

  function route() {
    var m = location.hash.match(/^#\\/video\\/([^?]+)(?:\\?t=([\\d.]+))?$/);
    if (m) return openVideo(decodeURIComponent(m[1]), m[2] ? parseFloat(m[2]) : 0);
    show("home");
    return listVideos();
  }

  $("search-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var q = $("q").value.trim();
    if (!q) return;
    var url = "/api/search?q=" + encodeURIComponent(q) + "&mode=" + $("mode").value + "&level=" + $("level").value;
    api(url).then(function (d) {
      $("results").hidden = false;
      $("note").hidden = !d.note;
      $("note").textContent = d.note || "";
      var ol = $("moments");
      ol.textContent = "";
      if (!d.moments.length) ol.appendChild(el("li", "muted", "No moment matches."));
      d.moments.forEach(function (m) {
        var li = el("li", "moment"), a = el("a", "item");
        a.href = "#/video/" + encodeURIComponent(m.key) + "?t=" + m.start.toFixed(3);
        a.setAttribute("data-score", String(m.score));
        a.appendChild(el("span", "score", m.score.toFixed(4)));
        a.appendChild(el("strong", "", m.video));
        a.appendChild(el("span", "t", clock(m.start) + "\\u2013" + clock(m.end)));
        a.appendChild(el("span", "lvl", m.level));
        a.appendChild(el("span", "x", m.text));
        li.appendChild(a);
        ol.appendChild(li);
      });
    }).catch(function (e) {
      $("results").hidden = false;
      $("note").hidden = false;
      $("note").textContent = e.message;
    });
  });

  $("timeline").addEventListener("click", function (ev) {
    var b = ev.target.closest("button[data-t]");
    if (b) seek(parseFloat(b.getAttribute("data-t")));
  });
  $("evidence").addEventListener("click", function (ev) {
    var b = ev.target.closest("button[data-t]");
    if (b) seek(parseFloat(b.getAttribute("data-t")));
  });
  $("ask-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var q = $("question").value.trim();
    if (!q || !current) return;
    $("answer").hidden = false;
    $("answer-text").textContent = "\\u2026";
    $("evidence").textContent = "";
    api("/api/ask", { method: "POST", headers: { "Content-Type": "application/json" },
                      body: JSON.stringify({ video: current.key, question: q }) })
      .then(function (a) {
        $("answer-text").textContent = a.answer !== undefined ? String(a.answer) : JSON.stringify(a);
        (a.evidence || []).forEach(function (e) {
          var li = el("li");
          li.appendChild(seekButton(e.start, "", e.text || ""));
          $("evidence").appendChild(li);
        });
      })
      .catch(function (e) { $("answer-text").textContent = "Error: " + e.message; });
  });
  window.addEventListener("hashchange", route);
  route();
})();
""".strip()
