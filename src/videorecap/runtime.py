"""Process-wide run settings: CPU threads and the compute device.

Captioning runs three kinds of work at once: FFmpeg decoding (its own thread pool), the prefetch thread that turns
frames into tensors, and PyTorch's intra-op pool. PyTorch's default sizes its pool to every core, so while the
decode threads are busy the torch threads spin-wait for cores they cannot get; under any other CPU load this made
captioning several times slower than `OMP_NUM_THREADS=1` (benchmarks/bench_threads.py measures it). The default
here leaves one core to decoding and keeps FFmpeg's own pool small.

`set_threads(n)` applies a setting once for the process (the CLI's `--threads`); `check_device(name)` validates a
device string and says plainly when the hardware is not there; `autocast_dtype(device, precision)` is the one rule
for mixed precision (feature extraction and training both use it).

Precision of inference (`--precision auto|fp32|fp32-onednn|bf16|int8`): `resolve_precision` turns the user's choice
into what runs on a device, `cpu_isa` / `fast_bf16_cpu` say what the CPU has, `compute_context` is the autocast a
forward runs under and `quantize_int8` the int8 path. The rule of `auto` (measured: benchmarks/bench_precision.py and
RESULTS.md "Precision"):

- bf16 on a GPU (fp16 where it has no bf16) and on a CPU with AMX or AVX512_BF16 (bf16 dot-product instructions;
  on the 2-core AVX512_BF16 machine without AMX this project is developed on, bf16 measured 2-3x faster than fp32
  for the encoder and the Q-Former and 1.4-1.6x for decoding) -- but only if the bf16 path passed its fidelity gate
  (`videorecap.synth.precision_gate`, recorded in videorecap/assets/precision_gate.json);
- otherwise, where the gate failed: with the bundled model the bf16 gate FAILS (clip CIDEr -3 points, 7% of clip
  captions changed on 16 held-out videos), so today `auto` is never bf16; a later model or code whose bf16 passes the
  gate switches `auto` to bf16 by its record alone. What `auto` takes then:
- fp32-onednn (fp32 arithmetic, oneDNN's matrix-multiply kernels instead of the BLAS PyTorch calls by default) on a
  CPU where, measured once per process (`onednn_speedup`, about 0.1 s), oneDNN's kernel is at least
  `ONEDNN_MIN_SPEEDUP` faster -- and only if that path passed its fidelity gate too. On the AMD EPYC this project is
  developed on, MKL's fp32 kernels run at about half of oneDNN's speed (RESULTS.md "fp32 through oneDNN's
  kernels"), so the encoder, the Q-Formers and decoding are faster with identical arithmetic apart from the order of
  the sums (results differ from fp32 in the last bits, about 1e-6 relative). Where the BLAS is as fast (Intel CPUs
  with MKL), and on GPUs: fp32.
- int8 is never picked by `auto`: it is opt-in.

`fp32` is the original's arithmetic: the same kernels and results as before `--precision` existed.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import queue
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from videorecap.errors import InputError

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
_R = TypeVar("_R")

# Environment variable the video reader reads for FFmpeg's decoder thread count (children inherit it). Set by the
# user before the start it wins over `set_threads` (0 lets FFmpeg choose, as it does by itself).
DECODE_THREADS_ENV = "VIDEORECAP_DECODE_THREADS"
_USER_DECODE_THREADS = os.environ.get(DECODE_THREADS_ENV)
# FFmpeg decoder threads by default: frame threading beyond 2 only adds latency at our frame sizes, and every extra
# thread competes with the model for the same cores.
DEFAULT_DECODE_THREADS = 2

_DEVICE_RE = re.compile(r"^(cpu|mps|cuda)(:(\d+))?$")

# Largest random seed any option or setting takes (from 0): torch takes up to 2**64-1 and numpy any non-negative
# integer, but 32 bits are what most tools mean by a seed, and such a seed stays exact in every JSON reader of the
# results (JavaScript's numbers lose integers above 2**53).
SEED_MAX = 2**32 - 1


def is_seed(value: object) -> bool:
    """Whether `value` is a seed every consumer takes: an int (not a bool) from 0 to `SEED_MAX`."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= SEED_MAX


