"""Draw a `VideoScript` as a top-down view of the kitchen and encode it as H.264 mp4 with PyAV.

The room is laid out on a 64 x 64 grid scaled to the frame size: fridge, stove, sink, counter and coffee machine
along the top wall, the cupboard on the left, the drying rack and the bin on the right, the table in the middle,
the door and the plant pots along the bottom. The hand of C (a skin-coloured disc) walks to where each action
happens, carries objects, wiggles while it works (scrubbing, cutting, stirring), and state changes show half-way
through an action (the burner glows, the dish loses its dirt, the cup fills with tea).

Rendering is plain numpy slicing on a pre-drawn background, so it runs hundreds of times faster than real time
at 64 px; `benchmarks/bench_synth.py` measures it.
"""

from __future__ import annotations

import bisect
import copy
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from videorecap.synth.world import Action, VideoScript

logger = logging.getLogger(__name__)

GRID = 64  # layout units; scaled to the frame size

# name -> (x0, y0, x1, y1, colour) in grid units
PLACES: dict[str, tuple[int, int, int, int, tuple[int, int, int]]] = {
    "fridge": (0, 0, 12, 16, (190, 205, 215)),
    "stove": (13, 0, 27, 14, (45, 45, 45)),
    "sink": (28, 0, 42, 14, (150, 160, 170)),
    "counter": (43, 0, 53, 14, (225, 205, 160)),
    "machine": (54, 0, 64, 14, (80, 65, 60)),
    "cupboard": (0, 18, 10, 42, (140, 90, 50)),
    "rack": (54, 18, 64, 36, (120, 120, 120)),
    "bin": (54, 40, 64, 50, (70, 70, 70)),
    "table": (16, 26, 46, 50, (175, 125, 75)),
    "door": (0, 50, 10, 64, (100, 70, 40)),
    "plants": (24, 56, 54, 64, (200, 195, 185)),
    "oven": (12, 54, 23, 64, (60, 60, 65)),
    "washer": (54, 52, 64, 64, (235, 235, 240)),
    "shelf": (0, 43, 10, 49, (170, 120, 70)),
    "dishwasher": (47, 38, 54, 50, (200, 200, 210)),
    "mat": (47, 16, 54, 31, (120, 160, 200)),
}
# The floor of each home (world.HOMES): beige, pale blue, pale green; far from every object colour.
FLOORS: tuple[tuple[int, int, int], ...] = ((205, 200, 190), (175, 195, 215), (185, 210, 170))
FLOOR = FLOORS[0]
# Where things stand at each place (grid units); taken in order, the last one is shared when all are taken.
SLOTS: dict[str, list[tuple[float, float]]] = {
    "fridge": [(6, 8)],
    "stove": [(20, 7)],
    "sink": [(33, 7), (38, 7)],
    "counter": [(48, 4.5), (48, 10)],
    "machine": [(59, 10)],
    "cupboard": [(5, 23), (5, 30), (5, 37)],
    "rack": [(59, 22), (59, 28), (59, 33)],
    "bin": [(59, 45)],
    "table": [(22, 32), (31, 32), (40, 32), (22, 44), (31, 44), (40, 44)],
    "door": [(5, 57)],
    "plants": [(30, 60), (39, 60), (48, 60)],
    "oven": [(17.5, 59)],
    "washer": [(59, 58)],
    "shelf": [(5, 46)],
    "dishwasher": [(50.5, 41), (50.5, 46)],
    "mat": [(50.5, 19.5), (50.5, 24), (50.5, 28)],
}
# The floor in front of a place: where dirt lies and where C sweeps or mops ("near:stove").
NEAR: dict[str, tuple[float, float]] = {
    "fridge": (12.5, 17),
    "stove": (20, 16.5),
    "sink": (35, 16.5),
    "table": (31, 53),
    "door": (12.5, 46),
    "bin": (50.5, 53),
    "cupboard": (13, 30),
    "oven": (20, 52.5),
    "washing machine": (59, 51),
}
HIDING_PLACES = ("fridge", "door", "washer")  # things put there disappear
HAND = (245, 190, 150)
HAND_REST = (32.0, 20.0)
SKIN_EDGE = (90, 60, 50)

