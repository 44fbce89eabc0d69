import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from videorecap.config import RecapConfig
from videorecap.data import hcap
from videorecap.data.collate import Collator
from videorecap.data.datasets import ClipDataset, SegmentDataset, VideoDataset, for_config
from videorecap.data.hcap import ClipRow
from videorecap.errors import DataError

C = 32  # the width recap-tiny reads (for_config checks the files against it)


class CharTokenizer:
    """A tiny stand-in with the Tokenizer interface: one id per character (3 + byte value % 100)."""

    bos_id, eos_id, pad_id, vocab_size = 1, 2, 0, 103

    def encode(self, text):
        return [3 + (ord(ch) % 100) for ch in text]

    def decode(self, ids):
        raise NotImplementedError


def video_feats(n):
    # row i is filled with the value i, so tests can read which windows were picked
    return np.repeat(np.arange(n, dtype=np.float32)[:, None], C, axis=1)


@pytest.fixture
def feature_dir(tmp_path):
    d = tmp_path / "features"
    d.mkdir()
    np.save(d / "v1.npy", video_feats(200))  # 800 s
    np.save(d / "v2_0.npy", video_feats(45) + 1000)  # per-segment file
    np.save(d / "v2_1.npy", video_feats(45) + 2000)
    return d


SEG = {
    "vid": "v1",
    "start_sec": 180.0,
    "end_sec": 360.0,
    "captions_pred": [["v1", 180.0, 184.0, "#C C opens"], ["v1", 184.0, 188.0, "#C C walks"]],
    "segment_description": "C opened the door.",
}


def test_segment_dataset_from_video_file(feature_dir):
    ds = SegmentDataset([SEG], feature_dir=feature_dir, num_features=8, sampling="uniform")
    s = ds[0]
    assert s["video"].shape == (8, C) and s["video"].dtype == torch.float32
    assert s["video_mask"] is None
    rows = s["video"][:, 0].numpy()
    # rows 45..90 of the video (int(180/4) .. int(360//4)), uniformly sampled as the original
    n = 90 - 45 + 1
    expected = 45 + np.arange(0, n, n / 9).astype(int)[1:][:8]
    np.testing.assert_array_equal(rows, expected)
    assert s["text"] == "#C C opens#C C walks"
    assert s["caption"] == "C opened the door."
    assert s["meta"] == {"vid": "v1", "start": 180.0, "end": 360.0, "sid": None, "level": "segment"}


def test_segment_dataset_sid_file_preferred_and_fallback(feature_dir):
    row = dict(SEG, vid="v2", sid="v2_0")
    s = SegmentDataset([row], feature_dir=feature_dir, num_features=4, sampling="masking")[0]
    assert (s["video"][:, 0] >= 1000).all() and s["video_mask"].all()
    # a sid without its file falls back to the whole-video file when that exists
    s = SegmentDataset([dict(SEG, sid="missing")], feature_dir=feature_dir, num_features=4, sampling="uniform")[0]
    assert s["video"][0, 0] >= 45
    row = dict(SEG, vid="nov", sid="missing")
    ds = SegmentDataset([row], feature_dir=feature_dir, num_features=4, sampling="uniform")
    with pytest.raises(DataError, match=r"missing\.npy nor nov\.npy"):
        ds[0]


def test_missing_and_bad_feature_files(feature_dir):
    ds = SegmentDataset([dict(SEG, vid="nope")], feature_dir=feature_dir, num_features=4, sampling="uniform")
    with pytest.raises(DataError, match=r"nope\.npy: feature file not found"):
        ds[0]
    (feature_dir / "bad.npy").write_bytes(b"not numpy")
    with pytest.raises(DataError, match=r"bad\.npy"):
        SegmentDataset([dict(SEG, vid="bad")], feature_dir=feature_dir, num_features=4, sampling="uniform")[0]
    late = dict(SEG, start_sec=900.0, end_sec=1000.0)  # past the end of v1 (800 s)
    with pytest.raises(DataError, match="no feature rows"):
        SegmentDataset([late], feature_dir=feature_dir, num_features=4, sampling="uniform")[0]


