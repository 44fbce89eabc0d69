"""Fixtures of the language-model tests: a tiny trained text model, and real server processes on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "train"))  # traindata.make_hcap: the tiny Ego4D-HCap-shaped data

from traindata import make_hcap  # noqa: E402


def tiny_text_recipe(root: Path, out: Path, **stage: object) -> dict:
    """A text-summarizer recipe of recap-tiny on `make_hcap` data (a few seconds on one core)."""
    return {
        "kind": "text-summarizer",
        "output_dir": str(out),
        "seed": 0,
        "tokenizer": "word-level",
        "model": {"preset": "recap-tiny", "train_decoder": True, "train_aligner": True},
        "data": {"root": str(root), "annotations": "annotations"},
        "stages": [
            {"name": "text", "epochs": 40, "batch_size": 4, "lr": 3e-3, "lr_end": 1e-4, "warmup_steps": 5, **stage}
        ],
        "validation": {"caption_samples": 0},
    }


@pytest.fixture(scope="session")
def hcap_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_hcap(tmp_path_factory.mktemp("hcap") / "data")


@pytest.fixture(scope="session")
def text_model_dir(hcap_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny text model trained for 80 steps by `videorecap train` (kind text-summarizer)."""
    import torch

    from videorecap.train.recipe import recipe_from_dict, run_recipe

    out = tmp_path_factory.mktemp("textrun")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_recipe(recipe_from_dict(tiny_text_recipe(hcap_data, out)))
    finally:
        torch.set_num_threads(threads)
    return out / "text" / "final"


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    src = str(HERE.parents[1] / "src")
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


class Proc:
    """A server process and the URL it printed."""

    def __init__(self, argv: list[str]) -> None:
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
        line = self.p.stdout.readline()  # type: ignore[union-attr]
        if "http://" not in line:
            self.p.kill()
            raise RuntimeError(f"the server did not start: {line!r} {self.p.stderr.read()}")  # type: ignore[union-attr]
        self.url = line[line.index("http://") :].split()[0]

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.terminate()
        try:
            self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        for f in (self.p.stdout, self.p.stderr):
            if f is not None:
                f.close()


@pytest.fixture
def start_server() -> Iterator[Callable[..., Proc]]:
    """`start_server(argv)`: a process printing its URL first; every one started is stopped at the end."""
    procs: list[Proc] = []

    def start(argv: list[str]) -> Proc:
        procs.append(Proc(argv))
        return procs[-1]

    yield start
    for p in procs:
        p.stop()


@pytest.fixture
def fault_server(start_server: Callable[..., Proc], tmp_path: Path) -> Callable[..., tuple[Proc, Path]]:
    """`fault_server(mode, n)`: a real misbehaving server process (fault_server.py) and its request log."""

    def start(mode: str, n: int = 0) -> tuple[Proc, Path]:
        log = tmp_path / f"requests-{mode}-{len(list(tmp_path.glob('requests-*')))}.jsonl"
        log.touch()
        return start_server([sys.executable, str(HERE / "fault_server.py"), mode, str(n), str(log)]), log

    return start


@pytest.fixture
def served_text_model(start_server: Callable[..., Proc], text_model_dir: Path) -> Proc:
    """`videorecap serve --text-model DIR --port 0` as a real process."""
    return start_server(
        [sys.executable, "-m", "videorecap", "serve", "--text-model", str(text_model_dir), "--port", "0"]
    )
