import pytest
import torch

from videorecap.data.collate import Collator, caption_ids, text_ids


class CharTokenizer:
    bos_id, eos_id, pad_id, vocab_size = 1, 2, 0, 103

    def encode(self, text):
        return [3 + (ord(ch) % 100) for ch in text]


def sample(caption="ab", text=None, k=4, mask=False):
    return {
        "video": torch.ones(k, 3),
        "video_mask": torch.tensor([True] * (k - 1) + [False]) if mask else None,
        "text": text,
        "caption": caption,
        "meta": {"vid": "v"},
    }


def test_caption_ids_as_original():
    ids = caption_ids([[5, 6], [7], []], max_caption_tokens=77, bos_id=9, eos_id=9, pad_id=0)
    assert ids.tolist() == [[9, 5, 6, 9], [9, 7, 9, 0], [9, 9, 0, 0]]
    # longer than the limit: cut at limit + 2, which drops the EOS
    ids = caption_ids([[5, 6, 7, 8, 3], [4]], max_caption_tokens=3, bos_id=1, eos_id=2, pad_id=0)
    assert ids.tolist() == [[1, 5, 6, 7, 8], [1, 4, 2, 0, 0]]
    assert ids.dtype == torch.long


def test_text_ids_truncate_pad_mask():
    ids, mask = text_ids([[1, 2, 3, 4], [5], []], max_text_tokens=3, pad_id=0)
    assert ids.tolist() == [[1, 2, 3], [5, 0, 0], [0, 0, 0]]
    assert mask.tolist() == [[True] * 3, [True, False, False], [False] * 3]
    ids, mask = text_ids([[], []], max_text_tokens=3, pad_id=7)
    assert ids.tolist() == [[7], [7]] and not mask.any()


def test_collator_batch():
    coll = Collator(CharTokenizer(), max_caption_tokens=77)
    b = coll([sample("ab", "xyz", mask=True), sample("abcd", "", mask=True)])
    assert b["video"].shape == (2, 4, 3) and b["video"].dtype == torch.float32
    assert b["video_mask"].tolist() == [[True, True, True, False]] * 2
    tok = CharTokenizer()
    assert b["caption_ids"].tolist() == [
        [1, *tok.encode("ab"), 2, 0, 0],
        [1, *tok.encode("abcd"), 2],
    ]
    assert b["text_ids"].tolist() == [tok.encode("xyz"), [0, 0, 0]]
    assert b["text_mask"].tolist() == [[True] * 3, [False] * 3]
    assert b["meta"] == [{"vid": "v"}, {"vid": "v"}]


def test_collator_without_text_or_caption_and_overrides():
    coll = Collator(CharTokenizer(), max_caption_tokens=5, bos_id=50, eos_id=51, pad_id=52)
    b = coll([sample(None), sample("a")])
    assert b["caption_ids"] is None and b["text_ids"] is None and b["text_mask"] is None
    assert b["video_mask"] is None
    b = coll([sample("a")])
    assert b["caption_ids"].tolist() == [[50, 3 + ord("a") % 100, 51]]
    with pytest.raises(ValueError, match="mixes"):
        coll([sample(mask=True), sample(mask=False)])


def test_collator_with_gpt2_tokenizer():
    from videorecap.tokenizer import Tokenizer

    tok = Tokenizer.gpt2()
    coll = Collator(tok, max_caption_tokens=77)
    b = coll([sample("#C C picks the cabbage", "#C C opens#C C walks")])
    ids = b["caption_ids"][0].tolist()
    assert ids[0] == ids[-1] == 50256
    assert tok.decode(ids) == "#C C picks the cabbage"
    assert tok.decode(b["text_ids"][0].tolist(), skip_special=False) == "#C C opens#C C walks"
    long_text = "word " * 600
    b = coll([sample("a", long_text)])
    assert b["text_ids"].shape == (1, 512) and b["text_mask"].all()


def test_collator_for_config():
    from videorecap.config import RecapConfig

    cfg = RecapConfig.from_name("recap-tiny", level="video")
    coll = Collator.for_config(CharTokenizer(), cfg, "video")
    assert coll.max_caption_tokens == 20 and coll.max_text_tokens == 64
    assert (coll.bos_id, coll.eos_id, coll.pad_id) == (1, 2, 0)
    base = Collator.for_config(CharTokenizer(), RecapConfig.from_name("recap-base", level="video"), "video")
    assert base.max_caption_tokens == 120 and base.max_text_tokens == 512 and base.bos_id == base.eos_id == 50256


def test_collator_text_only_samples_have_no_video():
    # the text-only model's samples (data.datasets.TextPairDataset) carry text and a caption, no video
    coll = Collator(CharTokenizer(), max_caption_tokens=5)
    b = coll([{"text": "xy", "caption": "a"}, {"text": "z", "caption": "bc"}])
    assert b["video"] is None and b["video_mask"] is None
    assert b["text_ids"].shape == (2, 2) and b["caption_ids"].shape[0] == 2
    with pytest.raises(ValueError, match="mixes samples with and without video"):
        coll([{"text": "xy", "caption": "a"}, sample("a")])
