import subprocess
import sys

import pytest

from videorecap import cli
from videorecap.commands import _options


def test_every_command_exists_and_has_help(capsys):
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert list(sub.choices) == list(cli.COMMANDS)  # every command module exists and registers
    for name in cli.COMMANDS:
        with pytest.raises(SystemExit) as e:
            cli.main([name, "--help"])
        assert e.value.code == 0
        assert "usage: videorecap " + name in capsys.readouterr().out


def test_no_command_prints_help_and_fails(capsys):
    assert cli.main([]) == 2
    assert "caption" in capsys.readouterr().out


def test_version():
    r = subprocess.run([sys.executable, "-m", "videorecap", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("videorecap ")


# ---- issue 12 ----------------------------------------------------------------------------------------------------
def _exit_code(argv) -> int:
    try:
        return cli.main(argv)
    except SystemExit as e:  # argparse rejected a value
        return int(e.code)


def test_an_output_that_cannot_be_written_is_one_line_in_every_command(tmp_path, capsys):
    from videorecap.video.testing import make_video

    video = make_video(tmp_path / "v.mp4", duration=2.0, fps=2.0)
    taken = tmp_path / "taken"
    taken.write_text("a file, not a folder")
    (tmp_path / "data").mkdir()
    # a model whose configs are fine (caption and features check those first) and whose weights are not
    from _helpers import model_that_does_not_load

    bad = model_that_does_not_load(tmp_path / "nope-weights")
    # each would fail differently (a model that does not load, a missing source or reference; an empty data folder)
    # if the output were not checked first
    cases = {
        "caption": ["caption", str(video), "--model", str(bad), "-o", str(taken)],
        "features": ["features", str(video), "--encoder", str(bad / "clip"), "-o", str(taken)],
        "evaluate": ["evaluate", "recap-synth", str(tmp_path / "data"), "-o", str(taken / "sub")],
        "demo": ["demo", "--model", str(bad), "-o", str(taken)],
        "synth": ["synth", "make", "-o", str(taken), "--videos", "3"],
        "convert": ["convert", "official", "nope.pt", str(taken / "model")],
        "score": ["score", "nope.json", "nope.json", "--json", str(tmp_path)],
    }
    for name, argv in cases.items():
        assert _exit_code(argv) == 2, name
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err and "nope" not in err, (name, err)
        assert str(taken) in err or str(tmp_path) in err, (name, err)


def test_a_wrong_model_is_one_line_before_the_output_folder_is_made(tmp_path, capsys):
    from videorecap.video.testing import make_video

    video = make_video(tmp_path / "v.mp4", duration=2.0, fps=2.0)
    segment_only = tmp_path / "seg"
    import shutil

    from videorecap.synth.model import bundled_model_dir

    shutil.copytree(bundled_model_dir() / "segment", segment_only)
    cases = [
        (["caption", str(video), "--model", str(tmp_path / "typo")], "no such model folder"),
        (["features", str(video), "--encoder", str(tmp_path / "typo")], "no such checkpoint folder"),
        (["features", str(video), "--encoder", str(segment_only)], "has no video encoder"),
        (["demo", "--model", str(tmp_path / "typo")], "no such model folder"),
        (["demo", "--model", str(segment_only)], "the demo captions all three levels"),
        (["pseudo-label", str(tmp_path), "--level", "segment", "--text-model", str(tmp_path / "typo")], "no such fol"),
        (["pseudo-label", str(tmp_path), "--level", "video", "--llm", "http://127.0.0.1:9/v1", "--text-model",
          str(segment_only)], "exactly one of --llm URL"),
        (["ask", "--questions", str(video), "--captions", str(tmp_path), "--text-model", str(tmp_path / "typo")],
         "no such folder"),
    ]  # fmt: skip
    for argv, message in cases:
        assert _exit_code([*argv, "-o", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
        assert not (tmp_path / "out").exists()


def test_train_output_dir_is_checked_before_training(tmp_path, capsys):
    from pathlib import Path

    taken = tmp_path / "taken"
    taken.write_text("x")
    recipe = Path(__file__).parents[1] / "configs" / "recap-tiny.yaml"
    for flag in ("-o", "--output-dir"):  # --output-dir: the old spelling, still accepted
        assert _exit_code(["train", str(recipe), flag, str(taken / "run")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "error: -o " in err and str(taken) in err


def test_device_is_checked_once_for_every_command(tmp_path, capsys):
    import torch

    for argv in (["caption", "v.mp4", "-o", "o"], ["features", "v.mp4", "-o", "o", "--encoder", "m"],
                 ["evaluate", "m", "d"], ["train", "r.yaml"]):  # fmt: skip
        assert _exit_code([*argv, "--device", "banana"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "'banana' is not a device; use cpu, cuda, cuda:N or mps" in err
    if not torch.cuda.is_available():
        assert _exit_code(["evaluate", "m", str(tmp_path), "--device", "cuda:1"]) == 2
        err = capsys.readouterr().err
        assert "--device cuda:1: CUDA is not available" in err and err.count("\n") == 1


def test_threads_before_or_after_the_command(monkeypatch):
    from videorecap import runtime

    seen = []
    monkeypatch.setattr(runtime, "set_threads", lambda n=None: seen.append(n))
    parser = cli.build_parser()
    assert parser.parse_args(["--threads", "3", "caption", "v.mp4", "-o", "o"]).threads == 3
    assert parser.parse_args(["caption", "v.mp4", "-o", "o", "--threads", "2"]).threads == 2
    assert parser.parse_args(["caption", "v.mp4", "-o", "o"]).threads is None
    for name in cli.COMPUTING:
        assert "--threads" in parser._subparsers._group_actions[0].choices[name].format_help(), name
    assert _exit_code(["caption", "v.mp4", "-o", "o", "--threads", "0"]) == 2
    # thousands of threads hang or crash OpenMP (and thousands of loader processes stall the machine): a usage error
    cap = _options.PER_CORE_MAX * runtime.cpu_count()
    assert parser.parse_args(["caption", "v.mp4", "-o", "o", "--threads", str(cap)]).threads == cap
    for argv in (["--threads", str(cap + 1), "caption", "v.mp4", "-o", "o"],
                 ["caption", "v.mp4", "-o", "o", "--threads", "100000"],
                 ["evaluate", "m", "d", "-o", "o", "--workers", str(cap + 1)]):  # fmt: skip
        with pytest.raises(SystemExit) as e:
            parser.parse_args(argv)
        assert e.value.code == 2
    assert parser.parse_args(["evaluate", "m", "d", "-o", "o", "--workers", "0"]).workers == 0
    # every computing command applies the setting once, before it starts (here: then fails on the missing video)
    assert cli.main(["--threads", "2", "caption", "missing.mp4", "-o", "o", "--model", "m"]) == 2
    assert seen == [2]


def test_set_threads(monkeypatch):
    import torch

    from videorecap import runtime

    before = torch.get_num_threads()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", runtime.DECODE_THREADS_ENV):
        monkeypatch.delenv(var, raising=False)
    try:
        assert runtime.default_threads(8) == 7 and runtime.default_threads(1) == 1
        assert runtime.decode_threads() == runtime.DEFAULT_DECODE_THREADS
        assert runtime.set_threads(3) == (3, 2) and torch.get_num_threads() == 3
        assert runtime.decode_threads() == 2
        assert runtime.set_threads(1) == (1, 1) and runtime.decode_threads() == 1
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        assert runtime.set_threads() == (2, 2)  # the user's OMP_NUM_THREADS wins over the default
        monkeypatch.delenv("OMP_NUM_THREADS")
        assert runtime.set_threads()[0] == runtime.default_threads()
    finally:
        torch.set_num_threads(before)


def test_decoder_threads_follow_the_models_device(monkeypatch):
    import torch

    from videorecap import runtime

    before = torch.get_num_threads()
    monkeypatch.delenv(runtime.DECODE_THREADS_ENV, raising=False)
    monkeypatch.setattr(runtime, "_USER_DECODE_THREADS", None)
    try:
        runtime.set_threads(1)
        assert runtime.set_decode_threads_for("cpu") == 1  # beside a CPU model: set_threads' choice stays
        # beside a GPU model: every core but one, from 2 to 16
        assert runtime.set_decode_threads_for("cuda:1") == runtime.gpu_decode_threads()
        assert runtime.set_decode_threads_for(torch.device("mps")) == runtime.gpu_decode_threads()
        assert [runtime.gpu_decode_threads(n) for n in (1, 2, 3, 8, 64)] == [2, 2, 2, 7, 16]
        # the user's $VIDEORECAP_DECODE_THREADS wins everywhere
        monkeypatch.setattr(runtime, "_USER_DECODE_THREADS", "3")
        runtime.set_threads(1)
        assert runtime.set_decode_threads_for("cuda") == 3 and runtime.set_decode_threads_for("cpu") == 3
    finally:
        torch.set_num_threads(before)


def test_info_help_lists_the_presets(capsys):
    import videorecap.synth.model  # noqa: F401  (registers recap-synth)
    from videorecap.config import list_presets

    with pytest.raises(SystemExit):
        cli.main(["info", "--help"])
    out = capsys.readouterr().out
    assert "the list below" in out
    for name in list_presets():
        assert f"\n  {name} " in out, name
