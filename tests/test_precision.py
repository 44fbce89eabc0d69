"""--precision: the rule of `auto`, the bf16/int8 paths, the fidelity gate, and decode batching (issue 15 §2)."""

import copy
import os

import pytest
import torch
import torch.nn.functional as F
from _helpers import tiny_recap, word_tokenizer

from videorecap import runtime
from videorecap.errors import InputError
from videorecap.model.decoder import attend_one
from videorecap.pipeline import Captioner, CaptionOptions, caption_video
from videorecap.store import weights_hash
from videorecap.video.testing import make_video

pytestmark = pytest.mark.usefixtures("one_thread")

AVX2 = frozenset({"avx2", "fma"})
ZEN4 = AVX2 | {"avx512f", "avx512_bf16", "avx512_vnni"}
SPR = ZEN4 | {"amx_tile", "amx_bf16", "amx_int8"}


def test_fast_bf16_needs_the_instructions_and_avx512_kernels():
    assert runtime.fast_bf16_cpu(SPR, "AVX512") == "amx"
    assert runtime.fast_bf16_cpu(ZEN4, "AVX512") == "avx512_bf16"
    assert runtime.fast_bf16_cpu(AVX2, "AVX2") is None
    assert runtime.fast_bf16_cpu(ZEN4, "AVX2") is None  # a torch build without AVX-512 kernels cannot use them
    assert runtime.cpu_isa(SPR)[:3] == ["avx2", "fma", "avx512f"] and "amx_bf16" in runtime.cpu_isa(SPR)


@pytest.mark.parametrize("passed", [True, False])
def test_auto_is_bf16_only_on_fast_bf16_cpus_whose_gate_passed(monkeypatch, passed):
    monkeypatch.setattr(runtime, "gate_passed", lambda p: passed and p == "bf16")
    monkeypatch.setattr(runtime, "onednn_speedup", lambda: 1.0)  # this test is about bf16 alone
    want = "bf16" if passed else "fp32"
    assert runtime.resolve_precision("cpu", "auto", flags=SPR, capability="AVX512") == want
    assert runtime.resolve_precision("cpu", "auto", flags=ZEN4, capability="AVX512") == want
    assert runtime.resolve_precision("cpu", "auto", flags=AVX2, capability="AVX2") == "fp32"
    # explicit choices are honoured whatever the gate; int8 is never chosen by auto
    for p in ("fp32", "bf16", "int8"):
        assert runtime.resolve_precision("cpu", p, flags=AVX2, capability="AVX2") == p


def test_bf16_asked_for_on_a_cpu_without_bf16_instructions_warns_once(monkeypatch, caplog):
    monkeypatch.setattr(runtime, "_WARNED", set())
    with caplog.at_level("WARNING", logger="videorecap.runtime"):
        for _ in range(3):  # resolved once per model: one line per process
            assert runtime.resolve_precision("cpu", "bf16", flags=AVX2, capability="AVX2") == "bf16"
    assert [r.levelname for r in caplog.records] == ["WARNING"] and "emulated" in caplog.records[0].getMessage()
    caplog.clear()
    monkeypatch.setattr(runtime, "_WARNED", set())
    with caplog.at_level("WARNING", logger="videorecap.runtime"):
        runtime.resolve_precision("cpu", "bf16", flags=ZEN4, capability="AVX512")  # bf16 dot products: fast
        runtime.resolve_precision("cpu", "fp32", flags=AVX2, capability="AVX2")
    assert caplog.records == []


