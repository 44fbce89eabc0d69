"""Process-wide run settings: CPU threads and the compute device.

Captioning runs three kinds of work at once: FFmpeg decoding (its own thread pool), the prefetch thread that turns
frames into tensors, and PyTorch's intra-op pool. PyTorch's default sizes its pool to every core, so while the
decode threads are busy the torch threads spin-wait for cores they cannot get; under any other CPU load this made
captioning several times slower than `OMP_NUM_THREADS=1` (benchmarks/bench_threads.py measures it). The default
here leaves one core to decoding and keeps FFmpeg's own pool small.

`set_threads(n)` applies a setting once for the process (the CLI's `--threads`); `check_device(name)` validates a
device string and says plainly when the hardware is not there; `autocast_dtype(device, precision)` is the one rule
for mixed precision (feature extraction and training both use it).
"""

from __future__ import annotations

import logging
import os
import re
from typing import TYPE_CHECKING

from videorecap.errors import InputError

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

# Environment variable the video reader reads for FFmpeg's decoder thread count (children inherit it). Set by the
# user before the start it wins over `set_threads` (0 lets FFmpeg choose, as it does by itself).
DECODE_THREADS_ENV = "VIDEORECAP_DECODE_THREADS"
_USER_DECODE_THREADS = os.environ.get(DECODE_THREADS_ENV)
# FFmpeg decoder threads by default: frame threading beyond 2 only adds latency at our frame sizes, and every extra
# thread competes with the model for the same cores.
DEFAULT_DECODE_THREADS = 2

_DEVICE_RE = re.compile(r"^(cpu|mps|cuda)(:(\d+))?$")


def cpu_count() -> int:
    """Cores this process may use: the affinity mask, capped by a cgroup v2 CPU quota (containers)."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()[:2]
        if quota != "max":
            n = min(n, max(1, int(int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, n)


def default_threads(cores: int | None = None) -> int:
    """PyTorch threads by default: one core left to the decode thread, at least 1."""
    cores = cpu_count() if cores is None else cores
    return max(1, cores - 1)


def decode_threads() -> int:
    """FFmpeg decoder threads: `$VIDEORECAP_DECODE_THREADS` (set by `set_threads`), else a small default.
    0 means FFmpeg's own choice (one per core)."""
    value = os.environ.get(DECODE_THREADS_ENV, "")
    try:
        n = int(value)
    except ValueError:
        return DEFAULT_DECODE_THREADS
    return max(0, n)


def set_threads(n: int | None = None) -> tuple[int, int]:
    """Set PyTorch's intra-op (and, when still possible, inter-op) threads and FFmpeg's decoder threads.

    Args:
        n: PyTorch threads. None picks the default: `$OMP_NUM_THREADS` when the user set it, else
            `default_threads()` (cores - 1). FFmpeg decoder threads are `min(n, 2)`, or
            `$VIDEORECAP_DECODE_THREADS` when the user set it before the process started.

    Returns:
        (torch threads, decoder threads).
    """
    import torch

    if n is None:
        env = os.environ.get("OMP_NUM_THREADS", "")
        n = int(env) if env.isdigit() and int(env) > 0 else default_threads()
    if n < 1:
        raise InputError(f"--threads must be at least 1, got {n}")
    torch.set_num_threads(n)
    try:
        # only possible before the first parallel work of the process; later calls are refused by PyTorch
        torch.set_num_interop_threads(max(1, min(n, 2)))
    except RuntimeError:
        logger.debug("inter-op threads already fixed at %d", torch.get_num_interop_threads())
    dec = min(n, DEFAULT_DECODE_THREADS)
    if _USER_DECODE_THREADS is not None and _USER_DECODE_THREADS.isdigit():
        dec = int(_USER_DECODE_THREADS)
    os.environ[DECODE_THREADS_ENV] = str(dec)
    # child processes (data loader workers, torchrun ranks started from here) start with the same limits
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)
    logger.debug("threads: torch %d, FFmpeg decoder %d", n, dec)
    return n, dec


def parse_device(name: str) -> str:
    """Check the form of a device string: cpu, cuda, cuda:N or mps. Returns it normalised (lower case)."""
    value = name.strip().lower()
    if not _DEVICE_RE.match(value) or (value.startswith(("cpu:", "mps:"))):
        raise InputError(f"--device {name}: not a device; use cpu, cuda, cuda:N or mps")
    return value


def check_device(name: str) -> str:
    """`parse_device`, then check that the hardware is there: a clear error instead of a failure deep inside."""
    import torch

    value = parse_device(name)
    m = _DEVICE_RE.match(value)
    assert m is not None
    kind, index = m.group(1), m.group(3)
    if kind == "cuda":
        if not torch.cuda.is_available():
            why = "PyTorch was built without CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise InputError(f"--device {name}: CUDA is not available ({why}); use --device cpu")
        if index is not None and int(index) >= torch.cuda.device_count():
            raise InputError(f"--device {name}: there are only {torch.cuda.device_count()} CUDA device(s)")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InputError(f"--device {name}: Apple MPS is not available on this machine; use --device cpu")
    return value


def autocast_dtype(device: str | torch.device, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype for `precision` ("auto", "fp32", "fp16", "bf16") on `device`; None means fp32, no autocast.

    Only CUDA autocasts: a CPU always runs fp32 (CPU autocast is slower than fp32 for these models and would change
    results). "auto" picks bf16 where the GPU has it (no loss scaling needed), else fp16.
    """
    import torch

    dev = torch.device(device)
    if precision == "fp32" or dev.type != "cuda":
        return None
    if precision == "fp16":
        return torch.float16
    if precision == "bf16":
        return torch.bfloat16
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