# fixed colours of things whose colour is not part of their name
KIND_COLOURS: dict[str, tuple[int, int, int]] = {
    "kettle": (200, 200, 215),
    "tomato": (215, 35, 30),
    "cucumber": (40, 140, 50),
    "carrot": (250, 130, 20),
    "onion": (150, 60, 160),
    "pepper": (245, 215, 30),
    "lettuce": (140, 215, 90),
    "cheese": (250, 205, 60),
    "butter": (250, 240, 150),
    "yogurt": (245, 245, 245),
    "juice": (250, 150, 30),
    "sausages": (175, 80, 60),
    "apples": (90, 200, 60),
    "lemons": (250, 240, 70),
    "milk": (245, 245, 245),
    "board": (225, 190, 130),
    "shopbag": (160, 120, 70),
    "can": (40, 160, 160),
    "newbag": (230, 230, 230),
    "potato": (190, 150, 90),
    "mushroom": (210, 190, 170),
    "broccoli": (30, 120, 40),
    "garlic": (240, 235, 220),
    "spinach": (30, 100, 40),
    "celery": (150, 210, 120),
    "radish": (220, 40, 90),
    "grapes": (120, 40, 140),
    "bananas": (250, 225, 50),
    "fish": (150, 170, 190),
    "rice": (250, 250, 240),
    "beans": (150, 70, 40),
    "chocolate": (90, 50, 30),
    "flour": (240, 235, 220),
    "tin": (150, 150, 160),
    "bread": (200, 150, 80),
    "toaster": (190, 190, 200),
    "jam": (180, 20, 60),
    "honey": (240, 170, 30),
    "marmalade": (245, 120, 20),
    "pasta": (240, 210, 120),
    "colander": (230, 230, 230),
    "cat": (110, 110, 110),
    "foodtin": (200, 200, 200),
    "basket": (200, 170, 110),
    "detergent": (40, 120, 220),
    "broom": (150, 100, 40),
    "dustpan": (220, 50, 50),
    "dirt": (110, 80, 40),
    "stain": (150, 130, 90),
    "juicer": (200, 230, 240),
    "oranges": (250, 140, 0),
    "limes": (120, 200, 40),
    "grapefruits": (240, 100, 90),
    "roses": (230, 20, 60),
    "tulips": (250, 90, 160),
    "daisies": (250, 250, 250),
    "lilies": (250, 200, 220),
    "sunflowers": (250, 210, 0),
    "orchids": (190, 90, 220),
    "irises": (90, 60, 200),
    "cutlery": (190, 190, 190),
    "cornflakes": (240, 190, 40),
    "muesli": (190, 150, 100),
    "granola": (160, 110, 60),
    "oats": (225, 210, 170),
    "blender": (220, 220, 230),
    "strawberries": (230, 30, 50),
    "blueberries": (60, 70, 180),
    "mangoes": (250, 180, 40),
    "peaches": (250, 170, 130),
    "kiwis": (130, 160, 60),
    "raspberries": (220, 40, 100),
    "bucket": (60, 120, 200),
    "mop": (230, 230, 210),
    "ironing board": (180, 200, 220),
    "iron": (70, 70, 200),
    "ham": (240, 150, 150),
    "salami": (170, 40, 50),
    "turkey": (220, 180, 150),
    "chicken": (230, 200, 160),
    "spoon": (170, 110, 50),
}
FILL_COLOURS: dict[str, tuple[int, int, int]] = {
    "bag": (200, 160, 90),
    "tea": (150, 80, 30),
    "coffee": (70, 40, 20),
    "latte": (190, 140, 90),
    "egg": (255, 255, 240),
    "flour": (240, 235, 220),
    "batter": (240, 215, 150),
    "cake": (150, 90, 40),
    "toast": (170, 110, 50),
    "water": (120, 190, 240),
    "catfood": (140, 90, 70),
    "sandwich": (220, 180, 120),
    "juice": (250, 160, 30),
    "smoothie": (230, 120, 160),
    "soap": (230, 240, 250),
    "sugar": (250, 250, 250),
    "yolk": (250, 200, 0),
}


@dataclass
class _Obj:
    kind: str
    colour: tuple[int, int, int]
    pos: tuple[float, float]
    where: str  # a place, "hand", or "hidden"
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class _State:
    objs: dict[str, _Obj]
    fixtures: dict[str, Any]
    hand: tuple[float, float]


@dataclass
class _Step:
    """One action, resolved: the state before and after it, and where the hand goes."""

    action: Action
    before: _State
    after: _State
    src: tuple[float, float]
    dst: tuple[float, float]


