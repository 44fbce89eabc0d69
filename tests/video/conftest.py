"""Small generated videos shared by the video tests (made once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from videorecap.video.testing import make_video


@pytest.fixture(scope="session")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("videos")
    return {
        # 10 s at 5 fps: frame i shows grey 4*i, 50 frames
        "cfr": make_video(d / "cfr.mp4", duration=10, fps=5, size=(32, 24)),
        "fps25": make_video(d / "fps25.mkv", duration=2, fps=25, size=(32, 24), codec="ffv1"),
        "vfr": make_video(d / "vfr.mp4", duration=4, fps=10, size=(32, 24), vfr=True),
        "rot90": make_video(d / "rot90.mp4", duration=2, fps=5, size=(32, 16), rotation=90),
        "long": make_video(d / "long.mp4", duration=30, fps=4, size=(32, 24)),
    }
