"""Shared fixtures of the live tests: a recorded MPEG-TS stream, the bundled model, and `caption`'s result on it."""

from __future__ import annotations

from pathlib import Path

import pytest
from _stream import DURATION, SEGMENT_SECONDS

from videorecap.video.testing import make_video


@pytest.fixture(scope="session")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 22.5-s MPEG-TS recording with a key frame every second (a stream joined mid-way decodes within 1 s)."""
    path = tmp_path_factory.mktemp("live") / "rec.ts"
    return make_video(path, duration=DURATION, fps=10, size=(64, 48), options={"g": "10"})


@pytest.fixture(scope="session")
def captioner():  # noqa: ANN201 - a pipeline.Captioner
    import torch

    from videorecap.pipeline import Captioner

    n = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny model: more threads only compete with the stream processes
    yield Captioner.load("recap-synth")
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def reference(recording: Path, captioner):  # noqa: ANN001, ANN201 - the CaptionResult of `caption`
    from videorecap.pipeline import CaptionOptions, caption_video

    return caption_video(recording, captioner, CaptionOptions(segment_seconds=SEGMENT_SECONDS))
