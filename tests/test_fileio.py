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

    from videorecap.checkpoint import save_encoder, save_pretrained
    from videorecap.config import RecapConfig
    from videorecap.model.recap import VideoRecap

    torch.manual_seed(0)
    model = VideoRecap(RecapConfig.from_name("recap-tiny"))
    out = save_pretrained(model, tmp_path / "ckpt")
    mask = os.umask(0)
    os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~mask
    # every file as a plain open() makes it under this umask: model.safetensors was 0600 (safetensors writes its own
    # file), unreadable to other users of a shared model folder
    (tmp_path / "plain").write_bytes(b"")
    plain = (tmp_path / "plain").stat().st_mode & 0o777
    enc = save_encoder(model.encoder, tmp_path / "enc")
    for f in [*out.iterdir(), *enc.iterdir()]:
        assert f.stat().st_mode & 0o777 == plain, f


def test_a_writer_that_replaces_the_temp_file_still_gets_umask_permissions(tmp_path):
    (tmp_path / "plain").write_bytes(b"")
    plain = (tmp_path / "plain").stat().st_mode & 0o777
    with fileio.atomic_path(tmp_path / "f.bin") as tmp:
        os.unlink(tmp)  # as safetensors' save_file: a new file of its own at the path, made 0600
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600)
        os.close(fd)
    assert (tmp_path / "f.bin").stat().st_mode & 0o777 == plain


HOSTILE_NAMES = ["..", ".", "", "a/b", "../../etc/x", "a\\b", "nul\x00here", "bell\x07\x1b[0m", "\x7f", "tab\there",
                 "trailing. ", ".hidden", ".videorecap.lock", ".walk.abcdefgh.tmp", "CON", "aux.txt", "é" * 200,
                 "x" * 300, "😀" * 80, 'q"<>:|?*',
                 b"caf\xe9-latin1".decode("utf-8", "surrogateescape"),  # a file name that is not UTF-8
                 "\udcff" * 150]  # fmt: skip


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_safe_output_name_stays_inside_the_folder(tmp_path, name):
    safe = fileio.safe_output_name(name)
    assert safe and len(safe.encode()) <= fileio.MAX_NAME_BYTES
    assert (tmp_path / safe).resolve().parent == tmp_path.resolve()
    assert not safe.startswith(".") and not any(ord(c) < 32 or c in '/\\<>:"|?*' for c in safe)
    safe.encode("utf-8")  # valid UTF-8: no lone surrogates
    # the longest decorations we add still fit a file system's 255 bytes: ID.npy and its temp file
    fileio.write_bytes(tmp_path / f"{safe}_99.npy", b"x")
    assert [p.name for p in tmp_path.iterdir()] == [f"{safe}_99.npy"]


def test_safe_output_name_keeps_plain_names_and_long_names_apart():
    for plain in ["walk", "0a1b2c3d-uuid", "my video", "P01_01", "ünïcode"]:
        assert fileio.safe_output_name(plain) == plain
    a, b = fileio.safe_output_name("x" * 300 + "a"), fileio.safe_output_name("x" * 300 + "b")
    assert a != b


def test_unique_output_names_differ_case_insensitively():
    ids = fileio.unique_output_names(["Walk", "walk", "WALK", "walk_2", "..", "...", "a", "a"])
    assert ids == ["Walk", "walk_2", "WALK_3", "walk_2_2", "__", "___", "a", "a_2"]
    assert len({i.casefold() for i in ids}) == len(ids)