@pytest.mark.parametrize("gated", [True, False])
def test_auto_takes_onednn_fp32_kernels_only_where_they_measure_faster_and_the_gate_passed(monkeypatch, gated):
    passed = {"fp32-onednn": gated, "bf16": False}
    monkeypatch.setattr(runtime, "gate_passed", lambda p: passed.get(p, False))
    fast = "fp32-onednn" if gated else "fp32"
    assert runtime.resolve_precision("cpu", "auto", flags=AVX2, capability="AVX2", onednn=2.2) == fast
    assert runtime.resolve_precision("cpu", "auto", flags=ZEN4, capability="AVX512", onednn=2.2) == fast
    # below the margin (an Intel CPU with MKL: both about as fast) auto stays with the original's kernels
    assert runtime.resolve_precision("cpu", "auto", flags=AVX2, capability="AVX2", onednn=1.1) == "fp32"
    # a passed bf16 gate on a fast-bf16 CPU comes first
    passed["bf16"] = True
    assert runtime.resolve_precision("cpu", "auto", flags=ZEN4, capability="AVX512", onednn=2.2) == "bf16"
    # without oneDNN in the PyTorch build: auto is fp32, and asking for it is a one-line error
    monkeypatch.setattr(runtime, "onednn_available", lambda: False)
    assert runtime.resolve_precision("cpu", "auto", flags=AVX2, capability="AVX2", onednn=2.2) == "fp32"
    with pytest.raises(InputError, match="no oneDNN"):
        runtime.resolve_precision("cpu", "fp32-onednn")


def test_onednn_fp32_kernels_are_a_cpu_choice():
    with pytest.raises(InputError, match="CPU kernels"):
        runtime.resolve_precision("cuda", "fp32-onednn")
    assert runtime.resolve_precision("cpu", "fp32-onednn") == "fp32-onednn"
    assert runtime.onednn_speedup() > 0 and runtime.onednn_speedup() == runtime.onednn_speedup()  # measured once


@pytest.mark.parametrize("precision", ["int8", "bf16", "fp32-onednn"])
def test_approximate_paths_take_the_fused_attention_kernel(precision):
    m = runtime.prepare_model(tiny_recap("clip").eval(), precision)
    switches = [x for x in m.modules() if hasattr(x, "fast_kernels")]
    assert switches and all(x.fast_kernels for x in switches)
    fp32 = runtime.prepare_model(tiny_recap("clip").eval(), "fp32")
    assert not any(x.fast_kernels for x in fp32.modules() if hasattr(x, "fast_kernels"))  # the original's kernels


def test_quick_gelu_in_inference_is_the_same_bits():
    from videorecap.model.encoder import QuickGELU

    x = torch.randn(3, 7, 64, requires_grad=True)
    ref = x * torch.sigmoid(1.702 * x)  # CLIP's formula, as the original computes it
    with torch.inference_mode():
        fast = QuickGELU()(x.detach())
    assert torch.equal(fast, ref.detach())
    ref.sum().backward()  # training keeps the out-of-place form autograd needs
    x2 = x.detach().requires_grad_()
    QuickGELU()(x2).sum().backward()
    assert torch.equal(x2.grad, x.grad)


def test_onednn_fp32_computes_what_fp32_computes():
    torch.manual_seed(0)
    m = tiny_recap("clip").eval()
    fast = runtime.prepare_model(copy.deepcopy(m), "fp32-onednn")
    linears = [x for x in fast.modules() if type(x) is torch.nn.Linear]
    assert linears and all(x.forward.__func__ is runtime._onednn_forward for x in linears)
    assert fast.decoder.lm_linear is runtime.onednn_linear and m.decoder.lm_linear is F.linear
    switches = [x for x in fast.modules() if hasattr(x, "fast_kernels")]
    assert switches and all(x.fast_kernels for x in switches)
    assert not any(x.fast_kernels for x in m.modules() if hasattr(x, "fast_kernels"))  # fp32: the original's
    assert weights_hash(fast) == weights_hash(m)  # the same weights: only the kernels differ
    ids = torch.randint(0, m.config.decoder.vocab_size, (2, 6))
    video = torch.randn(2, 3, m.encoder.config.num_frames, m.encoder.config.image_size, m.encoder.config.image_size)
    with torch.inference_mode():
        ref, got = m("clip", ids, video=video)[1], fast("clip", ids, video=video)[1]
        assert torch.allclose(got, ref, rtol=1e-5, atol=1e-5) and not torch.equal(got, torch.zeros_like(got))
        # 2D, 3D, strided input, no bias: F.linear's results
        w, x = torch.randn(5, 8), torch.randn(3, 8, 4).transpose(1, 2)
        assert torch.allclose(runtime.onednn_linear(x, w), F.linear(x, w), atol=1e-6)
    # training: gradients flow (the path falls back to F.linear where autograd is needed)
    lin = runtime.prepare_model(torch.nn.Sequential(torch.nn.Linear(8, 3)), "fp32-onednn")[0]
    lin(torch.randn(4, 8)).square().sum().backward()
    assert lin.weight.grad is not None and lin.weight.grad.abs().sum() > 0


