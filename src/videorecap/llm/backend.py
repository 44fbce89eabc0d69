"""One text-model layer, two kinds of backend: any OpenAI-compatible server, or the project's own text model.

    backend = open_backend("http://127.0.0.1:8000/v1", None, None, cache_dir=out / ".cache" / "llm")
    backend = open_backend(None, "runs/text/text/final", None)             # the own text model, in this process
    answer = backend.chat([{"role": "user", "content": "Summarize: ..."}], max_tokens=77)
    answers = backend.chat_many([messages1, messages2, ...])               # `concurrency` requests at a time

- `HTTPBackend` speaks the OpenAI chat-completions protocol over plain HTTP (urllib): a concurrency limit, retries
  with exponential backoff and jitter on timeouts, refused connections, 429 and 5xx (a `Retry-After` header is
  respected), malformed responses retried and then reported. The API key comes from an environment variable
  (`key_env`, default OPENAI_API_KEY), never from a flag or a file.
- `LocalBackend` runs a text-model checkpoint folder (`llm/textmodel.py`) in this process, batching requests.
- `CachedBackend` wraps either: every answer is stored, as soon as it arrives, in the project's one resumable store
  (`videorecap.store`) under a hash of (model, messages, max_tokens, temperature), so a rerun costs nothing and a
  batch job that died part-way resumes with what it had.

`chat_many` finishes every request it can; when some fail it raises `LLMError` (exit code 1) after the others are
stored, so running the same command again redoes only the failed ones.
"""

from __future__ import annotations

import abc
import email.utils
import json
import logging
import math
import os
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit, urlunsplit

from videorecap.errors import InputError, VideoRecapError, is_count
from videorecap.store import Store, fingerprint_key

logger = logging.getLogger(__name__)

Messages = list[dict[str, str]]
OnResult = Callable[[int, str], None]

DEFAULT_KEY_ENV = "OPENAI_API_KEY"
DEFAULT_CONCURRENCY = 4
DEFAULT_TIMEOUT = 120.0  # seconds for one request: a long summary from a big model on a busy server takes a while
DEFAULT_RETRIES = 5  # attempts after the first
DEFAULT_BACKOFF = 0.5  # seconds before the first retry, doubled for each next one
MAX_BACKOFF = 60.0  # seconds: no wait (Retry-After included) is longer than this
CACHE_VERSION = 1


class LLMError(VideoRecapError):
    """A language-model request that failed for good (after its retries); exit code 1: some inputs failed."""

    exit_code = 1


class _Retryable(Exception):
    """A failure worth another try: a timeout, a refused connection, a 429, a 5xx, a malformed answer."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@runtime_checkable
class TextBackend(Protocol):
    """What every text-model backend offers."""

    name: str  # the kind of backend ("openai" for an OpenAI-compatible server, "videorecap" for the own model)
    model: str  # the model's name (what a provenance field records)

    def chat(self, messages: Messages, *, max_tokens: int = 256, temperature: float = 0.0) -> str:
        """The assistant's answer to `messages` (`[{"role": "system"|"user"|"assistant", "content": ...}]`)."""
        ...

    def chat_many(
        self,
        requests: Sequence[Messages],
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        on_result: OnResult | None = None,
    ) -> list[str]:
        """One answer per request, in order; `on_result(i, text)` is called as each arrives."""
        ...


class BaseBackend(abc.ABC):
    """`chat_many` on top of `chat`: up to `concurrency` requests at a time, every failure collected."""

    name = "base"
    model = ""
    concurrency = DEFAULT_CONCURRENCY

    @property
    def cache_id(self) -> str:
        """What identifies the model's answers in the response cache (its name, and its weights when known)."""
        return f"{self.name}:{self.model}"

    @abc.abstractmethod
    def chat(self, messages: Messages, *, max_tokens: int = 256, temperature: float = 0.0) -> str:
        """One answer: over HTTP, from the model in this process, or from the cache (the subclasses)."""

    def run_many(
        self, requests: Sequence[Messages], max_tokens: int, temperature: float, on_result: OnResult | None
    ) -> list[str | Exception]:
        """Every request's answer or its exception, in order (nothing is raised here)."""
        out: list[str | Exception] = [RuntimeError("not run")] * len(requests)
        lock = threading.Lock()

        def one(i: int) -> None:
            try:
                text = self.chat(requests[i], max_tokens=max_tokens, temperature=temperature)
            except (VideoRecapError, OSError, ValueError) as e:
                out[i] = e
                return
            out[i] = text
            if on_result is not None:
                with lock:  # callers write files from the callback: one at a time
                    on_result(i, text)

        with ThreadPoolExecutor(max_workers=max(1, self.concurrency), thread_name_prefix="llm") as pool:
            list(pool.map(one, range(len(requests))))
        return out

    def chat_many(
        self,
        requests: Sequence[Messages],
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        on_result: OnResult | None = None,
    ) -> list[str]:
        results = self.run_many(requests, max_tokens, temperature, on_result)
        return _raise_failures(results, self)


