"""SRT / WebVTT / summary.md / index.html writers: parsed back with independent parsers, escaping checked."""

from __future__ import annotations

import html
import json
import math
import os
import re
from html.parser import HTMLParser

import pytest
import srt
import webvtt
from markdown_it import MarkdownIt

from videorecap import fileio
from videorecap.export import (
    OUTPUT_FILES,
    display_text,
    format_timestamp,
    model_label,
    to_html,
    to_markdown,
    to_srt,
    to_vtt,
    video_src_for,
    write_outputs,
)
from videorecap.results import Caption, CaptionResult, VideoMeta, load

NASTY = 'a <script>alert("x")</script> --> & \'quotes\' "dq" ünïcödé 字幕 🎬 **b** [l](http://x) <b>bold</b>'


def make_result(
    duration: float, levels: tuple[str, ...] = ("clip", "segment", "video"), text: str = ""
) -> CaptionResult:
    def windows(w: float) -> list[tuple[float, float]]:
        n = max(1, math.ceil(duration / w))
        return [(i * w, min((i + 1) * w, duration)) for i in range(n)]

    clips = [Caption(s, e, f"clip {i} {text}".strip()) for i, (s, e) in enumerate(windows(4.0))]
    segs = [Caption(s, e, f"segment {i} {text}".strip()) for i, (s, e) in enumerate(windows(180.0))]
    return CaptionResult(
        video=VideoMeta("cook <i>ing</i>", "videos/cooking.mp4", duration, 30.0, 640, 360),
        clips=clips if "clip" in levels else [],
        segments=segs if "segment" in levels else [],
        summary=Caption(0.0, duration, f"summary {text}".strip()) if "video" in levels else None,
        model={"name": "recap-tiny"},
        levels=list(levels),
    )


def _vtt_seconds(ts: str) -> float:
    h, m, s = ts.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


# ---- timestamps ---------------------------------------------------------------------------------------------------
def test_timestamps():
    assert format_timestamp(0) == "00:00:00.000"
    assert format_timestamp(3.9996) == "00:00:04.000"
    assert format_timestamp(3599.999) == "00:59:59.999"
    assert format_timestamp(3600 + 62.5, ",") == "01:01:02,500"
    assert format_timestamp(100 * 3600 + 1.25) == "100:00:01.250"


def test_cues_never_overlap_or_reverse():
    caps = [
        Caption(0.0, 5.0, "overlaps the next"),
        Caption(4.0, 4.0, "zero length"),
        Caption(4.0, 8.0, "same start"),
        Caption(10.0, 10.0004, "rounds to 0 ms"),
        Caption(7200.0, 7204.0, "two hours in"),
    ]
    subs = list(srt.parse(to_srt(caps)))
    assert [s.content for s in subs] == [c.text for c in caps]
    for a, b in zip(subs, subs[1:], strict=False):
        assert a.start < a.end <= b.start
    assert subs[-1].end > subs[-1].start
    assert subs[0].start.total_seconds() == 0.0 and subs[0].end.total_seconds() == 4.0  # cut at the next start
    assert subs[-1].start.total_seconds() == 7200.0 and subs[-1].end.total_seconds() == 7204.0
    vtt = webvtt.from_string(to_vtt(caps))
    times = [(_vtt_seconds(c.start), _vtt_seconds(c.end)) for c in vtt.captions]
    for (s0, e0), (s1, _) in zip(times, times[1:], strict=False):
        assert s0 < e0 <= s1


# ---- subtitles ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("duration", [2.5, 708.03, 3 * 3600 + 7.25])
def test_srt_parses_back(duration):
    r = make_result(duration, text=NASTY)
    subs = list(srt.parse(to_srt(r.clips)))
    assert len(subs) == len(r.clips)
    for s, c in zip(subs, r.clips, strict=True):
        assert s.start.total_seconds() == pytest.approx(c.start, abs=1e-3)
        assert s.end.total_seconds() == pytest.approx(c.end, abs=1e-3)
        # SRT has no escapes: its syntax is replaced (-->, <, >, {, }), the rest comes back verbatim
        assert s.content == c.text.replace("-->", "→").replace("<", "‹").replace(">", "›")
    assert "<" not in to_srt(r.clips) and to_srt(r.clips).count("-->") == len(r.clips)  # only the timing lines
    assert "02:59:56,000 --> 03:00:00,000" in to_srt(make_result(3 * 3600 + 7.25).clips)


