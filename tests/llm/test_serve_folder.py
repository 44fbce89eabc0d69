"""`videorecap serve FOLDER` as a real process: the folder web app with its ask box, alone and beside the text model."""

from __future__ import annotations

import json
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _helpers import write_captions

CLIPS = [
    (0.0, 4.0, "#C C opens the fridge"),
    (4.0, 8.0, "#C C puts the kettle on the stove"),
    (8.0, 12.0, "#C C pours water into the cup"),
    (12.0, 16.0, "#C C sweeps the floor with a broom"),
]


def _call(url: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _folder(tmp_path: Path) -> Path:
    write_captions(tmp_path / "out" / "kitchen" / "captions.json", "kitchen", CLIPS, [(0.0, 16.0, "C makes tea")])
    return tmp_path / "out"


def test_folder_app_with_the_retrieval_ask_box(start_server: Callable[..., Any], tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    proc = start_server([sys.executable, "-m", "videorecap", "serve", str(folder), "--port", "0"])
    root = proc.url.rstrip("/")
    status, videos = _call(root + "/api/videos")
    assert status == 200 and videos["ask"] is True and [v["id"] for v in videos["videos"]] == ["kitchen"]
    key = videos["videos"][0]["key"]
    status, found = _call(root + "/api/search?q=kettle&mode=lexical")
    assert status == 200 and found["moments"][0]["start"] == 4.0, found
    status, a = _call(root + "/api/ask", {"video": key, "question": "when did I boil water in the kettle?"})
    assert status == 200, a
    assert a["answered_by"] == {"answerer": "retrieval"}
    assert a["evidence"][0]["start"] == 4.0 and "kettle" in a["evidence"][0]["text"]  # the moment, with its time
    status, err = _call(root + "/api/ask", {"video": key, "question": "  "})
    assert status == 400 and "empty" in err["error"]["message"]


def test_folder_app_beside_the_text_model(
    start_server: Callable[..., Any], text_model_dir: Path, tmp_path: Path
) -> None:
    folder = _folder(tmp_path)
    argv = [sys.executable, "-m", "videorecap", "serve", str(folder), "--text-model", str(text_model_dir)]
    proc = start_server([*argv, "--port", "0"])
    base = proc.url.removesuffix("/v1")  # the first line names the model's endpoint
    status, models = _call(base + "/v1/models")
    assert status == 200 and models["data"][0]["id"].startswith("videorecap-text-")
    status, videos = _call(base + "/api/videos")
    assert status == 200 and videos["videos"][0]["id"] == "kitchen"


def test_usage_errors_are_one_line(tmp_path: Path, capsys) -> None:
    from videorecap.cli import main

    cases = [
        ([], "give a FOLDER"),
        ([str(tmp_path / "nowhere")], "no such folder"),
        (["--llm", "http://127.0.0.1:9/v1", "--text-model", str(tmp_path)], "give a FOLDER too"),
    ]
    for args, message in cases:
        assert main(["serve", *args, "--port", "0"]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, (args, err)


def test_bad_ports_and_hosts_are_one_line_before_any_work(tmp_path: Path, capsys) -> None:
    from videorecap.cli import main

    folder = _folder(tmp_path)
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    cases = [
        (["--port", "70000"], "argument --port: must be a port from 0 to 65535"),
        (["--port", "-1"], "argument --port: must be a port from 0 to 65535"),
        (["--host", ""], "argument --host: empty; give an address"),
        (["--port", str(port)], f"cannot listen on 127.0.0.1:{port}: address already in use (another program"),
        (["--host", "999.1.1.1"], "--host 999.1.1.1: not an address or name this machine has"),
    ]
    with busy:
        for args, message in cases:
            try:
                code = main(["serve", str(folder), *args])
            except SystemExit as e:  # argparse's own rejection
                code = e.code
            err = capsys.readouterr().err.strip().splitlines()
            assert code == 2 and len(err) == 1 and message in err[0], (args, err)


def test_a_folder_without_captions_is_refused_as_search_refuses_it(tmp_path: Path, capsys, monkeypatch) -> None:
    from types import SimpleNamespace

    from videorecap.cli import main
    from videorecap.commands import serve

    def started() -> None:
        raise AssertionError("the server started")  # instead of serving until Ctrl-C

    monkeypatch.setattr(serve, "threading", SimpleNamespace(Event=lambda: SimpleNamespace(wait=started)))
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    assert main(["serve", str(tmp_path / "empty"), "--port", "0"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"videorecap serve: error: {tmp_path / 'empty'}: no captions.json below this folder; caption videos into it "
        "first (videorecap caption)"
    )
