"""The outputs of `videorecap caption` end to end with the bundled model: the model is named everywhere, its card's
warning is printed once and shown on the page, `--web-video` writes a playable copy the page uses, `--narrator`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import av
import pytest

from videorecap.synth.model import bundled_model_dir
from videorecap.video.testing import make_video


def _cli(*args: object) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    cmd = [sys.executable, "-m", "videorecap", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.skipif(not {"libx265", "libx264"} <= av.codecs_available, reason="PyAV's FFmpeg lacks libx265/libx264")
def test_bundled_model_warns_names_itself_and_web_video(tmp_path):
    video = make_video(tmp_path / "cam.mkv", duration=10.0, fps=4, size=(64, 48), codec="libx265", start_time=3.5)
    r = _cli("caption", video, "--model", bundled_model_dir(), "-o", tmp_path / "out", "--no-progress",
             "--web-video", "--narrator", "camera-wearer")  # fmt: skip
    assert r.returncode == 0, r.stderr
    warnings = [line for line in r.stderr.splitlines() if "warning" in line]
    assert warnings == [
        "videorecap caption: warning: the model recap-synth (bundled) knows only the synthetic kitchen world of "
        "`videorecap synth`; use the released Video ReCap weights for real videos (docs/released-weights.md)"
    ]
    out = tmp_path / "out" / "cam"
    d = json.loads((out / "captions.json").read_text(encoding="utf-8"))
    assert d["model"]["clip"]["card"]["domain"] == "synthetic"
    assert (d["video"]["codec"], d["video"]["start_time"]) == ("hevc", 3.5)
    assert d["clips"][0]["text"].startswith("#C C ")  # captions.json keeps the model's text

    md = (out / "summary.md").read_text(encoding="utf-8")
    assert "model: recap-synth (bundled)" in md and "> **Note:** the model recap-synth (bundled) knows only" in md
    assert "#C" not in md and "The camera wearer" in md
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "model: recap-synth (bundled)" in page
    assert '<p class="banner" role="note">Note: the model recap-synth (bundled) knows only' in page
    # the page plays the web copy, which starts at 0 like the captions (the source starts at 3.5 s)
    assert 'src="video.web.mp4"' in page
    cues = json.loads(page.split('<script type="application/json" id="cues">', 1)[1].split("</script>", 1)[0])
    assert cues["start_time"] == 0.0 and cues["clips"][0][2].startswith("The camera wearer ")
    with av.open(str(out / "video.web.mp4")) as c:
        assert c.streams.video[0].codec_context.name == "h264"


def test_web_video_height_needs_web_video(tmp_path):
    r = _cli("caption", tmp_path / "x.mp4", "--model", bundled_model_dir(), "-o", tmp_path / "o",
             "--web-video-height", "240")  # fmt: skip
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "--web-video-height needs --web-video" in r.stderr


def test_web_video_height_has_a_minimum(tmp_path, capsys):
    """--web-video-height 3 made a 2 x 2 video; below webcopy.MIN_HEIGHT it is a usage error, here and in the
    library."""
    from videorecap import cli
    from videorecap.video.webcopy import MIN_HEIGHT, make_web_copy

    argv = ["caption", tmp_path / "x.mp4", "--model", "recap-synth", "-o", tmp_path / "o", "--web-video"]
    with pytest.raises(SystemExit) as e:
        cli.main([*map(str, argv), "--web-video-height", "3"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and f"--web-video-height: must be at least {MIN_HEIGHT} pixels" in err
    assert cli.build_parser().parse_args([*map(str, argv), "--web-video-height", "17"]).web_video_height == 17
    src = make_video(tmp_path / "v.mp4", duration=0.5, fps=4, size=(64, 48))
    with pytest.raises(ValueError, match=f"at least {MIN_HEIGHT}"):
        make_web_copy(src, tmp_path / "w", max_height=MIN_HEIGHT - 1)
    assert make_web_copy(src, tmp_path / "w", max_height=MIN_HEIGHT + 1).height == MIN_HEIGHT  # odd: down to even
    assert not (tmp_path / "o").exists()