def _raise_failures(results: list[str | Exception], backend: Any) -> list[str]:
    failed = [r for r in results if isinstance(r, Exception)]
    if failed:
        raise LLMError(
            f"{len(failed)} of {len(results)} requests to {backend.model or backend.name} failed "
            f"(first: {failed[0]}); the answers that arrived are kept, run the same command again to resume"
        )
    return results  # type: ignore[return-value]


# ---- an OpenAI-compatible server -------------------------------------------------------------------------------------
def base_url(url: str) -> str:
    """`http://host:port` or `.../v1` (or a full `.../chat/completions` URL) -> the API base ending in /v1."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InputError(f"--llm {url}: not an http(s) URL; give e.g. http://127.0.0.1:8000/v1")
    path = parts.path.rstrip("/")
    for tail in ("/chat/completions", "/completions", "/models"):
        path = path.removesuffix(tail)
    if not path:
        path = "/v1"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def _retry_after(headers: Any) -> float | None:
    """Seconds from a Retry-After header (a number, or an HTTP date); None when absent or unreadable."""
    value = headers.get("Retry-After") if headers is not None else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class HTTPBackend(BaseBackend):
    """Chat completions from an OpenAI-compatible server (vLLM, llama.cpp, Ollama, a hosted API, `videorecap serve`).

    Args:
        url: the server (`http://host:port` or its `/v1` base).
        model: the model name; None asks the server (`GET /v1/models`) and takes the first.
        key_env: the environment variable holding the API key (sent as a bearer token when set).
        concurrency: requests in flight at once in `chat_many`.
        timeout: seconds before one attempt counts as failed (and is retried).
        retries: further attempts after a retryable failure, waiting `backoff * 2**k` (+ jitter) seconds.
        backoff: the first wait; None takes `DEFAULT_BACKOFF` (read when the client is made).
    """

    name = "openai"

    def __init__(
        self,
        url: str,
        model: str | None = None,
        *,
        key_env: str = DEFAULT_KEY_ENV,
        concurrency: int = DEFAULT_CONCURRENCY,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        backoff: float | None = None,
    ) -> None:
        self.url = base_url(url)
        self._model = model
        self.key_env = key_env
        if not is_count(concurrency):
            raise InputError(f"concurrency must be a whole number of at least 1, not {concurrency!r}")
        if not isinstance(timeout, (int, float)) or not 0 < timeout < math.inf:
            raise InputError(f"timeout must be a positive number of seconds, not {timeout!r}")
        if not is_count(retries, at_least=0):
            raise InputError(f"retries must be a whole number of at least 0, not {retries!r}")
        self.concurrency = concurrency
        self.timeout = timeout
        self.retries = retries
        self.backoff = DEFAULT_BACKOFF if backoff is None else backoff
        self._lock = threading.Lock()

    # ---- the wire
    def _headers(self) -> dict[str, str]:
        h = {"Content-Type": "application/json", "Accept": "application/json"}
        key = os.environ.get(self.key_env) if self.key_env else None
        if key:
            h["Authorization"] = f"Bearer {key}"
        return h

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        """One attempt: the decoded JSON answer; `_Retryable` for what another try may fix, `LLMError` otherwise."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=self._headers())
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            detail = _error_message(e)
            if e.code == 429 or e.code >= 500:
                raise _Retryable(f"HTTP {e.code} {detail}", _retry_after(e.headers)) from None
            hint = {401: "; check the API key in $" + self.key_env, 404: "; check the URL and --llm-model"}
            raise LLMError(f"{self.url}{path}: HTTP {e.code} {detail}{hint.get(e.code, '')}") from None
        except TimeoutError as e:
            raise _Retryable(f"no answer within {self.timeout:g} s ({e})") from None
        except urllib.error.URLError as e:
            raise _Retryable(f"cannot reach the server ({e.reason})") from None
        except (ConnectionError, http_client_errors()) as e:  # the server died mid-answer
            raise _Retryable(f"connection lost ({type(e).__name__}: {e})") from None
        try:
            return json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise _Retryable(f"malformed JSON in the answer: {raw[:80]!r}") from None

    def _with_retries(self, what: str, attempt: Callable[[], Any]) -> Any:
        for k in range(self.retries + 1):
            try:
                return attempt()
            except _Retryable as e:
                if k == self.retries:
                    raise LLMError(f"{self.url}: {what} failed after {k + 1} attempts: {e}") from None
                wait = self.backoff * 2**k
                wait = e.retry_after if e.retry_after is not None else wait + random.uniform(0, wait)
                wait = min(wait, MAX_BACKOFF)
                logger.info("%s: %s; retrying in %.1f s (%d/%d)", self.url, e, wait, k + 1, self.retries)
                time.sleep(wait)
        raise AssertionError("unreachable")

    # ---- the API
    @property
    def model(self) -> str:  # type: ignore[override]
        with self._lock:
            if self._model is None:
                self._model = self._first_model()
            return self._model

    @property
    def cache_id(self) -> str:
        # the model's name only, so that a rerun finds its answers whether the name was given or asked for
        # (`videorecap serve` names a model after its weights: a retrained model is another name)
        return self.model

    def _first_model(self) -> str:
        answer = self._with_retries("GET /models", lambda: self._request("GET", "/models"))
        try:
            return str(answer["data"][0]["id"])
        except (KeyError, IndexError, TypeError):
            raise LLMError(f"{self.url}/models: the server lists no model; give one with --llm-model") from None

    def owned_by(self) -> str | None:
        """Who the server says owns the model (`videorecap` for `videorecap serve`), from `GET /v1/models`."""
        answer = self._with_retries("GET /models", lambda: self._request("GET", "/models"))
        entries = answer.get("data") if isinstance(answer, dict) else None
        for e in entries if isinstance(entries, list) else []:
            if isinstance(e, dict) and e.get("id") == self.model:
                return e.get("owned_by")
        return None

    def chat(self, messages: Messages, *, max_tokens: int = 256, temperature: float = 0.0) -> str:
        body = {"model": self.model, "messages": messages, "max_tokens": max_tokens, "temperature": temperature}

        def attempt() -> str:
            answer = self._request("POST", "/chat/completions", body)
            try:
                content = answer["choices"][0]["message"]["content"]
            except (KeyError, IndexError, TypeError):
                raise _Retryable(f"an answer without choices[0].message.content: {str(answer)[:80]}") from None
            if not isinstance(content, str):
                raise _Retryable(f"choices[0].message.content is not text: {content!r:.80}")
            return content

        return self._with_retries("chat completion", attempt)


