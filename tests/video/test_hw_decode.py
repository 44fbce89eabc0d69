"""--hw-decode: decoding on a hardware decoder through FFmpeg (PyAV's hwaccel).

No test here needs a GPU: where a device must fail to open, the child process sees no CUDA device
(CUDA_VISIBLE_DEVICES=""), which fails the same way on a machine with or without an NVIDIA GPU. Decoding on a real
NVDEC is checked by `benchmarks/bench_gpu.py` where a GPU is lent.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from videorecap.errors import InputError
from videorecap.synth.model import bundled_model_dir
from videorecap.video.io import HW_DECODE_ENV, current_hw_decode, hardware_decoder, set_hw_decode
from videorecap.video.reader import iter_windows
from videorecap.video.sampling import clip_windows
from videorecap.video.testing import make_video

NO_CUDA = {"CUDA_VISIBLE_DEVICES": "", "HF_HUB_OFFLINE": "1"}


def _run(args: list[str], extra_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != HW_DECODE_ENV}
    env.update(extra_env)
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.parametrize("spec", ["nonesuch", "cuda:x", "cuda:"])
def test_a_device_ffmpeg_does_not_have_is_one_line_naming_those_it_has(spec: str) -> None:
    from av.codec.hwaccel import hwdevices_available

    with pytest.raises(InputError, match=r"not a hardware decoder of this FFmpeg \(it has: ") as e:
        hardware_decoder(spec)
    assert all(kind in str(e.value) for kind in hwdevices_available())


def test_a_codec_the_device_cannot_decode_falls_back_to_software(tmp_path: Path, monkeypatch) -> None:
    # FFV1 has no hardware decoder anywhere: the hwaccel settings reach FFmpeg (without opening the device) and the
    # stream decodes in software, frame for frame as without them
    video = make_video(tmp_path / "v.mkv", duration=9.0, fps=5.0, size=(33, 25), codec="ffv1", pix_fmt="yuv444p")
    windows = clip_windows(9.0)
    plain = list(iter_windows(video, windows, hw_decode=None))
    assert len(plain) == 3
    for hw in ("cuda", ""):  # given, and the process's setting
        monkeypatch.setenv(HW_DECODE_ENV, "cuda")
        got = list(iter_windows(video, windows, hw_decode=hw))
        assert [i for i, _ in got] == [i for i, _ in plain]
        assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(got, plain, strict=True))


def test_set_hw_decode_checks_the_device_and_none_turns_it_off(monkeypatch) -> None:
    monkeypatch.setenv(HW_DECODE_ENV, "cuda")
    assert current_hw_decode() == "cuda"
    set_hw_decode(None)
    assert current_hw_decode() is None and HW_DECODE_ENV not in os.environ
    with pytest.raises(InputError, match="nonesuch"):
        set_hw_decode("nonesuch")
    assert current_hw_decode() is None  # a refused device is not set


def test_a_device_that_does_not_open_is_one_line_not_an_unreadable_file(tmp_path: Path) -> None:
    # the process's setting reaches iter_windows; an H.264 stream asks the device to open, and it cannot
    video = make_video(tmp_path / "v.mp4", duration=4.0, fps=5.0)
    code = (
        "import sys\n"
        "from videorecap.errors import VideoError\n"
        "from videorecap.video.reader import iter_windows\n"
        "try:\n"
        f"    list(iter_windows({str(video)!r}, [(0.0, 4.0)]))\n"
        "except VideoError as e:\n"
        "    print(e); sys.exit(3)\n"
    )
    r = _run(["-c", code], {**NO_CUDA, HW_DECODE_ENV: "cuda"})
    assert r.returncode == 3, r.stderr
    assert "the cuda hardware decoder does not open" in r.stdout and "not a readable video" not in r.stdout


def test_caption_features_evaluate_and_live_refuse_a_device_that_does_not_open_before_any_work(tmp_path: Path) -> None:
    video = make_video(tmp_path / "v.mp4", duration=4.0, fps=5.0)
    cases = [
        (["caption", str(video), "--model", "recap-synth", "--hw-decode", "cuda"], "FFmpeg cannot open the device"),
        (["features", str(video), "--random-encoder", "recap-tiny", "--hw-decode", "cuda:1"], "cannot open the dev"),
        (["caption", str(video), "--model", "recap-synth", "--hw-decode", "cuda", "--ray"], "not apply with --ray"),
        (["features", str(video), "--random-encoder", "recap-tiny", "--hw-decode", "vdpau9"], "not a hardware deco"),
        (["evaluate", str(bundled_model_dir()), str(tmp_path), "--hw-decode", "cuda"], "cannot open the device"),
        (["live", str(video), "--model", "recap-synth", "--hw-decode", "cuda"], "cannot open the device"),
    ]
    for i, (args, message) in enumerate(cases):
        out = tmp_path / f"out{i}"
        r = _run(["-m", "videorecap", *args, "-o", str(out)], NO_CUDA)
        assert r.returncode == 2, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0] and "--hw-decode" in lines[0], r.stderr
        assert not out.exists()  # found before the output folder is made


def test_plain_cuda_decodes_on_the_models_gpu(monkeypatch) -> None:
    import argparse

    from videorecap.commands._options import apply_hw_decode
    from videorecap.video import io

    seen: list[str] = []
    monkeypatch.setattr(io, "set_hw_decode", seen.append)
    for device, spec in [("cuda:1", "cuda"), ("cuda:1", "cuda:0"), ("cpu", "cuda")]:
        apply_hw_decode(argparse.Namespace(hw_decode=spec, ray=None), device)
    apply_hw_decode(argparse.Namespace(hw_decode=None, ray=None), "cuda:1")  # not given: nothing set
    assert seen == ["cuda:1", "cuda:0", "cuda"]  # a plain cuda follows the model's GPU; a numbered one is kept
