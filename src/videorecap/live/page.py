"""The `--serve` page: the captions and the rolling summary of a live session, as they arrive.

`serve_page(session, port)` starts `httpserve.App` with three routes: `/` (this page), `/events` (the session's
events as server-sent events, an `httpserve.EventStream`: a page opened late gets every event so far first) and
`/api/status` (the status line's numbers as JSON). The page builds its lists from the events with `textContent`
only, so caption text is never read as HTML.
"""

from __future__ import annotations

from typing import Any

from videorecap.httpserve import App, EventStream, Request, Response, Server, json_response

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>videorecap live</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">
<style>
body { font: 15px/1.45 system-ui, sans-serif; margin: 0; color: #222; }
header { padding: .6em 1em; background: #223; color: #eee; display: flex; gap: 1.5em; align-items: baseline; }
header h1 { font-size: 1.1em; margin: 0; }
main { display: grid; grid-template-columns: 1fr 1fr; gap: 1em; padding: 1em; }
section { min-width: 0; }
h2 { font-size: 1em; margin: .2em 0 .5em; color: #445; }
#summary { background: #f4f4fa; padding: .7em; border-radius: 6px; white-space: pre-wrap; }
ol { list-style: none; padding: 0; margin: 0; }
li { padding: .25em 0; border-bottom: 1px solid #eee; }
.t { color: #778; font-variant-numeric: tabular-nums; margin-right: .5em; }
.skipped { color: #a55; font-style: italic; }
#state.ended { color: #9c9; }
</style></head>
<body>
<header><h1>videorecap live</h1><span id="state">connecting</span><span id="where"></span></header>
<main>
<section><h2>Summary so far</h2><div id="summary">(after the first segment)</div>
<h2>Segments</h2><ol id="segments"></ol></section>
<section><h2>Clips</h2><ol id="clips"></ol></section>
</main>
<script>
"use strict";
function clock(t) {
  const s = Math.floor(t), h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60, x = s % 60;
  return (h ? h + ":" + String(m).padStart(2, "0") : String(m)) + ":" + String(x).padStart(2, "0");
}
function item(ev, text, cls) {
  const li = document.createElement("li");
  const t = document.createElement("span");
  t.className = "t";
  t.textContent = clock(ev.start) + "\\u2013" + clock(ev.end);
  const x = document.createElement("span");
  x.className = "x" + (cls ? " " + cls : "");
  x.textContent = text;
  li.append(t, x);
  li.dataset.index = ev.index;
  return li;
}
function shown(text) { return text.replace(/^#C\\s+/, ""); }
const state = document.getElementById("state"), where = document.getElementById("where");
const es = new EventSource("events");
es.onopen = () => { state.textContent = "live"; };
es.addEventListener("start", e => { const ev = JSON.parse(e.data); where.textContent = ev.source; });
es.addEventListener("clip", e => {
  const ev = JSON.parse(e.data);
  const li = ev.skipped ? item(ev, "skipped (" + ev.skipped + ")", "skipped") : item(ev, shown(ev.text));
  li.className = "clip";
  document.getElementById("clips").prepend(li);
  where.textContent = clock(ev.end) + (ev.latency !== undefined ? "  (" + ev.latency.toFixed(1) + " s behind)" : "");
});
es.addEventListener("segment", e => {
  const ev = JSON.parse(e.data);
  const li = item(ev, shown(ev.text));
  li.className = "seg";
  document.getElementById("segments").prepend(li);
});
es.addEventListener("summary", e => {
  const ev = JSON.parse(e.data);
  const s = document.getElementById("summary");
  s.textContent = shown(ev.text);
  s.dataset.final = ev.final ? "1" : "0";
  s.dataset.afterSegment = ev.after_segment;
});
es.addEventListener("end", e => {
  const ev = JSON.parse(e.data);
  state.textContent = "ended (" + ev.reason + ")";
  state.className = "ended";
  es.close();
});
es.onerror = () => { if (state.className !== "ended") state.textContent = "reconnecting"; };
</script>
</body></html>
"""


def make_app(session: Any) -> tuple[App, EventStream]:
    """The page's app, and the event stream the session's events go to (a session listener publishes them)."""
    app = App("videorecap live")
    events = EventStream()

    def page(req: Request) -> Response:
        return Response(PAGE.encode(), content_type="text/html; charset=utf-8", headers={"Cache-Control": "no-store"})

    app.route("GET", "/", page)
    app.route("GET", "/events", events.handler)
    app.route("GET", "/api/status", lambda req: json_response(session.status()))
    return app, events


HOST = "127.0.0.1"  # the page is for this machine unless `live --host` says otherwise


def serve_page(session: Any, port: int, host: str = HOST) -> Server:
    """Serve the live page of `session` (port 0: a free one, see `.url`); its events are published as they come.

    Raises:
        InputError: it cannot listen on host:port (`live --host` and `--serve`, named in the message).
    """
    app, events = make_app(session)
    server = app.serve(host, port, host_flag="--host", port_flag="--serve")
    session.listeners.append(lambda ev: events.publish(ev["event"], ev))
    close = server.close

    def close_all() -> None:
        events.close()
        close()

    server.close = close_all  # type: ignore[method-assign]
    return server
