"""EgoSchema-style five-choice questions about a synthetic video, answered by its script.

Every question is asked of one video and has exactly one right choice, which the script (`world.VideoScript`)
decides, so question answering over captions can be measured offline. Four kinds, as EgoSchema's long-video
questions ask:

- `order`: "In what order did C do these activities?" (three activities; the choices are orderings);
- `objects`: "Which of these did C use while making tea?" (one key object named by that activity's captions; the
  other choices are objects of the same sort, "blue cup" against other colours of cup, that it did not name);
- `after` / `before`: "What did C do right after making tea?" (the next / previous activity; the other choices
  are other activities of the world);
- `count`: "How many times did C put something in the sink?" (a caption template with at most one object slot,
  read as "something"; the count is of the actions whose caption says that with any object in its place, the
  knife as well as the plates; the choices are five consecutive counts).

The wording comes from the world's own tables: activity names from `ACTIVITY_TYPES` (gerund, past tense) and the
counted actions from `CAPTION_TEMPLATES`, the table that also writes and parses the captions, so a question never
names something the captions cannot say. An activity asked about by name occurs once in the video (else "right
after making tea" would be ambiguous), and only activities the video shows to their end are used.

    qs = make_questions(script, seed=0)  # list[Question], deterministic in (seed, script.vid)
    rows = [q.to_egoschema() for q in qs]  # {"q_uid", "video", "question", "option 0".."option 4"}

`write_questions(data_dir)` does this for every video of a `synth make` dataset (`videorecap synth questions`).
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from videorecap.errors import DataError
from videorecap.fileio import write_json
from videorecap.synth import world as w

if TYPE_CHECKING:
    from videorecap.results import CaptionResult

logger = logging.getLogger(__name__)

KINDS = ("order", "objects", "after", "before", "count")
N_CHOICES = 5  # EgoSchema's option 0 .. option 4


@dataclass(frozen=True)
class Question:
    """One question: its text, five choices and the index of the right one (from the script)."""

    q_uid: str
    video: str  # the video id: captions are looked up as <captions dir>/<video>/captions.json
    kind: str  # one of KINDS
    question: str
    choices: tuple[str, ...]
    answer: int

    def to_egoschema(self) -> dict[str, Any]:
        """EgoSchema's questions.json row, plus `video` and `kind` (EgoSchema names the clip by q_uid)."""
        row: dict[str, Any] = {"q_uid": self.q_uid, "video": self.video, "kind": self.kind, "question": self.question}
        row.update({f"option {i}": c for i, c in enumerate(self.choices)})
        return row


# ---- wording from the world's tables -------------------------------------------------------------------------------
_IRREGULAR = {"does": "do", "has": "have", "ties": "tie"}


def base_verb(verb: str) -> str:
    """Third person -> base form for the verbs of the world's tables: 'carries' -> 'carry', 'washes' -> 'wash'."""
    if verb in _IRREGULAR:
        return _IRREGULAR[verb]
    if verb.endswith("ies"):
        return verb[:-3] + "y"
    if verb.endswith(("sses", "shes", "ches", "xes")):
        return verb[:-2]
    return verb.removesuffix("s")


def _gerund(name: str) -> str:
    """'making tea', 'washing the dishes': the activity with its default objects (none that would give a hint)."""
    at = w.ACTIVITY_TYPES[name]
    return at.gerund.format(o=at.default)


def _past(name: str) -> str:
    return "C " + w.ACTIVITY_TYPES[name].phrase("past", [])


# "the {m1}", "a {m1}" or a bare "{m1}" -> "something": the action whatever its objects
_SLOT = re.compile(r"(?:\bthe |\ba )?\{m\d\}")


def counted_action(kind: str) -> str:
    """The caption template of action `kind` with its objects read as "something", in the base form:
    'tea.take_cup' -> 'take something from the rack'."""
    text = _SLOT.sub("something", w._TEMPLATE_OF[kind].text)
    verb, _, rest = text.partition(" ")
    return f"{base_verb(verb)} {rest}".strip()


_NUMBER_WORDS = ("zero", "once", "twice", "three times", "four times", "five times", "six times", "seven times",
                 "eight times", "nine times", "ten times")  # fmt: skip


def times(n: int) -> str:
    """'once', 'twice', 'three times' ... '11 times': choice text that no answer parser mistakes for an option
    number."""
    return _NUMBER_WORDS[n] if 0 < n < len(_NUMBER_WORDS) else f"{n} times"


# The sorts of key objects whose other members make fair wrong choices: a named object's own sort.
_PLAIN_SORTS = (w.VEGETABLES, w.GROCERIES, w.SPREADS, w.CAT_FOODS, w.FILLINGS, w.FRUITS, w.FLOWERS, w.CEREALS,
                w.SMOOTHIE_FRUITS)  # fmt: skip


def _same_sort(mention: str) -> list[str] | None:
    """The objects of `mention`'s sort ('blue cup' -> every colour of cup), or None when it has none (places)."""
    colour, _, kind = mention.partition(" ")
    if colour in w.COLOURS and kind in w.COLOURED_KINDS:
        return [f"{c} {kind}" for c in w.COLOURS]
    for sort in _PLAIN_SORTS:
        if mention in sort:
            return list(sort)
    return None


