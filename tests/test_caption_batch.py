"""`infer.batch.caption_batch`: the one function that turns a batch of a level's inputs into captions."""

import numpy as np
import pytest
import torch

from videorecap.checkpoint import load_model
from videorecap.data.collate import Collator
from videorecap.data.feature_sampling import sample
from videorecap.infer.batch import CaptionItem, caption_batch, collate_items
from videorecap.infer.decode import DecodeConfig, generate_ids
from videorecap.model.recap import VideoRecap
from videorecap.synth.model import bundled_model_dir
from videorecap.synth.world import make_script


@pytest.fixture(scope="module")
def segment_model():
    """The bundled recap-synth segment model: trained, so its captions follow its inputs."""
    return load_model(bundled_model_dir() / "segment")


def _items(m: VideoRecap) -> list[CaptionItem]:
    rng = np.random.default_rng(0)
    width = m.config.encoder.width
    captions = [t for *_, t in make_script(7, 2.0).clip_rows()]
    # two segments' clip captions joined as the pipeline joins them, an empty text, one over max_text_tokens
    texts = ["".join(captions[:5]), "".join(captions[10:15]), "", "".join(captions)]
    sizes = (3, 9, 10, 40)  # fewer and more CLS features than the level samples
    return [CaptionItem(rng.standard_normal((n, width), np.float32), t) for n, t in zip(sizes, texts, strict=True)]


def test_items_caption_like_the_training_collator_batch(segment_model, monkeypatch):
    m, tok = segment_model
    monkeypatch.setattr(m.config.tokens, "max_text_tokens", 50)  # the long text is cut as training batches cut it
    items = _items(m)
    assert len(tok.encode(items[-1].text or "")) > 50
    k, kind = m.config.num_features("segment"), m.config.sampling("segment")
    samples = []
    for it in items:
        v, mask = sample(it.video, k, kind)
        samples.append({"video": v, "video_mask": mask, "text": it.text})
    collated = Collator.for_config(tok, m.config, "segment")(samples)
    ours = collate_items(m, tok, items, sampling=(k, kind))
    for key in ("video", "video_mask", "text_ids", "text_mask"):
        a, b = ours[key], collated[key]
        assert (a is None and b is None) or torch.equal(a, b), key
    assert ours["text_ids"].shape[1] == 50
    decode = DecodeConfig(max_new_tokens=8)
    from_items = caption_batch(m, tok, "segment", items, decode, sampling=(k, kind))
    assert from_items == caption_batch(m, tok, "segment", collated, decode)
    assert all(from_items) and len(set(from_items)) > 1  # real, input-dependent captions


def test_captions_are_the_decoded_ids_of_generate_ids(segment_model):
    m, tok = segment_model
    k, kind = m.config.num_features("segment"), m.config.sampling("segment")
    batch = collate_items(m, tok, _items(m), sampling=(k, kind))
    beam = DecodeConfig(strategy="beam", num_beams=3, max_new_tokens=6)
    ids = generate_ids(m, "segment", **batch, decode=beam)
    assert caption_batch(m, tok, "segment", batch, beam) == [tok.decode(x).strip() for x in ids]
    # the level's default token limit applies when the decoding config sets none
    for row in generate_ids(m, "segment", **batch):
        assert len(row) <= m.config.io.max_new_tokens["segment"]


def test_empty_text_is_one_masked_pad_and_no_text_is_none(segment_model):
    m, tok = segment_model
    v = np.zeros((2, m.config.encoder.width), np.float32)
    b = collate_items(m, tok, [CaptionItem(v, ""), CaptionItem(v, "C waters")])
    pad = m.config.tokens.pad_token_id
    assert b["text_ids"].tolist() == [[pad, pad], tok.encode("C waters")]
    assert b["text_mask"].tolist() == [[False, False], [True, True]]
    assert b["video_mask"] is None and b["video"].shape == (2, 2, m.config.encoder.width)
    clip_like = collate_items(m, tok, [CaptionItem(v), CaptionItem(v)])
    assert clip_like["text_ids"] is None and clip_like["text_mask"] is None
    with pytest.raises(ValueError, match="empty batch"):
        caption_batch(m, tok, "segment", [])


def test_scores_come_with_the_captions_and_are_the_teacher_forced_log_probs(segment_model):
    m, tok = segment_model
    k, kind = m.config.num_features("segment"), m.config.sampling("segment")
    items = _items(m)
    decode = DecodeConfig(max_new_tokens=12)
    plain = caption_batch(m, tok, "segment", items, decode, sampling=(k, kind))
    scored = caption_batch(m, tok, "segment", items, decode, sampling=(k, kind), return_scores=True)
    assert [t for t, _ in scored] == plain
    batch = collate_items(m, tok, items, sampling=(k, kind))
    ids = generate_ids(m, "segment", **batch, decode=decode)
    ctx = m.context("segment", batch["video"], batch["video_mask"], batch["text_ids"], batch["text_mask"])
    bos, eos = m.config.tokens.bos_token_id, m.config.tokens.eos_token_id
    for i, (row, (_, sc)) in enumerate(zip(ids, scored, strict=True)):
        # one forward pass over BOS + the caption (+ its EOS), independent of the decoding loop
        seq = [bos, *row] + ([eos] if sc.eos_logprob is not None else [])
        with torch.no_grad():
            logits = m.decoder(torch.tensor([seq[:-1]]), ctx[i : i + 1])[0].float()
        want = logits.log_softmax(-1).gather(1, torch.tensor(seq[1:])[:, None])[:, 0].tolist()
        got = sc.logprobs + ([sc.eos_logprob] if sc.eos_logprob is not None else [])
        assert got == pytest.approx(want, abs=1e-5)
        assert sc.confidence <= 0 and sc.perplexity >= 1


def test_items_without_video_caption_a_text_only_model():
    from _helpers import tiny_recap, word_tokenizer

    model, tok = tiny_recap("video", modalities="text"), word_tokenizer()
    items = [CaptionItem(None, text="w1 w2"), CaptionItem(None, text="w3")]
    batch = collate_items(model, tok, items)
    assert batch["video"] is None and batch["video_mask"] is None and batch["text_ids"].shape == (2, 2)
    assert len(caption_batch(model, tok, "video", items)) == 2
    with pytest.raises(ValueError, match="mixes items with and without video"):
        collate_items(model, tok, [items[0], CaptionItem(torch.zeros(4, 32), text="w1")])
