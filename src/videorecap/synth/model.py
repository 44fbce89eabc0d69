"""The `recap-synth` preset: a small Video ReCap that learns the synthetic kitchen world on a CPU.

Everything is trained from scratch (no pretrained encoder or GPT-2 exists at this size): the 64-px TimeSformer at
the clip stage, the Q-Formers and the decoder at every stage. Sizes follow the world (docs/synth.md): 4-s clips,
40-s segments of 10 clips, videos of a few minutes; the vocabulary is the world's 302 words plus punctuation.

Importing this module registers the preset; `RecapConfig.from_name("recap-synth")` imports it on demand (by name:
config.py lists it in `_BUNDLED_PRESETS`, so config never imports this package).
"""

from __future__ import annotations

import copy
import functools
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from videorecap.config import (
    LEVELS,
    AlignerConfig,
    ArchConfig,
    DecoderConfig,
    EncoderConfig,
    ModelLevel,
    RecapConfig,
    TokenConfig,
    TrainOptions,
    register_preset,
)
from videorecap.config import bundled_model_dir as bundled_model_dir  # re-exported: the bundled model's folder
from videorecap.levelio import FeatureSampling, LevelIO
from videorecap.tokenizer import Tokenizer

if TYPE_CHECKING:
    from videorecap.pipeline import Captioner
    from videorecap.results import CaptionResult
    from videorecap.synth.world import VideoScript

logger = logging.getLogger(__name__)

PRESET = "recap-synth"
# Punctuation and the narration marker the ground truth writes besides the words of `world.vocabulary()`.
_SYMBOLS = ("#", ",", ".")
# Previous-level text fed to the text aligner: 10 clip captions (~12 tokens) or ~8 segment descriptions (~25).
_MAX_TEXT_TOKENS = 256


@functools.cache
def synth_tokenizer() -> Tokenizer:
    """The word-level tokenizer of the synthetic world (pad 0, bos 1, eos 2, unk 3), built deterministically.

    Trained on the text of 300 fixed scripts (every level) plus every word of the vocabulary with and without a
    leading space, so each piece the world writes ("#", "C" glued to it, words, "," and ".") is known.
    """
    from videorecap.synth.world import make_script, vocabulary

    corpus = [" ".join(vocabulary()), "".join(f"{w} " for w in vocabulary()), " ".join(_SYMBOLS)]
    for k in range(300):
        s = make_script([7919, k], 2.0, vid="v")
        corpus += [t for _, _, _, t in s.clip_rows()]
        corpus += [r["segment_description"] for r in s.segment_rows()]
        corpus.append(s.video_row()["video_summary"])
    return Tokenizer.train_word_level(corpus)


def _recap_synth(level: ModelLevel | None) -> RecapConfig:
    level = level or "clip"
    vocab = synth_tokenizer().vocab_size
    # 64-px frames in 16-px patches: 16 patches x 4 frames + CLS = 65 tokens per clip.
    enc = EncoderConfig(image_size=64, patch_size=16, num_frames=4, width=128, layers=2, heads=4)
    # cross_init_std: see AlignerConfig; at BERT's 0.02 this from-scratch model learns to ignore the video
    al = AlignerConfig(
        width=128, layers=2, heads=4, intermediate=256, context_width=128, dropout=0.1, cross_init_std=0.2
    )
    dec = DecoderConfig(
        vocab_size=vocab,
        # segment/video levels embed up to 256 tokens of previous-level text with the same position table
        n_positions=128 if level == "clip" else _MAX_TEXT_TOKENS,
        n_embd=128,
        n_layer=2,
        n_head=4,
        context_width=128,
        cross_attn_freq=1,
        gated=False,  # from scratch: cross-attention on from the start (no zero-initialised tanh gates)
        xattn_mlp_ratio=2,
        dropout=0.1,
    )
    # (video queries, text queries) per level; the segment level's queries are few, as in the original (32 vs 256)
    queries = {"clip": (16, 0), "segment": (8, 16), "video": (16, 16), "unified": (16, 16)}[level]
    arch = ArchConfig(
        name=PRESET,
        level=level,
        encoder=enc,
        video_aligner=al,
        text_aligner=copy.deepcopy(al),
        decoder=dec,
        tokens=TokenConfig(bos_token_id=1, eos_token_id=2, pad_token_id=0, max_text_tokens=_MAX_TEXT_TOKENS),
        num_video_queries=queries[0],
        num_text_queries=queries[1],
    )
    io = LevelIO(
        segment=FeatureSampling(10, "uniform"),  # one feature per 4-s clip of a 40-s segment
        video=FeatureSampling(64, "masking"),  # a 4-minute video has 60 clips; longer ones are sampled
        clip_seconds=4.0,
        segment_seconds=40.0,
        # captions are at most ~13 tokens, descriptions ~35, summaries ~70
        max_new_tokens={"clip": 24, "segment": 48, "video": 96},
    )
    return RecapConfig(arch=arch, io=io)