def test_the_recorded_gate_is_what_auto_reads_and_it_follows_the_thresholds():
    from videorecap.synth import precision_gate as g

    record = runtime.gate_results()
    assert set(record) >= {"bf16", "int8", "fp32-onednn"}
    for prec, r in record.items():
        ok = (
            all(abs(d) < g.MAX_CIDER_DELTA for d in r["cider_delta"].values())
            and r["identical_clips"] >= g.MIN_IDENTICAL
            and r["logits_top1_agree"] >= g.MIN_TOP1
        )
        assert r["passed"] == ok and runtime.gate_passed(prec) == ok, prec


def test_bad_precisions_are_one_line_errors():
    with pytest.raises(InputError, match="unknown"):
        runtime.resolve_precision("cpu", "fp8")
    with pytest.raises(InputError, match="CPU only"):
        runtime.resolve_precision("cuda", "int8")
    with pytest.raises(InputError, match="CPU kernels"):
        runtime.resolve_precision("cuda", "fp32-onednn")


def test_fp32_leaves_the_model_and_the_arithmetic_alone():
    m = tiny_recap("clip")
    before = weights_hash(m)
    assert runtime.prepare_model(m, "fp32") is m and weights_hash(m) == before
    with runtime.compute_context("cpu", "fp32"):
        assert not torch.is_autocast_enabled("cpu")
    q, k, v = torch.randn(2, 4, 1, 8), torch.randn(2, 4, 5, 8), torch.randn(2, 4, 5, 8)
    assert torch.equal(attend_one(q, k, v, 0.0), F.scaled_dot_product_attention(q, k, v))


def test_bf16_one_query_attention_matches_the_fused_kernel():
    q, k, v = (torch.randn(3, 4, n, 16) for n in (1, 7, 7))
    ref = F.scaled_dot_product_attention(q, k, v)
    got = attend_one(q.bfloat16(), k.bfloat16(), v.bfloat16(), 0.0)
    assert got.dtype == torch.bfloat16 and torch.allclose(got.float(), ref, atol=3e-2)


def test_bf16_and_int8_change_the_weights_and_so_the_cache_key():
    m = tiny_recap("clip")
    h32 = weights_hash(m)
    b16 = runtime.prepare_model(copy.deepcopy(m), "bf16")
    assert (
        b16.decoder.h[0].attn.c_attn.weight.dtype == torch.bfloat16 and b16.decoder.wte.weight.dtype == torch.bfloat16
    )
    assert b16.decoder.ln_f.weight.dtype == torch.float32  # norms stay fp32
    i8 = runtime.prepare_model(copy.deepcopy(m), "int8")
    assert len({h32, weights_hash(b16), weights_hash(i8)}) == 3


def test_int8_frees_the_fp32_layers_it_replaced_at_once():
    """The fp32 Linear layers quantize_dynamic replaces are left in reference cycles; quantize_int8 collects them
    before it returns, so quantizing the levels of a Captioner in turn does not hold every level's fp32 weights at
    once."""
    import gc
    import weakref

    m = tiny_recap("clip")
    replaced = weakref.ref(m.decoder.h[0].attn.c_attn)
    gc.disable()  # only quantize_int8's own collection may free it
    try:
        runtime.quantize_int8(m)
        assert replaced() is None
    finally:
        gc.enable()


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("v") / "kitchen.mp4", duration=40.0, fps=2.0, size=(32, 24))


