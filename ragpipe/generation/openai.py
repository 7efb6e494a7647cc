"""OpenAIGenerator: an answer model behind any OpenAI-compatible chat completions server.

llama.cpp's llama-server, llama-cpp-python's server, Ollama, LM Studio, vLLM and hosted
APIs all speak ``POST {base_url}/chat/completions``; the server renders the chat
template. Only the standard library is used (urllib, server-sent events), and no proxy
from the environment: prompts go straight to ``llm.base_url``.

What the contract asks for, and how it is had here:

* streaming: ``stream: true``; reasoning a server returns apart (``reasoning_content``)
  is wrapped in <think> tags so it is removed like inline reasoning;
* token log-probabilities: ``logprobs: true``, NaN where the server gives none;
* the judge: one-token reply with ``top_logprobs``, P("yes") / (P("yes") + P("no"));
  None when the server gives no log-probabilities or neither word is among them;
* token counts, found on first use (``counting``): vLLM's ``/tokenize`` with the messages
  and llama-server's ``/apply-template`` + ``/tokenize`` are exact; llama-cpp-python's
  ``/extras/tokenize/count`` counts the messages' text with the model's tokenizer, plus an
  allowance for the template; otherwise (Ollama, LM Studio, hosted APIs)
  ``estimate_tokens``, which is never below the real count on the texts tested
  (tests/test_backends.py), at the price of fitting fewer passages;
* no copy-constrained decoding: that needs every decoding step, which an API does not give.

Errors become one line naming what to do: server down, model not loaded, context
exceeded, API key refused, timeout. A connection that fails, or a server that answers
429/502/503/504 before the first token, is tried again ``llm.retries`` times.
"""

from __future__ import annotations

import http.client
import json
import math
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from typing import Any

from ..errors import ModelServerError
from .base import Capabilities, Message

_RETRY_CODES = (429, 502, 503, 504)

# The estimate, in tokens: a run of ASCII letters (with its leading space) counts a token
# per 4 letters, a digit or any other character a token per UTF-8 byte (tokenizers split
# numbers into digits and punctuation apart), a run of white space one. English prose comes
# out about 1.4 times its real count; runs of digits exactly at it.
_PIECES = re.compile(r" ?[A-Za-z]+|\s+|.", re.S)
# Template tokens around each message (role markers, separators) and the reply's header.
PER_MESSAGE, PER_PROMPT = 8, 16
# Counting with the server's tokenizer is exact ("vllm", "llama-server"), the messages'
# text only ("tokenizer": plus the template allowance above), or the estimate.
EXACT = ("vllm", "llama-server")


