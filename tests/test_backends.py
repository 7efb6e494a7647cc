"""Backends behind one contract: declared capabilities, the OpenAI-compatible server backend
(for real, against llama-cpp-python's own server with SmolLM2), its errors, and the privacy
guard that keeps a local_only index's passages on the machine."""

from __future__ import annotations

import socket
import sqlite3

import pytest
from conftest import CORPUS, ROOT, free_port
from fakes import ObedientModel
from openai_stub import StubServer

from ragpipe.errors import ConfigError, ModelServerError, PrivacyRefused
from ragpipe.generation import Capabilities, OpenAIGenerator
from ragpipe.pipeline import Pipeline
from ragpipe.pipeline.answer import DEGRADED
from ragpipe.privacy import is_allowed
from ragpipe.prompts import NOT_FOUND
from ragpipe.settings import load_settings

PAGE = "Northwind travel rules. Tier 1 cities: EUR 95 per day. Claims use form TR-7."
Q = "What is the per diem for a Tier 1 city?"
REMOTE = "http://203.0.113.7:8080/v1"  # TEST-NET-3: documentation only, never routed


def settings_for(tmp_path, **more):
    over = {"paths.indexes": tmp_path / "idx", "paths.models": ROOT / "models",
            "llm.model": "smollm2-135m", "llm.n_ctx": 2048, "llm.max_tokens": 48,
            "answer.style": "extract", "answer.passages": 1, **more}
    return load_settings(overrides=over, environ={})


@pytest.fixture
def docs(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "travel.txt").write_text(PAGE)
    return folder


# ----- declared capabilities ---------------------------------------------------------------------
def test_a_backend_without_a_judge_says_so_on_the_answer(tmp_path, docs, embedder):
    """No getattr probing: a text-only backend's answer records what it lacked."""
    model = ObedientModel("EUR 95 per day [1]")
    assert model.capabilities == Capabilities()
    pipe = Pipeline(settings_for(tmp_path), "t", embedder=embedder, generator=model)
    pipe.ingest(docs)
    ans = pipe.ask(Q)
    assert ans.found and ans.text.startswith("EUR 95 per day")
    assert DEGRADED["judge"] in ans.degraded and DEGRADED["copy"] in ans.degraded
    assert "judge" not in ans.signals and ans.support.confidence is None
    # with the judge turned off on purpose, nothing is missing from it
    pipe.settings.answer.judge = False
    assert DEGRADED["judge"] not in pipe.ask(Q).degraded


def test_llama_cpp_declares_everything_and_loses_nothing(tmp_path, docs, embedder, small_llm):
    caps = small_llm.capabilities
    assert caps.token_logprobs and caps.copy_constraint and caps.judge
    assert caps.exact_token_count and caps.chat_template and caps.endpoint == ""
    pipe = Pipeline(settings_for(tmp_path), "t", embedder=embedder, generator=small_llm)
    pipe.ingest(docs)
    ans = pipe.ask(Q)
    assert ans.degraded == ()


# ----- the same end-to-end checks for both backends ----------------------------------------------
@pytest.fixture(scope="module")
def corpus_settings(tmp_path_factory, embedder):
    tmp = tmp_path_factory.mktemp("backends")
    settings = settings_for(tmp)
    Pipeline(settings, "corpus", embedder=embedder).ingest(CORPUS)
    return settings


@pytest.fixture(params=["llama_cpp", "openai"])
def backend_llm(request, small_llm):
    """SmolLM2, in-process or behind llama-cpp-python's OpenAI-compatible server."""
    if request.param == "llama_cpp":
        return small_llm
    return OpenAIGenerator(request.getfixturevalue("llama_server"), "smollm2-135m", n_ctx=2048)


@pytest.fixture
def backend(backend_llm, corpus_settings, embedder):
    """A Pipeline over the corpus index answering with either backend."""
    return Pipeline(corpus_settings, "corpus", embedder=embedder, generator=backend_llm)