_FIXTURES = {
    "stove": False,
    "sink": False,
    "cupboard": False,
    "fridge": False,
    "machine": False,
    "oven": False,
    "washer": False,
    "washer_on": False,
    "dishwasher": False,
}


def _free_slot(state: _State, place: str, ignore: str = "") -> tuple[float, float]:
    taken = {o.pos for k, o in state.objs.items() if o.where == place and k != ignore}
    for p in SLOTS[place]:
        if p not in taken:
            return p
    return SLOTS[place][-1]


def _anchor(state: _State, target: str | None) -> tuple[float, float]:
    if target is None:
        return state.hand
    if target in state.objs:
        o = state.objs[target]
        return state.hand if o.where == "hand" else o.pos
    if target.startswith("near:"):
        return NEAR[target.removeprefix("near:")]
    return SLOTS[target][0]


def _simulate(script: VideoScript) -> list[_Step]:
    """Play the script once, recording the state before and after every action."""
    state = _State(
        objs={"kettle": _Obj("kettle", KIND_COLOURS["kettle"], SLOTS["stove"][0], "stove")},
        fixtures=dict(_FIXTURES),
        hand=HAND_REST,
    )
    steps: list[_Step] = []
    current = -1
    spawned: list[str] = []
    for a in script.actions:
        if a.activity != current:
            # the previous activity's things go away, fixtures reset; this activity's things appear
            for k in spawned:
                state.objs.pop(k, None)
            state.fixtures = dict(_FIXTURES)
            spawned = []
            current = a.activity
            for t in script.activities[a.activity].things:
                colour = KIND_COLOURS.get(t.kind, t.colour)
                if t.place.startswith("into:"):
                    host = state.objs[t.place.removeprefix("into:")]
                    state.objs[t.id] = _Obj(t.kind, colour, host.pos, "hidden")
                elif t.place.startswith("near:"):  # on the floor in front of a place
                    state.objs[t.id] = _Obj(t.kind, colour, NEAR[t.place.removeprefix("near:")], "floor")
                else:
                    state.objs[t.id] = _Obj(t.kind, colour, _free_slot(state, t.place), t.place)
                    if t.kind in ("cup", "plate", "bowl", "glass") and t.place == "table":
                        state.objs[t.id].attrs["dirty"] = True
                spawned.append(t.id)
        before = copy.deepcopy(state)
        src = _anchor(state, a.at)
        dst = src
        if a.obj is not None and a.to is not None:
            o = state.objs[a.obj]
            if a.to == "hand":
                dst = HAND_REST
                o.where = "hand"
            elif a.to.startswith("into:"):
                host = state.objs[a.to.removeprefix("into:")]
                dst = host.pos
                o.where = "hidden" if host.kind not in ("board", "pot") else o.where
                if host.kind == "board":
                    o.where, o.pos = "counter", host.pos
                elif host.kind == "pot":
                    o.where, o.pos = "plants", (host.pos[0] + 3, host.pos[1] - 5)
                    dst = o.pos
            else:
                dst = _free_slot(state, a.to, ignore=a.obj)
                o.where = "hidden" if a.to in HIDING_PLACES else a.to
                o.pos = dst
        for target, key, value in a.changes:
            if target in state.objs and key == "goto":  # a thing that moves by itself (the cat)
                state.objs[target].pos = _free_slot(state, value, ignore=target)
                state.objs[target].where = value
            elif target in state.objs:
                state.objs[target].attrs[key] = value
                if key == "clean":
                    state.objs[target].attrs.pop("dirty", None)
            else:
                state.fixtures[target] = value
        if a.kind == "tea.stove_on":
            state.objs["kettle"].attrs["hot"] = True
        elif a.kind in ("tea.stove_off", "tea.fill_kettle"):
            state.objs["kettle"].attrs["hot"] = False
        state.hand = dst
        steps.append(_Step(a, before, copy.deepcopy(state), src, dst))
    return steps