def estimate_tokens(text: str) -> int:
    """A conservative token count of ``text`` for a tokenizer ragpipe cannot reach."""
    n = 0
    for m in _PIECES.finditer(text):
        s = m.group()
        if s[-1].isascii() and s[-1].isalpha():
            n += -(-len(s.lstrip()) // 4)
        elif s.isspace():
            n += 1
        else:
            n += len(s.encode("utf-8"))
    return n


def estimate_prompt_tokens(messages: Sequence[Message]) -> int:
    """The estimate for a whole chat prompt, template allowance included."""
    return PER_PROMPT + sum(PER_MESSAGE + estimate_tokens(m["content"]) for m in messages)


def _message(raw: bytes) -> str:
    """The error text of a server's reply body, on one short line."""
    text = raw.decode("utf-8", "replace")
    try:
        obj = json.loads(text)
        err = obj.get("error", obj.get("detail", obj)) if isinstance(obj, dict) else obj
        if isinstance(err, dict):
            err = err.get("message", err)
        text = str(err)
    except ValueError:
        pass
    text = " ".join(text.split())
    return text[:300] + ("…" if len(text) > 300 else "")


class OpenAIGenerator:
    """A model served over the OpenAI chat completions API at ``base_url``."""

    def __init__(
        self,
        base_url: str,
        model: str,
        n_ctx: int = 4096,
        api_key: str = "",
        timeout_s: float = 120.0,
        retries: int = 2,
        temperature: float = 0.0,
        seed: int = 42,
    ) -> None:
        """``base_url`` is the API root ("http://127.0.0.1:8080/v1"); ``api_key`` may be ''."""
        self.base_url = base_url.rstrip("/")
        self.model = model
        self._n_ctx = n_ctx
        self._api_key = api_key
        self.timeout_s = timeout_s
        self.retries = retries
        self.temperature = temperature
        self.seed = seed
        self.counting = ""  # how prompt tokens are counted; found on first count
        self._logprobs = True  # cleared when the server refuses the parameter
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    @property
    def name(self) -> str:
        """The model's name on the server."""
        return self.model

    @property
    def n_ctx(self) -> int:
        """Context window in tokens (llm.n_ctx: set it to the server's)."""
        return self._n_ctx

    @property
    def capabilities(self) -> Capabilities:
        """Streaming, log-probabilities and the judge; exact counts where the server counts."""
        return Capabilities(
            token_logprobs=True, judge=True, exact_token_count=self.counting in EXACT,
            endpoint=self.base_url,
        )

    # ----- HTTP ------------------------------------------------------------------------------
    @property
    def root(self) -> str:
        """The server's root, where llama-server and vLLM keep their own endpoints."""
        return self.base_url[:-3] if self.base_url.endswith("/v1") else self.base_url

    def _open(self, url: str, body: dict | None = None, quiet: bool = False) -> Any:
        """The response to a GET (no body) or JSON POST; retries, errors as ModelServerError.

        ``quiet``: an HTTP error is raised as urllib's HTTPError (for endpoint discovery).
        """
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        data = None if body is None else json.dumps(body).encode("utf-8")
        for attempt in range(self.retries + 1):
            request = urllib.request.Request(url, data, headers)
            try:
                return self._opener.open(request, timeout=self.timeout_s)
            except urllib.error.HTTPError as exc:
                if exc.code in _RETRY_CODES and attempt < self.retries:
                    time.sleep(0.5 * 2**attempt)
                    continue
                if quiet:
                    raise
                raise self._http_error(exc.code, _message(exc.read())) from None
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                if isinstance(reason, TimeoutError):
                    raise self._timeout() from None
                if attempt < self.retries:
                    time.sleep(0.5 * 2**attempt)
                    continue
                raise ModelServerError(
                    f"cannot reach the model server at {self.base_url} ({reason}): start "
                    "it, or set llm.base_url to where it listens"
                ) from None
        raise AssertionError("unreachable")

    def _timeout(self) -> ModelServerError:
        return ModelServerError(
            f"the model server at {self.base_url} sent nothing for {self.timeout_s:g} s: "
            "it is overloaded or the model is too slow; raise llm.timeout_s or use a "
            "smaller model"
        )

    def _http_error(self, code: int, message: str) -> ModelServerError:
        said = message.lower()
        if code in (401, 403):
            return ModelServerError(
                f"the model server at {self.base_url} refused the request (HTTP {code}: "
                f"{message}): put a valid API key in the environment variable named by "
                "llm.api_key_env"
            )
        if code == 404 and "model" in said:
            served = ", ".join(self.served_models()) or "none listed"
            return ModelServerError(
                f"the model server at {self.base_url} has no model {self.model!r} "
                f"({message}): load it there, or set llm.model to one it serves ({served})"
            )
        if code == 404:
            return ModelServerError(
                f"{self.base_url}/chat/completions does not exist (HTTP 404): set "
                "llm.base_url to the server's OpenAI API root, e.g. http://127.0.0.1:8080/v1"
            )
        if code == 400 and any(w in said for w in ("context", "too long", "exceed", "maximum")):
            return ModelServerError(
                f"the prompt does not fit the model's context on the server ({message}): "
                f"set llm.n_ctx (now {self._n_ctx}) to the server's context size, or start "
                "the server with a larger one"
            )
        return ModelServerError(f"the model server at {self.base_url} answered HTTP {code}: "
                                f"{message}")

    def _unexpected(self, what: str, exc: Exception) -> ModelServerError:
        return ModelServerError(
            f"the model server at {self.base_url} sent an unexpected {what} ({exc!r}): is "
            "llm.base_url an OpenAI-compatible API root?"
        )

    def served_models(self) -> list[str]:
        """The model names the server lists (empty when it lists none or fails)."""
        try:
            with self._open(self.base_url + "/models", quiet=True) as resp:
                return [str(m.get("id")) for m in json.load(resp).get("data", [])]
        except (ModelServerError, urllib.error.HTTPError, ValueError, AttributeError):
            return []

    def server_info(self) -> dict[str, Any]:
        """What the server reports about itself: its models and, for llama-server, /props."""
        with self._open(self.base_url + "/models") as resp:
            try:
                info: dict[str, Any] = {"base_url": self.base_url, "models": json.load(resp)}
            except ValueError as exc:
                raise self._unexpected("model list", exc) from None
        try:
            with self._open(self.root + "/props", quiet=True) as resp:
                props = json.load(resp)
            info["props"] = {k: v for k, v in props.items() if k != "chat_template"}
            info["chat_template"] = bool(props.get("chat_template"))
        except (urllib.error.HTTPError, ValueError, AttributeError):
            pass
        return info

    # ----- generating ------------------------------------------------------------------------
    def _body(self, messages: Sequence[Message], max_tokens: int, **extra: Any) -> dict:
        body = {
            "model": self.model, "messages": list(messages), "max_tokens": max_tokens,
            "temperature": self.temperature, "seed": self.seed, **extra,
        }
        if not self._logprobs:
            body.pop("logprobs", None)
            body.pop("top_logprobs", None)
        return body

    def _send(self, body: dict) -> Any:
        """Open a completion; a server that refuses ``logprobs`` is asked again without."""
        try:
            return self._open(self.base_url + "/chat/completions", body, quiet=True)
        except urllib.error.HTTPError as exc:
            message = _message(exc.read())
            if exc.code in (400, 422) and "logprob" in message.lower() and self._logprobs:
                self._logprobs = False
                body = {k: v for k, v in body.items() if k not in ("logprobs", "top_logprobs")}
                return self._open(self.base_url + "/chat/completions", body)
            raise self._http_error(exc.code, message) from None

    def _events(self, body: dict) -> Iterator[dict]:
        """The server-sent events of a streamed completion, as JSON objects."""
        events = finished = 0
        with self._send(body) as resp:
            try:
                for raw in resp:
                    line = raw.decode("utf-8", "replace").strip()
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    event = json.loads(data)
                    if isinstance(event, dict) and event.get("error"):
                        raise self._http_error(400, _message(data.encode()))
                    events += 1
                    finished += any(c.get("finish_reason") for c in event.get("choices") or [])
                    yield event
            except TimeoutError:
                raise self._timeout() from None
            except (OSError, http.client.HTTPException) as exc:
                raise ModelServerError(
                    f"the model server at {self.base_url} broke off the answer ({exc!r}): see "
                    "the server's log"
                ) from None
            except (ValueError, AttributeError) as exc:
                raise self._unexpected("event", exc) from None
        if finished:
            return
        if not events:
            # Some servers (llama-cpp-python's) answer an impossible request with an empty
            # stream; the same request unstreamed, one token long, says what was wrong.
            with self._send({**body, "stream": False, "max_tokens": 1}):
                pass
        raise ModelServerError(
            f"the model server at {self.base_url} closed the stream before the answer was "
            "complete: see the server's log (a prompt longer than its context? set llm.n_ctx "
            "to the server's context size)"
        )

    def stream_scored(
        self,
        messages: Sequence[Message],
        max_tokens: int,
        copy_from: Sequence[str] = (),
        refusal: str = "",
        report: dict[str, float] | None = None,
        whole_sentence: bool = False,
    ) -> Iterator[tuple[str, float]]:
        """Yield (text piece, log-probability); NaN where the server gives none.

        ``copy_from``, ``refusal``, ``report`` and ``whole_sentence`` are not used: decoding
        is the server's (Capabilities.copy_constraint is False).
        """
        body = self._body(messages, max_tokens, stream=True, logprobs=True)
        reasoning = False
        for event in self._events(body):
            choice = (event.get("choices") or [{}])[0]
            delta = choice.get("delta") or {}
            thought = delta.get("reasoning_content") or delta.get("reasoning") or ""
            text = delta.get("content") or ""
            if thought:
                if not reasoning:
                    reasoning = True
                    yield "<think>", math.nan
                yield thought, math.nan
            if text:
                if reasoning:
                    reasoning = False
                    yield "</think>", math.nan
                scored = (choice.get("logprobs") or {}).get("content") or []
                lp = sum(float(t.get("logprob", math.nan)) for t in scored) if scored else math.nan
                yield text, lp
        if reasoning:
            yield "</think>", math.nan

    def stream(self, messages: Sequence[Message], max_tokens: int) -> Iterator[str]:
        """Yield the answer's text pieces as the server streams them."""
        for text, _ in self.stream_scored(messages, max_tokens):
            yield text

    def yes_probability(self, messages: Sequence[Message]) -> float | None:
        """P("yes") / (P("yes") + P("no")) of the first reply token, from its top_logprobs."""
        body = self._body(messages, 1, logprobs=True, top_logprobs=20)
        p = {"yes": 0.0, "no": 0.0}
        with self._send(body) as resp:
            try:
                choice = (json.load(resp).get("choices") or [{}])[0]
                scored = (choice.get("logprobs") or {}).get("content") or []
                for t in scored[0].get("top_logprobs") or [] if scored else []:
                    word = str(t.get("token", "")).strip().lower()
                    if word in p:
                        p[word] += math.exp(float(t.get("logprob", -math.inf)))
            except (ValueError, AttributeError, TypeError, IndexError) as exc:
                raise self._unexpected("reply", exc) from None
        total = p["yes"] + p["no"]
        return p["yes"] / total if total > 0 else None

    # ----- counting --------------------------------------------------------------------------
    def count_prompt_tokens(self, messages: Sequence[Message]) -> int:
        """Prompt tokens: exact where the server counts a chat, else conservative."""
        if not self.counting:
            self.counting = self._find_counting()
        try:
            return self._count(messages)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise self._unexpected(f"reply to counting tokens ({self.counting})", exc) from None

    def _count(self, messages: Sequence[Message]) -> int:
        if self.counting == "vllm":
            body = {"model": self.model, "messages": list(messages),
                    "add_generation_prompt": True}
            with self._open(self.root + "/tokenize", body) as resp:
                return int(json.load(resp)["count"])
        if self.counting == "llama-server":
            with self._open(self.root + "/apply-template", {"messages": list(messages)}) as resp:
                prompt = json.load(resp)["prompt"]
            body = {"content": prompt, "add_special": True}
            with self._open(self.root + "/tokenize", body) as resp:
                return len(json.load(resp)["tokens"])
        if self.counting == "tokenizer":
            total = PER_PROMPT
            for m in messages:
                with self._open(self.root + "/extras/tokenize/count",
                                {"input": m["content"]}) as resp:
                    total += PER_MESSAGE + int(json.load(resp)["count"])
            return total
        return estimate_prompt_tokens(messages)

    def _find_counting(self) -> str:
        """Which of the servers' tokenize endpoints this one has ('estimate' if none)."""
        probe = [{"role": "user", "content": "hi"}]
        tries = (
            ("vllm", "/tokenize", {"model": self.model, "messages": probe}, "count"),
            ("llama-server", "/apply-template", {"messages": probe}, "prompt"),
            ("tokenizer", "/extras/tokenize/count", {"input": "hi"}, "count"),
        )
        for name, path, body, key in tries:
            try:
                with self._open(self.root + path, body, quiet=True) as resp:
                    if key in json.load(resp):
                        return name
            except (urllib.error.HTTPError, ValueError, AttributeError, TypeError):
                continue
        return "estimate"