@pytest.mark.e2e
def test_stream_with_valid_citations(backend):
    stream = backend.stream("Which form is used to claim travel expenses after a business trip?")
    assert stream.hits and stream.hits[0].source == "travel-policy.pdf"
    pieces = list(stream)
    assert len(pieces) > 1, "the answer arrives in several pieces"
    ans = stream.answer
    assert ans.text and ans.prompt_tokens <= 2048 - 48
    assert ans.timings["first_token_s"] <= ans.timings["total_s"]
    sources = {p.name for p in CORPUS.iterdir()}
    for c in ans.citations:
        assert c.hit is ans.hits[c.n - 1] and c.hit.source in sources
    if ans.abstain_reason != "model":
        assert "judge" in ans.signals, "both backends give the judge's P(yes)"
    assert DEGRADED["judge"] not in ans.degraded


@pytest.mark.e2e
def test_absent_topic_abstains(backend_llm, tmp_path, embedder):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "travel.txt").write_text(PAGE)
    (docs / "security.txt").write_text(
        "Passwords must have at least 14 characters and are kept in the password manager.")
    pipe = Pipeline(settings_for(tmp_path), "t", embedder=embedder, generator=backend_llm)
    pipe.ingest(docs)
    ans = pipe.ask("Which team won the football world cup final in 1998?")
    assert not ans.found and ans.text == NOT_FOUND and ans.hits and not ans.citations
    assert ans.abstain_reason in ("not relevant", "unsupported", "uncertain", "model")


@pytest.mark.e2e
def test_follow_up_is_searched_with_the_conversation(backend):
    first = "How much is the daily per diem for a Tier 1 city such as London?"
    ans1 = backend.ask(first)
    history = [{"role": "user", "content": first}, {"role": "assistant", "content": ans1.text}]
    ans = backend.ask("And for Tier 2 cities?", history=history)
    assert ans.query.startswith(first) and ans.hits[0].source == "travel-policy.pdf"
    for c in ans.citations:
        assert c.hit is ans.hits[c.n - 1]


@pytest.mark.e2e
def test_server_token_counts_are_never_below_the_exact_ones(backend, small_llm):
    """The server backend counts with the server's tokenizer plus a template allowance."""
    fitted = backend.prepare("What is the monthly spending limit of the corporate card?")
    exact = small_llm.count_prompt_tokens(fitted.messages)
    counted = backend.generator.count_prompt_tokens(fitted.messages)
    assert exact <= counted <= exact + 40
    if isinstance(backend.generator, OpenAIGenerator):
        assert backend.generator.counting == "tokenizer"
        assert not backend.generator.capabilities.exact_token_count


