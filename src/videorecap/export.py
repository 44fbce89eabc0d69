"""Files written from a `CaptionResult`: subtitles, chapters, a Markdown summary and a self-contained HTML page.

`write_outputs(result, out_dir)` writes, atomically:

- `captions.json`: the result itself (see `videorecap.results` and docs/outputs.md);
- `clips.srt`, `clips.vtt`: the clip captions as subtitles;
- `segments.vtt`: the segment descriptions as WebVTT chapters;
- `summary.md`: the summary, the segment descriptions with timestamps and the clip captions folded under them;
- `index.html`: a page with a video player, the summary and a clickable timeline (no network, no CDN).

Everything the model wrote is escaped for the format it lands in: `&`, `<`, `>` in WebVTT (so `-->` cannot end a
cue), all of it in HTML, and Markdown punctuation in `summary.md` (so model text never becomes raw HTML or links).
Subtitle cues are made ordered, non-overlapping and at least 1 ms long, whatever the captions say.
"""

from __future__ import annotations

import base64
import hashlib
import html
import logging
import os
import re
import urllib.parse
from collections.abc import Sequence
from pathlib import Path

from videorecap import fileio
from videorecap.results import Caption, CaptionResult

logger = logging.getLogger(__name__)

OUTPUT_FILES = ("captions.json", "clips.srt", "clips.vtt", "segments.vtt", "summary.md", "index.html")


# ---- time stamps --------------------------------------------------------------------------------------------------
def _ms(t: float) -> int:
    return max(0, int(round(t * 1000)))


def format_timestamp(t: float, sep: str = ".") -> str:
    """`HH:MM:SS.mmm` (`sep=","` gives SRT's `HH:MM:SS,mmm`); hours keep counting past 99."""
    ms = _ms(t)
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def format_clock(t: float) -> str:
    """`HH:MM:SS` (rounded down to the second) for people to read."""
    s = int(max(t, 0.0))
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _cue_times(captions: Sequence[Caption]) -> list[tuple[int, int, str]]:
    """Captions as `(start_ms, end_ms, text)` cues that are sorted, never overlap and last at least 1 ms.

    A cue is cut where the next one starts; a cue that would start before the previous one ended starts later.
    """
    caps = sorted(captions, key=lambda c: (c.start, c.end))
    cues: list[tuple[int, int, str]] = []
    prev_end = 0
    for i, c in enumerate(caps):
        start = max(_ms(c.start), prev_end)
        end = _ms(c.end)
        if i + 1 < len(caps):
            end = min(end, max(_ms(caps[i + 1].start), start + 1))
        end = max(end, start + 1)
        cues.append((start, end, c.text))
        prev_end = end
    return cues


def _one_line(text: str) -> str:
    # A blank line ends a cue in SRT and WebVTT; model text is a single line anyway, so fold all whitespace.
    return " ".join(text.split())


# ---- subtitles ----------------------------------------------------------------------------------------------------
def to_srt(captions: Sequence[Caption]) -> str:
    """SubRip subtitles. SRT has no escape syntax: text is kept as is, on one line."""
    blocks = []
    for i, (start, end, text) in enumerate(_cue_times(captions), 1):
        ts = f"{format_timestamp(start / 1000, ',')} --> {format_timestamp(end / 1000, ',')}"
        blocks.append(f"{i}\n{ts}\n{_one_line(text)}\n")
    return "\n".join(blocks)