def test_video_dataset_masking_and_sids(feature_dir):
    rows = [
        {
            "vid": "v1",
            "start_sec": 0.0,
            "end_sec": 40.0,
            "segment_descriptions_pred": ["C cooks.", "C eats"],
            "video_summary": "C had dinner.",
        },
        {
            "vid": "v2",
            "sids": ["v2_0", "v2_1"],
            "version": "v1",
            "segment_descriptions_pred": "['a.', 'b.']",
            "video_summary": "x",
        },  # fmt: skip
    ]
    ds = VideoDataset(rows, feature_dir=feature_dir, num_features=16, sampling="masking")
    s = ds[0]
    assert s["video"].shape == (16, C)
    assert s["video_mask"].tolist() == [True] * 11 + [False] * 5  # rows 0..10 then zero padding
    np.testing.assert_array_equal(s["video"][:11, 0].numpy(), np.arange(11))
    assert not s["video"][11:].any()
    assert s["text"] == "C cooks. C eats." and s["caption"] == "C had dinner."
    s = ds[1]
    assert s["video_mask"].all()  # 90 rows subsampled to 16
    vals = s["video"][:, 0]
    assert (vals < 2000).any() and (vals >= 2000).any()  # both segment files were concatenated
    assert s["text"] == "a. b."


def test_clip_dataset_from_features(tmp_path):
    d = tmp_path / "f"
    d.mkdir()
    np.save(d / "cls.npy", video_feats(10))
    tok = np.random.default_rng(0).standard_normal((10, 5, C)).astype(np.float16)  # as `features --all-tokens`
    np.save(d / "tok.tokens.npy", tok)
    a = ClipDataset([ClipRow("cls", 8.0, 12.0, "#C C x")], feature_dir=d, feature_kind="cls")[0]
    b = ClipDataset([ClipRow("tok", 36.0, 40.0, "#C C y")], feature_dir=d)[0]
    assert a["video"].shape == (1, C) and a["video"][0, 0] == 2  # window int(8/4) = 2
    assert b["video"].shape == (5, C) and b["video"].dtype == torch.float32
    np.testing.assert_array_equal(b["video"].numpy(), tok[9].astype(np.float32))
    assert a["text"] is None and a["video_mask"] is None and b["caption"] == "#C C y"
    with pytest.raises(DataError, match="10 windows"):
        ClipDataset([ClipRow("cls", 40.0, 44.0, "c")], feature_dir=d, feature_kind="cls")[0]
    with pytest.raises(DataError, match=r"cls\.tokens\.npy: feature file not found"):
        ClipDataset([ClipRow("cls", 0.0, 4.0, "c")], feature_dir=d)[0]
    with pytest.raises(ValueError, match="exactly one"):
        ClipDataset([ClipRow("cls", 0.0, 4.0, "c")])


def test_clip_dataset_pixels_with_stub_reader(tmp_path):
    calls = []

    def reader(path, start, end, num_frames, *, mode, rng, grid_fps):
        calls.append((path.name, start, end, num_frames, mode, grid_fps))
        return np.full((num_frames, 40, 60, 3), 128, dtype=np.uint8)

    (tmp_path / "v1.mp4").write_bytes(b"")
    rows = [("v1", 0.0, 4.0, "#C C a")]
    ev = ClipDataset(rows, video_root=tmp_path, num_frames=2, size=32, reader=reader)[0]
    tr = ClipDataset(rows, video_root=tmp_path, num_frames=2, size=32, reader=reader, training=True,
                     frame_mode="random", grid_fps=30.0)[0]  # fmt: skip
    assert ev["video"].shape == tr["video"].shape == (3, 2, 32, 32)
    assert calls == [("v1.mp4", 0.0, 4.0, 2, "middle", None), ("v1.mp4", 0.0, 4.0, 2, "random", 30.0)]
    with pytest.raises(DataError, match=r"v9\.mp4: video file not found"):
        ClipDataset([("v9", 0.0, 4.0, "c")], video_root=tmp_path, reader=reader)[0]


