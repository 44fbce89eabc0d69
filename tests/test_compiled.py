"""--compile: the video encoder compiled once per machine by AOTInductor and kept on disk (videorecap.compiled).

Every test here shares one cache folder, so the bundled model's clip encoder is compiled once for the module (about
20 s on 2 cores) and then loaded. Compiling needs a C++ compiler: without one the tests that compile skip, with the
install command as the reason, and `VIDEORECAP_REQUIRE_COMPILER=1` (set by .ci/run) turns that skip into a failure.
"""

import json
import logging
import os
import shutil
import time
from pathlib import Path

import pytest
import torch
from test_cli import _exit_code

from videorecap import compiled
from videorecap.compiled import CompiledEncoder
from videorecap.errors import InputError
from videorecap.pipeline import Captioner
from videorecap.store import weights_hash
from videorecap.synth.model import bundled_model_dir

pytestmark = pytest.mark.usefixtures("one_thread")
REQUIRE_ENV = "VIDEORECAP_REQUIRE_COMPILER"


@pytest.fixture(scope="module")
def compiler():
    """A C++ compiler for Inductor, or a skip saying how to get one (a failure with $VIDEORECAP_REQUIRE_COMPILER)."""
    if compiled.cpp_compiler() is None:
        why = "compiling the encoder needs a C++ compiler, which was not found: apt-get install -y g++"
        if os.environ.get(REQUIRE_ENV, "") not in ("", "0"):
            pytest.fail(f"{why} ({REQUIRE_ENV} is set, so this is a failure, not a skip)")
        pytest.skip(why)


@pytest.fixture(scope="module")
def cache(tmp_path_factory, compiler):
    """One `$VIDEORECAP_CACHE_DIR` for the module (the CLI reads it too)."""
    path = tmp_path_factory.mktemp("videorecap-cache")
    old = os.environ.get(compiled.CACHE_ENV)
    os.environ[compiled.CACHE_ENV] = str(path)
    yield path / "compiled"
    if old is None:
        del os.environ[compiled.CACHE_ENV]
    else:
        os.environ[compiled.CACHE_ENV] = old


def _encoder(seed: int | None = None) -> torch.nn.Module:
    enc = Captioner.load(bundled_model_dir(), precision="fp32").model("clip").encoder
    if seed is not None:  # other weights, the same architecture (another checkpoint)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in enc.parameters():
                p.add_(0.05 * torch.randn(p.shape, generator=g))
    return enc


def _clips(enc: torch.nn.Module, n: int) -> torch.Tensor:
    c = enc.config
    return torch.randn(n, 3, c.num_frames, c.image_size, c.image_size, generator=torch.Generator().manual_seed(n))


@pytest.fixture
def package(cache) -> bytes:
    """The bytes of the bundled encoder's fp32 package (compiled by the first test, or here when a test runs alone)."""
    enc = _encoder()
    with torch.inference_mode():
        CompiledEncoder(enc, "fp32")(_clips(enc, 2))
    (path,) = cache.glob("*.pt2")
    return path.read_bytes()


def _copying_compile(good: bytes, calls: list, delay: float = 0.0):  # noqa: ANN202 - a CompiledEncoder._compile
    """A stand-in for `CompiledEncoder._compile` that writes `good` after `delay` s: the real compile takes a minute,
    and the first test has made one."""

    def compile_(self, x, key, path):  # noqa: ANN001, ANN202
        time.sleep(delay)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(good)
        self.compiles += 1
        calls.append(path)

    return compile_


