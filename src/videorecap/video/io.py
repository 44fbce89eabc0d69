"""Opening and probing video files with PyAV (FFmpeg).

`probe(path)` reads what the rest of the package needs to plan windows (duration, frame rate, size, rotation,
start-time offset) and checks that the file really holds a decodable video stream, so that every kind of bad input
fails here with one line naming the file, before any model work starts.

Times are in seconds on the *video clock*: 0 is the first frame of the video stream (the stream's start time),
whatever the container's start-time offset is.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import av.error

from videorecap.errors import VideoError

logger = logging.getLogger(__name__)

# File name endings we treat as videos when a directory is given (anything FFmpeg reads can be named explicitly).
VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".mp4",
        ".m4v",
        ".mkv",
        ".webm",
        ".mov",
        ".avi",
        ".mpg",
        ".mpeg",
        ".ts",
        ".mts",
        ".m2ts",
        ".flv",
        ".wmv",
        ".ogv",
        ".3gp",
        ".h264",
        ".hevc",
        ".y4m",
    }
)


@dataclass(frozen=True)
class VideoInfo:
    """What `probe` learned about a video file.

    Attributes:
        path: the file.
        duration: seconds of video on the video clock (first frame at 0).
        fps: average frame rate (frames per second); for variable frame rate video only a summary.
        width: coded width in pixels (before rotation).
        height: coded height in pixels (before rotation).
        rotation: counter-clockwise degrees from the display matrix (0, 90, 180 or -90); frames are turned by this.
        start_time: seconds of the first video frame on the container clock (the start-time offset).
        codec: decoder name, e.g. "h264", "hevc", "vp9".
        pix_fmt: pixel format of the stream, e.g. "yuv420p", "yuv420p10le", "yuv444p".
        num_frames: frame count from the container header, or None where the container does not say (mkv, webm).
        duration_source: where `duration` came from: "stream", "container", "packets" or "frames" (a raw stream
            without timestamps: its frame count at its rate).
    """

    path: Path
    duration: float
    fps: float
    width: int
    height: int
    rotation: int
    start_time: float
    codec: str
    pix_fmt: str
    num_frames: int | None
    duration_source: str = "stream"

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) after rotation, i.e. as the frames come out of the reader."""
        if self.rotation % 180 != 0:
            return self.height, self.width
        return self.width, self.height

    @property
    def frame_interval(self) -> float:
        return 1.0 / self.fps if self.fps > 0 else 0.0