def escape_vtt(text: str) -> str:
    """Escape cue text for WebVTT: `&`, `<` and `>` become entities (so `-->` cannot appear), one line."""
    return _one_line(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_vtt(captions: Sequence[Caption], chapters: bool = False) -> str:
    """WebVTT subtitles, or chapters (`chapters=True`: cue ids `chapter-1`, ... for a `kind="chapters"` track)."""
    out = ["WEBVTT", ""]
    for i, (start, end, text) in enumerate(_cue_times(captions), 1):
        if chapters:
            out.append(f"chapter-{i}")
        out.append(f"{format_timestamp(start / 1000)} --> {format_timestamp(end / 1000)}")
        out.append(escape_vtt(text))
        out.append("")
    return "\n".join(out)


# ---- markdown -----------------------------------------------------------------------------------------------------
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>&|~#!])")
_MD_BLOCK_START = re.compile(r"^(\s*)([-+=>]|\d+[.)])")


def escape_markdown(text: str) -> str:
    """Backslash-escape Markdown punctuation so model text stays plain text (never HTML, links or emphasis)."""
    text = _MD_SPECIAL.sub(r"\\\1", _one_line(text))
    # A leading "-", "+", "1." or "=" would start a list, a heading underline or a quote.
    return _MD_BLOCK_START.sub(lambda m: m.group(1) + "\\" + m.group(2), text, count=1)


def _span(c: Caption) -> str:
    return f"{format_clock(c.start)}–{format_clock(c.end)}"


def to_markdown(result: CaptionResult) -> str:
    """`summary.md`: the summary, then each segment description with its time span and its clip captions folded
    underneath (an HTML `<details>` block, which GitHub and most viewers render as a collapsible list)."""
    v = result.video
    lines = [f"# {escape_markdown(v.id) or 'Video'}", ""]
    lines.append(f"Duration {format_clock(v.duration)} · levels: {', '.join(result.levels or []) or 'none'}")
    lines.append("")
    lines += ["## Summary", ""]
    if result.summary is not None:
        lines += [escape_markdown(result.summary.text), ""]
    else:
        lines += ["*No summary: the video level was not run.*", ""]

    groups = result.clips_by_segment()
    if result.segments:
        lines += ["## Segments", ""]
    elif result.clips:
        lines += ["## Clips", ""]
    for seg, clips in groups:
        if seg is not None:
            lines += [f"### {_span(seg)}", "", escape_markdown(seg.text), ""]
        if clips:
            if seg is not None:
                lines += ["<details>", f"<summary>{len(clips)} clip captions</summary>", ""]
            lines += [f"- `{_span(c)}` {escape_markdown(c.text)}" for c in clips]
            lines.append("")
            if seg is not None:
                lines += ["</details>", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


# ---- html ---------------------------------------------------------------------------------------------------------
def _e(text: str) -> str:
    return html.escape(text, quote=True)


_CSS = """
:root { color-scheme: light dark; --accent: #2a6fdb; --hl: rgba(42, 111, 219, 0.16); --muted: #777; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
header, #summary { padding: 0.6rem 1.2rem; }
h1 { font-size: 1.3rem; margin: 0.2rem 0; word-break: break-all; }
h2 { font-size: 1.05rem; margin: 0.4rem 0; }
.meta { color: var(--muted); margin: 0; }
#summary p { margin: 0.3rem 0; max-width: 70rem; }
main { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 1rem; padding: 0 1.2rem 1rem; }
@media (max-width: 800px) { main { grid-template-columns: 1fr; } }
.player { position: sticky; top: 0; align-self: start; }
video { width: 100%; max-height: 80vh; background: #000; }
.bar { display: flex; height: 1.2rem; margin: 0.4rem 0; }
.bar button { flex: 1 1 0; border: 1px solid rgba(128, 128, 128, 0.5); background: rgba(128, 128, 128, 0.15);
  padding: 0; min-width: 2px; cursor: pointer; }
.bar button.current { background: var(--accent); }
#timeline { max-height: calc(100vh - 1rem); overflow-y: auto; }
ol { list-style: none; margin: 0; padding: 0; }
.seg { border-left: 3px solid transparent; margin-bottom: 0.4rem; }
.seg.current { border-left-color: var(--accent); }
.clips { padding-left: 1rem; }
button.seek { display: flex; gap: 0.6rem; width: 100%; text-align: left; font: inherit; color: inherit;
  background: none; border: 0; border-radius: 4px; padding: 0.25rem 0.4rem; cursor: pointer; }
button.seek:hover { background: rgba(128, 128, 128, 0.15); }
button:focus-visible { outline: 2px solid var(--accent); outline-offset: 1px; }
.seg.current > button.seek, .clip.current > button.seek { background: var(--hl); }
.seg > button.seek { font-weight: 600; }
.t { flex: none; font-variant-numeric: tabular-nums; color: var(--muted); }
details > summary { cursor: pointer; color: var(--muted); padding: 0.1rem 0.4rem 0.1rem 1rem; }
.empty { color: var(--muted); font-style: italic; }
""".strip()

# Vanilla JS, no data of its own: it reads the start times from the data-start attributes the page already has.
# Lookups are binary searches over sorted start times, so `timeupdate` costs O(log n) even with thousands of clips.
_JS = """
(function () {
  "use strict";
  var video = document.getElementById("player");
  var follow = document.getElementById("follow");
  var clipEls = Array.prototype.slice.call(document.querySelectorAll("#timeline .clip"));
  var segEls = Array.prototype.slice.call(document.querySelectorAll("#timeline .seg[data-start]"));
  var barEls = Array.prototype.slice.call(document.querySelectorAll(".bar button"));
  function startsOf(els) {
    var a = new Float64Array(els.length);
    for (var i = 0; i < els.length; i++) a[i] = parseFloat(els[i].getAttribute("data-start"));
    return a;
  }
  var clipStarts = startsOf(clipEls), segStarts = startsOf(segEls);
  // widths of the segment bar, set here because the CSP forbids inline style attributes
  barEls.forEach(function (b) { b.style.flex = "0 0 " + b.getAttribute("data-w") + "%"; });
  // index of the last start <= t, or -1
  function find(starts, t) {
    var lo = 0, hi = starts.length - 1, ans = -1;
    while (lo <= hi) {
      var mid = (lo + hi) >> 1;
      if (starts[mid] <= t) { ans = mid; lo = mid + 1; } else { hi = mid - 1; }
    }
    return ans;
  }
  var curClip = -1, curSeg = -1;
  function mark(el, on) {
    if (!el) return;
    el.classList.toggle("current", on);
    if (on) el.setAttribute("aria-current", "true"); else el.removeAttribute("aria-current");
  }
  var started = false;  // no scrolling when the page opens, only once the video moved
  function reveal(el) {
    if (!el || !started || !follow.checked) return;
    var d = el.closest("details");
    if (d && !d.open) d.open = true;
    el.scrollIntoView({ block: "nearest" });
  }
  function update(ev) {
    if (ev) started = true;
    var t = video.currentTime + 1e-3;  // a seek to a start time lands on that entry, not the one before
    var s = find(segStarts, t);
    if (s !== curSeg) {
      mark(segEls[curSeg], false); mark(barEls[curSeg], false);
      curSeg = s;
      mark(segEls[s], true); mark(barEls[s], true);
      if (s >= 0) reveal(segEls[s].firstElementChild);
    }
    var c = find(clipStarts, t);
    if (c !== curClip) {
      mark(clipEls[curClip], false);
      curClip = c;
      mark(clipEls[c], true);
      reveal(clipEls[c]);
    }
  }
  function seek(ev) {
    var b = ev.target.closest("button[data-t]");
    if (!b) return;
    video.currentTime = parseFloat(b.getAttribute("data-t"));
    update(ev);
  }
  document.getElementById("timeline").addEventListener("click", seek);
  var bar = document.querySelector(".bar");
  if (bar) bar.addEventListener("click", seek);
  video.addEventListener("timeupdate", update);
  video.addEventListener("seeked", update);
  // Keyboard: "[" / "]" previous / next segment, "," / "." previous / next clip (outside text fields).
  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || /^(INPUT|TEXTAREA|SELECT)$/.test(ev.target.tagName)) return;
    var k = { "[": [segStarts, -1], "]": [segStarts, 1], ",": [clipStarts, -1], ".": [clipStarts, 1] }[ev.key];
    if (!k || !k[0].length) return;
    var i = find(k[0], video.currentTime + 1e-3) + k[1];
    i = Math.max(0, Math.min(k[0].length - 1, i));
    video.currentTime = k[0][i];
    update(ev);
    ev.preventDefault();
  });
  update();
})();
""".strip()


def _csp_hash(code: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(code.encode("utf-8")).digest()).decode("ascii") + "'"


def _seek_button(c: Caption, cls: str = "seek") -> str:
    return (
        f'<button type="button" class="{cls}" data-t="{c.start:.3f}">'
        f'<span class="t">{format_clock(c.start)}</span><span class="x">{_e(c.text)}</span></button>'
    )


def to_html(
    result: CaptionResult,
    video_src: str,
    *,
    subtitles_src: str | None = None,
    chapters_src: str | None = None,
) -> str:
    """A self-contained page: player, summary, segment timeline with the clips folded under each segment.

    Args:
        video_src: URL of the video for the `<video>` element, best a path relative to where the page is written.
        subtitles_src: optional URL of `clips.vtt`, offered as a captions track in the player.
        chapters_src: optional URL of `segments.vtt`, added as a chapters track.

    The page loads nothing from the network: inline CSS and JS only, locked down by a Content-Security-Policy
    that allows exactly these inline blocks, so even text that escaped escaping could not run as script.
    """
    v = result.video
    title = v.id or "video"
    dur = v.duration if v.duration > 0 else max([c.end for c in result.segments + result.clips] + [1.0])
    csp = (
        f"default-src 'none'; script-src {_csp_hash(_JS)}; style-src {_csp_hash(_CSS)}; "
        "media-src * data: blob: file:; img-src data:"
    )
    meta = [f"{format_clock(v.duration)}"]
    if v.width and v.height:
        meta.append(f"{v.width}×{v.height}")
    if v.fps:
        meta.append(f"{v.fps:g} fps")
    if result.model.get("name"):
        meta.append(f"model {result.model['name']}")
    meta.append(f"levels: {', '.join(result.levels or []) or 'none'}")

    p: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_e(csp)}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',  # no favicon request
        f"<title>{_e(title)} · videorecap</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        "<header>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="meta">{_e(" · ".join(meta))}</p>',
        "</header>",
        '<section id="summary" aria-labelledby="summary-h">',
        '<h2 id="summary-h">Summary</h2>',
    ]
    if result.summary is not None:
        p.append(f'<p class="summary-text">{_e(result.summary.text)}</p>')
    else:
        p.append('<p class="empty">No summary: the video level was not run.</p>')
    p += ["</section>", "<main>", '<div class="player">']
    p.append(f'<video id="player" controls preload="metadata" src="{_e(video_src)}">')
    if subtitles_src:
        p.append(f'<track kind="captions" label="Clip captions" srclang="en" src="{_e(subtitles_src)}">')
    if chapters_src:
        p.append(f'<track kind="chapters" label="Segments" srclang="en" src="{_e(chapters_src)}">')
    p.append("</video>")
    if result.segments:
        p.append('<div class="bar" role="group" aria-label="Segments on the time axis">')
        for i, s in enumerate(result.segments):
            width = 100.0 * max(s.end - s.start, 0.0) / dur
            p.append(
                f'<button type="button" data-t="{s.start:.3f}" data-w="{width:.4f}" '
                f'title="{_e(_span(s) + " " + s.text)}" aria-label="Segment {i + 1}, {_span(s)}"></button>'
            )
        p.append("</div>")
    p.append('<label><input type="checkbox" id="follow" checked> Follow playback</label>')
    p += ["</div>", '<nav id="timeline" aria-label="Timeline">']

    groups = result.clips_by_segment()
    if not groups:
        p.append('<p class="empty">No clip captions or segment descriptions.</p>')
    p.append('<ol class="segments">')
    for seg, clips in groups:
        if seg is not None:
            p.append(f'<li class="seg" data-start="{seg.start:.3f}" data-end="{seg.end:.3f}">')
            p.append(_seek_button(seg))
        else:
            p.append('<li class="seg-none">')
        if clips:
            if seg is not None:
                p.append(f"<details><summary>{len(clips)} clip captions</summary>")
            p.append('<ol class="clips">')
            p += [f'<li class="clip" data-start="{c.start:.3f}">{_seek_button(c)}</li>' for c in clips]
            p.append("</ol>")
            if seg is not None:
                p.append("</details>")
        p.append("</li>")
    p += ["</ol>", "</nav>", "</main>", f"<script>{_JS}</script>", "</body>", "</html>", ""]
    return "\n".join(p)


