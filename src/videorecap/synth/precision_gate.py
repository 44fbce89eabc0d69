"""The fidelity gate of a non-fp32 path (`--precision bf16|int8|fp32-onednn`): does it caption like fp32?

On held-out videos of the synthetic world, captioned at every level by the bundled recap-synth model once in fp32
and once in the path's precision (`fidelity_gate`):

- **identical clip captions**: the share of clip windows whose caption is the same text as fp32's;
- **CIDEr delta per level**: the path's CIDEr against the world's truth minus fp32's (goal: less than 1 point,
  issue 15); a segment or summary sees the clip captions below it, so this is the end-to-end effect;
- **logits error**: teacher-forced clip-level logits of the first windows (pixels in, the truth's tokens as the
  decoder's input) against fp32's: the largest absolute difference relative to the spread of fp32's logits, and the
  share of positions where the top token agrees.

A path passes when every level's |CIDEr delta| < `MAX_CIDER_DELTA`, at least `MIN_IDENTICAL` of the clip captions
are identical and the top token agrees at `MIN_TOP1` of the positions. `runtime.resolve_precision` lets `auto`
pick bf16 or fp32-onednn only when the recorded result (videorecap/assets/precision_gate.json) says it passed; the
record is written by

    python -m videorecap.synth.precision_gate --write          # bf16, int8, fp32-onednn: 1-2 minutes on 2 cores

and tests/test_precision.py recomputes a small gate on the machine that runs the tests. The record, not a
computation at first use, because `auto` is read by every command and must cost nothing; bf16 arithmetic is the
same rounding on every CPU that has it (the products are exact in fp32, the sums are fp32), so a result measured on
one machine holds on another up to the order of the sums, which is what the test checks where it runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from videorecap.config import LEVELS

logger = logging.getLogger(__name__)

MAX_CIDER_DELTA = 1.0  # points of CIDEr (x100), per level
MIN_IDENTICAL = 0.9  # share of clip captions identical to fp32's
MIN_TOP1 = 0.99  # share of teacher-forced positions whose top token is fp32's


@dataclass
class GateResult:
    precision: str
    identical_clips: float  # share of clip windows captioned exactly as in fp32
    clips: int
    cider_fp32: dict[str, float]
    cider: dict[str, float]
    cider_delta: dict[str, float]
    logits_max_rel_err: float  # max |logits - fp32 logits| / std(fp32 logits)
    logits_top1_agree: float
    passed: bool
    setup: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        deltas = ", ".join(f"{lv} {d:+.2f}" for lv, d in self.cider_delta.items())
        return (
            f"{self.precision}: {'PASS' if self.passed else 'FAIL'}; identical clip captions "
            f"{100 * self.identical_clips:.1f}% of {self.clips}; CIDEr delta {deltas}; logits max error "
            f"{self.logits_max_rel_err:.4f} of their std, top token agrees {100 * self.logits_top1_agree:.2f}%"
        )


def _captions(captioner: Any, videos: list[tuple[Path, Any]], batch_size: int) -> dict[str, list[tuple[str, str]]]:
    from videorecap.pipeline import CaptionOptions, caption_video
    from videorecap.synth.model import pairs_of

    pairs: dict[str, list[tuple[str, str]]] = {lv: [] for lv in LEVELS}
    for path, script in videos:
        result = caption_video(path, captioner, CaptionOptions(batch_size=batch_size))
        for lv, ps in pairs_of(result, script).items():
            pairs[lv] += ps
    return pairs


def window_frames(captioner: Any, path: Path, spans: list[tuple[float, float]]) -> torch.Tensor:
    """The clip encoder's input for windows `(start, end)` of `path`: `(windows, 3, T, S, S)`."""
    from videorecap.video.reader import iter_windows
    from videorecap.video.transforms import eval_transform

    cfg = captioner.model("clip").encoder.config
    return torch.stack([eval_transform(f, cfg.image_size) for _, f in iter_windows(path, spans, cfg.num_frames)])


