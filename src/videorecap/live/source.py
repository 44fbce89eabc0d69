"""What a live SOURCE is, and its decoded frames on one session timeline.

SOURCE is one of:

- a file, possibly still being written: read like `tail -f` (`FollowFile`); it ends when the file has not grown for
  `idle` seconds, or once the end marker `SOURCE.done` exists and everything before it was read. An MP4 with its
  index at the end (`mp4_index`) cannot be read as a stream: it is read whole once complete;
- a network URL that the bundled FFmpeg opens (`http(s)://` MPEG-TS or HLS, `rtsp://`, `rtmp://`, `udp://`,
  `tcp://`, `srt://`): a lost connection is opened again, with backoff, for up to `reconnect` seconds;
- a capture input (`CAPTURE_FORMATS`): a camera (`/dev/video0`, FFmpeg's video4linux2 input, which the PyAV wheel
  for Linux has; `--format avfoundation` or `dshow` where the build has those), a screen (`--format x11grab`), or a
  filter graph standing in for a camera (`--format lavfi`, e.g. `testsrc2=rate=25,realtime`); it ends when the
  input does (Ctrl-C or `--duration` for a camera);
- `-`: a stream on stdin (MPEG-TS, or any format FFmpeg can probe from a pipe; `--format` names it otherwise).

**Timeline.** A frame's time is its stream timestamp minus the stream's start time (the first frame is at 0, as
`video.io.probe` counts for files); a frame without a timestamp gets the wall clock since the first frame. After a
reconnect whose timestamps restart (or jump backwards), the new frames continue after the old ones, shifted by
the wall-clock time the source was away; a new part of a resumed network session starts where the last one ended.
"""

from __future__ import annotations

import io
import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import av
import av.error

from videorecap.errors import InputError, VideoError
from videorecap.runtime import decode_threads
from videorecap.video.io import current_hw_decode, hardware_decoder

logger = logging.getLogger(__name__)

NETWORK_SCHEMES = ("http", "https", "rtsp", "rtsps", "rtmp", "udp", "tcp", "srt", "rtp")
END_MARKER_SUFFIX = ".done"  # `SOURCE.done` appearing means the writer has finished the file
PROBE_MICROSECONDS = 500_000  # how much of a live source FFmpeg reads to learn its format (see FrameSource._open)
PROBE_BYTES = 256 * 1024
# FFmpeg's capture inputs: cameras, screens, and lavfi (a filter graph as a camera: a setup can be tried without one).
# SOURCE is then what the input takes (a device path, a display, a filter graph); each exists where the build has it.
CAPTURE_FORMATS = ("video4linux2", "v4l2", "avfoundation", "dshow", "gdigrab", "x11grab", "kmsgrab", "fbdev", "lavfi")


@dataclass(frozen=True)
class Source:
    """A parsed SOURCE argument."""

    text: str  # as the user gave it
    kind: str  # "file", "network", "device" or "stdin"
    format: str | None = None  # an FFmpeg input format to force (None: probe)

    @property
    def recorded(self) -> bool:
        """A source that can be read again from the start (a file): `--resume` continues it where it stopped."""
        return self.kind == "file"


def parse_source(text: str, fmt: str | None = None) -> Source:
    """The kind of SOURCE, checked as far as it can be without opening it.

    Raises:
        InputError: a file that does not exist, a protocol or input format this FFmpeg build lacks.
    """
    if fmt is not None and not has_input_format(fmt):
        raise InputError(f"--format {fmt}: this FFmpeg has no such input format (e.g. mpegts, matroska, lavfi)")
    if text == "-":
        return Source(text, "stdin", fmt)
    if text.startswith("/dev/video") and fmt is None:
        if not has_input_format("video4linux2"):
            raise InputError(
                f"{text}: the bundled FFmpeg has no video4linux2 input, so capture devices cannot be opened; "
                "stream the device with ffmpeg into a pipe instead (ffmpeg -f v4l2 -i /dev/video0 -f mpegts - | "
                "videorecap live - ...)"
            )
        fmt = "video4linux2"
    if fmt in CAPTURE_FORMATS:
        if text.startswith("/dev/") and not os.path.exists(text):
            raise InputError(f"{text}: no such device (is the camera connected? `ls /dev/video*` lists them)")
        return Source(text, "device", fmt)
    scheme = urlsplit(text).scheme.lower()
    if scheme in NETWORK_SCHEMES:
        return Source(text, "network", fmt)
    if len(scheme) > 1 and "://" in text:
        raise InputError(f"{text}: unknown protocol {scheme!r}; use one of {', '.join(NETWORK_SCHEMES)}, a file or -")
    p = Path(text)
    if not p.exists():
        raise InputError(f"{text}: no such file (a live file must exist when the session starts)")
    if p.is_dir():
        raise InputError(f"{text}: a folder, not a video file or stream")
    return Source(text, "file", fmt)


