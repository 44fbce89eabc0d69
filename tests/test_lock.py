"""The output-folder lock (`videorecap.lock`) between real processes, and the leftover cleaning it starts."""

import os
import signal
import subprocess
import sys
import time

import pytest

from videorecap import fileio
from videorecap.errors import FolderBusyError
from videorecap.lock import LOCK_FILE, output_lock, read_holder

HOLD = """
import sys, time
from videorecap.lock import output_lock
with output_lock(sys.argv[1], "videorecap caption a.mp4 -o out", wait=len(sys.argv) > 3):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
print("released", flush=True)
"""


def _holder(folder, seconds: float, env: dict | None = None, wait: bool = False) -> subprocess.Popen:
    """A process that takes the lock of `folder` and holds it `seconds`; returns once it holds it."""
    args = [sys.executable, "-c", HOLD, str(folder), str(seconds)] + (["wait"] if wait else [])
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=env)
    if not wait:
        assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_job_is_refused_with_the_holders_pid_and_command(tmp_path):
    proc = _holder(tmp_path, 60)
    try:
        with pytest.raises(FolderBusyError) as e:
            with output_lock(tmp_path):
                pass
        msg = str(e.value)
        assert f"PID {proc.pid}" in msg and "videorecap caption a.mp4 -o out" in msg and "--wait" in msg
        assert "\n" not in msg
    finally:
        proc.kill()
        proc.wait()


def test_kill_9_releases_the_lock(tmp_path):
    proc = _holder(tmp_path, 60)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert read_holder(tmp_path)["pid"] == proc.pid  # the dead holder's note is still there ...
    with output_lock(tmp_path, "second"):  # ... but the OS released its lock: no stale lock blocks us
        assert read_holder(tmp_path)["command"] == "second"
    assert read_holder(tmp_path) is None  # released: the file names no holder


def test_wait_waits_for_the_holder(tmp_path):
    proc = _holder(tmp_path, 1.5)
    t0 = time.monotonic()
    with output_lock(tmp_path, wait=True):
        waited = time.monotonic() - t0
        assert proc.stdout.readline().strip() == "released"  # the first job let go before we got the folder
    assert waited > 0.5
    proc.wait()


def test_a_job_that_writes_nothing_leaves_nothing(tmp_path):
    made = tmp_path / "new" / "out"
    with output_lock(made):  # made by the lock (or by the CLI's prepare_output_dir, through make_output_folder)
        assert (made / LOCK_FILE).exists()
    assert not made.exists() and (tmp_path / "new").is_dir()  # only what this job made goes
    existing = tmp_path / "existing"
    existing.mkdir()
    with output_lock(existing):
        pass
    assert existing.is_dir() and os.listdir(existing) == []  # the user's folder stays, without our lock file
    with output_lock(existing):
        (existing / "captions.json").write_text("{}")
    assert sorted(os.listdir(existing)) == [LOCK_FILE, "captions.json"]  # a job that wrote something: as before
    with output_lock(made):
        (made / "x").write_text("x")
    assert (made / "x").exists()


def test_a_waiting_job_locks_the_file_that_replaced_a_removed_one(tmp_path):
    # the first job writes nothing and removes the folder as it leaves; the second, waiting on the removed lock file,
    # must then hold the lock of the folder it finds (or makes), so that a third job is refused while it works
    out = tmp_path / "out"
    first = _holder(out, 1.0)
    second = _holder(out, 4.0, wait=True)
    try:
        assert second.stdout.readline().strip() == "held"
        assert first.stdout.readline().strip() == "released"
        with pytest.raises(FolderBusyError, match=f"PID {second.pid}"):
            with output_lock(out):
                pass
    finally:
        for p in (first, second):
            p.kill()
            p.wait()


def test_the_lock_is_per_folder(tmp_path):
    proc = _holder(tmp_path / "a", 60)
    try:
        with output_lock(tmp_path / "b"):
            assert (tmp_path / "b" / LOCK_FILE).exists()
    finally:
        proc.kill()
        proc.wait()


def test_torchrun_ranks_share_the_lock_of_their_job(tmp_path, monkeypatch):
    job = {"WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29511", "TORCHELASTIC_RUN_ID": "r1"}
    rank0 = _holder(tmp_path, 60, env=dict(os.environ, RANK="0", **job))
    try:
        for k, v in job.items():
            monkeypatch.setenv(k, v)
        monkeypatch.setenv("RANK", "1")
        with output_lock(tmp_path):  # rank 1 of the same job: goes on, rank 0 holds the folder for both
            pass
        monkeypatch.setenv("MASTER_PORT", "29999")  # rank 1 of another torchrun job on the same folder
        with pytest.raises(FolderBusyError, match=f"PID {rank0.pid}"):
            with output_lock(tmp_path):
                pass
    finally:
        rank0.kill()
        rank0.wait()
    # rank 0 may finish its share before rank 1 gets there: its note stays, and rank 1 still goes on
    for k, v in job.items():
        monkeypatch.setenv(k, v)
    done = _holder(tmp_path / "quick", 0, env=dict(os.environ, RANK="0"))
    assert done.wait() == 0
    monkeypatch.setenv("RANK", "1")
    with output_lock(tmp_path / "quick"):
        pass


def test_leftovers_of_interrupted_writes_are_cleaned_and_user_files_kept(tmp_path):
    vid = tmp_path / "walk"
    (vid / ".cache").mkdir(parents=True)
    ours = [
        vid / ".captions.json.k2x_9a0b.tmp",  # fileio.atomic_path
        tmp_path / ".0001.npy.a1b2c3d4.tmp",  # a features ID.npy being written
        vid / ".cache" / ".clips-0003.npz.zz11yy22.tmp",
    ]
    for p in ours:
        p.write_bytes(b"partial")
    tmpdir = tmp_path / ".checkpoint.abcdefgh.tmp"  # a training checkpoint folder being written
    (tmpdir / "sub").mkdir(parents=True)
    users = [tmp_path / ".notes.tmp", tmp_path / "draft.tmp", vid / "captions.json", tmp_path / ".x.abcdefgh.tmp.bak"]
    for p in users:
        p.write_text("mine")
    with output_lock(tmp_path):
        pass
    assert not [p for p in ours if p.exists()] and not tmpdir.exists()
    assert all(p.read_text() == "mine" for p in users)


def test_a_folder_moved_aside_by_an_interrupted_swap_is_put_back(tmp_path):
    # killed between swap_dir's two renames: the old set waits aside, the new one in a temp folder
    aside = tmp_path / ".walk.q1w2e3r4.old.tmp"
    aside.mkdir()
    (aside / "captions.json").write_text("old")
    new = tmp_path / ".walk.a1b2c3d4.tmp"
    new.mkdir()
    (new / "captions.json").write_text("new")
    assert fileio.clean_leftovers(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["walk"]
    assert (tmp_path / "walk" / "captions.json").read_text() == "old"


def test_a_lock_file_that_cannot_be_opened_is_one_line(tmp_path):
    from videorecap.errors import InputError

    (tmp_path / LOCK_FILE).mkdir()  # (a file without read permission does the same, except for root)
    with pytest.raises(InputError, match="lock file"):
        with output_lock(tmp_path):
            pass
