"""`videorecap convert`: released files -> checkpoint folders that load and run; bad files -> one line, exit 2."""

from __future__ import annotations

import argparse
import functools
import json
import os
import pickle
import random
import re
import zipfile
from pathlib import Path

import pytest
import torch
from fakes import (
    official_args,
    official_state_dict,
    random_encoder,
    random_model,
    tiny_config,
    write_lavila,
    write_official,
)

from videorecap.checkpoint import load_encoder, load_model
from videorecap.cli import main
from videorecap.infer.decode import DecodeConfig, generate_ids
from videorecap.model.recap import VideoRecap
from videorecap.tokenizer import Tokenizer


@functools.cache
def _clip_model() -> VideoRecap:
    return random_model(tiny_config("clip"))


def _tokenizer(tmp_path: Path) -> Path:
    tok = Tokenizer.train_word_level(["c picks up the cup", "c puts the knife on the table"])
    return tok.save(tmp_path / "tok.json")


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(["convert", *map(str, argv)])
    out, err = capsys.readouterr()
    return rc, out, err


def test_official_with_gpt2_tokenizer_is_self_contained(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # GPT-2's real vocabulary (50257 rows), fp16 as the released files are
    cfg = tiny_config("video", vocab=50257)
    model = random_model(cfg)
    src = write_official(tmp_path / "videorecap_video.pt", model, official_args("video"), dtype=torch.float16)
    rc, out, err = _run(capsys, "official", src, tmp_path / "out")
    assert rc == 0, err
    assert "video-level Video ReCap" in out and "dropped by design (--verbose lists them)" in out
    assert (tmp_path / "out" / "tokenizer.json").is_file()
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert meta["source"]["file"] == "videorecap_video.pt" and meta["source"]["epoch"] == 5
    assert meta["source"]["args"]["max_gen_tokens"] == 120

    loaded, tok = load_model(tmp_path / "out")
    assert (tok.vocab_size, tok.bos_id, tok.eos_id, tok.pad_id) == (50257, 50256, 50256, 0)
    assert tok.encode("hello world") == [31373, 995]  # the real GPT-2 BPE
    assert loaded.config.level == "video" and loaded.config.io.max_new_tokens["video"] == 120
    got = loaded.state_dict()
    for k, v in model.state_dict().items():
        assert torch.equal(got[k], v.half().float()), k
    model.load_state_dict({k: v.half().float() for k, v in model.state_dict().items()})
    feats, text = torch.randn(2, 5, 128), torch.randint(0, 50257, (2, 7))
    dc = DecodeConfig(max_new_tokens=6)
    assert generate_ids(model, "video", video=feats, text_ids=text, decode=dc) == generate_ids(
        loaded, "video", video=feats, text_ids=text, decode=dc
    )


def test_official_with_own_tokenizer_and_verbose(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = _clip_model()
    src = write_official(tmp_path / "clip.pt", model, official_args("clip"))
    rc, out, err = _run(capsys, "official", src, tmp_path / "out", "--tokenizer", _tokenizer(tmp_path), "--verbose")
    assert rc == 0, err
    assert "clip-level" in out and "module.text_decoder.lm_head.weight" in out
    assert "module.video_mapper.mapper.bert.embeddings.position_ids" in out
    loaded, tok = load_model(tmp_path / "out")
    assert (tok.bos_id, tok.eos_id, tok.pad_id) == (1, 2, 0)
    got = loaded.state_dict()
    assert all(torch.equal(got[k], v) for k, v in model.state_dict().items())
    video = torch.randn(2, 3, 2, 16, 16)
    dc = DecodeConfig(max_new_tokens=8)
    assert generate_ids(model, "clip", video=video, decode=dc) == generate_ids(loaded, "clip", video=video, decode=dc)

    # the folder exists now: refused without --overwrite, replaced with it
    rc, _, err = _run(capsys, "official", src, tmp_path / "out", "--tokenizer", tmp_path / "tok.json")
    assert rc == 2 and "--overwrite" in err
    rc, _, err = _run(capsys, "official", src, tmp_path / "out", "--tokenizer", tmp_path / "tok.json", "--overwrite")
    assert rc == 0, err


def test_lavila(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    enc = random_encoder()
    src = write_lavila(tmp_path / "lavila.pth", enc, dtype=torch.float16)
    rc, out, err = _run(capsys, "lavila", src, tmp_path / "enc")
    assert rc == 0, err
    assert "LaViLa video encoder" in out and "44 used, 31 dropped" in out
    loaded = load_encoder(tmp_path / "enc")
    enc.load_state_dict({k: v.half().float() for k, v in enc.state_dict().items()})
    x = torch.randn(1, 3, 2, 16, 16)
    assert torch.equal(loaded(x, cls_only=True), enc(x, cls_only=True))


def _evil_pickle(path: Path, marker: Path) -> None:
    class Evil:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    torch.save({"state_dict": {}, "args": Evil()}, path)


def _corrupt(tmp_path: Path, name: str) -> tuple[Path, str]:
    """A bad source file and a fragment its one-line error must contain."""
    p = tmp_path / f"{name}.pt"
    if name == "random_bytes":
        p.write_bytes(random.Random(0).randbytes(4096))  # fixed: some random bytes parse as a GLOBAL opcode
        return p, "not a readable PyTorch checkpoint"
    if name == "empty":
        p.write_bytes(b"")
        return p, "not a readable PyTorch checkpoint: it is an empty file"
    if name == "text":  # the error says what the file is, not the unpickler's "(101)"
        p = tmp_path / "text.mp4"
        p.write_text("hello, this is a text file\n")
        return p, "not a readable PyTorch checkpoint: it is a text file; give the released .pt/.pth file"
    if name == "video":
        p.write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(64))
        return p, "not a readable PyTorch checkpoint: it is an MP4/QuickTime video"
    if name == "truncated":
        torch.save({"state_dict": {"w": torch.zeros(1000)}}, p)
        p.write_bytes(p.read_bytes()[:2000])
        return p, "not a readable PyTorch checkpoint: it looks like a PyTorch file but is damaged or truncated"
    if name == "zip":
        with zipfile.ZipFile(p, "w") as z:
            z.writestr("notes.txt", "hello")
        return p, "not a readable PyTorch checkpoint: it is a zip archive without a PyTorch checkpoint"
    if name == "evil":
        _evil_pickle(p, tmp_path / "pwned")
        return p, "refused to unpickle"
    if name == "tensor":
        torch.save(torch.zeros(3), p)
        return p, "holds a Tensor"
    if name == "no_state_dict":
        torch.save({"epoch": 3, "args": argparse.Namespace(lr=1.0)}, p)
        return p, "no 'state_dict'"
    if name == "lavila":
        write_lavila(p, random_encoder())
        return p, "convert lavila"
    sd = dict(official_state_dict(_clip_model()))
    if name == "missing":
        del sd["module.text_decoder.transformer.h.0.xmlp.c_fc.bias".replace("xmlp", "mlp_crossattention")]
        expect = "decoder.h.0.xmlp.c_fc.bias"
    elif name == "extra":
        sd["module.text_decoder.transformer.h.0.attn.rotary.inv_freq"] = torch.zeros(4)
        expect = "module.text_decoder.transformer.h.0.attn.rotary.inv_freq"
    else:  # wrong shape
        sd["module.video_queries"] = torch.zeros(16, 65)
        expect = "'module.video_queries' has shape [16, 65]"
    write_official(p, _clip_model(), official_args("clip"), state_dict=sd)
    return p, expect


@pytest.mark.parametrize(
    "name",
    [
        "random_bytes",
        "empty",
        "text",
        "video",
        "truncated",
        "zip",
        "evil",
        "tensor",
        "no_state_dict",
        "lavila",
        "missing",
        "extra",
        "shape",
    ],
)
def test_bad_files_give_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str) -> None:
    src, expect = _corrupt(tmp_path, name)
    rc, out, err = _run(capsys, "official", src, tmp_path / "out", "--tokenizer", _tokenizer(tmp_path))
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("videorecap convert: error: ")
    assert str(src) in err and expect in err, err
    assert "Traceback" not in err and out == ""
    assert not re.search(r"\(\d+\)", err)  # no bare number from inside the unpickler
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "pwned").exists()  # the forbidden global was never called


def test_lavila_command_refuses_a_video_recap_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = write_official(tmp_path / "clip.pt", _clip_model(), official_args("clip"))
    rc, _, err = _run(capsys, "lavila", src, tmp_path / "enc")
    assert rc == 2 and "convert official" in err and err.count("\n") == 1
    rc, _, err = _run(capsys, "lavila", src, tmp_path / "enc", "--level", "clip")
    assert rc == 2 and "convert official` only" in err


def test_legacy_pickle_naming_a_callable_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # a plain (non-zip, protocol 0) pickle whose state_dict is a reference to os.system
    p = tmp_path / "proto0.pt"
    p.write_bytes(pickle.dumps({"state_dict": os.system}, protocol=0))
    rc, _, err = _run(capsys, "official", p, tmp_path / "out")
    assert rc == 2 and str(p) in err and err.count("\n") == 1
