"""`make_web_copy`: a non-browser video (HEVC in Matroska, with a start offset and sound) becomes H.264/AAC MP4."""

from __future__ import annotations

import av
import numpy as np
import pytest

from videorecap.errors import VideoError
from videorecap.video.io import probe
from videorecap.video.reader import iter_windows
from videorecap.video.testing import frame_index_of, make_video
from videorecap.video.webcopy import make_web_copy, web_format

pytestmark = pytest.mark.skipif(
    not {"libx265", "libx264", "aac"} <= av.codecs_available, reason="PyAV's FFmpeg lacks libx265/libx264/aac"
)


def test_hevc_mkv_with_offset_becomes_h264_aac_mp4_starting_at_0(tmp_path):
    src = make_video(tmp_path / "cam.mkv", duration=6.0, fps=10, size=(64, 48), codec="libx265",
                     start_time=3.5, audio="aac")  # fmt: skip
    info = probe(src)
    assert (info.codec, info.start_time, info.duration) == ("hevc", 3.5, pytest.approx(6.0))

    copy = make_web_copy(src, tmp_path / "out")
    assert copy.path == tmp_path / "out" / "video.web.mp4" and copy.format == web_format()
    assert sorted(p.name for p in copy.path.parent.iterdir()) == ["video.web.mp4"]  # no temp file left
    with av.open(str(copy.path)) as c:
        assert "mp4" in c.format.name
        v, a = c.streams.video[0], c.streams.audio[0]
        assert (v.codec_context.name, v.codec_context.pix_fmt) == ("h264", "yuv420p")
        assert a.codec_context.name == "aac"
        assert float(v.start_time * v.time_base) == 0.0  # the offset is gone: copy time == caption time
        assert float(v.duration * v.time_base) == pytest.approx(6.0, abs=0.11)
        assert float(a.duration * a.time_base) == pytest.approx(6.0, abs=0.1)
    data = copy.path.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # faststart: the index comes first
    # the same pictures at the same (caption) times
    out = probe(copy.path)
    assert (out.width, out.height, out.start_time) == (64, 48, 0.0)
    windows = [(0.0, 2.0), (3.0, 5.0)]
    for (_, a_frames), (_, b_frames) in zip(iter_windows(src, windows, 4), iter_windows(copy.path, windows, 4),
                                              strict=True):  # fmt: skip
        assert [frame_index_of(f) for f in a_frames] == [frame_index_of(f) for f in b_frames]


def test_downscale_only_when_asked_and_progress(tmp_path, capsys):
    src = make_video(tmp_path / "big.avi", duration=1.0, fps=5, size=(96, 64), codec="mpeg4")
    copy = make_web_copy(src, tmp_path / "a", progress=True)
    assert (copy.width, copy.height, copy.has_audio) == (96, 64, False)
    assert "web copy" in capsys.readouterr().err
    small = make_web_copy(src, tmp_path / "b", max_height=33)
    assert (small.width, small.height) == (48, 32)  # aspect kept, rounded down to even sizes
    with av.open(str(small.path)) as c:
        frame = next(c.decode(video=0))
        assert (frame.width, frame.height) == (48, 32)
        assert np.asarray(frame.to_ndarray(format="rgb24")).shape == (32, 48, 3)


def test_unreadable_source_is_one_line_error(tmp_path):
    bad = tmp_path / "bad.mkv"
    bad.write_bytes(b"not a video at all" * 10)
    with pytest.raises(VideoError, match="bad.mkv"):
        make_web_copy(bad, tmp_path / "out")
    assert not (tmp_path / "out" / "video.web.mp4").exists()
