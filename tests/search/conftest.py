"""The search tests' shared fixture: the real sentence-embedding model (the test extra installs its wheel)."""

from __future__ import annotations

import pytest

from videorecap.text.embed import TextEmbedder


@pytest.fixture(scope="session")
def embedder() -> TextEmbedder:
    return TextEmbedder.load()
