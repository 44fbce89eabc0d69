"""A browser-playable copy of a video (`videorecap caption --web-video`), made with the FFmpeg that PyAV bundles.

Every browser plays H.264 video with AAC sound in MP4; many do not play HEVC, ProRes, MPEG-4 Part 2 or Matroska
files, and then `index.html` would show an empty box. `make_web_copy` re-encodes the first video stream (and the
first audio stream, if there is one) into `video.web.mp4`:

- H.264 (`libx264`, else `libopenh264`) in yuv420p with AAC sound, the index at the front of the file (`faststart`)
  so playback starts before the whole file has loaded. A PyAV build without any H.264 encoder gets VP9 + Opus in
  WebM instead (`video.web.webm`), which every current browser plays too; `WebCopy` says which it made.
- The copy starts at 0: its first frame is the source's first frame, so its timeline is the caption timeline even
  when the source has a start offset (a container whose first timestamp is not 0). Frames keep their timestamps
  (variable frame rate stays variable).
- Frames are turned upright (phone videos), and made smaller only when asked (`max_height`); sizes are rounded
  down to even numbers, which yuv420p needs.
- Written atomically (a temp file renamed into place), so a killed run never leaves half a video behind.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.error

from videorecap import fileio
from videorecap.errors import VideoError
from videorecap.video.io import open_input, probe, video_stream
from videorecap.video.reader import _to_rgb

logger = logging.getLogger(__name__)

WEB_COPY_NAME = "video.web"  # + ".mp4" (or ".webm" without an H.264 encoder)
H264_ENCODERS = ("libx264", "libopenh264")  # software encoders only: hardware ones need hardware
# Smallest max_height: below it a frame shows nothing (a 3 asked for a 2 x 2 video), and H.264 codes 16 x 16 blocks.
MIN_HEIGHT = 16
_TIME_BASE = Fraction(1, 90_000)  # fine enough that no two frames of a variable-frame-rate video collide


@dataclass(frozen=True)
class WebFormat:
    """What a web copy is made of: container (FFmpeg muxer name), file suffix, video and audio encoders."""

    container: str
    suffix: str
    video_encoder: str
    audio_encoder: str


@dataclass(frozen=True)
class WebCopy:
    """A written web copy: its path, format, frame size and the number of video frames."""

    path: Path
    format: WebFormat
    width: int
    height: int
    frames: int
    has_audio: bool


def _has_encoder(name: str) -> bool:
    if name not in av.codecs_available:
        return False
    try:
        av.Codec(name, "w")
    except (ValueError, av.error.FFmpegError):
        return False
    return True


def web_format() -> WebFormat:
    """H.264/AAC in MP4 when the bundled FFmpeg has an H.264 encoder, else VP9/Opus in WebM."""
    for enc in H264_ENCODERS:
        if _has_encoder(enc):
            return WebFormat("mp4", ".mp4", enc, "aac")
    if _has_encoder("libvpx-vp9") and _has_encoder("libopus"):
        logger.warning("PyAV's FFmpeg has no H.264 encoder: the web copy is VP9/Opus in WebM")
        return WebFormat("webm", ".webm", "libvpx-vp9", "libopus")
    raise VideoError(
        "cannot make a web copy: the FFmpeg bundled with PyAV has neither an H.264 nor a VP9 encoder "
        "(install the PyAV wheel from PyPI, which has libx264)"
    )


def web_copy_path(out_dir: str | os.PathLike[str]) -> Path:
    """Where `make_web_copy` writes into `out_dir` with this PyAV's encoders."""
    return Path(out_dir) / (WEB_COPY_NAME + web_format().suffix)


def _size(width: int, height: int, max_height: int | None) -> tuple[int, int]:
    if max_height is not None and max_height < MIN_HEIGHT:
        raise ValueError(f"max_height must be at least {MIN_HEIGHT} pixels, got {max_height}")
    if max_height is not None and height > max_height:
        target = max_height - max_height % 2  # even first, so the width keeps the aspect ratio of the even height
        width, height = round(width * target / height), target
    return max(2, width - width % 2), max(2, height - height % 2)


def make_web_copy(
    src: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    max_height: int | None = None,
    progress: bool = False,
) -> WebCopy:
    """Write a browser-playable copy of `src` into `out_dir` (see the module docstring) and return what was written.

    Args:
        src: the video.
        out_dir: the folder of the copy, created if needed; the file is `video.web.mp4` (or `.webm`).
        max_height: make frames at most this tall (keeping the aspect ratio); None keeps the size.
        progress: show a progress bar (frames) on stderr.

    Raises:
        VideoError: the source cannot be read or decoded, or no suitable encoder exists.
    """
    src = Path(src)
    info = probe(src)  # one-line errors for missing, empty or undecodable files
    fmt = web_format()
    dst = Path(out_dir) / (WEB_COPY_NAME + fmt.suffix)
    if dst.resolve() == src.resolve():
        raise VideoError(f"{src}: is itself the web copy's path; give another output folder")
    width, height = _size(*info.display_size, max_height)
    total = info.num_frames or (round(info.duration * info.fps) if info.fps else None)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=f"{src.name} web copy", unit="frame", leave=False, dynamic_ncols=True)
    try:
        with fileio.atomic_path(dst) as tmp:
            frames, has_audio = _transcode(src, tmp, fmt, info.rotation, width, height, info.fps, bar)
    except av.error.FFmpegError as e:
        raise VideoError(f"{src}: cannot make a web copy ({' '.join(str(e).split())[:200]})") from None
    finally:
        if bar is not None:
            bar.close()
    logger.info("wrote %s (%s, %dx%d, %d frames)", dst, fmt.video_encoder, width, height, frames)
    return WebCopy(dst, fmt, width, height, frames, has_audio)