@pytest.mark.parametrize("duration", [2.5, 708.03, 3 * 3600 + 7.25])
def test_vtt_parses_back_and_escapes(duration):
    r = make_result(duration, text=NASTY)
    text = to_vtt(r.clips)
    assert text.startswith("WEBVTT\n\n")
    body = text.split("\n\n", 1)[1]
    assert "<" not in body and "--&gt;" in body
    assert body.count("-->") == len(r.clips)  # only the timing lines
    vtt = webvtt.from_string(text, strict=True)
    assert len(vtt.captions) == len(r.clips)
    for cue, c in zip(vtt.captions, r.clips, strict=True):
        assert _vtt_seconds(cue.start) == pytest.approx(c.start, abs=1e-3)
        assert _vtt_seconds(cue.end) == pytest.approx(c.end, abs=1e-3)
        assert html.unescape(cue.text) == c.text


def test_vtt_chapters():
    r = make_result(708.03, text="& <cut>")
    vtt = webvtt.from_string(to_vtt(r.segments, chapters=True), strict=True)
    assert [c.identifier for c in vtt.captions] == ["chapter-1", "chapter-2", "chapter-3", "chapter-4"]
    assert [c.start for c in vtt.captions] == ["00:00:00.000", "00:03:00.000", "00:06:00.000", "00:09:00.000"]
    assert vtt.captions[-1].end == "00:11:48.030"
    assert vtt.captions[0].text == "segment 0 &amp; &lt;cut&gt;"


def test_multiline_text_stays_one_cue():
    caps = [Caption(0, 4, "line one\n\nline two"), Caption(4, 8, ""), Caption(8, 9, "after")]
    subs = list(srt.parse(to_srt(caps)))
    # an empty SRT cue would be a blank line (players drop it): a caption with no text has no cue
    assert [(s.index, s.content) for s in subs] == [(1, "line one line two"), (2, "after")]
    assert [c.text for c in webvtt.from_string(to_vtt(caps[:1])).captions] == ["line one line two"]


# ---- markdown -----------------------------------------------------------------------------------------------------
def test_markdown_structure():
    r = make_result(708.03)
    md = to_markdown(r)
    assert md.index("## Summary") < md.index("summary") < md.index("## Segments")
    heads = re.findall(r"^### (.+)$", md, flags=re.M)
    assert heads == ["00:00:00–00:03:00", "00:03:00–00:06:00", "00:06:00–00:09:00", "00:09:00–00:11:48"]
    # clips folded under their segment: clip 45 (180 s) is the first after the second heading
    second = md.split("### 00:03:00–00:06:00", 1)[1].split("###", 1)[0]
    assert "<summary>45 clip captions</summary>" in second
    assert re.findall(r"^- `(\S+)` clip (\d+)$", second, flags=re.M)[0] == ("00:03:00–00:03:04", "45")
    assert md.count("\n- `") == 178


def test_markdown_partial_levels():
    md = to_markdown(make_result(30.0, ("clip",)))
    assert "No summary" in md and "## Clips" in md and "<details>" not in md and md.count("\n- `") == 8


def test_markdown_model_text_is_never_markup():
    r = make_result(200.0, text=NASTY)
    r.summary = Caption(0.0, 200.0, "# heading? - list? 1. " + NASTY)
    r.segments[0] = Caption(0.0, 180.0, "- dash first <img src=x onerror=alert(1)>")
    rendered = MarkdownIt("commonmark").render(to_markdown(r))
    # the only tags are the ones we wrote: headings, paragraphs, lists, code spans, and the details fold
    tags = set(re.findall(r"<\s*([a-zA-Z0-9]+)", rendered))
    assert tags <= {"h1", "h2", "h3", "p", "ul", "li", "code", "details", "summary", "em"}, tags
    assert "<script" not in rendered and "<img" not in rendered and "<a " not in rendered and "<strong>" not in rendered
    shown = html.unescape(re.sub(r"<[^>]+>", "", rendered))  # what a reader sees: the text, verbatim
    assert f"clip 3 {NASTY}" in shown and f"segment 1 {NASTY}" in shown and "- dash first <img" in shown
    assert "# heading? - list? 1. " + NASTY in shown
    assert "<h1>heading" not in rendered