# ---- drawing ------------------------------------------------------------------------------------------------------
class _Canvas:
    """Grid-unit drawing primitives on a (size, size, 3) uint8 frame."""

    def __init__(self, size: int, floor: tuple[int, int, int] = FLOOR) -> None:
        self.size = size
        self.k = size / GRID
        self.floor = floor
        self._discs: dict[int, np.ndarray] = {}
        self.background = self._background()

    def px(self, v: float) -> int:
        return int(round(v * self.k))

    def rect(self, img: np.ndarray, x0: float, y0: float, x1: float, y1: float, colour: tuple[int, int, int]) -> None:
        a, b = max(self.px(x0), 0), max(self.px(y0), 0)
        c, d = min(self.px(x1), self.size), min(self.px(y1), self.size)
        if c > a and d > b:
            img[b:d, a:c] = colour

    def box(self, img: np.ndarray, cx: float, cy: float, w: float, h: float, colour: tuple[int, int, int]) -> None:
        self.rect(img, cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, colour)

    def disc(self, img: np.ndarray, cx: float, cy: float, r: float, colour: tuple[int, int, int]) -> None:
        rp = max(int(round(r * self.k)), 1)
        mask = self._discs.get(rp)
        if mask is None:
            yy, xx = np.mgrid[-rp : rp + 1, -rp : rp + 1]
            mask = self._discs[rp] = (xx * xx + yy * yy) <= rp * rp + rp * 0.5
        x, y = self.px(cx) - rp, self.px(cy) - rp
        n = 2 * rp + 1
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + n, self.size), min(y + n, self.size)
        if x1 <= x0 or y1 <= y0:
            return
        m = mask[y0 - y : y1 - y, x0 - x : x1 - x]
        img[y0:y1, x0:x1][m] = colour

    def _background(self) -> np.ndarray:
        img = np.empty((self.size, self.size, 3), np.uint8)
        img[:] = self.floor
        for x0, y0, x1, y1, colour in PLACES.values():
            self.rect(img, x0, y0, x1, y1, colour)
        self.rect(img, 29.5, 1.5, 40.5, 12.5, (110, 120, 135))  # sink basin
        for y in (24, 30):  # rack bars
            self.rect(img, 54, y, 64, y + 1, (90, 90, 90))
        for cx in (17, 23):  # burners
            self.disc(img, cx, 7, 3, (90, 90, 90))
        self.rect(img, 10, 6, 11, 10, (120, 130, 140))  # fridge handle
        self.rect(img, 14, 56, 21, 62, (30, 30, 35))  # oven window
        self.disc(img, 59, 58, 4, (170, 175, 185))  # washing machine door
        self.rect(img, 47, 43.5, 54, 44.5, (150, 150, 160))  # dishwasher handle
        return img


def _draw_obj(cv: _Canvas, img: np.ndarray, o: _Obj, x: float, y: float) -> None:
    """Draw one object centred at (x, y) by its kind and state (fill, cut, hot, wet, ...), then any dirt on it."""
    c, at = o.colour, o.attrs
    if not any(draw(cv, img, o, x, y) for draw in (_draw_dishes, _draw_food, _draw_kitchen_things, _draw_household)):
        cv.box(img, x, y, 4, 4, c)  # pragma: no cover - every kind has its drawing
    if at.get("dirty"):
        cv.box(img, x - 1, y - 1, 1.5, 1.5, (100, 70, 30))
        cv.box(img, x + 1.5, y + 1, 1.5, 1.5, (100, 70, 30))


def _draw_dishes(cv: _Canvas, img: np.ndarray, o: _Obj, x: float, y: float) -> bool:
    """Cups, mugs, plates, bowls, glasses, pans and the kettle. False: not one of these kinds."""
    c, kind, at = o.colour, o.kind, o.attrs
    fill = at.get("fill")
    if kind in ("cup", "mug"):
        s = 6 if kind == "cup" else 7
        cv.box(img, x + s / 2 + 0.5, y, 2, 2, c)  # handle
        cv.box(img, x, y, s, s, c)
        if fill:
            cv.box(img, x, y, 3, 3, FILL_COLOURS.get(fill, (0, 0, 0)))
    elif kind == "plate":
        cv.disc(img, x, y, 4, c)
        if fill == "egg":
            cv.disc(img, x, y, 2, FILL_COLOURS["egg"])
            cv.disc(img, x, y, 1, (250, 200, 0))
        elif fill:  # toast, a sandwich, pasta, ...
            cv.box(img, x, y, 3.5, 3.5, _fill_colour(fill))
    elif kind == "bowl":
        cv.disc(img, x, y, 4.5, c)
        inner = _fill_colour(fill) if fill else tuple(int(v * 0.55) for v in c)
        cv.disc(img, x, y, 2, inner)  # type: ignore[arg-type]
    elif kind == "glass":
        cv.box(img, x, y, 4, 8, c)
    elif kind == "pan":
        cv.box(img, x + 5, y, 5, 2, (60, 60, 60))
        cv.disc(img, x, y, 4.5, c)
        if fill:
            cv.disc(img, x, y, 2, FILL_COLOURS["egg"])
            cv.disc(img, x, y, 1, (250, 200, 0))
    elif kind == "kettle":
        hot = at.get("hot")
        col = (250, 110, 60) if hot else c
        cv.box(img, x - 4, y - 1, 3, 2, col)  # spout
        cv.box(img, x, y, 7, 7, col)
        cv.box(img, x, y - 4, 3, 1.5, (60, 60, 60))  # lid knob
    else:
        return False
    return True


