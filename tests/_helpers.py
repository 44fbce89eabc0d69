"""Helpers shared by the test modules (fixtures that use them are in conftest.py).

Test modules import them as `from _helpers import ...`: pytest puts `tests/` on `sys.path` for the root conftest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from videorecap.config import RecapConfig
from videorecap.model.decoder import GatedGPT2
from videorecap.model.recap import VideoRecap
from videorecap.tokenizer import Tokenizer


def word_tokenizer(n_words: int = 100) -> Tokenizer:
    """A word-level tokenizer of the words `w0 ... w{n-1}` (what the tiny models' captions are made of)."""
    return Tokenizer.train_word_level([" ".join(f"w{i}" for i in range(n_words))])


def open_gates(model: VideoRecap, *, xmlp: bool = True, eos_shift: float | None = -2.0) -> VideoRecap:
    """Open a freshly initialised model's cross-attention gates, so its captions depend on its input.

    A new model's gates are 0 (tanh(0) = 0: the decoder ignores the context, as the original initialises it);
    `eos_shift` lowers the EOS embedding (id 2) so that a random model rarely stops at once and captions are not
    empty. `xmlp=False` leaves the cross-attention MLP gate closed.
    """
    with torch.no_grad():
        for blk in model.decoder.h:
            blk.xattn_gate.fill_(1.0)
            if xmlp:
                blk.xmlp_gate.fill_(1.0)
        if eos_shift is not None:
            model.decoder.wte.weight[2] += eos_shift
    return model


def tiny_recap(level: str, *, xmlp: bool = True, **overrides: Any) -> VideoRecap:
    """A `recap-tiny` model of `level` (config `overrides` allowed) in eval mode, gates open (`open_gates`)."""
    return open_gates(VideoRecap(RecapConfig.from_name("recap-tiny", level=level, **overrides)).eval(), xmlp=xmlp)


# ---- captions folders for the search tests ----
def write_captions(path: Path, vid: str, clips: list[tuple[float, float, str]], segments: Any = ()) -> Any:
    """A captions.json at `path` with the given clip captions and segment descriptions."""
    from videorecap.results import Caption, CaptionResult, VideoMeta

    end = max([e for _, e, _ in [*clips, *segments]] + [1.0])
    result = CaptionResult(
        video=VideoMeta(vid, f"{vid}.mp4", end),
        clips=[Caption(s, e, t) for s, e, t in clips],
        segments=[Caption(s, e, t) for s, e, t in segments],
    )
    result.save(path)
    return result


def synth_folder(root: Path, n: int, minutes: float = 2.0) -> Path:
    """n held-out synthetic videos' ground truth, one OUT/<id>/captions.json each (as `videorecap caption` lays out)."""
    from videorecap.synth.make import truth_result, video_id, video_seed
    from videorecap.synth.world import make_script

    for i in range(n):
        s = make_script(video_seed(0, "heldout", i), minutes, vid=video_id("heldout", i))
        truth_result(s).save(root / s.vid / "captions.json")
    return root


def sharp_decoder(seed: int = 0, eos_bias: float = 0.0, rows: int = 6) -> tuple[GatedGPT2, torch.Tensor]:
    """A `recap-tiny` decoder whose weights are perturbed so that its next-token distribution is sharp and depends on
    the context, gates open, and `rows` random contexts (rows, 5, context_width). `eos_bias` makes EOS (id 2) more
    or less likely, so rows end at different steps."""
    torch.manual_seed(seed)
    cfg = RecapConfig.from_name("recap-tiny").decoder
    dec = GatedGPT2(cfg).eval()
    with torch.no_grad():
        for p in dec.parameters():
            p.add_(torch.randn_like(p) * 0.3)  # a sharp, context-dependent distribution
        for blk in dec.h:
            blk.xattn_gate.fill_(1.0)
            blk.xmlp_gate.fill_(1.0)
        dec.wte.weight[2] += eos_bias
    return dec, torch.randn(rows, 5, cfg.context_width)


def model_that_does_not_load(folder: Path) -> Path:
    """A copy of the bundled recap-synth in `folder` whose configs and weight headers are fine (the checks a command
    makes before it creates its output pass) and whose tensor data is cut off (loading it fails)."""
    import shutil

    from videorecap.synth.model import bundled_model_dir

    bad = Path(shutil.copytree(bundled_model_dir(), folder))
    for weights in bad.rglob("model.safetensors"):
        data = weights.read_bytes()
        weights.write_bytes(data[: 8 + int.from_bytes(data[:8], "little") + 16])
    return bad
