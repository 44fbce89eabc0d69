import os

import numpy as np
import pytest

from videorecap import fileio


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path):
    p = tmp_path / "sub" / "a.json"
    fileio.write_json(p, {"x": 1})
    fileio.write_json(p, {"x": 2})
    assert p.read_text().strip().replace(" ", "").replace("\n", "") == '{"x":2}'
    assert [f.name for f in p.parent.iterdir()] == ["a.json"]


def test_failed_write_keeps_the_old_file(tmp_path):
    p = tmp_path / "a.txt"
    fileio.write_text(p, "old")
    with pytest.raises(RuntimeError):
        with fileio.atomic_path(p) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert p.read_text() == "old"
    assert not any(fileio.is_temp_file(f) for f in tmp_path.iterdir())


def test_permissions_follow_umask_and_npy_roundtrip(tmp_path):
    p = tmp_path / "f.npy"
    fileio.save_npy(p, np.arange(6, dtype=np.float32).reshape(2, 3))
    np.testing.assert_array_equal(np.load(p), np.arange(6, dtype=np.float32).reshape(2, 3))
    mask = os.umask(0)
    os.umask(mask)
    assert p.stat().st_mode & 0o777 == 0o666 & ~mask


def test_checkpoint_folders_get_umask_permissions(tmp_path):
    import torch

    from videorecap.checkpoint import save_pretrained
    from videorecap.config import RecapConfig
    from videorecap.model.recap import VideoRecap

    torch.manual_seed(0)
    out = save_pretrained(VideoRecap(RecapConfig.from_name("recap-tiny")), tmp_path / "ckpt")
    mask = os.umask(0)
    os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~mask
