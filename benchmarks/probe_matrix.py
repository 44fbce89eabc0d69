"""The reliability matrix of issue 14: probe the CLI as an unlucky user and as an attacker, print one table.

Every probe is a subprocess `python -m videorecap ...` in a folder of its own (its sandbox; `-o` is `out/` inside it),
on tiny synthetic inputs rendered once into the scratch folder. Categories:

- kill:       `kill -9` of caption / features / train at a random moment, then the same command again: the resumed
              output must equal an uninterrupted run (files hashed as `check_identical.py` does: tensors and values,
              not run facts such as wall times).
- concurrent: two runs on one output folder at once (same settings, and different settings): each must either
              finish or refuse cleanly, and the folder must then hold exactly one run's outputs.
- disk-full:  `-o` on a small tmpfs (`mount -t tmpfs -o size=...`, needs root; skipped with a note otherwise).
- malicious:  pickle payloads in .pkl annotations, a train_state.pt and a .pth to convert, hostile YAML recipes
              (python tags, an alias bomb), a deeply nested config.json, markup in a video name, path-like names
              (`...mp4`, a newline, non-UTF-8 bytes, 250 characters).
- hostile-video: truncated, corrupt middle, a Matroska file that declares 10,000 h, zero bytes, audio only, not a
              video, through `caption` and `features`.
- bad-args:   from every command's argument parser (the one `--help` prints): each numeric option with NaN, 0,
              -1, 1e308 and a word; each path option with a missing path, a file where a folder is expected, and
              /proc/x; added to a command line that is otherwise valid.

Columns: probes; ok (exit 0); clean errors (exit 1 or 2 and one line on stderr besides warnings); tracebacks
("Traceback (most recent call last)" on stderr); other (a timeout, another exit code, a multi-line error); data lost
(a resumed or concurrent run whose outputs are missing or differ from an uninterrupted one); outputs mixed (a folder
holding files of two runs); files outside -o; leftovers (temp files outside `.cache` after the last run); code ran
(a payload's marker file appeared, or markup from a name reached the page); peak RSS of the largest probe.

Run from the repository root:  python benchmarks/probe_matrix.py [--quick] [--work DIR] [--jobs N] [--log FILE]
--quick (1 kill per command, 2 concurrent pairs, 2 disk-full cases, hostile videos through caption only, 16 bad
arguments) took 6.6 min wall, 3.3 min CPU, on 2 cores shared with other jobs (about 5 s of it per probe is Python and
torch starting). The default mode (9 kills, 3 pairs twice, 7 disk-full cases, caption and features, 100 of the ~310
bad arguments; --args -1 for all) has not been timed: about 2-3 times --quick.
Probes run with an address-space limit (--mem-limit-gb, 8 by default), so a probe that tries to allocate the machine
fails (and is reported) instead of taking it down.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import itertools
import json
import os
import random
import re
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_identical import TRAIN_RECIPE, _bundled, _digest  # noqa: E402  (one way to hash outputs)

TRACEBACK = "Traceback (most recent call last)"
COLUMNS = ["probes", "ok", "clean err", "traceback", "other", "data lost", "mixed", "outside -o", "leftovers",
           "code ran", "peak RSS MB"]  # fmt: skip
LOG: list[dict[str, object]] = []  # every run, for --log
CATEGORIES = ["kill", "concurrent", "disk-full", "malicious", "hostile-video", "bad-args"]


# ---- running one probe ------------------------------------------------------------------------------------------
@dataclass
class Outcome:
    rc: int | None  # None: killed by us (a kill probe) or timed out
    stderr: str
    seconds: float
    rss_mb: float
    timed_out: bool = False


@dataclass
class Row:
    counts: dict[str, float] = field(default_factory=lambda: dict.fromkeys(COLUMNS, 0))
    notes: list[str] = field(default_factory=list)


class Runner:
    def __init__(self, work: Path, mem_gb: float, timeout: float) -> None:
        self.work, self.mem_gb, self.timeout = work, mem_gb, timeout
        self.env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
        self._n = itertools.count(1)

    def sandbox(self, name: str) -> Path:
        box = self.work / "probes" / f"{next(self._n):04d}-{name}"
        shutil.rmtree(box, ignore_errors=True)
        box.mkdir(parents=True)
        return box

    def _limits(self) -> None:
        os.setsid()  # its own process group, so a kill reaches the data loader workers too
        if self.mem_gb > 0:
            limit = int(self.mem_gb * 2**30)
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    def start(self, args: list[str], cwd: Path) -> tuple[subprocess.Popen, Path]:
        err = Path(tempfile.mkstemp(prefix="stderr-", dir=self.work)[1])
        cmd = [sys.executable, "-m", "videorecap", *args]
        with err.open("wb") as e:
            p = subprocess.Popen(cmd, cwd=cwd, env=self.env, stdout=subprocess.DEVNULL, stderr=e,
                                 stdin=subprocess.DEVNULL, preexec_fn=self._limits)  # fmt: skip
        return p, err

    def wait(self, p: subprocess.Popen, err: Path, t0: float, timeout: float | None = None,
             kill_after: float | None = None) -> Outcome:  # fmt: skip
        """Wait for `p` (os.wait4, for its peak RSS); SIGKILL its group after `kill_after` s or at the timeout."""
        deadline = t0 + (timeout or self.timeout)
        killed = timed_out = False
        while True:
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            now = time.monotonic()
            if (kill_after is not None and now - t0 >= kill_after) or now >= deadline:
                timed_out = kill_after is None or now >= deadline
                killed = True
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                pid, status, usage = os.wait4(p.pid, 0)
                break
            time.sleep(0.05)
        p.returncode = os.waitstatus_to_exitcode(status)
        stderr = err.read_text(encoding="utf-8", errors="replace")
        err.unlink()
        rc = None if killed else p.returncode
        return Outcome(rc, stderr, time.monotonic() - t0, usage.ru_maxrss / 1024, timed_out=timed_out)

    def run(self, args: list[str], cwd: Path, timeout: float | None = None) -> Outcome:
        t0 = time.monotonic()
        p, err = self.start(args, cwd)
        return self.wait(p, err, t0, timeout)


def _error_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.strip() and ": warning:" not in ln]


def classify(o: Outcome, row: Row, what: str) -> str:
    """Count one finished run in its row: ok, clean error, traceback or other. Returns the kind."""
    c = row.counts
    c["probes"] += 1
    c["peak RSS MB"] = max(c["peak RSS MB"], round(o.rss_mb))
    if TRACEBACK in o.stderr:
        kind = "traceback"
        last = [ln for ln in o.stderr.splitlines() if ln.strip()][-1:]
        row.notes.append(f"traceback: {what}: {last[0][:150] if last else ''}")
    elif o.rc == 0:
        kind = "ok"
    elif o.rc in (1, 2) and len(_error_lines(o.stderr)) == 1:
        kind = "clean err"
    else:
        kind = "other"
        why = "timeout" if o.timed_out else f"exit {o.rc}, {len(_error_lines(o.stderr))} stderr lines"
        row.notes.append(f"other: {what}: {why}: {(_error_lines(o.stderr) or [''])[-1][:120]}")
    c[kind] += 1
    LOG.append({"what": what, "kind": kind, "rc": o.rc, "seconds": round(o.seconds, 1), "rss_mb": round(o.rss_mb),
                "stderr": o.stderr[-600:]})  # fmt: skip
    return kind


# ---- what a run left behind ---------------------------------------------------------------------------------------
def snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")} if root.exists() else set()


def outside(box: Path, before: set[str], out_names: tuple[str, ...] = ("out",)) -> list[str]:
    """New paths in the sandbox that are not under one of its output folders."""
    new = snapshot(box) - before
    return sorted(p for p in new if p.split(os.sep, 1)[0] not in out_names and not p.startswith("stderr-"))


def leftovers(out: Path) -> list[str]:
    """Temp files of interrupted writes outside the resumable store."""
    found = []
    for p in out.rglob("*") if out.exists() else []:
        rel = p.relative_to(out)
        if ".cache" in rel.parts:
            continue
        if p.name.endswith((".tmp", ".partial")) or ".tmp" in p.name or p.name.startswith(".tmp"):
            found.append(str(rel))
    return found


def fingerprint(out: Path, root: Path) -> dict[str, str]:
    """Hashes of a run's outputs (not logs, not the resumable store, whose names hash absolute paths)."""
    sums = {}
    for f in sorted(out.rglob("*")) if out.exists() else []:
        rel = f.relative_to(out)
        if not f.is_file() or ".cache" in rel.parts or f.name.endswith(".log") or f.name.startswith("."):
            continue
        if f.name in ("store.json", ".evaluate-state.json"):
            continue
        name = re.sub(r"-[0-9a-f]{12}(?=/)", "-<hash>", rel.as_posix())  # as check_identical: hashed folder names
        try:
            sums[name] = _digest(f, root)
        except Exception as e:  # an unreadable output is a difference, not a crash of the matrix
            sums[name] = f"unreadable: {type(e).__name__}"
    return sums


