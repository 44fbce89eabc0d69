"""Exceptions that mean "the user gave us something wrong", as opposed to a bug.

The CLI turns a `VideoRecapError` into one line on stderr and a non-zero exit code, with no traceback. Library
code raises the most specific subclass and names the file and what is wrong in the message.
"""

from __future__ import annotations

import errno


def is_count(value: object, at_least: int = 1) -> bool:
    """Whether `value` is a whole number (an int, not a bool) of at least `at_least`: the test of every count a user
    gives (a batch size, a limit, a number of retries), so that 2.5, "8" and True are refused alike."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= at_least


class VideoRecapError(Exception):
    """Base class of every error caused by the user's input, files or environment."""

    exit_code = 2


class InputError(VideoRecapError):
    """A bad argument, option combination or input file."""


class VideoError(VideoRecapError):
    """A file that cannot be read as a video, or a video that cannot be used."""


class CheckpointError(VideoRecapError):
    """A model checkpoint that is missing, corrupt, foreign or does not match the model."""


class DataError(VideoRecapError):
    """A dataset or annotation file that is malformed or unsafe."""


class MissingDependencyError(VideoRecapError):
    """An optional dependency (Java, Chromium, an extra) is not installed; the message says how to get it."""


_OS_HINTS = {
    errno.ENOSPC: "free some space or write elsewhere, then run again",
    errno.EDQUOT: "free some space or write elsewhere, then run again",
    errno.EACCES: "check the permissions, or write elsewhere",
    errno.EPERM: "check the permissions, or write elsewhere",
    errno.EROFS: "write somewhere writable",
    errno.ENOENT: "check the path",
}


def describe_os_error(e: OSError, writing_under: object = None) -> str:
    """`PATH: reason (what to do)`, one line, for an OSError (a full disk, a permission, a path under /proc).

    An error of a write or a flush names no file (a full disk): `writing_under` (the output folder) names the
    place then."""
    fallback = f"writing under {writing_under}" if writing_under is not None else "a file"
    hint = _OS_HINTS.get(e.errno or 0, "check the path and the disk")
    if type(e).__module__.startswith("av."):  # PyAV's errors are OSErrors too, but come from reading a video
        fallback, hint = "reading a video", "the file may be damaged or of a kind FFmpeg cannot read"
    where = " -> ".join(str(f) for f in (e.filename, e.filename2) if f is not None) or fallback
    reason = e.strerror or " ".join(str(e).split()) or type(e).__name__
    return f"{where}: {reason} ({hint})"


class FolderBusyError(VideoRecapError):
    """An output folder is locked by another running job (`videorecap.lock`); the message names its PID."""