# ---- all files ----------------------------------------------------------------------------------------------------
def video_src_for(video_path: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> str:
    """The `<video src>` for a page written in `out_dir`: a URL-quoted relative path when one exists (so the
    folder can be moved together with the video), else a `file://` URL."""
    target = Path(video_path).resolve()
    try:
        rel = os.path.relpath(target, Path(out_dir).resolve())
    except ValueError:  # another drive on Windows
        return target.as_uri()
    return urllib.parse.quote(Path(rel).as_posix())


def write_outputs(
    result: CaptionResult, out_dir: str | os.PathLike[str], *, video_src: str | None = None
) -> list[Path]:
    """Write every output file of `result` into `out_dir` (created if needed); returns their paths.

    `video_src` is the player's URL for the video; by default the path of `result.video.path` relative to
    `out_dir`. Files of levels that were not run are still written (empty) so a folder never mixes runs.
    """
    out = Path(out_dir)
    if video_src is None:
        video_src = video_src_for(result.video.path, out)
    written = [result.save(out / "captions.json")]
    texts = {
        "clips.srt": to_srt(result.clips),
        "clips.vtt": to_vtt(result.clips),
        "segments.vtt": to_vtt(result.segments, chapters=True),
        "summary.md": to_markdown(result),
        "index.html": to_html(result, video_src, subtitles_src="clips.vtt", chapters_src="segments.vtt"),
    }
    for name, text in texts.items():
        fileio.write_text(out / name, text)
        written.append(out / name)
    logger.info("wrote %d files to %s", len(written), out)
    return written