def _draw_food(cv: _Canvas, img: np.ndarray, o: _Obj, x: float, y: float) -> bool:
    """Vegetables, fruit and other food, whole or cut, and drink cartons. False: not one of these kinds."""
    c, kind, at = o.colour, o.kind, o.attrs
    if kind in _ROUND:
        if at.get("cut"):
            for dx in (-2.5, 0, 2.5):
                cv.box(img, x + dx, y, 2, 2, c)
        else:
            cv.disc(img, x, y, 3, c)
    elif kind in _LONG:
        if at.get("cut"):
            for dx in (-3, 0, 3):
                cv.box(img, x + dx, y, 2, 2, c)
        else:
            cv.box(img, x, y, 8, 3, c)
    elif kind in _SLICES:
        cv.disc(img, x, y, 3, c)
        cv.disc(img, x + 1, y + 1, 1, tuple(int(v * 0.8) for v in c))  # type: ignore[arg-type]
    elif kind in _SQUARE:
        if at.get("cut"):
            for dx in (-3, 0, 3):
                cv.box(img, x + dx, y + (dx > 0), 2, 2, c)
        else:
            cv.box(img, x, y, 5 + (kind == "lettuce"), 5, c)
    elif kind in ("juice", "milk"):
        cv.box(img, x, y, 4, 7, c)
        cv.box(img, x, y - 3, 2, 1.5, (40, 90, 200))
    else:
        return False
    return True


def _draw_kitchen_things(cv: _Canvas, img: np.ndarray, o: _Obj, x: float, y: float) -> bool:
    """Boards, bags, plants, cloths, containers and boxy appliances. False: not one of these kinds."""
    c, kind, at = o.colour, o.kind, o.attrs
    if kind == "board":
        cv.box(img, x, y, 9, 6, c)
    elif kind == "shopbag":
        cv.box(img, x, y, 8, 8, c)
        cv.box(img, x, y - 4, 4, 1, (90, 60, 30))
    elif kind in ("trashbag", "newbag"):
        cv.disc(img, x, y, 4.5, c)
        if at.get("tied"):
            cv.disc(img, x, y - 3.5, 1.5, (30, 30, 30))
        else:  # the open neck of the bag (a plate of the same colour is a plain disc)
            cv.box(img, x, y - 1, 3, 2, tuple(int(v * 0.6) for v in c))  # type: ignore[arg-type]
    elif kind == "pot":
        cv.disc(img, x, y, 4, c)
        cv.disc(img, x, y, 3 if at.get("watered") else 2, (20, 110, 30) if not at.get("watered") else (80, 220, 80))
    elif kind == "can":
        cv.box(img, x + 4, y - 1, 3, 1.5, c)
        cv.box(img, x, y, 6, 5, c)
    elif kind == "cloth":
        cv.box(img, x, y, 6, 4, tuple(int(v * 0.7) for v in c) if at.get("wet") else c)  # type: ignore[arg-type]
    elif kind in ("saucepan", "tin", "colander", "dish", "juicer", "blender", "bucket", "vase"):
        _draw_container(cv, img, o, x, y)
    elif kind in _BOXES:
        w, h = _BOXES[kind]
        cv.box(img, x, y, w, h, c)
        if kind == "toaster":
            cv.box(img, x, y, 5, 1, (240, 60, 20) if at.get("on") else (40, 40, 40))
        elif kind == "foodtin":
            cv.box(img, x, y + 1, 5, 1.5, (60, 140, 200))  # the label
            if at.get("open"):
                cv.box(img, x, y - 1, 3, 1.5, FILL_COLOURS["catfood"])
        elif kind == "ironing board":
            cv.box(img, x - 5, y, 2, 2, c)  # its pointed end
    else:
        return False
    return True


