"""Tiny Ego4D-HCap-shaped data for the training tests: annotation files, CLS features, clip features."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from videorecap.data import hcap

VERBS = ["picks", "cuts", "washes", "opens", "moves"]
OBJECTS = ["cup", "knife", "plate", "door", "box"]
ACTIVITIES = ["cooks food", "cleans the room", "fixes a shelf"]


def make_hcap(root: Path, *, videos: int = 3, duration: float = 24.0, segment: float = 12.0, width: int = 32) -> Path:
    """Write `annotations/` (clips/segments pkl, videos json for train and val), `features/{vid}.npy` (CLS, one row
    per 4 s) and `clip_features/{vid}.tokens.npy` (one 2-token row per 4-s window). Returns `root`."""
    rng = np.random.default_rng(0)
    ann, feats, clip_feats = root / "annotations", root / "features", root / "clip_features"
    for d in (ann, feats, clip_feats):
        d.mkdir(parents=True, exist_ok=True)
    for split, offset in (("train", 0), ("val", 100)):
        clips, segments, vids = [], [], []
        for v in range(videos if split == "train" else 2):
            vid = f"{split}{v}"
            n = int(np.ceil(duration / 4))
            captions = []
            for k in range(n):
                a, b = (v + k + offset) % len(VERBS), (2 * v + k) % len(OBJECTS)
                captions.append([vid, 4.0 * k, min(4.0 * k + 4, duration), f"#C C {VERBS[a]} the {OBJECTS[b]}"])
            clips += [tuple(c) for c in captions]
            # features that carry the caption identity, so the tiny model can learn something
            base = rng.standard_normal((n, width)).astype(np.float32)
            for k, c in enumerate(captions):
                base[k, VERBS.index(c[3].split()[2])] += 3.0
            np.save(feats / f"{vid}.npy", base)
            np.save(clip_feats / f"{vid}.tokens.npy", np.stack([base, base * 0.5], axis=1))  # (N, 2, C)
            descs = []
            for s, start in enumerate(np.arange(0, duration, segment)):
                end = float(min(start + segment, duration))
                inside = [c for c in captions if c[1] >= start and c[2] <= end]
                desc = f"C {ACTIVITIES[(v + s) % len(ACTIVITIES)]}"
                descs.append(desc)
                segments.append(
                    {
                        "vid": vid,
                        "sid": f"{vid}_{s}",
                        "start_sec": float(start),
                        "end_sec": end,
                        "captions_pred": inside,
                        "captions_gt": [{"narration_text": c[3]} for c in inside],
                        "segment_description": desc,
                    }
                )
            vids.append(
                {
                    "vid": vid,
                    "start_sec": 0.0,
                    "end_sec": duration,
                    "segment_descriptions": descs,
                    "segment_descriptions_pred": descs,
                    "video_summary": "C " + " and ".join(ACTIVITIES[(v + s) % 3].split()[0] for s in range(2)),
                }
            )
        hcap.save_clips(ann / f"clips_{split}.pkl", clips)
        hcap.save_segments(ann / f"segments_{split}.pkl", segments)
        (ann / f"videos_{split}.json").write_text(json.dumps(vids))
    return root


def corpus() -> list[str]:
    words = [f"#C C {v} the {o}" for v in VERBS for o in OBJECTS]
    words += [f"C {a}" for a in ACTIVITIES] + ["C cooks and cleans and fixes ."]
    return words
