"""The video encoder compiled ahead of time, once per machine, and kept on disk (`--compile`).

`torch.compile` compiles in every process: 20-36 s per run for the recap-base encoder on a CPU, and its on-disk cache
cannot hold a graph whose weights are frozen (benchmarks/RESULTS.md, "torch.compile: prepacked weights or a cached
graph"). So `--compile` uses AOTInductor instead: the encoder is exported (`torch.export`, the batch size left free)
and compiled into a package, a shared library of a few MB, which is written to the cache and loaded by later runs in
a few seconds (mostly importing Inductor). The package holds **no weights**: the model's own tensors are handed to it
at load time (`load_constants(..., user_managed=True)`), so the weights are not in memory twice, and one package
serves every checkpoint of the same architecture (LaViLa's, a fine-tuned one, the bundled model's).

A package is found by a key of everything its code depends on: the module's classes (the source of their files),
its tensors' names, dtypes and shapes, the input's shape without the batch, the precision, the device (CPU model,
ISA flags and PyTorch's kernel level; GPU name and compute capability), the versions of PyTorch and of this
format. Anything else is a new key, hence a new compile, never a wrong package.

The cache is `$VIDEORECAP_CACHE_DIR/compiled/`, by default `$XDG_CACHE_HOME/videorecap` (`~/.cache/videorecap`).
Entries are written atomically, one process compiles a key while the others that need it wait for its package (a
file lock beside it), and an entry that does not load is compiled again. Only compiling needs a C++ compiler: a
machine without one loads the packages a cache shared with (or copied from) a machine of the same kind holds. Every
new key (a new PyTorch, a new version of this package's model code) is a new entry of a few MB, so each compile also
removes the entries no run has loaded for `STALE_DAYS` days (a load renews an entry's date), and what a killed compile
left behind.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import platform
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from videorecap.errors import InputError

if TYPE_CHECKING:
    from torch._inductor.package.package import AOTICompiledModel

logger = logging.getLogger(__name__)

CACHE_ENV = "VIDEORECAP_CACHE_DIR"
FORMAT = 1  # bump when the way packages are built changes
# the CPU's own settings that change the kernels Inductor and the libraries pick (see RESULTS.md, "AVX2-only")
_ISA_ENV = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "FBGEMM_ENABLE_INSTRUCTIONS")
STALE_DAYS = 30  # an entry not loaded for this long is removed at the next compile into the same folder
# the package takes the model's tensors at load time instead of holding copies of them
_INDUCTOR_CONFIGS = {"aot_inductor.package_constants_in_so": False}


def cache_dir() -> Path:
    """The folder of videorecap's on-disk caches: `$VIDEORECAP_CACHE_DIR`, else `$XDG_CACHE_HOME/videorecap`, else
    `~/.cache/videorecap`."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "videorecap"


def check_compile(precision: str, device: torch.device) -> None:
    """What `--compile` needs, said before any work (InputError): a precision that exports (not int8, whose quantized
    layers do not), and for a CPU model a C++ compiler, unless the cache holds packages built for this machine and
    PyTorch (one of them may be the model's: `compile_for_inference` tells once the model is known)."""
    if precision == "int8":
        raise InputError("--compile does not apply to --precision int8 (its quantized layers do not compile); leave "
                         "one of them out")  # fmt: skip
    if device.type == "cpu" and cpp_compiler() is None and not _named_compiler():
        if _packages_for(device, cache_dir() / "compiled"):
            return
    check_compiler(device)


CXX_ENV = "CXX"
CXX_NAMES = ("g++", "c++", "clang++")  # looked for on PATH in this order when $CXX is not set


def _named_compiler() -> str:
    """`$CXX`, stripped ("" when unset)."""
    return os.environ.get(CXX_ENV, "").strip()


def cpp_compiler() -> str | None:
    """The C++ compiler `--compile` hands to Inductor: `$CXX` when set (a name on PATH or a path), else the first of
    g++, c++ and clang++ on PATH; None when there is none.

    Inductor itself would run only `$CXX` or `g++`, so a machine with only clang++ (or only `c++`) could not compile
    although it has a compiler: `_compile` passes this one to it."""
    named = _named_compiler()
    if named:
        return shutil.which(named)
    return next((found for c in CXX_NAMES if (found := shutil.which(c))), None)


