"""The synthetic kitchen: actions, activities and the three levels of ground-truth text.

A video is a sequence of *activities* ("C makes tea", "C washes the dishes"); an activity is a script of
*actions* ("#C C fills the kettle with water") with variation in order, objects and durations. Every action lasts
more than one clip window and at most two, so every action is the caption of at least one clip window.

The higher levels are built from the lower ones the way Ego4D-HCap's are:

- a clip caption is the action that covers most of its window;
- a segment description is a function of the clip captions of its window only: which activities they belong to
  (every caption template belongs to one activity), whether the window holds an activity's opening or closing
  action ("C finishes making tea and starts washing the red plate"), and the key objects its captions name;
- the video summary is a function of the segment descriptions: the activities in order, in the past tense.

`make_script` draws one video's timeline from a seed; rendering it is `videorecap.synth.render`'s job, and every
drawing instruction lives on the `Action` (what is moved, where to, what changes), so a script fully determines
its video.
"""

from __future__ import annotations

import functools
import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

GENERATOR_VERSION = "2.0"  # 2.0: 24 activities in 3 homes, 302 words (1.0: 10 activities, 133 words)

# Times are multiples of this (exact in binary floating point), so ground truth pickles are byte-stable.
TIME_QUANTUM = 0.125

# Flat, saturated colours that survive H.264 4:2:0 at 64 px (tests/synth checks this after a real encode).
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "blue": (30, 70, 230),
    "green": (30, 170, 50),
    "yellow": (245, 215, 20),
    "purple": (140, 40, 190),
    "orange": (250, 130, 10),
    "pink": (250, 120, 190),
    "white": (245, 245, 245),
}
VEGETABLES = (
    "tomato", "cucumber", "carrot", "onion", "pepper", "lettuce", "potato", "mushroom", "broccoli", "garlic", "spinach",
    "celery", "radish",
)  # fmt: skip
GROCERIES = (
    "cheese", "butter", "yogurt", "juice", "sausages", "apples", "lemons", "grapes", "bananas", "fish", "rice", "beans",
    "chocolate",
)  # fmt: skip
DISHES_TO_WASH = ("plate", "bowl", "glass", "cup")
DISHES_TO_SET = ("plate", "bowl", "glass")
SPREADS = ("jam", "honey", "marmalade")
CAT_FOODS = ("tuna", "salmon", "chicken", "beef", "rabbit", "duck")
FILLINGS = ("ham", "cheese", "chicken", "salami", "turkey")
FRUITS = ("oranges", "lemons", "limes", "grapefruits")
FLOWERS = ("roses", "tulips", "daisies", "lilies", "sunflowers", "orchids", "irises")
CEREALS = ("cornflakes", "muesli", "granola", "oats")
CLOTHES = ("shirt", "towel", "jumper", "socks")
SWEEP_PLACES = ("fridge", "stove", "sink", "table", "door", "bin")
MOP_PLACES = ("fridge", "stove", "sink", "table", "door", "cupboard", "oven", "washing machine")
SMOOTHIE_FRUITS = ("bananas", "strawberries", "blueberries", "mangoes", "peaches", "kiwis", "raspberries")
IRONED_CLOTHES = ("shirt", "trousers", "dress", "skirt", "blouse")
# kinds whose colour is part of their name ("red saucepan"); the others are named by their kind alone
COLOURED_KINDS = (
    "cup", "mug", "plate", "bowl", "glass", "pan", "pot", "cloth", "trash bag", "saucepan", "dish", "vase",
    *CLOTHES, "trousers", "dress", "skirt", "blouse",
)  # fmt: skip


# ---- data ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Thing:
    """An object that appears when its activity starts and disappears when it ends."""

    id: str  # unique within the activity, e.g. "plate:red"
    kind: str  # drawing shape: cup, mug, plate, bowl, glass, pan, tomato, ...
    colour: tuple[int, int, int]
    place: str  # where it appears (see render.PLACES)


@dataclass(frozen=True)
class Action:
    """One action of the timeline, with its caption and the instructions to draw it."""

    start: float
    end: float
    activity: int  # index into VideoScript.activities
    kind: str  # caption template key, e.g. "tea.pour"; each belongs to exactly one activity
    caption: str  # Ego4D narration style: "#C C pours hot water into the blue cup"
    role: str  # "open" (an activity's first action), "close" (its last) or "body"
    mentions: tuple[str, ...] = ()  # key-object phrases the caption names, e.g. ("blue cup",)
    # drawing: the hand goes to `at` (an object id or a place), then moves `obj` to `to` (a place, "hand", or
    # "into:<object id>") or, with `work`, wiggles there; `changes` (object or fixture id, attribute, value) take
    # effect half-way through.
    obj: str | None = None
    at: str | None = None
    to: str | None = None
    work: bool = False
    changes: tuple[tuple[str, str, Any], ...] = ()


@dataclass(frozen=True)
class Activity:
    name: str  # key of ACTIVITY_TYPES
    start: float
    end: float
    things: tuple[Thing, ...]
    complete: bool  # False when the video ends before its closing action


@dataclass(frozen=True)
class Clip:
    start: float
    end: float
    caption: str
    action: int  # index into VideoScript.actions of the action covering most of the window


@dataclass(frozen=True)
class Segment:
    sid: str
    start: float
    end: float
    description: str
    clips: tuple[int, ...]  # indices into VideoScript.clips


@dataclass
class VideoScript:
    """One video's timeline and its ground truth at the three levels."""

    vid: str
    duration: float
    clip_seconds: float
    segment_seconds: float
    activities: list[Activity]
    actions: list[Action]
    clips: list[Clip] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    summary: str = ""
    home: int = 0  # index into HOMES: which kitchen (floor colour) and which household's activities
    # the homes the video visits, one after the other: (start time, home) of each part; () or one part: `home` only
    visits: tuple[tuple[float, int], ...] = ()

    def home_at(self, t: float) -> int:
        """The home the video is in at time `t` (seconds)."""
        home = self.home
        for start, h in self.visits:
            if start <= t:
                home = h
        return home

    # ---- Ego4D-HCap rows (reference §6.1) ----
    def clip_rows(self) -> list[tuple[str, float, float, str]]:
        """`(vid, start_sec, end_sec, caption)` for every clip window."""
        return [(self.vid, c.start, c.end, c.caption) for c in self.clips]

    def segment_rows(self) -> list[dict[str, Any]]:
        """Segment dicts with `captions_pred` filled with the ground-truth clip captions of the window."""
        rows = []
        for s in self.segments:
            caps = [self.clips[i] for i in s.clips]
            rows.append(
                {
                    "vid": self.vid,
                    "sid": s.sid,
                    "start_sec": s.start,
                    "end_sec": s.end,
                    "segment_description": s.description,
                    "captions_pred": [[self.vid, c.start, c.end, c.caption] for c in caps],
                    "captions_gt": [{"narration_text": c.caption} for c in caps],
                }
            )
        return rows

    def video_row(self) -> dict[str, Any]:
        descs = [s.description for s in self.segments]
        return {
            "vid": self.vid,
            "start_sec": 0.0,
            "end_sec": self.duration,
            "segment_descriptions": descs,
            "segment_descriptions_pred": list(descs),
            "video_summary": self.summary,
        }