def test_the_compiled_encoder_matches_the_encoder_for_any_batch_and_is_cached(cache, tmp_path, monkeypatch):
    # the compile is built by the compiler `cpp_compiler` finds, here $CXX set after Inductor read its own settings:
    # a wrapper that notes each call (Inductor on its own would run the $CXX it saw at import, or g++)
    import torch._inductor.config

    calls = tmp_path / "cxx-calls"
    wrapper = tmp_path / "bin" / "noting-c++"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> {calls}\nexec {compiled.cpp_compiler()} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("CXX", str(wrapper))
    assert torch._inductor.config.cpp.cxx[1] != str(wrapper)
    enc = _encoder()
    x = _clips(enc, 3)
    with torch.inference_mode():
        want = enc(x)
        fast = compiled.compile_for_inference(enc, "fp32")
        assert isinstance(fast, CompiledEncoder)
        assert torch.allclose(fast(x), want, atol=1e-4)
        assert torch.allclose(fast(x[:1]), want[:1], atol=1e-4)  # the batch size is free: no second compile
        assert torch.allclose(fast(x, cls_only=True), want[:, 0], atol=1e-4)
    assert fast.config is enc.config and weights_hash(fast) == weights_hash(enc)  # fingerprints do not change
    packages = sorted(cache.glob("*.pt2"))
    assert len(packages) == 1 and packages[0].stat().st_size < 50e6
    assert json.loads(packages[0].with_suffix(".json").read_text())["precision"] == "fp32"
    assert calls.is_file() and ".cpp" in calls.read_text()  # the wrapper built it
    assert torch._inductor.config.cpp.cxx[1] != str(wrapper)  # and Inductor's settings are its own again

    # a new process (a new object) with another checkpoint of the same architecture loads the package: the weights
    # are not in it, they are the encoder's own
    other = _encoder(seed=1)
    with torch.inference_mode():
        want = other(x)
        again = CompiledEncoder(other, "fp32")
        assert torch.allclose(again(x), want, atol=1e-4)
    assert again.compiles == 0 and sorted(cache.glob("*.pt2")) == packages


def test_the_package_reads_the_encoders_tensors_where_they_are(cache):
    enc = _encoder()
    fast = CompiledEncoder(enc, "fp32")
    x = _clips(enc, 2)
    with torch.inference_mode():
        before = fast(x)
        with torch.no_grad():
            enc.norm.weight.mul_(2.0)  # in place: the package sees it at once
        changed = fast(x)
        assert not torch.allclose(changed, before, atol=1e-3) and torch.allclose(changed, enc(x), atol=1e-4)
        enc.norm.bias.data = enc.norm.bias.data + 1.0  # a new tensor (as after a move): handed over at the next call
        assert torch.allclose(fast(x), enc(x), atol=1e-4)
    assert fast.compiles == 0


def test_a_new_precision_or_input_shape_is_a_new_key_never_a_wrong_package():
    enc = _encoder()
    fast = CompiledEncoder(enc, "fp32")
    key = fast.key(_clips(enc, 2))
    assert CompiledEncoder(enc, "bf16").key(_clips(enc, 2)) != key
    c = enc.config
    assert fast.key(torch.zeros(1, 3, c.num_frames - 1, c.image_size, c.image_size)) != key
    assert fast.key(_clips(enc, 5)) == key  # but not the batch size
    assert key["torch"] == torch.__version__ and key["device"]["kernels"] == torch.backends.cpu.get_cpu_capability()


