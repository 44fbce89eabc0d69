"""Fixtures of the training tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from traindata import make_hcap


@pytest.fixture
def hcap_root(tmp_path: Path) -> Path:
    return make_hcap(tmp_path / "data")


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    # every training test: the CI machine's 2 cores are shared, and more intra-op threads make tiny models 100x slower
    yield
