"""`fit_video_text`: which segment descriptions the video level reads under its token limit, counted with the real
tokenizers (GPT-2's for Video ReCap, the word-level one of recap-synth)."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from videorecap.data.text import fit_video_text, video_text
from videorecap.tokenizer import Tokenizer

# descriptions with the quirks video_text keeps: leading/trailing dots, "dot then space", empty ones, Unicode
ODD = ["C cooks.", "..C eats", "C eats. ", "", "  ", "#C C picks up the cup!", "C   naps .", "Ünïcödé 字幕 🎬.", "'s"]


@functools.cache
def gpt2() -> Tokenizer:
    return Tokenizer.gpt2()


def counter(tok: Tokenizer):
    return lambda texts: [len(ids) for ids in tok.encode_batch(texts)]


def descriptions(n: int, seed: int = 0) -> list[str]:
    """Ego4D-like segment descriptions of varied length, each naming its index (k17) so it can be found."""
    rng = np.random.default_rng(seed)
    verbs = ["cooks", "washes the dishes", "reads a book", "talks to a man", "walks around the house", "cuts onions"]
    out = []
    for k in range(n):
        extra = " and then ".join(verbs[int(i)] for i in rng.integers(len(verbs), size=int(rng.integers(1, 4))))
        out.append(f"C is in the kitchen k{k}. C {extra}.")
    return out


def test_text_that_fits_is_the_original_text_for_both_policies():
    count = counter(gpt2())
    for ds in (ODD, ODD[:1], descriptions(7), []):
        for policy in ("spread", "first"):
            text, read, tokens = fit_video_text(ds, count, 512, policy)
            assert text == video_text(ds)  # byte for byte: a short video reads exactly what the original reads
            assert read == tuple(range(len(ds))) and tokens == len(gpt2().encode(text))


@pytest.mark.parametrize("tok", ["gpt2", "synth"])
def test_a_texts_token_count_is_the_sum_of_its_descriptions(tok):
    """The estimate fit_video_text starts from: the first description bare, the others after the joining space."""
    if tok == "gpt2":
        t, ds = gpt2(), [*ODD, *descriptions(40)]
    else:
        from videorecap.synth.model import synth_tokenizer
        from videorecap.synth.world import make_script

        t, ds = synth_tokenizer(), [s.description for s in make_script(3, 20.0).segments]
    for sub in (ds, ds[1::3], ds[::-1]):
        parts = [d.strip(".").strip() + "." for d in sub]
        assert " ".join(parts) == video_text(sub)
        n = [len(t.encode(p)) for p in parts]
        n_later = [len(t.encode(" " + p)) for p in parts]
        assert len(t.encode(video_text(sub))) == n[0] + sum(n_later[1:])


def test_spread_reads_the_whole_video_evenly_within_the_budget():
    tok = gpt2()
    ds = descriptions(60)  # 3 h of 180-s segments
    assert len(tok.encode(video_text(ds))) > 512
    text, read, tokens = fit_video_text(ds, counter(tok), 512, "spread")
    assert tokens == len(tok.encode(video_text(ds)))
    assert text == video_text([ds[i] for i in read])  # the original's format, only fewer descriptions
    assert len(tok.encode(text)) <= 512
    assert read[0] == 0 and read[-1] == 59  # the first and the last always
    gaps = np.diff(read)
    assert gaps.max() - gaps.min() <= 1  # evenly spread
    # as many as fit: one more, evenly spread, would not
    k = len(read) + 1
    more = [round(j * 59 / (k - 1)) for j in range(k)]
    assert len(tok.encode(video_text([ds[i] for i in more]))) > 512
    assert "k0." in text and "k59." in text


def test_first_reads_the_first_tokens_as_the_original():
    tok = gpt2()
    ds = descriptions(60)
    text, read, _ = fit_video_text(ds, counter(tok), 512, "first")
    assert text == video_text(ds)  # the collator cuts it at 512 tokens, as the original's does
    # a description is read (at least in part) when its text starts within the first 512 tokens, counted here
    # independently: the tokens of the text before it
    starts = [len(tok.encode(video_text(ds[:i]))) if i else 0 for i in range(60)]
    assert read == tuple(i for i in range(60) if starts[i] < 512)
    assert 5 < len(read) < 30 and read == tuple(range(len(read)))
    kept = tok.decode(tok.encode(text)[:512])
    assert f"k{read[-1]}" in kept and f"k{read[-1] + 1}." not in kept


def test_two_descriptions_too_long_to_fit_are_both_kept_and_cut_later():
    ds = ["C " + "cooks " * 600, "C eats", "C " + "naps " * 600]
    text, read, tokens = fit_video_text(ds, counter(gpt2()), 512, "spread")
    assert text == video_text([ds[0], ds[2]]) and read == (0,) and tokens > 1200  # the last starts after 512 tokens


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="policy"):
        fit_video_text(["a"], counter(gpt2()), 512, "middle")
    with pytest.raises(ValueError, match="max_tokens"):
        fit_video_text(["a"], counter(gpt2()), 0)
