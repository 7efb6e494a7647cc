"""Shared fixtures: a network guard, real small models shared per session, temp settings."""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
SHARED_DATA = ROOT.parent / "shared" / "data"



def web_app_index(monkeypatch, tmp_path: Path, docs: Path, embedder, **env) -> None:  # noqa: ANN001
    """The web app's settings in the environment and ``docs`` synced into its default index.

    Indexes under ``tmp_path/indexes``, the small SmolLM2 model with a 2,048-token window;
    ``env`` adds or overrides RAGPIPE_* variables without the prefix (LLM_MAX_TOKENS="32").
    """
    from ragpipe.pipeline import Pipeline
    from ragpipe.settings import load_settings

    base = {"PATHS_INDEXES": tmp_path / "indexes", "PATHS_MODELS": ROOT / "models",
            "LLM_MODEL": "smollm2-135m", "LLM_N_CTX": "2048"}
    for key, value in {**base, **env}.items():
        monkeypatch.setenv(f"RAGPIPE_{key}", str(value))
    monkeypatch.chdir(ROOT)
    Pipeline(load_settings(), "default", embedder=embedder).ingest(docs)


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _is_loopback(address) -> bool:  # noqa: ANN001
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return True
    host = address[0]
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost: would need DNS


class NetworkAccessError(AssertionError):
    """A test tried to reach a non-loopback address."""


def _guarded_connect(self, address):  # noqa: ANN001
    if not _is_loopback(address):
        raise NetworkAccessError(f"test tried to connect to {address!r}: ragpipe must be offline")
    return _real_connect(self, address)


def _guarded_connect_ex(self, address):  # noqa: ANN001
    if not _is_loopback(address):
        raise NetworkAccessError(f"test tried to connect to {address!r}: ragpipe must be offline")
    return _real_connect_ex(self, address)


@pytest.fixture(autouse=True, scope="session")
def no_network():
    """Fail any test that opens a connection to a non-loopback address."""
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    yield
    socket.socket.connect = _real_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _real_connect_ex  # type: ignore[method-assign]


@pytest.fixture
def settings(tmp_path):
    """Settings with indexes in a temp folder and the real model folder."""
    from ragpipe.settings import load_settings

    return load_settings(
        overrides={"paths.indexes": tmp_path / "indexes", "paths.models": ROOT / "models",
                   "llm.model": "smollm2-135m", "llm.n_ctx": 2048, "llm.max_tokens": 96,
                   # the generative path these tests exercise (compose: test_answers_by_type)
                   "answer.style": "extract", "answer.passages": 1},
        environ={},
    )


@pytest.fixture(scope="session")
def embedder():
    """The real MiniLM embedder, loaded once per test session."""
    from ragpipe.embedding import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder("minilm")


@pytest.fixture(scope="session")
def small_llm():
    """The real SmolLM2-135M model, loaded once per test session."""
    from ragpipe import models
    from ragpipe.generation import LlamaCppGenerator

    path = models.resolve_gguf("smollm2-135m", ROOT / "models")
    return LlamaCppGenerator(path, n_ctx=2048, threads=2)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory):
    """llama-cpp-python's OpenAI-compatible server with SmolLM2-135M on a free loopback port.

    Yields its API root (http://127.0.0.1:PORT/v1); the server is stopped at the end.
    """
    import importlib.util
    import subprocess
    import sys
    import time
    import urllib.request

    from ragpipe import models

    missing = [m for m in ("fastapi", "sse_starlette", "starlette_context", "pydantic_settings")
               if importlib.util.find_spec(m) is None]
    if missing:
        pytest.fail(f"llama-cpp-python's server needs {', '.join(missing)}: "
                    "pip install -e '.[dev]' (the server extra)")
    path = models.resolve_gguf("smollm2-135m", ROOT / "models")
    port = free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(path), "--host", "127.0.0.1",
           "--port", str(port), "--n_ctx", "2048", "--n_threads", "2", "--seed", "42",
           "--verbose", "False"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited ({proc.returncode}): "
                            f"{log.read_text(errors='replace')[-2000:]}")
            try:
                with urllib.request.urlopen(base + "/models", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("llama_cpp.server did not answer within 120 s")
                time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
