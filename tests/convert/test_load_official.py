"""`load_official`: a released .pt converted in memory: the convert-then-load model, no random init, no meta left."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from fakes import official_args, random_model, tiny_config, write_official

from videorecap.checkpoint import load_model
from videorecap.cli import main
from videorecap.convert import load_official
from videorecap.errors import CheckpointError, InputError
from videorecap.model.recap import VideoRecap
from videorecap.tokenizer import Tokenizer

INITS = ("normal_", "trunc_normal_", "zeros_", "ones_", "uniform_", "xavier_uniform_", "kaiming_uniform_")


@pytest.fixture
def real_inits(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every call of a torch.nn.init function on a real (not meta) tensor, by name."""
    calls: list[str] = []
    for name in INITS:
        fn = getattr(torch.nn.init, name)

        def counted(tensor: torch.Tensor, *a: object, _fn=fn, _name=name, **kw: object) -> torch.Tensor:
            if not tensor.is_meta:
                calls.append(_name)
            return _fn(tensor, *a, **kw)

        monkeypatch.setattr(torch.nn.init, name, counted)
    yield calls


def _released(tmp_path: Path, level: str = "unified") -> tuple[Path, Path, VideoRecap]:
    model = random_model(tiny_config(level))
    src = write_official(tmp_path / f"videorecap_{level}.pt", model, official_args(level))
    tok = Tokenizer.train_word_level(["c picks up the cup", "c puts the knife on the table"])
    return src, tok.save(tmp_path / "tok.json"), model


def _inputs(model: VideoRecap, level: str) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    cfg = model.config
    if level == "clip":
        e = cfg.encoder
        return {"video": torch.randn(2, 3, e.num_frames, e.image_size, e.image_size, generator=g)}
    return {
        "video": torch.randn(2, 10, cfg.encoder.width, generator=g),
        "video_mask": torch.ones(2, 10, dtype=torch.bool),
        "text_ids": torch.randint(3, 300, (2, 7), generator=g),
        "text_mask": torch.ones(2, 7, dtype=torch.bool),
    }


def test_same_model_as_convert_then_load(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, tok_file, original = _released(tmp_path)
    before = set(tmp_path.iterdir())
    model, tok = load_official(src, tokenizer=tok_file)
    assert set(tmp_path.iterdir()) == before  # nothing written
    assert not model.training
    assert main(["convert", "official", str(src), str(tmp_path / "out"), "--tokenizer", str(tok_file)]) == 0
    capsys.readouterr()
    folder_model, folder_tok = load_model(tmp_path / "out")
    assert folder_tok is not None and tok.to_str() == folder_tok.to_str()
    assert model.config.to_dict() == folder_model.config.to_dict()
    ids = torch.randint(3, 300, (2, 6))
    for lv in model.config.levels:
        x = _inputs(model, lv)
        with torch.no_grad():
            a = model(lv, ids, **x)[1]
            b = folder_model(lv, ids, **x)[1]
            c = original.eval()(lv, ids, **x)[1]
        assert torch.equal(a, b), lv
        assert torch.allclose(a, c, atol=1e-6), lv  # and the model the file was written from


def test_everything_is_materialised_and_on_the_device(tmp_path: Path) -> None:
    src, tok_file, _ = _released(tmp_path)
    model, _ = load_official(src, tokenizer=Tokenizer.from_file(tok_file), device="cpu")
    tensors = dict(model.named_parameters()) | dict(model.named_buffers())
    assert tensors
    assert not [n for n, t in tensors.items() if t.is_meta]
    assert {t.device.type for t in tensors.values()} == {"cpu"}
    assert {t.dtype for t in tensors.values() if t.is_floating_point()} == {torch.float32}


def test_no_random_init_runs(tmp_path: Path, real_inits: list[str]) -> None:
    src, tok_file, _ = _released(tmp_path)
    cfg = tiny_config("unified")
    VideoRecap(cfg)  # the counter works: a normal build initialises every layer
    assert len(real_inits) > 20
    real_inits.clear()
    model, _ = load_official(src, tokenizer=tok_file)
    assert real_inits == []
    assert sum(p.numel() for p in model.parameters()) > 0


def test_errors_name_the_file(tmp_path: Path) -> None:
    src, _, _ = _released(tmp_path, "segment")
    with pytest.raises(CheckpointError, match="is a folder"):
        load_official(tmp_path)
    with pytest.raises(CheckpointError, match="nope.pt: no such file"):
        load_official(tmp_path / "nope.pt")
    big = Tokenizer.train_word_level([" ".join(f"w{i}" for i in range(500))]).save(tmp_path / "big.json")
    with pytest.raises(InputError, match="big.json: .* tokens do not fit"):
        load_official(src, tokenizer=big)


def test_a_tensor_left_on_meta_is_an_error() -> None:
    # a non-persistent buffer is in no file: build_assigned must not hand out a module that still holds one on meta
    from videorecap.convert.load import build_assigned

    class WithMask(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(2, 2)
            self.register_buffer("mask", torch.ones(3), persistent=False)

    state = {"lin.weight": torch.zeros(2, 2), "lin.bias": torch.zeros(2)}
    with pytest.raises(RuntimeError, match="not materialised after loading.*mask"):
        build_assigned(WithMask, state)
    plain = {k.removeprefix("lin."): v for k, v in state.items()}
    assert torch.equal(build_assigned(lambda: torch.nn.Linear(2, 2), plain).weight, torch.zeros(2, 2))
