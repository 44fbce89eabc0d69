"""Files written from a `CaptionResult`: subtitles, chapters, a Markdown summary and a self-contained HTML page.

`write_outputs(result, out_dir)` writes, atomically:

- `captions.json`: the result itself (see `videorecap.results` and docs/outputs.md);
- `clips.srt`, `clips.vtt`: the clip captions as subtitles;
- `segments.vtt`: the segment descriptions as WebVTT chapters;
- `summary.md`: the summary, the segment descriptions with timestamps and the clip captions folded under them;
- `index.html`: a page with a video player, the summary, a clickable timeline and a search box (no network, no
  CDN); the cues are embedded in the page, so it works opened straight from disk (`file://`, where browsers refuse
  to load `.vtt` files), search included.

Every human-facing file shows the model's text through `display_text` (Ego4D's "#C C picks up the cup" becomes "C picks
up the cup", or "The camera wearer picks up the cup"); `captions.json` keeps the raw text. Every file names the model.

Model text is untrusted (GPT-2's byte-level tokenizer can emit any character). `plain_text` makes it one line of
printable text (control characters, bidi overrides and the BOM removed, line breaks folded, lone surrogates replaced),
then each format neutralises its own syntax: `-->`, `<`, `>`, `{`, `}` are replaced in SRT (it has no escapes), `&`,
`<`, `>` become entities in WebVTT (so `-->` cannot end a cue), everything is escaped in HTML, and Markdown punctuation
in `summary.md` (so model text never becomes raw HTML or links). The rules are listed in docs/outputs.md.
Subtitle cues are made ordered, non-overlapping and at least 1 ms long, whatever the captions say.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import html
import json
import logging
import os
import re
import shutil
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from videorecap import fileio
from videorecap.results import Caption, CaptionResult, VideoMeta

logger = logging.getLogger(__name__)

OUTPUT_FILES = ("captions.json", "clips.srt", "clips.vtt", "segments.vtt", "summary.md", "index.html")
NARRATORS = ("c", "camera-wearer", "raw")


# ---- text for people ----------------------------------------------------------------------------------------------
# What no human-facing file gets from model text. Line breaks and other separators (\t \n \v \f \r, \x1c-\x1f, NEL,
# U+2028/2029) are whitespace to `str.split` and fold into one space: a blank line ends an SRT/WebVTT cue. The rest
# is removed: C0/C1 controls and DEL (a NUL stops libavformat's SRT reader, ESC sequences reach terminals that `cat`
# the file), the BOM/ZWNBSP (a reader takes one mid-file as garbage or a new file start), the interlinear annotation
# marks and the noncharacters U+FFFE/U+FFFF, and the bidi embeddings, overrides and isolates U+202A-202E/U+2066-2069
# (they reorder what follows them, so a caption could make itself or the time stamp beside it read backwards; the
# plain marks LRM/RLM stay, as right-to-left text needs them).
_REMOVED = dict.fromkeys(
    [*range(0x00, 0x09), *range(0x0E, 0x1C), *range(0x7F, 0x85), *range(0x86, 0xA0), 0xFEFF, 0xFFFE, 0xFFFF]
    + [*range(0xFFF9, 0xFFFC), *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
)


def plain_text(text: str) -> str:
    """Model text as one line of printable text, the form every human-facing file starts from (see `_REMOVED`).

    Lone surrogates (a `str` that cannot be written as UTF-8) become U+FFFD; a proper surrogate pair becomes its
    character.
    """
    # utf-16 with surrogatepass pairs up what can be paired; decoding with "replace" turns the rest into U+FFFD.
    text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return " ".join(text.translate(_REMOVED).split())


# Ego4D narrations (and so the clip captions of models trained on them) mark who acts: "#C C picks up the cup" (C is
# the camera wearer), "#O man X hands C a cup" (someone else), and "#unsure" for what the annotator could not name.
_MARKER = re.compile(r"(^|\s*)#[CcOo](?=\s)\s*")
_HASH_WORD = re.compile(r"#(unsure|summary)\b\s*", re.IGNORECASE)
_C_WORD = re.compile(r"\bC\b(?!\+)")
_SENTENCE_START = re.compile(r"(^|[.!?]\s+)the camera wearer")


def display_text(text: str, narrator: str = "c") -> str:
    """The model's text as people read it; every human-facing writer (SRT, WebVTT, Markdown, HTML) goes through here.

    Args:
        text: a caption as the model wrote it, e.g. "#C C picks up the cup".
        narrator: "c" (default) drops the markup: "C picks up the cup"; "camera-wearer" also names C:
            "The camera wearer picks up the cup"; "raw" keeps the words as they are.

    Whatever the narrator, the text comes back as `plain_text`: one line, no control characters.
    """
    if narrator not in NARRATORS:
        raise ValueError(f"narrator must be one of {', '.join(NARRATORS)}, got {narrator!r}")
    text = plain_text(text)
    if narrator == "raw":
        return text
    # A marker that starts the text goes; one glued inside ("...cabbage#C C puts") becomes a space.
    out = _MARKER.sub(lambda m: "" if m.start() == 0 else " ", text)
    out = _HASH_WORD.sub(lambda m: "something " if m.group(1).lower() == "unsure" else "", out).rstrip()
    if narrator == "camera-wearer":
        out = _C_WORD.sub("the camera wearer", out)
        out = _SENTENCE_START.sub(lambda m: m.group(1) + "The camera wearer", out)
    return " ".join(out.split())


# ---- the model, for people ----------------------------------------------------------------------------------------
def _bundled_dir() -> Path | None:
    from videorecap.config import bundled_model_dir

    try:
        return bundled_model_dir().resolve()
    except OSError:  # a package without its assets
        return None


def _where(source: str) -> str:
    """ "bundled" for the model shipped in the package, else the checkpoint folder as recorded."""
    bundled = _bundled_dir()
    if bundled is not None and source not in ("", "in-memory"):
        try:
            Path(source).resolve().relative_to(bundled)
            return "bundled"
        except (ValueError, OSError):
            pass
    return source


def model_label(model: Mapping[str, Any]) -> str | None:
    """A short name of the model behind `captions.json`'s `model`: "recap-synth (bundled)", "recap-base (models/m)".

    `model` is either `{"name": ...}` or, as `caption` writes it, one entry per level with `preset` and `source`;
    levels that share a preset and a folder are named once, one checkpoint per level is named by the folder above.
    """
    if isinstance(model.get("name"), str):
        return model["name"]
    entries: list[tuple[str, str]] = []
    for lv, m in model.items():
        if not isinstance(m, Mapping) or not isinstance(m.get("preset"), str):
            continue
        source = str(m.get("source", ""))
        if Path(source).name == lv:  # clip/ segment/ video/ checkpoints of one model folder
            source = str(Path(source).parent)
        entries.append((m["preset"], _where(source)))
    names = []
    for preset, where in dict.fromkeys(entries):
        names.append(f"{preset} ({where})" if where and where != "in-memory" else preset)
    return "; ".join(names) or None


def model_notes(model: Mapping[str, Any]) -> list[str]:
    """Warnings from the model cards (meta.json `card`) of the levels used: one per distinct note."""
    label = model_label(model) or "model"
    notes = []
    for m in model.values():
        card = m.get("card") if isinstance(m, Mapping) else None
        if isinstance(card, Mapping) and card.get("domain") == "synthetic":
            notes.append(f"the model {label} {card.get('note') or 'knows only a synthetic world'}")
    return list(dict.fromkeys(notes))


def _short_clock(t: float) -> str:
    s = int(max(t, 0.0))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def partial_note(result: CaptionResult) -> str | None:
    """ "only 0:00–1:23 of 5:00 could be decoded" for a partly decoded video, else None."""
    v = result.video
    if not v.partial:
        return None
    if v.covered is None:
        return "only part of the video could be decoded; the rest has no captions"
    spans = ", ".join(f"{_short_clock(a)}–{_short_clock(b)}" for a, b in v.covered_spans()) or "nothing"
    return f"only {spans} of {_short_clock(v.duration)} could be decoded; the rest has no captions"


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


def _cue_times(captions: Sequence[Caption], narrator: str = "c") -> list[tuple[int, int, str]]:
    """Captions as `(start_ms, end_ms, display text)` cues that are sorted, never overlap and last at least 1 ms.

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
        cues.append((start, end, display_text(c.text, narrator)))
        prev_end = end
    return cues


