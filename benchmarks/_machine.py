"""What every benchmark shares: the machine-description block and the timing rules.

Absolute times differ by machine; only ratios taken in the same run carry over. So every result starts with
`machine_block()` (CPU model, the ISA extensions that decide which kernels run: AVX2, AVX-512, AVX512_BF16, VNNI,
AMX; cores; the torch build and its kernel level; the load average), and every timed number comes from `timed()`:
`repeats` runs after `warmup` untimed ones, the median and the spread (min-max), and the 1-minute load average read
before each timed run. A run started while the load is at or above one per core measures the other jobs as much as
ours: `check_load` refuses it (exit 2) unless `--allow-load` is given, and then every row taken under load is
flagged with `*` in the tables. Before each timed run `timed` first waits (up to `SETTLE_S`) for the load to fall
below one per core: the 1-minute average still holds the benchmark's own previous run for a while after it ends
(by its formula, 15-20 s after a run on every core of an idle machine), which would flag every run of a
multi-threaded row.

`peak_rss_child` measures a configuration's peak memory in a fresh Python process (VmHWM of its own
/proc/self/status: `ru_maxrss` of RUSAGE_CHILDREN is the largest of every child and survives across fork/exec).

    from _machine import add_timing_arguments, check_load, machine_block, timed
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from videorecap.runtime import cpu_count, cpu_isa, cpu_model, fast_bf16_cpu


def load_average() -> float:
    """The 1-minute load average (0 where the OS has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0


def describe() -> dict[str, Any]:
    """The machine, as a dict (also written into JSON results)."""
    import torch

    info: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": f"{cpu_model()} ({platform.machine()})",
        "isa": cpu_isa(),
        "fast_bf16": fast_bf16_cpu() or "no",
        "cores": {"logical": os.cpu_count(), "usable": cpu_count()},
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "torch_kernels": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    limits = {k: os.environ[k] for k in ISA_LIMITS if os.environ.get(k)}
    if limits:
        info["isa_limits"] = limits
    return info


# Environment variables that make the libraries use fewer instructions than the CPU has: set together, e.g.
# ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 FBGEMM_ENABLE_INSTRUCTIONS=AVX2, they
# emulate an AVX2-only CPU's kernels (not its caches or memory), which a result must then say.
ISA_LIMITS = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "FBGEMM_ENABLE_INSTRUCTIONS")


def machine_block(extra: dict[str, str] | None = None) -> str:
    """The machine-description block that heads a result (a fenced block, for markdown)."""
    d = describe()
    lines = [
        f"date:           {d['date']}",
        f"cpu:            {d['cpu']}",
        f"isa:            {', '.join(d['isa']) or '(none of AVX2/AVX-512/AMX)'}",
        f"fast bf16:      {d['fast_bf16']} (amx: AMX tiles; avx512_bf16: bf16 dot products; no: emulated)",
        f"cores:          {d['cores']['logical']} logical, {d['cores']['usable']} usable by this process",
        f"torch:          {d['torch']} (kernels: {d['torch_kernels']}, threads {d['torch_threads']}"
        + (f", CUDA {d['torch_cuda']}" if d["torch_cuda"] else ", CPU build")
        + ")",
        f"python:         {d['python']}",
        "load average:   "
        + (" / ".join(f"{x:.2f}" for x in d["load_average"]) if d["load_average"] else "-")
        + " (1/5/15 min, at the start)",
    ]
    if "gpu" in d:
        lines.insert(2, f"gpu:            {d['gpu']}")
    if "isa_limits" in d:
        limits = " ".join(f"{k}={v}" for k, v in d["isa_limits"].items())
        lines.insert(3, f"isa limited:    {limits} (the kernels of a smaller CPU, emulated on this one)")
    for k, v in (extra or {}).items():
        lines.append(f"{k + ':':<16}{v}")
    return "```\n" + "\n".join(lines) + "\n```"