def test_a_damaged_package_is_compiled_again(cache, package, monkeypatch, caplog):
    enc = _encoder()
    x = _clips(enc, 2)
    (path,) = cache.glob("*.pt2")
    path.write_bytes(package[: len(package) // 3])  # a cut file
    monkeypatch.setattr(CompiledEncoder, "_compile", _copying_compile(package, []))
    fast = CompiledEncoder(enc, "fp32")
    with caplog.at_level(logging.WARNING, logger="videorecap.compiled"), torch.inference_mode():
        assert torch.allclose(fast(x), enc(x), atol=1e-4)
    assert fast.compiles == 1 and "does not load" in caplog.text


def test_a_compile_removes_the_packages_no_run_loaded_for_a_month(cache, package, tmp_path, monkeypatch):
    folder = tmp_path / "compiled"
    folder.mkdir()
    month = compiled.STALE_DAYS * 86400
    old = time.time() - month - 3600

    def entry(name: str, age: float) -> list[Path]:
        files = [folder / f"{name}.pt2", folder / f"{name}.json", folder / f".{name}.lock"]
        for f in files:
            f.write_bytes(b"x")
            os.utime(f, (age, age))
        return files

    stale = entry("encoder-" + "a" * 32, old)  # an earlier PyTorch's or model code's package
    recent = entry("encoder-" + "b" * 32, time.time() - month + 3600)
    killed = folder / ".encoder-c.pt2.x.tmp"  # a compile killed two days ago
    killed.mkdir()
    (killed / "part").write_bytes(b"x")
    os.utime(killed, (time.time() - 2 * 86400,) * 2)
    running = folder / ".encoder-d.pt2.y.tmp"  # one compiling now
    running.mkdir()
    # a compile into the folder prunes it (the compile itself copies the module's package: see _copying_compile)
    monkeypatch.setattr(CompiledEncoder, "_compile", _copying_compile(package, []))
    enc = _encoder()
    with torch.inference_mode():
        CompiledEncoder(enc, "fp32", cache=folder)(_clips(enc, 2))
    assert not any(f.exists() for f in stale) and all(f.exists() for f in recent)
    assert not killed.exists() and running.is_dir()
    # loading a package renews its date: an entry in use is never stale
    (new,) = [p for p in folder.glob("encoder-*.pt2") if p.name != recent[0].name]
    os.utime(new, (old, old))
    with torch.inference_mode():
        CompiledEncoder(enc, "fp32", cache=folder)(_clips(enc, 2))
    assert time.time() - new.stat().st_mtime < 600
    assert compiled.prune(folder) == [] and new.exists()


def test_processes_that_need_the_same_package_at_once_compile_it_once(package, tmp_path, monkeypatch):
    import threading

    enc = _encoder()
    x = _clips(enc, 2)
    # a slow compile: the other jobs start meanwhile
    monkeypatch.setattr(CompiledEncoder, "_compile", _copying_compile(package, [], delay=1.0))
    jobs = [CompiledEncoder(enc, "fp32", cache=tmp_path) for _ in range(3)]  # an empty cache
    outs: list[torch.Tensor] = [None] * 3  # type: ignore[list-item]

    def run(i):
        with torch.inference_mode():
            outs[i] = jobs[i](x)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]  # flock: per open file, so threads too
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(j.compiles for j in jobs) == 1
    with torch.inference_mode():
        assert all(torch.allclose(o, enc(x), atol=1e-4) for o in outs)


def test_an_encoder_that_does_not_compile_runs_as_it_is_with_a_warning(compiler, tmp_path, monkeypatch, caplog):
    def fail(*args, **kwargs):
        raise RuntimeError("Dynamic control flow is not supported\nmore lines")

    monkeypatch.setattr(torch.export, "export", fail)
    enc = _encoder()
    fast = CompiledEncoder(enc, "fp32", cache=tmp_path)
    x = _clips(enc, 2)
    with caplog.at_level(logging.WARNING, logger="videorecap.compiled"), torch.inference_mode():
        assert torch.equal(fast(x), enc(x))
        assert torch.equal(fast(x), enc(x))
    assert caplog.text.count("it runs uncompiled") == 1 and "Dynamic control flow" in caplog.text
    assert [p.name for p in tmp_path.iterdir() if p.suffix != ".lock"] == []  # nothing half-written


def test_a_cache_that_cannot_be_written_is_a_warning_and_the_encoder_runs_as_it_is(compiler, tmp_path, caplog):
    (tmp_path / "file").write_text("not a folder")
    enc = _encoder()
    fast = CompiledEncoder(enc, "fp32", cache=tmp_path / "file" / "compiled")
    x = _clips(enc, 2)
    with caplog.at_level(logging.WARNING, logger="videorecap.compiled"), torch.inference_mode():
        assert torch.equal(fast(x), enc(x))
    assert "cannot use the compile cache" in caplog.text and "VIDEORECAP_CACHE_DIR" in caplog.text


def test_compile_without_a_cpp_compiler_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv(compiled.CACHE_ENV, str(tmp_path / "empty"))
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(InputError, match="C\\+\\+ compiler"):
        compiled.compile_for_inference(_encoder(), "fp32")


def test_a_machine_without_a_compiler_loads_the_package_the_cache_holds(package, cache, tmp_path, monkeypatch, capsys):
    """A cache shared with (or copied from) a machine of the same kind: its packages load without a compiler; a
    model it holds none for is one line, before any work."""
    from videorecap.video.testing import make_video

    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(CompiledEncoder, "_compile", lambda *a: pytest.fail("compiled without a compiler"))
    enc = _encoder()
    fast = compiled.compile_for_inference(enc, "fp32")
    x = _clips(enc, 3)
    with torch.inference_mode():
        assert torch.allclose(fast(x), enc(x), atol=1e-4) and fast.compiles == 0
    with pytest.raises(InputError, match="holds no compiled encoder for this model.*C\\+\\+ compiler"):
        compiled.compile_for_inference(_encoder(), "bf16")  # another precision: another package, not in the cache
    video = make_video(tmp_path / "v.mp4", duration=5.0, fps=4.0)
    argv = ["caption", str(video), "--model", str(bundled_model_dir()), "--compile", "--no-progress"]
    assert _exit_code([*argv, "-o", str(tmp_path / "fp32"), "--precision", "fp32"]) == 0
    assert (tmp_path / "fp32" / "v" / "captions.json").is_file()
    capsys.readouterr()
    assert _exit_code([*argv, "-o", str(tmp_path / "bf16"), "--precision", "bf16"]) == 2
    err = capsys.readouterr().err
    assert "error: --compile: the cache" in err and "Traceback" not in err, err
    assert not (tmp_path / "bf16").exists()  # the model loads before the output folder is made
    monkeypatch.setenv(compiled.CACHE_ENV, str(tmp_path / "empty"))  # no package at all: said before the model loads
    assert _exit_code([*argv, "-o", str(tmp_path / "none"), "--precision", "fp32"]) == 2
    assert not (tmp_path / "none").exists()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs a C++ compiler" in err, err


def test_the_compiler_is_cxx_or_the_first_of_gxx_cxx_clangxx_on_path(tmp_path, monkeypatch):
    def tool(name: str) -> str:
        path = tmp_path / name
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
        return str(path)

    cpu = torch.device("cpu")
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    clang = tool("clang++")  # a machine with clang only: Inductor alone would look for g++ and fail
    assert compiled.cpp_compiler() == clang and compiled.check_compiler(cpu) == clang
    cxx = tool("c++")
    assert compiled.cpp_compiler() == cxx
    gxx = tool("g++")
    assert compiled.cpp_compiler() == gxx
    monkeypatch.setenv("CXX", "clang++")  # $CXX first, as a name on PATH or a path
    assert compiled.cpp_compiler() == clang
    monkeypatch.setenv("CXX", str(tmp_path / "gone" / "g++"))
    with pytest.raises(InputError, match=r"\$CXX is .*gone.*not a program"):
        compiled.check_compiler(cpu)
    assert compiled.check_compiler(torch.device("meta")) is None  # only a CPU build needs one here


def test_caption_compile_gives_the_captions_of_the_encoder(cache, tmp_path, capsys):
    from videorecap.results import CaptionResult
    from videorecap.video.testing import make_video

    video = make_video(tmp_path / "v.mp4", duration=9.0, fps=4.0)
    runs = {}
    for name, extra in (("plain", []), ("compiled", ["--compile"])):
        argv = ["caption", str(video), "-o", str(tmp_path / name), "--precision", "fp32", "--no-progress", *extra]
        argv += ["--model", str(bundled_model_dir())]
        assert _exit_code(argv) == 0, capsys.readouterr().err
        runs[name] = CaptionResult.load(tmp_path / name / "v" / "captions.json")
    assert [c.text for c in runs["compiled"].clips] == [c.text for c in runs["plain"].clips]
    assert len(list(cache.glob("*.pt2"))) >= 1
    capsys.readouterr()


def test_live_compile_gives_the_captions_of_the_encoder_and_records_it(cache, tmp_path, monkeypatch):
    import io
    import sys

    from videorecap.results import load
    from videorecap.video.testing import make_video

    stream = make_video(tmp_path / "rec.ts", duration=9.0, fps=4, size=(64, 48), options={"g": "4"})
    clips, stores = {}, {}
    for name, extra in (("plain", []), ("compiled", ["--compile"])):
        out = tmp_path / name
        with open(stream, "rb") as f:
            monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(f))
            argv = ["live", "-", "-o", str(out), "--model", "recap-synth", "--levels", "clip", "--no-status"]
            assert _exit_code([*argv, "--precision", "fp32", *extra]) == 0
        clips[name] = [c.text for c in load(out / "captions.json").clips]
        stores[name] = json.loads((out / ".cache" / "store.json").read_text())["fingerprint"]
    assert clips["compiled"] == clips["plain"] and clips["plain"]
    assert stores["compiled"].get("compiled") is True and "compiled" not in stores["plain"]