def _captioner(precision: str = "fp32") -> Captioner:
    torch.manual_seed(0)
    tok = word_tokenizer(120)
    models = {level: (tiny_recap(level, segment_seconds=12.0), tok) for level in ("clip", "segment", "video")}
    cap = Captioner(models, {lv: "tiny" for lv in models})
    cap.use_precision(precision)
    return cap


@pytest.mark.parametrize("precision", ["bf16", "int8", "fp32-onednn"])
def test_every_level_runs_in_bf16_and_int8(video, precision, tmp_path):
    cap = _captioner(precision)
    assert cap.precision == precision
    res = caption_video(video, cap, CaptionOptions(batch_size=4), cache_dir=tmp_path)
    assert len(res.clips) == 10 and len(res.segments) == 4 and res.summary is not None
    with pytest.raises(ValueError, match="already run"):
        cap.use_precision("fp32" if precision == "bf16" else "bf16")


def test_decode_batch_gives_the_captions_of_per_batch_decoding(video, tmp_path):
    cap = _captioner()
    a = caption_video(video, cap, CaptionOptions(batch_size=3))
    b = caption_video(video, cap, CaptionOptions(batch_size=3, decode_batch=7), cache_dir=tmp_path / "b")
    c = caption_video(video, cap, CaptionOptions(batch_size=2, decode_batch=64), cache_dir=tmp_path / "c")
    for r in (b, c):
        assert [x.text for x in r.clips] == [x.text for x in a.clips]
        assert [x.text for x in r.segments] == [x.text for x in a.segments]
        assert r.summary.text == a.summary.text
    with pytest.raises(InputError, match="decode-batch"):
        CaptionOptions(decode_batch=0)


def test_decode_batch_decodes_several_encoder_batches_together(video, monkeypatch):
    from videorecap import pipeline

    sizes = []
    orig = pipeline.caption_batch

    def spy(model, tok, level, items, *a, **kw):
        if level == "clip":
            sizes.append(len(items["video"]))
        return orig(model, tok, level, items, *a, **kw)

    monkeypatch.setattr(pipeline, "caption_batch", spy)
    caption_video(video, _captioner(), CaptionOptions(batch_size=2, decode_batch=6, levels="clip"))
    assert sizes == [6, 4]  # 10 windows: encoder batches of 2, decoded 6 then the last 4


@pytest.mark.parametrize("precision", ["bf16", "fp32-onednn"])
def test_the_fidelity_gate_measures_a_path_against_fp32(tmp_path, precision):
    from videorecap.synth.precision_gate import fidelity_gate

    r = fidelity_gate(precision, tmp_path, videos=1, minutes=1.0, logit_windows=4)
    assert r.clips == 15 and 0.5 <= r.identical_clips <= 1.0
    assert set(r.cider_delta) >= {"clip", "segment"}
    assert r.logits_top1_agree >= 0.95 and 0 <= r.logits_max_rel_err < 0.5
    if precision == "bf16":
        assert r.logits_max_rel_err > 0
    else:  # fp32 products summed in another order: last-bit differences only
        assert r.logits_max_rel_err < 1e-4 and r.identical_clips == 1.0 and r.passed
    assert r.passed == (all(abs(d) < 1 for d in r.cider_delta.values()) and r.identical_clips >= 0.9
                        and r.logits_top1_agree >= 0.99)  # fmt: skip