# ---- timing ----------------------------------------------------------------------------------------------------------
@dataclass
class Timing:
    """Wall seconds of repeated runs of one thing."""

    times: list[float]
    loads: list[float]  # 1-minute load average before each timed run
    cores: int = field(default_factory=cpu_count)
    out: Any = None  # the last run's return value

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def loaded(self) -> bool:
        """Some timed run started at a load of one per core or more."""
        return max(self.loads) >= self.cores

    def fmt(self, scale: float = 1.0, unit: str = "s", digits: int = 3) -> str:
        """`median (min-max)` in `unit` (times multiplied by `scale`), `*` when taken under load."""
        xs = [t * scale for t in self.times]
        med = statistics.median(xs)
        spread = f" ({min(xs):.{digits}f}-{max(xs):.{digits}f})" if len(xs) > 1 else ""
        return f"{med:.{digits}f}{spread} {unit}".strip() + ("*" if self.loaded else "")

    def to_dict(self) -> dict[str, Any]:
        return {"median": self.median, "times": self.times, "loads": self.loads, "loaded": self.loaded}


SETTLE_S = 120.0  # the longest wait for the load average to fall before a timed run


def settle(max_wait: float = SETTLE_S, step: float = 5.0) -> float:
    """Wait until the 1-minute load average is below one per core, at most `max_wait` seconds; return it then.

    The kernel recomputes the average every 5 s and it decays by a factor e^(-t/60): after a run that kept both
    cores of a 2-core machine busy (about 2.5) an idle machine is below 2 within about 15-20 s. Other jobs keep it up,
    and the run then starts flagged, as before."""
    cores = cpu_count()
    deadline = time.monotonic() + max_wait
    load = load_average()
    while load >= cores and time.monotonic() < deadline:
        time.sleep(step)
        load = load_average()
    return load


def timed(fn: Callable[[], Any], repeats: int = 3, warmup: int = 1) -> Timing:
    """`warmup` untimed calls, then `repeats` timed ones; before each, the load average is let settle (`settle`)
    and read."""
    out = None
    for _ in range(warmup):
        out = fn()
    times, loads = [], []
    for _ in range(max(1, repeats)):
        loads.append(settle())
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return Timing(times, loads, out=out)


def ratio(slow: Timing, fast: Timing) -> str:
    """`slow / fast` of the medians, and the worst case over the spreads (slowest fast vs fastest slow)."""
    r = slow.median / fast.median
    low = min(slow.times) / max(fast.times)
    flag = "*" if slow.loaded or fast.loaded else ""
    return f"{r:.2f}x (>= {low:.2f}x){flag}" if len(slow.times) > 1 else f"{r:.2f}x{flag}"


def add_timing_arguments(p: argparse.ArgumentParser, repeats: int = 3) -> None:
    p.add_argument("--repeats", type=int, default=repeats, help=f"timed runs of each row; median and spread "
                   f"(default {repeats})")  # fmt: skip
    p.add_argument("--allow-load", action="store_true", help="run even when the load average is at or above one "
                   "per core (rows taken under load are marked with *)")  # fmt: skip


def check_load(allow_load: bool, name: str = "benchmark") -> None:
    """Refuse (exit 2) to start at a load of one per core or more, unless allowed; then warn."""
    load, cores = load_average(), cpu_count()
    if load < cores:
        return
    if not allow_load:
        print(
            f"{name}: load average {load:.2f} on {cores} cores (>= 1 per core): the timings would measure the "
            "other jobs; wait for a quiet machine or pass --allow-load (rows then marked *)",
            file=sys.stderr,
        )
        sys.exit(2)
    print(f"{name}: warning: load average {load:.2f} on {cores} cores; rows taken under load are marked *",
          file=sys.stderr)  # fmt: skip


LOADED_NOTE = "`*`: a timed run of that row started at a load average of one per core or more (noisy)."


# ---- memory ---------------------------------------------------------------------------------------------------------
def vm_hwm_mib() -> float:
    """This process's peak resident memory (VmHWM of /proc/self/status), in MiB; 0 where there is no /proc."""
    try:
        with open("/proc/self/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


def run_child(script: Path | str, args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run `python script args...` in a fresh process and return the JSON object its last stdout line holds.

    The child measures its own peak memory with `vm_hwm_mib()`, so each configuration's figure is its own."""
    r = subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True, text=True, env={**os.environ, **(env or {})},
    )  # fmt: skip
    if r.returncode != 0:
        raise RuntimeError(f"{script} {' '.join(args)} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])
