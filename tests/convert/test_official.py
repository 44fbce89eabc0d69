"""official_to_recap on fake released checkpoints: every tensor lands where it belongs, the model runs identically."""

from __future__ import annotations

import functools

import pytest
import torch
from fakes import (
    official_args,
    official_state_dict,
    random_model,
    tiny_config,
)

from videorecap.config import RecapConfig
from videorecap.convert.official import (
    R_BERT_WORDS,
    R_LM_HEAD,
    R_MLM,
    R_POSITION_IDS,
    R_STALE,
    R_TEXT_FFN,
    official_to_recap,
)
from videorecap.errors import CheckpointError
from videorecap.infer.decode import DecodeConfig, generate_ids
from videorecap.levelio import FeatureSampling
from videorecap.model.recap import VideoRecap


def _convert(level: str, dtype: torch.dtype = torch.float32, **kw):
    cfg = tiny_config(level)
    model = random_model(cfg)
    sd = official_state_dict(model, dtype)
    kw.setdefault("tokens", cfg.tokens)
    new_cfg, out, report = official_to_recap(sd, kw.pop("args", official_args(level)), **kw)
    return model, sd, new_cfg, out, report


def _inputs(cfg: RecapConfig, level: str, B: int = 3) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    if level == "clip":
        e = cfg.encoder
        return {"video": torch.randn(B, 3, e.num_frames, e.image_size, e.image_size, generator=g)}
    feats = torch.randn(B, 10, cfg.encoder.width, generator=g)
    mask = torch.ones(B, 10, dtype=torch.bool)
    mask[0, 6:] = False
    text = torch.randint(3, cfg.decoder.vocab_size, (B, 9), generator=g)
    text_mask = torch.ones(B, 9, dtype=torch.bool)
    text_mask[1, 5:] = False
    return {"video": feats, "video_mask": mask, "text_ids": text, "text_mask": text_mask}


def _sizes(cfg: RecapConfig) -> dict:
    d = cfg.to_dict()["arch"]
    keep = ("video_aligner", "decoder", "tokens", "num_video_queries", "num_text_queries")
    out = {k: d[k] for k in keep}
    if cfg.has_encoder:
        out["encoder"] = d["encoder"]
    if cfg.has_text:
        out["text_aligner"] = d["text_aligner"]
    return out


@pytest.mark.parametrize(
    ("level", "dtype"),
    [
        ("clip", torch.float32),
        ("segment", torch.float32),
        ("video", torch.float16),
        ("unified", torch.float32),
    ],
)
def test_round_trip_is_exact_and_generates_the_same(level: str, dtype: torch.dtype) -> None:
    model, _, cfg, out, _ = _convert(level, dtype)
    assert cfg.level == level
    assert _sizes(cfg) == _sizes(model.config)  # every size inferred from shapes alone
    assert cfg.encoder.width == model.config.encoder.width  # the feature width of segment/video models too

    loaded = VideoRecap(cfg).eval()
    loaded.load_state_dict(out, strict=True)
    original = model.state_dict()
    assert set(loaded.state_dict()) == set(original)
    for k, v in loaded.state_dict().items():
        assert v.dtype == torch.float32, k
        assert torch.equal(v, original[k].to(dtype).float()), k

    if dtype != torch.float32:  # compare runs against the original rounded the same way
        model.load_state_dict({k: v.to(dtype).float() for k, v in original.items()})
    for lv in cfg.levels:
        x = _inputs(cfg, lv)
        a = generate_ids(model, lv, **x, decode=DecodeConfig(max_new_tokens=10))
        b = generate_ids(loaded, lv, **x, decode=DecodeConfig(max_new_tokens=10))
        assert a == b
        assert any(len(row) > 0 for row in a)
        ids = torch.randint(3, cfg.decoder.vocab_size, (3, 6))
        assert torch.equal(model(lv, ids, **x)[1], loaded(lv, ids, **x)[1])