# ---- html ---------------------------------------------------------------------------------------------------------
class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.titles: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        d = dict(attrs)
        self.tags.append((tag, d))
        if "title" in d:
            self.titles.append(d["title"])

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_escapes_model_text_and_is_offline():
    r = make_result(400.0, text=NASTY)
    page = to_html(r, 'my "video".mp4?a=1&b=<2>')
    p = _Collector()
    p.feed(page)
    tags = [t for t, _ in p.tags]
    assert tags.count("script") == 2 and tags.count("video") == 1 and "img" not in tags and "b" not in tags
    # the cues are a JSON data block (never executed, so the CSP need not allow it) that no caption can end
    scripts = [a for t, a in p.tags if t == "script"]
    assert scripts[0] == {"type": "application/json", "id": "cues"} and scripts[1] == {}
    block = page.split('<script type="application/json" id="cues">', 1)[1].split("</script>", 1)[0]
    assert "<" not in block and ">" not in block and "&" not in block
    cues = json.loads(block)
    assert [html.unescape(c[2]) for c in cues["clips"]] == [c.text for c in r.clips]
    assert [html.unescape(c[2]) for c in cues["segments"]] == [c.text for c in r.segments]
    assert "i" not in tags  # from the video id "cook <i>ing</i>"
    video = next(a for t, a in p.tags if t == "video")
    assert video["src"] == 'my "video".mp4?a=1&b=<2>'
    text = "".join(p.text)
    assert f"summary {NASTY}" in text and f"segment 1 {NASTY}" in text and f"clip 99 {NASTY}" in text
    assert f"00:03:00–00:06:00 segment 1 {NASTY}" in p.titles
    # nothing is fetched from anywhere but the video itself
    assert not re.search(r"https?://(?!json-schema)", page.replace("http://x", ""))
    for t, a in p.tags:
        assert t == "video" or "src" not in a
        assert not any(k.startswith("on") for k in a), (t, a)
    csp = next(a for t, a in p.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy")["content"]
    assert "default-src 'none'" in csp and "unsafe-inline" not in csp


def test_html_structure_and_seek_targets():
    r = make_result(708.03)
    p = _Collector()
    p.feed(to_html(r, "v.mp4"))
    segs = [a for t, a in p.tags if t == "li" and a.get("class") == "seg"]
    clips = [a for t, a in p.tags if t == "li" and a.get("class") == "clip"]
    assert len(segs) == 4 and len(clips) == 178
    assert [float(a["data-start"]) for a in segs] == [0.0, 180.0, 360.0, 540.0]
    assert [float(a["data-start"]) for a in clips] == [c.start for c in r.clips]
    buttons = [a for t, a in p.tags if t == "button" and "data-t" in a]
    assert len(buttons) == 4 + 4 + 178  # bar + segment heads + clips
    assert all(a["type"] == "button" for a in buttons)  # keyboard focusable, never submits
    # no <track src>: browsers refuse it on file: pages; the cues are embedded instead
    assert not any(t == "track" for t, _ in p.tags)
    # the segment bar carries visible labels, not only tooltips
    text = "".join(p.text)
    assert "1 · 0:00–3:00" in text and "4 · 9:00–11:48" in text


def test_html_clip_only_and_tiny():
    p = _Collector()
    p.feed(to_html(make_result(30.0, ("clip",)), "v.mp4"))
    assert "No summary" in "".join(p.text)
    assert sum(1 for t, a in p.tags if t == "li" and a.get("class") == "clip") == 8
    assert not any(a.get("class") == "bar" for _, a in p.tags)
    p = _Collector()
    p.feed(to_html(make_result(2.5), "v.mp4"))
    assert sum(1 for t, a in p.tags if t == "li" and a.get("class") == "clip") == 1


# ---- all files ----------------------------------------------------------------------------------------------------
def test_write_outputs(tmp_path):
    (tmp_path / "videos").mkdir()
    r = make_result(200.0, text=NASTY)
    r.video.path = str(tmp_path / "videos" / "my video.mp4")
    out = tmp_path / "runs" / "a"
    paths = write_outputs(r, out)
    assert sorted(p.name for p in paths) == sorted(OUTPUT_FILES)
    assert sorted(f.name for f in out.iterdir()) == sorted(OUTPUT_FILES)  # nothing else, no temp files
    assert load(out / "captions.json") == r
    assert 'src="../../videos/my%20video.mp4"' in (out / "index.html").read_text(encoding="utf-8")
    assert len(list(srt.parse((out / "clips.srt").read_text(encoding="utf-8")))) == 50
    assert len(webvtt.read(str(out / "clips.vtt")).captions) == 50
    assert len(webvtt.read(str(out / "segments.vtt")).captions) == 2
    assert (out / "summary.md").read_text(encoding="utf-8") == to_markdown(r)
    # a clip-only run still writes every file, the missing levels empty
    write_outputs(make_result(10.0, ("clip",)), out, video_src="x.mp4")
    assert (out / "segments.vtt").read_text(encoding="utf-8") == "WEBVTT\n"
    assert load(out / "captions.json").levels == ["clip"]


def test_video_src_for(tmp_path):
    assert video_src_for(tmp_path / "v.webm", tmp_path) == "v.webm"
    assert video_src_for(tmp_path / "a b#c.mp4", tmp_path / "out") == "../a%20b%23c.mp4"


# ---- text for people and the model's name -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "raw,c,wearer",
    [
        ("#C C picks up the cup", "C picks up the cup", "The camera wearer picks up the cup"),
        ("#c C opens the tap.", "C opens the tap.", "The camera wearer opens the tap."),
        ("#O man X hands C a cup", "man X hands C a cup", "man X hands the camera wearer a cup"),
        (
            "#C C picks the cabbage#C C puts it down",
            "C picks the cabbage C puts it down",
            "The camera wearer picks the cabbage the camera wearer puts it down",
        ),  # fmt: skip
        (
            "#C C picks #unsure from the shelf",
            "C picks something from the shelf",
            "The camera wearer picks something from the shelf",
        ),  # fmt: skip
        ("C cooks. C eats.", "C cooks. C eats.", "The camera wearer cooks. The camera wearer eats."),
        ("no markup <b>C++</b> & #hashtag", "no markup <b>C++</b> & #hashtag", "no markup <b>C++</b> & #hashtag"),
    ],
)
def test_display_text(raw, c, wearer):
    assert display_text(raw) == c
    assert display_text(raw, "c") == c
    assert display_text(raw, "camera-wearer") == wearer
    assert display_text(raw, "raw") == raw


