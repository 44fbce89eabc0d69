"""videorecap: recursive hierarchical captioning of hour-long videos (Video ReCap, CVPR 2024)."""

from __future__ import annotations

__version__ = "0.1.0"
