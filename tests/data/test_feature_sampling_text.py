import doctest

import numpy as np
import pytest

from videorecap.data import feature_sampling, text


def original_uniform(n, k):
    # the original's rule, unfixed: used to check that the fix changes nothing but the length
    return np.arange(0, n, n / (k + 1)).astype(int)[1:]


def feats(n, c=3):
    return np.arange(n * c, dtype=np.float32).reshape(n, c) + 1  # no zero rows


def test_off_by_one_fixed_n333_k80():
    assert len(original_uniform(333, 80)) == 81  # the original's bug
    out = feature_sampling.sample_uniform(feats(333), 80)
    assert out.shape == (80, 3)
    np.testing.assert_array_equal(feature_sampling.uniform_indices(333, 80), original_uniform(333, 80)[:80])


@pytest.mark.parametrize("k", [8, 40, 80, 256, 512])
def test_uniform_always_k_and_matches_original_indices(k):
    for n in list(range(1, 700, 7)) + [333, 45, 46, 178]:
        idx = feature_sampling.uniform_indices(n, k)
        assert len(idx) == k
        assert idx.min() >= 0 and idx.max() < n
        assert np.all(np.diff(idx) >= 0)
        np.testing.assert_array_equal(idx, original_uniform(n, k)[:k])


def test_uniform_upsamples_by_repeating():
    out = feature_sampling.sample_uniform(feats(3), 8)
    assert out.shape == (8, 3)
    assert len(np.unique(out[:, 0])) <= 3


def test_masking_pads_and_subsamples():
    f = feats(5)
    out, mask = feature_sampling.sample_masking(f, 8)
    assert out.shape == (8, 3) and out.dtype == f.dtype
    assert mask.dtype == bool and mask.tolist() == [True] * 5 + [False] * 3
    np.testing.assert_array_equal(out[:5], f)
    assert not out[5:].any()
    out, mask = feature_sampling.sample_masking(feats(8), 8)  # N == K: kept whole
    np.testing.assert_array_equal(out, feats(8))
    assert mask.all()
    out, mask = feature_sampling.sample_masking(feats(333), 80)
    assert out.shape == (80, 3) and mask.all()
    np.testing.assert_array_equal(out, feats(333)[original_uniform(333, 80)[:80]])


def test_sample_dispatch_and_errors():
    f, m = feature_sampling.sample(feats(10), 4, "uniform")
    assert f.shape == (4, 3) and m is None
    f, m = feature_sampling.sample(feats(10), 4, "masking")
    assert m.shape == (4,)
    with pytest.raises(ValueError, match="sampling must be 'uniform' or 'masking', not 'mean'"):
        feature_sampling.sample(feats(10), 4, "mean")
    with pytest.raises(ValueError, match="empty"):
        feature_sampling.sample_uniform(feats(0), 4)


def test_slice_features_matches_original():
    f = feats(200)
    assert feature_sampling.slice_features(f, 0.0, 180.0).shape[0] == 46  # rows 0..45 inclusive
    np.testing.assert_array_equal(feature_sampling.slice_features(f, 7.9, 16.0), f[1:5])
    np.testing.assert_array_equal(feature_sampling.slice_features(f, 10.0, None), f[2:])
    np.testing.assert_array_equal(feature_sampling.slice_features(f, None, 3.9), f[0:1])
    np.testing.assert_array_equal(feature_sampling.slice_features(f, 2.0, 9.0, clip_seconds=2.0), f[1:5])


def test_segment_text_no_separator():
    caps = [["v", 0, 4, "#C C picks the cabbage"], ("v", 4, 8, "#C C puts it down")]
    assert text.segment_text(caps) == "#C C picks the cabbage#C C puts it down"
    assert text.segment_text([]) == ""


def test_video_text_as_original():
    assert text.video_text(["C cooks.", " C eats ", "C washes up..."]) == "C cooks. C eats. C washes up."
    assert text.video_text(["C eats. ", "C sleeps"]) == "C eats.. C sleeps."
    assert text.video_text([]) == ""
    assert text.video_text("['C cooks.', 'C eats, then sleeps.']", version="v1") == "C cooks. C eats then sleeps."


def test_previous_text():
    assert text.previous_text("segment", {"captions_pred": [["v", 0, 4, "a"], ["v", 4, 8, "b"]]}) == "ab"
    row = {"segment_descriptions_pred": "['x.', 'y.']", "version": "v1"}
    assert text.previous_text("video", row) == "x. y."
    assert text.previous_text("video", {"vid": "v"}) is None
    assert text.previous_text("clip", {"captions_pred": []}) is None


def test_text_docstring_examples():
    assert doctest.testmod(text).failed == 0
