"""The recursion clip -> segment -> video as a pure, incremental engine: no file I/O, no model.

The engine is fed clip results in time order (a window, its caption, its CLS feature `(C,)`) and calls the level
captioners it was given when a higher-level input is ready:

    engine = Hierarchy(
        clip_seconds=4.0,
        segment_seconds=180.0,
        segment=Step(describe_segments, num_features=80, sampling="uniform"),
        video=Step(summarise, num_features=256, sampling="masking", text_fit=TextFit.for_tokenizer(tok, 512)),
        batch_size=8,
    )
    for start, end, text, feature in clip_results:  # in time order, live or from a file
        for seg in engine.add_clip(start, end, text, feature):
            print(seg)  # a segment description, as soon as its window is complete (and its batch full)
    segments = engine.finish(duration)  # the last (short) window(s)
    summary = engine.summary()

A captioner is any callable `list[SegmentInput] -> list[str]` (or `list[VideoInput] -> list[str]`), one text per
input, so tests drive the engine with a stub and the pipeline with a model.

**What each level sees** (exactly what the offline pipeline has always done, reference §1.5 and §6.2):

- Segment windows are `segment_windows(duration, segment_seconds, segment_min_tail)`: `[k*S, min(k*S + S,
  duration))`, the last one cut at the end of the video, or joined to the one before when it is shorter than
  `segment_min_tail` (`video.sampling.window_plan` passes one clip window; 0 keeps the original's plan).
- A segment's text is the captions of the clips whose window lies inside it (`c.start >= s and c.end <= e`, the
  original's rule, so a clip straddling a boundary belongs to neither), joined with no separator (`segment_text`).
- A segment's features are the rows `[int(s / clip_seconds) : int(e // clip_seconds) + 1]` of the video's features
  (the end row is inclusive: the first clip of the next segment is part of it); an empty slice falls back to the
  last row. They are sampled to the level's feature count with its sampling (`uniform` or `masking`).
- The video's text is the segment descriptions joined as `video_text` does; its features are all rows, sampled
  the video level's way. With a `TextFit` on the video step, the text is fitted to the video model's token limit
  (below); without one, it is every description and the model's collator cuts it at its limit.
- The features are the clip CLS features fed so far, or a precomputed `(N, C)` array given as `features`.

**Long videos: which descriptions the video level reads.** The video model reads at most `max_text_tokens`
tokens of text (512 for Video ReCap; about 45 minutes of 180-s descriptions). The original cuts the text there, so
the summary of a longer video never reads the rest of it, although its features (sampled over all rows) do cover
it. `TextFit(count_tokens, max_tokens, policy)` counts tokens with the video model's real tokenizer and chooses
(`data.text.fit_video_text`):

- `"spread"` (the default of `caption`): the whole text when it fits, unchanged, so a short video reads exactly
  what the original reads. Otherwise as many descriptions as fit, evenly spaced across the video (the first and
  the last always), joined as `video_text` joins them. The trade-off: the released weights were trained on up to
  512 tokens of *consecutive* descriptions; spread ones are the same format (complete sentences "a. b. c."), only
  further apart in time, which is what the video features already are (sampled evenly over the whole video), so
  text and features describe the same span. The model reads fewer details per hour of a long video, but every
  part of it. The alternative, one more level of recursion (summarise each ~45-min span, then summarise the
  summaries), would feed the video model summaries, a text it was never trained on, and cost one more decode per
  span on every (rolling) summary; spreading needs no extra model call and no new input distribution.
- `"first"` (`caption --original-settings`): every description; the collator keeps the first `max_tokens` tokens,
  as the original does.

`VideoInput.read` gives the indices of the descriptions the text holds, and `VideoInput.fitted` records the choice
(`results.SummaryInput`, written to captions.json when the descriptions did not all fit).

**When a segment is described.** Window `k` is complete when a clip arrives whose window starts at or after the
window's end (that clip's feature is the inclusive end row of the slice, so it is added first), or at
`finish(duration)`, which also closes the last, short window. Complete windows wait in a queue and are described
`batch_size` at a time, in time order, so an offline run calls the captioner with the same batches as a run that
collects every window first (`[0, B)`, `[B, 2B)`, ... and the rest at `finish`). Live callers that want each
description at once use `batch_size=1` or call `flush()`.

**Describing elsewhere.** `close(duration)` is `finish` without describing: the remaining windows stay queued.
`pending()` gives the inputs `flush()` would send, and `describe(texts)` takes their texts back. `caption` given
several videos uses them to decode the last, partial batches of several videos' engines (and their summaries, from
`video_input()`) as one list of rows; the texts are those of `flush()`, since a greedy row does not depend on the
other rows of its batch.

**Rolling summaries.** `summary()` before `finish` is a summary of what exists so far: it first describes the
complete windows still queued, then summarises those descriptions (the open window has none yet) together with
every feature fed so far (the open window's included; all rows when `features` were given), over
`[0, end of the last clip)`. It changes nothing else, so the final summary after `finish` reads the same inputs as
the offline pipeline's (only the grouping of the flushed descriptions into captioner calls may differ).
After `finish` it summarises the whole video, `[0, duration)`. Each call asks the video captioner again.

How a rolling summary differs from the offline one: (1) it reads only the descriptions of complete windows: the
minutes since the last segment boundary reach it through the features alone; (2) its features are those fed so far,
sampled to the video level's count, so early in a stream each row weighs more (and the `masking` sampling pads);
(3) under `"spread"` the descriptions it reads are re-chosen at every call over what exists, so once the text no
longer fits, a description read by one rolling summary may be left out of the next (the first and the latest are
always read), and the text keeps following the stream; under `"first"` the text stops changing once the first
`max_tokens` tokens are filled (after about 45 minutes of descriptions: the summary then no longer reads what
happens next, and its cost stays flat). The final summary after `finish` reads the same inputs as the offline one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from videorecap.data.feature_sampling import sample, slice_features
from videorecap.data.text import TEXT_POLICIES, fit_video_text, segment_text, video_text
from videorecap.infer.options import check_windows
from videorecap.levelio import FeatureSampling
from videorecap.results import Caption, SummaryInput
from videorecap.video.sampling import segment_windows

if TYPE_CHECKING:
    from videorecap.tokenizer import Tokenizer


@dataclass(frozen=True)
class SegmentInput:
    """What the segment captioner reads for one window."""

    start: float
    end: float
    features: np.ndarray  # (K, C): the window's feature rows sampled to the level's count
    mask: np.ndarray | None  # (K,) bool, true on real rows ("masking" sampling); None for "uniform"
    text: str  # the clip captions inside the window, joined as the original joins them
    clips: tuple[Caption, ...] = ()  # those clip captions


@dataclass(frozen=True)
class VideoInput:
    """What the video captioner reads: the whole video (or what exists of it so far)."""

    start: float
    end: float
    features: np.ndarray  # (K, C): all feature rows sampled to the level's count
    mask: np.ndarray | None  # (K,) bool or None, as for segments
    text: str  # the segment descriptions, joined as `video_text` does (fitted to the token limit with a TextFit)
    segments: tuple[Caption, ...] = ()  # every description made so far
    read: tuple[int, ...] = ()  # indices into `segments` of the descriptions `text` holds
    fitted: SummaryInput | None = None  # the choice made by the step's TextFit (None without one)


@dataclass(frozen=True)
class TextFit:
    """How the video level fits the segment descriptions to its model's text limit (see the module docstring).

    `count_tokens` gives the token count of each of a list of texts with the video model's tokenizer;
    `max_tokens` is the model's limit (`TokenConfig.max_text_tokens`); `policy` is "spread" or "first".
    """

    count_tokens: Callable[[Sequence[str]], list[int]]
    max_tokens: int
    policy: str = "spread"

    def __post_init__(self) -> None:
        if self.policy not in TEXT_POLICIES:
            raise ValueError(f"policy must be one of {', '.join(TEXT_POLICIES)}, not {self.policy!r}")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, not {self.max_tokens}")

    @classmethod
    def for_tokenizer(cls, tokenizer: Tokenizer, max_tokens: int, policy: str = "spread") -> TextFit:
        """Counts with a `videorecap.tokenizer.Tokenizer` (the one the video model's collator uses)."""
        return cls(lambda texts: [len(ids) for ids in tokenizer.encode_batch(texts)], max_tokens, policy)


@dataclass(frozen=True)
class Step:
    """One level above the clips: its captioner and how many feature rows it reads, sampled how."""

    caption: Callable[[list], list[str]]  # list[SegmentInput] or list[VideoInput] -> one text per input
    num_features: int
    sampling: str = "uniform"
    text_fit: TextFit | None = None  # video level: fit the descriptions to the model's text limit (None: all)

    def __post_init__(self) -> None:
        FeatureSampling(self.num_features, self.sampling)  # type: ignore[arg-type]  # checks both (ValueError)


class _Rows:
    """A growing (N, C) array: appending is amortised O(C), reading the rows so far is a view (no copy)."""

    def __init__(self) -> None:
        self._buf: np.ndarray | None = None
        self.n = 0

    def append(self, row: np.ndarray) -> None:
        row = np.asarray(row)
        if self._buf is None:
            self._buf = np.empty((64, *row.shape), dtype=row.dtype)
        elif row.shape != self._buf.shape[1:]:
            raise ValueError(f"clip feature of shape {row.shape}; the earlier ones were {self._buf.shape[1:]}")
        if self.n == len(self._buf):
            self._buf = np.concatenate([self._buf, np.empty_like(self._buf)])
        self._buf[self.n] = row
        self.n += 1

    def view(self) -> np.ndarray:
        return self._buf[: self.n] if self._buf is not None else np.zeros((0, 0), np.float32)


class Hierarchy:
    """Clip results in, segment descriptions and summaries out (see the module docstring).

    Args:
        clip_seconds: the clip window length (row `i` of the features covers `[i * clip_seconds, ...)`).
        segment_seconds: the segment window length.
        segment: the segment level (None: no segment descriptions; the video level then reads no text).
        video: the video level (None: `summary()` is not available).
        batch_size: complete segment windows described per captioner call.
        segment_min_tail: a last segment window shorter than this joins the previous one (`window_plan`'s rule;
            0 keeps every tail, the original's plan). A window is then complete only once a clip shows that at
            least this much video follows it.
        features: a precomputed `(N, C)` feature array of the whole video, used instead of the clip features.
        known_segments: descriptions already made (e.g. read back from a cache), in time order: window `k` takes
            `known_segments[k]` instead of calling the captioner.
    """

    def __init__(
        self,
        *,
        clip_seconds: float,
        segment_seconds: float,
        segment: Step | None = None,
        video: Step | None = None,
        batch_size: int = 8,
        segment_min_tail: float = 0.0,
        features: np.ndarray | None = None,
        known_segments: Sequence[Caption] = (),
    ) -> None:
        if clip_seconds <= 0 or segment_seconds <= 0:
            raise ValueError("window lengths must be positive")
        check_windows(clip_seconds, segment_seconds)
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        if not segment_min_tail >= 0:
            raise ValueError(f"segment_min_tail must be >= 0, not {segment_min_tail}")
        if features is not None and features.ndim != 2:
            raise ValueError(f"features must be an (N, C) array, got shape {features.shape}")
        self.clip_seconds = clip_seconds
        self.segment_seconds = segment_seconds
        self.segment_step = segment
        self.video_step = video
        self.batch_size = batch_size
        self.segment_min_tail = float(segment_min_tail)
        self._precomputed = features
        self._known = list(known_segments)
        self._rows = _Rows()
        self._clips: list[Caption] = []
        self._segments: list[Caption] = []
        self._queue: list[tuple[float, float]] = []  # complete windows not described yet, in time order
        self._closed = 0  # windows closed so far (described or queued)
        self._duration: float | None = None

    # ---- what exists so far ----------------------------------------------------------------------------------------
    @property
    def clips(self) -> list[Caption]:
        return list(self._clips)

    @property
    def segments(self) -> list[Caption]:
        """The segment descriptions made so far, in time order."""
        return list(self._segments)

    @property
    def features(self) -> np.ndarray:
        """The (N, C) features the higher levels read: the precomputed array, or the clip features fed so far."""
        return self._precomputed if self._precomputed is not None else self._rows.view()

    @property
    def finished(self) -> bool:
        return self._duration is not None

    # ---- feeding ---------------------------------------------------------------------------------------------------
    def add_clip(self, start: float, end: float, text: str, feature: np.ndarray | None = None) -> list[Caption]:
        """Add the next clip result; returns the segment descriptions this made (often none).

        `feature` is the clip's CLS feature `(C,)`; it may be None only when `features` were given.
        """
        if self.finished:
            raise RuntimeError("the video is finished; no more clips can be added")
        if self._clips and start < self._clips[-1].start:
            raise ValueError(
                f"clip at {start} s arrives after the clip at {self._clips[-1].start} s: feed in time order"
            )
        if feature is None:
            if self._precomputed is None:
                raise ValueError("a clip needs its feature unless precomputed features were given")
        else:
            self._rows.append(feature)
        self._clips.append(Caption(float(start), float(end), text))
        if self.segment_step is None:
            return []
        # Windows [k*S, k*S + S) that end at or before this clip's start are complete. Their end is never the
        # video's end: this clip starts after it, and a clip starts before the end of the video. With a minimum
        # tail, the window is final only once this clip shows that at least that much video follows it (else the
        # last, short window would still join it at `finish`).
        while True:
            s = self._closed * self.segment_seconds
            e = s + self.segment_seconds
            if start < e or end < e + self.segment_min_tail:
                break
            self._queue.append((float(s), float(s + self.segment_seconds)))
            self._closed += 1
        out: list[Caption] = []
        while len(self._queue) >= self.batch_size:
            out += self._describe(self.batch_size)
        return out

    def add_clips(self, clips: Iterable[tuple[float, float, str, np.ndarray | None]]) -> list[Caption]:
        """`add_clip` for each `(start, end, text, feature)`; returns every description made."""
        out: list[Caption] = []
        for start, end, text, feature in clips:
            out += self.add_clip(start, end, text, feature)
        return out

    def flush(self) -> list[Caption]:
        """Describe the complete windows still waiting for a full batch."""
        out: list[Caption] = []
        while self._queue:
            out += self._describe(self.batch_size)
        return out

    def finish(self, duration: float) -> list[Caption]:
        """The video ended at `duration` seconds: close the remaining windows (the last one short) and describe
        everything still queued; returns those descriptions."""
        self.close(duration)
        return self.flush()

    def close(self, duration: float) -> None:
        """`finish` without describing: the remaining windows are closed and wait in the queue, for `flush()` or
        for a caller that describes them elsewhere (`pending()`, then `describe(texts)`)."""
        if self.finished:
            raise RuntimeError("finish() was already called")
        if self._clips and duration < self._clips[-1].start:
            raise ValueError(f"duration {duration} s is before the last clip's start ({self._clips[-1].start} s)")
        if self.segment_step is not None:
            windows = segment_windows(duration, self.segment_seconds, self.segment_min_tail)
            if windows[: self._closed] != self._segment_windows_closed():
                raise ValueError(f"duration {duration} s does not match the segment windows closed so far")
            self._queue += windows[self._closed :]
            self._closed = len(windows)
        self._duration = float(duration)

    def pending(self) -> list[SegmentInput]:
        """What `flush()` would send to the segment captioner now (the queued windows whose description is not
        known), without sending it. A caller that captions the inputs of several engines together (`caption`
        given several videos: their segments decoded in one batch) gives the texts back with `describe`."""
        return [self._segment_input(*self._queue[j]) for j in self._unknown(self._queue)]

    def describe(self, texts: Sequence[str]) -> list[Caption]:
        """Describe every queued window with `texts`, one per `pending()` input and in its order (the known windows
        take their known text, as in `flush()`); returns the descriptions, as `flush()` does."""
        n = len(self._unknown(self._queue))
        if len(texts) != n:
            raise ValueError(f"{len(texts)} texts for {n} pending segment inputs")
        return self._describe(len(self._queue), list(texts)) if self._queue else []

    def summary(self) -> Caption:
        """The video summary: of the whole video after `finish`, of what exists so far before (a rolling
        summary, see the module docstring)."""
        item = self.video_input()
        assert self.video_step is not None
        (text,) = _call(self.video_step.caption, [item])
        return Caption(item.start, item.end, text)

    def video_input(self) -> VideoInput:
        """What `summary()` gives the video captioner now (describing the queued windows first), without calling it:
        which descriptions it reads (`read`, `fitted`), for a caller that records them."""
        if self.video_step is None:
            raise RuntimeError("no video level was given")
        self.flush()
        if self._duration is not None:
            end = self._duration
        else:
            end = self._clips[-1].end if self._clips else 0.0
        feats, mask = sample(self.features, self.video_step.num_features, self.video_step.sampling)
        segments = tuple(self._segments)
        descriptions = [c.text for c in segments]
        fit = self.video_step.text_fit
        if fit is None:
            return VideoInput(0.0, end, feats, mask, video_text(descriptions), segments, tuple(range(len(segments))))
        text, read, tokens = fit_video_text(descriptions, fit.count_tokens, fit.max_tokens, fit.policy)
        fitted = SummaryInput(fit.policy, fit.max_tokens, tokens, read)
        return VideoInput(0.0, end, feats, mask, text, segments, read, fitted)

    # ---- internals -------------------------------------------------------------------------------------------------
    def _segment_windows_closed(self) -> list[tuple[float, float]]:
        done = [(c.start, c.end) for c in self._segments]
        return done + self._queue

    def _unknown(self, windows: Sequence[tuple[float, float]]) -> list[int]:
        """The indices of the first queued `windows` that have no known description (checking the known ones)."""
        out = []
        for j, (s, e) in enumerate(windows):
            k = len(self._segments) + j
            if k < len(self._known):
                known = self._known[k]
                if (known.start, known.end) != (s, e):
                    raise ValueError(f"known segment {k} spans [{known.start}, {known.end}), not [{s}, {e})")
            else:
                out.append(j)
        return out

    def _describe(self, n: int, texts: list[str] | None = None) -> list[Caption]:
        """Describe the first `n` queued windows (windows with a known description are not sent), with the segment
        captioner, or with `texts` (one per window without a known description) when given."""
        step = self.segment_step
        assert step is not None
        batch = self._queue[:n]
        todo = self._unknown(batch)
        if texts is None and todo:
            texts = _call(step.caption, [self._segment_input(*batch[j]) for j in todo])
        self._queue = self._queue[n:]
        made = dict(zip(todo, texts or [], strict=True))
        known = len(self._segments)
        out = [Caption(s, e, made[j] if j in made else self._known[known + j].text) for j, (s, e) in enumerate(batch)]
        self._segments += out
        return out

    def _segment_input(self, s: float, e: float) -> SegmentInput:
        step = self.segment_step
        assert step is not None
        # clip captions whose window lies inside the segment (the original's rule)
        inside = tuple(c for c in self._clips if c.start >= s and c.end <= e)
        feats = self.features
        f = slice_features(feats, s, e, self.clip_seconds)
        if f.shape[0] == 0:  # the features stop before this window (a partly decoded video)
            f = feats[-1:]
        x, mask = sample(f, step.num_features, step.sampling)
        return SegmentInput(s, e, x, mask, segment_text([[None, c.start, c.end, c.text] for c in inside]), inside)


def _call(captioner: Callable[[list], list[str]], items: list) -> list[str]:
    texts = list(captioner(items))
    if len(texts) != len(items):
        raise RuntimeError(f"the captioner returned {len(texts)} texts for {len(items)} inputs")
    return texts