def test_report_accounts_for_every_source_key() -> None:
    _, sd, cfg, out, report = _convert("segment")
    assert set(report.used) | set(report.dropped) == set(sd)
    assert not set(report.used) & set(report.dropped)
    assert sorted(report.used.values()) == sorted(out)
    # examples of each mapping rule
    assert report.used["module.video_mapper.mapper.bert.encoder.layer.2.crossattention.self.key.weight"] == (
        "video_aligner.layers.2.xattn.key.weight"
    )
    assert report.used["module.text_mapper.mapper.bert.encoder.layer.1.output_query.LayerNorm.bias"] == (
        "text_aligner.layers.1.ffn_ln.bias"
    )
    assert report.used["module.text_mapper.mapper.bert.embeddings.LayerNorm.weight"] == "text_aligner.ln.weight"
    assert report.used["module.text_decoder.transformer.h.1.crossattention.q_attn.weight"] == (
        "decoder.h.1.xattn.c_q.weight"
    )
    assert report.used["module.text_decoder.transformer.h.0.alpha_dense"] == "decoder.h.0.xmlp_gate"
    # Conv1D weights are transposed
    src = sd["module.text_decoder.transformer.h.0.crossattention.c_attn.weight"]
    assert torch.equal(out["decoder.h.0.xattn.c_kv.weight"], src.t())
    d = report.dropped
    m = "module.video_mapper.mapper."
    assert d[m + "bert.embeddings.word_embeddings.weight"] == R_BERT_WORDS
    assert d[m + "bert.embeddings.position_ids"] == R_POSITION_IDS
    assert d[m + "bert.encoder.layer.1.intermediate.dense.weight"] == R_TEXT_FFN
    assert d[m + "bert.encoder.layer.0.output.LayerNorm.bias"] == R_TEXT_FFN
    assert d[m + "cls.predictions.decoder.weight"] == R_MLM
    assert d["module.text_decoder.lm_head.weight"] == R_LM_HEAD
    assert d["module.text_decoder.transformer.h.1.attn.masked_bias"] == R_STALE
    assert d["module.text_decoder.transformer.h.0.crossattention.bias"] == R_STALE
    assert len(report.dropped_by_reason()[R_TEXT_FFN]) == 2 * 3 * 6  # 2 Q-Formers x 3 layers x 6 tensors


def test_settings_come_from_args() -> None:
    args = official_args("video", num_video_feat=512, video_sampling_type="masking", max_gen_tokens=100)
    _, _, cfg, _, report = _convert("video", args=args)
    assert (cfg.io.video, cfg.io.max_new_tokens["video"]) == (FeatureSampling(512, "masking"), 100)
    args = official_args("segment", num_video_feat=40)
    _, _, cfg, _, _ = _convert("segment", args=args)
    assert (cfg.io.segment, cfg.io.max_new_tokens["segment"]) == (FeatureSampling(40, "uniform"), 77)
    # ReCap-U: 512 features at both feature levels, whatever the clip loader's num_video_feat
    _, _, cfg, _, _ = _convert("unified")
    assert (cfg.num_features("segment"), cfg.num_features("video"), cfg.io.max_new_tokens["video"]) == (512, 512, 120)


def test_decoding_lengths_fit_the_positions() -> None:
    cfg = tiny_config("video", n_positions=64)
    sd = official_state_dict(random_model(cfg))
    new, _, report = official_to_recap(sd, official_args("video"), tokens=cfg.tokens)
    assert new.io.max_new_tokens == {"clip": 63, "segment": 63, "video": 63}
    assert any("cut to 63" in n for n in report.notes)


def test_without_args_the_defaults_are_used_and_noted() -> None:
    cfg = tiny_config("segment", queries=(32, 8))
    sd = official_state_dict(random_model(cfg))
    new, _, report = official_to_recap(sd, None, tokens=cfg.tokens)
    assert new.level == "segment"  # from the 32 video queries
    assert new.io.segment == FeatureSampling(80, "uniform")
    assert any("no args" in n for n in report.notes)


@pytest.mark.parametrize(
    ("queries", "args", "level"),
    [
        ((32, 8), {}, "segment"),
        ((256, 8), {}, "video"),
        ((12, 8), {"video_sampling_type": "masking"}, "video"),
        ((12, 8), {"video_sampling_type": "uniform"}, "segment"),
        ((256, 8), {"metadata": "x/segments_train_pseudo.pkl"}, "segment"),  # metadata wins over the query count
    ],
)
def test_segment_or_video_rule(queries: tuple[int, int], args: dict, level: str) -> None:
    cfg = tiny_config("video", queries=queries)
    sd = official_state_dict(random_model(cfg))
    assert official_to_recap(sd, args, tokens=cfg.tokens)[0].level == level


def test_undecidable_level_asks_for_it_and_a_wrong_level_is_refused() -> None:
    cfg = tiny_config("video", queries=(12, 8))
    sd = official_state_dict(random_model(cfg))
    with pytest.raises(CheckpointError, match="--level"):
        official_to_recap(sd, {}, tokens=cfg.tokens)
    assert official_to_recap(sd, {}, level="video", tokens=cfg.tokens)[0].level == "video"
    with pytest.raises(CheckpointError, match="no video encoder and a text aligner, which cannot be a clip-level"):
        official_to_recap(sd, {}, level="clip", tokens=cfg.tokens)


