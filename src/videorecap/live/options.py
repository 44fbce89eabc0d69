"""`LiveOptions`: how to run a live session (the hierarchy's options, plus the stream's: lag, idle, reconnect).

Torch-free, like `infer.options`, so that `videorecap live --help` shows these defaults without loading torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from videorecap.errors import InputError
from videorecap.infer.options import HierarchyOptions

LAG_POLICIES = ("auto", "queue", "drop")


@dataclass
class LiveOptions(HierarchyOptions):
    """How to run a live session. `batch_size` is the most clip windows per model call (whatever is queued, up to
    it)."""

    lag: str = "auto"  # auto: drop for network sources and devices, queue for files and stdin
    max_lag: float = 10.0  # drop: skip windows that waited longer than this
    max_queue: int = 64  # queue: windows waiting at most before reading pauses
    idle: float = 10.0  # a file that stops growing / a silent network read for this long ends (or reconnects)
    reconnect: float = 0.0  # network: keep reconnecting this long after a loss
    duration: float | None = None  # stop after this many seconds of stream time
    rolling_summary: bool = True  # a summary event after each segment
    format: str | None = None  # force an FFmpeg input format
    narrator: str = "c"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.lag not in LAG_POLICIES:
            raise InputError(f"--lag must be one of {', '.join(LAG_POLICIES)}, not {self.lag!r}")
        for name in ("idle", "max_lag"):
            v = getattr(self, name)
            if not (v > 0 and math.isfinite(v)):
                raise InputError(f"--{name.replace('_', '-')} must be a positive number of seconds, got {v}")
        if not (self.reconnect >= 0 and math.isfinite(self.reconnect)):
            raise InputError(f"--reconnect must be 0 or more seconds, got {self.reconnect}")
        if self.duration is not None and not (self.duration > 0 and math.isfinite(self.duration)):
            raise InputError(f"--duration must be a positive number of seconds, got {self.duration}")
