"""The searchable texts of a folder of captioned videos, and their sentence embeddings stored beside the outputs.

`load_corpus(folder)` reads every captions file below `folder` (as `videorecap score` finds them: each `*.json`
whose `format` is `videorecap.captions`; hidden folders such as `.cache/` are not entered). Each clip caption and
segment description with text becomes a `Doc` (its video, level, window and the text as people read it,
`export.display_text`); a file that cannot be read is listed in `Corpus.skipped` and the others are searched.

`embeddings(corpus, embedder)` returns one unit row per doc. The rows of each captions file are stored in
`FOLDER/.videorecap-search/<model>/<sha256 of the file's bytes>.npy` (float16: half the disk, and cosine ranks do not
move at that precision), so:

- the index is incremental: a new or changed captions file (new content, new hash) is embedded, the others are read
  back; a moved or copied file keeps its embeddings; a text that occurs many times is embedded once per build;
- it is rebuilt when captions change, and rows of files that are gone or changed are deleted;
- another embedding model (its name is part of the folder name), or another `INDEX_VERSION` (what text a caption
  becomes), gets its own folder;
- every file is written atomically (`fileio.save_npy`), and the update runs under the lock of the index folder
  (`lock.output_lock`, waiting for a holder): two searches at once never see a half-written or deleted file.
  A folder we may not write to is searched with embeddings computed in memory (a warning says so).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from videorecap import fileio, lock
from videorecap.errors import InputError, VideoRecapError
from videorecap.export import display_text
from videorecap.results import FORMAT, CaptionResult
from videorecap.search.bm25 import BM25, tokenize

if TYPE_CHECKING:
    from videorecap.text.embed import TextEmbedder

log = logging.getLogger(__name__)

INDEX_DIR = ".videorecap-search"
INDEX_VERSION = 1  # bump when the docs a captions file gives change: every stored embedding is then recomputed
SEARCH_LEVELS = ("clip", "segment")
_EMBED_BATCH_TEXTS = 4096  # embed the new files in groups of about this many texts, saving each group's files


@dataclass(frozen=True)
class Doc:
    """One searchable text: a clip caption or a segment description of one video."""

    video: int  # index into Corpus.videos
    level: str  # "clip" or "segment"
    start: float
    end: float
    text: str  # as people read it (export.display_text)


@dataclass
class Video:
    """One captions file of the folder."""

    key: str  # the captions file's folder relative to the corpus root ("." for the root): unique, used in URLs
    captions: Path
    sha256: str  # of the file's bytes: the key of its stored embeddings
    result: CaptionResult
    first: int = 0  # its docs are Corpus.docs[first:last]
    last: int = 0

    @property
    def id(self) -> str:
        return self.result.video.id

    @property
    def page(self) -> Path | None:
        """The video's index.html (written by `videorecap caption` beside captions.json), if it is there."""
        p = self.captions.parent / "index.html"
        return p if p.is_file() else None


@dataclass
class Corpus:
    root: Path
    videos: list[Video] = field(default_factory=list)
    docs: list[Doc] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # one line per captions file that could not be read

    @cached_property
    def bm25(self) -> BM25:
        return BM25([tokenize(d.text) for d in self.docs])

    def video(self, key: str) -> Video | None:
        return next((v for v in self.videos if v.key == key), None)


def _docs_of(result: CaptionResult, video: int) -> list[Doc]:
    """The docs of one captions file, always in this order (clips, then segments): stored rows follow it."""
    out = []
    for level, caps in (("clip", result.clips), ("segment", result.segments)):
        for c in caps:
            text = display_text(c.text)
            if text:
                out.append(Doc(video, level, c.start, c.end, text))
    return out


def _caption_files(root: Path) -> list[Path]:
    files = []
    for here, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))  # .cache/, .videorecap-search/, ...
        files += [Path(here) / n for n in sorted(names) if n.endswith(".json") and not n.startswith(".")]
    return files


def load_corpus(folder: str | os.PathLike[str]) -> Corpus:
    """Every captions file below `folder` (see the module docstring); an empty folder gives an empty corpus.

    Raises:
        InputError: `folder` does not exist or is not a folder.
    """
    root = Path(folder)
    if not root.exists():
        raise InputError(f"{root}: no such folder")
    if not root.is_dir():
        raise InputError(f"{root}: not a folder; give the output folder of `videorecap caption`")
    corpus = Corpus(root)
    for path in _caption_files(root):
        try:
            raw = path.read_bytes()
            obj = json.loads(raw)
        except (OSError, ValueError, RecursionError) as e:
            if path.name == "captions.json":
                corpus.skipped.append(f"{path}: cannot read it ({e})")
            continue
        if not (isinstance(obj, dict) and obj.get("format") == FORMAT):
            if path.name == "captions.json":  # named as ours but not ours (or damaged): said, as an unreadable one
                corpus.skipped.append(f'{path}: not a captions file of videorecap caption (no "format": {FORMAT!r})')
            continue  # some other JSON file (world.json, a store entry...)
        try:
            result = CaptionResult.from_dict(obj, str(path))
        except VideoRecapError as e:
            corpus.skipped.append(str(e))
            continue
        docs = _docs_of(result, len(corpus.videos))
        key = path.parent.relative_to(root).as_posix()
        if path.name != "captions.json":  # two captions files in one folder stay two videos
            key = f"{key}/{path.stem}" if key != "." else path.stem
        corpus.videos.append(
            Video(key, path, hashlib.sha256(raw).hexdigest(), result, len(corpus.docs), len(corpus.docs) + len(docs))
        )
        corpus.docs += docs
    for line in corpus.skipped:
        log.warning("skipped %s", line)
    return corpus