def test_a_non_gpt2_vocabulary_needs_its_tokens() -> None:
    cfg = tiny_config("clip")
    sd = official_state_dict(random_model(cfg))
    with pytest.raises(CheckpointError, match="not GPT-2's 50257"):
        official_to_recap(sd, official_args("clip"))


@functools.cache
def _clip_fake() -> tuple[RecapConfig, dict[str, torch.Tensor]]:
    cfg = tiny_config("clip")
    return cfg, official_state_dict(random_model(cfg))


def _broken(change) -> str:
    cfg, sd = _clip_fake()
    sd = dict(sd)  # tensors are replaced, never modified in place
    change(sd)
    with pytest.raises(CheckpointError) as e:
        official_to_recap(sd, official_args("clip"), tokens=cfg.tokens, source="ckpt.pt")
    msg = str(e.value)
    assert msg.startswith("ckpt.pt: ") and "\n" not in msg
    return msg


def test_missing_unknown_and_misshapen_keys_are_named() -> None:
    def missing(sd):
        del sd["module.text_decoder.transformer.h.1.ln_1.weight"]

    assert "decoder.h.1.ln_1.weight" in _broken(missing)

    def missing_vision(sd):
        del sd["module.vision_model.blocks.1.timeattn.qkv.bias"]

    assert "encoder.blocks.1.timeattn.qkv.bias" in _broken(missing_vision)

    def unknown(sd):
        sd["module.text_decoder.transformer.h.0.adapter.weight"] = torch.zeros(3)
        sd["module.video_mapper.mapper.bert.pooler.dense.weight"] = torch.zeros(3)

    msg = _broken(unknown)
    assert "module.text_decoder.transformer.h.0.adapter.weight" in msg
    assert "module.video_mapper.mapper.bert.pooler.dense.weight" in msg

    def shape(sd):
        k = "module.video_mapper.mapper.bert.encoder.layer.1.intermediate_query.dense.bias"
        sd[k] = torch.zeros(sd[k].shape[0] + 1)

    msg = _broken(shape)
    assert "layer.1.intermediate_query.dense.bias" in msg and "[97]" in msg and "[96]" in msg

    def untransposed(sd):  # a Conv1D weight left in nn.Linear layout
        k = "module.text_decoder.transformer.h.1.mlp.c_fc.weight"
        sd[k] = sd[k].t().contiguous()

    assert "h.1.mlp.c_fc.weight" in _broken(untransposed)

    def untied(sd):
        sd["module.text_decoder.lm_head.weight"] = sd["module.text_decoder.lm_head.weight"] + 1

    assert "lm_head.weight" in _broken(untied)

    def irregular(sd):  # cross-attention moved from layer 2 to layer 1 of a 3-layer Q-Former: not every n-th
        src = "module.video_mapper.mapper.bert.encoder.layer.2.crossattention."
        for k in [k for k in sd if k.startswith(src)]:
            sd[k.replace("layer.2.", "layer.1.")] = sd.pop(k)

    assert "not every n-th layer" in _broken(irregular)


def test_foreign_state_dicts_are_refused_with_a_hint() -> None:
    with pytest.raises(CheckpointError, match="convert lavila"):
        official_to_recap({"module.visual.cls_token": torch.zeros(1, 1, 64)}, {}, source="x.pth")
    with pytest.raises(CheckpointError, match="not an original Video ReCap checkpoint"):
        official_to_recap({"weight": torch.zeros(3)}, {}, source="x.pt")
    with pytest.raises(CheckpointError, match="not a tensor"):
        official_to_recap({"module.video_queries": [1, 2]}, {}, source="x.pt")  # type: ignore[dict-item]


def _full_size(name: str, level: str) -> None:
    # meta tensors: the shapes of the released models at no memory cost; only their sizes are checked
    cfg = RecapConfig.from_name(name, level=level)
    with torch.device("meta"):
        model = VideoRecap(cfg)
    sd = official_state_dict(model, torch.float16)
    new, out, report = official_to_recap(sd, official_args(level))
    assert new.level == level
    assert _sizes(new) == _sizes(cfg)  # recap-base: TimeSformer-B, 12-layer Q-Formers, GPT-2 small, 50257 tokens
    assert len(out) == len(model.state_dict())
    n_mappers = 2 if cfg.has_text else 1
    assert len(report.dropped) == n_mappers * (2 + 1 + 12 * 6 + 6) + 1 + 12 * 4


@pytest.mark.parametrize(
    ("name", "level"),
    [
        ("recap-base", "clip"),
        ("recap-base", "segment"),
        pytest.param("recap-base", "video", marks=pytest.mark.slow),
        pytest.param("recap-u-base", "unified", marks=pytest.mark.slow),
    ],
)
def test_full_size_shapes(name: str, level: str) -> None:
    _full_size(name, level)
