"""Checkpoint folders: bit-exact round trips, strict loading, atomic writes, foreign files, safe unpickling."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from videorecap import checkpoint as ckpt
from videorecap.checkpoint import (
    load_encoder,
    load_model,
    read_config,
    read_meta,
    safe_torch_load,
    save_encoder,
    save_pretrained,
)
from videorecap.config import LEVELS, RecapConfig, TokenConfig
from videorecap.convert.sniff import sniff_file
from videorecap.errors import CheckpointError, InputError
from videorecap.infer.decode import generate_ids
from videorecap.levelio import FeatureSampling
from videorecap.model.encoder import VideoEncoder
from videorecap.model.recap import VideoRecap
from videorecap.tokenizer import Tokenizer

WORDS = ["#C C picks the cabbage.", "#C C puts the knife down", "C walks to the door, then opens it!"]


def _model(level: str = "clip", seed: int = 0) -> VideoRecap:
    torch.manual_seed(seed)
    m = VideoRecap(RecapConfig.from_name("recap-tiny", level=level))
    # make the zero-initialised gates non-zero so the round trip checks real values everywhere
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    return m


def _assert_same(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert sa[k].dtype == sb[k].dtype, k
        assert torch.equal(sa[k], sb[k]), k
    assert [p.requires_grad for p in a.parameters()] == [p.requires_grad for p in b.parameters()]


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer.train_word_level(WORDS)


@pytest.mark.parametrize("level", [*LEVELS, "unified"])
def test_round_trip_bit_exact(level: str, tmp_path: Path, tok: Tokenizer) -> None:
    m = _model(level)
    out = save_pretrained(m, tmp_path / "ck", tokenizer=tok, meta={"recipe": "test", "seed": 3})
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "meta.json", "model.safetensors", "tokenizer.json"]
    assert os.listdir(tmp_path) == ["ck"]  # no temporary leftovers
    m2, tok2 = load_model(out)
    _assert_same(m, m2)
    assert not m2.training
    assert m2.config.to_dict() == m.config.to_dict()
    assert tok2 is not None and (tok2.bos_id, tok2.eos_id, tok2.pad_id) == (1, 2, 0)
    assert [tok2.encode(t) for t in WORDS] == [tok.encode(t) for t in WORDS]
    # every tensor is in the file, contiguous fp32, under the state_dict names
    stored = load_file(out / "model.safetensors")
    assert set(stored) == set(m.state_dict())
    assert {t.dtype for t in stored.values()} == {torch.float32}
    meta = read_meta(out)
    assert meta["recipe"] == "test" and meta["seed"] == 3 and meta["level"] == level
    assert meta["videorecap_version"] and meta["created"].endswith("+00:00")
    assert meta["num_parameters"] == sum(t.numel() for t in m.state_dict().values())
    cfg = read_config(out)
    assert (cfg["kind"], cfg["format_version"], sorted(cfg)) == ("recap", 2, ["arch", "format_version", "io", "kind"])


def test_loaded_model_generates_the_same(tmp_path: Path) -> None:
    m = _model("segment").eval()
    save_pretrained(m, tmp_path / "ck")
    m2, _ = load_model(tmp_path / "ck")
    cfg = m.config
    torch.manual_seed(1)
    feats = torch.randn(2, cfg.num_features("segment"), cfg.encoder.width)
    text = torch.randint(3, cfg.decoder.vocab_size, (2, 10))
    mask = torch.ones(2, 10, dtype=torch.bool)
    with torch.no_grad():
        a = generate_ids(m, "segment", video=feats, text_ids=text, text_mask=mask)
        b = generate_ids(m2, "segment", video=feats, text_ids=text, text_mask=mask)
    assert a == b


def test_dtype(tmp_path: Path) -> None:
    m = _model("segment")
    save_pretrained(m, tmp_path / "ck", dtype=torch.float16)
    assert {t.dtype for t in load_file(tmp_path / "ck" / "model.safetensors").values()} == {torch.float16}
    # upcast to the model's dtype (it used to load as float16, and a float32 input then failed deep in a layer)
    m32, _ = load_model(tmp_path / "ck")
    assert {p.dtype for p in m32.parameters()} == {torch.float32}
    w = m.decoder.wte.weight
    assert torch.equal(m32.decoder.wte.weight, w.half().float())
    m16, _ = load_model(tmp_path / "ck", dtype=torch.float16)  # asked for
    assert next(m16.parameters()).dtype == torch.float16


def test_same_model_same_bytes(tmp_path: Path) -> None:
    # safetensors writes its metadata from a Rust HashMap, in a new order on each save: two identical training runs
    # gave different model.safetensors files. The header is now written with sorted keys.
    model = VideoRecap(RecapConfig.from_name("recap-tiny", level="clip"))
    files = set()
    for i in range(8):
        save_pretrained(model, tmp_path / f"c{i}", meta={"seed": 0})
        files.add((tmp_path / f"c{i}" / "model.safetensors").read_bytes())
    assert len(files) == 1
    header = json.loads(next(iter(files))[8:].split(b"}}", 1)[0] + b"}}")
    assert header["__metadata__"] == {"format": "pt", "videorecap_format_version": str(ckpt.WEIGHTS_FORMAT_VERSION)}
    assert "created" in json.loads((tmp_path / "c0" / "meta.json").read_text())  # the time stays in meta.json
    loaded = load_file(tmp_path / "c0" / "model.safetensors")  # a standard reader takes the rewritten header
    assert all(torch.equal(loaded[k], v) for k, v in model.state_dict().items())


def test_overwrite_rules(tmp_path: Path) -> None:
    a, b = _model("clip", seed=0), _model("clip", seed=1)
    save_pretrained(a, tmp_path / "ck")
    with pytest.raises(CheckpointError, match="already exists; pass overwrite=True"):
        save_pretrained(b, tmp_path / "ck")
    _assert_same(load_model(tmp_path / "ck")[0], a)
    save_pretrained(b, tmp_path / "ck", overwrite=True)
    _assert_same(load_model(tmp_path / "ck")[0], b)
    assert os.listdir(tmp_path) == ["ck"]
    # an empty folder is fine; a folder that is not a checkpoint is never replaced, even with overwrite
    (tmp_path / "empty").mkdir()
    save_pretrained(a, tmp_path / "empty")
    other = tmp_path / "mystuff"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(CheckpointError, match="not a checkpoint folder"):
        save_pretrained(a, other, overwrite=True)
    assert (other / "notes.txt").read_text() == "keep me"


def test_interrupted_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = _model("clip")
    save_pretrained(a, tmp_path / "old")

    def boom(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt.fileio, "write_json", boom)
    with pytest.raises(KeyboardInterrupt):
        save_pretrained(a, tmp_path / "new")
    with pytest.raises(KeyboardInterrupt):
        save_pretrained(_model("clip", seed=5), tmp_path / "old", overwrite=True)
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["old"]  # no "new", no temporary folders
    _assert_same(load_model(tmp_path / "old")[0], a)  # the old checkpoint is untouched


def _tamper(folder: Path, edit) -> None:  # noqa: ANN001
    f = folder / "model.safetensors"
    tensors = load_file(f)
    edit(tensors)
    save_file(tensors, f)


def test_strict_loading(tmp_path: Path) -> None:
    m = _model("segment")
    ck = save_pretrained(m, tmp_path / "ck")

    _tamper(ck, lambda t: t.pop("video_queries"))
    with pytest.raises(CheckpointError, match=r"1 missing keys: video_queries"):
        load_model(ck)

    save_pretrained(m, ck, overwrite=True)
    _tamper(ck, lambda t: t.update({"decoder.extra": torch.zeros(2)}))
    with pytest.raises(CheckpointError, match=r"1 unexpected keys: decoder.extra"):
        load_model(ck)

    save_pretrained(m, ck, overwrite=True)
    _tamper(ck, lambda t: t.update({"text_queries": torch.zeros(3, 32)}))
    # found from the header, before the model is built: the config key and the tensor are named
    with pytest.raises(CheckpointError, match=r"num_text_queries implies 8 for text_queries, but .* \[3, 32\]"):
        load_model(ck)

    save_pretrained(m, ck, overwrite=True)
    _tamper(ck, lambda t: t.update({"decoder.ln_f.weight": torch.zeros(3)}))  # a shape no config key names
    with pytest.raises(CheckpointError, match=r"shape mismatches: decoder.ln_f.weight \(3,\) \(model: \(32,\)\)"):
        load_model(ck)

    # a config that does not match the weights
    save_pretrained(m, ck, overwrite=True)
    cfg = json.loads((ck / "config.json").read_text())
    cfg["arch"]["num_text_queries"] = 4
    (ck / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="num_text_queries implies 4 .* does not match the weights"):
        load_model(ck)
    cfg["arch"]["no_such_field"] = 1
    (ck / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"config.json: bad model config .*no_such_field"):
        load_model(ck)
    (ck / "config.json").write_text("{")
    with pytest.raises(CheckpointError, match="config.json: cannot read the checkpoint config"):
        load_model(ck)


def test_truncated_safetensors(tmp_path: Path) -> None:
    ck = save_pretrained(_model("clip"), tmp_path / "ck")
    f = ck / "model.safetensors"
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="model.safetensors: corrupt or truncated"):
        load_model(ck)
    f.write_bytes(data[:5])
    with pytest.raises(CheckpointError, match="model.safetensors: corrupt or truncated"):
        load_model(ck)


def test_the_bundled_models_name_says_how_to_load_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `load_model` takes one folder; the CLI and Captioner.load also take the bundled model's name. Given the name,
    # the error says both ways, and the ways it gives work.
    monkeypatch.chdir(tmp_path)  # no folder of that name here
    with pytest.raises(CheckpointError) as err:
        load_model("recap-synth")
    msg = str(err.value)
    assert "bundled" in msg and "Captioner.load('recap-synth')" in msg and "bundled_model_dir('recap-synth')" in msg
    from videorecap.config import bundled_model_dir
    from videorecap.pipeline import Captioner

    model, tok = load_model(bundled_model_dir("recap-synth") / "clip")
    assert model.config.level == "clip" and tok is not None
    assert set(Captioner.load("recap-synth").levels) == {"clip", "segment", "video"}
    with pytest.raises(CheckpointError, match=r"^recap-nonsense: no such checkpoint folder$"):
        load_model("recap-nonsense")  # any other missing name: no hint


def test_not_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such checkpoint folder"):
        load_model(tmp_path / "missing")
    rnd = tmp_path / "random.pt"
    rnd.write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError, match=r"random.pt is not a videorecap checkpoint \(expected a folder"):
        load_model(rnd)
    with pytest.raises(CheckpointError, match="no config.json"):
        load_model(tmp_path)
    bare = tmp_path / "weights.safetensors"
    save_file({"a": torch.zeros(1)}, bare)
    with pytest.raises(CheckpointError, match="is a bare safetensors file"):
        load_model(bare)
    enc = save_encoder(_model("clip").encoder, tmp_path / "enc")
    with pytest.raises(CheckpointError, match="is an encoder-only checkpoint"):
        load_model(enc)
    cfg = json.loads((enc / "config.json").read_text())
    cfg["format_version"] = 99
    (enc / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="format version 99 is not supported"):
        load_model(enc)


def test_original_and_lavila_files_are_recognised(tmp_path: Path) -> None:
    sd = {"module.text_decoder.transformer.wte.weight": torch.zeros(4, 2), "module.video_queries": torch.zeros(2, 2)}
    orig = tmp_path / "videorecap_clip.pt"
    torch.save({"epoch": 5, "state_dict": sd, "args": argparse.Namespace(lr=1e-4)}, orig)
    with pytest.raises(CheckpointError) as e:
        load_model(orig)
    assert str(e.value) == (
        f"{orig} is an original Video ReCap checkpoint: convert it first with `videorecap convert official {orig} OUT`"
    )
    lav = tmp_path / "lavila.pth"
    torch.save(
        {"state_dict": {"module.visual.cls_token": torch.zeros(1), "module.image_projection": torch.zeros(1)}}, lav
    )
    with pytest.raises(CheckpointError, match="is a LaViLa checkpoint: convert its video encoder"):
        load_model(lav)
    # the legacy (non-zip) torch.save format is sniffed too
    legacy = tmp_path / "legacy.pt"
    torch.save({"state_dict": sd}, legacy, _use_new_zipfile_serialization=False)
    assert sniff_file(legacy) == "videorecap-original"
    plain = tmp_path / "plain.pt"
    torch.save({"w": torch.zeros(1)}, plain)
    with pytest.raises(CheckpointError, match="is a PyTorch pickle, not a videorecap checkpoint folder"):
        load_model(plain)
    # a folder holding the .pt gets a hint
    with pytest.raises(CheckpointError, match="holds lavila.pth, legacy.pt, plain.pt"):
        load_model(tmp_path)


class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (os.system, (f"touch {self.marker}",))


class _Custom:
    pass


def test_safe_torch_load(tmp_path: Path) -> None:
    good = tmp_path / "good.pt"
    torch.save({"state_dict": {"w": torch.arange(3.0)}, "args": argparse.Namespace(lr=0.1, name="x")}, good)
    d = safe_torch_load(good)
    assert isinstance(d["args"], argparse.Namespace) and d["args"].lr == 0.1
    assert torch.equal(d["state_dict"]["w"], torch.arange(3.0))

    marker = tmp_path / "PWNED"
    evil = tmp_path / "evil.pt"
    torch.save({"x": _Evil(str(marker))}, evil)
    with pytest.raises(CheckpointError, match=r"evil.pt: refused to unpickle `(posix|nt|os)\.system`"):
        safe_torch_load(evil)
    # sniffing and loading as a folder never execute it either
    with pytest.raises(CheckpointError, match="is a PyTorch pickle"):
        load_model(evil)
    assert not marker.exists()

    custom = tmp_path / "custom.pt"
    torch.save({"x": _Custom()}, custom)
    with pytest.raises(CheckpointError, match=r"refused to unpickle `[\w.]*_Custom`"):
        safe_torch_load(custom)

    rnd = tmp_path / "rnd.pt"
    for seed in range(20):  # garbage breaks the unpickler in many different ways; each must be a clean error
        rnd.write_bytes(np.random.default_rng(seed).bytes(512))
        with pytest.raises(CheckpointError, match="rnd.pt: not a readable PyTorch checkpoint"):
            safe_torch_load(rnd)
    with pytest.raises(CheckpointError, match="no such file"):
        safe_torch_load(tmp_path / "nope.pt")


def test_load_encoder(tmp_path: Path) -> None:
    clip, unified = _model("clip"), _model("unified", seed=2)
    save_pretrained(clip, tmp_path / "clip")
    save_pretrained(unified, tmp_path / "unified")
    save_encoder(clip.encoder, tmp_path / "enc", meta={"source": "test"})
    for folder, ref in (("clip", clip), ("unified", unified), ("enc", clip)):
        enc = load_encoder(tmp_path / folder)
        assert isinstance(enc, VideoEncoder) and not enc.training
        assert enc.config == ref.encoder.config
        sa, sb = enc.state_dict(), ref.encoder.state_dict()
        assert list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert read_config(tmp_path / "enc")["kind"] == "encoder"
    assert read_meta(tmp_path / "enc")["source"] == "test"
    x = torch.randn(1, 3, 2, 32, 32)
    with torch.no_grad():
        assert torch.equal(load_encoder(tmp_path / "enc")(x, cls_only=True), clip.encoder.eval()(x, cls_only=True))
    save_pretrained(_model("segment"), tmp_path / "seg")
    with pytest.raises(CheckpointError, match="a segment-level model has no video encoder"):
        load_encoder(tmp_path / "seg")


def test_tokenizer_checks(tmp_path: Path, tok: Tokenizer) -> None:
    m = _model("clip")
    gpt2 = Tokenizer.gpt2()
    with pytest.raises(ValueError, match=r"special ids bos/eos/pad \(50256, 50256, 0\) do not match"):
        save_pretrained(m, tmp_path / "ck", tokenizer=gpt2)
    big = Tokenizer.train_word_level([" ".join(f"w{i}" for i in range(200))])
    with pytest.raises(ValueError, match="do not fit the model's vocabulary of 128"):
        save_pretrained(m, tmp_path / "ck", tokenizer=big)
    ck = save_pretrained(m, tmp_path / "ck", tokenizer=tok)
    # a swapped-in tokenizer.json with other special ids is caught
    Tokenizer.from_file(ck / "tokenizer.json", bos_id=2, eos_id=1).save(ck / "tokenizer.json")
    with pytest.raises(CheckpointError, match=r"tokenizer.json: special ids bos/eos/pad \(2, 1, 0\)"):
        load_model(ck)
    # --tokenizer DIR overrides the folder's
    other = tmp_path / "tok"
    other.mkdir()
    tok.save(other)
    _, t = load_model(ck, tokenizer_path=other)
    assert t is not None and t.encode(WORDS[0]) == tok.encode(WORDS[0])
    with pytest.raises(InputError, match="no such tokenizer file"):
        load_model(ck, tokenizer_path=tmp_path / "nope.json")


def test_gpt2_fallback(tmp_path: Path) -> None:
    # a model with GPT-2's vocabulary and special ids (as the released ones) and no tokenizer.json
    cfg = RecapConfig.from_name(
        "recap-tiny", level="segment", tokens=TokenConfig(max_text_tokens=64), decoder={"vocab_size": 50257}
    )
    m = VideoRecap(cfg)
    ck = save_pretrained(m, tmp_path / "ck")
    _, t = load_model(ck)
    assert t is not None and (t.vocab_size, t.bos_id, t.eos_id, t.pad_id) == (50257, 50256, 50256, 0)


def _arch(part: str, **values: object):  # noqa: ANN202
    """An edit of config.json that changes fields of one part of the architecture."""
    return lambda c: c["arch"][part].update(values)


def _edit_config(folder: Path, edit) -> None:  # noqa: ANN001
    cfg = json.loads((folder / "config.json").read_text())
    edit(cfg)
    (folder / "config.json").write_text(json.dumps(cfg))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        # a size that does not fit the weights: found from the header, before any module is built (a billion layers
        # used to be built, on the meta device, for minutes)
        (_arch("decoder", n_layer=1_000_000), r"decoder.n_layer is 1000000, but .* holds 2 layers"),
        (_arch("decoder", vocab_size=10_000_000), r"decoder.vocab_size implies 10000000 for decoder.wte"),
        (_arch("decoder", n_positions=5_000_000), r"decoder.n_positions implies 5000000 for decoder.wpe"),
        (_arch("encoder", layers=9_999), r"encoder.layers is 9999, but .* holds 2 layers"),
        (_arch("video_aligner", intermediate=4096), r"video_aligner.intermediate implies 4096 for video_aligner"),
        # out of any sane bound, or not a whole number
        (_arch("decoder", n_layer=10**9), r"decoder.n_layer is 1000000000, out of bounds"),
        (_arch("decoder", n_layer=1e9), r"decoder.n_layer must be a whole number, got 1000000000.0"),
    ],
)
def test_a_config_that_does_not_fit_the_weights_is_refused_before_building(tmp_path: Path, edit, message) -> None:  # noqa: ANN001
    ck = save_pretrained(_model("unified"), tmp_path / "ck")
    _edit_config(ck, edit)
    with pytest.raises(CheckpointError, match=message) as e:
        load_model(ck)
    assert "\n" not in str(e.value) and str(ck / "config.json") in str(e.value)
    with pytest.raises(CheckpointError, match=message):
        load_encoder(ck)


def test_an_encoder_config_is_checked_against_its_weights(tmp_path: Path) -> None:
    enc = VideoEncoder(RecapConfig.from_name("recap-tiny").encoder)
    ck = save_encoder(enc, tmp_path / "enc")
    _edit_config(ck, lambda c: c["encoder"].update(layers=100_000))
    with pytest.raises(CheckpointError, match=r"encoder.layers is 100000, but .* holds 2 layers"):
        load_encoder(ck)


def _set(path: str, value: object):  # noqa: ANN202
    """An edit of config.json that sets one field, `a.b.c`, to a value."""

    def edit(c: dict) -> None:
        *parents, key = path.split(".")
        for p in parents:
            c = c[p]
        c[key] = value

    return edit


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        # a value of the wrong type, anywhere: a whole number, a number, true/false, a string, one of a set, a section
        ("arch.encoder.width", "128", r'encoder.width must be a whole number, got "128"'),
        ("arch.decoder.n_layer", 1e9, r"decoder.n_layer must be a whole number, got 1000000000.0"),
        ("arch.encoder.mlp_ratio", None, r"encoder.mlp_ratio must be a number, got null"),
        ("arch.decoder.gated", 1, r"decoder.gated must be true or false, got 1"),
        ("arch.name", 5, r"name must be a non-empty string, got 5"),
        ("arch.level", ["clip"], r'level must be one of clip, segment, video, unified, got \["clip"\]'),
        ("arch.encoder", None, r"encoder must be an object of EncoderConfig fields, got null"),
        ("arch.encoder", "x", r'encoder must be an object of EncoderConfig fields, got "x"'),
        ("arch.tokens", [], r"tokens must be an object of TokenConfig fields, got \[\]"),
        ("arch", 3, r"arch must be an object of ArchConfig fields, got 3"),
        ("io.max_new_tokens", None, r"max_new_tokens must be an object"),
        # bounds, and what the modules need of the sizes together
        ("arch.encoder.heads", 0, r"encoder.heads must be at least 1, got 0"),
        ("arch.encoder.heads", -4, r"encoder.heads must be at least 1, got -4"),
        ("arch.encoder.heads", 3, r"encoder.heads \(3\) must divide encoder.width \(32\)"),
        ("arch.video_aligner.heads", 3, r"video_aligner.heads \(3\) must divide video_aligner.width \(32\)"),
        ("arch.text_aligner.heads", 5, r"text_aligner.heads \(5\) must divide text_aligner.width \(32\)"),
        ("arch.decoder.n_head", 3, r"decoder.n_head \(3\) must divide decoder.n_embd \(32\)"),
        ("arch.decoder.n_layer", 0, r"decoder.n_layer must be at least 1, got 0"),
        ("arch.video_aligner.cross_attention_freq", 0, r"video_aligner.cross_attention_freq must be at least 1"),
        ("arch.decoder.dropout", 1.5, r"decoder.dropout must be at least 0 and below 1, got 1.5"),
        ("arch.decoder.eps", 0, r"decoder.eps must be above 0, got 0"),
        ("arch.encoder.patch_size", 64, r"encoder.patch_size \(64\) is larger than encoder.image_size \(32\)"),
        ("arch.decoder.context_width", 64, r"video_aligner.width \(32\) must equal decoder.context_width \(64\)"),
        ("arch.tokens.eos_token_id", 128, r"tokens.eos_token_id is 128, outside the vocabulary .*\(128\)"),
    ],
)
def test_a_config_field_of_the_wrong_type_or_shape_is_refused_naming_it(
    tmp_path: Path, field: str, value: object, message: str
) -> None:
    ck = save_pretrained(_model("unified"), tmp_path / "ck")
    _edit_config(ck, _set(field, value))
    for load in (load_model, load_encoder, read_config):  # read_config is what `info` and the commands check first
        with pytest.raises(CheckpointError, match=message) as e:
            load(ck)
        assert "\n" not in str(e.value) and str(ck / "config.json") in str(e.value)


def test_the_fields_of_an_encoder_only_config_are_checked(tmp_path: Path) -> None:
    ck = save_encoder(VideoEncoder(RecapConfig.from_name("recap-tiny").encoder), tmp_path / "enc")
    for value, message in [
        ("32", r'encoder.width must be a whole number, got "32"'),
        (None, r"encoder.width must be a whole number, got null"),
    ]:
        _edit_config(ck, _set("encoder.width", value))
        with pytest.raises(CheckpointError, match=message):
            load_encoder(ck)
    _edit_config(ck, lambda c: c["encoder"].update(width=32, heads=3))
    with pytest.raises(CheckpointError, match=r"encoder.heads \(3\) must divide encoder.width \(32\)"):
        load_encoder(ck)
    _edit_config(ck, _set("encoder", "x"))
    with pytest.raises(CheckpointError, match=r'encoder must be an object of EncoderConfig fields, got "x"'):
        read_config(ck)


def test_weights_stored_as_integers_are_refused(tmp_path: Path) -> None:
    ck = save_pretrained(_model("clip"), tmp_path / "ints")
    _tamper(ck, lambda t: t.update({"decoder.ln_f.weight": t["decoder.ln_f.weight"].long()}))
    with pytest.raises(CheckpointError, match=r"decoder.ln_f.weight is stored as int64, but the model needs float32"):
        load_model(ck)


def test_a_deeply_nested_config_is_one_error(tmp_path: Path) -> None:
    ck = save_pretrained(_model("clip"), tmp_path / "ck")
    (ck / "config.json").write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(CheckpointError, match="config.json: cannot read the checkpoint config .*nested too deeply"):
        load_model(ck)
    (ck / "meta.json").write_text('{"a":' * 200_000 + "1" + "}" * 200_000)
    with pytest.raises(CheckpointError, match="meta.json: cannot read the checkpoint metadata .*nested too deeply"):
        ckpt.read_meta(ck)


def test_a_full_disk_while_writing_weights_is_an_os_error_naming_the_file(tmp_path, monkeypatch):
    """safetensors reports ENOSPC as its own error type; it must reach the CLI as the OSError it is (one line)."""
    import errno

    from safetensors import SafetensorError

    import videorecap.checkpoint as ck
    from videorecap.errors import describe_os_error

    def full(*a, **k):
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(ck, "save_file", full)
    with pytest.raises(OSError) as info:
        ck.save_pretrained(VideoRecap(RecapConfig.from_name("recap-tiny")), tmp_path / "ckpt")
    assert info.value.errno == errno.ENOSPC and info.value.filename.endswith("model.safetensors")
    assert "No space left on device" in describe_os_error(info.value)
    assert not (tmp_path / "ckpt").exists()  # nothing half-written is left as the checkpoint


# config.json of a recap-tiny segment model as videorecap wrote it before the config split (format 1: one flat
# RecapConfig, training options included), with non-default level I/O
V1_CONFIG = Path(__file__).parent / "_fixtures" / "config_v1_recap_tiny_segment.json"


def test_a_flat_config_json_written_before_the_split_still_loads(tmp_path: Path) -> None:
    old = json.loads(V1_CONFIG.read_text())
    assert old["format_version"] == 1 and old["train_decoder"] is True and "arch" not in old
    torch.manual_seed(0)
    model = VideoRecap(RecapConfig.from_name("recap-tiny", level="segment"))
    ck = save_pretrained(model, tmp_path / "old")
    (ck / "config.json").write_text(json.dumps(old, indent=2))  # the weights fit: same architecture

    loaded, _ = load_model(ck)
    cfg = loaded.config
    assert cfg.arch == model.config.arch
    assert (cfg.io.segment, cfg.io.video) == (FeatureSampling(5, "masking"), FeatureSampling(16, "masking"))
    assert (cfg.io.clip_seconds, cfg.io.segment_seconds, cfg.io.modalities) == (4.0, 40.0, "video+text")
    assert cfg.io.max_new_tokens == {"clip": 12, "segment": 9, "video": 20}
    assert not hasattr(cfg, "train_decoder")  # a training option: the recipe's, not the checkpoint's
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k

    # saved again, it is written in the new format and reads back to the same config
    again = save_pretrained(loaded, tmp_path / "new")
    d = read_config(again)
    assert d["format_version"] == ckpt.FORMAT_VERSION == 2 and "segment_num_features" not in d
    assert load_model(again)[0].config == cfg
