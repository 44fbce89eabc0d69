"""A library user's mistakes at the public API: one exception that names the argument and what it takes, raised
before any work (no model loads, nothing is written), never an AttributeError or a failure deep inside torch."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from videorecap import caption
from videorecap.checkpoint import save_encoder, save_pretrained
from videorecap.config import RecapConfig
from videorecap.errors import InputError
from videorecap.infer.decoding_config import DecodeConfig
from videorecap.infer.options import CaptionOptions
from videorecap.llm.backend import open_backend
from videorecap.model.recap import VideoRecap
from videorecap.qa.answer import AskOptions, prepare
from videorecap.results import Caption, CaptionResult, VideoMeta


@pytest.mark.parametrize(
    "options, message",
    [
        ({"decode": "beam"}, "decode: give a DecodeConfig .or a dict of its fields., not 'beam'"),
        ({"decode": {"strategy": "bam"}}, "decode: unknown decoding strategy 'bam'"),
        ({"levels": None}, "levels: give names such as"),
        ({"levels": 1}, "levels: give names such as"),
        ({"batch_size": 2.5}, "--batch-size must be a whole number of at least 1, not 2.5"),
        ({"batch_size": "8"}, "--batch-size must be a whole number of at least 1, not '8'"),
        ({"decode_batch": 1.5}, "--decode-batch must be a whole number"),
        ({"clip_seconds": "4"}, "--clip-seconds must be a number of seconds, not '4'"),
        ({"device": "gpu"}, "device gpu: not a device; use cpu, cuda, cuda:N or mps"),
        ({"device": 0}, "device: give a name such as"),
        ({"max_new_tokens": {"clips": 5}}, "unknown level.* clips"),
        ({"max_new_tokens": {"clip": 0}}, "at least 1, not 0"),
    ],
)
def test_caption_options_name_the_argument(options, message):
    with pytest.raises(InputError, match=message):
        CaptionOptions(**options)


def test_caption_options_take_decoding_settings_as_a_dict_and_devices_in_any_case():
    opts = CaptionOptions(decode={"strategy": "beam", "num_beams": 3}, device=" CPU")
    assert opts.decode == DecodeConfig(strategy="beam", num_beams=3) and opts.device == "cpu"


def test_caption_checks_its_arguments_before_a_model_loads(tmp_path, monkeypatch):
    from videorecap.pipeline import Captioner

    monkeypatch.setattr(Captioner, "load", lambda *a, **k: pytest.fail("a model was loaded"))
    for path, model, message in [
        (5, "recap-synth", "path must be a video file's path .str or Path., not 5"),
        ([tmp_path / "a.mp4"], "recap-synth", "path must be a video file's path"),
        (tmp_path / "a.mp4", 5, "model must be a checkpoint folder, a model name or a Captioner, not 5"),
    ]:
        with pytest.raises(InputError, match=message):
            caption(path, model)


def test_configs_models_and_checkpoints_refuse_what_they_cannot_use(tmp_path):
    with pytest.raises(ValueError, match="unknown level 'clips'; expected one of clip, segment, video, unified"):
        RecapConfig.from_name("recap-base", level="clips")  # a KeyError
    for config in (None, "recap-tiny", {"name": "recap-tiny"}):
        with pytest.raises(TypeError, match="VideoRecap takes a RecapConfig"):
            VideoRecap(config)  # type: ignore[arg-type]
    model = VideoRecap(RecapConfig.from_name("recap-tiny", level="clip"))
    with pytest.raises(TypeError, match=r"give a video encoder, not VideoRecap \(a whole model: give its .encoder\)"):
        save_encoder(model, tmp_path / "enc")  # it wrote a folder that load_encoder refused
    with pytest.raises(TypeError, match="save_pretrained: give a VideoRecap model, not Linear"):
        save_pretrained(nn.Linear(2, 2), tmp_path / "lin")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="a checkpoint stores float32, float16 or bfloat16, not torch.int8"):
        save_pretrained(model, tmp_path / "int8", dtype=torch.int8)  # load_model refused it as damaged
    assert not any(tmp_path.iterdir())  # nothing written


def test_a_result_is_saved_to_a_file_and_only_with_captions_in_it(tmp_path):
    result = CaptionResult(VideoMeta(id="v", path="v.mp4", duration=8.0), clips=[Caption(0.0, 4.0, "C cuts")],
                           levels=["clip"])  # fmt: skip
    with pytest.raises(IsADirectoryError, match="is a folder: give the file to write"):
        result.save(tmp_path)  # named a temp file
    result.clips.append("C washes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="clips.1. is a str, not a Caption"):
        result.save(tmp_path / "captions.json")  # an AttributeError
    assert not any(tmp_path.iterdir())


def test_llm_backends_and_questions_check_their_settings():
    url = "http://127.0.0.1:9/v1"
    for kwargs, message in [
        ({"timeout": -1}, "timeout must be a positive number of seconds"),  # failed at the first request
        ({"retries": -3}, "retries must be a whole number of at least 0"),  # an AssertionError
        ({"concurrency": 0}, "concurrency must be a whole number of at least 1"),
    ]:
        with pytest.raises(InputError, match=message):
            open_backend(url, None, **kwargs)
    with pytest.raises(InputError, match="choices: give a list of the answers to choose from, not one string"):
        prepare(None, "What did C make?", "tea", AskOptions(), None)  # type: ignore[arg-type]  # ('t', 'e', 'a')


def test_caption_batch_makes_captions_without_dropout_from_any_float_input():
    from _helpers import tiny_recap, word_tokenizer

    from videorecap.infer.batch import CaptionItem, caption_batch

    model, tok = tiny_recap("segment"), word_tokenizer(120)
    # recap-tiny has dropout: left in training mode, a model captioned differently at every call
    assert model.config.video_aligner.dropout > 0 and model.config.text_aligner.dropout > 0
    feats = torch.randn(2, 12, model.config.encoder.width, generator=torch.Generator().manual_seed(0))
    items = [CaptionItem(f.numpy(), "w1 w2") for f in feats]
    ref = caption_batch(model, tok, "segment", items)
    model.train()  # as VideoRecap(config) starts
    assert [caption_batch(model, tok, "segment", items) for _ in range(3)] == [ref] * 3
    assert model.training  # the caller's mode is given back
    model.eval()
    as_f64 = [CaptionItem(f.numpy().astype("float64"), "w1 w2") for f in feats]  # numpy's default dtype
    assert caption_batch(model, tok, "segment", as_f64) == ref  # was "expected scalar type Double but found Float"
    narrow = [CaptionItem(f[:, :-1].numpy(), "w1 w2") for f in feats]
    with pytest.raises(ValueError, match=f"video: features of width {feats.shape[-1] - 1}; this model reads width"):
        caption_batch(model, tok, "segment", narrow)  # was "mat1 and mat2 shapes cannot be multiplied"


def test_a_captioner_is_made_of_model_and_tokenizer_pairs():
    from _helpers import tiny_recap, word_tokenizer

    from videorecap.pipeline import Captioner

    model, tok = tiny_recap("clip"), word_tokenizer(10)
    assert Captioner({"clip": (model, tok)}).levels == ("clip",)
    for models in ({"clip": model}, {"clip": (model, None)}, {"clip": (tok, model)}):  # failed deep, or at decoding
        with pytest.raises(InputError, match=r"models\['clip'\] must be a \(VideoRecap, Tokenizer\) pair"):
            Captioner(models)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="unknown level 'clips'"):
        Captioner({"clips": (model, tok)})


def test_outputs_and_checkpoints_say_what_they_take(tmp_path):
    from videorecap.checkpoint import load_model
    from videorecap.export import write_outputs

    result = CaptionResult(VideoMeta(id="v", path="v.mp4", duration=4.0), clips=[Caption(0.0, 4.0, "C cuts")],
                           levels=["clip"])  # fmt: skip
    with pytest.raises(TypeError, match="write_outputs: give a CaptionResult .CaptionResult.load.path. reads one."):
        write_outputs("captions.json", tmp_path / "out")  # type: ignore[arg-type]  # an AttributeError
    (tmp_path / "a-file").write_text("mine")
    with pytest.raises(NotADirectoryError, match="is a file: write_outputs writes a folder of files"):
        write_outputs(result, tmp_path / "a-file")  # an IsADirectoryError about a temp name
    assert (tmp_path / "a-file").read_text() == "mine" and not (tmp_path / "out").exists()
    with pytest.raises(TypeError, match="dtype: give a torch.dtype such as torch.float16, not 'float16'"):
        load_model(tmp_path, dtype="float16")  # type: ignore[arg-type]  # "Invalid device string: 'float16'"


def test_a_tokenizer_much_smaller_than_the_models_vocabulary_is_warned_about(tmp_path, caplog):
    from _helpers import word_tokenizer

    from videorecap.checkpoint import load_model

    model = VideoRecap(RecapConfig.from_name("recap-tiny", level="clip", decoder={"vocab_size": 1000}))
    save_pretrained(model, tmp_path / "m", tokenizer=word_tokenizer(12))  # 16 tokens for 1000: another tokenizer
    assert "16 tokens for a model of 1000: unless the model's vocabulary was padded" in caplog.text
    caplog.clear()
    save_pretrained(model, tmp_path / "ok", tokenizer=word_tokenizer(996))  # its own: 1000 tokens
    load_model(tmp_path / "ok")
    assert "tokens for a model of" not in caplog.text


def test_inputs_that_would_caption_wrongly_are_refused(tmp_path):
    from _helpers import tiny_recap, word_tokenizer

    from videorecap.infer.batch import CaptionItem, caption_batch
    from videorecap.pipeline import Captioner, caption_video

    model, tok = tiny_recap("segment"), word_tokenizer(120)
    feats = torch.randn(12, model.config.encoder.width)
    with pytest.raises(ValueError, match=r"text: each item's text is one string .* not \['w1', 'w2'\]"):
        caption_batch(model, tok, "segment", [CaptionItem(feats, ["w1", "w2"])])  # type: ignore[arg-type]
    feats[3, 5] = float("nan")
    with pytest.raises(ValueError, match="video: holds NaN or infinite values"):  # gave empty captions
        caption_batch(model, tok, "segment", [CaptionItem(feats, "w1")])
    (tmp_path / "cache").write_text("")
    with pytest.raises(InputError, match="cache_dir .*cache: is a file, not a folder"):  # a FileExistsError
        caption_video(tmp_path / "v.mp4", Captioner({"clip": (tiny_recap("clip"), tok)}), cache_dir=tmp_path / "cache")
    with pytest.raises(InputError, match="embed: give an Embeddings"):
        prepare(None, "What did C make?", ["tea", "soup"], AskOptions(), object())  # type: ignore[arg-type]