# Top-level boxes an MP4/MOV file may begin with; a file starting otherwise is not one.
_MP4_FIRST_BOXES = (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot")


def mp4_index(path: Path) -> str | None:
    """Where an MP4/MOV file keeps its index (the `moov` box), from its top-level boxes:

    - "start": before the media data (a "faststart" or fragmented file): it can be read as a stream, as it grows;
    - "end": after the media data (what most recorders and muxers write): it must be read with seeking, whole;
    - "missing": no index yet: a file still being written (or cut off);
    - None: not an MP4/MOV file (or unreadable), which FFmpeg reads as a stream.
    """
    import struct

    seen: list[bytes] = []
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            pos = 0
            while pos + 8 <= size and len(seen) < 10_000:
                f.seek(pos)
                n, kind = struct.unpack(">I4s", f.read(8))
                header = 8
                if n == 1:  # a 64-bit size follows
                    if pos + 16 > size:
                        break
                    (n,) = struct.unpack(">Q", f.read(8))
                    header = 16
                if not seen and kind not in _MP4_FIRST_BOXES:
                    return None
                seen.append(kind)
                if kind in (b"moov", b"moof") or n == 0:  # found the index, or a box running to the end of the file
                    break
                if n < header:
                    return None  # not a box: let FFmpeg say what the file is
                pos += n
    except OSError:
        return None
    if not seen:
        return None
    if b"moov" in seen or b"moof" in seen:
        return "end" if b"mdat" in seen else "start"
    return "missing"  # (a recorder writes the index either first, with the header, or last)


def has_input_format(name: str) -> bool:
    """Whether this FFmpeg build reads the input format `name` (a demuxer or capture input; FFmpeg's names, such as
    "video4linux2" or its alias "v4l2")."""
    from av.format import ContainerFormat

    try:
        return bool(ContainerFormat(name, "r").is_input)
    except ValueError:
        return False


class FollowFile(io.RawIOBase):
    """A file read like `tail -f`: at its current end, reading waits for more data instead of ending.

    Reading ends when the file has not grown for `idle` seconds, when the end marker `<path>.done` exists and
    everything was read, or when `stop` is set. `ended` says which ("idle", "marker", "stopped").
    """

    def __init__(self, path: Path, idle: float, stop: threading.Event, poll: float = 0.05) -> None:
        super().__init__()
        self.path = path
        self.idle = idle
        self.stop = stop
        self.poll = poll
        self.marker = path.with_name(path.name + END_MARKER_SUFFIX)
        self._f = open(path, "rb")  # noqa: SIM115 - closed in close()
        self._last_growth = time.monotonic()
        self.ended: str | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        # Not seekable on purpose: FFmpeg seeks a seekable input to its end to estimate the duration, and at the
        # end of a growing file reading waits for the rest of it: the first frame would come at the end.
        return False

    def readinto(self, buffer: Any) -> int:
        while True:
            n = self._f.readinto(buffer)
            if n:
                self._last_growth = time.monotonic()
                return n
            if self.stop.is_set():
                self.ended = "stopped"
                return 0
            if self.marker.exists():
                n = self._f.readinto(buffer)  # what was appended before the marker appeared
                if n:
                    return n
                self.ended = "marker"
                return 0
            if time.monotonic() - self._last_growth > self.idle:
                self.ended = "idle"
                return 0
            time.sleep(self.poll)

    def close(self) -> None:
        self._f.close()
        super().close()


@dataclass
class LiveFrame:
    """One decoded frame on the session timeline."""

    t: float  # seconds on the session timeline
    frame: av.VideoFrame
    arrived: float  # time.monotonic() when it was decoded


class FrameSource:
    """The frames of a source, in order, on one timeline (see the module docstring); reconnects network sources.

    Args:
        source: the parsed SOURCE.
        idle: a file that has not grown, or a network read that got nothing, for this long ends (or reconnects).
        reconnect: network sources: keep trying to (re)connect for this many seconds after the source is lost
            (0: end at the first loss).
        stop: set from another thread to end the frames soon.
        start_at: the timeline time of the first frame of a new part of a network session (`--resume`). A resumed
            file is decoded from its start again (it is read as a stream, see `FollowFile.seekable`; decoding is
            far cheaper than captioning) and keeps its timeline (`base`).
        base: the raw stream time of timeline 0 of an earlier part (a resumed file keeps its timeline).
        on_event: called with ("disconnect" | "reconnect", details) for the session's event log.
    """

    def __init__(
        self,
        source: Source,
        *,
        idle: float = 10.0,
        reconnect: float = 0.0,
        stop: threading.Event | None = None,
        start_at: float = 0.0,
        base: float | None = None,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        self.source = source
        self.idle = idle
        self.reconnect = reconnect
        self.stop = stop or threading.Event()
        self.start_at = start_at
        self.base = base  # raw stream time of timeline 0
        self.on_event = on_event or (lambda kind, info: None)
        self.ended: str | None = None  # why the frames ended: eof, idle, marker, stopped, disconnected
        self.eps = 1e-6
        self.frame_interval = 0.0
        self.meta: dict[str, Any] = {}  # codec, width, height, fps, rotation of the first connection
        self._offset = 0.0  # added to (raw - base) after a reconnect whose timestamps restarted
        self._last_t: float | None = None
        self._last_arrived = 0.0
        self._wall0: float | None = None
        self._follow: FollowFile | None = None

    # ---- opening ----------------------------------------------------------------------------------------------
    def _open(self) -> av.container.InputContainer:
        src = self.source
        # FFmpeg reads up to 5 s (and 5 MB) of a stream to learn its format before the first frame: on a live
        # source that is 5 s of latency. Half a second is enough for the formats a live source sends.
        probe = {"analyzeduration": str(PROBE_MICROSECONDS), "probesize": str(PROBE_BYTES)}
        # --hw-decode: the process's hardware decoder (checked by the CLI); a codec it lacks decodes in software
        spec = current_hw_decode()
        hw = {"hwaccel": hardware_decoder(spec, check=False)} if spec else {}
        if src.kind == "file":
            path = Path(src.text)
            if src.format is None and self._wait_for_mp4_index(path) == "end":
                # An MP4 with its index after the media data cannot be read as a stream: read it whole, with seeking,
                # as `caption` does (it is complete by now: its index is written last).
                return av.open(str(path), options=probe, **hw)
            self._follow = FollowFile(path, self.idle, self.stop)
            return av.open(self._follow, format=src.format, options=probe, **hw)
        if src.kind == "stdin":
            return av.open(sys.stdin.buffer, format=src.format, options=probe, **hw)
        if src.kind == "device":
            return av.open(src.text, format=src.format, **hw)
        timeout = max(1.0, min(self.idle, 30.0))
        try:
            return av.open(src.text, format=src.format, options=probe, timeout=(timeout, timeout), **hw)
        except av.error.ProtocolNotFoundError:
            raise InputError(
                f"{src.text}: the bundled FFmpeg has no {urlsplit(src.text).scheme}:// protocol; relay the stream "
                "to http:// or a pipe (ffmpeg -i URL -c copy -f mpegts - | videorecap live - ...)"
            ) from None

    def _wait_for_mp4_index(self, path: Path) -> str | None:
        """`mp4_index(path)`, waiting while the file is an MP4 still being written without its index (which is
        written last): such a file can be read only once it is complete. Ends with a `VideoError` when the file
        stops growing for `idle` seconds without an index."""
        where = mp4_index(path)
        if where != "missing":
            return where
        logger.warning("%s: an MP4 being written with its index at the end can be read only once it is complete; "
                       "waiting for it (a recorder writing MPEG-TS, MKV or fragmented MP4 is captioned live)",
                       path)  # fmt: skip
        size, grew = -1, time.monotonic()
        while not self.stop.is_set():
            where = mp4_index(path)
            if where != "missing":
                return where
            now_size = path.stat().st_size if path.exists() else -1
            if now_size != size:
                size, grew = now_size, time.monotonic()
            elif time.monotonic() - grew >= self.idle:
                raise VideoError(
                    f"{path}: an MP4 whose index (moov) comes at its end, and the file stopped growing for "
                    f"{self.idle:g} s without one (a recording cut off?); if it is complete, remux it: ffmpeg -i "
                    f"{path.name} -c copy -movflags faststart fixed.mp4"
                )
            self.stop.wait(0.2)
        return None

    # ---- frames -----------------------------------------------------------------------------------------------
    def frames(self) -> Iterator[LiveFrame]:
        """Every frame until the source ends (or stays lost for `reconnect` seconds, or `stop` is set)."""
        lost_at: float | None = None
        backoff = 0.25
        connected_once = False
        while not self.stop.is_set():
            try:
                container = self._open()
            except InputError:
                raise
            except (av.error.FFmpegError, OSError) as e:
                why = " ".join(str(e).split())[:200]
                if self.source.kind != "network":
                    raise VideoError(f"{self.source.text}: cannot be opened as a video stream ({why})") from None
                now = time.monotonic()
                lost_at = lost_at if lost_at is not None else now
                if now - lost_at >= self.reconnect:
                    if not connected_once:
                        raise VideoError(f"{self.source.text}: cannot be opened ({why})") from None
                    self.ended = "disconnected"
                    return
                logger.info("%s: not reachable (%s); trying again in %.2fs", self.source.text, why, backoff)
                self.stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if connected_once:
                self.on_event("reconnect", {"away": round(time.monotonic() - (lost_at or time.monotonic()), 3)})
            connected_once, lost_at, backoff = True, None, 0.25
            error: str | None = None
            try:
                yield from self._decode(container)
            except (av.error.FFmpegError, OSError) as e:
                error = " ".join(str(e).split())[:200]
            finally:
                container.close()
                if self._follow is not None:
                    self._follow.close()
            if self.stop.is_set():
                self.ended = "stopped"
                return
            if self._follow is not None:
                if error is not None:
                    raise VideoError(f"{self.source.text}: decode error ({error})")
                self.ended = self._follow.ended or "eof"
                return
            if self.source.kind != "network" or self.reconnect <= 0:
                if error is not None and self.source.kind != "network":
                    raise VideoError(f"{self.source.text}: decode error ({error})")
                self.ended = "eof" if error is None else "disconnected"
                return
            lost_at = time.monotonic()
            self.on_event("disconnect", {"at": self._last_t, "error": error})
            logger.info("%s: the stream ended or broke (%s); reconnecting", self.source.text, error or "end of stream")
        self.ended = "stopped"

    def _decode(self, container: av.container.InputContainer) -> Iterator[LiveFrame]:
        try:
            stream = container.streams.video[0]
        except IndexError:
            raise VideoError(f"{self.source.text}: no video stream") from None
        stream.thread_type = "AUTO"
        # as video.reader: few decoder threads (`--threads`), so that FFmpeg does not compete with the model's
        # threads for the cores, nor delay each frame by one frame per thread (frame threading)
        stream.codec_context.thread_count = decode_threads()
        tb = float(stream.time_base) if stream.time_base else 1e-6
        self.eps = 1.5 * tb + 1e-9  # as video.reader: timestamp rounding of one tick
        rate = stream.average_rate or stream.guessed_rate
        self.frame_interval = 1.0 / float(rate) if rate else 0.0
        start = float(stream.start_time * tb) if stream.start_time is not None and stream.time_base else None
        rebase = self._last_t is not None or (self.base is None and self.start_at > 0)  # a new connection or part
        first = True
        for frame in _decoded(container, stream):
            arrived = time.monotonic()
            raw = frame.time
            if raw is None:  # no timestamps: the wall clock
                if self._wall0 is None:
                    self._wall0 = arrived - self.start_at
                t = arrived - self._wall0
            else:
                if self.base is None:
                    self.base = start if start is not None else raw
                t = raw - self.base + self._offset
                if first and rebase and self._last_t is not None:
                    away = max(arrived - self._last_arrived, self.frame_interval)
                    if t < self._last_t or t > self._last_t + away + 30.0:  # restarted or jumped: continue after
                        self._offset += self._last_t + away - t
                        t = self._last_t + away
                elif first and rebase:  # a new part of a resumed network session starts where the last ended
                    self._offset += self.start_at - t
                    t = self.start_at
            if first:
                first = False
                if not self.meta:
                    from videorecap.video.io import _rotation

                    self.meta = {
                        "codec": stream.codec_context.name if stream.codec_context else None,
                        "width": frame.width,
                        "height": frame.height,
                        "fps": 1.0 / self.frame_interval if self.frame_interval else None,
                        "rotation": _rotation(frame),
                        "start_time": self.base if self.base is not None else 0.0,
                    }
            if self._last_t is not None and t + self.eps < self._last_t:
                continue  # out of order: dropped, as the file reader does
            self._last_t, self._last_arrived = t, arrived
            yield LiveFrame(t, frame, arrived)

    @property
    def last_time(self) -> float | None:
        """The timeline time of the last frame given out."""
        return self._last_t


def _decoded(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> Iterator[av.VideoFrame]:
    """The stream's frames; when the input breaks (a network stream cut off), the frames still inside the decoder
    come out before the error is raised, so nothing that arrived is lost."""
    try:
        for packet in container.demux(stream):
            yield from packet.decode()  # the last, empty packet flushes the decoder at a normal end
    except (av.error.FFmpegError, OSError):
        try:
            for frame in stream.codec_context.decode(None):
                frame.time_base = stream.time_base  # frames drained by hand carry no time base
                yield frame
        except av.error.FFmpegError:
            pass
        raise


def stream_end(last_t: float | None, frame_interval: float) -> float:
    """Where a stream whose last frame is at `last_t` ends: one frame later (0 when no frame came)."""
    if last_t is None:
        return 0.0
    return last_t + (frame_interval if frame_interval > 0 and math.isfinite(frame_interval) else 0.0)


def is_regular_file(text: str) -> bool:
    return text != "-" and os.path.isfile(text)