# What `--precision` accepts; "fp16" is accepted where it was before (features, training on a GPU), not advertised.
PRECISIONS = ("auto", "fp32", "fp32-onednn", "bf16", "int8")
# `auto` takes oneDNN's fp32 kernels only when they measure at least this much faster than the default ones: with a
# margin, so noise on a machine where both are about as fast never flips the choice between runs
ONEDNN_MIN_SPEEDUP = 1.3
# CPU flags (Linux /proc/cpuinfo names) that the machine descriptions report, in this order
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8")


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


def gpu_decode_threads(cores: int | None = None) -> int:
    """FFmpeg decoder threads beside a model on a GPU: every core but the one of the decode-and-transform thread (at
    least 2, at most 16: FFmpeg's own limit for frame threads)."""
    cores = cpu_count() if cores is None else cores
    return max(DEFAULT_DECODE_THREADS, min(16, cores - 1))


def set_decode_threads_for(device: str | torch.device) -> int:
    """FFmpeg decoder threads for a run whose models are on `device`, set for this process and its children.

    On a CPU `set_threads`' choice stays (at most 2 beside the model's threads). On a GPU (or MPS) the CPU has no
    model work, and two decoder threads would hold a fast GPU back (1080p H.264 decodes only about 37x faster than
    real time with 2 threads on our 2-core machine): `gpu_decode_threads()`. `$VIDEORECAP_DECODE_THREADS` set by the
    user wins.

    Returns:
        The decoder threads now set.
    """
    import torch

    if torch.device(device).type != "cpu" and not (_USER_DECODE_THREADS or "").isdigit():
        os.environ[DECODE_THREADS_ENV] = str(gpu_decode_threads())
        logger.debug("models on %s: %s FFmpeg decoder threads", device, os.environ[DECODE_THREADS_ENV])
    return decode_threads()


# How many batches the clip encoder computes at once on a CPU (`encoder_workers`); set by the user it wins (1: one
# batch at a time, as before this setting existed).
ENCODER_WORKERS_ENV = "VIDEORECAP_ENCODER_WORKERS"
# Each batch being encoded holds its activations (a few hundred MB at recap-base sizes, batch 8): beyond 4 at once
# the memory grows for little, and more cores are better spent as PyTorch threads of each batch.
MAX_ENCODER_WORKERS = 4


