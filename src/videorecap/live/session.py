"""A live session: a source's windows -> clip captions -> the hierarchy engine -> events, then the final outputs.

Two threads: a reader (source -> frames -> `Windower` -> transformed windows, into a queue) and the caller's thread,
which does two kinds of work and emits every result as an event (docs/live.md has the schema):

- **clip work**, first: it captions the queued windows in batches (`pipeline.caption_clips`, the step `caption`
  uses), stores and emits each caption, and puts it on a list of clips the engine has not been fed yet. A window
  is captioned as soon as the stream passes its end (`live.windows`: given out early), while the reader waits for
  the minimum tail that makes it final; its caption is emitted when it is final (at once, if the model was faster
  than the tail), so a clip caption comes max(model time, minimum tail) after its window ends, not their sum;
- **level work**, only while no window waits: it feeds those clips, one at a time and in time order, to
  `infer.hierarchy.Hierarchy` (batch size 1, so each segment is described as soon as its window closes) and asks
  it for a rolling summary after each segment. A segment description or a summary is a long decode; it runs under
  `infer.decode.between_steps`, which looks for waiting windows before every decoding step and captions them there,
  so a window that arrives meanwhile waits for one decoding step, not for the whole description. The engine is fed
  exactly as before (each clip in order, each summary right after the clip that closed its segment), so every text
  is the same as with the work done in line; only the events' order changes: the clip events of later windows may
  come between a segment's start and its event, or between a segment and its rolling summary.

- one JSON line in `OUT/live.jsonl` (appended, flushed), the growing `OUT/clips.vtt` / `OUT/segments.vtt`
  (replaced atomically), and each listener (the command prints them; `--serve` publishes them to the page).

**Falling behind.** `lag="queue"` captions every window: when the model is slower than the stream the queue fills
(up to `max_queue` windows) and reading pauses, so the lag grows (a file or a pipe simply waits; a network source
may drop the connection). `lag="drop"` keeps the lag bounded: a window that has waited more than `max_lag`
seconds while newer ones wait too is skipped, recorded as a `clip` event with `"skipped": "lag"`, and left out of
the outputs (`video.covered` lists the spans captioned).

**Resuming.** Every clip result is an entry of `videorecap.store.Store` in `OUT/.cache` (written before its event),
segment descriptions and summaries are in `live.jsonl`. `resume=True` replays them into the engine, emits what the
store has and the log lacks, and goes on: a file from the first window not stored (same timeline), a network
source as a new part of the session starting where the stored clips end. Nothing emitted is emitted twice.

**At the end** (end of stream, `duration`, `stop()` / Ctrl-C) the remaining windows are cut as `window_plan` cuts
them, the engine finishes, and `export.write_outputs` writes the files `caption` writes, so for a recorded file
the clip captions and segment descriptions equal `videorecap caption`'s.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from videorecap import fileio
from videorecap.errors import InputError, VideoRecapError
from videorecap.export import to_vtt, write_outputs
from videorecap.infer.decode import between_steps
from videorecap.infer.decoding_config import DecodeConfig
from videorecap.infer.hierarchy import Hierarchy, Step
from videorecap.live.options import LiveOptions
from videorecap.live.source import FrameSource, Source, parse_source, stream_end
from videorecap.live.windows import LiveWindow, Windower
from videorecap.pipeline import (
    Captioner,
    CaptionOptions,
    caption_clips,
    check_run,
    describe_model,
    level_decode,
    level_max_tokens,
    level_step,
)
from videorecap.results import Caption, CaptionResult, VideoMeta
from videorecap.store import Store, fingerprint_key, model_fingerprint
from videorecap.video.sampling import segment_min_tail
from videorecap.video.transforms import eval_transform

logger = logging.getLogger(__name__)

EVENTS_FILE = "live.jsonl"
SESSION_FILE = "session.json"
STORE_VERSION = 1
READER_GRACE_SECONDS = 5.0  # after stop(), how long the captioning thread waits for a reader stuck in a read


@dataclass
class SessionEnd:
    """How a session ended."""

    reason: str  # eof, idle, marker, duration, interrupted, disconnected, stopped
    result: CaptionResult
    outputs: list[Path]
    error: VideoRecapError | None = None  # the source failed part-way (the outputs cover what came before)


class LiveSession:
    """One live session writing into `out` (see the module docstring). `run()` blocks until the session ends.

    Args:
        source: the SOURCE text (a file, URL, device or "-"); ignored with `resume` (session.json has it).
        captioner: the models.
        out: the output folder.
        options: how to run; with `resume`, the stored session's options are used instead.
        resume: continue the session stored in `out`.
        listeners: called with every event (a dict), in order, from the captioning thread.

    Attributes a caller may set or read:
        on_level_step: None, or called with the level ("segment" or "video") before each decoding step of level
            work, just before the session looks for waiting windows (tests make a window arrive, or a level slow,
            at that point; a profiler can count steps).
        stage_seconds: seconds spent per stage so far (`benchmarks/bench_live.py` reports them per window).
    """

    def __init__(
        self,
        source: str | None,
        captioner: Captioner,
        out: str | Path,
        options: LiveOptions | None = None,
        *,
        resume: bool = False,
        listeners: list[Callable[[dict[str, Any]], None]] | None = None,
    ) -> None:
        self.out = Path(out)
        self.cap = captioner
        self.listeners = list(listeners or [])
        self.resume = resume
        if resume:
            stored = read_session(self.out)
            self.opts = stored_options(stored, self.out / SESSION_FILE)
            self.source = parse_source(stored["source"], self.opts.format)
            self.session = stored
        else:
            if source is None:
                raise InputError("give a SOURCE (or --resume OUT)")
            self.opts = options or LiveOptions()
            self.source = parse_source(source, self.opts.format)
            self.session = {"source": source, "options": _options_dict(self.opts), "parts": [], "base": None}
        check_run(captioner, self.opts)
        ref = captioner.model(self.opts.levels[0]).config
        self.clip_seconds = self.opts.clip_seconds or ref.clip_seconds
        self.segment_seconds = self.opts.segment_seconds or ref.segment_seconds
        self.lag_policy = self.opts.lag
        if self.lag_policy == "auto":
            self.lag_policy = "drop" if self.source.kind in ("network", "device") else "queue"
        self.device = torch.device(self.opts.device)
        # the options of `caption` this session shares (token limits, feature counts, the summary's text policy)
        self._copts = CaptionOptions(**self.opts.hierarchy_options())
        enc = captioner.model("clip").encoder
        assert enc is not None
        self.num_frames, self.image_size, self.width = enc.config.num_frames, enc.config.image_size, enc.config.width
        # state
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._queue: collections.deque[tuple[LiveWindow, torch.Tensor | None]] = collections.deque()
        self._reader_done = False
        self._stopped_at: float | None = None
        self._reader_error: BaseException | None = None
        self._end_reason: str | None = None
        self._frames: FrameSource | None = None
        self._windower: Windower | None = None
        self._clips: list[tuple[Caption, bool]] = []  # every window so far: caption, skipped
        self._last_feature: np.ndarray | None = None
        self._logged = {"clip": 0, "segment": 0, "summary": 0}
        # captioned (and emitted) clips the engine has not been fed yet: caption, feature, when its window was ready
        self._unfed: collections.deque[tuple[Caption, np.ndarray, float | None]] = collections.deque()
        # windows given out early (live.windows): their model inputs (the reader's) and their captions (the
        # captioning thread's), each with the frames they were made from, until their final windows come
        self._early_x: dict[int, tuple[np.ndarray | None, torch.Tensor | None]] = {}
        self._early_done: dict[int, tuple[np.ndarray | None, str, np.ndarray]] = {}
        # called with the level ("segment" or "video") before each decoding step of level work, before the check
        # for waiting windows: tests slow the level down or make a window arrive at that moment through it
        self.on_level_step: Callable[[str], None] | None = None
        # seconds per stage (benchmarks/bench_live.py reports them): the reader thread's CPU time "reader_cpu"
        # (demux, decode, windows; its wall time would mostly be waiting for the stream) and its "transform"; the
        # captioning thread's "clip" (clip work: the model call "clip_model", i.e. encoder, Q-Former and decoding,
        # then storing and emitting) and "level" (segment descriptions and summaries without the clip work done
        # between their decoding steps); "windows": how many windows the clip model captioned
        self.stage_seconds: dict[str, float] = dict.fromkeys(
            ("reader_cpu", "transform", "clip", "clip_model", "level", "windows"), 0.0
        )
        self._notes: list[dict[str, Any]] = []  # disconnect/reconnect notes of the reader, emitted in order
        self._held: list[dict[str, Any]] | None = None
        self._final_logged = False
        self._events_file: Any = None
        self._dropped = 0
        self._lag = 0.0
        self._latest_t = 0.0
        self.part = 0
        self.engine: Hierarchy | None = None
        self.store: Store | None = None

    # ---- public ----------------------------------------------------------------------------------------------------
    def stop(self, reason: str = "stopped") -> None:
        """End the session soon (from another thread, or a signal handler: `videorecap live` calls it on Ctrl-C
        with reason "interrupted"): the windows read so far are captioned, then it finishes."""
        if self._end_reason is None:
            self._end_reason = reason
        self._stop.set()
        with self._cond:
            self._cond.notify_all()

    def status(self) -> dict[str, Any]:
        """The status line's numbers: stream time reached, clips and segments so far, lag, windows dropped."""
        with self._cond:
            queued = len(self._queue)
        segs = len(self.engine.segments) if self.engine is not None else 0
        return {"t": self._latest_t, "clips": len(self._clips), "segments": segs, "lag": self._lag,
                "queued": queued, "dropped": self._dropped}  # fmt: skip

    def run(self) -> SessionEnd:
        self.out.mkdir(parents=True, exist_ok=True)
        # a damaged log is found before the store opens or the log is cut: the folder is left as it was
        logged, complete = read_log(self.out) if self.resume else ([], None)
        self._open_store()
        if complete is not None and complete < (self.out / EVENTS_FILE).stat().st_size:
            with open(self.out / EVENTS_FILE, "r+b") as f:
                f.truncate(complete)  # the last line was cut by a kill: this part's events follow the whole ones
        if any(e.get("event") == "end" for e in logged[-1:]):
            raise InputError(f"{self.out}: the session already ended; its outputs are complete (nothing to resume)")
        self.part = 1 + max((e.get("part", 0) for e in logged if e.get("event") == "start"), default=0)
        self._events_file = open(self.out / EVENTS_FILE, "a", encoding="utf-8")  # noqa: SIM115 - closed in _finish
        try:
            self._held = []  # events of the replay: written after this part's start
            self._make_engine(logged)
            held, self._held = self._held, None
            start_at = len(self._clips) * self.clip_seconds
            self.session["parts"].append({"part": self.part, "start": start_at, "wall": time.time()})
            fileio.write_json(self.out / SESSION_FILE, self.session)
            self._emit({"event": "start", "part": self.part, "source": self.source.text, "kind": self.source.kind,
                        "at": start_at, "clip_seconds": self.clip_seconds, "segment_seconds": self.segment_seconds,
                        "lag_policy": self.lag_policy})  # fmt: skip
            for ev in held or []:
                self._emit(ev)
            self._start_reader(start_at)
            self._consume()
            return self._finish()
        finally:
            self._stop.set()
            if self._events_file is not None:
                self._events_file.close()

    # ---- setup -----------------------------------------------------------------------------------------------------
    def _open_store(self) -> None:
        lv = self.opts.levels
        fp = {
            "live_version": STORE_VERSION,
            "source": self.source.text,
            "models": {level: model_fingerprint(self.cap.model(level)) for level in lv},
            "windows": [self.clip_seconds, self.segment_seconds, self.opts.min_tail_seconds],
            "decode": self.opts.decode.to_dict(),
            "max_new_tokens": {level: self._max_tokens(level) for level in lv},
            "num_features": self.opts.num_features,
            "summary_text": self.opts.summary_text,
            # a resume in another precision would mix its captions with these (fp32 keeps the earlier fingerprint)
            **({"precision": self.cap.precision} if self.cap.precision != "fp32" else {}),
            **({"compiled": True} if self.cap.compiled else {}),  # --compile: its sums differ in the last bits
        }
        if not self.resume and (self.out / EVENTS_FILE).exists():
            raise InputError(f"{self.out}: holds a live session already; continue it with --resume {self.out}, "
                             "or give another -o")  # fmt: skip
        meta = self.out / ".cache" / "store.json"
        if self.resume and meta.is_file():
            try:
                made_with = json.loads(meta.read_text(encoding="utf-8")).get("key")
            except (OSError, ValueError):
                made_with = None
            if made_with != fingerprint_key(fp):  # the store would start over, and the log would not match it
                raise InputError(f"--resume {self.out}: the session was made with other models or settings; resume "
                                 "it with the same ones (leave out --model to use the session's)")  # fmt: skip
        self.store = Store.open(self.out / ".cache", fp)

    def _max_tokens(self, level: str) -> int:
        return level_max_tokens(self.cap, level, self._copts)

    def _decode_cfg(self, level: str) -> DecodeConfig:
        return level_decode(self.cap, level, self._copts)

    def _step(self, level: str) -> Step:
        return level_step(self.cap, level, self._copts, self._decode_cfg(level), self.device)

    def _make_engine(self, logged: list[dict[str, Any]]) -> None:
        """The engine, with the stored clips replayed (resume): events the log lacks are emitted now."""
        lv = self.opts.levels
        known = [Caption(e["start"], e["end"], e["text"]) for e in logged if e.get("event") == "segment"]
        for kind in ("clip", "segment", "summary"):
            self._logged[kind] = sum(1 for e in logged if e.get("event") == kind and not e.get("final"))
        self._summaries_logged = {e.get("after_segment") for e in logged if e.get("event") == "summary"}
        self._final_logged = any(e.get("event") == "summary" and e.get("final") for e in logged)
        self.engine = Hierarchy(
            clip_seconds=self.clip_seconds,
            segment_seconds=self.segment_seconds,
            segment=self._step("segment") if "segment" in lv else None,
            video=self._step("video") if "video" in lv else None,
            batch_size=1,  # each segment described as soon as its window closes
            segment_min_tail=segment_min_tail(self.clip_seconds, self.opts.min_tail_seconds),
            known_segments=known,
        )
        assert self.store is not None
        i = 0
        while (entry := self.store.get(_clip_key(i))) is not None:
            r = entry.rows
            self._add(Caption(r["start"], r["end"], r["text"]), entry.arrays["feature"], r["skipped"], None, None)
            i += 1
        self._feed_all()  # (no window waits yet: the reader starts after this)

    def _start_reader(self, start_at: float) -> None:
        base = self.session.get("base") if self.source.recorded else None

        def note(kind: str, info: dict[str, Any]) -> None:
            with self._cond:
                self._notes.append({"event": kind, **info})

        self._frames = FrameSource(self.source, idle=self.opts.idle, reconnect=self.opts.reconnect, stop=self._stop,
                                   start_at=start_at, base=base, on_event=note)  # fmt: skip
        self._windower = Windower(
            self.clip_seconds, self.num_frames, self.opts.min_tail_seconds, first_index=len(self._clips)
        )
        threading.Thread(target=self._read, name="videorecap-live-reader", daemon=True).start()

    # ---- reader thread ---------------------------------------------------------------------------------------------
    def _read(self) -> None:
        frames, windower = self._frames, self._windower
        assert frames is not None and windower is not None
        cpu0 = time.thread_time()
        stage = self.stage_seconds
        try:
            first = True
            for f in frames.frames():
                if first:
                    first = False
                    windower.eps, windower.rotation = frames.eps, int(frames.meta.get("rotation", 0))
                    if self.source.recorded and self.session.get("base") is None:
                        self.session["base"] = frames.base
                        self.session["meta"] = frames.meta
                        fileio.write_json(self.out / SESSION_FILE, self.session)
                if self.opts.duration is not None and f.t >= self.opts.duration:
                    self._end_reason = "duration"
                    break
                self._latest_t = f.t
                for w in windower.push(f):
                    self._put(w)
                if self._stop.is_set():
                    break
            if self._end_reason is None:
                self._end_reason = frames.ended or "eof"
        except BaseException as e:  # noqa: BLE001 - handed to the captioning thread
            self._reader_error = e
        finally:
            stage["reader_cpu"] += time.thread_time() - cpu0
            with self._cond:
                self._reader_done = True
                self._cond.notify_all()

    def _put(self, w: LiveWindow) -> None:
        x = self._model_input(w)
        with self._cond:
            if self.lag_policy == "queue":
                while len(self._queue) >= self.opts.max_queue and not self._stop.is_set():
                    self._cond.wait(0.1)
            if not w.early:  # its early twin, if still waiting, is not needed any more: this one is captioned
                for i in reversed(range(len(self._queue))):
                    if self._queue[i][0].index == w.index:
                        del self._queue[i]
            self._queue.append((w, x))
            self._cond.notify_all()

    def _model_input(self, w: LiveWindow) -> torch.Tensor | None:
        """The window's frames transformed for the encoder, (3, T, S, S); a final window with its early twin's frames
        takes the twin's. Called by the reader thread, and by `_finish` once the reader is done."""
        twin = self._early_x.pop(w.index, None)
        if twin is not None and twin[0] is w.frames:
            x = twin[1]
        else:
            t0 = time.perf_counter()
            x = eval_transform(w.frames, self.image_size) if w.frames is not None else None
            self.stage_seconds["transform"] += time.perf_counter() - t0
        if w.early:
            self._early_x[w.index] = (w.frames, x)
        return x

    # ---- captioning thread -----------------------------------------------------------------------------------------
    def _take(
        self, block: bool = True, final_only: bool = False
    ) -> list[tuple[LiveWindow, torch.Tensor | None]] | None:
        """The next windows to caption (up to a batch), or None when the reader is done and nothing is queued.
        With `block`, waits for a window (or the reader's end); without, returns [] when nothing is queued.
        `final_only`: only final windows (level work gives way only to captions that can be emitted now)."""
        with self._cond:
            while block and not self._queue and not self._reader_done and not self._notes:
                self._cond.wait(0.2)
                if self._stopped_at is None and self._stop.is_set():
                    self._stopped_at = time.monotonic()
                if self._stopped_at is not None and time.monotonic() - self._stopped_at > READER_GRACE_SECONDS:
                    # a reader blocked in a read that never returns (stdin with no data): finish without it
                    logger.warning("%s: the source did not stop in time; finishing without it", self.source.text)
                    self._reader_done = True
            notes, self._notes = self._notes, []
            if self.lag_policy == "drop":
                now = time.monotonic()
                while len(self._queue) > 1 and now - self._queue[0][0].ready > self.opts.max_lag:
                    w, _ = self._queue.popleft()
                    if w.early:
                        continue  # not captioned ahead; its final window waits or comes (and may be dropped)
                    w.skipped, w.frames = "lag", None
                    self._dropped += 1
                    notes.append({"_window": (w, None)})
            if final_only:  # the final windows, in order (an early one stays, wherever it is)
                picked = [i for i, q in enumerate(self._queue) if not q[0].early][: self.opts.batch_size]
                batch = [self._queue[i] for i in picked]
                for i in reversed(picked):
                    del self._queue[i]
            else:
                batch = []
                while self._queue and len(batch) < self.opts.batch_size:
                    batch.append(self._queue.popleft())
            self._cond.notify_all()
        for n in notes:
            if "_window" in n:
                self._caption([n["_window"]])
            else:
                self._emit(n)
        if not batch and self._reader_done and not self._queue:
            return None
        return batch

    def _consume(self) -> None:
        """Clip work whenever a window waits; level work, one fed clip at a time, only when none does. The clips
        not fed when the reader is done are fed by `_finish` (after the last windows)."""
        while (batch := self._take(block=not self._unfed)) is not None:
            if batch:
                self._caption(batch)
            elif self._unfed:
                self._feed_one()

    def _feed_all(self) -> None:
        while self._unfed:
            self._feed_one()

    def _feed_one(self) -> None:
        """Level work: the next captioned clip into the engine; the segment it closes (if any) is described and its
        rolling summary made, both interrupted before every decoding step to caption the windows waiting then."""
        assert self.engine is not None
        clip, feat, ready = self._unfed.popleft()
        t0, clip0 = time.perf_counter(), self.stage_seconds["clip"]
        try:
            with between_steps(lambda: self._clip_work_between("segment")):
                segs = self.engine.add_clip(clip.start, clip.end, clip.text, feat)
            for seg in segs:
                self._segment_event(seg, time.monotonic() - ready if ready is not None else None)
        finally:  # level time without the clip work done between its steps
            self.stage_seconds["level"] += time.perf_counter() - t0 - (self.stage_seconds["clip"] - clip0)

    def _clip_work_between(self, level: str) -> None:
        """Between two decoding steps of level work: caption the final windows waiting now (and any arriving
        meanwhile). An early window waits for the level work to end or for its final window: its caption could not
        be emitted before that anyway, and the description it would delay could."""
        if self.on_level_step is not None:
            self.on_level_step(level)
        if not (self._queue or self._notes):  # the common case: nothing waits (an unlocked look suffices)
            return
        while batch := self._take(block=False, final_only=True):
            self._caption(batch)

    def _caption(self, batch: list[tuple[LiveWindow, torch.Tensor | None]]) -> None:
        """Clip work: caption a batch of windows (skipped ones get none), store and emit them in time order. An early
        window's caption is kept, not emitted, until its final window comes: with the same frames it is that
        window's caption, otherwise (the stream ended within the minimum tail) it is dropped."""
        t_start = time.perf_counter()
        texts: dict[int, tuple[str, np.ndarray]] = {}
        todo = []
        for w, x in batch:
            ahead = None if w.early else self._early_done.pop(w.index, None)
            if ahead is not None and ahead[0] is w.frames:
                texts[w.index] = ahead[1:]
            elif w.skipped is None and x is not None:
                todo.append((w, x))
        if todo:
            t0 = time.perf_counter()
            out, feats = caption_clips(self.cap, [x for _, x in todo], self._decode_cfg("clip"), self.device)
            self.stage_seconds["clip_model"] += time.perf_counter() - t0
            self.stage_seconds["windows"] += len(todo)
            for (w, _), text, feat in zip(todo, out, feats, strict=True):
                if w.early:
                    self._early_done[w.index] = (w.frames, text, feat)
                else:
                    texts[w.index] = (text, feat)
        now = time.monotonic()
        for w, _ in batch:
            if w.early:
                continue
            if w.index in texts:
                text, feat = texts[w.index]
                skipped = None
            else:
                text, skipped = "", w.skipped or "gap"
                # a skipped window keeps the feature rows aligned with the windows: it repeats the last one
                feat = self._last_feature if self._last_feature is not None else np.zeros(self.width, np.float32)
            self._lag = now - w.ready
            self._add(Caption(w.start, w.end, text), feat, skipped, w.ready, now)
        self.stage_seconds["clip"] += time.perf_counter() - t_start

    def _add(
        self, clip: Caption, feat: np.ndarray, skipped: str | None, ready: float | None, done: float | None
    ) -> None:
        """One clip result: stored, emitted, and queued for the engine (level work feeds it, `_feed_one`)."""
        assert self.store is not None
        i = len(self._clips)
        if ready is not None:  # a new result (not a replayed one): stored before it is emitted
            row = {**clip.to_dict(), "skipped": skipped}
            self.store.put(_clip_key(i), arrays={"feature": np.asarray(feat, np.float32)}, rows=row)
        self._clips.append((clip, skipped is not None))
        self._last_feature = np.asarray(feat, np.float32)
        if i >= self._logged["clip"]:
            ev: dict[str, Any] = {"event": "clip", "index": i, **clip.to_dict()}
            if skipped:
                ev["skipped"] = skipped
            if ready is not None and done is not None:
                ev["latency"] = round(done - ready, 3)
            self._emit(ev)
        self._unfed.append((clip, feat, ready))

    def _segment_event(self, seg: Caption, latency: float | None) -> None:
        assert self.engine is not None
        k = len(self.engine.segments) - 1
        if k >= self._logged["segment"]:
            ev: dict[str, Any] = {"event": "segment", "index": k, **seg.to_dict()}
            if latency is not None:
                ev["latency"] = round(latency, 3)
            self._emit(ev)
        if self.engine.video_step is not None and self.opts.rolling_summary and k not in self._summaries_logged:
            with between_steps(lambda: self._clip_work_between("video")):
                s = self.engine.summary()
            self._emit({"event": "summary", "after_segment": k, "final": False, **s.to_dict()})

    def _emit(self, ev: dict[str, Any]) -> None:
        if self._held is not None:
            self._held.append(ev)
            return
        ev = {**ev, "part": self.part, "wall": round(time.time(), 3)}
        self._events_file.write(json.dumps(ev, ensure_ascii=False) + "\n")
        self._events_file.flush()
        if ev["event"] == "clip":
            fileio.write_text(self.out / "clips.vtt", to_vtt(self._shown_clips(), narrator=self.opts.narrator))
        elif ev["event"] == "segment" and self.engine is not None:
            segs = to_vtt(self.engine.segments, chapters=True, narrator=self.opts.narrator)
            fileio.write_text(self.out / "segments.vtt", segs)
        for listener in self.listeners:
            listener(ev)

    def _shown_clips(self) -> list[Caption]:
        return [c for c, skipped in self._clips if not skipped]

    # ---- the end ---------------------------------------------------------------------------------------------------
    def _finish(self) -> SessionEnd:
        frames, windower = self._frames, self._windower
        assert frames is not None and windower is not None and self.engine is not None
        reason = self._end_reason or "stopped"
        duration = self._duration(reason)
        if self._clips:
            duration = max(duration, self._clips[-1][0].end)
        rest = windower.finish(duration, time.monotonic()) if self._reader_done else []
        if rest:
            self._caption([(w, self._model_input(w)) for w in rest])
        self._feed_all()
        if not self._clips:
            self._forget()  # nothing to resume: the same -o can be used again at once
            if self._reader_error is not None:
                raise self._reader_error
            raise InputError(f"{self.source.text}: the stream ended before its first frame; nothing was captioned")
        for seg in self.engine.finish(duration):
            self._segment_event(seg, None)
        summary = self.engine.summary() if self.engine.video_step is not None else None
        if summary is not None and not self._final_logged:  # (a kill may have come right after it)
            self._emit({"event": "summary", "after_segment": len(self.engine.segments) - 1, "final": True,
                        **summary.to_dict()})  # fmt: skip
        result = self._result(duration, summary)
        self._events_file.close()
        self._events_file = None
        video_src = None
        if not self.source.recorded:
            video_src = self.source.text if self.source.text.startswith(("http://", "https://")) else ""
        outputs = write_outputs(result, self.out, narrator=self.opts.narrator, video_src=video_src)
        self._events_file = open(self.out / EVENTS_FILE, "a", encoding="utf-8")  # noqa: SIM115 - closed in run
        self._emit({"event": "end", "reason": reason, "duration": duration, "clips": len(result.clips),
                    "segments": len(result.segments), "skipped": self._dropped_total()})  # fmt: skip
        error = self._reader_error
        if error is not None and not isinstance(error, VideoRecapError):
            raise error
        return SessionEnd(reason, result, outputs, error)

    def _forget(self) -> None:
        """Remove the files of a session that captioned nothing."""
        if self._events_file is not None:
            self._events_file.close()
            self._events_file = None
        for name in (EVENTS_FILE, SESSION_FILE):
            (self.out / name).unlink(missing_ok=True)
        if self.store is not None:
            self.store.clear()

    def _dropped_total(self) -> int:
        return sum(1 for _, skipped in self._clips if skipped)

    def _duration(self, reason: str) -> float:
        frames = self._frames
        assert frames is not None
        if reason == "duration" and self.opts.duration is not None:
            return self.opts.duration
        if self.source.recorded and reason in ("eof", "idle", "marker"):
            from videorecap.errors import VideoError
            from videorecap.video.io import probe

            try:  # the whole file is there now: the duration `caption` would use
                return probe(self.source.text).duration
            except VideoError as e:
                logger.warning("%s: %s; ending at the last frame", self.source.text, e)
        return stream_end(frames.last_time, frames.frame_interval)

    def _result(self, duration: float, summary: Caption | None) -> CaptionResult:
        meta = self.session.get("meta") or (self._frames.meta if self._frames is not None else {}) or {}
        clips = self._shown_clips()
        covered = None
        if any(skipped for _, skipped in self._clips):
            covered = []
            for c, skipped in self._clips:
                if skipped:
                    continue
                if covered and abs(covered[-1][1] - c.start) < 1e-9:
                    covered[-1][1] = c.end
                else:
                    covered.append([c.start, c.end])
        assert self.engine is not None
        lv = list(self.opts.levels)
        return CaptionResult(
            video=VideoMeta(
                id=_video_id(self.source),
                path=self.source.text if self.source.recorded else "",
                duration=duration,
                fps=meta.get("fps"),
                width=meta.get("width"),
                height=meta.get("height"),
                rotation=int(meta.get("rotation") or 0) % 360,
                start_time=float(meta.get("start_time") or 0.0),
                codec=meta.get("codec"),
                partial=covered is not None,
                covered=covered,
            ),
            clips=clips,
            segments=self.engine.segments,
            summary=summary,
            model=describe_model(self.cap, lv),
            decoding={**self.opts.decode.to_dict(), "max_new_tokens": {x: self._max_tokens(x) for x in lv}},
            windows={"clip": self.clip_seconds, "segment": self.segment_seconds},
            levels=lv,
            summary_input=self._summary_input(),
        )

    def _summary_input(self) -> Any:
        """Which descriptions the final summary read, recorded (as `caption` does) when they did not all fit."""
        assert self.engine is not None
        if self.engine.video_step is None or not self.engine.segments:
            return None
        fitted = self.engine.video_input().fitted
        return fitted if fitted is not None and fitted.tokens > fitted.max_tokens else None


