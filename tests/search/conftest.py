from __future__ import annotations

from pathlib import Path

import pytest

from videorecap.results import Caption, CaptionResult, VideoMeta
from videorecap.synth.make import truth_result, video_id, video_seed
from videorecap.synth.world import make_script
from videorecap.text.embed import TextEmbedder


def write_captions(path: Path, vid: str, clips: list[tuple[float, float, str]], segments=()) -> CaptionResult:
    """A captions.json at `path` with the given clip captions and segment descriptions."""
    end = max([e for _, e, _ in [*clips, *segments]] + [1.0])
    result = CaptionResult(
        video=VideoMeta(vid, f"{vid}.mp4", end),
        clips=[Caption(s, e, t) for s, e, t in clips],
        segments=[Caption(s, e, t) for s, e, t in segments],
    )
    result.save(path)
    return result


def synth_folder(root: Path, n: int, minutes: float = 2.0) -> Path:
    """n held-out synthetic videos' ground truth, one OUT/<id>/captions.json each (as `videorecap caption` lays out)."""
    for i in range(n):
        s = make_script(video_seed(0, "heldout", i), minutes, vid=video_id("heldout", i))
        truth_result(s).save(root / s.vid / "captions.json")
    return root


@pytest.fixture(scope="session")
def embedder() -> TextEmbedder:
    return TextEmbedder.load()
