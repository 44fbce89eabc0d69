from __future__ import annotations

from pathlib import Path

import pytest

from videorecap.errors import VideoError
from videorecap.video.io import is_video_path, probe
from videorecap.video.reader import iter_windows
from videorecap.video.sampling import clip_windows
from videorecap.video.testing import frame_index_of, make_audio_only, make_video, truncate


@pytest.mark.parametrize(
    "name, codec, pix_fmt, size",
    [
        ("h264.mp4", "libx264", "yuv420p", (32, 24)),
        ("hevc10.mp4", "libx265", "yuv420p10le", (32, 24)),
        ("vp9.webm", "libvpx-vp9", "yuv420p", (32, 24)),
        ("yuv444.mov", "libx264", "yuv444p", (32, 24)),
        ("h264_10bit.mkv", "libx264", "yuv420p10le", (32, 24)),
        ("mpeg4.avi", "mpeg4", "yuv420p", (17, 9)),
        ("ffv1_odd.mkv", "ffv1", "yuv444p", (17, 9)),
    ],
)
def test_probe_containers_and_codecs(tmp_path: Path, name: str, codec: str, pix_fmt: str, size: tuple[int, int]):
    p = make_video(tmp_path / name, duration=2, fps=5, size=size, codec=codec, pix_fmt=pix_fmt)
    info = probe(p)
    assert info.duration == pytest.approx(2.0, abs=0.21)
    assert info.fps == pytest.approx(5.0, rel=0.05)
    assert (info.width, info.height) == size
    assert info.rotation == 0
    assert info.pix_fmt == pix_fmt
    assert info.start_time == pytest.approx(0.0, abs=1e-6)


def test_probe_rotation_and_display_size(videos):
    info = probe(videos["rot90"])
    assert info.rotation == 90
    assert (info.width, info.height) == (32, 16)
    assert info.display_size == (16, 32)


def test_probe_vfr_duration_from_timestamps(videos):
    info = probe(videos["vfr"])
    assert info.duration == pytest.approx(4.0, abs=0.2)
    assert info.fps == pytest.approx(10.0, rel=0.1)


def test_probe_start_time_offset(tmp_path: Path):
    p = make_video(tmp_path / "offset.mkv", duration=2, fps=5, codec="ffv1", start_time=3.0)
    info = probe(p)
    assert info.start_time == pytest.approx(3.0, abs=0.01)
    assert info.duration == pytest.approx(2.0, abs=0.25)


@pytest.mark.parametrize("name, codec, audio", [("long.mkv", "libx264", "aac"), ("long.webm", "libvpx-vp9", "libopus")])
def test_sound_going_on_after_the_picture_is_not_a_truncated_file(tmp_path: Path, name, codec, audio):
    # mkv/webm give no duration per stream, and the container's covers the sound too: the video is its own 10 s
    p = make_video(tmp_path / name, duration=10, fps=5, codec=codec, audio=audio, audio_seconds=30)
    info = probe(p)
    assert info.duration == pytest.approx(10.0, abs=0.25)
    windows = clip_windows(info.duration)
    assert len(windows) == 3 and len(list(iter_windows(p, windows, 4, info=info))) == 3
    # a file cut short, sound and picture alike, still claims its whole length, so the reader says what is missing
    cut = truncate(make_video(tmp_path / f"cut-{name}", duration=20, fps=5, codec=codec, audio=audio), 0.5)
    info = probe(cut)
    assert info.duration == pytest.approx(20.0, abs=0.5) and info.duration_source == "container"
    with pytest.raises(VideoError, match="truncated"):
        list(iter_windows(cut, clip_windows(info.duration), 4, info=info))


@pytest.mark.parametrize("name, codec", [("raw.h264", "libx264"), ("raw.hevc", "libx265")])
def test_a_raw_stream_without_timestamps_is_timed_by_its_frame_rate(tmp_path: Path, name, codec):
    # an elementary stream has no container: no duration, no timestamps, no seeking (it failed with an error
    # that blamed the output folder)
    p = make_video(tmp_path / name, duration=8, fps=10, size=(32, 24), codec=codec)
    info = probe(p)
    assert (info.duration, info.fps, info.num_frames, info.duration_source) == (8.0, 10.0, 80, "frames")
    windows = clip_windows(info.duration)
    full = {i: [frame_index_of(f) for f in frames] for i, frames in iter_windows(p, windows, 4, info=info)}
    assert full == {0: [5, 15, 25, 35], 1: [45, 55, 1, 11]}  # frame 10 t at t = 0.5, 1.5, ... (mod 64)
    ((_, frames),) = iter_windows(p, windows[1:], 4, info=info)  # a later window: no seek possible, from the start
    assert [frame_index_of(f) for f in frames] == full[1]


def _one_line_error(path: Path, match: str) -> str:
    with pytest.raises(VideoError, match=match) as ei:
        probe(path)
    msg = str(ei.value)
    assert str(path) in msg and "\n" not in msg
    return msg


def test_not_a_video(tmp_path: Path):
    p = tmp_path / "notes.mp4"
    p.write_text("this is not a video\n" * 50)
    _one_line_error(p, "not a readable video")


def test_empty_file(tmp_path: Path):
    p = tmp_path / "empty.mp4"
    p.write_bytes(b"")
    _one_line_error(p, "empty file")


def test_missing_file_and_directory(tmp_path: Path):
    _one_line_error(tmp_path / "nope.mp4", "no such file")
    _one_line_error(tmp_path, "directory")