def test_display_text_rejects_unknown_narrator():
    with pytest.raises(ValueError, match="narrator must be one of c, camera-wearer, raw"):
        display_text("#C C x", "first-person")


def test_every_human_facing_file_shows_readable_text_and_json_keeps_raw(tmp_path):
    r = make_result(200.0)
    r.clips = [Caption(c.start, c.end, f"#C C picks up cup {i}") for i, c in enumerate(r.clips)]
    r.segments = [Caption(s.start, s.end, "C washes the dishes") for s in r.segments]
    write_outputs(r, tmp_path, narrator="camera-wearer")
    for name in ("clips.srt", "clips.vtt", "summary.md", "index.html"):
        text = (tmp_path / name).read_text(encoding="utf-8")
        assert "#C" not in text, name
        assert "The camera wearer picks up cup 3" in text, name
    assert "The camera wearer washes the dishes" in (tmp_path / "segments.vtt").read_text(encoding="utf-8")
    assert load(tmp_path / "captions.json").clips[3].text == "#C C picks up cup 3"
    write_outputs(r, tmp_path)  # default: the markup goes, "C" stays
    assert "\nC picks up cup 3\n" in (tmp_path / "clips.srt").read_text(encoding="utf-8")
    write_outputs(r, tmp_path, narrator="raw")
    assert "\n#C C picks up cup 3\n" in (tmp_path / "clips.srt").read_text(encoding="utf-8")