def _draw_household(cv: _Canvas, img: np.ndarray, o: _Obj, x: float, y: float) -> bool:
    """Clothes, jars, flowers, the cat, cleaning tools, the iron, dirt and stains. False: not one of these kinds."""
    c, kind, at = o.colour, o.kind, o.attrs
    if kind in _CLOTHES:
        _draw_clothes(cv, img, o, x, y)
    elif kind in ("jam", "honey", "marmalade"):  # a jar with a white lid
        cv.box(img, x, y, 4, 5, c)
        cv.box(img, x, y - 3, 4, 1.5, (240, 240, 240))
    elif kind in _FLOWERS:
        _draw_flowers(cv, img, kind, x, y, short=bool(at.get("cut")))
    elif kind == "cat":
        cv.disc(img, x, y, 3.5, c)
        cv.box(img, x - 2, y - 3.5, 1.5, 2, c)  # ears
        cv.box(img, x + 2, y - 3.5, 1.5, 2, c)
        cv.box(img, x + 4, y + 2, 3, 1, c)  # tail
    elif kind == "broom":
        cv.box(img, x, y - 2, 1.5, 8, c)
        cv.box(img, x, y + 3, 6, 2.5, (210, 180, 60))
    elif kind == "mop":
        cv.box(img, x, y - 2, 1.5, 8, (150, 100, 40))
        cv.disc(img, x, y + 3, 2.5, c)
    elif kind == "iron":
        cv.box(img, x, y, 5, 3, (230, 60, 30) if at.get("hot") else c)
        cv.box(img, x - 0.5, y - 2.5, 3, 2, (40, 40, 40))  # handle
    elif kind in ("dirt", "stain"):
        if not at.get("swept"):
            if kind == "dirt":
                for dx, dy in ((-1.5, 0), (1, -1), (0.5, 1.5)):
                    cv.box(img, x + dx, y + dy, 1, 1, c)
            else:
                cv.disc(img, x, y, 2.5, c)
    else:
        return False
    return True


_ROUND = (
    "tomato", "onion", "apples", "lemons", "yogurt", "potato", "mushroom", "garlic", "radish", "grapes", "oranges",
    "limes", "grapefruits", "peaches", "kiwis", "mangoes", "strawberries", "blueberries", "raspberries",
)  # fmt: skip
_LONG = ("cucumber", "carrot", "sausages", "celery", "bananas", "fish")
_SQUARE = ("pepper", "lettuce", "cheese", "butter", "broccoli", "spinach", "rice", "beans", "chocolate")
_SLICES = ("ham", "salami", "turkey", "chicken")  # sandwich fillings: thin round slices
_CLOTHES = ("shirt", "towel", "jumper", "socks", "trousers", "dress", "skirt", "blouse")
_FLOWERS = ("roses", "tulips", "daisies", "lilies", "sunflowers", "orchids", "irises")
# things drawn as a plain box of (width, height) grid units
_BOXES: dict[str, tuple[float, float]] = {
    "flour": (5, 7),
    "bread": (8, 4),
    "toaster": (7, 5),
    "pasta": (4, 7),
    "foodtin": (5, 4),
    "basket": (8, 6),
    "detergent": (4, 6),
    "dustpan": (5, 4),
    "cutlery": (5, 2),
    "cornflakes": (5, 8),
    "muesli": (5, 8),
    "granola": (5, 8),
    "oats": (5, 8),
    "ironing board": (10, 4),
    "spoon": (1.5, 7),
}


def _draw_container(cv: _Canvas, img: np.ndarray, o: _Obj, x: float, y: float) -> None:
    """Containers show what is in them: a square of the fill's colour (or the fruit's, or a flower head)."""
    c, kind, fill = o.colour, o.kind, o.attrs.get("fill")
    if kind == "saucepan":
        cv.box(img, x - 5.5, y, 4, 2, (60, 60, 60))  # handle on the left (a frying pan's is on the right)
        cv.box(img, x, y, 8, 8, c)
    elif kind == "tin":
        cv.box(img, x, y, 8, 5, c)
    elif kind in ("colander", "bucket"):
        cv.disc(img, x, y, 4, c)
        if kind == "colander":  # holes
            for dx, dy in ((-2, -2), (2, -2), (-2, 2), (2, 2)):
                cv.box(img, x + dx, y + dy, 1.6, 1.6, (120, 120, 120))
        else:  # handle
            cv.box(img, x, y - 4.5, 5, 1, (40, 40, 40))
    elif kind == "dish":
        cv.disc(img, x, y, 3, c)
    elif kind in ("juicer", "blender"):
        cv.box(img, x, y, 5, 7, c)
        cv.box(img, x, y + 4, 6, 1.5, (60, 60, 60))  # base
    else:  # vase: tall and narrow
        cv.box(img, x, y + 1, 4, 6, c)
    if fill in _FLOWERS:
        _draw_flowers(cv, img, fill, x, y - 3, short=True)
    elif fill:
        cv.box(img, x, y, 2.5, 2.5, _fill_colour(fill))


