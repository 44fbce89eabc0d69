"""Exceptions that mean "the user gave us something wrong", as opposed to a bug.

The CLI turns a `VideoRecapError` into one line on stderr and a non-zero exit code, with no traceback. Library
code raises the most specific subclass and names the file and what is wrong in the message.
"""

from __future__ import annotations

import errno


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
    where = " -> ".join(str(f) for f in (e.filename, e.filename2) if f is not None) or fallback
    reason = e.strerror or " ".join(str(e).split()) or type(e).__name__
    return f"{where}: {reason} ({_OS_HINTS.get(e.errno or 0, 'check the path and the disk')})"


class FolderBusyError(VideoRecapError):
    """An output folder is locked by another running job (`videorecap.lock`); the message names its PID."""
