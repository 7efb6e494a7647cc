"""Follow-up questions: detection, standalone search queries, history kept small and clean."""

from __future__ import annotations

import pytest
from conftest import CORPUS

from ragpipe.followup import (
    history_messages,
    is_followup,
    rewrite_heuristic,
    rewrite_with_model,
    standalone_query,
)

# (first question, follow-up, file that answers the follow-up)
CONVERSATIONS = [
    ("How much is the daily per diem for a Tier 1 city such as London?",
     "And for Tier 2 cities?", "travel-policy.pdf"),
    ("How many days of annual leave do full-time employees get?",
     "How many of them can I carry over?", "holidays-and-leave.md"),
    ("What is the monthly spending limit of the standard corporate card?",
     "Who can request one?", "expenses-faq.txt"),
    ("How long does the probation period last on a Dutch contract?",
     "What about UK contracts?", "onboarding-guide.md"),
    ("How large is the one-off home-office stipend?",
     "And how many days can I work from abroad?", "remote-work.html"),
]


def chat(first: str, answer: str = "It is in the policy [1].") -> list[dict]:
    return [{"role": "user", "content": first}, {"role": "assistant", "content": answer}]


def test_followups_are_detected_and_standalone_questions_left_alone():
    for first, follow, _ in CONVERSATIONS:
        assert is_followup(follow, chat(first)), follow
    standalone = "Which form is used to claim travel expenses after a business trip?"
    assert not is_followup(standalone, chat(CONVERSATIONS[0][0]))
    assert not is_followup("And for Tier 2 cities?", [])  # no conversation yet


def test_heuristic_rewrite_carries_the_previous_question():
    first, follow, _ = CONVERSATIONS[0]
    q = rewrite_heuristic(follow, chat(first))
    assert "per diem" in q and "Tier 2" in q
    assert standalone_query(follow, chat(first), "off") == follow
    assert standalone_query(follow, [], "heuristic") == follow


def test_history_keeps_last_pairs_without_citations_or_reasoning():
    history = chat("q1", "a1 [1]") + chat("q2", "<think>hmm</think>a2 [2][3]") + chat("q3", "a3")
    kept = history_messages(history, 2)
    assert [m["content"] for m in kept] == ["q2", "a2", "q3", "a3"]
    assert history_messages(history, 0) == []
    # an unanswered trailing question is not history
    assert history_messages(history + [{"role": "user", "content": "q4"}], 1)[-1]["content"] == "a3"


@pytest.mark.e2e
def test_rewritten_followups_find_the_right_file(tmp_path, embedder):
    """Searching the bare follow-up finds the wrong file more often than the rewrite does."""
    from ragpipe.pipeline import Pipeline
    from ragpipe.settings import load_settings

    settings = load_settings(overrides={"paths.indexes": tmp_path / "idx"}, environ={})
    pipe = Pipeline(settings, "c", embedder=embedder)
    pipe.ingest(CORPUS)
    raw = rewritten = 0
    for first, follow, expected in CONVERSATIONS:
        raw += pipe.search(follow, k=1)[0].source == expected
        query = standalone_query(follow, chat(first), "heuristic")
        rewritten += pipe.search(query, k=1)[0].source == expected
    assert rewritten == len(CONVERSATIONS), rewritten
    assert raw < rewritten


class EchoModel:
    """An obedient fake model that rewrites by returning a fixed question."""

    def __init__(self, reply: str) -> None:
        self.reply = reply

    def stream(self, messages, max_tokens):
        assert "Last question: And for Tier 2 cities?" in messages[-1]["content"]
        yield from self.reply.split(" ")[:1] + [" " + w for w in self.reply.split(" ")[1:]]


def test_model_rewrite_is_used_and_checked():
    first, follow, _ = CONVERSATIONS[0]
    good = "What is the daily per diem for Tier 2 cities?"
    assert rewrite_with_model(EchoModel(good), follow, chat(first)) == good
    # a reply that dropped the follow-up's own words falls back to the heuristic
    bad = "The per diem is EUR 95."
    assert rewrite_with_model(EchoModel(bad), follow, chat(first)) == rewrite_heuristic(
        follow, chat(first))