def _fill_colour(fill: str) -> tuple[int, int, int]:
    """What a container holds: a fill of its own (tea, batter) or a thing poured or put in (flour, strawberries)."""
    return FILL_COLOURS.get(fill) or KIND_COLOURS[fill]


def _draw_clothes(cv: _Canvas, img: np.ndarray, o: _Obj, x: float, y: float) -> None:
    c, kind = o.colour, o.kind
    if o.attrs.get("folded"):
        cv.box(img, x, y, 4, 3, c)
        cv.box(img, x, y, 4, 0.8, tuple(int(v * 0.7) for v in c))  # type: ignore[arg-type]
        return
    if kind == "jumper":  # wide and long-sleeved
        cv.box(img, x, y, 7, 6, c)
        cv.box(img, x, y - 1, 11, 2, c)
    elif kind in ("shirt", "blouse"):
        s = 0.8 if kind == "blouse" else 1.0
        cv.box(img, x, y, 5 * s, 6 * s, c)
        cv.box(img, x, y - 2 * s, 9 * s, 2, c)  # sleeves
    elif kind == "towel":  # bigger than a cloth, with a white stripe
        cv.box(img, x, y, 8, 5, c)
        cv.box(img, x, y, 8, 1, (255, 255, 255))
    elif kind == "socks":
        cv.box(img, x - 1.5, y, 2, 5, c)
        cv.box(img, x + 1.5, y, 2, 5, c)
    elif kind == "trousers":
        cv.box(img, x, y - 2, 6, 2, c)
        cv.box(img, x - 2, y + 1, 2, 5, c)
        cv.box(img, x + 2, y + 1, 2, 5, c)
    elif kind == "dress":
        cv.box(img, x, y - 2, 3, 3, c)
        cv.box(img, x, y + 1.5, 7, 4, c)
    else:  # skirt: a narrow waist over a wide hem
        cv.box(img, x, y - 1.5, 4, 2, c)
        cv.box(img, x, y + 1.5, 8, 3, c)
    if o.attrs.get("ironed"):
        cv.box(img, x + 1, y, 1, 1, (255, 255, 255))  # a crease-free shine


def _draw_flowers(cv: _Canvas, img: np.ndarray, kind: str, x: float, y: float, *, short: bool) -> None:
    stem = 2 if short else 4
    cv.box(img, x, y + stem / 2 + 1, 1, stem, (40, 130, 40))
    head = KIND_COLOURS[kind]
    for dx in (-1.5, 1.5):
        cv.disc(img, x + dx, y, 1.2, head)
    cv.disc(img, x, y - 1, 1.2, head)


def _draw(cv: _Canvas, state: _State, hand: tuple[float, float], carried: dict[str, tuple[float, float]]) -> np.ndarray:
    img = cv.background.copy()
    f = state.fixtures
    if f["stove"]:
        for cx in (17, 23):
            cv.disc(img, cx, 7, 3, (240, 70, 20))
    if f["sink"]:
        cv.rect(img, 29.5, 1.5, 40.5, 12.5, (120, 190, 240))
    if f["cupboard"]:
        cv.rect(img, 1, 19, 9, 41, (215, 175, 130))
    if f["fridge"]:
        cv.rect(img, 1, 1, 11, 15, (250, 250, 230))
    cv.disc(img, 61, 3, 1.5, (40, 220, 60) if f["machine"] else (200, 30, 30))  # machine light
    if f["oven"]:
        cv.rect(img, 14, 56, 21, 62, (250, 140, 40))
    if f["washer"]:  # door open: the drum shows
        cv.disc(img, 59, 58, 4, (60, 60, 70))
    elif f["washer_on"]:  # running: water in the drum
        cv.disc(img, 59, 58, 4, (80, 150, 240))
    if f["dishwasher"]:  # the door drops open onto the floor
        cv.rect(img, 48, 39, 53, 49, (70, 70, 80))
        cv.rect(img, 47, 50, 54, 55, (220, 220, 230))
    in_hand = []
    for k, o in state.objs.items():
        if k in carried:
            in_hand.append((o, carried[k]))
        elif o.where == "hand":
            in_hand.append((o, hand))
        elif o.where != "hidden":
            _draw_obj(cv, img, o, *o.pos)
    hx, hy = hand
    cv.disc(img, hx, hy + 2, 3.2, SKIN_EDGE)
    cv.disc(img, hx, hy + 2, 2.4, HAND)
    for i, (o, (x, y)) in enumerate(in_hand):
        _draw_obj(cv, img, o, x + 2.5 * i, y - 1.5)
    return img


