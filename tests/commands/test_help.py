"""Every command speaks one vocabulary: the shared options, global flags and exit codes of docs/cli.md.

The tests read docs/cli.md's tables and check each command's parser and `--help` against them, and provoke each
documented exit code.
"""

import argparse
import re
from pathlib import Path

import pytest

from videorecap import cli
from videorecap.commands import _options

DOC = Path(__file__).parents[2] / "docs" / "cli.md"


def _table(title: str) -> list[list[str]]:
    """The rows of the first table under `## title` in docs/cli.md, cells stripped."""
    section = DOC.read_text().split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    rows = [ln for ln in section.splitlines() if ln.startswith("|")]
    cells = [[c.strip() for c in re.split(r"(?<!\\)\|", ln)[1:-1]] for ln in rows]
    return [r for r in cells[2:]]  # less the header and its --- line


def _commands(cell: str) -> set[str]:
    if cell == "all":
        return set(cli.COMMANDS)
    return {c.strip().split()[0] for c in cell.split(",")}  # "synth make" -> synth


def _parsers() -> dict[str, argparse.ArgumentParser]:
    """Each command's parser; for synth, that of `synth make` (its one action, where its options are)."""
    parsers = cli.command_parsers(cli.build_parser())
    parsers["synth"] = cli.command_parsers(parsers["synth"])["make"]
    return parsers


def _action(parser: argparse.ArgumentParser, flag: str) -> argparse.Action | None:
    return next((a for a in parser._actions if flag in a.option_strings), None)