# ---- activity types: their phrases at the segment and video levels ------------------------------------------------
def _and(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _the(mentions: Sequence[str]) -> str:
    return _and([f"the {m}" for m in mentions])


@dataclass(frozen=True)
class ActivityType:
    """How an activity is named. `present`, `gerund`, `past` take `{o}`: the object text of `objects(mentions)`,
    or `default` when the window's captions name no key object."""

    present: str
    gerund: str
    past: str
    objects: Callable[[Sequence[str]], str]
    default: str = ""
    summary_objects: bool = True  # False: the summary uses `default` (lists of objects make it too long)

    def phrase(self, form: str, mentions: Sequence[str]) -> str:
        o = self.objects(mentions) if mentions else self.default
        if form == "full":
            return self.present.format(o=o)
        if form == "past":
            return self.past.format(o=o)
        prefix = {"start": "starts", "finish": "finishes", "continue": "continues", "started": "started"}[form]
        return f"{prefix} {self.gerund.format(o=o)}"


def _salad_objects(m: Sequence[str]) -> str:
    veg = [x for x in m if not x.endswith(" bowl")]
    bowl = [x for x in m if x.endswith(" bowl")]
    return (f" with {_the(veg)}" if veg else "") + (f" in the {bowl[0]}" if bowl else "")


def _fry_objects(m: Sequence[str]) -> str:
    pan = [x for x in m if x.endswith(" pan")]
    plate = [x for x in m if x.endswith(" plate")]
    return (f" in the {pan[0]}" if pan else "") + (f" for the {plate[0]}" if plate else "")


def _pot_objects(m: Sequence[str]) -> str:
    return f" in {_the(m)}"


def _split_objects(*suffixes: str, first: str, second: str) -> Callable[[Sequence[str]], str]:
    """Object text for mentions of two sorts: those ending in one of `suffixes` (a container, " plate") go after
    `second` (" on"), the others after `first` (" with"): ' with the jam on the red plate'."""

    def objects(m: Sequence[str]) -> str:
        cont = [x for x in m if x.endswith(suffixes)]
        rest = [x for x in m if not x.endswith(suffixes)]
        return (f"{first} {_the(rest)}" if rest else "") + (f"{second} {_the(cont)}" if cont else "")

    return objects


ACTIVITY_TYPES: dict[str, ActivityType] = {
    "make_tea": ActivityType("makes tea{o}", "making tea{o}", "made tea{o}", lambda m: f" in the {m[0]}"),
    "make_coffee": ActivityType("makes coffee{o}", "making coffee{o}", "made coffee{o}", lambda m: f" in the {m[0]}"),
    "wash_dishes": ActivityType("washes {o}", "washing {o}", "washed {o}", _the, "the dishes", False),
    "make_salad": ActivityType("makes a salad{o}", "making a salad{o}", "made a salad", _salad_objects, "", False),
    "fry_eggs": ActivityType("fries eggs{o}", "frying eggs{o}", "fried eggs{o}", _fry_objects),
    "take_out_trash": ActivityType("takes out {o}", "taking out {o}", "took out {o}", _the, "the trash"),
    "put_away_groceries": ActivityType(
        "puts away {o}", "putting away {o}", "put away {o}", _the, "the groceries", False
    ),
    "water_plants": ActivityType("waters the plants{o}", "watering the plants{o}", "watered the plants", _pot_objects),
    "wipe_table": ActivityType(
        "wipes the table{o}", "wiping the table{o}", "wiped the table{o}", lambda m: f" with the {m[0]}"
    ),
    "set_table": ActivityType(
        "sets the table{o}", "setting the table{o}", "set the table", lambda m: f" with {_the(m)}", "", False
    ),
    "bake_cake": ActivityType(
        "bakes a cake{o}", "baking a cake{o}", "baked a cake{o}", lambda m: f" using the {m[0]}"
    ),
    "make_toast": ActivityType(
        "makes toast{o}", "making toast{o}", "made toast{o}",
        _split_objects(" plate", first=" with", second=" on"), "", False,
    ),
    "cook_pasta": ActivityType(
        "cooks pasta{o}", "cooking pasta{o}", "cooked pasta{o}",
        _split_objects(" plate", first=" in", second=" for"),
    ),
    "feed_cat": ActivityType(
        "feeds the cat{o}", "feeding the cat{o}", "fed the cat{o}",
        _split_objects(" dish", first=" with", second=" in"), "", False,
    ),
    "do_laundry": ActivityType(
        "does the laundry{o}", "doing the laundry{o}", "did the laundry", lambda m: f" with {_the(m)}", "", False
    ),
    "sweep_floor": ActivityType(
        "sweeps the floor{o}", "sweeping the floor{o}", "swept the floor{o}", lambda m: f" near {_the(m)}"
    ),
    "make_sandwich": ActivityType(
        "makes a sandwich{o}", "making a sandwich{o}", "made a sandwich{o}",
        _split_objects(" plate", first=" with", second=" on"), "", False,
    ),
    "make_juice": ActivityType(
        "squeezes juice{o}", "squeezing juice{o}", "squeezed juice{o}",
        _split_objects(" glass", first=" from", second=" into"),
    ),
    "arrange_flowers": ActivityType(
        "arranges {o}", "arranging {o}", "arranged {o}",
        lambda m: (_the([x for x in m if not x.endswith(" vase")]) or "the flowers")
        + "".join(f" in the {x}" for x in m if x.endswith(" vase")),
        "the flowers",
    ),
    "unload_dishwasher": ActivityType(
        "unloads {o}", "unloading {o}", "unloaded {o}", _the, "the dishwasher", False
    ),
    "have_breakfast": ActivityType(
        "has breakfast{o}", "having breakfast{o}", "had breakfast{o}",
        _split_objects(" bowl", first=" with", second=" in"),
    ),
    "make_smoothie": ActivityType(
        "makes a smoothie{o}", "making a smoothie{o}", "made a smoothie{o}",
        _split_objects(" glass", first=" with", second=" in"), "", False,
    ),
    "mop_floor": ActivityType(
        "mops the floor{o}", "mopping the floor{o}", "mopped the floor{o}", lambda m: f" in front of {_the(m)}", "",
        False,
    ),
    "iron_clothes": ActivityType(
        "irons {o}", "ironing {o}", "ironed {o}", _the, "the clothes", False
    ),
}  # fmt: skip


# ---- caption templates --------------------------------------------------------------------------------------------
# One table drives both directions: the activity scripts below write a caption by filling its template with the
# step's mentions (`caption_text`), and `parse_caption` reads a caption back with the regex the same template
# compiles to (`CaptionTemplate.pattern`), so the parser cannot drift from what the generator writes.
_COL = "|".join(COLOURS)
_OBJ = rf"(?:{_COL}) (?:cup|mug|plate|bowl|glass|pan|pot|cloth|trash bag)"
_VEG = "|".join(VEGETABLES)
_GRO = "|".join(GROCERIES)


def _alt(words: Sequence[str]) -> str:
    return "(?:" + "|".join(words) + ")"


def _c(*kinds: str) -> str:
    """A coloured thing of one of `kinds`: "red saucepan"."""
    return rf"(?:{_COL}) {_alt(kinds)}"


@dataclass(frozen=True)
class CaptionTemplate:
    """One action's caption: `text` (after "#C C ") with slots `{m1}`, `{m2}` for the key objects it names.

    `slots` gives each slot the regex of what the parser accepts there (at least every value a script writes; some
    accept any coloured object). The mentions fill the slots in caption order.
    """

    kind: str  # e.g. "tea.pour"; the part before the dot names the activity (ACTIVITY_OF_KIND_PREFIX)
    role: str  # "open", "body" or "close": the action's place in its activity, as the parser reports it
    text: str
    slots: dict[str, str] = field(default_factory=dict)

    def fill(self, mentions: Sequence[str]) -> str:
        return self.text.format(**{f"m{i + 1}": m for i, m in enumerate(mentions)})

    def pattern(self) -> re.Pattern[str]:
        parts = re.split(r"(\{m\d\})", self.text)
        rx = "".join(f"(?P<{p[1:-1]}>{self.slots[p[1:-1]]})" if p.startswith("{m") else re.escape(p) for p in parts)
        return re.compile(r"#C C " + rx)


CAPTION_TEMPLATES: tuple[CaptionTemplate, ...] = (
    CaptionTemplate("tea.fill_kettle", "open", "fills the kettle with water"),
    CaptionTemplate("tea.kettle_stove", "body", "puts the kettle on the stove"),
    CaptionTemplate("tea.stove_on", "body", "turns on the stove"),
    CaptionTemplate("tea.take_cup", "body", "takes the {m1} from the rack", {"m1": _c("cup")}),
    CaptionTemplate("tea.bag", "body", "puts a tea bag in the {m1}", {"m1": _OBJ}),
    CaptionTemplate("tea.pour", "body", "pours hot water into the {m1}", {"m1": _OBJ}),
    CaptionTemplate("tea.stove_off", "body", "turns off the stove"),
    CaptionTemplate("tea.carry", "close", "carries the {m1} to the table", {"m1": _c("cup")}),
    CaptionTemplate("coffee.on", "open", "switches on the coffee machine"),
    CaptionTemplate("coffee.take_mug", "body", "takes the {m1} from the rack", {"m1": _c("mug")}),
    CaptionTemplate("coffee.mug_under", "body", "puts the {m1} under the coffee machine", {"m1": _OBJ}),
    CaptionTemplate("coffee.press", "body", "presses the button on the coffee machine"),
    CaptionTemplate("coffee.take_milk", "body", "takes the milk from the fridge"),
    CaptionTemplate("coffee.pour_milk", "body", "pours milk into the {m1}", {"m1": _OBJ}),
    CaptionTemplate("coffee.milk_back", "body", "puts the milk back in the fridge"),
    CaptionTemplate("coffee.carry", "close", "carries the {m1} to the table", {"m1": _c("mug")}),
    CaptionTemplate("wash.tap_on", "open", "turns on the tap"),
    CaptionTemplate("wash.to_sink", "body", "puts the {m1} in the sink", {"m1": _c("plate", "bowl", "glass", "cup")}),
    CaptionTemplate("wash.scrub", "body", "scrubs the {m1} with the sponge", {"m1": _OBJ}),
    CaptionTemplate("wash.to_rack", "body", "puts the {m1} on the rack", {"m1": _c("plate", "bowl", "glass", "cup")}),
    CaptionTemplate("wash.tap_off", "close", "turns off the tap"),
    CaptionTemplate("table.open", "open", "opens the cupboard"),
    CaptionTemplate("table.take", "body", "takes the {m1} from the cupboard", {"m1": _OBJ}),
    CaptionTemplate("table.place", "body", "places the {m1} on the table", {"m1": _OBJ}),
    CaptionTemplate("table.close", "close", "closes the cupboard"),
    CaptionTemplate("salad.board", "open", "puts the cutting board on the counter"),
    CaptionTemplate("salad.take_bowl", "body", "takes the {m1} from the rack", {"m1": _c("bowl")}),
    CaptionTemplate("salad.take", "body", "takes the {m1} from the fridge", {"m1": _VEG}),
    CaptionTemplate("salad.cut", "body", "cuts the {m1} on the cutting board", {"m1": _VEG}),
    CaptionTemplate("salad.to_bowl", "body", "puts the {m1} in the {m2}", {"m1": _VEG, "m2": _OBJ}),
    CaptionTemplate("salad.mix", "close", "mixes the salad in the {m1}", {"m1": _OBJ}),
    CaptionTemplate("fry.pan", "open", "puts the {m1} on the stove", {"m1": _c("pan")}),
    CaptionTemplate("fry.burner", "body", "lights the burner under the {m1}", {"m1": _OBJ}),
    CaptionTemplate("fry.crack", "body", "cracks an egg into the {m1}", {"m1": _OBJ}),
    CaptionTemplate("fry.stir", "body", "stirs the eggs with the spatula"),
    CaptionTemplate("fry.take_plate", "body", "takes the {m1} from the rack", {"m1": _c("plate")}),
    CaptionTemplate("fry.serve", "body", "slides the eggs onto the {m1}", {"m1": _OBJ}),
    CaptionTemplate("fry.pan_sink", "close", "puts the {m1} in the sink", {"m1": _c("pan")}),
    CaptionTemplate("trash.tie", "open", "ties the {m1}", {"m1": _OBJ}),
    CaptionTemplate("trash.lift", "body", "lifts the {m1} out of the bin", {"m1": _OBJ}),
    CaptionTemplate("trash.carry", "body", "carries the {m1} to the door", {"m1": _OBJ}),
    CaptionTemplate("trash.wash_hands", "body", "washes the hands in the sink"),
    CaptionTemplate("trash.new_bag", "close", "puts a new bag in the bin"),
    CaptionTemplate("groceries.bag", "open", "puts the shopping bag on the counter"),
    CaptionTemplate("groceries.take", "body", "takes the {m1} out of the shopping bag", {"m1": _GRO}),
    CaptionTemplate("groceries.put", "body", "puts the {m1} in the fridge", {"m1": _GRO}),
    CaptionTemplate("groceries.open", "body", "opens the fridge"),
    CaptionTemplate("groceries.close", "close", "closes the fridge"),
    CaptionTemplate("plants.fill", "open", "fills the watering can at the sink"),
    CaptionTemplate("plants.water", "body", "waters the plant in the {m1}", {"m1": _OBJ}),
    CaptionTemplate("plants.put_can", "close", "puts the watering can on the counter"),
    CaptionTemplate("wipe.wet", "open", "wets the {m1} at the sink", {"m1": _OBJ}),
    CaptionTemplate("wipe.wipe", "body", "wipes the table with the {m1}", {"m1": _OBJ}),
    CaptionTemplate("wipe.hang", "close", "hangs the {m1} on the rack", {"m1": _OBJ}),
    CaptionTemplate("bake.flour", "open", "takes the flour from the cupboard"),
    CaptionTemplate("bake.bowl", "body", "puts the {m1} on the counter", {"m1": _c("bowl")}),
    CaptionTemplate("bake.pour_flour", "body", "pours the flour into the {m1}", {"m1": _c("bowl")}),
    CaptionTemplate("bake.sugar", "body", "adds sugar to the {m1}", {"m1": _c("bowl")}),
    CaptionTemplate("bake.egg", "body", "adds an egg to the {m1}", {"m1": _c("bowl")}),
    CaptionTemplate("bake.whisk", "body", "whisks the batter in the {m1}", {"m1": _c("bowl")}),
    CaptionTemplate("bake.oven_on", "body", "turns on the oven"),
    CaptionTemplate("bake.tin", "body", "pours the batter into the cake tin"),
    CaptionTemplate("bake.in_oven", "body", "puts the cake tin in the oven"),
    CaptionTemplate("bake.out", "close", "takes the cake out of the oven"),
    CaptionTemplate("toast.bread", "open", "takes the bread from the cupboard"),
    CaptionTemplate("toast.slices", "body", "puts two slices of bread in the toaster"),
    CaptionTemplate("toast.lever", "body", "pushes down the lever of the toaster"),
    CaptionTemplate("toast.plate", "body", "puts the {m1} next to the toaster", {"m1": _c("plate")}),
    CaptionTemplate("toast.out", "body", "takes the toast out of the toaster"),
    CaptionTemplate("toast.spread", "body", "spreads the {m1} on the toast", {"m1": _alt(SPREADS)}),
    CaptionTemplate("toast.knife", "close", "puts the knife in the sink"),
    CaptionTemplate("pasta.fill", "open", "fills the {m1} with water", {"m1": _c("saucepan")}),
    CaptionTemplate("pasta.stove", "body", "puts the {m1} on the stove", {"m1": _c("saucepan")}),
    CaptionTemplate("pasta.heat", "body", "turns up the heat under the {m1}", {"m1": _c("saucepan")}),
    CaptionTemplate("pasta.salt", "body", "adds salt to the water"),
    CaptionTemplate("pasta.pour", "body", "pours the pasta into the {m1}", {"m1": _c("saucepan")}),
    CaptionTemplate("pasta.stir", "body", "stirs the pasta with the wooden spoon"),
    CaptionTemplate("pasta.colander", "body", "puts the colander in the sink"),
    CaptionTemplate("pasta.drain", "body", "drains the pasta in the colander"),
    CaptionTemplate("pasta.serve", "close", "serves the pasta on the {m1}", {"m1": _c("plate")}),
    CaptionTemplate("cat.tin", "open", "takes a tin of {m1} from the shelf", {"m1": _alt(CAT_FOODS)}),
    CaptionTemplate("cat.open", "body", "opens the tin of {m1}", {"m1": _alt(CAT_FOODS)}),
    CaptionTemplate("cat.dish", "body", "puts the {m1} on the mat", {"m1": _c("dish")}),
    CaptionTemplate("cat.spoon", "body", "spoons the {m1} into the {m2}", {"m1": _alt(CAT_FOODS), "m2": _c("dish")}),
    CaptionTemplate("cat.stroke", "body", "strokes the cat"),
    CaptionTemplate("cat.bin", "close", "throws the empty tin in the bin"),
    CaptionTemplate("laundry.open", "open", "opens the washing machine"),
    CaptionTemplate("laundry.take", "body", "takes the {m1} from the laundry basket", {"m1": _c(*CLOTHES)}),
    CaptionTemplate("laundry.put", "body", "puts the {m1} in the washing machine", {"m1": _c(*CLOTHES)}),
    CaptionTemplate("laundry.detergent", "body", "pours detergent into the drawer"),
    CaptionTemplate("laundry.close", "body", "closes the washing machine"),
    CaptionTemplate("laundry.start", "close", "presses the start button on the washing machine"),
    CaptionTemplate("sweep.broom", "open", "takes the broom from the cupboard"),
    CaptionTemplate("sweep.sweep", "body", "sweeps the floor near the {m1}", {"m1": _alt(SWEEP_PLACES)}),
    CaptionTemplate("sweep.dustpan", "body", "sweeps the dirt into the dustpan"),
    CaptionTemplate("sweep.empty", "body", "empties the dustpan into the bin"),
    CaptionTemplate("sweep.back", "close", "puts the broom back in the cupboard"),
    CaptionTemplate("sandwich.bread", "open", "puts two slices of bread on the {m1}", {"m1": _c("plate")}),
    CaptionTemplate("sandwich.butter", "body", "spreads butter on the bread"),
    CaptionTemplate("sandwich.take", "body", "takes the {m1} out of the fridge", {"m1": _alt(FILLINGS)}),
    CaptionTemplate("sandwich.put", "body", "puts the {m1} on the bread", {"m1": _alt(FILLINGS)}),
    CaptionTemplate("sandwich.cut", "body", "cuts the sandwich in half"),
    CaptionTemplate("sandwich.carry", "close", "carries the {m1} to the table", {"m1": _c("plate")}),
    CaptionTemplate("juice.juicer", "open", "takes the juicer from the cupboard"),
    CaptionTemplate("juice.cut", "body", "cuts the {m1} in half", {"m1": _alt(FRUITS)}),
    CaptionTemplate("juice.squeeze", "body", "squeezes the {m1} on the juicer", {"m1": _alt(FRUITS)}),
    CaptionTemplate("juice.glass", "body", "puts the {m1} next to the juicer", {"m1": _c("glass")}),
    CaptionTemplate("juice.pour", "body", "pours the juice into the {m1}", {"m1": _c("glass")}),
    CaptionTemplate("juice.rinse", "close", "rinses the juicer in the sink"),
    CaptionTemplate("flowers.vase", "open", "takes the {m1} from the shelf", {"m1": _c("vase")}),
    CaptionTemplate("flowers.fill", "body", "fills the {m1} with water", {"m1": _c("vase")}),
    CaptionTemplate("flowers.cut", "body", "cuts the stems of the {m1}", {"m1": _alt(FLOWERS)}),
    CaptionTemplate("flowers.put", "body", "puts the {m1} in the {m2}", {"m1": _alt(FLOWERS), "m2": _c("vase")}),
    CaptionTemplate("flowers.place", "close", "places the {m1} on the table", {"m1": _c("vase")}),
    CaptionTemplate("dishwasher.open", "open", "opens the dishwasher"),
    CaptionTemplate("dishwasher.take", "body", "takes the {m1} out of the dishwasher", {"m1": _c(*DISHES_TO_WASH)}),
    CaptionTemplate("dishwasher.put", "body", "puts the {m1} in the cupboard", {"m1": _c(*DISHES_TO_WASH)}),
    CaptionTemplate("dishwasher.cutlery", "body", "puts the cutlery in the drawer"),
    CaptionTemplate("dishwasher.close", "close", "closes the dishwasher"),
    CaptionTemplate("breakfast.box", "open", "takes the box of {m1} from the shelf", {"m1": _alt(CEREALS)}),
    CaptionTemplate("breakfast.bowl", "body", "puts the {m1} on the table", {"m1": _c("bowl")}),
    CaptionTemplate("breakfast.pour", "body", "pours the {m1} into the {m2}", {"m1": _alt(CEREALS), "m2": _c("bowl")}),
    CaptionTemplate("breakfast.milk", "body", "pours milk over the {m1}", {"m1": _alt(CEREALS)}),
    CaptionTemplate("breakfast.eat", "body", "eats the {m1} with a spoon", {"m1": _alt(CEREALS)}),
    CaptionTemplate("breakfast.rinse", "close", "rinses the {m1} under the tap", {"m1": _c("bowl")}),
    CaptionTemplate("smoothie.blender", "open", "takes the blender from the cupboard"),
    CaptionTemplate("smoothie.fruit", "body", "puts the {m1} in the blender", {"m1": _alt(SMOOTHIE_FRUITS)}),
    CaptionTemplate("smoothie.yogurt", "body", "adds the yogurt to the blender"),
    CaptionTemplate("smoothie.blend", "body", "blends the smoothie for a minute"),
    CaptionTemplate("smoothie.pour", "body", "pours the smoothie into the {m1}", {"m1": _c("glass")}),
    CaptionTemplate("smoothie.wash", "close", "washes the blender in the sink"),
    CaptionTemplate("mop.fill", "open", "fills the bucket with soapy water"),
    CaptionTemplate("mop.dip", "body", "dips the mop in the bucket"),
    CaptionTemplate("mop.mop", "body", "mops the floor in front of the {m1}", {"m1": _alt(MOP_PLACES)}),
    CaptionTemplate("mop.wring", "body", "wrings the mop over the bucket"),
    CaptionTemplate("mop.empty", "body", "empties the bucket into the sink"),
    CaptionTemplate("mop.lean", "close", "leans the mop against the wall"),
    CaptionTemplate("iron.board", "open", "sets up the ironing board"),
    CaptionTemplate("iron.plug", "body", "plugs in the iron"),
    CaptionTemplate("iron.lay", "body", "lays the {m1} on the ironing board", {"m1": _c(*IRONED_CLOTHES)}),
    CaptionTemplate("iron.iron", "body", "irons the {m1}", {"m1": _c(*IRONED_CLOTHES)}),
    CaptionTemplate("iron.fold", "body", "folds the {m1}", {"m1": _c(*IRONED_CLOTHES)}),
    CaptionTemplate("iron.unplug", "close", "unplugs the iron"),
)
_TEMPLATE_OF: dict[str, CaptionTemplate] = {t.kind: t for t in CAPTION_TEMPLATES}


def caption_text(kind: str, mentions: Sequence[str] = ()) -> str:
    """The caption (after "#C C ") of an action of `kind` naming `mentions`, from its template."""
    return _TEMPLATE_OF[kind].fill(mentions)


# ---- activity scripts ---------------------------------------------------------------------------------------------
# A script step before timing: (kind, mentions, drawing kwargs); its caption is the kind's template filled with the
# mentions (`caption_text`).
Step = tuple[str, tuple[str, ...], dict[str, Any]]


def _colour(rng: np.random.Generator, exclude: Sequence[str] = ()) -> str:
    names = [c for c in COLOURS if c not in exclude]
    return names[int(rng.integers(len(names)))]


def _pick(rng: np.random.Generator, seq: Sequence[str], k: int) -> list[str]:
    idx = rng.choice(len(seq), size=k, replace=False)
    return [seq[int(i)] for i in idx]


def _interleave(rng: np.random.Generator, *chains: list[Step]) -> list[Step]:
    """Merge ordered chains in a random interleaving that keeps each chain's own order."""
    chains_left = [list(c) for c in chains if c]
    out: list[Step] = []
    while chains_left:
        weights = np.array([len(c) for c in chains_left], dtype=float)
        i = int(rng.choice(len(chains_left), p=weights / weights.sum()))
        out.append(chains_left[i].pop(0))
        chains_left = [c for c in chains_left if c]
    return out


def _coloured(rng: np.random.Generator, kind: str, place: str) -> Thing:
    """A thing named by its colour: 'saucepan:red' is drawn as a saucepan and called 'red saucepan'."""
    c = _colour(rng)
    return Thing(f"{kind}:{c}", kind, COLOURS[c], place)


def _plain(kind: str, place: str) -> Thing:
    """A thing named by its kind alone (its colour is fixed by the renderer)."""
    return Thing(kind, kind, (0, 0, 0), place)


def _dish_things(rng: np.random.Generator, kinds: Sequence[str], k: int, place: str) -> list[Thing]:
    combos = [(d, c) for d in kinds for c in COLOURS]
    idx = rng.choice(len(combos), size=k, replace=False)
    return [Thing(f"{combos[i][0]}:{combos[i][1]}", combos[i][0], COLOURS[combos[i][1]], place) for i in idx]


def _name(t: Thing) -> str:
    """'plate:red' -> 'red plate'."""
    kind, colour = t.id.split(":")
    return f"{colour} {kind}"


def _make_tea(rng: np.random.Generator) -> tuple[list[Thing], list[Step]]:
    cup = _coloured(rng, "cup", "rack")
    n = _name(cup)
    kettle = [
        ("tea.kettle_stove", (), {"obj": "kettle", "to": "stove"}),
        ("tea.stove_on", (), {"at": "stove", "changes": (("stove", "on", True),)}),
    ]
    cupc = [
        ("tea.take_cup", (n,), {"obj": cup.id, "to": "counter"}),
        (
            "tea.bag",
            (n,),
            {"at": cup.id, "work": True, "changes": ((cup.id, "fill", "bag"),)},
        ),
    ]
    steps = [("tea.fill_kettle", (), {"obj": "kettle", "to": "sink", "work": True})]
    steps += _interleave(rng, kettle, cupc)
    steps.append(
        (
            "tea.pour",
            (n,),
            {"obj": "kettle", "to": "counter", "work": True, "changes": ((cup.id, "fill", "tea"),)},
        )
    )
    if rng.random() < 0.5:
        steps.append(("tea.stove_off", (), {"at": "stove", "changes": (("stove", "on", False),)}))
    steps.append(("tea.carry", (n,), {"obj": cup.id, "to": "table"}))
    return [cup], steps


def _make_coffee(rng: np.random.Generator) -> tuple[list[Thing], list[Step]]:
    mug = _coloured(rng, "mug", "rack")
    n = _name(mug)
    things = [mug]
    steps: list[Step] = [
        ("coffee.on", (), {"at": "machine", "changes": (("machine", "on", True),)}),
        ("coffee.take_mug", (n,), {"obj": mug.id, "to": "hand"}),
        ("coffee.mug_under", (n,), {"obj": mug.id, "to": "machine"}),
        (
            "coffee.press",
            (),
            {"at": "machine", "work": True, "changes": ((mug.id, "fill", "coffee"),)},
        ),
    ]
    if rng.random() < 0.5:
        milk = Thing("milk", "milk", (245, 245, 245), "fridge")
        things.append(milk)
        steps += [
            ("coffee.take_milk", (), {"obj": "milk", "to": "hand"}),
            (
                "coffee.pour_milk",
                (n,),
                {"at": mug.id, "work": True, "changes": ((mug.id, "fill", "latte"),)},
            ),
            ("coffee.milk_back", (), {"obj": "milk", "to": "fridge"}),
        ]
    steps.append(("coffee.carry", (n,), {"obj": mug.id, "to": "table"}))
    return things, steps


def _wash_dishes(rng: np.random.Generator) -> tuple[list[Thing], list[Step]]:
    dishes = _dish_things(rng, DISHES_TO_WASH, int(rng.integers(1, 4)), "table")
    to_sink, scrub, to_rack = [], [], []
    for d in dishes:
        n = _name(d)
        to_sink.append(("wash.to_sink", (n,), {"obj": d.id, "to": "sink"}))
        scrub.append(
            (
                "wash.scrub",
                (n,),
                {"at": d.id, "work": True, "changes": ((d.id, "clean", True),)},
            )
        )
        to_rack.append(("wash.to_rack", (n,), {"obj": d.id, "to": "rack"}))
    steps: list[Step] = [("wash.tap_on", (), {"at": "sink", "changes": (("sink", "water", True),)})]
    if rng.random() < 0.5:  # one dish at a time
        for a, b, c in zip(to_sink, scrub, to_rack, strict=True):
            steps += [a, b, c]
    else:  # all into the sink first
        steps += to_sink + [s for pair in zip(scrub, to_rack, strict=True) for s in pair]
    steps.append(("wash.tap_off", (), {"at": "sink", "changes": (("sink", "water", False),)}))
    return dishes, steps


def _set_table(rng: np.random.Generator) -> tuple[list[Thing], list[Step]]:
    items = _dish_things(rng, DISHES_TO_SET, int(rng.integers(2, 4)), "cupboard")
    take = [("table.take", (_name(t),), {"obj": t.id, "to": "hand"}) for t in items]
    place = [("table.place", (_name(t),), {"obj": t.id, "to": "table"}) for t in items]
    steps: list[Step] = [("table.open", (), {"at": "cupboard", "changes": (("cupboard", "open", True),)})]
    if rng.random() < 0.5:
        for a, b in zip(take, place, strict=True):
            steps += [a, b]
    else:
        steps += take + place
    steps.append(("table.close", (), {"at": "cupboard", "changes": (("cupboard", "open", False),)}))
    return items, steps


def _make_salad(rng: np.random.Generator) -> tuple[list[Thing], list[Step]]:
    bowl = _coloured(rng, "bowl", "rack")
    b = _name(bowl)
    vegs = [_plain(v, "fridge") for v in _pick(rng, VEGETABLES, int(rng.integers(2, 4)))]
    board = _plain("board", "cupboard")
    steps: list[Step] = [("salad.board", (), {"obj": "board", "to": "counter"})]
    chain_veg: list[Step] = []
    for v in vegs:
        chain_veg += [
            ("salad.take", (v.id,), {"obj": v.id, "to": "hand"}),
            (
                "salad.cut",
                (v.id,),
                {"obj": v.id, "to": "into:board", "work": True, "changes": ((v.id, "cut", True),)},
            ),
            (
                "salad.to_bowl",
                (v.id, b),
                {"obj": v.id, "to": f"into:{bowl.id}", "changes": ((bowl.id, "fill", v.id),)},
            ),
        ]
    # the bowl is fetched at any point before the first vegetable goes in
    first_in = next(i for i, s in enumerate(chain_veg) if s[0] == "salad.to_bowl")
    pos = int(rng.integers(0, first_in + 1))
    chain_veg.insert(pos, ("salad.take_bowl", (b,), {"obj": bowl.id, "to": "table"}))
    steps += chain_veg
    steps.append(("salad.mix", (b,), {"at": bowl.id, "work": True}))
    return [board, bowl, *vegs], steps


def _fry_eggs(rng: np.random.Generator) -> tuple[list[Thing], list[Step]]:
    pan = _coloured(rng, "pan", "cupboard")
    plate = _coloured(rng, "plate", "rack")
    p, q = _name(pan), _name(plate)
    steps: list[Step] = [
        ("fry.pan", (p,), {"obj": pan.id, "to": "stove"}),
        ("fry.burner", (p,), {"at": "stove", "changes": (("stove", "on", True),)}),
    ]
    for _ in range(int(rng.integers(1, 3))):
        steps.append(
            (
                "fry.crack",
                (p,),
                {"at": pan.id, "work": True, "changes": ((pan.id, "fill", "egg"),)},
            )
        )
    chain_a: list[Step] = []
    if rng.random() < 0.6:
        chain_a.append(("fry.stir", (), {"at": pan.id, "work": True}))
    chain_b: list[Step] = [("fry.take_plate", (q,), {"obj": plate.id, "to": "counter"})]
    steps += _interleave(rng, chain_a, chain_b)
    steps.append(
        (
            "fry.serve",
            (q,),
            {"at": pan.id, "changes": ((pan.id, "fill", None), (plate.id, "fill", "egg"), ("stove", "on", False))},
        )
    )
    steps.append(("fry.pan_sink", (p,), {"obj": pan.id, "to": "sink"}))
    return [pan, plate], steps


def _take_out_trash(rng: np.random.Generator) -> tuple[list[Thing], list[Step]]:
    bag = Thing("trash bag:" + (c := _colour(rng)), "trashbag", COLOURS[c], "bin")
    n = _name(bag)
    new = Thing("new bag", "newbag", (225, 225, 225), "door")
    steps: list[Step] = [
        ("trash.tie", (n,), {"at": bag.id, "work": True, "changes": ((bag.id, "tied", True),)}),
        ("trash.lift", (n,), {"obj": bag.id, "to": "hand"}),
        ("trash.carry", (n,), {"obj": bag.id, "to": "door"}),
    ]
    if rng.random() < 0.5:
        steps.append(("trash.wash_hands", (), {"at": "sink", "work": True}))
    steps.append(("trash.new_bag", (), {"obj": "new bag", "to": "bin"}))
    return [bag, new], steps


def _put_away_groceries(rng: np.random.Generator) -> tuple[list[Thing], list[Step]]:
    items = _pick(rng, GROCERIES, int(rng.integers(2, 4)))
    shop = Thing("shopping bag", "shopbag", (0, 0, 0), "door")
    things = [shop] + [_plain(i, "into:shopping bag") for i in items]
    steps: list[Step] = [("groceries.bag", (), {"obj": "shopping bag", "to": "counter"})]
    body: list[Step] = []
    for i in items:
        body += [
            ("groceries.take", (i,), {"obj": i, "to": "hand"}),
            ("groceries.put", (i,), {"obj": i, "to": "fridge"}),
        ]
    first_put = next(k for k, s in enumerate(body) if s[0] == "groceries.put")
    body.insert(
        int(rng.integers(0, first_put + 1)),
        ("groceries.open", (), {"at": "fridge", "changes": (("fridge", "open", True),)}),
    )
    steps += body
    steps.append(("groceries.close", (), {"at": "fridge", "changes": (("fridge", "open", False),)}))
    return things, steps


def _water_plants(rng: np.random.Generator) -> tuple[list[Thing], list[Step]]:
    colours = _pick(rng, list(COLOURS), int(rng.integers(1, 4)))
    pots = [Thing(f"pot:{c}", "pot", COLOURS[c], "plants") for c in colours]
    can = Thing("watering can", "can", (0, 0, 0), "counter")
    steps: list[Step] = [("plants.fill", (), {"obj": "watering can", "to": "sink", "work": True})]
    for pot in pots:
        n = _name(pot)
        steps.append(
            (
                "plants.water",
                (n,),
                {"obj": "watering can", "to": f"into:{pot.id}", "work": True, "changes": ((pot.id, "watered", True),)},
            )
        )
    steps.append(("plants.put_can", (), {"obj": "watering can", "to": "counter"}))
    return [can, *pots], steps


def _wipe_table(rng: np.random.Generator) -> tuple[list[Thing], list[Step]]:
    cloth = _coloured(rng, "cloth", "rack")
    n = _name(cloth)
    steps: list[Step] = [
        (
            "wipe.wet",
            (n,),
            {"obj": cloth.id, "to": "sink", "work": True, "changes": ((cloth.id, "wet", True),)},
        )
    ]
    for _ in range(int(rng.integers(1, 4))):
        steps.append(("wipe.wipe", (n,), {"obj": cloth.id, "to": "table", "work": True}))
    steps.append(("wipe.hang", (n,), {"obj": cloth.id, "to": "rack"}))
    return [cloth], steps


def _bake_cake(rng: np.random.Generator) -> tuple[list[Thing], list[Step]]:
    bowl = _coloured(rng, "bowl", "rack")
    b = _name(bowl)
    things = [_plain("flour", "cupboard"), bowl, _plain("tin", "cupboard")]
    mix: list[Step] = [
        ("bake.flour", (), {"obj": "flour", "to": "counter"}),
        ("bake.bowl", (b,), {"obj": bowl.id, "to": "counter"}),
        (
            "bake.pour_flour",
            (b,),
            {"obj": "flour", "to": f"into:{bowl.id}", "changes": ((bowl.id, "fill", "flour"),)},
        ),
    ]
    adds: list[Step] = [
        (
            "bake.sugar",
            (b,),
            {"at": bowl.id, "work": True, "changes": ((bowl.id, "fill", "sugar"),)},
        ),
        (
            "bake.egg",
            (b,),
            {"at": bowl.id, "work": True, "changes": ((bowl.id, "fill", "yolk"),)},
        ),
    ]
    if rng.random() < 0.5:
        adds.reverse()
    mix += adds
    mix.append(
        (
            "bake.whisk",
            (b,),
            {"at": bowl.id, "work": True, "changes": ((bowl.id, "fill", "batter"),)},
        )
    )
    oven: list[Step] = [("bake.oven_on", (), {"at": "oven", "changes": (("oven", "on", True),)})]
    steps = _interleave(rng, mix[1:], oven)
    steps = [mix[0], *steps]
    steps += [
        (
            "bake.tin",
            (),
            {"at": bowl.id, "work": True, "changes": ((bowl.id, "fill", None), ("tin", "fill", "batter"))},
        ),
        ("bake.in_oven", (), {"obj": "tin", "to": "oven"}),
        (
            "bake.out",
            (),
            {"obj": "tin", "to": "counter", "changes": (("tin", "fill", "cake"), ("oven", "on", False))},
        ),
    ]
    return things, steps


def _make_toast(rng: np.random.Generator) -> tuple[list[Thing], list[Step]]:
    plate = _coloured(rng, "plate", "rack")
    p = _name(plate)
    spread = SPREADS[int(rng.integers(len(SPREADS)))]
    things = [_plain("bread", "cupboard"), _plain("toaster", "counter"), plate, _plain(spread, "cupboard")]
    toaster: list[Step] = [
        ("toast.slices", (), {"obj": "bread", "to": "into:toaster"}),
        (
            "toast.lever",
            (),
            {"at": "toaster", "changes": (("toaster", "on", True),)},
        ),
    ]
    plating: list[Step] = [("toast.plate", (p,), {"obj": plate.id, "to": "counter"})]
    steps: list[Step] = [("toast.bread", (), {"obj": "bread", "to": "hand"})]
    steps += _interleave(rng, toaster, plating)
    steps += [
        (
            "toast.out",
            (),
            {"at": "toaster", "changes": (("toaster", "on", False), (plate.id, "fill", "toast"))},
        ),
        (
            "toast.spread",
            (spread,),
            {"obj": spread, "to": "counter", "work": True, "changes": ((plate.id, "fill", spread),)},
        ),
        ("toast.knife", (), {"at": "sink"}),
    ]
    return things, steps


def _cook_pasta(rng: np.random.Generator) -> tuple[list[Thing], list[Step]]:
    pan = _coloured(rng, "saucepan", "cupboard")
    plate = _coloured(rng, "plate", "table")
    s, p = _name(pan), _name(plate)
    things = [pan, plate, _plain("pasta", "cupboard"), _plain("colander", "rack"), _plain("spoon", "counter")]
    steps: list[Step] = [
        (
            "pasta.fill",
            (s,),
            {"obj": pan.id, "to": "sink", "work": True, "changes": ((pan.id, "fill", "water"),)},
        ),
        ("pasta.stove", (s,), {"obj": pan.id, "to": "stove"}),
        (
            "pasta.heat",
            (s,),
            {"at": "stove", "changes": (("stove", "on", True),)},
        ),
    ]
    salt: list[Step] = [("pasta.salt", (), {"at": pan.id, "work": True})]
    pour: list[Step] = [
        (
            "pasta.pour",
            (s,),
            {"obj": "pasta", "to": f"into:{pan.id}", "changes": ((pan.id, "fill", "pasta"),)},
        ),
        ("pasta.stir", (), {"obj": "spoon", "to": "stove", "work": True}),
    ]
    steps += _interleave(rng, salt if rng.random() < 0.7 else [], pour)
    steps += [
        ("pasta.colander", (), {"obj": "colander", "to": "sink"}),
        (
            "pasta.drain",
            (),
            {
                "obj": pan.id,
                "to": "sink",
                "work": True,
                "changes": ((pan.id, "fill", None), ("colander", "fill", "pasta"), ("stove", "on", False)),
            },
        ),
        (
            "pasta.serve",
            (p,),
            {"obj": "colander", "to": "table", "changes": (("colander", "fill", None), (plate.id, "fill", "pasta"))},
        ),
    ]
    return things, steps


def _feed_cat(rng: np.random.Generator) -> tuple[list[Thing], list[Step]]:
    food = CAT_FOODS[int(rng.integers(len(CAT_FOODS)))]
    dish = _coloured(rng, "dish", "shelf")
    d = _name(dish)
    things = [_plain("cat", "door"), Thing("tin of food", "foodtin", (0, 0, 0), "shelf"), dish]
    steps: list[Step] = [
        ("cat.tin", (food,), {"obj": "tin of food", "to": "counter"}),
        (
            "cat.open",
            (food,),
            {"at": "tin of food", "work": True, "changes": (("tin of food", "open", True),)},
        ),
        ("cat.dish", (d,), {"obj": dish.id, "to": "mat"}),
        (
            "cat.spoon",
            (food, d),
            {"at": dish.id, "work": True, "changes": ((dish.id, "fill", "catfood"), ("cat", "goto", "mat"))},
        ),
    ]
    if rng.random() < 0.5:
        steps.append(("cat.stroke", (), {"at": "cat", "work": True}))
    steps.append(("cat.bin", (), {"obj": "tin of food", "to": "bin"}))
    return things, steps


def _do_laundry(rng: np.random.Generator) -> tuple[list[Thing], list[Step]]:
    kinds = _pick(rng, CLOTHES, int(rng.integers(1, 4)))
    clothes = [_coloured(rng, k, "into:basket") for k in kinds]
    things = [_plain("basket", "mat"), *clothes, _plain("detergent", "shelf")]
    steps: list[Step] = [("laundry.open", (), {"at": "washer", "changes": (("washer", "open", True),)})]
    for c in clothes:
        n = _name(c)
        steps += [
            ("laundry.take", (n,), {"obj": c.id, "to": "hand"}),
            ("laundry.put", (n,), {"obj": c.id, "to": "washer"}),
        ]
    steps += [
        (
            "laundry.detergent",
            (),
            {"obj": "detergent", "to": "washer", "work": True},
        ),
        (
            "laundry.close",
            (),
            {"at": "washer", "changes": (("washer", "open", False),)},
        ),
        (
            "laundry.start",
            (),
            {"at": "washer", "changes": (("washer_on", "on", True),)},
        ),
    ]
    return things, steps


def _sweep_floor(rng: np.random.Generator) -> tuple[list[Thing], list[Step]]:
    places = _pick(rng, SWEEP_PLACES, int(rng.integers(1, 4)))
    things = [_plain("broom", "cupboard"), _plain("dustpan", "cupboard")]
    things += [Thing(f"dirt:{p}", "dirt", (0, 0, 0), f"near:{p}") for p in places]
    steps: list[Step] = [("sweep.broom", (), {"obj": "broom", "to": "hand"})]
    for p in places:
        steps.append(
            (
                "sweep.sweep",
                (p,),
                {"obj": "broom", "at": f"near:{p}", "work": True, "changes": ((f"dirt:{p}", "swept", True),)},
            )
        )
    steps += [
        ("sweep.dustpan", (), {"obj": "dustpan", "to": "hand", "work": True}),
        ("sweep.empty", (), {"obj": "dustpan", "to": "bin", "work": True}),
        ("sweep.back", (), {"obj": "broom", "to": "cupboard"}),
    ]
    return things, steps


def _make_sandwich(rng: np.random.Generator) -> tuple[list[Thing], list[Step]]:
    plate = _coloured(rng, "plate", "counter")
    p = _name(plate)
    fillings = _pick(rng, FILLINGS, int(rng.integers(1, 3)))
    things = [plate, _plain("bread", "cupboard"), *[_plain(f, "fridge") for f in fillings]]
    steps: list[Step] = [
        (
            "sandwich.bread",
            (p,),
            {"obj": "bread", "to": f"into:{plate.id}", "changes": ((plate.id, "fill", "bread"),)},
        )
    ]
    if rng.random() < 0.6:
        steps.append(
            (
                "sandwich.butter",
                (),
                {"at": plate.id, "work": True, "changes": ((plate.id, "fill", "butter"),)},
            )
        )
    for f in fillings:
        steps += [
            ("sandwich.take", (f,), {"obj": f, "to": "hand"}),
            (
                "sandwich.put",
                (f,),
                {"obj": f, "to": f"into:{plate.id}", "changes": ((plate.id, "fill", f),)},
            ),
        ]
    steps += [
        (
            "sandwich.cut",
            (),
            {"at": plate.id, "work": True, "changes": ((plate.id, "fill", "sandwich"),)},
        ),
        ("sandwich.carry", (p,), {"obj": plate.id, "to": "table"}),
    ]
    return things, steps


def _make_juice(rng: np.random.Generator) -> tuple[list[Thing], list[Step]]:
    glass = _coloured(rng, "glass", "rack")
    g = _name(glass)
    fruits = _pick(rng, FRUITS, int(rng.integers(1, 3)))
    things = [_plain("juicer", "cupboard"), glass, *[_plain(f, "table") for f in fruits]]
    steps: list[Step] = [("juice.juicer", (), {"obj": "juicer", "to": "counter"})]
    chain: list[Step] = []
    for f in fruits:
        chain += [
            (
                "juice.cut",
                (f,),
                {"at": f, "work": True, "changes": ((f, "cut", True),)},
            ),
            (
                "juice.squeeze",
                (f,),
                {"obj": f, "to": "into:juicer", "work": True, "changes": (("juicer", "fill", "juice"),)},
            ),
        ]
    glass_step: list[Step] = [("juice.glass", (g,), {"obj": glass.id, "to": "counter"})]
    steps += _interleave(rng, chain, glass_step)
    steps += [
        (
            "juice.pour",
            (g,),
            {"at": "juicer", "work": True, "changes": (("juicer", "fill", None), (glass.id, "fill", "juice"))},
        ),
        ("juice.rinse", (), {"obj": "juicer", "to": "sink", "work": True}),
    ]
    return things, steps


def _arrange_flowers(rng: np.random.Generator) -> tuple[list[Thing], list[Step]]:
    vase = _coloured(rng, "vase", "shelf")
    v = _name(vase)
    flowers = _pick(rng, FLOWERS, int(rng.integers(1, 3)))
    things = [vase, *[_plain(f, "table") for f in flowers]]
    steps: list[Step] = [
        ("flowers.vase", (v,), {"obj": vase.id, "to": "hand"}),
        (
            "flowers.fill",
            (v,),
            {"obj": vase.id, "to": "sink", "work": True, "changes": ((vase.id, "fill", "water"),)},
        ),
    ]
    cut = [("flowers.cut", (f,), {"at": f, "work": True, "changes": ((f, "cut", True),)}) for f in flowers]
    put = [
        (
            "flowers.put",
            (f, v),
            {"obj": f, "to": f"into:{vase.id}", "changes": ((vase.id, "fill", f),)},
        )
        for f in flowers
    ]
    if rng.random() < 0.5:
        steps += [s for pair in zip(cut, put, strict=True) for s in pair]
    else:
        steps += cut + put
    steps.append(("flowers.place", (v,), {"obj": vase.id, "to": "table"}))
    return things, steps


def _unload_dishwasher(rng: np.random.Generator) -> tuple[list[Thing], list[Step]]:
    dishes = _dish_things(rng, DISHES_TO_WASH, int(rng.integers(1, 4)), "dishwasher")
    things: list[Thing] = [*dishes]
    steps: list[Step] = [
        (
            "dishwasher.open",
            (),
            {"at": "dishwasher", "changes": (("dishwasher", "open", True),)},
        )
    ]
    for d in dishes:
        n = _name(d)
        steps += [
            ("dishwasher.take", (n,), {"obj": d.id, "to": "hand"}),
            ("dishwasher.put", (n,), {"obj": d.id, "to": "cupboard"}),
        ]
    if rng.random() < 0.5:
        things.append(_plain("cutlery", "dishwasher"))
        pos = int(rng.integers(1, len(steps) + 1))
        steps.insert(pos, ("dishwasher.cutlery", (), {"obj": "cutlery", "to": "cupboard"}))
    steps.append(
        (
            "dishwasher.close",
            (),
            {"at": "dishwasher", "changes": (("dishwasher", "open", False),)},
        )
    )
    return things, steps


def _have_breakfast(rng: np.random.Generator) -> tuple[list[Thing], list[Step]]:
    cereal = CEREALS[int(rng.integers(len(CEREALS)))]
    bowl = _coloured(rng, "bowl", "rack")
    b = _name(bowl)
    things = [Thing("cereal box", cereal, (0, 0, 0), "shelf"), bowl, _plain("milk", "fridge")]
    steps: list[Step] = [
        ("breakfast.box", (cereal,), {"obj": "cereal box", "to": "table"}),
        ("breakfast.bowl", (b,), {"obj": bowl.id, "to": "table"}),
    ]
    steps += [
        (
            "breakfast.pour",
            (cereal, b),
            {"at": "cereal box", "work": True, "changes": ((bowl.id, "fill", cereal),)},
        ),
        (
            "breakfast.milk",
            (cereal,),
            {"obj": "milk", "to": "table", "work": True, "changes": ((bowl.id, "fill", "latte"),)},
        ),
        ("breakfast.eat", (cereal,), {"at": bowl.id, "work": True}),
        ("breakfast.rinse", (b,), {"obj": bowl.id, "to": "sink", "work": True}),
    ]
    return things, steps


def _make_smoothie(rng: np.random.Generator) -> tuple[list[Thing], list[Step]]:
    glass = _coloured(rng, "glass", "rack")
    g = _name(glass)
    fruits = _pick(rng, SMOOTHIE_FRUITS, int(rng.integers(1, 4)))
    things = [_plain("blender", "cupboard"), glass, *[_plain(f, "table") for f in fruits], _plain("yogurt", "fridge")]
    steps: list[Step] = [("smoothie.blender", (), {"obj": "blender", "to": "counter"})]
    for f in fruits:
        steps.append(
            (
                "smoothie.fruit",
                (f,),
                {"obj": f, "to": "into:blender", "changes": (("blender", "fill", f),)},
            )
        )
    if rng.random() < 0.5:
        steps.append(("smoothie.yogurt", (), {"obj": "yogurt", "to": "into:blender"}))
    steps += [
        (
            "smoothie.blend",
            (),
            {"at": "blender", "work": True, "changes": (("blender", "fill", "smoothie"),)},
        ),
        (
            "smoothie.pour",
            (g,),
            {"obj": glass.id, "to": "counter", "changes": (("blender", "fill", None), (glass.id, "fill", "smoothie"))},
        ),
        ("smoothie.wash", (), {"obj": "blender", "to": "sink", "work": True}),
    ]
    return things, steps


def _mop_floor(rng: np.random.Generator) -> tuple[list[Thing], list[Step]]:
    places = _pick(rng, MOP_PLACES, int(rng.integers(1, 4)))
    things = [_plain("bucket", "mat"), _plain("mop", "mat")]
    things += [Thing(f"stain:{p}", "stain", (0, 0, 0), f"near:{p}") for p in places]
    steps: list[Step] = [
        (
            "mop.fill",
            (),
            {"obj": "bucket", "to": "sink", "work": True, "changes": (("bucket", "fill", "soap"),)},
        ),
        ("mop.dip", (), {"obj": "mop", "to": "sink", "work": True}),
    ]
    for i, p in enumerate(places):
        steps.append(
            (
                "mop.mop",
                (p,),
                {"obj": "mop", "at": f"near:{p}", "work": True, "changes": ((f"stain:{p}", "swept", True),)},
            )
        )
        if i < len(places) - 1 and rng.random() < 0.5:
            steps.append(("mop.wring", (), {"at": "bucket", "obj": "mop", "work": True}))
    steps += [
        (
            "mop.empty",
            (),
            {"obj": "bucket", "to": "sink", "work": True, "changes": (("bucket", "fill", None),)},
        ),
        ("mop.lean", (), {"obj": "mop", "to": "mat"}),
    ]
    return things, steps


def _iron_clothes(rng: np.random.Generator) -> tuple[list[Thing], list[Step]]:
    kinds = _pick(rng, IRONED_CLOTHES, int(rng.integers(1, 3)))
    clothes = [_coloured(rng, k, "shelf") for k in kinds]
    things = [_plain("ironing board", "mat"), _plain("iron", "cupboard"), *clothes]
    steps: list[Step] = [
        (
            "iron.board",
            (),
            {"at": "ironing board", "changes": (("ironing board", "up", True),)},
        ),
        ("iron.plug", (), {"obj": "iron", "to": "mat", "changes": (("iron", "hot", True),)}),
    ]
    for c in clothes:
        n = _name(c)
        steps += [
            ("iron.lay", (n,), {"obj": c.id, "to": "mat"}),
            (
                "iron.iron",
                (n,),
                {"obj": "iron", "at": c.id, "work": True, "changes": ((c.id, "ironed", True),)},
            ),
            ("iron.fold", (n,), {"at": c.id, "work": True, "changes": ((c.id, "folded", True),)}),
        ]
    steps.append(("iron.unplug", (), {"at": "iron", "changes": (("iron", "hot", False),)}))
    return things, steps


_SCRIPTS: dict[str, Callable[[np.random.Generator], tuple[list[Thing], list[Step]]]] = {
    "make_tea": _make_tea,
    "make_coffee": _make_coffee,
    "wash_dishes": _wash_dishes,
    "set_table": _set_table,
    "make_salad": _make_salad,
    "fry_eggs": _fry_eggs,
    "take_out_trash": _take_out_trash,
    "put_away_groceries": _put_away_groceries,
    "water_plants": _water_plants,
    "wipe_table": _wipe_table,
    "bake_cake": _bake_cake,
    "make_toast": _make_toast,
    "cook_pasta": _cook_pasta,
    "feed_cat": _feed_cat,
    "do_laundry": _do_laundry,
    "sweep_floor": _sweep_floor,
    "make_sandwich": _make_sandwich,
    "make_juice": _make_juice,
    "arrange_flowers": _arrange_flowers,
    "unload_dishwasher": _unload_dishwasher,
    "have_breakfast": _have_breakfast,
    "make_smoothie": _make_smoothie,
    "mop_floor": _mop_floor,
    "iron_clothes": _iron_clothes,
}
# Three homes, each with its own floor colour (render.FLOORS) and household habits: a video is set in one home
# (or visits several one after the other, `make_script(homes=...)`) and its activities are that household's. A
# from-scratch model at recap-synth's size learns to read 8 activities per home from the pixels in minutes, but not
# 24 at once (docs/demo.md): the home is the coarse cue it picks up first.
HOMES: tuple[tuple[str, ...], ...] = (
    ("make_tea", "make_coffee", "make_toast", "have_breakfast", "make_juice", "make_smoothie", "feed_cat",
     "water_plants"),
    ("make_salad", "fry_eggs", "cook_pasta", "bake_cake", "make_sandwich", "set_table", "wash_dishes",
     "unload_dishwasher"),
    ("take_out_trash", "put_away_groceries", "wipe_table", "sweep_floor", "mop_floor", "do_laundry", "iron_clothes",
     "arrange_flowers"),
)  # fmt: skip
ACTIVITY_OF_KIND_PREFIX = {
    "tea": "make_tea",
    "coffee": "make_coffee",
    "wash": "wash_dishes",
    "table": "set_table",
    "salad": "make_salad",
    "fry": "fry_eggs",
    "trash": "take_out_trash",
    "groceries": "put_away_groceries",
    "plants": "water_plants",
    "wipe": "wipe_table",
    "bake": "bake_cake",
    "toast": "make_toast",
    "pasta": "cook_pasta",
    "cat": "feed_cat",
    "laundry": "do_laundry",
    "sweep": "sweep_floor",
    "sandwich": "make_sandwich",
    "juice": "make_juice",
    "flowers": "arrange_flowers",
    "dishwasher": "unload_dishwasher",
    "breakfast": "have_breakfast",
    "smoothie": "make_smoothie",
    "mop": "mop_floor",
    "iron": "iron_clothes",
}


# ---- the timeline -------------------------------------------------------------------------------------------------
def _rng(seed_or_rng: int | Sequence[int] | np.random.Generator) -> np.random.Generator:
    if isinstance(seed_or_rng, np.random.Generator):
        return seed_or_rng
    return np.random.default_rng(np.random.SeedSequence(seed_or_rng))


def _quantize(t: float) -> float:
    return round(t / TIME_QUANTUM) * TIME_QUANTUM


def make_script(
    seed_or_rng: int | Sequence[int] | np.random.Generator,
    minutes: float,
    *,
    clip_seconds: float = 4.0,
    segment_seconds: float = 40.0,
    vid: str = "synth",
    homes: int = 1,
) -> VideoScript:
    """Draw one video's timeline of activities and actions, with its clip, segment and video text.

    Args:
        seed_or_rng: an int, a sequence of ints (fed to `numpy.random.SeedSequence`) or a Generator.
        minutes: video length; the timeline fills it exactly and the last activity may be cut short.
        clip_seconds: clip window; every action lasts more than one window and at most two.
        segment_seconds: segment window; windows are [i, min(i + segment, duration)).
        vid: the video id written in the ground truth.
        homes: how many homes the video visits, one after the other in equal parts (cut at whole clip windows),
            each a different home (1 to len(HOMES)); the activity under way when a part ends is cut short there.
            A long day across homes: the activities of a later part occur nowhere before it, so a summary shows
            whether it read the whole video. With 1 (the default) the script is the one the seed always drew.
    """
    if not minutes > 0:
        raise ValueError(f"minutes must be positive, not {minutes}")
    if not clip_seconds > 0 or not segment_seconds >= clip_seconds:
        raise ValueError(f"need 0 < clip_seconds <= segment_seconds, got {clip_seconds} and {segment_seconds}")
    rng = _rng(seed_or_rng)
    duration = _quantize(minutes * 60.0)
    if duration <= 0:
        raise ValueError(f"minutes={minutes} is shorter than {TIME_QUANTUM} s")
    if not 1 <= homes <= len(HOMES):
        raise ValueError(f"homes must be between 1 and {len(HOMES)}, not {homes}")
    if homes > 1 and duration / homes < clip_seconds:
        raise ValueError(f"{minutes} minutes is too short for {homes} homes: each needs a clip window at least")

    visits, activities, actions = _timeline(rng, duration, clip_seconds, homes)

    script = VideoScript(
        vid, duration, clip_seconds, segment_seconds, activities, actions, home=visits[0][1], visits=visits
    )
    script.clips = _clips(script)
    script.segments = _segments(script)
    script.summary = summarize([s.description for s in script.segments])
    return script


def _timeline(
    rng: np.random.Generator, duration: float, clip_seconds: float, homes: int = 1
) -> tuple[tuple[tuple[float, int], ...], list[Activity], list[Action]]:
    """Draw the home(s), then activities from each home's bag and their actions until its part is filled:
    (visits, activities, actions), visits being (start, home) per part. The last activity of a part may be cut
    short (`complete=False`)."""
    # Action durations in quanta: strictly more than one clip window (so each action is the majority of some
    # window) and at most two.
    lo = math.floor(clip_seconds / TIME_QUANTUM) + 1
    hi = max(lo, math.floor(2 * clip_seconds / TIME_QUANTUM))

    # The home, drawn first: its floor colour is visible in every frame, and its household keeps its own eight
    # habits, so a single frame already narrows 24 activities down to 8. More homes: the others in a random
    # order, drawn after the first (so one home draws exactly what it always drew).
    order = [int(rng.integers(len(HOMES)))]
    if homes > 1:
        others = [h for h in range(len(HOMES)) if h != order[0]]
        order += [others[int(i)] for i in rng.permutation(len(others))][: homes - 1]
    # equal parts, cut at whole clip windows
    bounds = [0.0]
    bounds += [_quantize(round(duration * k / homes / clip_seconds) * clip_seconds) for k in range(1, homes)]
    bounds.append(duration)

    activities: list[Activity] = []
    actions: list[Action] = []
    for home, t0, t1 in zip(order, bounds, bounds[1:], strict=False):
        _fill(rng, home, t0, t1, lo, hi, activities, actions)
    return tuple(zip(bounds, order, strict=False)), activities, actions


def _fill(
    rng: np.random.Generator,
    home: int,
    t: float,
    end_of_part: float,
    lo: int,
    hi: int,
    activities: list[Activity],
    actions: list[Action],
) -> None:
    """Append the activities of `home` and their actions from time `t` until `end_of_part`."""
    names = list(HOMES[home])
    bag: list[str] = []
    last = ""
    while t < end_of_part:
        # Activities come from a shuffled bag (every type once before any repeats), never twice in a row.
        if not bag:
            bag = [names[int(i)] for i in rng.permutation(len(names))]
            if bag[0] == last:
                bag.append(bag.pop(0))
        name = bag.pop(0)
        last = name
        things, steps = _SCRIPTS[name](rng)
        a_idx = len(activities)
        a_start = t
        complete = True
        for i, (kind, mentions, draw) in enumerate(steps):
            if t >= end_of_part:
                complete = False
                break
            d = int(rng.integers(lo, hi + 1)) * TIME_QUANTUM
            end = min(t + d, end_of_part)
            role = "open" if i == 0 else "close" if i == len(steps) - 1 else "body"
            at = draw.get("at", draw.get("obj"))
            actions.append(
                Action(
                    start=t,
                    end=end,
                    activity=a_idx,
                    kind=kind,
                    caption=f"#C C {caption_text(kind, mentions)}",
                    role=role,
                    mentions=tuple(mentions),
                    obj=draw.get("obj"),
                    at=at,
                    to=draw.get("to"),
                    work=bool(draw.get("work", False)),
                    changes=tuple(draw.get("changes", ())),
                )
            )
            t = end
        if t >= end_of_part and actions[-1].role != "close" and actions[-1].activity == a_idx:
            complete = False
        activities.append(Activity(name, a_start, t, tuple(things), complete))


def _clips(script: VideoScript) -> list[Clip]:
    """One clip per window [k*clip, (k+1)*clip) (the last one cut at the end), captioned with its majority action."""
    clips = []
    starts = np.array([a.start for a in script.actions])
    k = 0
    while k * script.clip_seconds < script.duration:
        s = k * script.clip_seconds
        e = min((k + 1) * script.clip_seconds, script.duration)
        i0 = max(int(np.searchsorted(starts, s, side="right")) - 1, 0)
        best, best_overlap = i0, -1.0
        for i in range(i0, len(script.actions)):
            a = script.actions[i]
            if a.start >= e:
                break
            overlap = min(a.end, e) - max(a.start, s)
            if overlap > best_overlap:
                best, best_overlap = i, overlap
        clips.append(Clip(s, e, script.actions[best].caption, best))
        k += 1
    return clips


def _segments(script: VideoScript) -> list[Segment]:
    segs = []
    i = 0
    while i * script.segment_seconds < script.duration:
        s = i * script.segment_seconds
        e = min((i + 1) * script.segment_seconds, script.duration)
        idx = tuple(k for k, c in enumerate(script.clips) if s <= c.start < e)
        desc = describe_segment([script.clips[k].caption for k in idx])
        segs.append(Segment(f"{script.vid}_{i:03d}", s, e, desc, idx))
        i += 1
    return segs


# ---- text of the higher levels, from the text of the level below --------------------------------------------------
@dataclass
class _ParsedCaption:
    activity: str
    role: str
    mentions: tuple[str, ...]


def parse_caption(caption: str) -> _ParsedCaption:
    """What a clip caption says: its activity type, role (open/body/close) and the key objects it names.

    This reads the caption *text* only, which is what makes segment descriptions recoverable from clip captions.
    """
    for pattern, kind, role in _caption_patterns():
        m = pattern.fullmatch(caption)
        if m:
            mentions = tuple(v for k, v in sorted(m.groupdict().items()) if v)
            return _ParsedCaption(ACTIVITY_OF_KIND_PREFIX[kind.split(".")[0]], role, mentions)
    raise ValueError(f"not a synthetic-world caption: {caption!r}")


_PATTERNS: list[tuple[re.Pattern[str], str, str]] = []


def _caption_patterns() -> list[tuple[re.Pattern[str], str, str]]:
    """(regex, kind, role) of every caption template, built once from `CAPTION_TEMPLATES`."""
    if not _PATTERNS:
        _PATTERNS.extend((t.pattern(), t.kind, t.role) for t in CAPTION_TEMPLATES)
    return _PATTERNS


def _activity_runs(captions: Sequence[str]) -> list[tuple[str, set[str], list[str]]]:
    """Group consecutive captions of the same activity: (activity type, roles seen, key objects in order)."""
    runs: list[tuple[str, set[str], list[str]]] = []
    prev_role = ""
    for cap in captions:
        p = parse_caption(cap)
        # a new run starts at a new activity type, or at an opening action after other actions (the same type
        # again); an opening action may fill two windows in a row
        if not runs or runs[-1][0] != p.activity or (p.role == "open" and prev_role != "open"):
            runs.append((p.activity, set(), []))
        prev_role = p.role
        runs[-1][1].add(p.role)
        for m in p.mentions:
            if m not in runs[-1][2]:
                runs[-1][2].append(m)
    return runs


def _sentence(phrases: Sequence[str]) -> str:
    if len(phrases) == 1:
        body = phrases[0]
    else:
        body = ", ".join(phrases[:-1]) + " and then " + phrases[-1]
    return f"C {body}."


def describe_segment(captions: Sequence[str]) -> str:
    """The segment description of a window, from its clip captions alone.

    Each activity is named with the key objects its captions mention, and as made whole ("makes tea"), finished
    ("finishes making tea": its closing action is in the window but not its opening one), started or continued.
    """
    phrases = []
    for name, roles, mentions in _activity_runs(captions):
        form = {
            (True, True): "full",
            (False, True): "finish",
            (True, False): "start",
            (False, False): "continue",
        }[("open" in roles, "close" in roles)]
        phrases.append(ACTIVITY_TYPES[name].phrase(form, mentions))
    return _sentence(phrases) if phrases else ""


_SEG_FORMS = ("finishes", "starts", "continues")


def summarize(descriptions: Sequence[str]) -> str:
    """The video summary, from the segment descriptions alone: every activity once, in order, in the past tense."""
    # Parse each description back into (activity type, form, mentions) and stitch activities cut by segment
    # boundaries: "starts X" / "continues X" are followed by "continues X" / "finishes X".
    acts: list[list[Any]] = []  # [name, mentions, open, closed]
    for desc in descriptions:
        for name, form, mentions in _parse_description(desc):
            # the same type never runs twice in a row, so "finishes X" right after X is the same activity (its
            # closing action may fill the last window of one segment and the first of the next)
            cont = form in ("finish", "continue")
            if cont and acts and acts[-1][0] == name:
                cur = acts[-1]
            else:
                cur = [name, [], form in ("full", "start"), False]
                acts.append(cur)
            for m in mentions:
                if m not in cur[1]:
                    cur[1].append(m)
            cur[3] = cur[3] or form in ("full", "finish")
    phrases = []
    for name, mentions, _opened, closed in acts:
        at = ACTIVITY_TYPES[name]
        m = mentions if at.summary_objects else []
        phrases.append(at.phrase("past" if closed else "started", m))
    return _sentence(phrases) if phrases else ""


def activities_named(text: str) -> list[str]:
    """The activity types a text names in any form the world writes, in ACTIVITY_TYPES order: a summary's ("made
    tea ...", "started making tea ..."), a description's ("makes tea", "starts/finishes/continues making tea").
    It searches, so it also reads a model's text that the strict parsers would reject."""
    return [name for name, rx in _named_patterns().items() if rx.search(text)]


@functools.cache
def _named_patterns() -> dict[str, re.Pattern[str]]:
    out = {}
    for name, at in ACTIVITY_TYPES.items():
        head = {t.split("{o}")[0].strip() for t in (at.past, at.present)}  # the words before the objects
        gerund = at.gerund.split("{o}")[0].strip()
        heads = [*sorted(head), *(f"{v} {gerund}" for v in ("started", "starts", "finishes", "continues"))]
        out[name] = re.compile(r"\b(?:" + "|".join(map(re.escape, heads)) + r")\b")
    return out


def _description_patterns() -> list[tuple[re.Pattern[str], str, str]]:
    """Regexes that read one phrase of a segment description back: (pattern, activity type, form)."""
    if _DESC_PATTERNS:
        return _DESC_PATTERNS
    for name, at in ACTIVITY_TYPES.items():
        for form, tmpl in (
            ("full", at.present),
            ("finish", "finishes " + at.gerund),
            ("start", "starts " + at.gerund),
            ("continue", "continues " + at.gerund),
        ):
            rx = re.escape(tmpl).replace(re.escape("{o}"), r"(?P<o>.*)")
            _DESC_PATTERNS.append((re.compile(rx), name, form))
    return _DESC_PATTERNS


_DESC_PATTERNS: list[tuple[re.Pattern[str], str, str]] = []
# phrases are joined by ", " and " and then "; object lists use ", " too, so split only before a verb
_FIRST_WORDS = sorted({t.present.split()[0] for t in ACTIVITY_TYPES.values()} | {"starts", "finishes", "continues"})
_PHRASE_SPLIT = re.compile(r" and then |, (?=(?:" + "|".join(_FIRST_WORDS) + r") )")


def _parse_description(desc: str) -> list[tuple[str, str, list[str]]]:
    body = desc.removeprefix("C ").removesuffix(".")
    parts = _PHRASE_SPLIT.split(body)
    out = []
    for part in parts:
        for pattern, name, form in _description_patterns():
            m = pattern.fullmatch(part)
            if m:
                out.append((name, form, _objects_back(m.group("o") or "")))
                break
        else:
            raise ValueError(f"cannot parse segment phrase {part!r} in {desc!r}")
    return out


def _objects_back(text: str) -> list[str]:
    """Key-object phrases from an object text such as ' in the blue cup' or 'the red plate and the green bowl'."""
    return _MENTION.findall(text)


def _mention_pattern() -> re.Pattern[str]:
    """'the X' for every key-object phrase a caption can name (longest first, so 'red saucepan' beats 'red pan')."""
    coloured = [f"{c} {k}" for c in COLOURS for k in COLOURED_KINDS]
    plain = {*VEGETABLES, *GROCERIES, *SPREADS, *CAT_FOODS, *FILLINGS, *FRUITS, *FLOWERS, *CEREALS, *SWEEP_PLACES}
    plain |= {*MOP_PLACES, *SMOOTHIE_FRUITS}
    phrases = sorted({*coloured, *plain}, key=lambda x: (-len(x), x))
    return re.compile(r"\bthe (" + "|".join(map(re.escape, phrases)) + r")\b")


_MENTION = _mention_pattern()


@functools.cache
def vocabulary() -> list[str]:
    """Every word the ground truth can use (clip, segment and video text), sorted."""
    words: set[str] = set()
    rng = np.random.default_rng(0)
    for _ in range(400):
        s = make_script(rng, 4.0, vid="v")
        for c in s.clips:
            words.update(_words(c.caption))
        for g in s.segments:
            words.update(_words(g.description))
        words.update(_words(s.summary))
    # every phrase form of every activity, including rare ones ("cooks pasta" needs a whole activity in one window)
    for at in ACTIVITY_TYPES.values():
        for form in ("full", "past", "start", "finish", "continue", "started"):
            words.update(_words(at.phrase(form, [])))
    lists = (COLOURS, VEGETABLES, GROCERIES, SPREADS, CAT_FOODS, FILLINGS, FRUITS, FLOWERS, CEREALS, CLOTHES)
    for names in (*lists, SMOOTHIE_FRUITS, IRONED_CLOTHES):
        words.update(names)
    return sorted(words)


def _words(text: str) -> list[str]:
    return re.findall(r"[#a-z]+|[A-Z]+", text.replace(",", " ").replace(".", " "))
