"""A reasoning model behind the server backend: its <think> block, split over many streamed
chunks (or sent apart as ``reasoning_content``), never reaches the answer, the stream, the
history sent back to the model, or the search query."""

from __future__ import annotations

import pytest
from openai_stub import StubServer

from ragpipe.generation import OpenAIGenerator
from ragpipe.pipeline import Pipeline
from ragpipe.settings import load_settings

PAGE = ("Northwind travel rules. Tier 1 cities (London, New York): EUR 95 per day. "
        "Tier 2 cities (Berlin, Paris): EUR 70 per day. Claims use form TR-7.")
SECRET = "PRIVATE-REASONING"  # occurs only inside the reasoning
THOUGHT = (f"Okay, the user asks about {SECRET} per diem rates. The passage [1] lists "
           "Tier 1 cities at a daily rate. I should answer with the amount and cite it.")
# The tags themselves are split too: "<", "thi", "nk>" ... "</", "think", ">".
INLINE = (["<", "thi", "nk>"] + [THOUGHT[i : i + 3] for i in range(0, len(THOUGHT), 3)]
          + ["</", "think", ">", "EUR", " 95", " per", " day", " [1]"])
ANSWER = ["EUR", " 95", " per", " day", " [1]"]
QUESTION = "What is the per diem for a Tier 1 city?"


@pytest.fixture
def ask(tmp_path, embedder):
    """A function: (stub server, settings overrides) -> Pipeline over PAGE using the stub."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "travel.txt").write_text(PAGE)

    def make(stub: StubServer, **more) -> Pipeline:
        over = {"paths.indexes": tmp_path / "idx", "llm.max_tokens": 8,
                "answer.style": "extract", "answer.passages": 1, **more}
        pipe = Pipeline(load_settings(overrides=over, environ={}), "t", embedder=embedder,
                        generator=OpenAIGenerator(stub.url, "stub-reasoner"))
        if not pipe.store.exists():
            pipe.ingest(docs)
        return pipe

    return make


@pytest.mark.parametrize("reply,reasoning", [(INLINE, []), (ANSWER, [THOUGHT[i : i + 4] for i in
                                               range(0, len(THOUGHT), 4)])],
                         ids=["inline-think", "reasoning_content"])
def test_reasoning_never_reaches_stream_answer_or_history(ask, reply, reasoning):
    with StubServer(reply=reply, reasoning=reasoning, counting="llama-server") as stub:
        pipe = ask(stub)
        stream = pipe.stream(QUESTION)
        pieces = list(stream)
        shown = "".join(pieces)
        ans = stream.answer
        assert len(pieces) > 1
        for text in (shown, ans.text, ans.withheld):
            assert SECRET not in text and "think" not in text and "<" not in text
        assert shown.strip() == "EUR 95 per day [1]"
        assert ans.found and ans.text.startswith("EUR 95 per day"), ans
        assert ans.citations and ans.citations[0].supported
        # the reasoning is far longer than the 8-token answer budget, and did not use it up
        assert ans.think_tokens > 8 and ans.answer_tokens < 8
        assert ans.signals["judge"] > 0.9  # the judge turn went through the server too
        assert pipe.generator.capabilities.exact_token_count  # llama-server's /tokenize

        # A follow-up, with the earlier reply as a client stored it raw, reasoning and all:
        # nothing of it is sent back to the model or searched for.
        raw = "<think>" + THOUGHT + "</think>EUR 95 per day [1]"
        history = [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": raw}]
        pipe.settings.answer.rewrite = "model"  # the rewrite turn sees the history too
        follow = pipe.stream("And for Tier 2 cities?", history)
        assert SECRET not in "".join(follow) and SECRET not in follow.answer.query
        sent = [m["content"] for body in stub.chats() for m in body["messages"]]
        assert sent and not any(SECRET in text or "<think>" in text for text in sent)


def test_a_reply_that_is_all_reasoning_is_not_found(ask):
    """A model that thinks until its budget ends has given no answer."""
    with StubServer(reply=["<think>", THOUGHT, " and more"]) as stub:
        ans = ask(stub).ask(QUESTION)
        assert not ans.found and ans.abstain_reason == "model" and SECRET not in ans.text