@pytest.mark.e2e
def test_cli_asks_through_a_server(corpus_settings, llama_server, capsys):
    from ragpipe.cli import main

    code = main(["--set", "answer.style=extract", "--set", "answer.passages=1",
                 "--set", f"paths.indexes={corpus_settings.paths.indexes}",
                 "--set", "llm.backend=openai", "--set", f"llm.base_url={llama_server}",
                 "--set", "llm.model=smollm2", "--set", "llm.n_ctx=2048",
                 "--set", "llm.max_tokens=32",
                 "ask", "Which form do I use to claim travel expenses?", "--index", "corpus",
                 "--explain"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "travel-policy.pdf" in out.out
    assert f"(openai at {llama_server}" in out.out
    assert f"note: {DEGRADED['copy']}" in out.out  # extraction without copy-constrained decoding


# ----- the server backend's errors ---------------------------------------------------------------
MSGS = [{"role": "user", "content": "hi"}]


def test_a_server_that_is_down_is_named_with_the_fix():
    gen = OpenAIGenerator(f"http://127.0.0.1:{free_port()}/v1", "m", retries=1)
    with pytest.raises(ModelServerError, match="cannot reach the model server .* start it"):
        list(gen.stream(MSGS, 8))


def test_a_silent_server_times_out_with_the_setting_named():
    with StubServer(hang_s=3) as stub:
        gen = OpenAIGenerator(stub.url, "m", timeout_s=0.5, retries=0)
        with pytest.raises(ModelServerError, match="sent nothing for 0.5 s.*llm.timeout_s"):
            list(gen.stream(MSGS, 8))


@pytest.mark.parametrize("error,words", [
    ((404, {"error": {"message": "model 'llama9' not found, try pulling it first"}}),
     "has no model 'llama9'.*set llm.model to one it serves \\(stub-reasoner\\)"),
    ((400, {"error": {"message": "This model's maximum context length is 2048 tokens."}}),
     "does not fit the model's context.*llm.n_ctx"),
    ((401, {"error": {"message": "Incorrect API key provided"}}), "llm.api_key_env"),
    ((503, {"error": {"message": "Loading model"}}), "HTTP 503: Loading model"),
])
def test_server_errors_become_one_actionable_line(error, words):
    with StubServer(error=error) as stub:
        gen = OpenAIGenerator(stub.url, "llama9", retries=1)
        with pytest.raises(ModelServerError, match=words) as exc:
            list(gen.stream(MSGS, 8))
        assert "\n" not in str(exc.value)
        # a busy server (503) is tried again, the others are not
        assert len(stub.chats()) == (2 if error[0] == 503 else 1)


def test_a_reply_that_is_not_the_api_is_named():
    with StubServer(raw=b"data: {\"choices\": [{\"delta\": {\"content\": \"EUR\"}}]}\n\n"
                        b"data: {oops\n\n") as stub:
        gen = OpenAIGenerator(stub.url, "m")
        with pytest.raises(ModelServerError, match="unexpected event.*OpenAI-compatible"):
            list(gen.stream(MSGS, 8))
    with StubServer(raw=b"<html>Sign in to the proxy</html>") as stub:
        gen = OpenAIGenerator(stub.url, "m")
        with pytest.raises(ModelServerError, match="unexpected reply"):
            gen.yes_probability(MSGS)
        with pytest.raises(ModelServerError, match="closed the stream before the answer"):
            list(gen.stream(MSGS, 8))  # no event at all, and the retry is no better


@pytest.mark.e2e
def test_a_prompt_too_long_for_the_real_server(llama_server):
    gen = OpenAIGenerator(llama_server, "smollm2", n_ctx=2048)
    # the server answers the stream empty; the backend asks again to learn why
    with pytest.raises(ModelServerError, match="does not fit the model's context.*llm.n_ctx"):
        list(gen.stream([{"role": "user", "content": "word " * 3000}], 8))


@pytest.mark.parametrize("counting,expected", [("llama-server", 5), ("vllm", 6), ("", None)])
def test_token_counting_uses_the_servers_tokenizer_where_there_is_one(counting, expected):
    with StubServer(counting=counting) as stub:
        gen = OpenAIGenerator(stub.url, "m")
        n = gen.count_prompt_tokens([{"role": "user", "content": "one two three"}])
        assert gen.counting == (counting or "estimate")
        assert gen.capabilities.exact_token_count == bool(counting)
        if expected is not None:
            assert n == expected
        else:
            assert n >= 16 + 8 + 3


def test_the_estimate_is_never_below_the_real_count():
    """The documented fallback: conservative for prose, numbers, code, accents and CJK."""
    from llama_cpp import Llama

    from ragpipe import models
    from ragpipe.generation.openai import estimate_tokens
    from ragpipe.ingest import read_document

    texts = ["EUR 1,234.56; 2024-01-01 12:30 +41 44 123 45 67", "1234567890 " * 20,
             "Zürich, Genève, Straße, naïve café", "这是一个测试句子，用于检查分词器。" * 3,
             "def f(x):\n    return {'a': [1, 2, 3]}\n" * 3]
    for path in sorted(CORPUS.iterdir()):
        doc, _ = read_document(path, path.name)
        for page in doc.pages:
            texts += [page.text[i : i + 600] for i in range(0, len(page.text), 600)]
    for name in ("smollm2-135m", "qwen2.5-coder-0.5b"):
        vocab = Llama(model_path=str(models.resolve_gguf(name, ROOT / "models")),
                      vocab_only=True, verbose=False)
        for text in texts:
            real = len(vocab.tokenize(text.encode(), add_bos=False, special=False))
            assert estimate_tokens(text) >= real, (name, text[:40])


# ----- privacy: a local_only index's passages stay on the machine --------------------------------
@pytest.mark.parametrize("url,ok", [
    ("http://127.0.0.1:8080/v1", True), ("http://localhost:11434/v1", True),
    ("http://[::1]:8000/v1", True), ("http://127.0.0.53/v1", True),
    ("https://api.openai.com/v1", False), ("http://10.0.0.5:8000/v1", False),
    ("http://0.0.0.0:8080/v1", False), ("http://localhost.example.com/v1", False),
    ("http://127.0.0.1.nip.io/v1", False), ("http://127.0.0.1@evil.example/v1", False),
    ("not a url", False),
])
def test_only_loopback_is_local(url, ok):
    assert is_allowed(url) is ok


def test_trusted_hosts_extend_local():
    assert is_allowed("http://gpu-box.lan:8000/v1", ["gpu-box.lan"])
    assert is_allowed("http://10.1.2.3:8000/v1", ["10.0.0.0/8"])
    assert not is_allowed("http://10.1.2.3.evil.example/v1", ["10.0.0.0/8"])
    assert not is_allowed("http://gpu-box.lan.evil.example/v1", ["gpu-box.lan"])


@pytest.fixture
def connects(monkeypatch):
    """Every address a socket connects to during the test (the guard still applies)."""
    seen: list = []
    real = socket.socket.connect

    def record(self, address):  # noqa: ANN001
        seen.append(address)
        return real(self, address)

    monkeypatch.setattr(socket.socket, "connect", record)
    return seen


def remote_pipe(settings, embedder):
    return Pipeline(settings, "t", embedder=embedder,
                    generator=OpenAIGenerator(REMOTE, "gpt-x", retries=0))


def test_a_local_only_index_never_sends_passages_to_a_remote_server(
        tmp_path, docs, embedder, connects):
    settings = settings_for(tmp_path)
    Pipeline(settings, "t", embedder=embedder).ingest(docs)
    pipe = remote_pipe(settings, embedder)
    assert pipe.store.meta()["local_only"] == "true"
    history = [{"role": "user", "content": "What is the per diem?"},
               {"role": "assistant", "content": "EUR 95 per day [1]"}]
    with pytest.raises(PrivacyRefused, match="privacy.local_only = false") as exc:
        pipe.ask(Q)
    assert "203.0.113.7" in str(exc.value) and "privacy.trusted_hosts" in str(exc.value)
    with pytest.raises(PrivacyRefused):
        pipe.prepare(Q)  # counting sends the prompt
    pipe.settings.answer.rewrite = "model"  # the rewrite sends the conversation
    with pytest.raises(PrivacyRefused):
        list(pipe.stream("And for Tier 2?", history))
    assert connects == [], "nothing was sent anywhere"
    # The same question over a loopback server does connect: the guard is what stopped it.
    with StubServer(reply=["EUR 95 per day [1]"]) as stub:
        Pipeline(settings, "t", embedder=embedder,
                 generator=OpenAIGenerator(stub.url, "m")).ask(Q)
        assert stub.chats() and all(a[0] == "127.0.0.1" for a in connects)


def test_a_trusted_or_opened_index_may_use_the_remote_server(tmp_path, docs, embedder):
    """Allowed destinations really are contacted (here the test's network guard stops it)."""
    from conftest import NetworkAccessError

    settings = settings_for(tmp_path, **{"privacy.trusted_hosts": "203.0.113.7"})
    Pipeline(settings, "t", embedder=embedder).ingest(docs)
    with pytest.raises(NetworkAccessError):
        remote_pipe(settings, embedder).ask(Q)
    # synced with privacy.local_only = false, the index records it and may leave
    opened = settings_for(tmp_path, **{"privacy.local_only": False})
    Pipeline(opened, "t", embedder=embedder).sync(docs)
    assert Pipeline(opened, "t").store.meta()["local_only"] == "false"
    with pytest.raises(NetworkAccessError):
        remote_pipe(opened, embedder).ask(Q)
    # the stricter of setting and index wins: setting it back refuses at once, before a sync
    with pytest.raises(PrivacyRefused):
        remote_pipe(settings_for(tmp_path), embedder).ask(Q)


def test_an_index_from_before_the_setting_counts_as_local_only(tmp_path, docs, embedder):
    opened = settings_for(tmp_path, **{"privacy.local_only": False})
    pipe = Pipeline(opened, "t", embedder=embedder)
    pipe.ingest(docs)
    pipe.store.close()
    conn = sqlite3.connect(pipe.store.db_path)
    with conn:
        conn.execute("DELETE FROM meta WHERE key = 'local_only'")
    conn.close()
    with pytest.raises(PrivacyRefused):
        remote_pipe(opened, embedder).ask(Q)


def test_cli_refuses_a_remote_model_for_a_local_only_index(tmp_path, docs, embedder, capsys):
    from ragpipe.cli import main

    Pipeline(settings_for(tmp_path), "t", embedder=embedder).ingest(docs)
    # (the generative style: a composed answer without a judge sends nothing to any model)
    code = main(["--set", "answer.style=extract",
                 "--set", f"paths.indexes={tmp_path / 'idx'}", "--set", "llm.backend=openai",
                 "--set", f"llm.base_url={REMOTE}", "ask", Q,
                 "--index", "t"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "privacy.local_only" in err


@pytest.mark.parametrize("key,value,words", [
    ("llm.backend", "ollama", "use one of llama_cpp, openai"),
    ("llm.base_url", "127.0.0.1:8080", "OpenAI API root"),
    ("llm.api_key_env", "sk-proj-abc123", "name of an environment variable"),
    ("privacy.trusted_hosts", "gpu box", "host names, IP addresses or networks"),
])
def test_backend_settings_are_checked(key, value, words):
    with pytest.raises(ConfigError, match=words):
        load_settings(overrides={key: value}, environ={})


def test_an_unset_api_key_variable_is_named(tmp_path):
    from ragpipe.pipeline import build_generator

    settings = settings_for(tmp_path, **{"llm.backend": "openai",
                                         "llm.api_key_env": "RAGPIPE_TEST_NO_SUCH_KEY"})
    with pytest.raises(ConfigError, match="RAGPIPE_TEST_NO_SUCH_KEY.*not set"):
        build_generator(settings)


def test_status_says_where_passages_may_go(tmp_path, docs, embedder, capsys):
    from ragpipe.cli import main

    Pipeline(settings_for(tmp_path), "t", embedder=embedder).ingest(docs)
    base = ["--set", f"paths.indexes={tmp_path / 'idx'}"]
    assert main([*base, "status", "--index", "t"]) == 0
    assert "passages   local only" in capsys.readouterr().out
    opened = settings_for(tmp_path, **{"privacy.local_only": False})
    Pipeline(opened, "t", embedder=embedder).sync(docs)
    assert main([*base, "--set", "privacy.local_only=false", "status", "--index", "t"]) == 0
    assert "passages   may be sent to llm.base_url" in capsys.readouterr().out
    assert main([*base, "status", "--index", "t"]) == 0  # the setting is stricter again
    assert "passages   local only" in capsys.readouterr().out


def test_a_server_without_log_probabilities_leaves_the_judge_out_visibly(
        tmp_path, docs, embedder):
    with StubServer(reply=["EUR", " 95", " per", " day", " [1]"], judge_top=()) as stub:
        pipe = Pipeline(settings_for(tmp_path), "t", embedder=embedder,
                        generator=OpenAIGenerator(stub.url, "m"))
        pipe.ingest(docs)
        ans = pipe.ask(Q)
    assert ans.found and DEGRADED["judge"] in ans.degraded
    assert "judge" not in ans.signals and ans.support.confidence is None


# ----- summaries through either backend ----------------------------------------------------------
@pytest.mark.e2e
def test_a_folder_is_summarized_through_either_backend(backend_llm, tmp_path, embedder):
    """The batch summaries run on the generator contract alone: the server backend too."""
    import json

    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "travel.txt").write_text(PAGE + " Receipts are kept for 7 years.\n")
    pipe = Pipeline(settings_for(tmp_path, **{"summarize.max_tokens": 96}), "t",
                    embedder=embedder, generator=backend_llm)
    run = pipe.summarize(folder, style="brief", out=tmp_path / "out")
    assert run.ok and run.summarized == ("travel.txt",) and not run.failed
    records = [json.loads(x) for x in (tmp_path / "out" / "summaries.jsonl").read_text()
               .splitlines()]
    assert len(records) == 1 and records[0]["summary"].strip()
    assert records[0]["sentences"], "every summary sentence goes through the check"
    assert (tmp_path / "out" / "docs" / "travel.txt.md").is_file()
