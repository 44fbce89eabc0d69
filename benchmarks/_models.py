"""The models the benchmarks caption with: a bundled model by name, or recap-base's architecture with random weights.

recap-base (the official sizes: TimeSformer-B, GPT-2 base decoders) has no weights on this machine, so its costs are
measured with random weights and GPT-2's tokenizer: every caption then runs to its token limit (random weights
never emit EOS), which is the upper bound of a real caption's cost.
"""

from __future__ import annotations

from typing import Any


def captioner_for(name: str, precision: str = "fp32", device: str = "cpu") -> Any:
    """A `pipeline.Captioner` of the bundled model `name`, or of recap-base with random weights (seed 0), on
    `device` in `precision` as the CLI's `--precision` would (`runtime.resolve_precision`)."""
    import torch

    from videorecap.pipeline import Captioner

    if name != "recap-base":
        cap = Captioner.load(name, precision=precision, device=device)
        for m, _ in cap.models.values():
            m.to(device)
        return cap
    from videorecap.config import RecapConfig
    from videorecap.model.recap import VideoRecap
    from videorecap.tokenizer import Tokenizer

    torch.manual_seed(0)
    tok = Tokenizer.gpt2()
    cap = Captioner({lv: (VideoRecap(RecapConfig.from_name("recap-base", level=lv)), tok)
                     for lv in ("clip", "segment", "video")})  # fmt: skip
    for m, _ in cap.models.values():
        m.to(device)
    cap.use_precision(precision, device)
    return cap
