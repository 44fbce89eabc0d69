import subprocess
import sys

import pytest

from videorecap import cli


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