def _transcode(
    src: Path,
    dst: Path,
    fmt: WebFormat,
    rotation: int,
    width: int,
    height: int,
    fps: float,
    bar: object | None,
) -> tuple[int, bool]:
    options = {"movflags": "+faststart"} if fmt.container == "mp4" else {}
    with open_input(src) as inp, av.open(str(dst), "w", format=fmt.container, options=options) as out:
        vin = video_stream(inp, src)
        ain = next(iter(inp.streams.audio), None)
        rate = Fraction(fps).limit_denominator(1001) if fps > 0 else Fraction(30)
        vout = out.add_stream(fmt.video_encoder, rate=rate)
        vout.width, vout.height, vout.pix_fmt = width, height, "yuv420p"
        vout.codec_context.time_base = _TIME_BASE
        if fmt.video_encoder == "libx264":
            vout.options = {"preset": "veryfast", "crf": "23"}
        elif fmt.video_encoder == "libvpx-vp9":
            vout.options = {"deadline": "good", "cpu-used": "5", "crf": "32", "b": "0"}
        aout = None
        if ain is not None:
            sr = ain.codec_context.sample_rate or 48_000
            sr = 48_000 if fmt.audio_encoder == "libopus" else sr  # Opus takes 48 kHz (and a few lower rates)
            aout = out.add_stream(fmt.audio_encoder, rate=sr)
            aout.layout = "stereo" if (ain.codec_context.channels or 2) >= 2 else "mono"
            resampler = av.AudioResampler(format=aout.codec_context.format.name, layout=aout.layout.name, rate=sr)
            samples = None  # samples written so far; set at the first audio frame

        t0: float | None = None  # time of the first video frame: the copy's 0
        frames = 0
        last_pts = -1
        pending_audio: list[av.AudioFrame] = []  # audio that came before the first video frame was known
        streams = [vin] + ([ain] if ain is not None else [])
        for packet in inp.demux(*streams):
            for frame in packet.decode():
                if isinstance(frame, av.VideoFrame):
                    t = frame.time if frame.time is not None else (t0 or 0.0) + frames / float(rate)
                    if t0 is None:
                        t0 = t
                    if rotation % 360:
                        img = av.VideoFrame.from_ndarray(_to_rgb(frame, rotation), format="rgb24")
                    else:
                        img = frame
                    img = img.reformat(width=width, height=height, format="yuv420p")
                    pts = max(round((t - t0) / _TIME_BASE), last_pts + 1)  # strictly increasing
                    img.pts, img.time_base, last_pts = pts, _TIME_BASE, pts
                    for p in vout.encode(img):
                        out.mux(p)
                    frames += 1
                    if bar is not None:
                        bar.update(1)  # type: ignore[attr-defined]
                    if pending_audio and aout is not None:
                        for a in pending_audio:
                            samples = _encode_audio(a, t0, samples, resampler, aout, out)
                        pending_audio = []
                elif aout is not None:
                    if t0 is None:
                        pending_audio.append(frame)
                    else:
                        samples = _encode_audio(frame, t0, samples, resampler, aout, out)
        if frames == 0:
            raise VideoError(f"{src}: no video frame decoded; nothing to copy")
        for p in vout.encode():
            out.mux(p)
        if aout is not None:
            for p in aout.encode():
                out.mux(p)
    return frames, aout is not None


def _encode_audio(
    frame: av.AudioFrame,
    t0: float,
    samples: int | None,
    resampler: av.AudioResampler,
    aout: av.audio.stream.AudioStream,
    out: av.container.OutputContainer,
) -> int | None:
    """Encode one decoded audio frame on the copy's clock (0 = first video frame); sound before it is dropped."""
    sr = aout.codec_context.sample_rate
    t = frame.time
    if t is not None and t + frame.samples / frame.sample_rate <= t0:
        return samples  # ends before the first picture
    for f in resampler.resample(frame):
        if samples is None:
            samples = max(0, round(((t if t is not None else t0) - t0) * sr))
        f.pts, f.time_base = samples, Fraction(1, sr)
        samples += f.samples
        for p in aout.encode(f):
            out.mux(p)
    return samples