def _one_line(text: str) -> str:
    # A blank line ends a cue in SRT and WebVTT; `display_text` already gives one line, but the escapers take any text.
    return plain_text(text)


# ---- subtitles ----------------------------------------------------------------------------------------------------
# SRT has no escapes, so its syntax is replaced: "-->" (a text line with it is read as a new cue's timing line),
# "<"/">" (players render <i>, <b>, <font color=...> in SRT text) and "{"/"}" (players hand {\an8}, {\fs200} to an
# ASS renderer, which hides or obeys them).
_SRT_SYNTAX = str.maketrans({"<": "‹", ">": "›", "{": "(", "}": ")"})


def escape_srt(text: str) -> str:
    """SRT cue text: one line (see `plain_text`) with `-->` as `→`, `<` `>` as `‹` `›` and `{` `}` as `(` `)`."""
    return _one_line(text).replace("-->", "→").translate(_SRT_SYNTAX)


def to_srt(captions: Sequence[Caption], narrator: str = "c") -> str:
    """SubRip subtitles, text neutralised by `escape_srt`. A caption with no text gets no cue: an empty SRT cue is a
    blank line, which ends the block, and players drop it."""
    blocks = []
    cues = [(start, end, escape_srt(text)) for start, end, text in _cue_times(captions, narrator)]
    for i, (start, end, text) in enumerate([c for c in cues if c[2]], 1):
        ts = f"{format_timestamp(start / 1000, ',')} --> {format_timestamp(end / 1000, ',')}"
        blocks.append(f"{i}\n{ts}\n{text}\n")
    return "\n".join(blocks)