def differs(a: dict[str, str], b: dict[str, str]) -> str:
    missing, extra = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    changed = sorted(k for k in set(a) & set(b) if a[k] != b[k])
    if not (missing or extra or changed):
        return ""
    return f"missing {missing[:3]} extra {extra[:3]} changed {changed[:3]}"


# ---- inputs -------------------------------------------------------------------------------------------------------
@dataclass
class Inputs:
    data: Path
    model: Path
    video: Path  # one synthetic video
    videos: Path  # a folder with that one video
    recipe: Path
    hostile: dict[str, Path]
    missing: Path  # a path that does not exist
    pred: Path  # a small captions.json, for `score`


def _make_video(path: Path, seconds: float, audio_only: bool = False) -> None:
    import av
    import numpy as np

    with av.open(str(path), "w") as c:
        if audio_only:
            s = c.add_stream("aac", rate=16000)
            s.layout = "mono"
            t = 0
            for _ in range(int(seconds * 16000 / 1024)):
                frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
                frame.rate, frame.pts = 16000, t
                t += 1024
                for pkt in s.encode(frame):
                    c.mux(pkt)
            for pkt in s.encode():
                c.mux(pkt)
            return
        s = c.add_stream("mpeg4", rate=10)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for i in range(int(seconds * 10)):
            img = np.full((48, 64, 3), (i * 7) % 255, np.uint8)
            for pkt in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)


