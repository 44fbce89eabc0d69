"""The text-model layer against real server processes on loopback: the own model served by `videorecap serve`, and
a server that misbehaves on purpose (fault_server.py). No mocks: every request crosses a socket."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from videorecap.data import hcap
from videorecap.data.text import segment_text, video_text
from videorecap.errors import InputError
from videorecap.llm.backend import (
    CachedBackend,
    HTTPBackend,
    LLMError,
    LocalBackend,
    TextBackend,
    base_url,
    open_backend,
)
from videorecap.llm.textmodel import TextModel


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "ignored by the summarizer"}, {"role": "user", "content": text}]


def requests_seen(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def val_inputs(root: Path) -> list[str]:
    segs = hcap.load_segments(root / "annotations" / "segments_val.pkl")
    vids = hcap.load_videos(root / "annotations" / "videos_val.json")
    return [segment_text(s["captions_pred"]) for s in segs] + [video_text(v["segment_descriptions_pred"]) for v in vids]


def fast(url: str, **kw) -> HTTPBackend:
    """A client whose retries wait milliseconds, not seconds."""
    return HTTPBackend(url, **{"retries": 3, "backoff": 0.01, "timeout": 10.0, **kw})


# ---- the own text model behind `videorecap serve` --------------------------------------------------------------------
def test_served_text_model_answers_as_the_model_does(served_text_model, text_model_dir, hcap_data, tmp_path):
    texts = val_inputs(hcap_data)
    expected = TextModel.load(text_model_dir).summarize(texts)
    assert any(expected) and len(set(expected)) >= 1  # a trained model says something

    backend = open_backend(served_text_model.url, None, None, cache_dir=tmp_path / "cache", concurrency=3)
    assert isinstance(backend, TextBackend)
    name = backend.model
    assert name == "videorecap-text-" + TextModel.load(text_model_dir).weights[:8]  # named after its weights
    answers = backend.chat_many([user(t) for t in texts], max_tokens=77)
    assert answers == expected  # same weights, greedy: the endpoint changes nothing
    # the summarize prompt ("Summarize: {text}") gives the same input: the prefix is not doubled
    assert backend.chat(user("Summarize: " + texts[0]), max_tokens=77) == expected[0]

    # a rerun costs nothing: the server is gone and every answer comes from the cache
    served_text_model.stop()
    again = open_backend(served_text_model.url, None, name, cache_dir=tmp_path / "cache")
    assert again.chat_many([user(t) for t in texts], max_tokens=77) == expected
    assert again.hits == len(texts)
    # ... but other parameters are other requests: not cached, and the dead server is reported
    with pytest.raises(LLMError, match="cannot reach the server"):
        HTTPBackend(served_text_model.url, name, retries=1, backoff=0.01).chat(user("x"), max_tokens=5)


def test_local_backend_is_the_same_model(text_model_dir, hcap_data):
    texts = val_inputs(hcap_data)[:3]
    backend = open_backend(None, text_model_dir, None)
    assert isinstance(backend, LocalBackend) and backend.name == "videorecap"
    assert backend.chat_many([user(t) for t in texts]) == TextModel.load(text_model_dir).summarize(texts)
    # max_tokens caps the answer
    short = backend.chat(user(texts[0]), max_tokens=1)
    assert len(backend.text_model.tokenizer.encode(short)) <= 1


def test_serve_rejects_bad_requests(served_text_model):
    import urllib.error
    import urllib.request

    def post(body: bytes) -> tuple[int, dict]:
        req = urllib.request.Request(served_text_model.url + "/chat/completions", data=body, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    for body, status, words in [
        (b"not json", 400, "not JSON"),
        (b'{"messages": []}', 400, "messages"),
        (b'{"messages": [{"role": "system", "content": "x"}]}', 400, "no user message"),
        (b'{"messages": [{"role": "user", "content": "x"}], "stream": true}', 400, "stream"),
        (b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": "many"}', 400, "max_tokens"),
        (b'{"messages": [{"role": "user", "content": "x"}], "temperature": NaN}', 400, "temperature"),
        (b'{"messages": [{"role": "user", "content": "x"}], "temperature": Infinity}', 400, "temperature"),
        (b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}', 404, "videorecap-text-"),
    ]:
        code, answer = post(body)
        assert code == status and words in answer["error"]["message"], (body, answer)
    code, answer = post(b'{"messages": [{"role": "user", "content": "C picks the cup"}], "max_tokens": 3}')
    assert code == 200 and answer["choices"][0]["message"]["role"] == "assistant"
    assert answer["usage"]["completion_tokens"] <= 3


def test_serve_command_errors_are_one_line(tmp_path, capsys):
    from videorecap.cli import main

    assert main(["serve", "--text-model", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing" in err[0] and "Traceback" not in err[0]


# ---- faults: retried or reported, nothing already done lost ---------------------------------------------------------
@pytest.mark.parametrize("mode", ["malformed", "nochoices", "429", "500"])
def test_transient_faults_are_retried(fault_server, mode):
    server, log = fault_server(mode, 2)
    assert fast(server.url).chat(user("hello")) == "echo: hello"
    assert len(requests_seen(log)) == 3  # two bad answers, then the good one


def test_a_slow_server_times_out_and_is_retried(fault_server):
    server, log = fault_server("slow", 1)
    t = time.monotonic()
    assert fast(server.url, timeout=1.0).chat(user("hi")) == "echo: hi"
    assert len(requests_seen(log)) == 2 and time.monotonic() - t < 3.0  # did not wait for the slow answer


def test_faults_that_persist_are_reported(fault_server):
    server, log = fault_server("malformed", 100)
    with pytest.raises(LLMError, match="after 3 attempts: malformed JSON"):
        fast(server.url, retries=2).chat(user("x"))
    assert len(requests_seen(log)) == 3
    server, log = fault_server("401", 100)
    with pytest.raises(LLMError, match="HTTP 401 bad key; check the API key in \\$MY_KEY"):
        fast(server.url, key_env="MY_KEY").chat(user("x"))
    assert len(requests_seen(log)) == 1  # a client mistake is not retried


def test_server_dying_mid_job_loses_nothing(fault_server, tmp_path):
    cache = tmp_path / "cache"
    texts = [f"request {i}" for i in range(6)]
    server, log = fault_server("die", 3)  # answers three, then exits
    backend = CachedBackend(fast(server.url, retries=1, concurrency=1), cache)
    with pytest.raises(LLMError, match="3 of 6 requests to echo failed.*run the same command again"):
        backend.chat_many([user(t) for t in texts])
    assert len(requests_seen(log)) == 4  # the fourth killed it; the last two found nobody

    server, log = fault_server("ok")  # the server is back (on another port): the job resumes
    again = CachedBackend(fast(server.url, concurrency=2), cache)
    assert again.chat_many([user(t) for t in texts]) == [f"echo: {t}" for t in texts]
    assert again.hits == 3
    assert sorted(r["content"] for r in requests_seen(log)) == texts[3:]  # only what was not done is asked


def test_concurrency_limit_and_api_key_from_the_environment(fault_server, monkeypatch):
    monkeypatch.setenv("VIDEORECAP_TEST_KEY", "sekrit")
    server, log = fault_server("sleep")
    backend = fast(server.url, concurrency=2, key_env="VIDEORECAP_TEST_KEY")
    answers = backend.chat_many([user(f"r{i}") for i in range(6)])
    assert answers == [f"echo: r{i}" for i in range(6)]  # in request order
    seen = requests_seen(log)
    assert max(r["inflight"] for r in seen) == 2
    assert {r["auth"] for r in seen} == {"Bearer sekrit"}
    monkeypatch.delenv("VIDEORECAP_TEST_KEY")
    fast(server.url, key_env="VIDEORECAP_TEST_KEY").chat(user("no key"))
    assert requests_seen(log)[-1]["auth"] is None


def test_urls_and_backend_choice(text_model_dir):
    assert base_url("http://127.0.0.1:8000") == "http://127.0.0.1:8000/v1"
    assert base_url("http://h:1/v1/") == "http://h:1/v1"
    assert base_url("https://api.example.com/v1/chat/completions") == "https://api.example.com/v1"
    assert base_url("http://h:1/api/v1") == "http://h:1/api/v1"
    for bad in ("127.0.0.1:8000", "ftp://h/v1", ""):
        with pytest.raises(InputError, match="--llm"):
            base_url(bad)
    with pytest.raises(InputError, match="exactly one of --llm"):
        open_backend(None, None)
    with pytest.raises(InputError, match="exactly one of --llm"):
        open_backend("http://h:1", text_model_dir)
    with pytest.raises(InputError, match="--llm-model"):
        open_backend(None, text_model_dir, "gpt-4o")
