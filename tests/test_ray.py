"""`videorecap features|caption --ray` on a real local Ray cluster, and the CLI without Ray installed.

The cluster test starts a head and a worker node as separate `ray start --block` processes (each in a session of
its own, with its files in a temp dir), runs the jobs through them as a user would (`--ray=ADDRESS`), compares
every output file with a single-process run, and kills the worker node (SIGKILL to every process of its session:
raylet, actors, tasks) in the middle of a job. Teardown ends the processes of those two sessions only, so nothing
else on the machine is touched (`ray stop` would stop every Ray on it).

Without Ray (`pip install 'videorecap[ray]'`) the cluster test skips, saying what to install;
`VIDEORECAP_REQUIRE_RAY=1` (set by .ci/run after it installs the extra) turns that skip into a failure.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from videorecap.video.testing import make_video

SRC = Path(__file__).resolve().parents[1] / "src"
REQUIRE_ENV = "VIDEORECAP_REQUIRE_RAY"


def _env(**extra: str) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH", "")) if p)
    # token authentication is for clusters across machines (docs/ray.md); this one listens on 127.0.0.1 only
    env = dict(os.environ, PYTHONPATH=path, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", RAY_AUTH_MODE="disabled",
               RAY_USAGE_STATS_ENABLED="0")  # fmt: skip
    return {**env, **extra}


def _cli(*args: object, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "videorecap", *map(str, args)], capture_output=True, text=True,
                          env=env or _env(), timeout=timeout)  # fmt: skip


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four tiny videos of different lengths (3 to 12 windows of 4 s)."""
    d = tmp_path_factory.mktemp("videos")
    for i, seconds in enumerate((30, 47, 12, 38)):
        make_video(d / f"v{i}.mp4", duration=seconds, fps=2, size=(32, 24))
    return d


