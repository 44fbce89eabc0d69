"""The models the benchmarks caption with: a bundled model by name, or recap-base's architecture with random weights.

recap-base (the official sizes: TimeSformer-B, GPT-2 base decoders) has no weights on this machine, so its costs are
measured with random weights and GPT-2's tokenizer: every caption then runs to its token limit (random weights
never emit EOS), which is the upper bound of a real caption's cost.
"""

from __future__ import annotations

from typing import Any


def captioner_for(name: str, precision: str = "fp32", device: str = "cpu") -> Any:
    """A `pipeline.Captioner` of the bundled model `name`, or of recap-base with random weights (seed 0), on
    `device` in `precision` as the CLI's `--precision` would (`runtime.resolve_precision`). `PRECISION+compile`: its
    clip encoder compiled as `--compile` compiles it (`prepare_compiled` loads or compiles it before a timing)."""
    precision, plus, what = precision.partition("+")
    if plus and what != "compile":
        raise SystemExit(f"precision {precision}+{what}: only PRECISION+compile is known")
    cap = _captioner(name, precision, device)
    if plus:
        cap.compile_encoder()
    return cap


def prepare_compiled(cap: Any) -> float | None:
    """Seconds to compile (or load from the cache) a compiled clip encoder, done now so that no timing holds it; None
    when the captioner's encoder is not compiled."""
    import time

    if not cap.compiled:
        return None
    encoder = cap.model("clip").encoder
    t0 = time.perf_counter()
    encoder.prepare(encoder.example())
    return time.perf_counter() - t0


def _captioner(name: str, precision: str, device: str) -> Any:
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
