"""The resumable store: append, load, resume, fingerprint changes, damaged entries, crash leftovers, and the
fingerprint helpers."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from videorecap import fileio
from videorecap.store import Store, file_identity, fingerprint_key, model_fingerprint, weights_hash

FP = {"model": "abc", "batch_size": 8, "windows": [4.0, 180.0]}


def test_put_get_and_reopen(tmp_path: Path):
    store = Store.open(tmp_path / "s", FP)
    feats = np.arange(12, dtype=np.float32).reshape(4, 3)
    store.put("c00000", arrays={"features": feats}, rows=["a caption", "another", "ünïcode"])
    store.put("c00001", rows={"index": 4, "texts": []})
    again = Store.open(tmp_path / "s", {**FP, "windows": (4.0, 180.0)})  # a tuple hashes like the list
    assert again.keys() == ["c00000", "c00001"] and "c00000" in again and "c00002" not in again
    e = again.get("c00000")
    assert e is not None and e.rows == ["a caption", "another", "ünïcode"]
    np.testing.assert_array_equal(e.arrays["features"], feats)
    assert e.arrays["features"].dtype == np.float32
    assert again.get("c00001").rows == {"index": 4, "texts": []} and again.get("c00001").arrays == {}
    assert again.get("c00002") is None
    assert [x.key for x in again.entries()] == ["c00000", "c00001"]


def test_keys_with_unsafe_characters_round_trip(tmp_path: Path):
    store = Store.open(tmp_path, FP)
    store.put("a/b c?", rows=1)
    assert store.keys() == ["a/b c?"] and store.get("a/b c?").rows == 1
    assert [p.name for p in tmp_path.glob("*.npz")] == ["a%2Fb%20c%3F.npz"]
    with pytest.raises(ValueError):
        store.put("x", arrays={"__rows__": np.zeros(1)})


def test_other_settings_start_over_with_a_log_line(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    Store.open(tmp_path, FP).put("c00000", rows=["old"])
    with caplog.at_level(logging.INFO, logger="videorecap.store"):
        store = Store.open(tmp_path, {**FP, "batch_size": 4})
    assert "made with other settings; starting over" in caplog.text
    assert store.keys() == [] and store.get("c00000") is None
    assert json.loads((tmp_path / "store.json").read_text())["fingerprint"]["batch_size"] == 4
    # an unreadable store.json counts as other settings
    store.put("c00000", rows=["new"])
    (tmp_path / "store.json").write_text("{ torn")
    assert Store.open(tmp_path, {**FP, "batch_size": 4}).keys() == []


def test_an_entry_made_under_another_fingerprint_is_never_used(tmp_path: Path):
    a = Store.open(tmp_path / "a", FP)
    a.put("c00000", rows=["from a"])
    b = Store.open(tmp_path / "b", {**FP, "model": "other"})
    (tmp_path / "a" / "c00000.npz").rename(tmp_path / "b" / "c00000.npz")  # copied in by hand
    assert b.get("c00000") is None and b.keys() == []


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "pickle"])
def test_a_damaged_entry_is_dropped_with_a_warning_and_recomputed(tmp_path: Path, caplog, damage: str):
    store = Store.open(tmp_path, FP)
    store.put("c00000", arrays={"features": np.ones((50, 8), np.float32)}, rows=["x"] * 50)
    store.put("c00001", arrays={"features": np.zeros((2, 8), np.float32)}, rows=["y", "z"])
    p = store.path("c00000")
    data = p.read_bytes()
    if damage == "pickle":  # a file with Python objects in it: numpy refuses it, in its own words
        np.save(p.with_suffix(".tmp.npy"), np.array([{"a": 1}], dtype=object), allow_pickle=True)
        p.with_suffix(".tmp.npy").replace(p)
    else:
        p.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"\x00not an npz" * 10, "empty": b""}[damage])
    again = Store.open(tmp_path, FP)
    with caplog.at_level(logging.WARNING, logger="videorecap.store"):
        assert [e.key for e in again.entries()] == ["c00001"]
    assert "c00000.npz: not a readable cache entry" in caplog.text and "recomputing it" in caplog.text
    assert "allow_pickle" not in caplog.text
    assert not p.exists()  # dropped, so the recomputed chunk takes its place
    again.put("c00000", rows=["x"])
    assert again.get("c00000").rows == ["x"]


def test_a_crash_leftover_is_cleaned_up_on_the_next_open(tmp_path: Path, monkeypatch):
    store = Store.open(tmp_path, FP)
    store.put("c00000", rows=["done"])
    # a kill during a write (`put` is interrupted after the temp file is written, before the rename)
    monkeypatch.setattr("os.replace", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        store.put("c00001", rows=["half"])
    monkeypatch.undo()
    assert not store.path("c00001").exists()  # never a half-written entry under its real name
    # a kill -9 leaves the temp file behind (atomic_path has no time to remove it)
    leftover = tmp_path / ".c00001.npz.k9x2ab.tmp"
    leftover.write_bytes(b"half a chunk")
    assert fileio.is_temp_file(leftover)  # the name fileio gives its temp files
    again = Store.open(tmp_path, FP)
    assert not leftover.exists() and again.keys() == ["c00000"] and again.get("c00000").rows == ["done"]


def test_shared_open_neither_resets_nor_cleans(tmp_path: Path):
    first = Store.open(tmp_path, FP)
    first.put("v1", rows=[1])
    leftover = tmp_path / ".v2.npz.abc.tmp"  # another process's write in progress
    leftover.write_bytes(b"")
    second = Store.open(tmp_path, FP, shared=True)
    assert second.get("v1").rows == [1] and leftover.exists()
    with pytest.raises(RuntimeError, match="not opened with these settings"):
        Store.open(tmp_path, {**FP, "model": "other"}, shared=True)


def test_clear_removes_only_the_stores_files(tmp_path: Path):
    store = Store.open(tmp_path / "s", FP)
    store.put("a", rows=1)
    store.clear()
    assert not (tmp_path / "s").exists()
    store = Store.open(tmp_path / "t", FP)
    store.put("a", rows=1)
    (tmp_path / "t" / "notes.txt").write_text("the user's")
    store.clear()
    assert [p.name for p in (tmp_path / "t").iterdir()] == ["notes.txt"]


def test_weights_hash_covers_every_byte_and_is_computed_once(monkeypatch):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.Linear(64, 3))
    h = weights_hash(model)
    assert weights_hash(model) == h
    twin = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.Linear(64, 3))
    twin.load_state_dict(model.state_dict())
    assert weights_hash(twin) == h
    # one element in the middle of a tensor, which "a few numbers of every tensor" would not see
    with torch.no_grad():
        twin[0].weight[31, 17] += 1e-3
    assert weights_hash(twin) != h
    # bf16 weights (no numpy dtype) hash too
    assert weights_hash(torch.nn.Linear(4, 4).to(torch.bfloat16))
    # cached: the bytes are not read again while no tensor changed
    calls = {"n": 0}
    real = torch.Tensor.contiguous

    def counting(self, *a, **kw):
        calls["n"] += 1
        return real(self, *a, **kw)

    monkeypatch.setattr(torch.Tensor, "contiguous", counting)
    weights_hash(model)
    assert calls["n"] == 0


def test_model_fingerprint_and_file_identity(tmp_path: Path):
    from videorecap.config import RecapConfig
    from videorecap.model.recap import VideoRecap

    torch.manual_seed(0)
    m = VideoRecap(RecapConfig.from_name("recap-tiny", level="segment"))
    fp = model_fingerprint(m)
    assert set(fp) == {"config", "weights"} and fp["weights"] == weights_hash(m)
    other = VideoRecap(RecapConfig.from_name("recap-tiny", level="segment", segment_seconds=12.0))
    other.load_state_dict(m.state_dict())
    assert model_fingerprint(other)["config"] != fp["config"] and model_fingerprint(other)["weights"] == fp["weights"]
    f = tmp_path / "v.mp4"
    f.write_bytes(b"1234")
    ident = file_identity(f)
    assert ident["size"] == 4 and ident["path"] == str(f.resolve())
    assert fingerprint_key({"a": 1, "b": [1, 2]}) == fingerprint_key({"b": (1, 2), "a": 1})