def _help(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as e:
        cli.main([*argv, "--help"])
    assert e.value.code == 0, argv
    return capsys.readouterr().out


def _code(argv) -> int:
    try:
        return cli.main([str(a) for a in argv])
    except SystemExit as e:  # argparse rejected the command line
        return int(e.code)


# ---- help -----------------------------------------------------------------------------------------------------
def test_every_help_exits_0_and_shows_the_global_options_where_they_apply(capsys):
    rows = {r[0].split("`")[1]: _commands(r[2]) for r in _table("Global options")}
    assert set(rows) == {"-v", "-q", "--threads N", "--device DEVICE", "--version"}
    assert rows["--threads N"] == set(cli.COMPUTING)
    parsers = _parsers()
    for name in cli.COMMANDS:
        argv = [name, "make"] if name == "synth" else [name]
        text = _help(capsys, *argv)
        assert f"usage: videorecap {' '.join(argv)}" in text
        assert cli.GLOBAL_GROUP in text, name
        for flag, row in (("-v, --verbose", "-v"), ("-q, --quiet", "-q"), ("--threads N", "--threads N"),
                          ("--device DEVICE", "--device DEVICE")):  # fmt: skip
            assert (flag in text) == (name in rows[row]), (name, flag)
        assert cli.takes_device(parsers[name]) == (name in rows["--device DEVICE"]), name
    top = _help(capsys)
    for flag in ("-v, --verbose", "-q, --quiet", "--threads N", "--device DEVICE", "--version"):
        assert flag in top


def test_shared_options_have_one_spelling_and_one_help():
    """-o/--output, --max-tokens, --allow-partial, --device and --threads: the same strings, metavar and help text
    (its shared part) in every command that takes them, and in exactly the commands docs/cli.md lists."""
    documented = {r[0].split("`")[1].split()[0]: _commands(r[2]) for r in _table("Shared options")}
    documented["--device"] = next(_commands(r[2]) for r in _table("Global options") if "--device" in r[0])
    documented["--threads"] = set(cli.COMPUTING)
    shared = {
        "-o": (["-o", "--output"], "OUT", _options.OUTPUT_HELP + ": "),
        "--max-tokens": (["--max-tokens"], "N|LEVEL=N,...", _options.MAX_TOKENS_HELP + " (default: the model's)"),
        "--num-features": (["--num-features"], "K|LEVEL=K,...", _options.NUM_FEATURES_HELP + " (default: the model's)"),
        "--allow-partial": (["--allow-partial"], None, _options.PARTIAL_HELP),
        "--device": (["--device"], "DEVICE", _options.DEVICE_HELP + " (default: "),
        "--threads": (["--threads"], "N", _options.THREADS_HELP),
        "--precision": (["--precision"], "auto|fp32|fp32-onednn|bf16|int8", _options.PRECISION_HELP),
        "--compile": (["--compile"], None, "compile the video encoder"),
        "--original-settings": (["--original-settings"], None, _options.ORIGINAL_SETTINGS_HELP + ": "),
        "--wait": (["--wait"], None, "when another job is writing the output folder, wait for it"),
    }
    for flag, (strings, metavar, help_start) in shared.items():
        for name, parser in _parsers().items():
            action = _action(parser, flag)
            assert (action is not None) == (name in documented[flag]), (flag, name)
            if action is None:
                continue
            assert action.option_strings == strings and action.metavar == metavar, (flag, name)
            assert action.help.startswith(help_start), (flag, name, action.help)
    for name in ("caption", "evaluate"):  # one --max-tokens parser, one --num-features parser
        assert _action(_parsers()[name], "--max-tokens").type is _options.max_tokens
        assert _action(_parsers()[name], "--num-features").type is _options.num_features


def test_every_port_flag_takes_one_port_type():
    """`serve --port` and `live --serve`: one parser of a port (0-65535); every `--host`: one parser of a host."""
    ports = hosts = 0
    for name, parser in _parsers().items():
        for action in parser._actions:
            if action.metavar == "PORT" or "--port" in action.option_strings:
                assert action.type is _options.port_number, (name, action.option_strings)
                ports += 1
            if "--host" in action.option_strings:
                assert action.type is _options.listen_host, name
                hosts += 1
    assert ports == 2 and hosts == 2  # serve --host, live --host
    for text in ("-1", "65536", "99999", "x", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            _options.port_number(text)
    assert [_options.port_number(t) for t in ("0", "1", "65535")] == [0, 1, 65535]


def test_defaults_shown_in_help_are_the_option_classes_defaults(capsys):
    from videorecap.evaluate import EvalOptions
    from videorecap.infer.decoding_config import DecodeConfig
    from videorecap.infer.options import CaptionOptions
    from videorecap.live.options import LiveOptions

    decoding = ["strategy", "num_beams", "length_penalty", "temperature", "top_k", "top_p", "seed"]
    checks = {
        "caption": [(CaptionOptions(), f, f) for f in ("batch_size", "min_tail_seconds")]
        + [(DecodeConfig(), f, f) for f in decoding],
        "evaluate": [(EvalOptions(), f, f) for f in ("batch_size", "split", "clip_input", "video_ext", "protocol")]
        + [(EvalOptions(), "workers", "num_workers")]
        + [(DecodeConfig(), f, f) for f in decoding],
        "live": [(LiveOptions(), f, f) for f in ("batch_size", "min_tail_seconds", "idle", "reconnect", "lag")]
        + [(DecodeConfig(), f, f) for f in decoding],
    }
    parsers = _parsers()
    for name, fields in checks.items():
        text = " ".join(_help(capsys, name).split())
        for obj, dest, field in fields:
            default = parsers[name].get_default(dest)
            assert default == getattr(obj, field), (name, dest)
            if default is not None and dest != "clip_input":  # its help says what auto means
                shown = f"{default:g}" if isinstance(default, float) else str(default)
                assert re.search(rf"default: {re.escape(shown)}\b", text), (name, dest, shown)
    assert list(parsers["evaluate"].get_default("metrics")) == list(EvalOptions().metrics)


# ---- the shared options behave the same everywhere --------------------------------------------------------------
def test_max_tokens_is_one_syntax_in_caption_and_evaluate(capsys):
    parser = cli.build_parser()
    for name, rest in (("caption", ["v.mp4", "-o", "o"]), ("evaluate", ["m", "d"])):
        args = parser.parse_args([name, *rest, "--max-tokens", "50,video=100"])
        assert args.max_tokens == {"clip": 50, "segment": 50, "video": 100}
        assert parser.parse_args([name, *rest, "--max-tokens", "7"]).max_tokens == dict.fromkeys(
            ("clip", "segment", "video"), 7
        )
        for bad, say in (
            ("lots", "is not N or LEVEL=N"),
            ("summary=3", "unknown level 'summary'"),
            ("0", "at least 1"),
        ):
            assert _code([name, *rest, "--max-tokens", bad]) == 2
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and "--max-tokens" in err and say in err, err


def test_num_features_is_one_syntax_in_caption_and_evaluate(capsys):
    parser = cli.build_parser()
    for name, rest in (("caption", ["v.mp4", "-o", "o"]), ("evaluate", ["m", "d"])):
        assert parser.parse_args([name, *rest, "--num-features", "40"]).num_features == {"segment": 40, "video": 40}
        args = parser.parse_args([name, *rest, "--num-features", "segment=40,video=512"])
        assert args.num_features == {"segment": 40, "video": 512}
        for bad, say in (("clip=3", "unknown level 'clip'; use segment or video"), ("0", "at least 1")):
            assert _code([name, *rest, "--num-features", bad]) == 2
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and "--num-features" in err and say in err, err


def test_decoding_flags_refuse_impossible_values_while_parsing(capsys):
    """A NaN or infinite temperature used to decode a whole video and then fail on the results' JSON (evaluate wrote
    `"temperature": NaN`); a seed beyond 64 bits failed inside torch. Now each is one line naming the flag."""
    cases = [
        ("--temperature", "nan", "finite"),
        ("--temperature", "inf", "finite"),
        ("--temperature", "0", "positive"),
        ("--length-penalty", "nan", "finite"),
        ("--length-penalty", "inf", "finite"),
        ("--top-p", "0", "more than 0 and at most 1"),
        ("--top-p", "nan", "finite"),
        ("--top-k", "-1", "0 or more"),
        ("--num-beams", "0", "at least 1"),
        ("--seed", "99999999999999999999", "from 0 to 4294967295"),
        ("--seed", "-1", "from 0 to 4294967295"),
    ]
    for name, rest in (("caption", ["v.mp4", "-o", "o"]), ("evaluate", ["m", "d"]), ("live", ["v.mp4", "-o", "o"])):
        for flag, value, say in cases:
            assert _code([name, *rest, "--strategy", "sample", f"{flag}={value}"]) == 2, (name, flag, value)
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and flag in err and say in err, (name, flag, value, err)
    args = cli.build_parser().parse_args(["caption", "v.mp4", "-o", "o", "--seed", "4294967295", "--top-p", "1",
                                          "--length-penalty", "-0.5"])  # fmt: skip
    assert (args.seed, args.top_p, args.length_penalty) == (2**32 - 1, 1.0, -0.5)


def _all_parsers() -> dict[str, argparse.ArgumentParser]:
    """Every command's parser, and every action's of a command that has actions ("synth make", "synth questions")."""
    out = {}
    for name, parser in cli.command_parsers(cli.build_parser()).items():
        sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        out.update({f"{name} {k}": p for k, p in sub.choices.items()} if sub else {name: parser})
    return out


def test_every_seed_is_one_type(capsys):
    """Every --seed takes 0 to 2**32-1 (runtime.SEED_MAX): `synth make --seed -5` and `demo --seed -1` were numpy
    tracebacks, and a 20-digit sampling seed overflowed in torch."""
    from videorecap.runtime import SEED_MAX

    with_seed = {name for name, p in _all_parsers().items() if _action(p, "--seed")}
    assert with_seed == {"caption", "evaluate", "live", "demo", "synth make", "synth questions"}
    row = next(r for r in _table("Shared options") if r[0].startswith("`--seed"))
    assert {c.strip() for c in row[2].split(",")} == with_seed and str(SEED_MAX) in row[1]
    for name in with_seed:
        assert _action(_all_parsers()[name], "--seed").type is _options.seed, name
    for argv in (["synth", "make", "-o", "d"], ["synth", "questions", "d"], ["demo"]):
        for bad in ("-5", str(SEED_MAX + 1)):
            assert _code([*argv, f"--seed={bad}"]) == 2, (argv, bad)
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and "--seed" in err and f"from 0 to {SEED_MAX}" in err, err


def test_an_empty_output_is_a_usage_error_in_every_command(tmp_path, monkeypatch, capsys):
    """`-o ''` was Path(""), the current folder: caption wrote its outputs there without a word."""
    monkeypatch.chdir(tmp_path)
    with_output = [name for name, p in _all_parsers().items() if _action(p, "-o")]
    assert len(with_output) >= 10
    for name in with_output:
        for flag in ("-o", "--output"):
            for empty in ("", "  "):
                assert _code([*name.split(), flag, empty]) == 2, (name, flag)
                err = capsys.readouterr().err
                assert err.count("\n") == 1 and "-o/--output" in err and "is empty" in err, (name, err)
    for argv in (["train", "r.yaml", "--output-dir", ""], ["synth", "make", "--out", ""]):  # the old spellings
        assert _code(argv) == 2 and "is empty" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_caption_and_live_read_the_shared_flags_into_the_same_options(tmp_path, monkeypatch):
    """`caption` and `live` build their options with one function: the same flags give the same hierarchy options,
    and a per-level --max-tokens stays per level while one count for every level goes into the decoding settings."""
    import videorecap.infer.options as io_
    import videorecap.live.options as lo
    from videorecap.video.testing import make_video

    video = make_video(tmp_path / "v.mp4", duration=1.0, fps=2.0, size=(32, 24))
    seen = {}

    def recording(cls, name):
        class Recording(cls):
            def __post_init__(self):
                super().__post_init__()
                seen[name] = self
                raise KeyboardInterrupt  # the options are made; no need to load a model

        return Recording

    monkeypatch.setattr(io_, "CaptionOptions", recording(io_.CaptionOptions, "caption"))
    monkeypatch.setattr(lo, "LiveOptions", recording(lo.LiveOptions, "live"))
    shared = ["--model", "m", "--levels", "clip,segment", "--segment-seconds", "20", "--min-tail-seconds", "0.5",
              "--num-features", "segment=40", "--original-settings", "--batch-size", "3",
              "--strategy", "beam"]  # fmt: skip
    for max_tokens in ("clip=5,video=9", "6"):
        assert _code(["caption", video, "-o", tmp_path / "o", *shared, "--max-tokens", max_tokens]) == 130
        assert _code(["live", video, "-o", tmp_path / "l", *shared, "--max-tokens", max_tokens]) == 130
        caption, live = (seen.pop(k).hierarchy_options() for k in ("caption", "live"))
        assert caption == live
        assert caption["levels"] == ("clip", "segment") and caption["segment_seconds"] == 20
        assert caption["num_features"] == {"segment": 40} and caption["summary_text"] == "first"
        assert caption["batch_size"] == 3 and caption["decode"].strategy == "beam"
        if max_tokens == "6":  # one count for every level: in the decoding settings
            assert caption["max_new_tokens"] == {} and caption["decode"].max_new_tokens == 6
        else:
            assert caption["max_new_tokens"] == {"clip": 5, "video": 9} and caption["decode"].max_new_tokens is None


def test_help_loads_no_model_library():
    """`videorecap --help` and every command's parser are built without torch or PyAV (seconds and 200 MB less per
    call): the option classes whose defaults the flags show are torch-free, and PyAV loads where video is read or
    written."""
    import subprocess
    import sys

    code = (
        "import sys; from videorecap import cli; cli.build_parser(); "
        "print(sorted(m for m in ('torch', 'transformers', 'tokenizers', 'av') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_old_spellings_still_work_but_are_hidden(capsys):
    parser = cli.build_parser()
    assert parser.parse_args(["train", "r.yaml", "--output-dir", "runs/x"]).output == Path("runs/x")
    assert parser.parse_args(["train", "r.yaml", "-o", "runs/y"]).output == Path("runs/y")
    assert parser.parse_args(["synth", "make", "--out", "d"]).output == Path("d")
    assert parser.parse_args(["features", "v.mp4", "-o", "o", "--encoder", "m", "--keep-partial"]).allow_partial
    assert "--output-dir" not in _help(capsys, "train")
    assert "--out " not in _help(capsys, "synth", "make")
    assert "--keep-partial" not in _help(capsys, "features").replace("(--keep-partial is the old spelling)", "")


def test_convert_takes_out_dir_or_o_but_not_both(tmp_path, capsys):
    src = tmp_path / "nope.pt"
    for argv in (["convert", "official", src], ["convert", "official", src, tmp_path / "a", "-o", tmp_path / "b"]):
        assert _code(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "OUT_DIR or -o OUT" in err
    for argv in (["convert", "official", src, tmp_path / "a"], ["convert", "official", src, "-o", tmp_path / "a"]):
        assert _code(argv) == 2  # now the missing source, the output being fine
        assert "nope.pt" in capsys.readouterr().err


def test_global_flags_before_or_after_the_command(monkeypatch):
    from videorecap import runtime
    from videorecap.commands import info

    seen = []
    monkeypatch.setattr(info, "run", lambda args: seen.append(args) or 0)
    monkeypatch.setattr(runtime, "set_threads", lambda n=None: None)
    for argv, verbose, quiet in (
        (["-v", "info", "m"], 1, False),
        (["info", "m", "-v"], 1, False),
        (["-v", "info", "m", "-v"], 2, False),
        (["-q", "info", "m"], 0, True),
        (["info", "m", "--quiet"], 0, True),
        (["info", "m"], 0, False),
    ):
        assert cli.main(argv) == 0
        assert (seen[-1].verbose, seen[-1].quiet) == (verbose, quiet), argv
        assert getattr(seen[-1], "no_progress", False) == quiet  # -q turns progress bars off
    monkeypatch.setattr(runtime, "check_device", lambda name: name)
    parser = cli.build_parser()
    for before, after, want in (([], ["--device", "cpu"], "cpu"), (["--device", "cpu"], [], "cpu"),
                                (["--device", "cuda"], ["--device", "cpu"], "cpu"), ([], [], None)):  # fmt: skip
        assert parser.parse_args([*before, "evaluate", "m", "d", *after]).device == want
    args = parser.parse_args(["synth", "make", "-o", "d", "-q"])
    assert args.quiet and args.command == "synth"


def test_a_global_flag_a_command_does_not_use_is_rejected(capsys):
    for argv, say in (
        (["--device", "cpu", "score", "a", "b"], "--device does not apply to `score`"),
        (["--threads", "2", "info", "m"], "--threads does not apply to `info`"),
        (["--device", "cpu", "demo"], "--device does not apply to `demo`"),
        (["score", "a", "b", "--device", "cpu"], "unrecognized arguments: --device cpu"),
        (["-q", "-v", "info", "m"], "-q/--quiet and -v/--verbose contradict"),
    ):
        assert _code(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and say in err, (argv, err)


# ---- exit codes -------------------------------------------------------------------------------------------------
def test_exit_codes_are_documented_once_and_in_the_top_help(capsys):
    documented = {int(code): meaning for code, meaning in _table("Exit codes")}
    assert documented == cli.EXIT_CODES
    top = _help(capsys)
    for code, meaning in documented.items():
        assert f"  {code:<4} {meaning}" in top


def test_a_usage_error_is_2_in_every_command(capsys):
    for name in cli.COMMANDS:
        argv = [name, "make"] if name == "synth" else [name]
        assert _code([*argv, "--no-such-flag"]) == 2, name
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("videorecap") and ": error: " in err, (name, err)


def test_ctrl_c_is_130_in_every_command(monkeypatch, capsys):
    import importlib

    def interrupt(args):
        raise KeyboardInterrupt

    for module in cli.COMMANDS.values():
        monkeypatch.setattr(importlib.import_module(f"videorecap.commands.{module}"), "run", interrupt)
    argv = {"caption": ["v", "-o", "o"], "features": ["v", "-o", "o", "--random-encoder", "recap-tiny"],
            "train": ["r"], "evaluate": ["m", "d"], "score": ["p", "r"], "convert": ["official", "s", "o"],
            "info": ["m"], "synth": ["make", "-o", "o"], "demo": [],
            "serve": ["--text-model", "m"], "pseudo-label": ["d", "--level", "segment", "-o", "o"],
            "ask": ["c.json", "why?"], "live": ["s", "-o", "o"], "search": ["o", "q"]}  # fmt: skip
    assert set(argv) == set(cli.COMMANDS)
    for name, rest in argv.items():
        assert cli.main([name, *rest]) == 130, name
        assert capsys.readouterr().err == f"videorecap {name}: interrupted\n"


def test_ctrl_c_during_work_is_130_and_leaves_no_half_output(tmp_path, monkeypatch, capsys):
    import videorecap.video.features as vf
    from videorecap.video.testing import make_video

    video = make_video(tmp_path / "v.mp4", duration=4.0, fps=2.0, size=(32, 24))
    real = vf.run_jobs

    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(vf, "run_jobs", interrupted)
    argv = ["features", video, "-o", tmp_path / "f", "--random-encoder", "recap-tiny", "--no-progress"]
    assert _code(argv) == 130
    assert not list((tmp_path / "f").glob("*.npy"))
    monkeypatch.setattr(vf, "run_jobs", real)
    assert _code(argv) == 0 and (tmp_path / "f" / "v.npy").exists()  # started again, it is done


def test_some_inputs_failed_is_1(tmp_path, capsys):
    from videorecap.video.testing import make_video

    good = make_video(tmp_path / "good.mp4", duration=4.0, fps=2.0, size=(32, 24))
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    # features used to exit 2 here, the code of a usage error
    argv = ["features", bad, good, "-o", tmp_path / "f", "--random-encoder", "recap-tiny", "--no-progress"]
    assert _code(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.mp4" in err and (tmp_path / "f" / "good.npy").exists()
    argv = ["caption", bad, good, "--model", "recap-synth", "-o", tmp_path / "c", "--levels", "clip", "-q"]
    assert _code(argv) == 1
    err = capsys.readouterr().err
    errors = [ln for ln in err.splitlines() if ": error: " in ln]  # (and a warning that recap-synth knows one world)
    assert len(errors) == 1 and "bad.mp4" in errors[0] and (tmp_path / "c" / "good" / "captions.json").exists()
    # a path that does not exist is found before any work: a usage error, not a failed input
    missing = tmp_path / "missing.mp4"
    assert _code(["features", missing, good, "-o", tmp_path / "f2", "--random-encoder", "recap-tiny"]) == 2
