"""Fixtures of the training tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from traindata import make_hcap


@pytest.fixture
def hcap_root(tmp_path: Path) -> Path:
    return make_hcap(tmp_path / "data")


@pytest.fixture(autouse=True)
def _one_thread():
    # the CI machine's 2 cores are shared: more than one intra-op thread makes tiny models 100x slower
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