def require_videos(corpus: Corpus) -> Corpus:
    """`corpus`, if it has a video: a folder with none is a mistake for `search` and `serve` alike.

    Raises:
        InputError: no captions file below the folder could be read (none there, or only unreadable ones).
    """
    if not corpus.videos:
        what = f"{len(corpus.skipped)} unreadable captions file(s)" if corpus.skipped else "no captions.json"
        raise InputError(f"{corpus.root}: {what} below this folder; caption videos into it first (videorecap caption)")
    return corpus


def _model_folder(name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[:60] or "model"
    digest = hashlib.sha256(f"{INDEX_VERSION}\0{name}".encode()).hexdigest()[:10]
    return f"{slug}-{digest}"


def _read_rows(path: Path, n: int, dim: int) -> np.ndarray | None:
    try:
        rows = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, EOFError, MemoryError) as e:
        # a damaged file is computed again: numpy says ValueError for garbage or a file cut after its header,
        # EOFError for an empty one (a full disk, a copy cut short), MemoryError for a header with a huge shape
        log.warning("%s: unreadable (%s); computing it again", path, e)
        return None
    if rows.shape != (n, dim):
        log.warning("%s: holds %s rows, expected %s; computing it again", path, rows.shape, (n, dim))
        return None
    return rows


def _embed_missing(
    corpus: Corpus, missing: Sequence[int], embedder: TextEmbedder, folder: Path | None, progress: bool
) -> dict[int, np.ndarray]:
    """The rows of the captions files `missing` (indices into corpus.videos), each stored once complete.

    A text is embedded once however often it occurs (captions repeat: "C picks up the cup"): files are taken in
    groups until about `_EMBED_BATCH_TEXTS` texts are new, those are embedded, and each file of the group is
    assembled from the rows and saved, so an interrupted build keeps every finished file.
    """
    from tqdm import tqdm

    out: dict[int, np.ndarray] = {}
    if not missing:
        return out
    rows: dict[str, np.ndarray] = {}
    bar = tqdm(total=len(missing), desc="search index", unit="file", disable=not progress)
    try:
        group: list[int] = []
        new: dict[str, None] = {}  # the texts of the group not embedded yet, in first-seen order
        for pos, i in enumerate(missing):
            group.append(i)
            v = corpus.videos[i]
            new.update(dict.fromkeys(d.text for d in corpus.docs[v.first : v.last] if d.text not in rows))
            if len(new) < _EMBED_BATCH_TEXTS and pos + 1 < len(missing):
                continue
            texts = list(new)
            rows.update(zip(texts, embedder.embed(texts).astype(np.float16), strict=True))
            for j in group:
                v = corpus.videos[j]
                docs = corpus.docs[v.first : v.last]
                out[j] = np.stack([rows[d.text] for d in docs]) if docs else np.zeros((0, embedder.dim), np.float16)
                if folder is not None:
                    fileio.save_npy(folder / f"{v.sha256}.npy", out[j])
            bar.update(len(group))
            group, new = [], {}
    finally:
        bar.close()
    return out


def _open_index(index_dir: Path, folder: Path, stack: contextlib.ExitStack) -> Path | None:
    """`folder`, created, with the index's lock held until `stack` closes; None where we may not write."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        stack.enter_context(lock.output_lock(index_dir, "videorecap search (updating the index)", wait=True))
    except (OSError, InputError) as e:
        log.warning("%s: cannot store the search index there (%s); embedding in memory", index_dir, e)
        return None
    return folder


def embeddings(corpus: Corpus, embedder: TextEmbedder, *, progress: bool = False) -> np.ndarray:
    """(len(corpus.docs), dim) float32 unit rows, read from the folder's index, computing (and storing) what is
    missing or stale; see the module docstring."""
    index_dir = corpus.root / INDEX_DIR
    with contextlib.ExitStack() as stack:
        folder = _open_index(index_dir, index_dir / _model_folder(embedder.name), stack)
        rows: dict[int, np.ndarray] = {}
        for i, v in enumerate(corpus.videos):
            r = None if folder is None else _read_rows(folder / f"{v.sha256}.npy", v.last - v.first, embedder.dim)
            if r is not None:
                rows[i] = r
        missing = [i for i in range(len(corpus.videos)) if i not in rows]
        if missing:
            log.info("embedding the texts of %d of %d captions files", len(missing), len(corpus.videos))
        rows |= _embed_missing(corpus, missing, embedder, folder, progress)
        if folder is not None:
            keep = {f"{v.sha256}.npy" for v in corpus.videos}
            for p in folder.glob("*.npy"):
                if p.name not in keep:  # captions that changed or went away
                    p.unlink(missing_ok=True)
    if not rows:
        return np.zeros((0, embedder.dim), np.float32)
    return np.concatenate([rows[i] for i in range(len(corpus.videos))]).astype(np.float32)
