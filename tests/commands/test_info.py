"""`videorecap info MODEL`, driven in-process through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from videorecap.checkpoint import save_encoder, save_pretrained
from videorecap.cli import main
from videorecap.config import RecapConfig
from videorecap.model.recap import VideoRecap
from videorecap.tokenizer import Tokenizer


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert main(["info", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(
    ("level", "trainable", "total"),
    # trainable counts of the original at recap-base (reference §1.7); totals are ours (no unused BERT parts)
    [("clip", 99.47, 423.10), ("segment", 113.68, 408.19), ("video", 113.85, 408.37)],
)
def test_preset_counts_match_the_original(
    level: str, trainable: float, total: float, capsys: pytest.CaptureFixture[str]
) -> None:
    info = _json(capsys, "recap-base", "--level", level)
    assert (info["source"], info["name"], info["level"], info["levels"]) == ("preset", "recap-base", level, [level])
    p = info["parameters"]
    assert round(p["total"]["trainable"] / 1e6, 2) == trainable
    assert round(p["total"]["total"] / 1e6, 2) == total
    assert round(p["decoder"]["trainable"] / 1e6, 2) == 85.09  # gated xattn + ln_1/ln_2
    assert round(p["decoder"]["total"] / 1e6, 2) == 209.49  # GPT-2 124.44M + 85.05M of cross-attention
    assert round(p["video_aligner"]["trainable"] / 1e6, 2) == 14.18  # the Q-Former's cross-attention
    if level == "clip":
        # TimeSformer-B from the reference shapes: 12 blocks x 9,451,776 + embeddings/ln_pre/norm 748,032
        assert p["encoder"] == {"trainable": 0, "frozen": 114_169_344, "total": 114_169_344}
        assert info["sizes"]["encoder"]["tokens_per_clip"] == 785
    else:
        assert "encoder" not in p and info["sizes"]["encoder"] is None
    for part in ("trainable", "frozen", "total"):
        assert p["total"][part] == sum(c[part] for k, c in p.items() if k != "total")
    q = {"clip": (256, 0), "segment": (32, 256), "video": (256, 256)}[level]
    assert (info["sizes"]["queries"]["video"], info["sizes"]["queries"]["text"]) == q
    assert info["tokenizer"]["source"] == "gpt2" and info["tokenizer"]["bos_id"] == 50256


def test_preset_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "recap-base", "--level", "segment"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("recap-base: recap-base, segment level (preset, built without weights)\n")
    assert "queries:       32 video + 256 text = 288 context tokens" in out
    assert "features:      segment 80 (uniform)" in out
    assert "max tokens:    segment 77; previous-level text up to 512 tokens" in out
    assert "GPT-2 byte-level BPE (built offline), 50257 tokens, bos 50256, eos 50256, pad 0" in out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.startswith(("decoder ", "total "))}
    assert rows["decoder"] == ["85.09M", "124.40M", "209.49M"]
    assert rows["total"] == ["113.68M", "294.51M", "408.19M"]


def test_unified_preset(capsys: pytest.CaptureFixture[str]) -> None:
    info = _json(capsys, "recap-u-base")
    assert info["levels"] == ["clip", "segment", "video"]
    assert info["sizes"]["features"] == {
        "segment": {"count": 512, "sampling": "uniform"},
        "video": {"count": 512, "sampling": "masking"},
    }
    assert info["sizes"]["max_new_tokens"] == {"clip": 77, "segment": 77, "video": 120}


def test_checkpoint_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = VideoRecap(RecapConfig.from_name("recap-tiny", level="video"))
    tok = Tokenizer.train_word_level(["#C C picks the cabbage", "C cooks"])
    ck = save_pretrained(model, tmp_path / "ck", tokenizer=tok, meta={"recipe": "synth", "metrics": {"cider": 12.5}})
    info = _json(capsys, str(ck))
    assert (info["source"], info["level"]) == ("checkpoint", "video")
    # exact counts of the real model, split by requires_grad
    params = list(model.named_parameters())
    trainable = sum(p.numel() for _, p in params if p.requires_grad)
    frozen = sum(p.numel() for _, p in params if not p.requires_grad)
    assert info["parameters"]["total"] == {"trainable": trainable, "frozen": frozen, "total": trainable + frozen}
    dec = sum(p.numel() for n, p in params if n.startswith("decoder."))
    assert info["parameters"]["decoder"]["total"] == dec
    assert list(info["parameters"]) == [
        "video_queries",
        "video_aligner",
        "text_queries",
        "text_aligner",
        "decoder",
        "total",
    ]
    assert info["tokenizer"] == {"source": "tokenizer.json", **tok.describe()}
    assert info["meta"]["recipe"] == "synth" and info["meta"]["metrics"] == {"cider": 12.5}
    assert set(info["files"]) == {"config.json", "meta.json", "model.safetensors", "tokenizer.json"}

    assert main(["info", str(ck)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{ck}: recap-tiny, video level (checkpoint)\n")
    assert f"tokenizer:     tokenizer.json (WordLevel), {tok.vocab_size} tokens, bos 1, eos 2, pad 0" in out
    assert 'metrics:             {"cider": 12.5}' in out
    assert f"{trainable:,}" in out


def test_encoder_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    enc = VideoRecap(RecapConfig.from_name("recap-tiny")).encoder
    folder = save_encoder(enc, tmp_path / "enc")
    info = _json(capsys, str(folder))
    assert info["kind"] == "encoder"
    assert info["parameters"]["total"]["total"] == sum(p.numel() for p in enc.parameters())
    assert main(["info", str(folder)]) == 0
    assert "encoder-only checkpoint" in capsys.readouterr().out


def test_user_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "recap-nonsense"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("videorecap info: error: recap-nonsense: no such checkpoint folder, and not a preset")
    assert len(err.splitlines()) == 1
    assert main(["info", "recap-u-base", "--level", "clip"]) == 2
    assert "recap-u-base is a unified model" in capsys.readouterr().err
    ck = save_pretrained(VideoRecap(RecapConfig.from_name("recap-tiny")), tmp_path / "ck")
    assert main(["info", str(ck), "--level", "segment"]) == 2
    assert "--level only applies to presets" in capsys.readouterr().err
    orig = tmp_path / "clip.pt"
    torch.save({"state_dict": {"module.text_decoder.lm_head.weight": torch.zeros(1)}}, orig)
    assert main(["info", str(orig)]) == 2
    assert f"convert it first with `videorecap convert official {orig} OUT`" in capsys.readouterr().err


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["info", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "checkpoint folder, or a preset" in out and "--json" in out


def test_presets_registered_elsewhere(capsys: pytest.CaptureFixture[str]) -> None:
    # recap-synth registers itself on first use through RecapConfig.from_name
    info = _json(capsys, "recap-synth", "--level", "segment")
    assert (info["name"], info["level"]) == ("recap-synth", "segment")
    assert info["tokenizer"]["bos_id"] == 1


def test_info_refuses_a_config_that_does_not_fit_the_weights_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ck = save_pretrained(VideoRecap(RecapConfig.from_name("recap-tiny", level="clip")), tmp_path / "ck")
    cfg = json.loads((ck / "config.json").read_text())
    cfg["arch"]["decoder"]["n_layer"] = 5_000_000  # described on the meta device, this took minutes
    (ck / "config.json").write_text(json.dumps(cfg))
    assert main(["info", str(ck)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "decoder.n_layer is 5000000, but model.safetensors holds 2 layers" in err


@pytest.mark.parametrize(("key", "value"), [("width", "32"), ("heads", 3), ("heads", 0)])
def test_info_reports_a_bad_config_field(
    key: str, value: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ck = save_pretrained(VideoRecap(RecapConfig.from_name("recap-tiny", level="clip")), tmp_path / "ck")
    cfg = json.loads((ck / "config.json").read_text())
    cfg["arch"]["encoder"][key] = value  # used to be reported as fine, or end in a TypeError traceback
    (ck / "config.json").write_text(json.dumps(cfg))
    assert main(["info", str(ck)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(ck / "config.json") in err and f"encoder.{key}" in err