def encoder_workers(device: str | torch.device = "cpu", encoder: object = None, cores: int | None = None) -> int:
    """Batches the clip encoder computes at once, each in a thread of its own (`ParallelMap`): on a CPU, as many as
    the usable cores hold at PyTorch's current thread count each (`cores // threads`, at most `MAX_ENCODER_WORKERS`);
    1 on a GPU, and for an encoder that says it takes one call at a time (`thread_safe = False`, the compiled one).
    `$VIDEORECAP_ENCODER_WORKERS` set by the user wins on a CPU.

    Why: with the default of one PyTorch thread on 2 cores (one core left to decoding, so that no thread of ours
    spin-waits for a core another process holds), one batch at a time leaves a core idle while nothing else runs.
    Two batches at once, one thread each, fill both cores, and still no thread waits for another: under load they
    share the cores as any two processes do. Each batch is computed exactly as it would be alone (the same kernels,
    the same thread count), so the features and captions are identical to one batch at a time.
    """
    import torch

    if torch.device(device).type != "cpu" or getattr(encoder, "thread_safe", True) is False:
        return 1
    value = os.environ.get(ENCODER_WORKERS_ENV, "").strip()
    if value:
        if value.isdigit() and int(value) > 0:
            return int(value)
        _warn_once(ENCODER_WORKERS_ENV, f"${ENCODER_WORKERS_ENV}={value!r} is not a positive whole number: ignored")
    cores = cpu_count() if cores is None else cores
    return max(1, min(MAX_ENCODER_WORKERS, cores // max(1, torch.get_num_threads())))


class _Stopped(Exception):
    """Raised in a worker's forward pass once its ParallelMap is left early (the result is thrown away)."""


class ParallelMap(Generic[_T, _R]):
    """`fn(item)` for every item, in the items' order, computed by `workers` threads at once.

    The items are drawn in the caller's thread, at most `ahead` (default 2 x workers) before the result the caller
    waits for, so that memory stays bounded whatever the number of items. With `workers` <= 1 everything runs in
    the caller's thread, one item after the other (no thread is started). A failure of `fn` is raised where its
    result would have come. `fn` runs in another thread: PyTorch's grad mode and autocast are per thread, so `fn`
    sets what it needs itself.

        with ParallelMap(encode, batches, workers=2, interrupts=encoder) as results:
            for out in results:
                ...

    Leaving the block cancels the items not started and waits for the threads, so that none is left computing:
    PyTorch aborts a process that exits while one of its kernels runs in another thread. Left early (an error, or
    Ctrl-C), the forward passes of `interrupts` (a module) that workers are running stop at their next submodule,
    so that the wait is short even when one item takes many seconds.
    """

    def __init__(
        self,
        fn: Callable[[_T], _R],
        items: Iterable[_T],
        workers: int,
        *,
        ahead: int | None = None,
        interrupts: torch.nn.Module | None = None,
        name: str = "videorecap-worker",
    ) -> None:
        self.fn, self.items, self.workers, self.name = fn, items, max(1, workers), name
        self.ahead = max(self.workers, ahead if ahead is not None else 2 * self.workers)
        self.interrupts = interrupts
        self._tasks: queue.SimpleQueue[tuple[Future[_R], _T] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._pending: collections.deque[Future[_R]] = collections.deque()
        self._stopping = threading.Event()
        self._hooks: list[Any] = []

    def __enter__(self) -> ParallelMap[_T, _R]:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[_R]:
        if self.workers == 1:
            for item in self.items:
                yield self.fn(item)
            return
        if self.interrupts is not None:
            # a check before every submodule's forward, in the workers only: cheap next to the module's own work
            self._hooks = [m.register_forward_pre_hook(self._check_stop) for m in self.interrupts.modules()]
        for i in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"{self.name}-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)
        for item in self.items:
            future: Future[_R] = Future()
            self._tasks.put((future, item))
            self._pending.append(future)
            if len(self._pending) >= self.ahead:
                yield self._pending.popleft().result()
        while self._pending:
            yield self._pending.popleft().result()

    def _check_stop(self, module: object, args: object) -> None:
        if self._stopping.is_set() and threading.current_thread() in self._threads:
            raise _Stopped

    def _work(self) -> None:
        while (task := self._tasks.get()) is not None:
            future, item = task
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(self.fn(item))
            except BaseException as e:  # handed to the caller, raised where this item's result would have come
                future.set_exception(e)
            del future, item, task  # nothing of a finished item stays alive while the thread waits for the next

    def close(self) -> None:
        """Cancel the items not started, stop the running ones (`interrupts`) and wait for the threads to end."""
        self._stopping.set()  # left before the last result, what is still computed is not wanted; after it, no-op
        for future in self._pending:
            future.cancel()
        self._pending.clear()
        for _ in self._threads:
            self._tasks.put(None)
        for thread in self._threads:
            thread.join()
        self._threads = []
        for hook in self._hooks:
            hook.remove()
        self._hooks = []


def encoder_map(
    fn: Callable[[_T], _R], batches: Iterable[_T], device: str | torch.device, encoder: torch.nn.Module
) -> ParallelMap[_T, _R]:
    """`fn` over the clip encoder's batches, `encoder_workers(device, encoder)` of them at once, in order; leaving
    early stops `encoder`'s running forward passes. The one way `caption` and `features` run their encoder."""
    workers = encoder_workers(device, encoder)
    return ParallelMap(fn, batches, workers, interrupts=encoder, name="videorecap-encoder")


def parse_device(name: str, option: str = "--device") -> str:
    """Check the form of a device string: cpu, cuda, cuda:N or mps. Returns it normalised (lower case).

    `option` names where the value came from in the error (a recipe's `device` key, say)."""
    value = name.strip().lower()
    if not _DEVICE_RE.match(value) or (value.startswith(("cpu:", "mps:"))):
        raise InputError(f"{option} {name}: not a device; use cpu, cuda, cuda:N or mps")
    return value


def check_device(name: str, option: str = "--device") -> str:
    """`parse_device`, then check that the hardware is there: a clear error instead of a failure deep inside."""
    import torch

    value = parse_device(name, option)
    m = _DEVICE_RE.match(value)
    assert m is not None
    kind, index = m.group(1), m.group(3)
    if kind == "cuda":
        if not torch.cuda.is_available():
            why = "PyTorch was built without CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise InputError(f"{option} {name}: CUDA is not available ({why}); use --device cpu")
        if index is not None and int(index) >= torch.cuda.device_count():
            raise InputError(f"{option} {name}: there are only {torch.cuda.device_count()} CUDA device(s)")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InputError(f"{option} {name}: Apple MPS is not available on this machine; use --device cpu")
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


# ---- precision of inference ----------------------------------------------------------------------------------------
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux names them in /proc/cpuinfo (empty where there is no such file)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_model() -> str:
    """The CPU's model name as /proc/cpuinfo gives it, else what the platform module knows."""
    import platform

    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_isa(flags: frozenset[str] | None = None) -> list[str]:
    """The instruction-set extensions of `ISA_FLAGS` this CPU has (AVX2, AVX-512, bf16, VNNI, AMX), in that order."""
    flags = cpu_flags() if flags is None else flags
    return [f for f in ISA_FLAGS if f in flags]


def fast_bf16_cpu(flags: frozenset[str] | None = None, capability: str | None = None) -> str | None:
    """Which bf16 matrix instructions the CPU has: "amx" (AMX-BF16 tiles), "avx512_bf16" (bf16 dot products), or
    None (bf16 is emulated, slower than fp32).

    `flags` default to /proc/cpuinfo; `capability` to `torch.backends.cpu.get_cpu_capability()`: PyTorch's kernels
    must be built for AVX-512 too (its "AVX512" or "AMX" kernels), else the instructions are there but unused.
    """
    flags = cpu_flags() if flags is None else flags
    if capability is None:
        import torch

        capability = torch.backends.cpu.get_cpu_capability()
    if capability.upper() not in ("AVX512", "AMX", "AVX512_BF16", "AVX512_AMX"):
        return None
    if "amx_bf16" in flags:
        return "amx"
    if "avx512_bf16" in flags:
        return "avx512_bf16"
    return None


def resolve_precision(
    device: str | torch.device,
    precision: str = "auto",
    *,
    flags: frozenset[str] | None = None,
    capability: str | None = None,
    onednn: float | None = None,
) -> str:
    """What `precision` means on `device`: "fp32", "fp32-onednn", "bf16", "fp16" (CUDA without bf16) or "int8".

    `auto` follows the rule of the module doc: bf16 on a GPU and on a CPU with fast bf16, if the bf16 gate passed;
    else, on a CPU, fp32-onednn if oneDNN's kernels measure `ONEDNN_MIN_SPEEDUP` faster (`onednn`: that speed-up,
    measured here by default) and that path passed its gate; fp32 elsewhere. An explicit choice is honoured, except
    int8 or fp32-onednn on a GPU, and fp32-onednn where PyTorch was built without oneDNN.

    Raises:
        InputError: an unknown name, or a CPU-only path on a GPU or without its kernels.
    """
    import torch

    if precision not in (*PRECISIONS, "fp16"):
        raise InputError(f"--precision {precision}: unknown; use {', '.join(PRECISIONS)}")
    kind = torch.device(device).type
    if precision == "int8":
        if kind != "cpu":
            raise InputError(f"--precision int8 runs on a CPU only (PyTorch dynamic quantization); use bf16 on {kind}")
        return "int8"
    if precision == "fp32-onednn":
        if kind != "cpu":
            raise InputError(f"--precision fp32-onednn chooses CPU kernels; on {kind} use fp32 or bf16")
        if not onednn_available():
            raise InputError("--precision fp32-onednn: this PyTorch build has no oneDNN (mkldnn) kernels; use fp32")
        return precision
    if precision == "bf16" and kind == "cpu" and not fast_bf16_cpu(flags, capability):
        _warn_once(
            "slow-bf16",
            "--precision bf16: this CPU has no bf16 matrix instructions (AMX or AVX512_BF16) that PyTorch uses, so "
            "bf16 is emulated here and runs many times slower than fp32; --precision auto chooses what is fast here",
        )
    if precision in ("fp32", "bf16", "fp16"):
        return precision
    fast = torch.cuda.is_bf16_supported() if kind == "cuda" else kind == "cpu" and fast_bf16_cpu(flags, capability)
    if fast:
        if gate_passed("bf16"):
            return "bf16"
        logger.info("--precision auto: not bf16 (it would be faster here but failed its fidelity gate)")
    if kind == "cpu" and gate_passed("fp32-onednn") and onednn_available():
        speedup = onednn_speedup() if onednn is None else onednn
        if speedup >= ONEDNN_MIN_SPEEDUP:
            logger.info("--precision auto: fp32-onednn (oneDNN's fp32 kernels measured %.1fx faster here)", speedup)
            return "fp32-onednn"
        logger.info("--precision auto: fp32 (oneDNN's fp32 kernels measured %.2fx here, below %.1fx)", speedup,
                    ONEDNN_MIN_SPEEDUP)  # fmt: skip
    return "fp32"


_WARNED: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    """Log `message` as a warning the first time `key` is seen in this process (precision is resolved per model)."""
    if key not in _WARNED:
        _WARNED.add(key)
        logger.warning(message)


_ONEDNN_OP: Any = None


def onednn_available() -> bool:
    """Whether this PyTorch has oneDNN's fused linear kernel (CPU builds for x86 and ARM have it)."""
    import torch

    try:
        return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    except (AttributeError, RuntimeError):
        return False


def onednn_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """`F.linear(x, weight, bias)` through oneDNN's kernel (`--precision fp32-onednn`): the same fp32 products, summed
    in another order. Where gradients are needed (training) it is F.linear itself: the path is for inference."""
    import torch

    global _ONEDNN_OP
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad):
        return torch.nn.functional.linear(x, weight, bias)
    if _ONEDNN_OP is None:
        _ONEDNN_OP = torch.ops.mkldnn._linear_pointwise
    return _ONEDNN_OP(x, weight, bias, "none", [], "")


def _onednn_forward(self: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    return onednn_linear(x, self.weight, self.bias)


_SPEEDUP: float | None = None


def onednn_speedup() -> float:
    """How much faster oneDNN's fp32 linear kernel is than PyTorch's default on this CPU, measured once per process
    on one layer of the recap-base shapes (256 rows, 768 -> 3072), best of 5 each: about 0.1 s."""
    import time

    import torch

    global _SPEEDUP
    if _SPEEDUP is not None:
        return _SPEEDUP
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(256, 768, generator=gen)
    w, b = torch.randn(3072, 768, generator=gen) * 0.02, torch.zeros(3072)

    def best(fn: Any) -> float:
        fn()
        times = []
        for _ in range(5):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return min(times)

    with torch.inference_mode():
        base = best(lambda: torch.nn.functional.linear(x, w, b))
        fast = best(lambda: onednn_linear(x, w, b))
    _SPEEDUP = base / fast if fast > 0 else 1.0
    logger.debug("oneDNN fp32 linear: %.2fx the default kernel's speed", _SPEEDUP)
    return _SPEEDUP


# in videorecap/assets/: written by `python -m videorecap.synth.precision_gate --write`
GATE_FILE = "precision_gate.json"


def gate_results() -> dict[str, Any]:
    """The recorded fidelity gate of each non-fp32 path (videorecap/assets/precision_gate.json; {} if absent)."""
    from importlib import resources

    try:
        return json.loads(resources.files("videorecap.assets").joinpath(GATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def gate_passed(precision: str) -> bool:
    """Whether `precision`'s path passed its recorded fidelity gate; a path never gated counts as failed."""
    return bool(gate_results().get(precision, {}).get("passed", False))


def compute_context(device: str | torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The context a forward pass runs under for a resolved precision: bf16/fp16 autocast, or nothing (fp32, and
    int8, whose quantized layers are in the model itself)."""
    import torch

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)


def prepare_model(model: torch.nn.Module, precision: str) -> torch.nn.Module:
    """Put a model in the form its resolved precision runs fastest in, in place, and return it.

    bf16: the weights of the Linear layers (nearly all of the compute) are stored in bf16, so autocast does not
    convert them again at every call (that conversion alone made batch-1 decoding slower than fp32); norms,
    embeddings and biases of other layers stay fp32 and autocast casts around them. int8: `quantize_int8`.
    fp32-onednn: every Linear layer, and a decoder's tied output layer (`lm_linear`), calls `onednn_linear`. In all
    three, modules with a `fast_kernels` switch (the encoder's attention) take their fused kernels. fp32/fp16:
    unchanged.
    """
    import types

    import torch

    if precision in ("int8", "bf16", "fp32-onednn"):
        # The encoder's attention through PyTorch's fused kernel: the same arithmetic up to the order of the sums
        # (fp32 keeps the original's kernels bit for bit; these paths differ from it far more anyway). The int8
        # encoder is 1.11-1.17x faster with it on an AVX2-only CPU, where the generic path's softmax, mask checks and
        # copies took about a fifth of its time (RESULTS.md "The int8 encoder on the AVX2-only CPU").
        for m in model.modules():
            if hasattr(m, "fast_kernels"):
                m.fast_kernels = True
    if precision == "int8":
        # the Linear weights become int8 copies; everything else (biases included: the int8 layers keep them) is kept
        _own_memory(model, skip={id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Linear)})
        return quantize_int8(model)
    if precision == "fp32-onednn":
        for m in model.modules():
            if type(m) is torch.nn.Linear:
                m.forward = types.MethodType(_onednn_forward, m)  # type: ignore[method-assign]
            if hasattr(m, "lm_linear"):
                m.lm_linear = onednn_linear
        return model
    if precision == "bf16":
        for m in model.modules():
            if isinstance(m, torch.nn.Linear):
                m.to(torch.bfloat16)
            # a decoder's token embedding is its (tied) output layer too, the largest matrix of a decoding step
            lm = getattr(m, "wte", None)
            if isinstance(lm, torch.nn.Embedding) and hasattr(m, "new_cache"):
                lm.to(torch.bfloat16)
        _own_memory(model, skip={id(t) for t in model.parameters() if t.dtype == torch.bfloat16})
    return model


def _own_memory(model: torch.nn.Module, skip: set[int]) -> None:
    """Copy the tensors of `model` that a conversion keeps (all but those in `skip`) into memory of their own.

    A loaded checkpoint's tensors are views of its memory-mapped safetensors file, and while one of them remains,
    the map does, with every page read through it: the fp32 weights that bf16 or int8 replaced (read once to
    convert them) would stay in the process's memory, 1.6 GB per recap-base level. The kept tensors are small
    (norms, biases, position embeddings; the token embedding in int8)."""
    import itertools

    import torch

    with torch.no_grad():
        for t in itertools.chain(model.parameters(), model.buffers()):
            if id(t) not in skip:
                t.data = t.data.clone()


def quantize_int8(model: torch.nn.Module) -> torch.nn.Module:
    """Dynamic int8 quantization of every Linear layer (weights int8, activations quantized per batch), in place."""
    import gc
    import warnings

    import torch
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        # torch 2.13 announces that its quantized tensor types will go; they work, and the warning is not the user's
        warnings.filterwarnings("ignore", message=".*deprecated", category=UserWarning)
        warnings.filterwarnings("ignore", message=".*deprecated", category=DeprecationWarning)
        model = quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)
    # The fp32 Linear layers it replaced are left in reference cycles, which only the cycle
    # collector frees: collect now, so that quantizing the next model does not add its transient on top of them.
    gc.collect()
    return model