def _clip_key(i: int) -> str:
    return f"clip-{i:07d}"


def _video_id(source: Source) -> str:
    if source.kind == "file":
        return Path(source.text).stem
    if source.kind == "stdin":
        return "stdin"
    if source.kind == "device" and not source.text.startswith("/"):
        return source.format or "capture"  # a display or a filter graph: the input's name says more
    return source.text.rstrip("/").rsplit("/", 1)[-1] or "live"


def _options_dict(opts: LiveOptions) -> dict[str, Any]:
    from dataclasses import asdict

    d = asdict(opts)
    d["decode"] = opts.decode.to_dict()
    d["levels"] = list(opts.levels)
    return d


def read_session(out: Path) -> dict[str, Any]:
    """session.json of a live session folder, checked as far as `--resume` uses it: a damaged file is one line
    (InputError) before any model loads, not a crash part-way into the resume."""
    p = out / SESSION_FILE
    if not p.is_file():
        raise InputError(f"--resume {out}: no {SESSION_FILE}: not a live session folder")
    try:
        stored = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:
        raise InputError(f"{p}: unreadable ({e})") from None
    problem = _session_problem(stored)
    if problem is not None:
        raise InputError(f"{p}: damaged: {problem}")
    stored_options(stored, p)  # options it cannot run with: found now too
    return stored