def http_client_errors() -> type[Exception]:
    import http.client

    return http.client.HTTPException


def _error_message(e: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(e.read() or b"null")
        return str(body["error"]["message"])[:200]
    except (OSError, ValueError, KeyError, TypeError):
        return str(e.reason)


# ---- the own text model in this process ------------------------------------------------------------------------------
class LocalBackend(BaseBackend):
    """A text-model checkpoint folder (`videorecap train` with `kind: text-summarizer`) run in this process."""

    name = "videorecap"

    def __init__(self, folder: str | os.PathLike[str], *, device: str = "cpu", batch_size: int = 16) -> None:
        from videorecap.llm.textmodel import TextModel

        self.text_model = TextModel.load(folder, device=device)
        self.model = self.text_model.name
        self.batch_size = batch_size
        self._lock = threading.Lock()

    @property
    def cache_id(self) -> str:
        return self.model  # named after its weights (textmodel.DEFAULT_NAME): the same key as when it is served

    def chat(self, messages: Messages, *, max_tokens: int = 256, temperature: float = 0.0) -> str:
        return self.chat_many([messages], max_tokens=max_tokens, temperature=temperature)[0]

    def run_many(
        self, requests: Sequence[Messages], max_tokens: int, temperature: float, on_result: OnResult | None
    ) -> list[str | Exception]:
        out: list[str | Exception] = []
        for k in range(0, len(requests), self.batch_size):
            chunk = requests[k : k + self.batch_size]
            with self._lock:  # one forward at a time: the model is not thread-safe under torch's own threads
                texts = self.text_model.chat_batch(list(chunk), max_tokens=max_tokens, temperature=temperature)
            for j, t in enumerate(texts):
                out.append(t)
                if on_result is not None:
                    on_result(k + j, t)
        return out


# ---- the response cache ----------------------------------------------------------------------------------------------
class CachedBackend(BaseBackend):
    """Answers stored in a resumable store under a hash of (model, messages, max_tokens, temperature)."""

    def __init__(self, inner: BaseBackend, cache_dir: str | os.PathLike[str]) -> None:
        self.inner = inner
        self.name = inner.name
        self.concurrency = inner.concurrency
        self.store = Store.open(Path(cache_dir), {"kind": "llm responses", "version": CACHE_VERSION})
        self.hits = 0

    @property
    def model(self) -> str:  # type: ignore[override]
        return self.inner.model

    @property
    def cache_id(self) -> str:
        return self.inner.cache_id

    def key(self, messages: Messages, max_tokens: int, temperature: float) -> str:
        return fingerprint_key(
            {"model": self.cache_id, "messages": messages, "max_tokens": max_tokens, "temperature": temperature}
        )

    def _get(self, key: str) -> str | None:
        entry = self.store.get(key)
        if entry is None or not isinstance(entry.rows, dict) or not isinstance(entry.rows.get("text"), str):
            return None
        return entry.rows["text"]

    def chat(self, messages: Messages, *, max_tokens: int = 256, temperature: float = 0.0) -> str:
        return self.chat_many([messages], max_tokens=max_tokens, temperature=temperature)[0]

    def run_many(
        self, requests: Sequence[Messages], max_tokens: int, temperature: float, on_result: OnResult | None
    ) -> list[str | Exception]:
        keys = [self.key(m, max_tokens, temperature) for m in requests]
        out: list[str | Exception | None] = [self._get(k) for k in keys]
        for i, text in enumerate(out):
            if text is not None and on_result is not None:
                on_result(i, text)  # type: ignore[arg-type]
        todo = [i for i, text in enumerate(out) if text is None]
        self.hits += len(requests) - len(todo)
        if todo:
            logger.info("llm: %d of %d answers cached, %d to ask", len(requests) - len(todo), len(requests), len(todo))

        def store(j: int, text: str) -> None:
            i = todo[j]
            self.store.put(keys[i], rows={"text": text, "model": self.cache_id})
            if on_result is not None:
                on_result(i, text)

        fresh = self.inner.run_many([requests[i] for i in todo], max_tokens, temperature, store)
        for i, r in zip(todo, fresh, strict=True):
            out[i] = r
        return out  # type: ignore[return-value]


def is_own_text_model(backend: BaseBackend) -> bool:
    """Whether the backend is the project's own text model (in-process, or served by `videorecap serve`): it was
    trained on "Summarize: " + text, so it gets that prompt by default, not a general model's instructions."""
    inner = getattr(backend, "inner", backend)
    if isinstance(inner, LocalBackend):
        return True
    return isinstance(inner, HTTPBackend) and inner.owned_by() == "videorecap"


# ---- opening one -----------------------------------------------------------------------------------------------------
def check_backend(llm_url: str | None, text_model: str | os.PathLike[str] | None, model: str | None = None) -> None:
    """The mistakes in `open_backend`'s choice that need no server and no weights (InputError, CheckpointError):
    not exactly one of a server and a text model, a server's model name with a text model, or a text model folder
    that is missing or no checkpoint (only its config.json is read). Commands call it before they create outputs."""
    if (llm_url is None) == (text_model is None):
        raise InputError("give exactly one of --llm URL (an OpenAI-compatible server) and --text-model DIR")
    if text_model is not None:
        if model is not None:
            raise InputError("--llm-model names a model on a server (--llm); --text-model DIR is the model itself")
        from videorecap.llm.textmodel import check_text_model_folder

        check_text_model_folder(text_model)


def open_backend(
    llm_url: str | None,
    text_model: str | os.PathLike[str] | None,
    model: str | None = None,
    *,
    key_env: str = DEFAULT_KEY_ENV,
    concurrency: int = DEFAULT_CONCURRENCY,
    cache_dir: str | os.PathLike[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    retries: int = DEFAULT_RETRIES,
    device: str = "cpu",
) -> BaseBackend:
    """The backend the user chose: exactly one of `llm_url` (a server) and `text_model` (a checkpoint folder).

    With `cache_dir`, answers are cached there (see `CachedBackend`). Constructing touches no network: a server is
    first asked when a request (or its model name) is needed.
    """
    check_backend(llm_url, text_model, model)
    backend: BaseBackend
    if llm_url is not None:
        backend = HTTPBackend(
            llm_url, model, key_env=key_env, concurrency=concurrency, timeout=timeout, retries=retries
        )
    else:
        backend = LocalBackend(text_model, device=device)  # type: ignore[arg-type]
    return CachedBackend(backend, cache_dir) if cache_dir is not None else backend
