"""One job per output folder: an OS file lock on `OUT/.videorecap.lock`, held while a command writes there.

Two `caption` runs on one folder would otherwise mix their outputs or delete each other's temporary files. The
lock is an advisory `flock` (POSIX) or `msvcrt.locking` (Windows) lock on a small file inside the output folder;
the operating system releases it when the process ends, however it ends (kill -9 included), so a stale lock never
blocks a later run. The holder writes its PID, host and command line into the file, so a second job can say who
holds the folder. Once the lock is taken, the leftovers of interrupted writes (our own temp files, see
`fileio.clean_leftovers`) are cleaned: no other process of ours is writing there.

torchrun: the ranks of one job write disjoint shares of the same folder, so they share the lock. Rank 0 takes it;
the other ranks wait until the lock file names their job (torchrun's run id and rendezvous address), and stop
with the same one-line error when another job holds the folder. (RANK/WORLD_SIZE without torchrun's rendezvous,
MASTER_ADDR, make no shared job: each process takes the lock itself, as `distributed.init_if_needed` runs it alone.)

A job that writes nothing in the folder (every video failed) removes the lock file as it leaves, and the folder
too when this process made it (`make_output_folder`, which the CLI's output checks use): a failed first run leaves
no empty folder behind. A job waiting for that lock then finds its file gone and locks the one at the path now.

The CLI takes the lock in `caption`, `features`, `evaluate`, `train`, `live` and `ask`. The Python API (`caption_video`,
`write_outputs`, `run_jobs`, `evaluate`, `Curriculum.run`) does not lock by itself: a program that may run several
jobs on one folder wraps its work in `with output_lock(folder, "my job"):`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from videorecap import distributed, fileio
from videorecap.errors import FolderBusyError, InputError

logger = logging.getLogger(__name__)

LOCK_FILE = ".videorecap.lock"
_POLL_SECONDS = 0.2
# how long the other ranks of a torchrun job wait for rank 0 to take the lock (it loads nothing before that)
_RANK0_TIMEOUT_SECONDS = 600.0
_IMPORTED = time.time()

if os.name == "nt":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try_lock(f: IO[bytes]) -> bool:
        f.seek(0)
        try:
            msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(f: IO[bytes]) -> None:
        f.seek(0)
        msvcrt.locking(f.fileno(), msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_lock(f: IO[bytes]) -> bool:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(f: IO[bytes]) -> None:
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _job_key() -> str | None:
    """What the ranks of one torchrun job share and no other running job has: run id + rendezvous address. None
    outside torchrun, or where RANK/WORLD_SIZE are set without a rendezvous (`distributed.init_if_needed` then runs
    each process alone too): the process is a job of its own."""
    env = os.environ
    if distributed.rank_world()[1] == 1 or not env.get("MASTER_ADDR"):
        return None
    return f"{env.get('TORCHELASTIC_RUN_ID', '')}@{env['MASTER_ADDR']}:{env.get('MASTER_PORT', '')}"


def read_holder(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """What the lock file of `folder` says about its (last) holder, or None when it says nothing readable."""
    try:
        text = (Path(folder) / LOCK_FILE).read_text(encoding="utf-8")
        holder = json.loads(text)
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def _busy_message(folder: Path, holder: dict[str, Any] | None) -> str:
    if holder is None:
        who = "another process"
    else:
        who = f"PID {holder.get('pid')}"
        if holder.get("host") and holder.get("host") != socket.gethostname():
            who += f" on {holder['host']}"
        who += f" ({holder.get('command', '?')})"
    return f"{folder} is in use by {who}; wait for it to finish, pass --wait, or choose another output folder"


def _holder_info(command: str) -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": command,
        "job": _job_key(),
        "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _pid_alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, under another user
        return True
    return True


def command_line() -> str:
    """This process's command line as a user would type it: `videorecap caption a.mp4 -o out`."""
    argv = list(sys.argv)
    if argv and Path(argv[0]).name in ("__main__.py", "-m", "-c"):
        argv[0] = "videorecap"
    elif argv:
        argv[0] = Path(argv[0]).name
    return shlex.join(argv) if argv else f"python (pid {os.getpid()})"