def make_inputs(run: Runner, work: Path) -> Inputs:
    data = work / "data"
    if not (data / "world.json").exists():
        box = run.sandbox("setup-synth")
        o = run.run(["synth", "make", "-o", str(data), "--videos", "3", "--minutes", "0.5", "--segment-seconds", "20",
                     "--no-progress"], box, timeout=600)  # fmt: skip
        if o.rc != 0:
            raise SystemExit(f"could not render the synthetic inputs:\n{o.stderr[-2000:]}")
    video = sorted((data / "videos").glob("*.mp4"))[0]
    videos = work / "one-video"
    videos.mkdir(exist_ok=True)
    if not (videos / video.name).exists():
        shutil.copy(video, videos / video.name)
    import yaml

    recipe = work / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({**TRAIN_RECIPE, "output_dir": "out"}))

    hv = work / "hostile-videos"
    hv.mkdir(exist_ok=True)
    raw = video.read_bytes()
    (hv / "truncated.mp4").write_bytes(raw[: len(raw) * 2 // 5])
    mid = bytearray(raw)
    rng = random.Random(0)
    for i in range(len(mid) * 2 // 5, len(mid) * 3 // 5):
        mid[i] = rng.randrange(256)
    (hv / "corrupt-middle.mp4").write_bytes(bytes(mid))
    (hv / "zero.mp4").write_bytes(b"")
    (hv / "not-a-video.mp4").write_text("this is a text file\n" * 100)
    _make_video(hv / "audio-only.m4a", 4.0, audio_only=True)
    _make_video(hv / "huge-duration.mkv", 10.0)
    mkv = bytearray((hv / "huge-duration.mkv").read_bytes())
    at = mkv.find(b"\x44\x89\x88")  # Matroska Duration: ID 0x4489, 8-byte float, in timecode units (1 ms)
    if at >= 0:
        mkv[at + 3 : at + 11] = struct.pack(">d", 10_000 * 3600 * 1000.0)
        (hv / "huge-duration.mkv").write_bytes(bytes(mkv))
    else:
        (hv / "huge-duration.mkv").unlink()
    hostile = {p.stem: p for p in sorted(hv.iterdir())}
    from videorecap.results import Caption, CaptionResult, VideoMeta

    clips = [Caption(0.0, 4.0, "C picks a cup"), Caption(4.0, 8.0, "C opens a door")]
    pred = CaptionResult(video=VideoMeta("v", "v.mp4", 8.0, 10.0, 64, 48), clips=clips, model={"name": "x"})
    pred_path = pred.save(work / "pred.json")
    return Inputs(data, _bundled(), video, videos, recipe, hostile, work / "no-such-path", pred_path)


# ---- the categories -----------------------------------------------------------------------------------------------
def _commands(inp: Inputs) -> dict[str, list[str]]:
    """A valid command line per resumable command, writing into `out` (relative to the sandbox)."""
    return {
        "caption": ["caption", str(inp.video), "--model", str(inp.model), "-o", "out", "--no-progress"],
        "features": [
            "features",
            str(inp.videos),
            "-o",
            "out",
            "--encoder",
            str(inp.model / "clip"),
            "--all-tokens",
            "--no-progress",
            "--chunk-windows",
            "2",
        ],  # fmt: skip
        "train": [
            "train",
            str(inp.recipe),
            "--data-root",
            str(inp.data),
            "--output-dir",
            "out",
            "--max-steps",
            "2",
            "--device",
            "cpu",
            "--no-progress",
        ],  # fmt: skip
    }


def probe_kill(run: Runner, inp: Inputs, trials: dict[str, int], rng: random.Random) -> Row:
    row = Row()
    for name, cmd in _commands(inp).items():
        box = run.sandbox(f"kill-ref-{name}")
        ref = run.run(cmd, box, timeout=900)
        if ref.rc != 0:
            classify(ref, row, f"uninterrupted {name}")
            row.notes.append(f"kill {name}: the uninterrupted run failed, no kill trials")
            continue
        want = fingerprint(box / "out", box)
        startup = run.run(["--version"], box).seconds  # kills before the imports are done test nothing
        for k in range(trials[name]):
            box = run.sandbox(f"kill-{name}-{k}")
            before = snapshot(box)
            at = rng.uniform(min(startup, ref.seconds * 0.5), ref.seconds * 0.95)
            t0 = time.monotonic()
            p, err = run.start(cmd, box)
            first = run.wait(p, err, t0, timeout=900, kill_after=at)
            if first.rc is not None:  # it finished before the kill: still a valid probe of a complete run
                row.notes.append(f"kill {name}: finished before the kill at {at:.1f} s")
            o = run.run(cmd, box, timeout=900)
            classify(o, row, f"{name} resumed after kill at {at:.1f} s")
            got = fingerprint(box / "out", box)
            diff = differs(want, got) if o.rc == 0 else "the resumed run failed"
            if diff:
                row.counts["data lost"] += 1
                row.notes.append(f"data lost: {name} killed at {at:.1f} s: {diff}")
            left = leftovers(box / "out")
            row.counts["leftovers"] += bool(left)
            if left:
                row.notes.append(f"leftovers: {name} killed at {at:.1f} s: {left[:3]}")
            row.counts["outside -o"] += bool(outside(box, before))
    return row


def probe_concurrent(run: Runner, inp: Inputs, quick: bool) -> Row:
    row = Row()
    cmds = _commands(inp)
    pairs = {
        "caption same settings": (cmds["caption"], cmds["caption"]),
        "caption greedy vs beam": (cmds["caption"], [*cmds["caption"], "--strategy", "beam", "--num-beams", "2"]),
    }
    if not quick:
        pairs["features same settings"] = (cmds["features"], cmds["features"])
    refs: dict[tuple[str, ...], dict[str, str]] = {}
    for a, b in pairs.values():
        for cmd in (a, b):
            if tuple(cmd) not in refs:
                box = run.sandbox("concurrent-ref")
                o = run.run(cmd, box, timeout=900)
                refs[tuple(cmd)] = fingerprint(box / "out", box) if o.rc == 0 else {}
    for _ in range(1 if quick else 2):
        for what, (a, b) in pairs.items():
            box = run.sandbox("concurrent")
            before = snapshot(box)
            t0 = time.monotonic()
            pa, ea = run.start(a, box)
            time.sleep(0.3)
            pb, eb = run.start(b, box)
            oa, ob = run.wait(pa, ea, t0, timeout=900), run.wait(pb, eb, t0, timeout=900)
            kinds = [classify(oa, row, f"{what} (first)"), classify(ob, row, f"{what} (second)")]
            got = fingerprint(box / "out", box)
            finished = [cmd for cmd, o in ((a, oa), (b, ob)) if o.rc == 0]
            if not finished:
                row.notes.append(f"{what}: neither run finished ({kinds})")
                continue
            matches = [cmd for cmd in finished if refs[tuple(cmd)] and not differs(refs[tuple(cmd)], got)]
            if not matches:
                other = [refs[tuple(c)] for c in (a, b) if refs[tuple(c)] and not differs(refs[tuple(c)], got)]
                if other:  # the folder holds the run that failed: the finished one's outputs are gone
                    row.counts["data lost"] += 1
                    row.notes.append(f"data lost: {what}: the folder holds the failed run's outputs")
                else:
                    row.counts["mixed"] += 1
                    row.notes.append(f"mixed: {what}: {differs(refs[tuple(finished[-1])], got)}")
            left = leftovers(box / "out")
            row.counts["leftovers"] += bool(left)
            if left:
                row.notes.append(f"leftovers: {what}: {left[:3]}")
            row.counts["outside -o"] += bool(outside(box, before))
    return row


def probe_disk_full(run: Runner, inp: Inputs, quick: bool) -> Row:
    row = Row()
    cmds = _commands(inp)
    cases = [("caption", 40), ("features", 300)]
    if not quick:
        cases += [("caption", 0), ("caption", 150), ("features", 0), ("train", 0), ("train", 600)]
    for name, free_kb in cases:
        box = run.sandbox(f"disk-{name}")
        disk = box / "disk"
        disk.mkdir()
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], capture_output=True)
        if mounted.returncode != 0:
            row.notes.append(f"skipped: cannot mount a tmpfs here ({mounted.stderr.decode().strip()[:100]})")
            return row
        try:
            st = os.statvfs(disk)
            fill = max(st.f_bavail * st.f_frsize - free_kb * 1024, 0)
            with (disk / "filler").open("wb") as f:
                f.write(b"\0" * fill)
            cmd = [a if a != "out" else str(disk / "out") for a in cmds[name]]
            o = run.run(cmd, box)
            kind = classify(o, row, f"{name} with {free_kb} KB free")
            if kind == "ok":
                row.notes.append(f"{name} with {free_kb} KB free: finished (it fit)")
            left = leftovers(disk / "out")
            row.counts["leftovers"] += bool(left)
            if left:
                row.notes.append(f"leftovers: {name} with {free_kb} KB free: {left[:3]}")
        finally:
            subprocess.run(["umount", "-l", str(disk)], capture_output=True)
    return row


def _start_tags(page: Path) -> list[str]:
    from html.parser import HTMLParser

    tags: list[str] = []
    parser = HTMLParser()
    parser.handle_starttag = lambda tag, attrs: tags.append(tag)  # type: ignore[method-assign]
    parser.feed(page.read_text(encoding="utf-8"))
    return tags


class _Payload:
    """Pickles to a call of os.system: unpickling it runs a shell command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def probe_malicious(run: Runner, inp: Inputs, jobs: int) -> Row:
    import pickle

    import torch

    row = Row()
    cases: list[tuple[str, Callable[[Path, Path], list[str]], str]] = []

    def pkl_annotations(box: Path, marker: Path) -> list[str]:
        data = box / "data"
        shutil.copytree(inp.data, data, symlinks=True, ignore=shutil.ignore_patterns("videos", "features"))
        for name in ("videos", "features"):
            if (inp.data / name).exists():
                (data / name).symlink_to(inp.data / name)
        for pkl in data.glob("*.pkl"):
            pkl.write_bytes(pickle.dumps([_Payload(marker)]))
        return ["evaluate", str(inp.model), str(data), "-o", "out", "--metrics", "cider", "--no-progress"]

    def pt_train_state(box: Path, marker: Path) -> list[str]:
        for stage in ("clip", "segment", "video"):
            (box / "out" / stage).mkdir(parents=True)
            torch.save({"step": 1, "x": _Payload(marker)}, box / "out" / stage / "train_state.pt")
        return _commands(inp)["train"]

    def pth_convert(box: Path, marker: Path) -> list[str]:
        torch.save({"state_dict": {"w": torch.zeros(1)}, "x": _Payload(marker)}, box / "released.pth")
        return ["convert", "official", "released.pth", "out"]

    def yaml_python_tag(box: Path, marker: Path) -> list[str]:
        (box / "recipe.yaml").write_text(f'kind: !!python/object/apply:os.system ["touch {marker}"]\nstages: []\n')
        return ["train", "recipe.yaml", "--output-dir", "out", "--device", "cpu"]

    def yaml_alias_bomb(box: Path, marker: Path) -> list[str]:
        lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
        lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
        (box / "recipe.yaml").write_text("\n".join(lines) + "\nkind: recap\nstages: *a8\n")
        return ["train", "recipe.yaml", "--output-dir", "out", "--device", "cpu"]

    def deep_json_config(box: Path, marker: Path) -> list[str]:
        ckpt = box / "ckpt"
        shutil.copytree(inp.model / "clip", ckpt)
        (ckpt / "config.json").write_text("[" * 200_000 + "]" * 200_000)
        return ["info", str(ckpt)]

    def markup_name(box: Path, marker: Path) -> list[str]:
        name = box / "<img src=x onerror=alert(1)><script>alert(1)<!--.mp4"
        shutil.copy(inp.video, name)
        return ["caption", str(name), "--model", str(inp.model), "-o", "out", "--no-progress"]

    def named(stem: bytes) -> Callable[[Path, Path], list[str]]:
        def make(box: Path, marker: Path) -> list[str]:
            videos = box / "in"
            videos.mkdir()
            target = os.path.join(os.fsencode(videos), stem + b".mp4")
            shutil.copy(inp.video, os.fsdecode(target))
            return ["caption", os.fsdecode(target), "--model", str(inp.model), "-o", "out", "--no-progress"]

        return make

    cases += [
        ("pickle payload in the .pkl annotations (evaluate)", pkl_annotations, "code"),
        ("pickle payload in train_state.pt (train resume)", pt_train_state, "code"),
        ("pickle payload in a .pth (convert official)", pth_convert, "code"),
        ("YAML !!python/object/apply recipe", yaml_python_tag, "code"),
        ("YAML alias bomb recipe", yaml_alias_bomb, "code"),
        ("config.json nested 200,000 deep (info)", deep_json_config, "code"),
        ("markup in the video name (caption)", markup_name, "markup"),
        ("video named ...mp4 (stem '..')", named(b".."), "code"),
        ("video named .mp4", named(b""), "code"),
        ("video name with a newline", named(b"a\nb"), "code"),
        ("video name not UTF-8", named(b"\xff\xfe"), "code"),
        ("video name of 250 bytes", named(b"v" * 246), "code"),
    ]

    def one(case: tuple[str, Callable[[Path, Path], list[str]], str]) -> tuple[str, Outcome, bool, list[str]]:
        what, make, check = case
        box = run.sandbox("malicious")
        marker = box / "PWNED"
        cmd = make(box, marker)
        before = snapshot(box)
        o = run.run(cmd, box)
        ran = marker.exists()
        if check == "markup" and (box / "out").exists():
            tags = [t for page in (box / "out").rglob("index.html") for t in _start_tags(page)]
            ran = ran or "img" in tags or tags.count("script") > 2
        return what, o, ran, outside(box, before)

    with cf.ThreadPoolExecutor(jobs) as pool:
        for what, o, ran, out in pool.map(one, cases):
            classify(o, row, what)
            if ran:
                row.counts["code ran"] += 1
                row.notes.append(f"code ran: {what}")
            if out:
                row.counts["outside -o"] += 1
                row.notes.append(f"outside -o: {what}: {out[:3]}")
    return row


def probe_hostile_videos(run: Runner, inp: Inputs, quick: bool, jobs: int) -> Row:
    row = Row()
    commands = ("caption",) if quick else ("caption", "features")

    def one(case: tuple[str, Path]) -> tuple[str, Outcome, list[str]]:
        cmd, path = case
        box = run.sandbox(f"video-{path.stem}")
        before = snapshot(box)
        if cmd == "caption":
            args = ["caption", str(path), "--model", str(inp.model), "-o", "out", "--no-progress"]
        else:
            args = ["features", str(path), "-o", "out", "--encoder", str(inp.model / "clip"), "--no-progress"]
        return f"{cmd} {path.name}", run.run(args, box), outside(box, before)

    with cf.ThreadPoolExecutor(jobs) as pool:
        for what, o, out in pool.map(one, [(c, p) for c in commands for p in inp.hostile.values()]):
            classify(o, row, what)
            if o.rss_mb > 2048:
                row.notes.append(f"{what}: peak RSS {o.rss_mb:.0f} MB")
            row.counts["outside -o"] += bool(out)
    return row


# ---- bad arguments, from the parsers --help prints ----------------------------------------------------------------
_NUMERIC_TYPES = ("int", "float", "positive", "nonnegative", "seconds")
_PATH_WORDS = ("output", "model", "encoder", "features", "videos", "segments", "chunk_dir", "data_root", "tokenizer",
               "java", "json", "out", "recipe", "source", "pred", "ref", "data", "inputs")  # fmt: skip


def bad_argument_probes(
    inp: Inputs, quick: bool, rng: random.Random, limit: int | None = None
) -> list[tuple[str, list[str]]]:
    """(what, argv) for every numeric and path option of every command, each on an otherwise valid command line
    (--quick: one bad value per option); `limit` draws that many of them."""
    from videorecap.cli import build_parser

    a_file = str(inp.video)
    bases = {
        **_commands(inp),
        "evaluate": [
            "evaluate",
            str(inp.model),
            str(inp.data),
            "-o",
            "out",
            "--metrics",
            "cider",
            "--limit",
            "1",
            "--no-progress",
        ],  # fmt: skip
        "info": ["info", str(inp.model)],
        "score": ["score", str(inp.pred), str(inp.pred), "--metrics", "cider"],
        "convert": ["convert", "official", "released.pth", "out"],
        "demo": ["demo", "-o", "out", "--minutes", "0.2", "--no-meteor"],
        "synth make": ["synth", "make", "-o", "out", "--videos", "3", "--minutes", "0.1", "--no-progress"],
    }
    parser = build_parser()
    probes = []
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)][0]
    commands = []
    for name, sp in subparsers.choices.items():
        nested = [a for a in sp._actions if isinstance(a, argparse._SubParsersAction)]
        if nested:
            commands += [(f"{name} {n2}", s2) for n2, s2 in nested[0].choices.items()]
        else:
            commands.append((name, sp))
    for name, sp in commands:
        base = bases.get(name)
        if base is None:
            continue
        for action in sp._actions:
            if not action.option_strings or action.nargs == 0 or action.choices:
                continue
            flag = max(action.option_strings, key=len)
            tname = getattr(action.type, "__name__", str(action.type)).lower()
            if any(w in tname for w in _NUMERIC_TYPES):
                values = ["nan", "0", "-1", "1e308", "banana"]
            elif action.dest in _PATH_WORDS or tname == "path" or "dir" in action.dest:
                values = [str(inp.missing), a_file if action.dest != "json_out" else "/proc/x/y", "/proc/x"]
            elif action.dest == "device":
                values = ["banana", "cuda:99"]
            else:
                continue
            if quick:
                values = [rng.choice(values)]
            argv = _without(base, action.option_strings)
            probes += [(f"{name} {flag} {v}", [*argv, flag, v]) for v in values]
    if limit is not None:  # a sample of them, a different one for each --seed
        probes = sorted(rng.sample(probes, min(len(probes), limit)))
    return probes


def _without(argv: list[str], flags: list[str]) -> list[str]:
    """`argv` less an option that is already on it (and its value), so the probe's value is the one parsed."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in flags:
            skip = True
            continue
        out.append(a)
    return out


def probe_bad_args(run: Runner, inp: Inputs, quick: bool, rng: random.Random, jobs: int, limit: int | None) -> Row:
    row = Row()
    probes = bad_argument_probes(inp, quick, rng, limit)

    def one(what: str, argv: list[str]) -> tuple[str, Outcome, list[str]]:
        box = run.sandbox("args")
        before = snapshot(box)
        o = run.run(argv, box, timeout=run.timeout)
        return what, o, outside(box, before)

    with cf.ThreadPoolExecutor(jobs) as pool:
        for what, o, out in pool.map(lambda p: one(*p), probes):
            classify(o, row, what)
            if out:
                row.counts["outside -o"] += 1
                row.notes.append(f"outside -o: {what}: {out[:3]}")
    return row


# ---- the table ----------------------------------------------------------------------------------------------------
def table(rows: dict[str, Row]) -> str:
    widths = [max(len(c), 6) for c in COLUMNS]
    head = "| category      | " + " | ".join(c.rjust(w) for c, w in zip(COLUMNS, widths, strict=True)) + " |"
    sep = "|---------------|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|"
    lines = [head, sep]
    total = dict.fromkeys(COLUMNS, 0)
    for cat, row in rows.items():
        cells = []
        for c, w in zip(COLUMNS, widths, strict=True):
            v = row.counts[c]
            total[c] = max(total[c], v) if c == "peak RSS MB" else total[c] + v
            cells.append(str(int(v)).rjust(w))
        lines.append(f"| {cat:<13} | " + " | ".join(cells) + " |")
    lines.append(
        "| **total**     | "
        + " | ".join(str(int(total[c])).rjust(w) for c, w in zip(COLUMNS, widths, strict=True))
        + " |"
    )
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="about 2 minutes: fewer kills, one bad value per option")
    ap.add_argument("--work", type=Path, help="scratch folder (default: a new temporary folder, removed at the end)")
    ap.add_argument("--jobs", type=int, default=2, help="bad-argument probes run this many at a time (default 2)")
    ap.add_argument("--seed", type=int, default=0, help="kill moments and the --quick choice of bad values")
    ap.add_argument("--timeout", type=float, default=None, help="seconds a probe may run (default 60, --quick 30)")
    ap.add_argument("--mem-limit-gb", type=float, default=8.0, help="address-space limit of a probe (0: none)")
    ap.add_argument("--only", default=",".join(CATEGORIES), help=f"categories to run (default: all of {CATEGORIES})")
    ap.add_argument("--args", type=int, help="bad-argument probes drawn (default 100, --quick 16; -1: all, ~310)")
    ap.add_argument("--log", type=Path, help="write every run (command, kind, exit code, stderr tail) as JSON lines")
    ap.add_argument("--notes", type=int, default=40, help="notes printed under the table (default 40)")
    a = ap.parse_args()
    work = (a.work or Path(tempfile.mkdtemp(prefix="probe-matrix-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    if a.args is None:
        a.args = 16 if a.quick else 100
    run = Runner(work, a.mem_limit_gb, a.timeout or (30 if a.quick else 60))
    rng = random.Random(a.seed)
    t0 = time.monotonic()
    inp = make_inputs(run, work)
    only = a.only.split(",")
    rows: dict[str, Row] = {}
    trials = {"caption": 1, "features": 1, "train": 1} if a.quick else {"caption": 4, "features": 3, "train": 2}
    steps: dict[str, Callable[[], Row]] = {
        "kill": lambda: probe_kill(run, inp, trials, rng),
        "concurrent": lambda: probe_concurrent(run, inp, a.quick),
        "disk-full": lambda: probe_disk_full(run, inp, a.quick),
        "malicious": lambda: probe_malicious(run, inp, a.jobs),
        "hostile-video": lambda: probe_hostile_videos(run, inp, a.quick, a.jobs),
        "bad-args": lambda: probe_bad_args(run, inp, a.quick, rng, a.jobs, None if a.args < 0 else a.args),
    }
    for cat in CATEGORIES:
        if cat in only:
            t = time.monotonic()
            rows[cat] = steps[cat]()
            print(f"[{cat}: {int(rows[cat].counts['probes'])} probes, {time.monotonic() - t:.0f} s]", file=sys.stderr)
    print(table(rows))
    if a.log:
        a.log.write_text("".join(json.dumps(r) + "\n" for r in LOG))
    notes = [f"{cat}: {n}" for cat, row in rows.items() for n in row.notes]
    for n in notes[: a.notes]:
        print(f"- {n}")
    if len(notes) > a.notes:
        print(f"- ... {len(notes) - a.notes} more notes (--notes N)")
    print(f"{'quick' if a.quick else 'full'} run, {time.monotonic() - t0:.0f} s, work folder {work}")
    if a.work is None:
        shutil.rmtree(work, ignore_errors=True)
    bad = sum(r.counts[c] for r in rows.values() for c in ("traceback", "data lost", "mixed", "outside -o", "code ran"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