def test_the_cli_says_when_it_compiles_and_is_silent_when_it_loads(package, tmp_path, capsys, monkeypatch):
    from videorecap.video.testing import make_video

    compiles: list = []
    monkeypatch.setattr(CompiledEncoder, "_compile", _copying_compile(package, compiles))
    monkeypatch.setenv(compiled.CACHE_ENV, str(tmp_path / "fresh"))
    video = make_video(tmp_path / "v.mp4", duration=5.0, fps=4.0)
    said = []
    for run in ("first", "second"):
        argv = ["caption", str(video), "-o", str(tmp_path / run), "--model", str(bundled_model_dir()), "--compile"]
        assert _exit_code([*argv, "--precision", "fp32", "--no-progress"]) == 0
        said.append(capsys.readouterr().err)
    assert len(compiles) == 1 and compiles[0].parent == tmp_path / "fresh" / "compiled"
    assert "compiling the video encoder for this machine" in said[0]
    assert "compiling" not in said[1]


def test_compile_with_int8_or_no_compiler_is_one_line_before_the_output_folder(tmp_path, capsys, monkeypatch):
    from videorecap.video.testing import make_video

    monkeypatch.setenv(compiled.CACHE_ENV, str(tmp_path / "cache"))  # no package to load instead of compiling
    monkeypatch.delenv("CXX", raising=False)
    video = make_video(tmp_path / "v.mp4", duration=2.0, fps=2.0)
    models = {"caption": [str(video), "--model", str(bundled_model_dir())],
              "features": [str(video), "--random-encoder", "recap-tiny"],
              "evaluate": [str(bundled_model_dir()), str(tmp_path)]}  # fmt: skip
    cases = [(["--precision", "int8"], "does not apply to --precision int8"), (["--ray"], "g++"), ([], "g++")]
    for extra, message in cases:
        if message == "g++":  # with --ray too: the driver's machine is checked before Ray is reached
            monkeypatch.setattr(shutil, "which", lambda name: None)
        for command, model in models.items():
            if command == "evaluate" and extra == ["--ray"]:
                continue  # evaluate has no --ray
            assert _exit_code([command, "-o", str(tmp_path / "no"), "--compile", *model, *extra]) == 2
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and message in err, (command, err)
            assert not (tmp_path / "no").exists()