def is_video_path(path: str | os.PathLike[str]) -> bool:
    """True when the file name ends like a video (used to pick files out of a directory)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


LIST_SUFFIXES = (".txt", ".lst", ".list")


def collect_videos(inputs: Sequence[str | os.PathLike[str]], recursive: bool = False) -> list[Path]:
    """Video paths from files, folders, glob patterns and list files, in order, each file once.

    - a folder gives its files whose names end like a video (`VIDEO_EXTENSIONS`), sorted; hidden files are skipped.
      With `recursive` its subfolders too; without, a folder whose videos all sit in subfolders is an error that
      says so.
    - a `.txt`/`.lst`/`.list` file is a list of paths, one a line (relative to the list's folder; blank lines and
      `#` comments skipped).
    - a pattern with `*?[` (quoted, so the shell leaves it) gives the files it matches (`**` with `recursive`).
    - anything else is taken as a video file; it is opened (and a bad one reported) later.

    Raises:
        InputError: an input or listed path that does not exist, a folder or pattern without videos, or no input.
    """
    import glob

    from videorecap.errors import InputError

    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            out += _folder_videos(p, recursive)
        elif p.is_file() and p.suffix.lower() in LIST_SUFFIXES:
            try:
                text = p.read_text(encoding="utf-8")
            except UnicodeDecodeError as e:
                raise InputError(f"{p}: not a list of videos (not UTF-8 text: byte {e.start})") from None
            except OSError as e:
                raise InputError(f"{p}: cannot be read ({e.strerror or e})") from None
            for line_no, line in enumerate(text.splitlines(), 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                v = Path(line)
                v = v if v.is_absolute() else p.parent / v
                if not v.exists():
                    raise InputError(f"{p}:{line_no}: {line}: no such file")
                out.append(v)
        elif not p.exists() and any(ch in str(item) for ch in "*?["):
            matches = sorted(Path(m) for m in glob.glob(str(item), recursive=recursive))
            files = [m for m in matches if m.is_file()]
            if not files:
                raise InputError(f"{item}: the pattern matches no file")
            out += files
        elif not p.exists():
            raise InputError(f"{p}: no such file or folder")
        else:
            out.append(p)
    if not out:
        raise InputError("no input videos: the lists given are empty")
    seen: set[Path] = set()
    unique: list[Path] = []
    for v in out:
        r = v.resolve()
        if r not in seen:
            seen.add(r)
            unique.append(v)
    return unique


def _folder_videos(folder: Path, recursive: bool) -> list[Path]:
    from videorecap.errors import InputError

    def videos_in(files: list[Path]) -> list[Path]:
        # hidden files and folders (.cache/ of our own outputs, .git/) are never inputs
        return sorted(
            f
            for f in files
            if f.is_file() and is_video_path(f) and not any(x.startswith(".") for x in f.relative_to(folder).parts)
        )

    found = videos_in(list(folder.rglob("*") if recursive else folder.iterdir()))
    if found:
        return found
    if not recursive:
        below = videos_in(list(folder.rglob("*")))
        if below:
            raise InputError(
                f"{folder}: no video files in this folder, but its subfolders hold {len(below)}; "
                "pass --recursive to include them"
            )
    raise InputError(f"{folder}: no video files in this folder{' or its subfolders' if recursive else ''}")


def open_input(path: str | os.PathLike[str], hw_decode: str | None = None) -> av.container.InputContainer:
    """Open `path` for reading, turning every FFmpeg failure into a one-line `VideoError` naming the file.

    With `hw_decode` (a device such as "cuda", see `hardware_decoder`) its video stream decodes on that device when
    FFmpeg has a hardware decoder for the codec (frames come back to system memory), in software otherwise."""
    p = Path(path)
    if not p.exists():
        raise VideoError(f"{p}: no such file")
    if p.is_dir():
        raise VideoError(f"{p}: is a directory, not a video file")
    if p.stat().st_size == 0:
        raise VideoError(f"{p}: empty file (0 bytes)")
    accel = hardware_decoder(hw_decode, check=False) if hw_decode else None
    try:
        extra = {"hwaccel": accel} if accel is not None else {}  # PyAV before 14 has no hwaccel argument
        return av.open(str(p), mode="r", metadata_errors="ignore", **extra)
    except av.error.FFmpegError as e:
        if accel is not None:
            # the device is opened with the file: tell a device that does not open from a file that does not
            open_input(p).close()
            raise VideoError(f"{p}: the {hw_decode} hardware decoder does not open ({_short(e)})") from None
        raise VideoError(f"{p}: not a readable video file ({_short(e)})") from None
    except (OSError, ValueError) as e:  # e.g. a permission error
        raise VideoError(f"{p}: cannot open ({_short(e)})") from None


# --hw-decode reaches the decoding threads and processes (prefetch threads, data loader workers) through this
# environment variable, as the decoder's thread count does (runtime.decode_threads)
HW_DECODE_ENV = "VIDEORECAP_HW_DECODE"


def hardware_decoder(spec: str, *, check: bool = True) -> av.codec.hwaccel.HWAccel:
    """PyAV's settings for decoding on the device `spec`: an FFmpeg hardware device type ("cuda": NVIDIA's NVDEC;
    "cuda:1" for the second GPU; `av.codec.hwaccel.hwdevices_available()` lists what this FFmpeg has). A stream
    whose codec or profile the device cannot decode falls back to software decoding.

    Args:
        spec: "TYPE" or "TYPE:INDEX".
        check: open the device once now (a missing GPU or driver is an `InputError` here, before any work).

    Raises:
        InputError: an unknown device type, or (with `check`) a device FFmpeg cannot open.
    """
    from videorecap.errors import InputError

    try:
        from av.codec.hwaccel import HWAccel, hwdevices_available
    except ImportError:
        raise InputError(f"--hw-decode {spec}: this PyAV {av.__version__} has no hardware decoding (it came with "
                         "PyAV 14: pip install -U av)") from None  # fmt: skip

    kind, colon, index = spec.partition(":")
    kinds = hwdevices_available()
    if kind not in kinds or (colon and not index.isdigit()):
        have = ", ".join(kinds) if kinds else "none"
        raise InputError(f"--hw-decode {spec}: not a hardware decoder of this FFmpeg (it has: {have}; TYPE or TYPE:N)")
    accel = HWAccel(kind, device=index or None, allow_software_fallback=True)
    if check:
        # H.264 is what every hardware decoder decodes: creating its context opens the device
        codecs = [c for c in ("h264", "hevc", "vp9", "av1") if any(
            h.device_type.name == kind for h in av.Codec(c, "r").hardware_configs)]  # fmt: skip
        if not codecs:
            raise InputError(f"--hw-decode {spec}: FFmpeg decodes none of H.264, HEVC, VP9, AV1 on {kind}")
        try:
            accel.create(av.Codec(codecs[0], "r"))
        except (av.error.FFmpegError, NotImplementedError, OSError) as e:
            hint = "; is there an NVIDIA GPU and its driver (libcuda)?" if kind == "cuda" else ""
            raise InputError(f"--hw-decode {spec}: FFmpeg cannot open the device ({_short(e)}{hint}); leave out "
                             "--hw-decode to decode in software") from None  # fmt: skip
    return accel


def set_hw_decode(spec: str | None) -> None:
    """Decode video files on the hardware decoder `spec` (see `hardware_decoder`, which checks it first) from now
    on, in this process and the processes it starts; None: in software (the default)."""
    if spec is None:
        os.environ.pop(HW_DECODE_ENV, None)
        return
    hardware_decoder(spec)
    os.environ[HW_DECODE_ENV] = spec


def current_hw_decode() -> str | None:
    """The hardware decoder set by `set_hw_decode` (or $VIDEORECAP_HW_DECODE), None for software decoding."""
    return os.environ.get(HW_DECODE_ENV) or None


def video_stream(container: av.container.InputContainer, path: str | os.PathLike[str]) -> av.video.stream.VideoStream:
    """The video stream of `container`: the one FFmpeg's own choice picks (as `ffmpeg -i` does: the default
    stream, then the one with the most frames seen while opening), cover-art pictures skipped; or a `VideoError`
    (also for a still image, which FFmpeg opens as a one-frame video). The first video stream is not enough: a
    cover picture stored as an ordinary one-frame stream before the video would be taken for it."""
    fmt = container.format.name if container.format is not None else ""
    if fmt in ("image2", "image2pipe") or fmt.endswith("_pipe"):  # FFmpeg's image readers: png_pipe, jpeg_pipe, ...
        kind = fmt.removesuffix("_pipe") if fmt.endswith("_pipe") else "image"
        raise VideoError(f"{path}: a still image ({kind}), not a video")
    # an album-art still is not a video
    streams = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
    if streams:
        try:
            best = container.streams.best("video")
        except (av.error.FFmpegError, ValueError):
            best = None
        return best if best is not None and best in streams else streams[0]
    kinds = sorted({s.type for s in container.streams})
    if not kinds:
        raise VideoError(f"{path}: no streams at all (an empty, zero-duration video)")
    raise VideoError(f"{path}: no video stream (the file has: {', '.join(kinds)})")


def probe(path: str | os.PathLike[str]) -> VideoInfo:
    """Read the facts needed to sample a video, and check that its first frame decodes.

    Raises:
        VideoError: for a missing, empty, non-video, corrupt or audio-only file, a stream with no frames, or a
            zero duration. The message names the file and what is wrong.
    """
    p = Path(path)
    with open_input(p) as container:
        stream = video_stream(container, p)
        ctx = stream.codec_context
        codec = ctx.name if ctx is not None else "unknown"
        tb = stream.time_base
        stream_start = float(stream.start_time * tb) if stream.start_time is not None and tb else None

        # Decode the first frame: it proves the stream is decodable and carries the rotation (display matrix).
        first = _first_frame(container, stream, p)
        first_time = first.time if first.time is not None else 0.0
        start_time = stream_start if stream_start is not None else first_time
        rotation = _rotation(first)
        width = first.width or (ctx.width if ctx else 0)
        height = first.height or (ctx.height if ctx else 0)
        pix_fmt = first.format.name if first.format is not None else (ctx.pix_fmt or "unknown")

        fps = _fps(stream)  # before the duration: used there
        num_frames = int(stream.frames) if stream.frames else None

        duration, source = None, "stream"
        if stream.duration is not None and tb:
            duration = float(stream.duration * tb)
        if not duration:
            # mkv/webm give no per-stream duration, and the container's may count from 0 or from its start time
            # and include other streams: read the timestamps of the last packets instead (one seek near the end).
            duration, file_end = _duration_from_tail(container, stream, start_time)
            source = "packets"
            if container.duration:
                # A header that claims clearly more than the packets of every stream hold: a truncated file. Keep
                # the claim, so the reader reports the missing part instead of silently giving a shorter video.
                # (The claim covers every stream: where the sound goes on after the picture, the file is whole.)
                claimed = container.duration / av.time_base
                cstart = (container.start_time or 0) / av.time_base
                claimed_end = min(claimed, cstart + claimed)  # mkv counts its duration from 0, others from start
                if start_time + file_end < claimed_end - max(1.0, 3 / fps if fps > 0 else 0.0):
                    duration = claimed_end - start_time
                    source = "container"
        if not duration and container.duration:
            duration = container.duration / av.time_base
            source = "container"
        if not duration and first.time is None:
            # a raw stream (.h264, .hevc): no timestamps at all, its frames are timed by their rate alone, which
            # FFmpeg guesses from the bitstream (its own default, 25 fps, where the stream does not say)
            fps = _rate(stream.guessed_rate) or fps
            num_frames = count_frames(p)
            duration = num_frames / fps if fps > 0 else 0.0
            source = "frames"
    if width <= 0 or height <= 0:
        raise VideoError(f"{p}: video stream has no frame size")
    if not duration or not math.isfinite(duration) or duration <= 0:
        raise VideoError(f"{p}: zero duration")
    if fps <= 0 and num_frames:
        fps = num_frames / duration
    info = VideoInfo(
        path=p,
        duration=duration,
        fps=fps,
        width=width,
        height=height,
        rotation=rotation,
        start_time=start_time,
        codec=codec,
        pix_fmt=pix_fmt,
        num_frames=num_frames,
        duration_source=source,
    )
    logger.debug("probed %s", info)
    return info


def count_frames(path: str | os.PathLike[str]) -> int:
    """Number of video frames, counted from packets (no decoding); used when the header does not say."""
    with open_input(path) as container:
        stream = video_stream(container, path)
        n = 0
        try:
            for packet in container.demux(stream):
                if packet.size:
                    n += 1
        except av.error.FFmpegError as e:
            raise VideoError(f"{path}: corrupt video ({_short(e)})") from None
    return n


# ---- helpers ----------------------------------------------------------------------------------------------------
def _first_frame(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, path: Path
) -> av.VideoFrame:
    try:
        for frame in container.decode(stream):
            return frame
    except av.error.FFmpegError as e:
        raise VideoError(f"{path}: corrupt or truncated video, the first frame does not decode ({_short(e)})") from None
    raise VideoError(f"{path}: zero duration, the video stream has no frames")


def _rotation(frame: av.VideoFrame) -> int:
    try:
        deg = frame.rotation
    except (AttributeError, ValueError):
        return 0
    if not deg:
        return 0
    # Snap to a multiple of 90 degrees in [-180, 180); other angles are not supported by the reader.
    snapped = int(round(deg / 90.0)) * 90
    snapped = ((snapped + 180) % 360) - 180
    return snapped


def _fps(stream: av.video.stream.VideoStream) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if value := _rate(rate):
            return value
    return 0.0


def _rate(rate: Any) -> float:
    """A frame rate in frames per second, or 0.0 where it is missing or absurd."""
    value = float(rate) if rate else 0.0
    return value if math.isfinite(value) and 0 < value < 10_000 else 0.0


def _duration_from_tail(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, start_time: float
) -> tuple[float, float]:
    """`(video, file)`: the end of the last video packet (pts + duration) and of the last packet of any stream,
    minus the start time; 0.0 where they cannot be found (packets without timestamps).

    With a duration in the header, one seek to the last key frame near the end, then the packets from there are
    demuxed (not decoded). Without one (a stream being recorded, a raw .h264/.hevc stream, which cannot seek at
    all), the packets are read on from where the probe is, near the start."""
    tb = stream.time_base
    if not tb:
        return 0.0, 0.0
    if container.duration:
        target = (container.start_time or 0) + container.duration
        try:
            container.seek(target, backward=True, any_frame=False)
        except av.error.FFmpegError:
            container.seek(0)
    end = file_end = 0.0
    try:
        for packet in container.demux():
            if packet.pts is None or packet.time_base is None:
                continue
            packet_end = float((packet.pts + (packet.duration or 0)) * packet.time_base) - start_time
            file_end = max(file_end, packet_end)
            if packet.stream.index == stream.index:
                end = max(end, packet_end)
    except av.error.FFmpegError:
        pass  # a damaged tail: the reader reports it if the damaged part is needed
    return end, max(file_end, end)


def _short(e: BaseException) -> str:
    """One line of an FFmpeg error, without the file name PyAV repeats."""
    msg = getattr(e, "strerror", None) or str(e)
    return " ".join(str(msg).split())[:200]