# ---- the questions ---------------------------------------------------------------------------------------------------
def _rng(seed: int, vid: str) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(vid.encode("utf-8"))]))


def _shuffle_in(rng: np.random.Generator, right: str, wrong: Sequence[str]) -> tuple[tuple[str, ...], int]:
    """Four of `wrong` (drawn without replacement) and `right`, in random order: (choices, index of `right`)."""
    picks = [wrong[int(i)] for i in rng.choice(len(wrong), size=N_CHOICES - 1, replace=False)]
    choices = [right, *picks]
    order = [int(i) for i in rng.permutation(N_CHOICES)]
    shuffled = tuple(choices[i] for i in order)
    return shuffled, order.index(0)


def _unique_activities(script: w.VideoScript) -> list[int]:
    """Indices of the complete activities whose type occurs once in the video: they can be asked about by name."""
    counts = Counter(a.name for a in script.activities)
    return [i for i, a in enumerate(script.activities) if a.complete and counts[a.name] == 1]


def _order(script: w.VideoScript, rng: np.random.Generator) -> tuple[str, tuple[str, ...], int] | None:
    ok = _unique_activities(script)
    if len(ok) < 3:
        return None
    picked = sorted(int(i) for i in rng.choice(ok, size=3, replace=False))  # in the video's order
    names = [script.activities[i].name for i in picked]

    def say(order: Sequence[str]) -> str:
        past = [w.ACTIVITY_TYPES[n].phrase("past", []) for n in order]
        return f"C {past[0]}, then {past[1]}, then {past[2]}"

    wrong = [say(p) for p in itertools.permutations(names) if list(p) != names]
    listed = w._and([_gerund(n) for n in sorted(names)])  # alphabetical: the question gives the order away nowhere
    question = f"In what order did C do these activities: {listed}?"
    return (question, *_shuffle_in(rng, say(names), wrong))


def _objects(script: w.VideoScript, rng: np.random.Generator) -> tuple[str, tuple[str, ...], int] | None:
    options = []
    for i in _unique_activities(script):
        named = [m for a in script.actions if a.activity == i for m in a.mentions]
        for m in dict.fromkeys(named):
            sort = _same_sort(m)
            wrong = [x for x in sort or () if x not in named]
            if len(wrong) >= N_CHOICES - 1:
                options.append((i, m, wrong))
    if not options:
        return None
    i, right, wrong = options[int(rng.integers(len(options)))]
    question = f"Which of these did C use while {_gerund(script.activities[i].name)}?"
    choices, answer = _shuffle_in(rng, f"the {right}", [f"the {x}" for x in wrong])
    return question, choices, answer


def _neighbour(script: w.VideoScript, rng: np.random.Generator, step: int) -> tuple[str, tuple[str, ...], int] | None:
    acts = script.activities
    ok = [i for i in _unique_activities(script) if 0 <= i + step < len(acts) and acts[i + step].complete]
    if not ok:
        return None
    i = ok[int(rng.integers(len(ok)))]
    right = acts[i + step].name
    # the other choices: the home's other activities first (they look alike), then the world's
    home = w.HOMES[script.home_at(acts[i].start)]
    others = [n for n in (*home, *w.ACTIVITY_TYPES) if n not in (right, acts[i].name)]
    wrong = list(dict.fromkeys(others))[: 2 * N_CHOICES]
    question = f"What did C do right {'after' if step > 0 else 'before'} {_gerund(acts[i].name)}?"
    choices, answer = _shuffle_in(rng, _past(right), [_past(n) for n in wrong])
    return question, choices, answer


def _says(kind: str) -> re.Pattern[str]:
    """The captions that say `counted_action(kind)`: its template with any object ("the knife" too) in the slot,
    so "put something in the sink" counts the knife and the colander as well as the plates."""
    parts = _SLOT.split(w._TEMPLATE_OF[kind].text)
    return re.compile("#C C " + "(?:the |a )?.+".join(re.escape(p) for p in parts))


def _count(script: w.VideoScript, rng: np.random.Generator) -> tuple[str, tuple[str, ...], int] | None:
    # actions with at most one object slot: "put something in something" says too little to count
    kinds = {
        counted_action(a.kind): a.kind for a in script.actions if len(_SLOT.findall(w._TEMPLATE_OF[a.kind].text)) <= 1
    }
    if not kinds:
        return None
    counts = {text: sum(1 for a in script.actions if _says(kind).fullmatch(a.caption)) for text, kind in kinds.items()}
    # prefer actions done more than once: "once" is the answer a guess favours
    pool = sorted(k for k, n in counts.items() if n >= 2) or sorted(counts)
    action = pool[int(rng.integers(len(pool)))]
    n = counts[action]
    low = max(1, n - int(rng.integers(N_CHOICES)))  # n sits anywhere in five consecutive counts from >= 1
    numbers = list(range(low, low + N_CHOICES))
    choices = tuple(times(k) for k in numbers)
    return f"How many times did C {action}?", choices, numbers.index(n)