def escape_vtt(text: str) -> str:
    """Escape cue text for WebVTT: `&`, `<` and `>` become entities (so `-->` cannot appear), one line."""
    return _one_line(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_vtt(captions: Sequence[Caption], chapters: bool = False, narrator: str = "c") -> str:
    """WebVTT subtitles, or chapters (`chapters=True`: cue ids `chapter-1`, ... for a `kind="chapters"` track)."""
    out = ["WEBVTT", ""]
    for i, (start, end, text) in enumerate(_cue_times(captions, narrator), 1):
        if chapters:
            out.append(f"chapter-{i}")
        out.append(f"{format_timestamp(start / 1000)} --> {format_timestamp(end / 1000)}")
        out.append(escape_vtt(text))
        out.append("")
    return "\n".join(out)


# ---- markdown -----------------------------------------------------------------------------------------------------
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>&|~#!])")
_MD_BLOCK_START = re.compile(r"^(\s*)(?:([-+=>])|(\d+)([.)]))")


def escape_markdown(text: str) -> str:
    """Backslash-escape Markdown punctuation so model text stays plain text (never HTML, links or emphasis)."""
    text = _MD_SPECIAL.sub(r"\\\1", _one_line(text))
    # A leading "-", "+", "1." or "=" would start a list, a heading underline or a quote. Only punctuation can be
    # backslash-escaped in CommonMark (a backslash before "1" stays visible), so "1." becomes "1" + backslash + ".".

    def escape(m: re.Match[str]) -> str:
        return m.group(1) + ("\\" + m.group(2) if m.group(2) else m.group(3) + "\\" + m.group(4))

    return _MD_BLOCK_START.sub(escape, text, count=1)


def _span(c: Caption) -> str:
    return f"{format_clock(c.start)}–{format_clock(c.end)}"


def to_markdown(result: CaptionResult, narrator: str = "c") -> str:
    """`summary.md`: the model, the summary, then each segment description with its time span and its clip captions
    folded underneath (an HTML `<details>` block, which GitHub and most viewers render as a collapsible list).
    A partly decoded video and a model card's warning get a note on top."""
    v = result.video

    def md(text: str) -> str:
        return escape_markdown(display_text(text, narrator))

    lines = [f"# {escape_markdown(v.id) or 'Video'}", ""]
    head = [f"Duration {format_clock(v.duration)}"]
    if model_label(result.model):
        head.append(f"model: {escape_markdown(model_label(result.model) or '')}")
    head.append(f"levels: {', '.join(result.levels or []) or 'none'}")
    lines += [" · ".join(head), ""]
    for note in [partial_note(result), *model_notes(result.model)]:
        if note:
            lines += [f"> **Note:** {escape_markdown(note)}", ""]
    lines += ["## Summary", ""]
    if result.summary is not None:
        lines += [md(result.summary.text), ""]
    else:
        lines += ["*No summary: the video level was not run.*", ""]

    groups = result.clips_by_segment()
    if result.segments:
        lines += ["## Segments", ""]
    elif result.clips:
        lines += ["## Clips", ""]
    for seg, clips in groups:
        if seg is not None:
            lines += [f"### {_span(seg)}", "", md(seg.text), ""]
        if clips:
            if seg is not None:
                lines += ["<details>", f"<summary>{len(clips)} clip captions</summary>", ""]
            lines += [f"- `{_span(c)}` {md(c.text)}" for c in clips]
            lines.append("")
            if seg is not None:
                lines += ["</details>", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


# ---- html ---------------------------------------------------------------------------------------------------------
def _e(text: str) -> str:
    # Everything on the page is one line of printable text (a NUL or U+2028 in an attribute or <title> is a parse
    # error or a visible box), then escaped.
    return html.escape(plain_text(text), quote=True)


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
.banner { margin: 0.4rem 0; padding: 0.4rem 0.6rem; max-width: 70rem; border-left: 4px solid #d08a00;
  background: rgba(208, 138, 0, 0.14); }
.bar { display: flex; height: 1.5rem; margin: 0.4rem 0; }
.bar button { flex: 1 1 0; border: 1px solid rgba(128, 128, 128, 0.5); background: rgba(128, 128, 128, 0.15);
  padding: 0; min-width: 2px; cursor: pointer; color: inherit; font: 0.72rem/1.4 system-ui, sans-serif; }
.bar .lbl { display: block; overflow: hidden; white-space: nowrap; text-overflow: ellipsis; padding: 0 2px; }
.bar button.current { background: var(--accent); color: #fff; }
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
#search { margin-bottom: 0.5rem; }
#search input { width: 100%; font: inherit; padding: 0.3rem 0.5rem; }
#search-status { color: var(--muted); margin: 0.2rem 0; font-size: 0.85rem; }
#hits { max-height: 40vh; overflow-y: auto; border-bottom: 1px solid rgba(128, 128, 128, 0.3); }
#hits:empty { border: 0; }
.lvl { flex: none; color: var(--muted); font-size: 0.8rem; padding-top: 0.1rem; }
mark { background: rgba(250, 200, 0, 0.45); color: inherit; }
""".strip()

# Vanilla JS. The cues come from the page's JSON data block (browsers refuse `<track src>` on file: pages); the start
# times of the timeline come from its data-start attributes. Lookups are binary searches over sorted start times, so
# `timeupdate` costs O(log n) even with thousands of clips. Caption times count from the video's first frame; the
# player's timeline counts from the container's 0, so with a start offset it is `offset` seconds ahead.
_JS = """
(function () {
  "use strict";
  var video = document.getElementById("player");
  var follow = document.getElementById("follow");
  var data = JSON.parse(document.getElementById("cues").textContent);
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

  // Chromium puts a file's first frame at currentTime = its start offset (measured for mkv, webm and mp4), so
  // caption time t plays at t + offset; a web copy starts at 0 and gets offset 0.
  var offset = data.start_time;
  function addTrack(kind, label, cues, mode) {
    var track = video.addTextTrack(kind, label, "en");
    cues.forEach(function (c) { track.addCue(new VTTCue(c[0] + offset, c[1] + offset, c[2])); });
    track.mode = mode;
  }
  addTrack("captions", "Clip captions", data.clips, "showing");
  addTrack("chapters", "Segments", data.segments, "hidden");
  // A video the browser cannot play: say why and what to do instead of showing an empty box.
  var errorEl = document.getElementById("video-error");
  function cannotPlay() { errorEl.hidden = false; }
  function onMetadata() {
    if (data.width > 0 && video.videoWidth === 0) cannotPlay();  // the sound plays, the picture cannot
    update();
  }
  video.addEventListener("error", cannotPlay);
  video.addEventListener("loadedmetadata", onMetadata);
  if (video.error) cannotPlay();

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
  function now() { return video.currentTime - offset + 1e-3; }  // caption time; a seek to a start lands on it
  function update(ev) {
    if (ev) started = true;
    var t = now();
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
    video.currentTime = parseFloat(b.getAttribute("data-t")) + offset;
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
    var i = find(k[0], now()) + k[1];
    i = Math.max(0, Math.min(k[0].length - 1, i));
    video.currentTime = k[0][i] + offset;
    update(ev);
    ev.preventDefault();
  });
  if (video.readyState >= 1) onMetadata(); else update();

  // The search box: BM25 over the embedded cues, the tokenizer and formula of videorecap/search/bm25.py (the
  // tests compare the scores): letter/digit runs, lower-cased, a plural "s" dropped from words of 4+ letters;
  // idf = ln(1 + (N - df + 0.5) / (df + 0.5)), k1 = 1.2, b = 0.75. Hits are built with DOM calls, never innerHTML.
  function unescapeCue(s) { return s.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&"); }
  function stem(w) { return w.length > 3 && /s$/.test(w) && !/ss$/.test(w) ? w.slice(0, -1) : w; }
  function tokens(s) { return (s.toLowerCase().match(/[\\p{L}\\p{N}]+/gu) || []).map(stem); }
  var docs = null, df = null, avgdl = 1;
  function buildIndex() {
    docs = [];
    df = new Map();
    [["clip", data.clips], ["segment", data.segments]].forEach(function (lv) {
      lv[1].forEach(function (c) {
        var text = unescapeCue(c[2]), tf = new Map();
        tokens(text).forEach(function (t) { tf.set(t, (tf.get(t) || 0) + 1); });
        var len = 0;
        tf.forEach(function (n, t) { len += n; df.set(t, (df.get(t) || 0) + 1); });
        docs.push({ level: lv[0], start: c[0], text: text, tf: tf, len: len });
      });
    });
    var total = 0;
    docs.forEach(function (d) { total += d.len; });
    avgdl = docs.length && total > 0 ? total / docs.length : 1;
  }
  function rank(query) {
    if (!docs) buildIndex();
    var terms = Array.from(new Set(tokens(query))), n = docs.length, hits = [];
    docs.forEach(function (d, i) {
      var score = 0, norm = 1.2 * (1 - 0.75 + 0.75 * d.len / avgdl);
      terms.forEach(function (t) {
        var tf = d.tf.get(t);
        if (!tf) return;
        var m = df.get(t);
        score += Math.log(1 + (n - m + 0.5) / (m + 0.5)) * tf * 2.2 / (tf + norm);
      });
      if (score > 0) hits.push({ i: i, score: score });
    });
    hits.sort(function (a, b) { return b.score - a.score || a.i - b.i; });
    return { terms: terms, hits: hits };
  }
  function marked(text, terms) {  // the text with the words that matched in <mark>, as DOM nodes
    var span = document.createElement("span"), re = /[\\p{L}\\p{N}]+/gu, last = 0, m;
    span.className = "x";
    while ((m = re.exec(text)) !== null) {
      if (terms.indexOf(stem(m[0].toLowerCase())) < 0) continue;
      span.appendChild(document.createTextNode(text.slice(last, m.index)));
      var mk = document.createElement("mark");
      mk.textContent = m[0];
      span.appendChild(mk);
      last = m.index + m[0].length;
    }
    span.appendChild(document.createTextNode(text.slice(last)));
    return span;
  }
  function clock(t) {
    var s = Math.floor(Math.max(t, 0)), h = Math.floor(s / 3600), m = Math.floor(s % 3600 / 60), r = s % 60;
    return (h ? h + ":" + String(m).padStart(2, "0") : String(m)) + ":" + String(r).padStart(2, "0");
  }
  var box = document.getElementById("q"), hitsEl = document.getElementById("hits");
  var statusEl = document.getElementById("search-status"), MAX_HITS = 50;
  function search() {
    hitsEl.textContent = "";
    var q = box.value.trim();
    if (!q) { statusEl.textContent = ""; return; }
    var r = rank(q);
    r.hits.slice(0, MAX_HITS).forEach(function (h) {
      var d = docs[h.i], li = document.createElement("li"), b = document.createElement("button");
      b.type = "button";
      b.className = "seek";
      b.setAttribute("data-t", d.start.toFixed(3));
      b.setAttribute("data-score", String(h.score));
      var t = document.createElement("span"), lv = document.createElement("span");
      t.className = "t";
      t.textContent = clock(d.start);
      lv.className = "lvl";
      lv.textContent = d.level;
      b.appendChild(t);
      b.appendChild(lv);
      b.appendChild(marked(d.text, r.terms));
      li.appendChild(b);
      hitsEl.appendChild(li);
    });
    var n = r.hits.length;
    statusEl.textContent = n === 0 ? "No caption or segment matches." :
      n + (n === 1 ? " match" : " matches") + (n > MAX_HITS ? ", the best " + MAX_HITS + " shown" : "");
  }
  box.addEventListener("input", search);
  box.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" && hitsEl.firstChild) { hitsEl.querySelector("button").click(); ev.preventDefault(); }
    if (ev.key === "Escape") { box.value = ""; search(); }
  });
  hitsEl.addEventListener("click", seek);
})();
""".strip()


def _csp_hash(code: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(code.encode("utf-8")).digest()).decode("ascii") + "'"


def _seek_button(c: Caption, text: str, cls: str = "seek") -> str:
    return (
        f'<button type="button" class="{cls}" data-t="{c.start:.3f}">'
        f'<span class="t">{format_clock(c.start)}</span><span class="x">{_e(text)}</span></button>'
    )


_CODEC_NAMES = {"h264": "H.264", "hevc": "HEVC", "h265": "HEVC", "vp8": "VP8", "vp9": "VP9", "av1": "AV1"}
_CODEC_NAMES |= {"mpeg4": "MPEG-4 Part 2", "mpeg2video": "MPEG-2", "prores": "ProRes", "theora": "Theora"}
_CONTAINERS = {".mkv": "Matroska", ".webm": "WebM", ".mp4": "MP4", ".m4v": "MP4", ".mov": "QuickTime", ".avi": "AVI"}
_CONTAINERS |= {".ts": "MPEG-TS", ".mts": "MPEG-TS", ".m2ts": "MPEG-TS", ".flv": "Flash Video", ".wmv": "WMV"}


def unplayable_hint(video: VideoMeta) -> str:
    """What the page says when the browser cannot play the video: why, and the command that fixes it."""
    what = [
        _CODEC_NAMES.get(video.codec or "", (video.codec or "").upper()),
        _CONTAINERS.get(Path(video.path).suffix.lower(), ""),
    ]
    kind = " in ".join(w for w in what if w)
    return (
        f"Your browser cannot play this video{f' ({kind})' if kind else ''}. Run "
        f"`videorecap caption {video.path} -o OUT --web-video` to write a browser-playable copy (H.264 MP4) "
        "that this page then uses."
    )


def _cues_json(result: CaptionResult, narrator: str, start_time: float) -> str:
    """The cues of both tracks as a JSON data block. `<`, `>` and `&` are written as \\u escapes, so no caption
    can end the `<script type="application/json">` element (`</script>`) or open a comment; JSON.parse reads them
    back as the characters. Cue text is WebVTT-escaped like in clips.vtt, because VTTCue parses its text as
    WebVTT cue markup."""

    def cues(caps: Sequence[Caption]) -> list[list[Any]]:
        return [[s / 1000, e / 1000, escape_vtt(t)] for s, e, t in _cue_times(caps, narrator)]

    data = {
        "start_time": start_time,  # where caption time 0 sits on the player's timeline
        "width": result.video.width or 0,
        "clips": cues(result.clips),
        "segments": cues(result.segments),
    }
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _html_head(title: str) -> list[str]:
    """From the doctype to `<body>`: the Content-Security-Policy that allows exactly the page's inline blocks."""
    csp = (
        f"default-src 'none'; script-src {_csp_hash(_JS)}; style-src {_csp_hash(_CSS)}; "
        "media-src * data: blob: file:; img-src data:"
    )
    return [
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
    ]


def _html_header(result: CaptionResult, title: str) -> list[str]:
    """The title, a line of facts (length, size, fps, model, levels) and the notes (partial decode, model card)."""
    v = result.video
    meta = [f"{format_clock(v.duration)}"]
    if v.width and v.height:
        meta.append(f"{v.width}×{v.height}")
    if v.fps:
        meta.append(f"{v.fps:g} fps")
    label = model_label(result.model)
    if label:
        meta.append(f"model: {label}")
    meta.append(f"levels: {', '.join(result.levels or []) or 'none'}")
    banners = [partial_note(result), *model_notes(result.model)]
    p = ["<header>", f"<h1>{_e(title)}</h1>", f'<p class="meta">{_e(" · ".join(meta))}</p>']
    p += [f'<p class="banner" role="note">Note: {_e(b)}.</p>' for b in banners if b]
    p.append("</header>")
    return p


def _html_summary(result: CaptionResult, narrator: str) -> list[str]:
    p = ['<section id="summary" aria-labelledby="summary-h">', '<h2 id="summary-h">Summary</h2>']
    if result.summary is not None:
        p.append(f'<p class="summary-text">{_e(display_text(result.summary.text, narrator))}</p>')
    else:
        p.append('<p class="empty">No summary: the video level was not run.</p>')
    p.append("</section>")
    return p


def _html_player(result: CaptionResult, video_src: str, narrator: str) -> list[str]:
    """The video, what to do when the browser cannot play it, the segment bar on the time axis, "Follow playback"."""
    v = result.video
    dur = v.duration if v.duration > 0 else max([c.end for c in result.segments + result.clips] + [1.0])
    p = ['<div class="player">']
    p.append(f'<video id="player" controls preload="metadata" src="{_e(video_src)}"></video>')
    p.append(f'<p class="banner" id="video-error" role="alert" hidden>{_e(unplayable_hint(v))}</p>')
    if result.segments:
        p.append('<div class="bar" role="group" aria-label="Segments on the time axis">')
        for i, s in enumerate(result.segments):
            width = 100.0 * max(s.end - s.start, 0.0) / dur
            short = f"{i + 1} · {_short_clock(s.start)}–{_short_clock(s.end)}"
            p.append(
                f'<button type="button" data-t="{s.start:.3f}" data-w="{width:.4f}" '
                f'title="{_e(_span(s) + " " + display_text(s.text, narrator))}" '
                f'aria-label="Segment {i + 1}, {_span(s)}"><span class="lbl">{_e(short)}</span></button>'
            )
        p.append("</div>")
    p.append('<label><input type="checkbox" id="follow" checked> Follow playback</label>')
    p.append("</div>")
    return p


def _html_search() -> list[str]:
    """The search box: the page's script ranks the embedded cues (BM25, as `videorecap search --mode lexical`) as
    one types; a hit is a button that seeks, like the timeline's. It needs no server, so it works from file://."""
    return [
        '<section id="search" role="search" aria-label="Search the captions">',
        '<input type="search" id="q" placeholder="Search the captions, e.g. kettle stove" autocomplete="off" '
        'aria-describedby="search-status">',
        '<p id="search-status" aria-live="polite"></p>',
        '<ol id="hits" aria-label="Search results"></ol>',
        "</section>",
    ]


def _html_timeline(result: CaptionResult, narrator: str) -> list[str]:
    """Each segment description with its clip captions folded under it, every one a button that seeks."""
    p = ['<nav id="timeline" aria-label="Timeline">']
    groups = result.clips_by_segment()
    if not groups:
        p.append('<p class="empty">No clip captions or segment descriptions.</p>')
    p.append('<ol class="segments">')
    for seg, clips in groups:
        if seg is not None:
            p.append(f'<li class="seg" data-start="{seg.start:.3f}" data-end="{seg.end:.3f}">')
            p.append(_seek_button(seg, display_text(seg.text, narrator)))
        else:
            p.append('<li class="seg-none">')
        if clips:
            if seg is not None:
                p.append(f"<details><summary>{len(clips)} clip captions</summary>")
            p.append('<ol class="clips">')
            p += [
                f'<li class="clip" data-start="{c.start:.3f}">{_seek_button(c, display_text(c.text, narrator))}</li>'
                for c in clips
            ]
            p.append("</ol>")
            if seg is not None:
                p.append("</details>")
        p.append("</li>")
    p += ["</ol>", "</nav>"]
    return p


def to_html(
    result: CaptionResult,
    video_src: str,
    *,
    narrator: str = "c",
    start_time: float | None = None,
) -> str:
    """A self-contained page: player, summary, segment timeline with the clips folded under each segment.

    Args:
        video_src: URL of the video for the `<video>` element, best a path relative to where the page is written.
        narrator: how clip captions read (see `display_text`).
        start_time: where the video's first frame sits on the container's clock (default: `result.video.start_time`;
            0 for a web copy made by `--web-video`, which starts at 0).

    The captions and chapters are embedded in the page (a JSON data block that the page's script turns into
    `VTTCue`s, captions showing), so they work from `file://` where browsers refuse `<track src>`, and so does the
    search box, which ranks them in the page (BM25, the same as `videorecap search --mode lexical`). The page loads
    nothing from the network: inline CSS and JS only, locked down by a Content-Security-Policy that allows exactly
    these inline blocks, so even text that escaped escaping could not run as script. When the browser cannot play
    the video, the page says so and how to make a playable copy.
    """
    v = result.video
    title = v.id or "video"
    p = _html_head(title) + _html_header(result, title) + _html_summary(result, narrator)
    p += ["<main>", *_html_player(result, video_src, narrator)]
    p += ['<div class="side">', *_html_search(), *_html_timeline(result, narrator), "</div>", "</main>"]
    cues = _cues_json(result, narrator, v.start_time if start_time is None else start_time)
    p += [f'<script type="application/json" id="cues">{cues}</script>', f"<script>{_JS}</script>"]
    p += ["</body>", "</html>", ""]
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
    result: CaptionResult,
    out_dir: str | os.PathLike[str],
    *,
    video_src: str | None = None,
    narrator: str = "c",
    web_video: str | os.PathLike[str] | None = None,
) -> list[Path]:
    """Write every output file of `result` into `out_dir` (created if needed); returns their paths.

    `video_src` is the player's URL for the video; by default the path of `result.video.path` relative to
    `out_dir`, or of `web_video`, a browser-playable copy made by `videorecap.video.webcopy` (which starts at 0,
    whatever the source's start offset). `narrator` is how the human-facing files write the model's text (see
    `display_text`; captions.json keeps it raw). Files of levels that were not run are still written (empty) so a
    folder never mixes runs. The set is replaced as a whole (a temp folder beside `out_dir`, then swapped in):
    a reader, or a run killed at any point, sees the old set or the new one, never files of both; the other entries
    of `out_dir` (`.cache/`, `video.web.mp4`, the user's own files) are kept.
    """
    if not isinstance(result, CaptionResult):  # (a path: CaptionResult.load reads one)
        raise TypeError(f"write_outputs: give a CaptionResult (CaptionResult.load(path) reads one), not {result!r:.80}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "is a file: write_outputs writes a folder of files", str(out))
    start_time = None
    if web_video is not None:
        start_time = 0.0
        if video_src is None:
            video_src = video_src_for(web_video, out)
    if video_src is None:
        video_src = video_src_for(result.video.path, out)
    texts = {
        "clips.srt": to_srt(result.clips, narrator),
        "clips.vtt": to_vtt(result.clips, narrator=narrator),
        "segments.vtt": to_vtt(result.segments, chapters=True, narrator=narrator),
        "summary.md": to_markdown(result, narrator),
        "index.html": to_html(result, video_src, narrator=narrator, start_time=start_time),
    }
    # the six files are replaced as a set: written into a temp folder beside `out`, which then takes its place
    # (fileio.swap_dir); what else the old folder holds (.cache/, video.web.mp4, the user's files) is carried over
    tmp = fileio.temp_dir(out)
    try:
        result.save(tmp / "captions.json")
        for name, text in texts.items():
            fileio.write_text(tmp / name, text)
        fileio.swap_dir(tmp, out, carry=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    written = [out / name for name in ("captions.json", *texts)]
    logger.info("wrote %d files to %s", len(written), out)
    return written