# ---- without Ray -------------------------------------------------------------------------------------------------
def test_without_ray_installed_ray_is_one_line_and_exit_2(videos: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "blocker" / "ray"  # an installed-looking `ray` that cannot be imported
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('No module named ray (blocked by the test)')\n")
    env = _env(PYTHONPATH=os.pathsep.join([str(blocker.parent), str(SRC)]))
    for cmd in (["features", videos, "-o", tmp_path / "f", "--random-encoder", "recap-tiny", "--ray"],
                ["caption", videos, "--model", "recap-synth", "-o", tmp_path / "c", "--ray=127.0.0.1:1"]):  # fmt: skip
        r = _cli(*cmd, "--no-progress", env=env)
        assert r.returncode == 2, r.stderr
        lines = r.stderr.strip().splitlines()
        assert lines == [f"videorecap {cmd[0]}: error: --ray needs Ray Data, which is not installed: "
                         "pip install 'videorecap[ray]'"], r.stderr  # fmt: skip


def test_without_ray_the_package_never_imports_it(videos: Path, tmp_path: Path) -> None:
    video = str(videos / "v2.mp4")
    code = (
        "import sys\n"
        "from videorecap.cli import main\n"
        f"assert main(['features', {video!r}, '-o', {str(tmp_path / 'f')!r}, '--random-encoder', 'recap-tiny',"
        " '--no-progress']) == 0\n"
        f"assert main(['caption', {video!r}, '--model', 'recap-synth', '-o', {str(tmp_path / 'c')!r},"
        " '--no-progress']) == 0\n"
        "try:\n    main(['features', '--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
        "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=600)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "[]"


def test_ray_options_are_checked_before_anything_runs(videos: Path, tmp_path: Path) -> None:
    r = _cli("features", videos, "-o", tmp_path / "f", "--random-encoder", "recap-tiny", "--ray-actors", "2")
    assert r.returncode == 2 and r.stderr.strip() == "videorecap features: error: --ray-actors needs --ray", r.stderr


# ---- a real cluster: a head and a worker node ----------------------------------------------------------------------
def _free_port() -> int:
    # the OS's ephemeral range, above Ray's worker ports (10002-19999)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _session(sid: int) -> list[int]:
    """The processes of session `sid` (a node's `ray start` and everything it started: Ray does not leave it)."""
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state ppid pgrp session ...
            if int(fields[3]) == sid and fields[0] != "Z":
                pids.append(int(d.name))
    return pids


def _titles(pids: list[int]) -> list[str]:
    out = []
    for pid in pids:
        try:
            out.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            pass
    return out


def _kill_session(sid: int, sig: int) -> None:
    for pid in _session(sid):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


class Cluster:
    def __init__(self, root: Path, env: dict[str, str] | None = None) -> None:
        self.root = root
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.nodes: dict[str, subprocess.Popen] = {}
        self.cache = root / "cache"  # the nodes' $VIDEORECAP_CACHE_DIR (--compile's packages)
        self.env = env or {}  # more of the nodes' environment (their actors inherit it)

    def start(self, name: str, *args: str) -> None:
        log = open(self.root / f"{name}.log", "w")  # noqa: SIM115 - the node's whole life
        cmd = [str(Path(sys.executable).parent / "ray"), "start", "--block", "--num-cpus=2", "--disable-usage-stats",
               "--object-store-memory=100000000", f"--dashboard-agent-listen-port={_free_port()}",
               "--node-ip-address=127.0.0.1", *args]  # fmt: skip
        env = _env(VIDEORECAP_CACHE_DIR=str(self.cache), **self.env)
        self.nodes[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.root,
                                            start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + 120
        while "Ray runtime started" not in (self.root / f"{name}.log").read_text():
            if self.nodes[name].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ray node {name} did not start:\n{(self.root / f'{name}.log').read_text()}")
            time.sleep(0.2)

    def kill(self, name: str) -> None:
        _kill_session(self.nodes[name].pid, signal.SIGKILL)
        self.nodes[name].wait(timeout=30)

    def stop(self) -> None:
        for p in self.nodes.values():
            _kill_session(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while any(_session(p.pid) for p in self.nodes.values()) and time.monotonic() < deadline:
            time.sleep(0.2)
        for p in self.nodes.values():
            _kill_session(p.pid, signal.SIGKILL)
            p.wait(timeout=30)


def _need_ray() -> None:
    if importlib.util.find_spec("ray") is None:
        why = "the Ray tests need the ray extra: pip install 'videorecap[ray]'"
        if os.environ.get(REQUIRE_ENV, "") not in ("", "0"):
            pytest.fail(f"{why} ({REQUIRE_ENV} is set)")
        pytest.skip(why)


def test_an_address_where_no_ray_answers_is_one_line_at_once(videos: Path, tmp_path: Path) -> None:
    _need_ray()
    port = _free_port()  # closed again: nothing listens there
    r = _cli("features", videos, "-o", tmp_path / "f", "--random-encoder", "recap-tiny", f"--ray=127.0.0.1:{port}",
             timeout=120)  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [
        f"videorecap features: error: --ray 127.0.0.1:{port}: no Ray head answers there (Connection refused); start "
        "one with `ray start --head` or check the address"
    ]


@contextlib.contextmanager
def _cluster(workers: int, env: dict[str, str] | None = None) -> Iterator[Cluster]:
    """A head node and `workers` worker nodes, their processes ended on the way out."""
    _need_ray()
    # a short path: Ray's unix sockets live under it, and a socket path has at most 107 bytes
    root = Path(tempfile.mkdtemp(prefix="vr-ray-", dir="/tmp"))
    c = Cluster(root, env)
    try:
        c.start("head", "--head", f"--port={c.port}", "--include-dashboard=false", f"--temp-dir={root}")
        for i in range(workers):
            c.start(f"worker{i or ''}", f"--address={c.address}")
        yield c
    finally:
        c.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with _cluster(workers=1) as c:
        yield c


def _files(root: Path) -> dict[str, bytes]:
    """Every file under `root` by relative path (the lock file, which holds a PID, left out)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != ".videorecap.lock"}  # fmt: skip


@pytest.mark.slow
def test_caption_on_a_cluster_writes_what_one_process_writes(cluster: Cluster, videos: Path, tmp_path: Path) -> None:
    common = ["--model", "recap-synth", "--batch-size", "2", "--no-progress"]
    ref = _cli("caption", videos, "-o", tmp_path / "one", *common)
    assert ref.returncode == 0, ref.stderr
    r = _cli("caption", videos, "-o", tmp_path / "ray", *common, f"--ray={cluster.address}")
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    assert r.stdout.splitlines()[-1] == f"4 of 4 videos captioned into {tmp_path / 'ray'}"
    one, ray = _files(tmp_path / "one"), _files(tmp_path / "ray")
    assert sorted(one) == sorted(ray) and len(one) >= 4 * 6
    assert [k for k in one if one[k] != ray[k]] == []  # captions, pages, subtitles and the cache, byte for byte


@pytest.mark.slow
def test_features_on_a_cluster_survive_a_killed_worker_node(cluster: Cluster, videos: Path, tmp_path: Path) -> None:
    common = ["--encoder", "recap-synth", "--batch-size", "2", "--chunk-windows", "4", "--no-progress"]
    ref = _cli("features", videos, "-o", tmp_path / "one", *common)
    assert ref.returncode == 0, ref.stderr
    out = tmp_path / "ray"
    job = subprocess.Popen([sys.executable, "-m", "videorecap", "features", videos, "-o", out, *common,
                            f"--ray={cluster.address}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env=_env())  # fmt: skip
    # kill the worker node once it runs part of the job (a decode task or a model actor), before the job ends
    deadline = time.monotonic() + 300
    while not any("MapBatches" in t or "MapWorker" in t for t in _titles(_session(cluster.nodes["worker"].pid))):
        assert job.poll() is None, job.communicate()
        assert time.monotonic() < deadline, "the worker node never got work"
        time.sleep(0.05)
    done_before = sorted(p.name for p in out.glob("*.npy"))
    cluster.kill("worker")
    stdout, stderr = job.communicate(timeout=600)
    assert job.returncode == 0, stderr
    assert len(done_before) < 4, "the job had finished before the worker was killed"
    # every video done exactly once (by the driver), and the outputs are those of one process (Ray's own lines
    # about the lost node come before the summary)
    assert _summary(stdout) == "4 done, 0 skipped (already there), 0 failed of 4", stdout
    one, ray = _files(tmp_path / "one"), _files(out)
    assert sorted(one) == sorted(ray) == [".videorecap-features.json", "v0.npy", "v1.npy", "v2.npy", "v3.npy"]
    assert [k for k in one if one[k] != ray[k]] == []

    # a rerun (on what is left of the cluster) finds everything done
    again = _cli("features", videos, "-o", out, *common, f"--ray={cluster.address}")
    assert again.returncode == 0, again.stderr
    assert _summary(again.stdout) == "0 done, 4 skipped (already there), 0 failed of 4", again.stdout
    assert _files(out) == ray

    # the driver killed part-way: a rerun takes what was written (outputs, chunks) and ends with the same files
    out = tmp_path / "killed"
    job = subprocess.Popen([sys.executable, "-m", "videorecap", "features", videos, "-o", out, *common,
                            f"--ray={cluster.address}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           text=True, env=_env())  # fmt: skip
    while not list(out.glob(".chunks/*/*.npz")) and not list(out.glob("*.npy")):
        assert job.poll() is None, job.communicate()
        time.sleep(0.02)
    job.kill()
    job.communicate(timeout=60)
    assert len(list(out.glob("*.npy"))) < 4
    resumed = _cli("features", videos, "-o", out, *common, f"--ray={cluster.address}")
    assert resumed.returncode == 0, resumed.stderr
    done, skipped = (int(w) for w in _summary(resumed.stdout).split()[:3:2])
    assert done + skipped == 4, resumed.stdout
    assert _files(out) == one


def _need_compiler() -> None:
    from videorecap.compiled import cpp_compiler

    if cpp_compiler() is None:
        why = "--compile needs a C++ compiler, which was not found: apt-get install -y g++"
        if os.environ.get("VIDEORECAP_REQUIRE_COMPILER", "") not in ("", "0"):
            pytest.fail(f"{why} (VIDEORECAP_REQUIRE_COMPILER is set)")
        pytest.skip(why)


@pytest.mark.slow
def test_compile_on_a_cluster_loads_the_package_and_writes_what_one_process_writes(
    cluster: Cluster, videos: Path, tmp_path: Path
) -> None:
    _need_compiler()
    env = _env(VIDEORECAP_CACHE_DIR=str(cluster.cache))  # the cache the nodes' actors use
    runs = {"features": ["--encoder", "recap-synth", "--chunk-windows", "4"], "caption": ["--model", "recap-synth"]}
    package = None
    for command, model in runs.items():
        common = [*model, "--batch-size", "2", "--no-progress", "--compile"]
        ref = _cli(command, videos, "-o", tmp_path / f"{command}-one", *common, env=env)
        assert ref.returncode == 0, ref.stderr
        if package is None:  # the first single-process run compiled the encoder into the nodes' cache
            (package,) = cluster.cache.glob("compiled/*.pt2")
            # a compile replaces the file (a new inode) and its .json; a load only renews the date (os.utime)
            built = (package.stat().st_ino, package.with_suffix(".json").stat().st_mtime_ns)
        r = _cli(command, videos, "-o", tmp_path / f"{command}-ray", *common, f"--ray={cluster.address}", env=env)
        assert r.returncode == 0, r.stderr
        assert "Traceback" not in r.stderr and "compiling the video encoder" not in r.stderr + r.stdout
        one, ray = _files(tmp_path / f"{command}-one"), _files(tmp_path / f"{command}-ray")
        assert sorted(one) == sorted(ray) and [k for k in one if one[k] != ray[k]] == [], command
    # the actors loaded the package the single process made (none compiled it again)...
    assert [(p.stat().st_ino, p.with_suffix(".json").stat().st_mtime_ns)
            for p in cluster.cache.glob("compiled/*.pt2")] == [built]  # fmt: skip
    # ...and ran it: the features of the uncompiled encoder differ from theirs in the last bits
    plain = _cli("features", videos, "-o", tmp_path / "plain", *runs["features"], "--batch-size", "2", env=env)
    assert plain.returncode == 0, plain.stderr
    assert (tmp_path / "plain" / "v1.npy").read_bytes() != (tmp_path / "features-ray" / "v1.npy").read_bytes()


def _summary(stdout: str) -> str:
    """`features`' summary line, from "N done" to "of N"."""
    line = [x for x in stdout.splitlines() if x.startswith("[ray: ")][-1]
    return line[line.index("] ") + 2 : line.index(" |")]


@pytest.mark.slow
def test_an_actor_whose_model_does_not_load_stops_the_job_with_one_line(videos: Path, tmp_path: Path) -> None:
    # The driver's machine has a C++ compiler and the cluster's node has none ($CXX names no program there): the
    # driver's checks pass, the actors' models do not load. A user sees one line naming the machine and the reason,
    # not Ray's traceback of every actor's attempt.
    _need_compiler()
    missing = str(tmp_path / "no-such-c++")
    env = _env(VIDEORECAP_CACHE_DIR=str(tmp_path / "cache"))
    models = {"features": ["--encoder", "recap-synth"], "caption": ["--model", "recap-synth"]}
    with _cluster(workers=0, env={"CXX": missing}) as c:
        for command, model in models.items():
            r = _cli(command, videos, "-o", tmp_path / command, *model, "--batch-size", "2", "--no-progress",
                     "--compile", f"--ray={c.address}", env=env)  # fmt: skip
            assert r.returncode == 2, r.stderr
            assert "Traceback" not in r.stderr and "InputError" not in r.stderr, r.stderr
            assert r.stderr.strip().splitlines()[-1] == (
                f"videorecap {command}: error: --ray: a model actor could not start on {socket.gethostname()}: "
                f"--compile: $CXX is {missing!r}, which is not a program on PATH; set it to a C++ compiler (g++ or "
                "clang++) or unset it. What was finished is kept: fix that machine (or run without it) and run again "
                "to resume"
            ), r.stderr