_MAKERS = {
    "order": _order,
    "objects": _objects,
    "after": lambda s, r: _neighbour(s, r, +1),
    "before": lambda s, r: _neighbour(s, r, -1),
    "count": _count,
}


def make_questions(script: w.VideoScript, *, seed: int = 0, kinds: Sequence[str] = KINDS) -> list[Question]:
    """One question of each of `kinds` that the video allows (a video with fewer than three askable activities has
    no `order` question), deterministic in (`seed`, `script.vid`)."""
    unknown = [k for k in kinds if k not in _MAKERS]
    if unknown:
        raise ValueError(f"unknown question kind(s) {unknown}; known: {', '.join(KINDS)}")
    out = []
    for kind in kinds:
        # one generator per (seed, video, kind): adding a kind never changes the others' questions
        made = _MAKERS[kind](script, _rng(seed, f"{script.vid}/{kind}"))
        if made is not None:
            question, choices, answer = made
            out.append(Question(f"{script.vid}-{kind}", script.vid, kind, question, choices, answer))
    return out


def truth_captions(script: w.VideoScript) -> CaptionResult:
    """The script's ground truth as a `captions.json` result (clip captions, segment descriptions, summary): what a
    perfect captioner would write, the upper bound of question answering from captions."""
    from videorecap.results import Caption, CaptionResult, VideoMeta

    return CaptionResult(
        VideoMeta(script.vid, f"{script.vid}.mp4", script.duration),
        clips=[Caption(c.start, c.end, c.caption) for c in script.clips],
        segments=[Caption(s.start, s.end, s.description) for s in script.segments],
        summary=Caption(0.0, script.duration, script.summary),
        model={"source": "ground truth (videorecap.synth)"},
        windows={"clip": script.clip_seconds, "segment": script.segment_seconds},
    )


# ---- a dataset's questions -------------------------------------------------------------------------------------------
def dataset_scripts(data_dir: str | os.PathLike[str], split: str) -> list[w.VideoScript]:
    """The scripts of split `split` of a `synth make` dataset, drawn again from its world.json (seed, minutes,
    windows): the same seed gives the same scripts, which are checked against the split's clip captions."""
    from videorecap.data import hcap
    from videorecap.synth.make import video_homes, video_id, video_seed

    data = Path(data_dir)
    try:
        import json

        world = json.loads((data / "world.json").read_text(encoding="utf-8"))
        seed, minutes = int(world["seed"]), float(world["minutes"])
        clip_s, seg_s = float(world["windows"]["clip_seconds"]), float(world["windows"]["segment_seconds"])
        vids = list(world["splits"][split])
        homes = world.get("homes", 1)  # absent: one home a video
        video_homes(homes, 0)
    except FileNotFoundError:
        raise DataError(f"{data}: no world.json; give a folder written by `videorecap synth make`") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DataError(f"{data / 'world.json'}: unreadable or without split {split!r} ({e})") from None
    if world.get("version") != w.GENERATOR_VERSION:
        raise DataError(
            f"{data / 'world.json'}: made by generator version {world.get('version')}, this is "
            f"{w.GENERATOR_VERSION}; make the dataset again"
        )
    scripts = [
        w.make_script(
            video_seed(seed, split, k),
            minutes,
            clip_seconds=clip_s,
            segment_seconds=seg_s,
            vid=video_id(split, k),
            homes=video_homes(homes, k),
        )
        for k in range(len(vids))
    ]
    clips = data / f"clips_{split}.pkl"
    if clips.is_file():
        rows = [(r.vid, r.start, r.end, r.caption) for r in hcap.load_clips(clips)]
        if rows != [tuple(r) for s in scripts for r in s.clip_rows()]:
            raise DataError(f"{clips}: the clip captions differ from what world.json's seed draws; was it edited?")
    return scripts


def write_questions(
    data_dir: str | os.PathLike[str], *, splits: Sequence[str] | None = None, seed: int = 0
) -> dict[str, tuple[Path, Path, int]]:
    """Write `questions_{split}.json` (EgoSchema's format plus `video` and `kind`) and `answers_{split}.json`
    (`{q_uid: index}`, as EgoSchema's subset_answers.json) beside the data; returns split -> (questions, answers,
    count)."""
    import json

    data = Path(data_dir)
    try:
        known = list(json.loads((data / "world.json").read_text(encoding="utf-8"))["splits"])
    except FileNotFoundError:
        raise DataError(f"{data}: no world.json; give a folder written by `videorecap synth make`") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DataError(f"{data / 'world.json'}: unreadable ({e})") from None
    out = {}
    for split in splits or known:
        if split not in known:
            raise DataError(f"{data}: no split {split!r} (it has {', '.join(known)})")
        qs = [q for s in dataset_scripts(data, split) for q in make_questions(s, seed=seed)]
        qpath, apath = data / f"questions_{split}.json", data / f"answers_{split}.json"
        write_json(qpath, [q.to_egoschema() for q in qs])
        write_json(apath, {q.q_uid: q.answer for q in qs})
        logger.info("wrote %d questions to %s", len(qs), qpath)
        out[split] = (qpath, apath, len(qs))
    return out
