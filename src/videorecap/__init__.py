"""videorecap: recursive hierarchical captioning of hour-long videos (Video ReCap, CVPR 2024).

>>> import videorecap
>>> result = videorecap.caption("kitchen.mp4", model="models/videorecap")  # doctest: +SKIP
>>> result.summary.text, [c.text for c in result.segments], result.clips[0]  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from videorecap.config import RecapConfig as RecapConfig
    from videorecap.model.recap import VideoRecap as VideoRecap
    from videorecap.pipeline import Captioner as Captioner
    from videorecap.pipeline import caption as caption

# Heavy modules (torch, PyAV) load on first use, so `videorecap --help` stays instant.
_LAZY = {
    "caption": "videorecap.pipeline",
    "Captioner": "videorecap.pipeline",
    "CaptionOptions": "videorecap.pipeline",
    "VideoRecap": "videorecap.model.recap",
    "RecapConfig": "videorecap.config",
    "DecodeConfig": "videorecap.infer.decode",
    "CaptionResult": "videorecap.results",
    "Caption": "videorecap.results",
    "load_model": "videorecap.checkpoint",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'videorecap' has no attribute {name!r}")