def teacher_forced(
    captioner: Any, path: Path, rows: list[tuple[float, float, str]]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Clip-level logits with each row's text as the decoder's input (its window's frames in): `(rows, positions,
    vocab)` in fp32, and which positions are real `(rows, positions)` (the rest is padding). Position i predicts
    token i+1 of BOS + text + EOS."""
    model, tok = captioner.model("clip"), captioner.tokenizer("clip")
    t = model.config.tokens
    ids = [[t.bos_token_id, *tok.encode(text), t.eos_token_id] for _, _, text in rows]
    n = max(len(x) for x in ids)
    caption_ids = torch.tensor([x + [t.pad_token_id] * (n - len(x)) for x in ids])
    video = window_frames(captioner, path, [(s, e) for s, e, _ in rows])
    with torch.no_grad(), captioner.compute("cpu"):
        _, logits = model("clip", caption_ids, video=video)
    return logits.float(), caption_ids[:, 1:] != t.pad_token_id


def _logits(captioner: Any, path: Path, script: Any, windows: int) -> torch.Tensor:
    """Teacher-forced clip-level logits of the first `windows` windows, the truth's text in: (real positions, vocab)."""
    rows = [(float(s), float(e), str(t)) for _, s, e, t in script.clip_rows()][:windows]
    logits, keep = teacher_forced(captioner, path, rows)
    return logits[keep]


def gate_videos(work: Path, videos: int = 4, minutes: float = 4.0, seed: int = 1000) -> list[tuple[Path, Any]]:
    """Render the gate's held-out synthetic videos into `work`: (path, script) each."""
    from videorecap.synth.make import make_video

    clips = []
    for k in range(videos):
        path = work / f"gate_{seed}_{k:03d}.mp4"
        clips.append((path, make_video(path, seed=seed, minutes=minutes, index=k)))
    return clips


@dataclass
class Comparison:
    identical_clips: float  # share of clip windows captioned exactly as by the reference
    clips: int
    cider_ref: dict[str, float]
    cider: dict[str, float]
    cider_delta: dict[str, float]

    def passed(self) -> bool:
        """The caption part of the gate: every level's |CIDEr delta| and the share of identical clip captions."""
        return (
            all(abs(d) < MAX_CIDER_DELTA for d in self.cider_delta.values()) and self.identical_clips >= MIN_IDENTICAL
        )


def compare_captions(ref_cap: Any, cap: Any, clips: list[tuple[Path, Any]], batch_size: int = 32) -> Comparison:
    """Caption `clips` (from `gate_videos`) at every level with both captioners; CIDEr against the world's truth."""
    from videorecap.metrics.scorers import score_levels

    ref, got = _captions(ref_cap, clips, batch_size), _captions(cap, clips, batch_size)

    def cider(pairs: dict[str, list[tuple[str, str]]]) -> dict[str, float]:
        items = {lv: ([p for p, _ in ps], [[t] for _, t in ps]) for lv, ps in pairs.items() if ps}
        scores = score_levels(items, protocol="original", metrics=["cider"])
        return {lv: float(s["cider"]) for lv, s in scores.items()}

    c_ref, c_got = cider(ref), cider(got)
    same = sum(a == b for (a, _), (b, _) in zip(ref["clip"], got["clip"], strict=True))
    return Comparison(
        identical_clips=same / max(1, len(ref["clip"])),
        clips=len(ref["clip"]),
        cider_ref=c_ref,
        cider=c_got,
        cider_delta={lv: c_got[lv] - c_ref[lv] for lv in c_ref},
    )


def fidelity_gate(
    precision: str,
    work_dir: str | os.PathLike[str] | None = None,
    *,
    videos: int = 4,
    minutes: float = 4.0,
    seed: int = 1000,
    batch_size: int = 32,
    logit_windows: int = 16,
) -> GateResult:
    """Compare `precision` ("bf16", "int8", "fp32-onednn"; "+compile" after one of them: with `--compile`'s compiled
    encoder) with fp32 on `videos` held-out synthetic videos (see the module doc)."""
    from videorecap.pipeline import Captioner
    from videorecap.synth.model import bundled_model_dir

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(work_dir) if work_dir is not None else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        clips = gate_videos(work, videos, minutes, seed)
        model_dir = bundled_model_dir()
        ref_cap = Captioner.load(model_dir, precision="fp32")
        base, plus, extra = precision.partition("+")
        if plus and extra != "compile":
            raise ValueError(f"{precision!r}: the only addition to a precision is +compile")
        cap = Captioner.load(model_dir, precision=base)
        if extra:
            cap.compile_encoder()  # loaded from the compile cache, or compiled into it
        cmp = compare_captions(ref_cap, cap, clips, batch_size)
        ref_logits = _logits(ref_cap, *clips[0], logit_windows)
        got_logits = _logits(cap, *clips[0], logit_windows)

    err = float((got_logits - ref_logits).abs().max() / ref_logits.std())
    top1 = float((got_logits.argmax(-1) == ref_logits.argmax(-1)).float().mean())
    passed = cmp.passed() and top1 >= MIN_TOP1
    from videorecap.runtime import cpu_isa, fast_bf16_cpu

    result = GateResult(
        precision=precision,
        identical_clips=cmp.identical_clips,
        clips=cmp.clips,
        cider_fp32=cmp.cider_ref,
        cider=cmp.cider,
        cider_delta=cmp.cider_delta,
        logits_max_rel_err=err,
        logits_top1_agree=top1,
        passed=passed,
        setup={
            "videos": videos,
            "minutes": minutes,
            "seed": seed,
            "batch_size": batch_size,
            "model": "recap-synth (bundled)",
            "torch": torch.__version__,
            "cpu_kernels": torch.backends.cpu.get_cpu_capability(),
            "fast_bf16": fast_bf16_cpu() or "no",
            "isa": cpu_isa(),
            "thresholds": {"cider_delta": MAX_CIDER_DELTA, "identical": MIN_IDENTICAL, "top1": MIN_TOP1},
        },  # fmt: skip
    )
    logger.info("fidelity gate: %s", result.summary())
    return result


def main(argv: list[str] | None = None) -> int:
    from videorecap import fileio
    from videorecap.runtime import GATE_FILE, gate_results

    p = argparse.ArgumentParser(description="the fidelity gate of the non-fp32 paths (videorecap.synth.precision_gate)")
    p.add_argument("--precisions", default="bf16,int8,fp32-onednn", help="the paths to gate, comma-separated "
                   "(default: %(default)s; PRECISION+compile: with the compiled encoder of --compile); --write keeps "
                   "the record of the others")  # fmt: skip
    p.add_argument("--videos", type=int, default=4)
    p.add_argument("--minutes", type=float, default=4.0)
    p.add_argument("--write", action="store_true", help="record the results in videorecap/assets/" + GATE_FILE)
    args = p.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    results = gate_results()  # the record of paths not gated this time stays as it is
    for prec in (x.strip() for x in args.precisions.split(",") if x.strip()):
        r = fidelity_gate(prec, videos=args.videos, minutes=args.minutes)
        print(r.summary(), flush=True)
        results[prec] = r.to_dict()
    if args.write:
        target = Path(__file__).resolve().parent.parent / "assets" / GATE_FILE
        fileio.write_text(target, json.dumps(results, indent=1, sort_keys=True) + "\n")
        print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