def _packages_for(device: torch.device, folder: Path) -> list[Path]:
    """The packages in the cache `folder` built for this machine (`device`), PyTorch, Python and format, whatever
    their model and precision: what a run without a compiler might load (from the `.json` beside each)."""
    here = {"format": FORMAT, "torch": torch.__version__, "python": platform.python_version()}
    here["device"] = _device_identity(device)
    found = []
    for record in sorted(folder.glob("encoder-*.json")):
        try:
            key = json.loads(record.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(key, dict) and all(key.get(k) == v for k, v in here.items()):
            package = record.with_suffix(".pt2")
            if package.is_file():
                found.append(package)
    return found


def check_compiler(device: torch.device) -> str | None:
    """On a CPU Inductor generates C++ and builds it with the machine's compiler: say so before any work. Returns the
    compiler (`cpp_compiler`; None for a GPU, which needs none here).

    Raises:
        InputError: `$CXX` names no program, or no C++ compiler on PATH.
    """
    if device.type != "cpu":
        return None
    found = cpp_compiler()
    named = _named_compiler()
    if found is None and named:
        raise InputError(f"--compile: ${CXX_ENV} is {named!r}, which is not a program on PATH; set it to a C++ "
                         "compiler (g++ or clang++) or unset it")  # fmt: skip
    if found is None:
        raise InputError("--compile: compiling the encoder needs a C++ compiler on a CPU (g++ or clang++); install "
                         "one or leave --compile out")  # fmt: skip
    return found


class _Forward(nn.Module):
    """What is exported: `module(x)` under the precision's autocast (bf16 runs its matmuls in bf16 that way; export
    records the autocast region, which a `with` around the export call would not put into the graph)."""

    def __init__(self, module: nn.Module, device: torch.device, precision: str) -> None:
        super().__init__()
        self.m = module
        self.device, self.precision = device, precision

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from videorecap.runtime import compute_context

        with compute_context(self.device, self.precision):
            return self.m(x)


class CompiledEncoder(nn.Module):
    """A video encoder whose forward runs AOTInductor packages (one per input shape, the batch size free), loaded
    from the cache or compiled into it at the first call with that shape (about a minute for recap-base on a CPU).

    `config`, `state_dict` and the parameters are the wrapped encoder's, so fingerprints (`store.weights_hash`) do
    not change. The package reads the encoder's tensors where they are: changing them in place changes the results;
    moving them (`.to(...)`) is noticed at the next call, which hands the package the new tensors.

    One call at a time (`thread_safe`): the first call of a shape compiles or loads its package, and a package's
    runner is not shared between threads, so `runtime.encoder_workers` gives it one worker.
    """

    thread_safe = False

    def __init__(self, encoder: nn.Module, precision: str, cache: str | os.PathLike[str] | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.precision = precision
        self.cache = Path(cache) if cache is not None else cache_dir() / "compiled"
        self._runners: dict[tuple[Any, ...], AOTICompiledModel | None] = {}  # None: that shape did not compile
        self._given: dict[tuple[Any, ...], tuple[int, ...]] = {}  # the tensors' addresses each runner was given
        self.compiles = 0  # packages compiled by this object (the others were loaded from the cache)

    @property
    def config(self) -> Any:
        return self.encoder.config

    def state_dict(self, *args: Any, **kwargs: Any) -> Any:
        return self.encoder.state_dict(*args, **kwargs)

    def example(self) -> torch.Tensor:
        """One clip as the pipeline feeds the encoder: `(1, 3, T, S, S)` float32 pixels on its device."""
        c = self.config
        device = next(self.encoder.parameters()).device
        return torch.zeros((1, 3, c.num_frames, c.image_size, c.image_size), device=device)

    def cached(self, x: torch.Tensor) -> bool:
        """Whether the cache holds a package for inputs like `x` (else the first call compiles one)."""
        return self._path(self.key(x)).is_file()

    def prepare(self, x: torch.Tensor) -> None:
        """Load (or compile) the package for inputs like `x` now rather than at the first call."""
        shape = (tuple(x.shape[1:]), str(x.dtype), str(x.device))
        if shape not in self._runners:
            self._runners[shape] = self._runner(x)

    def forward(self, x: torch.Tensor, cls_only: bool = False) -> torch.Tensor:
        shape = (tuple(x.shape[1:]), str(x.dtype), str(x.device))
        if shape not in self._runners:
            self._runners[shape] = self._runner(x)
        runner = self._runners[shape]
        if runner is None:  # compiling failed (logged once): the encoder as it is
            out = self.encoder(x)
        else:
            tensors = self._tensors()
            addresses = tuple(t.data_ptr() for t in tensors.values())
            if addresses != self._given[shape]:  # the weights moved since the package was given them
                self._give(runner, tensors, shape)
            out = runner(x.contiguous())
        return out[:, 0] if cls_only else out  # (B, D) or (B, 1+T*P, D), as VideoEncoder.forward

    # -- packages ---------------------------------------------------------------------------------------------------
    def _tensors(self) -> dict[str, torch.Tensor]:
        """The exported module's constants by the names the package asks for (`m.` + the encoder's names)."""
        out = {f"m.{k}": v for k, v in self.encoder.named_parameters()}
        out.update({f"m.{k}": v for k, v in self.encoder.named_buffers()})
        return {k: v.detach() for k, v in out.items()}

    def key(self, x: torch.Tensor) -> dict[str, Any]:
        """Everything the compiled code for input `x` depends on (see the module's docstring)."""
        device = x.device
        return {
            "format": FORMAT,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "device": _device_identity(device),
            "precision": self.precision,
            "input": [list(x.shape[1:]), str(x.dtype)],
            "module": type(self.encoder).__qualname__,
            "source": _source_hash(self.encoder),
            "tensors": hashlib.sha256(
                json.dumps([[k, str(v.dtype), list(v.shape)] for k, v in self._tensors().items()]).encode()
            ).hexdigest(),
            "inductor": _INDUCTOR_CONFIGS,
        }

    def _path(self, key: dict[str, Any]) -> Path:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
        return self.cache / f"encoder-{digest}.pt2"

    def _runner(self, x: torch.Tensor) -> AOTICompiledModel | None:
        key = self.key(x)
        path = self._path(key)
        try:
            runner = self._cached(path) if path.is_file() else None
            if runner is None:
                runner = self._compiled(x, key, path)
            self._give(runner, self._tensors(), (tuple(x.shape[1:]), str(x.dtype), str(x.device)))
        except (KeyboardInterrupt, InputError):
            raise
        except OSError as e:  # the cache cannot be written (a read-only home, a full disk)
            logger.warning(
                "--compile: cannot use the compile cache %s (%s); set $%s to a writable folder. The encoder runs "
                "uncompiled",
                self.cache,
                e.strerror or e,
                CACHE_ENV,
            )
            return None
        except Exception as e:
            why = str(e).strip().splitlines()[0] if str(e).strip() else ""
            logger.warning(
                "--compile: compiling the video encoder failed (%s: %s); it runs uncompiled", type(e).__name__, why
            )
            return None
        return runner

    def _compiled(self, x: torch.Tensor, key: dict[str, Any], path: Path) -> AOTICompiledModel:
        """Compile the package for `x` into `path`, unless another process does: one process compiles, the others
        (torchrun's ranks, jobs started together) wait on the lock file beside it and load its package."""
        from videorecap.lock import file_lock

        with file_lock(path.parent / f".{path.stem}.lock"):
            runner = self._cached(path) if path.is_file() else None
            if runner is None:
                self._compile(x, key, path)
                prune(path.parent)  # a new entry: the ones no run loads any more go
                runner = _load(path)
        return runner

    @staticmethod
    def _cached(path: Path) -> AOTICompiledModel | None:
        """The package at `path`, or None when it does not load (a damaged entry: compiled again)."""
        try:
            runner = _load(path)
        except Exception as e:
            logger.warning("--compile: %s does not load (%s: %s); compiling again", path, type(e).__name__, e)
            return None
        logger.info("--compile: the video encoder's compiled code, from %s", path)
        try:
            os.utime(path)  # in use: `prune` keeps it
        except OSError:
            pass  # a read-only cache is still a cache
        return runner

    def _give(self, runner: AOTICompiledModel, tensors: dict[str, torch.Tensor], shape: tuple[Any, ...]) -> None:
        wanted = runner.get_constant_fqns()
        missing = [n for n in wanted if n not in tensors]
        if missing:
            raise RuntimeError(f"the compiled encoder wants tensors the encoder does not have: {missing[:3]}")
        strided = [n for n in wanted if not tensors[n].is_contiguous()]
        if strided:  # the package reads each tensor as a dense block
            raise RuntimeError(f"the encoder's tensors are not contiguous: {strided[:3]}")
        runner.load_constants({n: tensors[n] for n in wanted}, check_full_update=True, user_managed=True)
        self._given[shape] = tuple(t.data_ptr() for t in tensors.values())

    def _compile(self, x: torch.Tensor, key: dict[str, Any], path: Path) -> None:
        import torch._inductor.config

        cxx = check_compiler(x.device)
        logger.info(
            "--compile: compiling the video encoder for this machine (%s, once; about a minute at recap-base), into %s",
            self.precision,
            path.parent,
        )
        t0 = time.perf_counter()
        example = torch.zeros((2, *x.shape[1:]), dtype=x.dtype, device=x.device)  # 2: a size-1 batch would be fixed
        batch = torch.export.Dim("batch", min=1)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        # the compiler found here, not Inductor's own choice ($CXX or g++ only); a GPU build keeps Inductor's
        configs = {"cpp.cxx": (None, cxx)} if cxx else {}
        try:
            with torch.no_grad(), warnings.catch_warnings(), torch._inductor.config.patch(configs):
                # PyTorch's notes about its own internals (pytree, jit) are not the user's to act on
                warnings.simplefilter("ignore", FutureWarning)
                warnings.simplefilter("ignore", DeprecationWarning)
                program = torch.export.export(
                    _Forward(self.encoder, x.device, self.precision), (example,), dynamic_shapes=({0: batch},)
                )
                built = torch._inductor.aoti_compile_and_package(
                    program, package_path=str(tmp / path.name), inductor_configs=dict(_INDUCTOR_CONFIGS)
                )
            (tmp / (path.stem + ".json")).write_text(json.dumps(key, indent=1, sort_keys=True) + "\n")
            os.replace(tmp / (path.stem + ".json"), path.with_suffix(".json"))  # what the entry was built for
            os.replace(built, path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self.compiles += 1
        logger.info("--compile: compiled in %.0f s (%.1f MB)", time.perf_counter() - t0, path.stat().st_size / 1e6)


def prune(folder: Path, days: float = STALE_DAYS) -> list[Path]:
    """Remove from the cache `folder` the packages not loaded (nor written) for `days` days, with the `.json` and lock
    file beside each, and the temp folders of compiles that were killed over a day ago. Returns the packages removed.

    A package another process is about to load is at worst compiled again by it (`_cached`)."""
    now = time.time()
    removed: list[Path] = []
    for package in folder.glob("encoder-*.pt2"):
        try:
            if now - package.stat().st_mtime < days * 86400:
                continue
            package.unlink()
        except OSError:
            continue
        removed.append(package)
        for other in (package.with_suffix(".json"), package.parent / f".{package.stem}.lock"):
            try:
                other.unlink(missing_ok=True)
            except OSError:
                pass
    for tmp in folder.glob(".encoder-*.tmp"):
        try:
            if tmp.is_dir() and now - tmp.stat().st_mtime > 86400:
                shutil.rmtree(tmp, ignore_errors=True)
        except OSError:
            continue
    if removed:
        logger.info("--compile: removed %d compiled package(s) unused for %g days from %s", len(removed), days, folder)
    return removed


def compile_for_inference(module: nn.Module, precision: str) -> CompiledEncoder:
    """The video encoder `module` (prepared for its resolved `precision`, on its device) compiled ahead of time and
    cached on disk (`CompiledEncoder`): the first call with an input shape loads its package from the cache (about
    3 s, mostly importing Inductor), or compiles it there once for this machine (about a minute for recap-base).

    No compiler is needed when the cache already holds this model's package for this machine (a cache shared by
    machines of the same kind, or one a compiler-less machine was given).

    Raises:
        InputError: on a CPU without a C++ compiler (Inductor generates and builds C++ there) when the cache holds no
            package for the model, and for int8 (its quantized layers do not export).
    """
    device = next(module.parameters()).device
    check_compile(precision, device)
    encoder = CompiledEncoder(module, precision)
    if device.type == "cpu" and cpp_compiler() is None and not encoder.cached(encoder.example()):
        # check_compile let it through for the packages the cache holds, but none is this model's
        raise InputError(f"--compile: the cache {encoder.cache} holds no compiled encoder for this model, precision "
                         "and machine, and compiling one needs a C++ compiler on a CPU (g++ or clang++); install one "
                         "or leave --compile out")  # fmt: skip
    return encoder


def _load(path: Path) -> AOTICompiledModel:
    import torch._inductor

    return torch._inductor.aoti_load_package(str(path))


def _device_identity(device: torch.device) -> dict[str, Any]:
    """What decides the machine code a package holds: the GPU model, or the CPU model, flags and kernel level."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return {"cuda": torch.cuda.get_device_name(index), "capability": list(torch.cuda.get_device_capability(index))}
    from videorecap.runtime import cpu_flags, cpu_model

    return {
        "type": device.type,
        "cpu": cpu_model(),
        "flags": hashlib.sha256(" ".join(sorted(cpu_flags())).encode()).hexdigest()[:16],
        "kernels": torch.backends.cpu.get_cpu_capability(),
        "env": {k: os.environ[k] for k in _ISA_ENV if k in os.environ},
    }


def _source_hash(module: nn.Module) -> str:
    """A hash of the source files of `module`'s classes and of the forward functions patched onto its layers
    (fp32-onednn's), so that a change to the model's code is a new key."""
    files: set[str] = {__file__}
    for m in module.modules():
        for obj in (type(m), getattr(m.forward, "__func__", None)):
            if obj is None:
                continue
            try:
                f = inspect.getsourcefile(obj)
            except TypeError:  # a built-in
                f = None
            if f and not f.startswith(os.path.dirname(torch.__file__)):  # torch's own code: its version is in the key
                files.add(f)
    h = hashlib.sha256()
    for f in sorted(files):
        h.update(Path(f).read_bytes())
    return h.hexdigest()
