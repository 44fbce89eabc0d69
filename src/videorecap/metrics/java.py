"""Finding a Java runtime and the jars that `pycocoevalcap` ships (METEOR 1.5, Stanford PTBTokenizer).

METEOR and the COCO (PTB) tokenizer are Java programs. Nothing here downloads anything: the jars come inside the
`pycocoevalcap` wheel, and Java is whatever `java` the user has (or names with `java=`).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

from videorecap.errors import MissingDependencyError

INSTALL_JAVA_HINT = (
    "install a Java runtime (8 or newer), e.g. `sudo apt-get install default-jre-headless` on Debian/Ubuntu, "
    "`brew install openjdk` on macOS or `conda install -c conda-forge openjdk`, or point to one with --java PATH"
)


def find_java(java: str | os.PathLike[str] | None = None, needed_for: str = "METEOR") -> str:
    """The path of the `java` executable to run.

    Args:
        java: an explicit executable (a path, or a name looked up on PATH); None looks for `java` on PATH, then
            in `$JAVA_HOME/bin`.
        needed_for: what needs Java, for the error message.

    Raises:
        MissingDependencyError: no usable Java; the message says how to install one.
    """
    if java is not None:
        found = shutil.which(str(java))
        if found is None:
            raise MissingDependencyError(
                f"{needed_for} needs Java, but {str(java)!r} is not an executable; {INSTALL_JAVA_HINT}"
            )
        return found
    found = shutil.which("java")
    if found is None and os.environ.get("JAVA_HOME"):
        found = shutil.which(str(Path(os.environ["JAVA_HOME"]) / "bin" / "java"))
    if found is None:
        raise MissingDependencyError(
            f"{needed_for} needs Java and no `java` was found on PATH; {INSTALL_JAVA_HINT}. "
            "CIDEr, ROUGE-L and BLEU work without Java: leave METEOR out with --metrics cider,rouge_l,bleu"
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
            "caption metrics need the pycocoevalcap package: pip install 'videorecap[eval]' (or pycocoevalcap==1.2)"
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
