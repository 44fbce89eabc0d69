"""One-line errors for what the system says: OSError (full disk, permissions, /proc), RecursionError, MemoryError."""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

import pytest

from videorecap import cli, fileio
from videorecap.commands import info
from videorecap.errors import describe_os_error
from videorecap.video.testing import make_video


@pytest.mark.parametrize(
    ("exc", "code", "says"),
    [
        (OSError(errno.ENOSPC, "No space left on device", "/data/out/x.json"), 2,
         "/data/out/x.json: No space left on device (free some space or write elsewhere, then run again)"),
        (PermissionError(errno.EACCES, "Permission denied", "/data/out"), 2,
         "/data/out: Permission denied (check the permissions, or write elsewhere)"),
        (RecursionError("maximum recursion depth exceeded"), 1, "an input is nested too deeply (RecursionError)"),
        (MemoryError(), 1, "an input is too large for the memory available (MemoryError)"),
    ],
)  # fmt: skip
def test_what_no_message_names_is_still_one_line(monkeypatch, capsys, caplog, exc, code, says):  # noqa: ANN001
    def run(args):  # noqa: ANN001, ANN202
        raise exc

    monkeypatch.setattr(info, "run", run)
    assert cli.main(["info", "recap-tiny"]) == code
    err = capsys.readouterr().err
    assert err == f"videorecap info: error: {says}" + ("; run with -v for where\n" if code == 1 else "\n")
    assert not any(r.exc_info for r in caplog.records)  # no traceback without -v
    with caplog.at_level(logging.INFO):
        assert cli.main(["-v", "info", "recap-tiny"]) == code
    assert any(r.exc_info and r.exc_info[1] is exc for r in caplog.records)  # -v: the traceback, in the log


def test_describe_os_error_names_both_paths_of_a_rename():
    e = OSError(errno.EXDEV, "Invalid cross-device link", "/a/tmp", None, "/b/out")  # as os.rename raises it
    assert describe_os_error(e) == "/a/tmp -> /b/out: Invalid cross-device link (check the path and the disk)"


def test_an_ffmpeg_error_is_not_taken_for_a_write_in_the_output_folder():
    import av.error

    e = av.error.PermissionError(errno.EPERM, "Operation not permitted")  # PyAV's errors are OSErrors: a seek's
    text = describe_os_error(e, writing_under="out/final")
    assert "out/final" not in text and "permissions" not in text
    assert text.startswith("reading a video: Operation not permitted (the file may be damaged")


@pytest.mark.parametrize("named", [True, False])
def test_a_full_disk_fails_that_video_and_features_goes_on(tmp_path: Path, monkeypatch, capsys, named):  # noqa: ANN001
    """A full disk fails the video that hit it, naming the file, or (a failed write or flush names none) the output
    folder; the other videos go on."""
    for name in ("a", "b"):
        make_video(tmp_path / "in" / f"{name}.mp4", duration=6, fps=2, size=(48, 32))
    save = fileio.save_npy

    def full_for_a(path, *a, **k):  # noqa: ANN001, ANN202
        if Path(path).name == "a.npy":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), *([str(path)] if named else []))
        return save(path, *a, **k)

    monkeypatch.setattr(fileio, "save_npy", full_for_a)
    out = tmp_path / "out"
    argv = ["features", str(tmp_path / "in"), "--random-encoder", "recap-tiny", "-o", str(out), "--no-progress"]
    assert cli.main(argv) == 1  # some inputs failed (docs/cli.md), the others were done
    err = capsys.readouterr().err
    assert err == (
        f"videorecap features: error: {tmp_path / 'in' / 'a.mp4'}: failed: "
        f"{out / 'a.npy' if named else f'writing under {out}'}: No space left on device "
        "(free some space or write elsewhere, then run again)\n"
    )
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["b.npy"]


def test_json_nested_200k_deep_is_one_error_naming_the_file(tmp_path: Path):
    from videorecap.data.hcap import load_segments
    from videorecap.errors import DataError, InputError
    from videorecap.metrics.match import load_items
    from videorecap.results import CaptionResult

    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)  # json.loads raises RecursionError, not a JSONDecodeError
    with pytest.raises(InputError, match=f"{deep}: JSON nested too deeply"):
        CaptionResult.load(deep)
    with pytest.raises(DataError, match=f"{deep}: JSON nested too deeply"):
        load_segments(deep)
    with pytest.raises(InputError, match=f"{deep}: JSON nested too deeply"):
        load_items(deep)


def test_a_permission_error_writing_one_video_is_one_line_and_the_others_go_on(tmp_path: Path, monkeypatch, capsys):  # noqa: ANN001
    """EACCES cannot be made with chmod as root: the write of the first video's outputs is made to fail."""
    from videorecap import export

    for name in ("a", "b"):
        make_video(tmp_path / "in" / f"{name}.mp4", duration=4, fps=2, size=(48, 32))
    write = export.write_outputs

    def denied_for_a(result, out_dir, *a, **k):  # noqa: ANN001, ANN202
        if Path(out_dir).name == "a":
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(Path(out_dir) / "captions.json"))
        return write(result, out_dir, *a, **k)

    monkeypatch.setattr(export, "write_outputs", denied_for_a)
    import videorecap.commands.caption as caption_cmd

    if hasattr(caption_cmd, "write_outputs"):
        monkeypatch.setattr(caption_cmd, "write_outputs", denied_for_a)
    out = tmp_path / "out"
    argv = [
        "caption",
        str(tmp_path / "in"),
        "--model",
        "recap-synth",
        "-o",
        str(out),
        "--no-progress",
        "--levels",
        "clip",
    ]
    assert cli.main(argv) == 1  # some inputs failed
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert err == [
        f"videorecap caption: error: {tmp_path / 'in' / 'a.mp4'}: failed: {out / 'a' / 'captions.json'}: Permission "
        "denied (check the permissions, or write elsewhere)"
    ]
    assert (out / "b" / "captions.json").is_file()
