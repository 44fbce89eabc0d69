"""The stored search index: incremental, rebuilt when captions change, atomic, shared by concurrent searches."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _helpers import synth_folder, write_captions

from videorecap.search import index as index_mod
from videorecap.search.index import INDEX_DIR, embeddings, load_corpus


class Counting:
    """The real embedder, counting the texts it is asked to embed."""

    def __init__(self, inner, fail_after: int | None = None) -> None:
        self.inner, self.name, self.dim = inner, inner.name, inner.dim
        self.calls: list[int] = []
        self.fail_after = fail_after

    def embed(self, texts):
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise KeyboardInterrupt  # killed mid-build
        self.calls.append(len(texts))
        return self.inner.embed(texts)


def _stored(root: Path) -> list[Path]:
    return sorted((root / INDEX_DIR).glob("*/*.npy"))


def _leftovers(root: Path) -> list[str]:
    return [p.name for p in (root / INDEX_DIR).rglob("*") if p.name.endswith(".tmp")]


def test_corpus_reads_every_captions_file_and_skips_the_rest(tmp_path: Path) -> None:
    write_captions(tmp_path / "a" / "captions.json", "a", [(0, 4, "#C C opens the fridge"), (4, 8, "")], [(0, 8, "x")])
    write_captions(tmp_path / "nested" / "b" / "captions.json", "b", [(0, 4, "#C C closes the fridge")])
    (tmp_path / "world.json").write_text(json.dumps({"generator": "videorecap.synth"}))  # not a captions file
    (tmp_path / ".cache").mkdir()
    write_captions(tmp_path / ".cache" / "captions.json", "hidden", [(0, 4, "#C C hides")])  # hidden: not entered
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "captions.json").write_text('{"format": "videorecap.captions", "clips": 3}')
    corpus = load_corpus(tmp_path)
    assert [(v.key, v.id) for v in corpus.videos] == [("a", "a"), ("nested/b", "b")]
    # the empty caption is not searchable; texts are as people read them (no "#C")
    assert [(d.video, d.level, d.text) for d in corpus.docs] == [
        (0, "clip", "C opens the fridge"),
        (0, "segment", "x"),
        (1, "clip", "C closes the fridge"),
    ]
    assert len(corpus.skipped) == 1 and "bad/captions.json" in corpus.skipped[0]
    # a file named captions.json that is not one (or is damaged into valid JSON) is said too, not passed over
    (tmp_path / "list").mkdir()
    (tmp_path / "list" / "captions.json").write_text("[]")
    corpus = load_corpus(tmp_path)
    assert len(corpus.skipped) == 2 and "list/captions.json: not a captions file" in corpus.skipped[1]


def test_incremental_and_rebuilt_when_captions_change(tmp_path: Path, embedder) -> None:
    root = synth_folder(tmp_path, 3)
    counting = Counting(embedder)
    corpus = load_corpus(root)
    first = embeddings(corpus, counting)
    # each distinct text is embedded once (the videos share many captions)
    unique = len({d.text for d in corpus.docs})
    assert sum(counting.calls) == unique < len(corpus.docs) and len(_stored(root)) == 3
    # the rows are the model's embeddings of the docs, in doc order (stored as float16)
    direct = embedder.embed([d.text for d in corpus.docs])
    assert np.abs(first - direct).max() < 2e-3

    # nothing changed: nothing is embedded again
    counting.calls.clear()
    np.testing.assert_array_equal(embeddings(load_corpus(root), counting), first)
    assert counting.calls == []

    # a new video: only its texts are embedded
    write_captions(root / "new" / "captions.json", "new", [(0, 4, "#C C feeds the cat")])
    corpus = load_corpus(root)
    rows = embeddings(corpus, counting)
    assert counting.calls == [1] and len(rows) == len(corpus.docs) and len(_stored(root)) == 4

    # captions of one video change: that file is embedded again, its old rows are deleted
    counting.calls.clear()
    target = root / "new" / "captions.json"
    write_captions(target, "new", [(0, 4, "#C C strokes the cat"), (4, 8, "#C C opens the tin of tuna")])
    corpus = load_corpus(root)
    rows = embeddings(corpus, counting)
    assert counting.calls == [2] and len(_stored(root)) == 4
    v = corpus.video("new")
    assert (
        np.abs(rows[v.first : v.last] - embedder.embed(["C strokes the cat", "C opens the tin of tuna"])).max() < 2e-3
    )

    # a video removed: its rows go too; a moved folder keeps its rows (the key is the content)
    counting.calls.clear()
    os.rename(root / "new", root / "renamed")
    (root / "synth_heldout_0000" / "captions.json").unlink()
    rows = embeddings(load_corpus(root), counting)
    assert counting.calls == [] and len(_stored(root)) == 3

    # another embedding model gets its own folder: everything is embedded for it, the first folder stays
    other = Counting(embedder)
    other.name = "another/model"
    embeddings(load_corpus(root), other)
    assert sum(other.calls) > 0 and len(_stored(root)) == 6
    assert len({p.parent for p in _stored(root)}) == 2


def test_a_build_killed_midway_keeps_what_was_done_and_leaves_no_partial_file(tmp_path: Path, embedder, monkeypatch):
    root = synth_folder(tmp_path, 3)
    monkeypatch.setattr(index_mod, "_EMBED_BATCH_TEXTS", 1)  # one file per group: one save per group
    killed = Counting(embedder, fail_after=1)
    with pytest.raises(KeyboardInterrupt):
        embeddings(load_corpus(root), killed)
    corpus = load_corpus(root)
    done = _stored(root)
    assert 1 <= len(done) < 3 and _leftovers(root) == []
    for p in done:  # what was saved is whole
        v = next(v for v in corpus.videos if p.name == f"{v.sha256}.npy")
        assert np.load(p).shape == (v.last - v.first, 384)
    # a half-written file under a final name (another tool, a full disk) is not trusted: recomputed
    done[0].write_bytes(b"\x93NUMPY garbage")
    counting = Counting(embedder)
    rows = embeddings(corpus, counting)
    assert counting.calls and len(_stored(root)) == 3
    assert np.abs(rows - embedder.embed([d.text for d in corpus.docs])).max() < 2e-3


@pytest.mark.parametrize("keep", [0, 10, 200], ids=["empty", "cut-in-header", "cut-in-data"])
def test_an_empty_or_cut_stored_file_is_computed_again(tmp_path: Path, embedder, caplog, keep: int) -> None:
    root = synth_folder(tmp_path, 1)
    corpus = load_corpus(root)
    first = embeddings(corpus, embedder)
    stored = _stored(root)[0]
    whole = stored.read_bytes()
    with open(stored, "r+b") as f:  # a full disk, or a copy cut short
        f.truncate(keep)
    counting = Counting(embedder)
    rows = embeddings(load_corpus(root), counting)
    assert counting.calls and "unreadable" in caplog.text and "computing it again" in caplog.text
    np.testing.assert_array_equal(rows, first)
    assert stored.read_bytes() == whole  # stored whole again


def test_a_temp_file_left_by_a_killed_writer_is_cleaned(tmp_path: Path, embedder) -> None:
    root = synth_folder(tmp_path, 1)
    embeddings(load_corpus(root), embedder)
    folder = _stored(root)[0].parent
    (folder / ".abc.npy.k2j4h5g7.tmp").write_bytes(b"partial")  # what fileio.atomic_path leaves when killed
    embeddings(load_corpus(root), embedder)
    assert _leftovers(root) == []


def test_a_folder_we_cannot_write_is_searched_in_memory(tmp_path: Path, embedder, caplog) -> None:
    root = synth_folder(tmp_path, 1)
    (root / INDEX_DIR).write_text("not a folder")  # mkdir fails, as in a read-only folder
    corpus = load_corpus(root)
    rows = embeddings(corpus, embedder)
    assert rows.shape == (len(corpus.docs), 384)
    assert "cannot store the search index" in caplog.text


def test_two_searches_at_once_share_the_index(tmp_path: Path) -> None:
    root = synth_folder(tmp_path, 4)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "videorecap", "search", str(root), "kettle on the stove", "--json", "--no-progress"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in "ab"]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1] for o in outs]
    a, b = (json.loads(o[0])["moments"] for o in outs)
    assert a == b and a
    assert len(_stored(root)) == 4 and _leftovers(root) == []