def test_truncated_header(tmp_path: Path):
    # mp4 writes its index at the end: half a file has no index at all
    p = truncate(make_video(tmp_path / "cut.mp4", duration=3, fps=5), 0.5)
    _one_line_error(p, "not a readable video")


def test_audio_only(tmp_path: Path):
    p = make_audio_only(tmp_path / "sound.m4a")
    _one_line_error(p, "no video stream.*audio")


@pytest.mark.parametrize("name, codec, pix_fmt", [("photo.png", "png", "rgb24"), ("photo.mp4", "mjpeg", "yuvj420p")])
def test_a_still_image_is_not_a_video(tmp_path: Path, name: str, codec: str, pix_fmt: str):
    """FFmpeg opens a PNG or JPEG (whatever its name) as a one-frame video; it must not be captioned as one."""
    import av
    import numpy as np

    p = tmp_path / name
    with av.open(str(p), "w", format="image2") as c:
        s = c.add_stream(codec, rate=1)
        s.width, s.height, s.pix_fmt = 64, 48, pix_fmt
        frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24").reformat(format=pix_fmt)
        for packet in [*s.encode(frame), *s.encode()]:
            c.mux(packet)
    _one_line_error(p, "a still image .*not a video")


@pytest.mark.parametrize("name, codec", [("zero.mp4", "libx264"), ("zero.mkv", "ffv1")])
def test_zero_duration(tmp_path: Path, name: str, codec: str):
    p = make_video(tmp_path / name, duration=0, codec=codec)
    _one_line_error(p, "zero-duration|zero duration|not a readable")


def test_is_video_path():
    assert is_video_path("a/b.MP4") and is_video_path("x.webm") and is_video_path("y.mkv")
    assert not is_video_path("notes.txt") and not is_video_path("frames.npy")


def test_collect_videos(tmp_path: Path) -> None:
    from videorecap.errors import InputError
    from videorecap.video.io import collect_videos

    root = tmp_path / "videos"
    for rel in ("b.mp4", "a.MKV", "notes.txt", ".hidden.mp4", "day1/c.mp4", "day1/.cache/d.mp4"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")
    names = lambda paths: [p.relative_to(root).as_posix() for p in paths]  # noqa: E731
    assert names(collect_videos([root])) == ["a.MKV", "b.mp4"]  # one level, video names only, sorted
    assert names(collect_videos([root], recursive=True)) == ["a.MKV", "b.mp4", "day1/c.mp4"]  # no hidden ones
    # a folder whose videos are all below it says so, and how to include them
    (tmp_path / "trips" / "day1").mkdir(parents=True)
    (tmp_path / "trips" / "day1" / "e.mp4").write_bytes(b"x")
    with pytest.raises(InputError, match=r"trips: no video files in this folder, but its subfolders hold 1; pass "
                                         r"--recursive"):  # fmt: skip
        collect_videos([tmp_path / "trips"])
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="no video files in this folder or its subfolders"):
        collect_videos([empty], recursive=True)
    # lists (relative to the list's folder), globs, repeats once, missing paths and empty lists
    lst = root / "list.txt"
    lst.write_text("# mine\nb.mp4\n\nday1/c.mp4\n")
    assert names(collect_videos([lst, root / "b.mp4", str(root / "*.mp4")])) == ["b.mp4", "day1/c.mp4"]
    assert names(collect_videos([str(root / "**" / "*.mp4")], recursive=True)) == ["b.mp4", "day1/c.mp4"]
    with pytest.raises(InputError, match="matches no file"):
        collect_videos([str(root / "*.webm")])
    with pytest.raises(InputError, match="missing.mp4: no such file"):
        collect_videos([root / "missing.mp4"])
    lst.write_text("b.mp4\nnope.mp4\n")
    with pytest.raises(InputError, match=r"list.txt:2: nope.mp4: no such file"):
        collect_videos([lst])
    lst.write_text("# nothing\n")
    with pytest.raises(InputError, match="no input videos"):
        collect_videos([lst])
    lst.write_bytes(b"\xff\xfe\x00b.mp4\n")  # a binary file named like a list (or a list in UTF-16)
    with pytest.raises(InputError, match=r"list.txt: not a list of videos \(not UTF-8 text: byte 0\)"):
        collect_videos([lst])


def test_a_one_frame_picture_stream_before_the_video_is_not_taken_for_it(tmp_path: Path):
    # a cover picture stored as an ordinary stream (no attached-picture flag) ahead of the real video
    import av
    import numpy as np

    p = tmp_path / "cover_first.mkv"
    with av.open(str(p), "w") as c:
        cover = c.add_stream("mjpeg", rate=1)
        cover.width, cover.height, cover.pix_fmt = 40, 30, "yuvj420p"
        video = c.add_stream("libx264", rate=10)
        video.width, video.height, video.pix_fmt = 32, 24, "yuv420p"
        frame = av.VideoFrame.from_ndarray(np.full((30, 40, 3), 200, np.uint8), format="rgb24")
        for packet in [*cover.encode(frame), *cover.encode()]:
            c.mux(packet)
        for i in range(100):
            img = np.full((24, 32, 3), (4 * i) % 256, np.uint8)
            for packet in video.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(packet)
        for packet in video.encode():
            c.mux(packet)
    info = probe(p)
    assert (info.width, info.height, info.codec) == (32, 24, "h264")
    assert info.duration == pytest.approx(10.0, abs=0.2)
    assert len(list(iter_windows(p, clip_windows(info.duration), 4, info=info))) == 3
