"""ONNX Runtime against PyTorch for the video encoder, fp32 and int8 (issue 15 §2: int8 "dynamic quantization or
ONNX Runtime, whichever measures faster").

The encoder (TimeSformer-B, about 70 % of a video-hour) is exported to ONNX once per run and run by ONNX Runtime's
CPU provider in fp32 and after `onnxruntime.quantization.quantize_dynamic` (int8 weights, int8 activations quantized
per call; once as is and once with `reduce_range`, 7-bit weights, which ONNX Runtime advises on CPUs without VNNI),
next to PyTorch's own paths as `--precision` prepares them (fp32, fp32-onednn, int8 = dynamic
quantization of every Linear). Same process, same threads, same input, repeats with median and spread:

- speed: recap-base clip encoder at random weights, per clip;
- error: the largest |output - PyTorch fp32| relative to the spread of PyTorch fp32's output;
- fidelity (`--gate-videos N`, 0 skips it): the bundled recap-synth model captions the precision gate's held-out
  synthetic videos with its clip encoder replaced by the ONNX Runtime one, against PyTorch fp32
  (`videorecap.synth.precision_gate.compare_captions`: identical clip captions, CIDEr delta per level).

ONNX Runtime is not a dependency of videorecap; this script needs `pip install onnxruntime onnx onnxscript`.

    python benchmarks/bench_onnx.py                      # about 4 min on 2 idle cores
    python benchmarks/bench_onnx.py --gate-videos 0      # speed only
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import sys
import tempfile
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from _machine import LOADED_NOTE, Timing, add_timing_arguments, check_load, machine_block, ratio, timed

import videorecap.model.encoder as encoder_module
from videorecap.config import RecapConfig
from videorecap.model.recap import VideoRecap
from videorecap.runtime import compute_context, prepare_model, set_threads


def _attention_4d(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    """`F.scaled_dot_product_attention` with the leading axes folded into one: the same attention, written in the
    4-D form that the ONNX exporter translates (the encoder's temporal and spatial attention use 5-D tensors)."""
    if q.dim() == 4:
        return F.scaled_dot_product_attention(q, k, v, *args, **kwargs)
    lead = q.shape[:-2]

    def fold(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(1, -1, *t.shape[-2:])

    out = F.scaled_dot_product_attention(fold(q), fold(k), fold(v), *args, **kwargs)
    return out[0].reshape(*lead, *out.shape[-2:])


@contextlib.contextmanager
def _exportable_attention() -> Iterator[None]:
    """While exporting, the encoder module sees `F` with the 4-D attention above (nothing else changes)."""
    functional = types.SimpleNamespace(**{k: getattr(F, k) for k in dir(F) if not k.startswith("__")})
    functional.scaled_dot_product_attention = _attention_4d
    encoder_module.F = functional  # type: ignore[assignment]
    try:
        yield
    finally:
        encoder_module.F = F


def export_encoder(enc: nn.Module, example: torch.Tensor, folder: Path) -> dict[str, Path]:
    """The encoder as ONNX (dynamic batch) and two int8 dynamic quantizations of it, by row name.

    "int8" is `quantize_dynamic`'s default (8-bit weights). "int8, reduce_range" has 7-bit weights, as ONNX Runtime
    advises for CPUs without VNNI: their u8 x s8 kernels add pairs of products in 16 bits, which 8-bit weights can
    overflow (PyTorch's FBGEMM reduces the activations' range instead, for the same reason).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from torch.export import Dim

    fp32, int8, int8_7 = folder / "encoder.onnx", folder / "encoder_int8.onnx", folder / "encoder_int8_7bit.onnx"
    with _exportable_attention(), torch.no_grad():
        torch.onnx.export(
            enc, (example,), fp32, dynamo=True, input_names=["video"], output_names=["tokens"],
            dynamic_shapes=({0: Dim("batch")},), external_data=True, verbose=False,
        )  # fmt: skip
    quantize_dynamic(fp32, int8, weight_type=QuantType.QInt8, use_external_data_format=True)
    quantize_dynamic(fp32, int8_7, weight_type=QuantType.QInt8, reduce_range=True, use_external_data_format=True)
    return {"onnxruntime fp32": fp32, "onnxruntime int8": int8, "onnxruntime int8, reduce_range": int8_7}


class OrtEncoder(nn.Module):
    """An ONNX Runtime session in place of the encoder: `(B, 3, T, S, S)` pixels -> `(B, 1+T*P, C)` tokens."""

    def __init__(self, like: nn.Module, path: Path, threads: int) -> None:
        import onnxruntime as ort

        super().__init__()
        self.config = like.config  # the pipeline reads the encoder's sizes from here
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        (tokens,) = self.session.run(None, {self.input: video.float().contiguous().numpy()})
        return torch.from_numpy(tokens)


def speed(args: argparse.Namespace, threads: int, folder: Path) -> tuple[dict[str, Timing], dict[str, float]]:
    torch.manual_seed(0)
    base = VideoRecap(RecapConfig.from_name("recap-base", level="clip")).eval()
    e = base.config.encoder
    x = torch.randn(args.enc_batch, 3, e.num_frames, e.image_size, e.image_size)
    assert base.encoder is not None
    paths = export_encoder(base.encoder, x, folder)
    times: dict[str, Timing] = {}
    outs: dict[str, torch.Tensor] = {}
    for prec in ("fp32", "fp32-onednn", "int8"):
        model = prepare_model(copy.deepcopy(base), prec) if prec != "fp32" else base
        enc = model.encoder
        assert enc is not None
        with torch.inference_mode(), compute_context("cpu", prec):
            times[prec] = timed(lambda enc=enc: enc(x), args.repeats)
        outs[prec] = times[prec].out.float()
        times[prec].out = None
    for name, path in paths.items():
        ort_enc = OrtEncoder(base.encoder, path, threads)
        times[name] = timed(lambda ort_enc=ort_enc: ort_enc(x), args.repeats)
        outs[name] = times[name].out
        times[name].out = None
    ref = outs["fp32"]
    errors = {k: float((o - ref).abs().max() / ref.std()) for k, o in outs.items()}
    return times, errors


def gate(videos: int, threads: int, folder: Path) -> dict[str, Any]:
    """The bundled recap-synth model with its clip encoder run by ONNX Runtime (fp32, int8) vs PyTorch fp32."""
    from videorecap.pipeline import Captioner
    from videorecap.synth.model import bundled_model_dir
    from videorecap.synth.precision_gate import compare_captions, gate_videos

    clips = gate_videos(folder, videos)
    ref = Captioner.load(bundled_model_dir(), precision="fp32")
    enc = ref.model("clip").encoder
    assert enc is not None
    e = enc.config
    paths = export_encoder(enc, torch.zeros(2, 3, e.num_frames, e.image_size, e.image_size), folder)
    out = {}
    for name, path in paths.items():
        cap = Captioner.load(bundled_model_dir(), precision="fp32")
        cap.model("clip").encoder = OrtEncoder(enc, path, threads)  # type: ignore[assignment]
        out[name] = compare_captions(ref, cap, clips)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--enc-batch", type=int, default=4, help="clips per encoder forward (default 4)")
    p.add_argument("--threads", type=int, default=None, help="torch and ONNX Runtime threads (default: the CLI's "
                   "default policy)")  # fmt: skip
    p.add_argument("--gate-videos", type=int, default=16, help="held-out videos for the fidelity comparison "
                   "(default 16, as RESULTS' gate; 0 skips it)")  # fmt: skip
    add_timing_arguments(p)
    args = p.parse_args(argv)
    try:
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as e:
        print(f"bench_onnx: {e.name} is not installed: pip install onnxruntime onnx onnxscript", file=sys.stderr)
        return 2
    check_load(args.allow_load, "bench_onnx")
    threads, _ = set_threads(args.threads)
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        times, errors = speed(args, threads, Path(tmp))
        gated = gate(args.gate_videos, threads, Path(tmp)) if args.gate_videos > 0 else {}
    print(f"## ONNX Runtime vs PyTorch, recap-base video encoder (`python benchmarks/bench_onnx.py "
          f"{' '.join(argv if argv is not None else sys.argv[1:])}`)\n")  # fmt: skip
    print(machine_block({
        "threads": f"torch {threads}, onnxruntime {threads} (intra-op)",
        "onnxruntime": ort.__version__,
        "repeats": f"{args.repeats} timed after 1 warm-up",
    }))  # fmt: skip
    print(f"\n| encoder path | ms per clip (batch {args.enc_batch}) | vs PyTorch fp32 | vs fp32-onednn | vs PyTorch "
          "int8 | max error (of fp32's std) |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for name, t in times.items():
        vs = [ratio(times[k], t) if k != name else "-" for k in ("fp32", "fp32-onednn", "int8")]
        print(f"| {name} | {t.fmt(1000 / args.enc_batch, '', 1)} | {' | '.join(vs)} | {errors[name]:.2e} |")
    print(f"\nRatios: median ratio (worst case over the spreads). {LOADED_NOTE}")
    if gated:
        print(f"\nFidelity on {args.gate_videos} held-out synthetic videos (recap-synth, clip encoder replaced; "
              "against PyTorch fp32):\n")  # fmt: skip
        print("| clip encoder | identical clip captions | CIDEr delta clip / segment / video |")
        print("|---|---|---|")
        for name, c in gated.items():
            deltas = " / ".join(f"{d:+.2f}" for d in c.cider_delta.values())
            print(f"| {name} | {100 * c.identical_clips:.1f} % of {c.clips} | {deltas} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