def test_compare_captions_counts_the_windows_a_changed_encoder_recaptions(tmp_path):
    from videorecap.pipeline import Captioner
    from videorecap.synth.model import bundled_model_dir
    from videorecap.synth.precision_gate import compare_captions, gate_videos

    clips = gate_videos(tmp_path, videos=1, minutes=1.0)
    ref = Captioner.load(bundled_model_dir(), precision="fp32")
    same = compare_captions(ref, Captioner.load(bundled_model_dir(), precision="fp32"), clips)
    assert same.clips == 15 and same.identical_clips == 1.0 and same.passed()
    assert all(d == 0 for d in same.cider_delta.values()) and same.cider == same.cider_ref

    class Blurred(torch.nn.Module):  # the encoder's tokens pulled towards their mean: other captions
        def __init__(self, enc):
            super().__init__()
            self.enc, self.config = enc, enc.config

        def forward(self, video):
            tokens = self.enc(video)
            return 0.2 * tokens + 0.8 * tokens.mean(dim=0, keepdim=True)

    other = Captioner.load(bundled_model_dir(), precision="fp32")
    other.model("clip").encoder = Blurred(other.model("clip").encoder)
    changed = compare_captions(ref, other, clips)
    assert changed.identical_clips < 1.0 and changed.cider_ref == same.cider_ref
    deltas_pass = all(abs(d) < 1 for d in changed.cider_delta.values())
    assert changed.passed() == (deltas_pass and changed.identical_clips >= 0.9)


def test_the_cli_default_comes_from_the_environment(monkeypatch):
    import argparse

    from videorecap.commands._options import add_precision_argument

    monkeypatch.setenv("VIDEORECAP_PRECISION", "int8")
    p = argparse.ArgumentParser()
    add_precision_argument(p)
    assert p.parse_args([]).precision == "int8" and p.parse_args(["--precision", "bf16"]).precision == "bf16"
    with pytest.raises(SystemExit):
        p.parse_args(["--precision", "fp16"])  # only features takes fp16 (on a GPU)


def test_a_bad_precision_in_the_environment_is_a_usage_error(monkeypatch, capsys):
    from videorecap import cli

    monkeypatch.setenv("VIDEORECAP_PRECISION", "fp64")
    with pytest.raises(SystemExit) as e:
        cli.main(["demo", "--minutes", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and "fp64" in err[0] and "VIDEORECAP_PRECISION" in err[0]


def test_each_level_is_quantized_as_soon_as_it_is_read(monkeypatch):
    """Captioner.load puts each model in its precision before it reads the next, so int8's transient holds one
    level's fp32 layers on top of the others' int8 ones, never every level's fp32 weights at once."""
    from videorecap import checkpoint

    real, seen = checkpoint.load_model, []

    def spy(*args, **kwargs):
        # every model read before this one is already quantized: no plain fp32 Linear left in it
        seen.append([any(type(m) is torch.nn.Linear for m in model.modules()) for model in loaded])
        model, tok = real(*args, **kwargs)
        loaded.append(model)
        return model, tok

    loaded: list[torch.nn.Module] = []
    monkeypatch.setattr(checkpoint, "load_model", spy)
    cap = Captioner.load("recap-synth", precision="int8")
    assert cap.precision == "int8" and len(loaded) == 3
    assert seen == [[], [False], [False, False]]


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="reads the memory maps of a Linux process")
@pytest.mark.parametrize("precision", ["int8", "bf16"])
def test_converted_models_release_the_checkpoint_file(tmp_path, precision):
    """fp32 weights are views of the memory-mapped checkpoint; once bf16 or int8 has replaced them, nothing may keep
    the map (and the fp32 pages read to convert them) alive."""
    import gc

    from videorecap.checkpoint import save_pretrained

    save_pretrained(tiny_recap("clip"), tmp_path / "m", tokenizer=word_tokenizer(120))
    weights = str((tmp_path / "m" / "model.safetensors").resolve())

    def mapped() -> bool:
        gc.collect()
        with open("/proc/self/maps", encoding="utf-8") as f:
            return weights in f.read()

    fp32 = Captioner.load(tmp_path / "m", precision="fp32")
    assert mapped()  # the detection works: fp32 reads the weights through the map
    del fp32
    assert not mapped()
    cap = Captioner.load(tmp_path / "m", precision=precision)
    assert cap.precision == precision and not mapped()