def test_features_compile_writes_the_encoders_features(cache, tmp_path, capsys):
    import numpy as np

    from videorecap.video.testing import make_video

    video = make_video(tmp_path / "v.mp4", duration=9.0, fps=4.0)
    out = {}
    for name, extra in (("plain", []), ("compiled", ["--compile"])):
        argv = ["features", str(video), "--encoder", str(bundled_model_dir() / "clip"), "-o", str(tmp_path / name)]
        assert _exit_code([*argv, "--precision", "fp32", "--all-tokens", "--no-progress", *extra]) == 0
        out[name] = [np.load(tmp_path / name / f) for f in ("v.npy", "v.tokens.npy")]
    for plain, fast in zip(out["plain"], out["compiled"], strict=True):  # the tokens are stored in fp16
        assert plain.shape == fast.shape and np.allclose(plain, fast, rtol=2e-3, atol=1e-4)
    capsys.readouterr()


def test_evaluate_compile_gives_the_uncompiled_predictions_from_pixels(cache, tmp_path, capsys):
    import numpy as np
    from test_evaluate import make_data

    data = make_data(tmp_path / "data", np.random.default_rng(1), with_videos=True)
    common = [str(bundled_model_dir()), str(data), "--level", "clip", "--metrics", "cider", "--precision", "fp32",
              "--no-progress", "--limit", "6", "--clip-input", "pixels"]  # fmt: skip
    texts = {}
    for name, extra in (("plain", []), ("compiled", ["--compile"])):
        assert _exit_code(["evaluate", *common, "-o", str(tmp_path / name), *extra]) == 0
        lines = (tmp_path / name / "predictions_clip.jsonl").read_text().splitlines()
        texts[name] = [json.loads(x)["text"] for x in lines]
    assert len(texts["plain"]) == 6 and texts["compiled"] == texts["plain"]
    # the compiled run's predictions are tied to --compile: a rerun with it reuses them, one without it does not
    capsys.readouterr()
    for extra, reused in ((["--compile"], True), ([], False)):
        assert _exit_code(["evaluate", *common, "-o", str(tmp_path / "compiled"), *extra]) == 0
        assert ("6 reused from an earlier run" in capsys.readouterr().out) == reused, extra


def test_the_fidelity_gate_takes_a_compiled_path(cache, tmp_path, monkeypatch):
    from videorecap.synth.precision_gate import fidelity_gate

    calls = []
    forward = CompiledEncoder.forward
    monkeypatch.setattr(CompiledEncoder, "forward", lambda self, *a, **k: calls.append(1) or forward(self, *a, **k))
    r = fidelity_gate("fp32+compile", tmp_path, videos=1, minutes=0.5)
    assert r.precision == "fp32+compile" and r.passed and r.identical_clips == 1.0
    assert calls  # the compiled encoder really ran (loaded from this module's cache)
    with pytest.raises(ValueError, match="only addition"):
        fidelity_gate("fp32+fast", tmp_path, videos=1, minutes=0.5)