def _json_kind(value: Any) -> str:
    """JSON's name for the type of `value` (what a user sees in the file)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    kinds = {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number"}
    return kinds.get(type(value), type(value).__name__)


def _session_problem(stored: Any) -> str | None:
    """What is wrong with the fields of a parsed session.json that a resume reads, or None."""
    if not isinstance(stored, dict):
        return f"it holds {_json_kind(stored)}, not an object"
    if not isinstance(stored.get("source"), str) or not stored["source"]:
        return f"'source' is {_json_kind(stored.get('source'))}, not the SOURCE text"
    expected: tuple[tuple[str, type | tuple[type, ...], bool, str], ...] = (
        ("options", dict, True, "an object"),
        ("parts", list, True, "an array"),
        ("model", dict, False, "an object"),
        ("meta", (dict, type(None)), False, "an object"),
        ("base", (int, float, type(None)), False, "a number"),
    )
    for key, kind, required, what in expected:
        if key not in stored:
            if required:
                return f"no '{key}'"
            continue
        if not isinstance(stored[key], kind) or isinstance(stored[key], bool):
            return f"'{key}' is {_json_kind(stored[key])}, not {what}"
    for k, v in stored.get("model", {}).items():
        if v is not None and not isinstance(v, str):
            return f"'model.{k}' is {_json_kind(v)}, not a path or name"
    return None


def stored_options(stored: dict[str, Any], path: Path) -> LiveOptions:
    """The options of a stored session (`read_session`'s dict, read from `path`).

    Raises:
        InputError: options a session cannot run with (the file was edited or damaged).
    """
    opts = dict(stored["options"])
    try:
        decode = opts.get("decode", {})
        if not isinstance(decode, dict):
            raise TypeError(f"'decode' is {_json_kind(decode)}, not an object")
        opts["decode"] = DecodeConfig(**decode)
        if isinstance(opts.get("levels"), list):
            opts["levels"] = tuple(opts["levels"])
        return LiveOptions(**opts)
    except (TypeError, ValueError, InputError) as e:
        raise InputError(f"{path}: damaged options ({e})") from None


# The fields of the events a resume reads (`_make_engine`, `run`), with the types they must have.
_NUMBER = (int, float)
_EVENT_FIELDS: dict[str, dict[str, tuple[type, ...]]] = {
    "start": {"part": (int,)},
    "segment": {"start": _NUMBER, "end": _NUMBER, "text": (str,)},
    "summary": {"after_segment": (int,)},
}


def read_log(out: Path) -> tuple[list[dict[str, Any]], int]:
    """The events of `out`/live.jsonl, and how many of its bytes are whole lines. It is only read: a last line cut
    by a kill (a prefix of an event's line) is left out of both, for the caller to cut from the file.

    Raises:
        InputError: no such file, or a damaged one (a whole line that is not an event, or garbage at its end).
    """
    p = out / EVENTS_FILE
    if not p.is_file():
        raise InputError(f"{out}: no {EVENTS_FILE}: not a live session folder")
    try:
        data = p.read_bytes()
    except OSError as e:
        raise InputError(f"{p}: unreadable ({e.strerror or e})") from None
    complete = data.rfind(b"\n") + 1
    # every line is written as `{"event": ...}` then a newline: a kill can leave a prefix of one at the end, which
    # starts with "{"; anything else there was not written by a session
    if complete < len(data) and not data[complete:].startswith(b"{"):
        last = data.count(b"\n") + 1
        raise InputError(f'{p}: damaged: line {last} is not an event (a JSON object with an "event")')
    events = []
    for number, line in enumerate(data[:complete].split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            ev = json.loads(line)
        except (ValueError, RecursionError):
            ev = None
        problem = _event_problem(ev)
        if problem is not None:
            # a line in the middle cannot have been cut by a kill: each one is whole before the next is written
            raise InputError(f"{p}: damaged: line {number} {problem}")
        events.append(ev)
    return events, complete


def _event_problem(ev: Any) -> str | None:
    """What is wrong with one parsed line of live.jsonl, or None."""
    if not isinstance(ev, dict) or not isinstance(ev.get("event"), str):
        return 'is not an event (a JSON object with an "event")'
    for key, kinds in _EVENT_FIELDS.get(ev["event"], {}).items():
        if not isinstance(ev.get(key), kinds) or isinstance(ev.get(key), bool):
            return f"is a {ev['event']} event whose '{key}' is {_json_kind(ev.get(key))}"
    return None