# Trained from scratch: every part trains (the recipe's model.train_* keys start from these).
SYNTH_TRAINING = TrainOptions(train_encoder=True, train_aligner=True, train_decoder=True)


# The model card of the bundled model (meta.json `card`): `caption` warns and the page shows a banner with it.
SYNTH_CARD = {
    "domain": "synthetic",
    "note": "knows only the synthetic kitchen world of `videorecap synth`; use the released Video ReCap weights "
    "for real videos (docs/released-weights.md)",
}


register_preset(PRESET, _recap_synth, training=SYNTH_TRAINING)


# ---- scoring against the world's truth ------------------------------------------------------------------------
def truth_of(script: VideoScript) -> dict[str, list[tuple[float, str]]]:
    """The ground truth of a rendered video per level, as (start seconds, text) in time order."""
    return {
        "clip": [(float(s), str(t)) for _, s, _, t in script.clip_rows()],
        "segment": [(float(r["start_sec"]), str(r["segment_description"])) for r in script.segment_rows()],
        "video": [(0.0, str(script.video_row()["video_summary"]))],
    }


def pairs_of(result: CaptionResult, script: VideoScript) -> dict[str, list[tuple[str, str]]]:
    """(prediction, truth) per level, matched by window start; windows without a counterpart are left out."""
    preds = {
        "clip": {round(c.start, 3): c.text for c in result.clips},
        "segment": {round(c.start, 3): c.text for c in result.segments},
        "video": {0.0: result.summary.text} if result.summary is not None else {},
    }
    out: dict[str, list[tuple[str, str]]] = {}
    for level, rows in truth_of(script).items():
        p = preds[level]
        out[level] = [(p[round(s, 3)], t) for s, t in rows if round(s, 3) in p]
    return out


def default_metrics() -> list[str]:
    """CIDEr and ROUGE-L always; METEOR too when Java is installed."""
    from videorecap.errors import MissingDependencyError
    from videorecap.metrics.java import find_java

    try:
        find_java()
    except MissingDependencyError:
        return ["cider", "rouge_l"]
    return ["cider", "rouge_l", "meteor"]


def score_pairs(
    pairs: Mapping[str, Sequence[tuple[str, str]]], metrics: Sequence[str] | None = None
) -> dict[str, dict[str, float]]:
    """Corpus scores (original protocol, x100) per level of (prediction, truth) pairs."""
    from videorecap.metrics.scorers import score_levels

    metrics = list(metrics) if metrics is not None else default_metrics()
    # score_levels: one METEOR process for all levels (starting the jar takes seconds); empty levels are left out
    items = {level: ([p for p, _ in ps], [[t] for _, t in ps]) for level, ps in pairs.items()}
    return score_levels(items, protocol="original", metrics=metrics)


def heldout_pairs(
    captioner: Captioner,
    work_dir: str | os.PathLike[str],
    *,
    videos: int = 4,
    minutes: float = 4.0,
    seed: int = 1000,
    batch_size: int = 32,
) -> dict[str, list[tuple[str, str]]]:
    """Render `videos` held-out videos (`make_video(seed=seed, index=k)`), caption them, and return the
    (prediction, truth) pairs of each level (`pairs_of`), in video order."""
    from videorecap.pipeline import CaptionOptions, caption_video
    from videorecap.synth.make import make_video

    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    pairs: dict[str, list[tuple[str, str]]] = {lv: [] for lv in LEVELS}
    for k in range(videos):
        path = work / f"heldout_{seed}_{k:03d}.mp4"
        script = make_video(path, seed=seed, minutes=minutes, index=k)
        result = caption_video(path, captioner, CaptionOptions(batch_size=batch_size))
        for lv, ps in pairs_of(result, script).items():
            pairs[lv] += ps
    return pairs


def heldout_metrics(
    captioner: Captioner,
    work_dir: str | os.PathLike[str],
    *,
    videos: int = 4,
    minutes: float = 4.0,
    seed: int = 1000,
    baseline: Mapping[str, str] | None = None,
    metrics: Sequence[str] | None = None,
    batch_size: int = 32,
) -> dict[str, Any]:
    """Score the `heldout_pairs` of each level.

    Returns `{"model": {level: scores}, "counts": {level: n}}`, plus `"baseline"` (the same truth scored against
    one constant text per level) when `baseline` is given. Deterministic: the same model and arguments give the
    same numbers.
    """
    pairs = heldout_pairs(captioner, work_dir, videos=videos, minutes=minutes, seed=seed, batch_size=batch_size)
    out: dict[str, Any] = {
        "model": score_pairs(pairs, metrics),
        "counts": {lv: len(ps) for lv, ps in pairs.items()},
    }
    if baseline is not None:
        const = {lv: [(baseline[lv], t) for _, t in ps] for lv, ps in pairs.items()}
        out["baseline"] = score_pairs(const, metrics)
    logger.info("held-out scores: %s", out["model"])
    return out