@contextlib.contextmanager
def output_lock(
    folder: str | os.PathLike[str], command: str | None = None, *, wait: bool = False, clean: bool = True
) -> Iterator[Path]:
    """Hold the lock of the output folder `folder` (created if missing) for the body of the `with`.

    Args:
        folder: the output folder.
        command: what holds it, shown to a second job (default: this process's command line).
        wait: wait for the holder to finish instead of raising.
        clean: delete the leftovers of interrupted writes in `folder` once the lock is held.

    Raises:
        FolderBusyError: another job holds the folder and `wait` is false (exit code 2, one line naming it).
    """
    folder = make_output_folder(folder)
    job = _job_key()
    if job is not None and distributed.rank_world()[0] > 0:
        _wait_for_rank0(folder, job, wait)
        yield folder
        return
    path = folder / LOCK_FILE
    f = _open_lock_file(path)
    try:
        announced = False
        while True:
            while not _try_lock(f):
                if not wait:
                    raise FolderBusyError(_busy_message(folder, read_holder(folder)))
                if not announced:
                    logger.warning("%s; waiting", _busy_message(folder, read_holder(folder)).split(";")[0])
                    announced = True
                time.sleep(_POLL_SECONDS)
            if _is_current(f, path):
                break
            # the holder we waited for removed the file (and perhaps the folder) as it left, having written nothing
            # there: a lock on the removed file would exclude nobody, so lock the file now at that path
            f.close()
            make_output_folder(folder)
            f = _open_lock_file(path)
        f.seek(0)
        f.truncate()  # a note left by an earlier holder no longer holds
        f.flush()
        if clean:
            # before announcing ourselves: the other ranks of a torchrun job start after this. They may have started
            # already on a stale note of a same-named earlier job, so in a shared job only what is older than this
            # process is a leftover (a younger file may be a rank's write in progress; it goes next time if stale)
            fileio.clean_leftovers(folder, before=None if job is None else _process_start())
        f.write((json.dumps(_holder_info(command or command_line())) + "\n").encode("utf-8"))
        f.flush()
        try:
            yield folder
        finally:
            with contextlib.suppress(OSError):
                if job is None:  # the folder is free: say nothing about a holder that has gone
                    f.seek(0)
                    f.truncate()
                    f.flush()
                    _remove_if_unused(folder, path)
                # in a torchrun job the note stays: a rank that starts after rank 0 has finished still finds it
                _unlock(f)
    finally:
        f.close()


# Output folders this process created (`make_output_folder`): a job that writes nothing in one (every video failed, a
# live source that never opened) removes it again, instead of leaving a folder that holds only the lock file.
_MADE: set[str] = set()


def make_output_folder(folder: str | os.PathLike[str]) -> Path:
    """Create the output folder `folder` (with its parents) if missing, and return it. `output_lock` removes a folder
    made here again when the job it holds leaves nothing in it. Raises OSError as `Path.mkdir` does."""
    folder = Path(folder)
    if not folder.is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        _MADE.add(os.path.abspath(folder))
    return folder


def _open_lock_file(path: Path) -> IO[bytes]:
    # "a+b": create when missing, never truncate (the holder's PID must stay readable to a second job)
    try:
        return open(path, "a+b")  # noqa: SIM115 - held open for the body of the `with`
    except OSError as e:
        raise InputError(f"{path}: cannot open the output folder's lock file ({e.strerror or e})") from None


def _is_current(f: IO[bytes], path: Path) -> bool:
    """Whether the locked file `f` is still the one at `path` (a holder that leaves an unused folder removes it)."""
    try:
        return os.path.samestat(os.fstat(f.fileno()), os.stat(path))
    except OSError:
        return False


def _remove_if_unused(folder: Path, path: Path) -> None:
    """A job that wrote nothing in `folder`: remove its lock file, still locked (a process waiting on it then sees
    that it is gone, `_is_current`), and the folder itself when this process created it. Where an open file cannot
    be removed (Windows), the lock file stays."""
    try:
        if os.listdir(folder) != [LOCK_FILE]:
            return
        path.unlink()
    except OSError:  # the lock is still released by the caller
        return
    if os.path.abspath(folder) in _MADE:
        with contextlib.suppress(OSError):
            folder.rmdir()
        _MADE.discard(os.path.abspath(folder))


@contextlib.contextmanager
def file_lock(path: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an OS lock on the file `path` (created if missing) for the body of the `with`, waiting while another
    process holds it: for work that several processes may start at once and one should do (a compile into a shared
    cache). Released by the operating system however the holder ends."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as f:
        while not _try_lock(f):
            time.sleep(_POLL_SECONDS)
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                _unlock(f)


def _process_start() -> float:
    """When this process started (seconds since the epoch): Linux's /proc, else when this module was imported."""
    try:
        with open("/proc/self/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22, starttime, in clock ticks since boot
        with open("/proc/stat") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith("btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration, AttributeError):
        return _IMPORTED


def _wait_for_rank0(folder: Path, me: str, wait: bool) -> None:
    """A torchrun rank > 0: go on once rank 0 of this job has taken the lock (it may have finished already: its
    note stays); stop if another job holds it."""
    deadline = time.monotonic() + _RANK0_TIMEOUT_SECONDS
    while True:
        holder = read_holder(folder)
        if holder is not None and holder.get("job") == me:
            return
        other = holder is not None and (holder.get("host") != socket.gethostname() or _pid_alive(holder.get("pid")))
        if other and not wait:
            raise FolderBusyError(_busy_message(folder, holder))
        if not wait and time.monotonic() > deadline:
            raise FolderBusyError(f"{folder}: rank 0 of this torchrun job did not take the folder's lock in time")
        time.sleep(_POLL_SECONDS)
