"""Small synthetic videos for tests (ours and other modules'), written with PyAV.

`make_video` writes solid-colour frames whose grey level encodes the frame index (`4 * index mod 256` by default),
so a test can tell from a decoded frame which moment of the video it shows: `frame_index_of(frame)`. Sizes, codecs,
pixel formats, rotation metadata and variable frame rate are all settable, and `make_audio_only` / `truncate` /
`corrupt_middle` produce the bad inputs the reader must reject (or, allowed to, read in part).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

Color = tuple[int, int, int]

# Grey level step per frame of the default pattern (coarse enough to survive lossy codecs).
PATTERN_STEP = 4


def pattern_color(index: int, t: float) -> Color:
    """The default frame colour: grey `4 * index mod 256` (64 distinct frames before it wraps)."""
    v = (PATTERN_STEP * index) % 256
    return v, v, v


def frame_index_of(frame: np.ndarray) -> int:
    """The frame index (mod 64) encoded by `pattern_color` in a decoded RGB frame (any size or crop)."""
    v = float(np.asarray(frame, dtype=np.float64).mean())
    return int(round(v / PATTERN_STEP)) % (256 // PATTERN_STEP)


def vfr_times(duration: float, fps: float) -> list[float]:
    """Frame times of a variable-rate stream: intervals alternate 0.5/fps and 1.5/fps (average rate `fps`)."""
    times, t, i = [], 0.0, 0
    while t < duration - 1e-9:
        times.append(t)
        t += (0.5 if i % 2 == 0 else 1.5) / fps
        i += 1
    return times


def make_video(
    path: str | os.PathLike[str],
    duration: float = 2.0,
    fps: float = 5.0,
    size: tuple[int, int] = (32, 24),
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    rotation: int = 0,
    vfr: bool = False,
    color_fn: Callable[[int, float], Color] | None = None,
    options: dict[str, str] | None = None,
    start_time: float = 0.0,
    audio: str | None = None,
    audio_seconds: float | None = None,
) -> Path:
    """Write a small test video and return its path.

    Args:
        path: output file; the extension picks the container (.mp4, .mkv, .webm, .mov, .avi, ...).
        duration: seconds of video (frames at `i / fps` for `i / fps < duration`).
        fps: frame rate (the average one when `vfr`).
        size: (width, height) in pixels. H.264/HEVC with 4:2:0 need even sizes; use ffv1/mpeg4/yuv444p for odd.
        codec: an FFmpeg encoder name: libx264, libx265, libvpx-vp9, ffv1, mpeg4, mjpeg, ...
        pix_fmt: e.g. yuv420p, yuv444p, yuv420p10le.
        rotation: counter-clockwise display rotation written as the stream's display matrix.
        vfr: variable frame rate: intervals alternate between 0.5/fps and 1.5/fps.
        color_fn: `(frame_index, time) -> (r, g, b)`; default `pattern_color`.
        options: encoder options.
        start_time: timestamp of the first frame (a start-time offset).
        audio: an audio encoder name (aac, libopus, ...) to add a 440 Hz mono tone as long as the video, starting
            at the same time; None: no sound.
        audio_seconds: the tone's length when it is not the video's (sound that goes on after the picture).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    color_fn = color_fn or pattern_color
    width, height = size
    if vfr:
        times = vfr_times(duration, fps)
    else:
        n = max(0, int(np.ceil(duration * fps - 1e-9)))
        times = [i / fps for i in range(n)]
    tb = Fraction(1, 1000)
    opts = dict(options or {})
    if codec == "libx265":
        opts.setdefault("x265-params", "log-level=none")
    with av.open(str(path), mode="w") as container:
        rate = Fraction(fps).limit_denominator(1001)
        stream = container.add_stream(codec, rate=rate, options=opts)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if vfr or start_time:
            stream.codec_context.time_base = tb
        if rotation:
            stream.set_display_rotation(rotation)
        sound = None
        if audio:
            sound = container.add_stream(audio, rate=48_000)
            sound.layout = "mono"
        for i, t in enumerate(times):
            img = np.empty((height, width, 3), dtype=np.uint8)
            img[...] = np.asarray(color_fn(i, t), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            if vfr or start_time:
                frame.time_base = tb
                frame.pts = int(round((t + start_time) * 1000))
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if sound is not None:
            _write_tone(container, sound, duration if audio_seconds is None else audio_seconds, start_time)
        if not times:
            container.start_encoding()  # a valid header with a video stream and no frames
    return path


def _write_tone(container: av.container.OutputContainer, sound: av.audio.stream.AudioStream, duration: float,
                start_time: float) -> None:  # fmt: skip
    sr, chunk = sound.codec_context.sample_rate, 960
    t0 = int(round(start_time * sr))
    for i in range(0, int(duration * sr), chunk):
        t = (np.arange(i, i + chunk) / sr).astype(np.float32)
        frame = av.AudioFrame.from_ndarray((0.2 * np.sin(2 * np.pi * 440 * t))[None], format="flt", layout="mono")
        frame.sample_rate, frame.time_base, frame.pts = sr, Fraction(1, sr), t0 + i
        for packet in sound.encode(frame):
            container.mux(packet)
    for packet in sound.encode():
        container.mux(packet)


def make_audio_only(path: str | os.PathLike[str], duration: float = 1.0, sample_rate: int = 16000) -> Path:
    """Write a file with one AAC audio stream and no video stream (.m4a/.mp4)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("aac", rate=sample_rate)
        n = 1024
        for k in range(int(np.ceil(duration * sample_rate / n))):
            samples = np.zeros((1, n), dtype=np.float32)
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate = sample_rate
            frame.pts = k * n
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def truncate(path: str | os.PathLike[str], keep: float = 0.5) -> Path:
    """Cut a file to its first `keep` share of bytes (a download that stopped half-way)."""
    path = Path(path)
    data = path.read_bytes()
    path.write_bytes(data[: max(1, int(len(data) * keep))])
    return path


def corrupt_middle(path: str | os.PathLike[str], at: float = 0.5, nbytes: int = 4096) -> Path:
    """Overwrite `nbytes` bytes at `at` (a share of the file) with 0xFF: a file that decodes up to there and then
    fails with a decode error (use an intra-only codec such as ffv1 in .mkv, whose index is not where the damage is).
    """
    path = Path(path)
    data = bytearray(path.read_bytes())
    i = int(len(data) * at)
    data[i : i + nbytes] = b"\xff" * len(data[i : i + nbytes])
    path.write_bytes(bytes(data))
    return path