def test_model_is_named_and_synthetic_card_warns(tmp_path):
    from videorecap.synth.model import bundled_model_dir

    bundled = bundled_model_dir()
    card = {"domain": "synthetic", "note": "knows only the synthetic kitchen world of `videorecap synth`"}
    r = make_result(200.0)
    r.model = {lv: {"source": str(bundled / lv), "preset": "recap-synth", "level": lv, "card": card}
               for lv in ("clip", "segment", "video")}  # fmt: skip
    assert model_label(r.model) == "recap-synth (bundled)"
    assert model_label({"clip": {"source": "models/m", "preset": "recap-base", "level": "recap-u"}}) == (
        "recap-base (models/m)"
    )
    write_outputs(r, tmp_path)
    md = (tmp_path / "summary.md").read_text(encoding="utf-8")
    assert "model: recap-synth (bundled)" in md
    assert "> **Note:** the model recap-synth (bundled) knows only the synthetic kitchen world" in md
    p = _Collector()
    p.feed((tmp_path / "index.html").read_text(encoding="utf-8"))
    banners = [a for t, a in p.tags if t == "p" and a.get("class") == "banner" and "hidden" not in a]
    assert len(banners) == 1
    text = "".join(p.text)
    assert "model: recap-synth (bundled)" in text
    assert "Note: the model recap-synth (bundled) knows only the synthetic kitchen world" in text
    # a model without such a card: named, no banner, no note
    r.model = {"clip": {"source": "models/m", "preset": "recap-base", "level": "recap-u"}}
    write_outputs(r, tmp_path)
    assert "Note" not in (tmp_path / "summary.md").read_text(encoding="utf-8")
    assert 'class="banner" role="note"' not in (tmp_path / "index.html").read_text(encoding="utf-8")


def test_partial_video_is_shown(tmp_path):
    r = make_result(300.0)
    r.video.partial, r.video.covered = True, [[0.0, 83.0]]
    write_outputs(r, tmp_path)
    assert "only 0:00–1:23 of 5:00 could be decoded" in (tmp_path / "summary.md").read_text(encoding="utf-8")
    assert "only 0:00–1:23 of 5:00 could be decoded" in (tmp_path / "index.html").read_text(encoding="utf-8")
    r.video.covered = None  # partial, spans unknown
    assert "only part of the video could be decoded" in to_markdown(r)
    r.video.partial = False
    write_outputs(r, tmp_path)
    assert "could be decoded" not in (tmp_path / "index.html").read_text(encoding="utf-8")


def _write_killed_at(step: int, result, out) -> bool:
    """Run write_outputs in a forked child that dies (os._exit, no cleanup) at its `step`-th file-system call;
    True when it finished before that step."""
    import shutil

    pid = os.fork()
    if pid == 0:  # the child: count the calls that change the disk, die abruptly at the chosen one
        calls = [0]

        def counting(fn):
            def wrapper(*a, **kw):
                calls[0] += 1
                if calls[0] == step:
                    os._exit(9)
                return fn(*a, **kw)

            return wrapper

        for name in ("rename", "replace", "fsync", "mkdir", "unlink", "rmdir", "open"):
            setattr(os, name, counting(getattr(os, name)))
        shutil.rmtree = counting(shutil.rmtree)
        write_outputs(result, out)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork to die at an exact point")
def test_write_outputs_killed_at_any_point_leaves_one_whole_set(tmp_path):
    old, new = make_result(200.0, text="old run"), make_result(120.0, text="new run")
    for r in (old, new):
        r.video.path = str(tmp_path / "v.mp4")
    refs = {}
    for tag, r in (("old", old), ("new", new)):
        write_outputs(r, tmp_path / tag / "vid")
        refs[tag] = {n: (tmp_path / tag / "vid" / n).read_bytes() for n in OUTPUT_FILES}
    seen = set()
    for step in range(1, 500):
        root = tmp_path / f"k{step}"
        out = root / "vid"
        write_outputs(old, out)
        (out / ".cache").mkdir()
        (out / ".cache" / "clips-0000.npz").write_bytes(b"cached")
        (out / "notes.txt").write_text("the user's")
        finished = _write_killed_at(step, new, out)
        fileio.clean_leftovers(root)  # what the next run does once it holds the folder's lock
        assert sorted(p.name for p in root.iterdir()) == ["vid"], step  # no leftovers beside it
        files = {n: (out / n).read_bytes() for n in OUTPUT_FILES}
        match = [tag for tag, ref in refs.items() if files == ref]
        assert len(match) == 1, f"killed at step {step}: the six files are not one run's set"
        seen.add(match[0])
        assert (out / ".cache" / "clips-0000.npz").read_bytes() == b"cached", step
        assert (out / "notes.txt").read_text() == "the user's", step
        assert sorted(p.name for p in out.iterdir()) == sorted([*OUTPUT_FILES, ".cache", "notes.txt"]), step
        if finished:
            assert match == ["new"]
            break
    else:
        pytest.fail("write_outputs never finished")
    assert seen == {"old", "new"} and step > 10