def test_clip_dataset_decodes_real_video(tmp_path):
    from videorecap.video.testing import make_video

    make_video(tmp_path / "v1.mp4", duration=8.0, fps=5.0, size=(48, 32))
    rows = [ClipRow("v1", 0.0, 4.0, "#C C a"), ClipRow("v1", 4.0, 8.0, "#C C b")]
    ds = ClipDataset(rows, video_root=tmp_path, num_frames=2, size=32, training=True)
    torch.manual_seed(1)
    a = ds[0]["video"]
    torch.manual_seed(1)
    assert torch.equal(a, ds[0]["video"])  # augmentation is reproducible under torch.manual_seed
    assert a.shape == (3, 2, 32, 32) and torch.isfinite(a).all()
    ev = ClipDataset(rows, video_root=tmp_path, num_frames=2, size=32)
    assert torch.equal(ev[1]["video"], ev[1]["video"])


def test_for_config_and_dataloader(feature_dir, tmp_path):
    cfg = RecapConfig.from_name("recap-tiny", level="video")
    rows = [{"vid": "v1", "start_sec": 0.0, "end_sec": float(e), "segment_descriptions_pred": ["a"] * i,
             "video_summary": "C did things " * i} for i, e in enumerate((20, 100, 700), 1)]  # fmt: skip
    hcap.save_videos(tmp_path / "videos_train.json", rows)
    ds = for_config("video", tmp_path / "videos_train.json", cfg, feature_dir=feature_dir)
    assert ds.num_features == 16 and ds.sampling == "masking"
    coll = Collator(CharTokenizer(), max_caption_tokens=cfg.io.max_new_tokens["video"], max_text_tokens=8)
    batch = next(iter(DataLoader(ds, batch_size=3, collate_fn=coll)))
    assert batch["video"].shape == (3, 16, C)
    assert batch["video_mask"].shape == (3, 16) and batch["video_mask"].dtype == torch.bool
    assert batch["video_mask"].sum(1).tolist() == [6, 16, 16]
    assert batch["text_ids"].shape == (3, 8)  # "a. a. a." cut to 8 tokens
    assert batch["text_mask"].sum(1).tolist() == [2, 5, 8]
    assert batch["caption_ids"].shape == (3, 20 + 2)  # longest caption cut to max_new_tokens
    seg = for_config("segment", [SEG], RecapConfig.from_name("recap-tiny", level="segment"), feature_dir=feature_dir)
    assert seg[0]["video"].shape == (8, C) and seg[0]["video_mask"] is None


def test_rows_given_as_lists_are_checked(feature_dir):
    with pytest.raises(DataError, match="segment row 0"):
        SegmentDataset([{"vid": "v1"}], feature_dir=feature_dir, num_features=4, sampling="uniform")
    with pytest.raises(DataError, match="clip row 1"):
        ClipDataset([("v", 0.0, 4.0, "a"), ("v", 4.0)], feature_dir=feature_dir)


def test_clip_frame_cache_is_exact_and_decodes_each_video_once(tmp_path):
    from videorecap.data.datasets import ClipDataset
    from videorecap.data.hcap import ClipRow
    from videorecap.video.testing import make_video

    make_video(tmp_path / "a.mp4", duration=12.0, fps=5.0, size=(32, 24))
    rows = [ClipRow("a", s, s + 4.0, f"c{s}") for s in (0.0, 4.0, 8.0)]
    plain = ClipDataset(rows, video_root=tmp_path, num_frames=2, size=16)
    cached = ClipDataset(rows, video_root=tmp_path, num_frames=2, size=16, cache_frames=True)
    for i in (2, 0, 1):
        assert torch.equal(plain[i]["video"], cached[i]["video"])
    assert sorted(cached._frames) == [0, 1, 2]  # the first access decoded the whole video
    with pytest.raises(ValueError, match="middle"):
        ClipDataset(rows, video_root=tmp_path, frame_mode="random", cache_frames=True)


def test_training_without_random_crop_is_the_eval_transform(tmp_path):
    from videorecap.data.datasets import ClipDataset
    from videorecap.data.hcap import ClipRow
    from videorecap.video.testing import make_video

    make_video(tmp_path / "a.mp4", duration=4.0, fps=5.0, size=(32, 24))
    rows = [ClipRow("a", 0.0, 4.0, "c")]
    ev = ClipDataset(rows, video_root=tmp_path, num_frames=2, size=16)[0]["video"]
    no_crop = ClipDataset(rows, video_root=tmp_path, num_frames=2, size=16, training=True, random_crop=False)
    assert torch.equal(no_crop[0]["video"], ev)