def _lerp(a: tuple[float, float], b: tuple[float, float], u: float) -> tuple[float, float]:
    u = min(max(u, 0.0), 1.0)
    return (a[0] + (b[0] - a[0]) * u, a[1] + (b[1] - a[1]) * u)


def _frame_at(cv: _Canvas, step: _Step, prev_hand: tuple[float, float], t: float) -> np.ndarray:
    a = step.action
    u = (t - a.start) / max(a.end - a.start, 1e-9)
    # phases of an action: walk to it (0-0.3), do it (0.3-0.75: carry, or wiggle), hold (0.75-1)
    if u >= 0.75:
        return _draw(cv, step.after, step.dst, {})
    state = copy.copy(step.before)
    if u >= 0.5:  # state changes show half-way through, objects still where they were
        objs = {}
        for k, o in step.before.objs.items():
            after = step.after.objs.get(k)
            objs[k] = _Obj(o.kind, o.colour, o.pos, o.where, after.attrs if after else o.attrs)
        state = _State(objs, step.after.fixtures, step.before.hand)
    carried: dict[str, tuple[float, float]] = {}
    if u < 0.3:
        hand = _lerp(prev_hand, step.src, u / 0.3)
    elif a.obj is not None and a.to is not None:
        hand = _lerp(step.src, step.dst, (u - 0.3) / 0.45)
        carried[a.obj] = hand
    else:
        hand = step.src
    if a.work and u >= 0.3:
        wig = 2.5 * math.sin(2 * math.pi * 1.25 * (t - a.start))
        hand = (hand[0] + wig, hand[1] + 0.5 * wig)
        if a.obj is not None:
            carried[a.obj] = hand
    return _draw(cv, state, hand, carried)


def iter_frames(script: VideoScript, *, size: int = 64, fps: float = 8.0) -> Iterator[np.ndarray]:
    """Yield the frames of `script` as (size, size, 3) uint8 RGB arrays at `fps`, frame i at time i / fps; the floor
    is the colour of the home the video is in at that time (`VideoScript.home_at`)."""
    canvases = {h: _Canvas(size, FLOORS[h]) for h in {script.home, *(h for _, h in script.visits)}}
    steps = _simulate(script)
    starts = [s.action.start for s in steps]
    n = int(round(script.duration * fps))
    for i in range(n):
        t = i / fps
        j = max(bisect.bisect_right(starts, t) - 1, 0)
        prev_hand = steps[j - 1].dst if j > 0 else HAND_REST
        yield _frame_at(canvases[script.home_at(t)], steps[j], prev_hand, t)


def render_video(script: VideoScript, path: str | os.PathLike[str], *, size: int = 64, fps: float = 8.0) -> None:
    """Encode `script` as an H.264 mp4 at `path` (yuv420p, a keyframe every clip window, one encoder thread so
    the same script gives the same bytes)."""
    if size < 32 or size % 2:
        raise ValueError(f"size must be an even number of pixels >= 32, not {size}")
    if not fps > 0:
        raise ValueError(f"fps must be positive, not {fps}")
    from fractions import Fraction

    import av  # here, not at the top: `videorecap synth --help` and the world's scripts need no encoder

    rate = Fraction(fps).limit_denominator(1000)
    with av.open(os.fspath(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width = size
        stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.gop_size = max(int(round(fps * script.clip_seconds)), 1)
        stream.options = {"crf": "18", "preset": "veryfast", "threads": "1"}
        for img in iter_frames(script, size=size, fps=fps):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    logger.debug("rendered %s: %.1f s at %d px, %g fps", path, script.duration, size, fps)
