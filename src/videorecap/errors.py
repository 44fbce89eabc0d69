"""Exceptions that mean "the user gave us something wrong", as opposed to a bug.

The CLI turns a `VideoRecapError` into one line on stderr and a non-zero exit code, with no traceback. Library
code raises the most specific subclass and names the file and what is wrong in the message.
"""

from __future__ import annotations


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


class FolderBusyError(VideoRecapError):
    """An output folder is locked by another running job (`videorecap.lock`); the message names its PID."""
