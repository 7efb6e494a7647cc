"""Grounded answers: budgeting, citation checking, spans, abstention, <think> handling."""

from __future__ import annotations

import pytest
from conftest import ROOT

from ragpipe.datatypes import Hit
from ragpipe.generation import Capabilities, ThinkFilter, strip_think
from ragpipe.grounding import (
    CALIBRATION,
    check_answer,
    content_words,
    question_coverage,
    split_sentences,
    support_span,
)
from ragpipe.prompts import NOT_FOUND, build_messages, fit_prompt

PAGE = (
    "Northwind travel rules. Tier 1 cities (London, New York): EUR 95 per day. "
    "Tier 2 cities (Berlin, Paris): EUR 70 per day. Claims are made with form TR-7 "
    "within 30 days of the trip."
)
OTHER = "Passwords must have at least 14 characters and are kept in the password manager."


def page_hit(n: int, text: str, offset: int = 0, source: str = "travel.pdf") -> Hit:
    """A hit that is the page text from ``offset`` on (page coordinates = hit.start + i)."""
    return Hit(n, text[offset:], source, 2, offset, len(text), 1.0)


# ----- budgeting -------------------------------------------------------------------------------
def words(messages):
    """Fake tokenizer: whitespace tokens of all messages plus 4 per message."""
    return sum(len(m["content"].split()) + 4 for m in messages)


def test_budget_parts_add_up_and_history_gives_way_to_passages():
    hits = [Hit(i, " ".join(f"w{i}" for _ in range(40)), f"d{i}.txt", None, 0, 9, 1.0)
            for i in range(1, 5)]
    history = [{"role": "user", "content": "old " * 30}, {"role": "assistant", "content": "a"},
               {"role": "user", "content": "recent q"}, {"role": "assistant", "content": "b"}]
    for budget in range(60, 400, 11):
        try:
            f = fit_prompt("what now?", hits, words, budget, history, style="extract")
        except ValueError:
            continue  # the question alone does not fit: refused, never truncated
        assert f.tokens <= budget
        assert sum(f.parts.values()) == f.tokens == words(f.messages)
        assert f.used + f.dropped == tuple(hits)
        for h in f.used:  # whole passages only
            assert h.text in f.messages[-1]["content"]
        for h in f.dropped:
            assert h.text not in f.messages[-1]["content"]
        # history never pushes out the best passage while any history is kept
        if len(f.messages) > 2:
            assert f.used, (budget, f.parts)
        assert f.history_dropped in (0, 2, 4)


def test_budget_with_the_real_tokenizer_never_exceeds_the_window(small_llm):
    hits = [page_hit(i, PAGE * 4) for i in range(1, 8)]
    count = small_llm.count_prompt_tokens
    for budget in (500, 900, 1300):
        f = fit_prompt("Which form?", hits, count, budget, style="extract")
        assert count(f.messages) == f.tokens <= budget
        assert f.used and f.dropped == tuple(hits[len(f.used):])
        # as many passages as fit: one more would not
        more = build_messages("Which form?", hits[: len(f.used) + 1], style="extract")
        assert count(more) > budget


# ----- citations -------------------------------------------------------------------------------
def test_invalid_citation_ids_are_removed():
    hits = [page_hit(1, PAGE)]
    c = check_answer("Use form TR-7 [1][3]. It is due in 30 days [0].", hits)
    assert "[3]" not in c.text and "[0]" not in c.text and "[1]" in c.text
    assert all(x.n == 1 for x in c.citations)


def test_copied_sentence_is_supported_with_its_span_in_the_page():
    offset = 24  # the passage starts inside its page
    hits = [page_hit(1, OTHER), page_hit(2, PAGE, offset)]
    c = check_answer("Claims are made with form TR-7 within 30 days of the trip [2].", hits)
    (cite,) = c.citations
    assert cite.n == 2 and cite.supported and not cite.inferred
    a, b = cite.span
    assert PAGE[a:b] == "Claims are made with form TR-7 within 30 days of the trip"
    assert cite.source == "travel.pdf" and cite.page == 2
    assert c.support.verdict == "supported"


def test_invented_sentence_is_not_supported():
    hits = [page_hit(1, PAGE)]
    c = check_answer("Contractors are reimbursed for first-class flights on weekends [1].", hits)
    (cite,) = c.citations
    assert cite.supported is False
    assert c.support.unsupported == 1 and c.support.verdict == "unsupported"


def test_a_wrong_number_is_never_supported():
    hits = [page_hit(1, PAGE)]
    (cite,) = check_answer("Tier 1 cities get EUR 59 per day [1].", hits).citations
    assert cite.supported is False and cite.score == 0.0
    (cite,) = check_answer("Tier 1 cities get EUR 95 per day [1].", hits).citations
    assert cite.supported is True


def test_cited_wrong_passage_is_flagged_and_uncited_claim_gets_its_source():
    hits = [page_hit(1, OTHER, source="security.pdf"), page_hit(2, PAGE)]
    c = check_answer("Use form TR-7 [1]. Passwords need at least 14 characters.", hits)
    first, second = c.citations
    assert (first.n, first.supported) == (1, False)  # TR-7 is not in the security passage
    assert (second.n, second.supported, second.inferred) == (1, True, True)
    assert c.support.verdict == "partly supported"


def test_sentence_split_keeps_citation_after_full_stop():
    text = "EUR 95 per day. [1] Form TR-7 [2]. Done"
    parts = [text[a:b] for a, b in split_sentences(text)]
    assert parts == ["EUR 95 per day. [1]", "Form TR-7 [2].", "Done"]


def test_support_span_prefers_the_exact_phrase():
    sm = support_span("EUR 70", PAGE)
    assert sm.exact and PAGE[sm.start:sm.end] == "EUR 70"


def test_question_coverage_tells_absent_topics():
    hits = [page_hit(1, PAGE)]

    def cover(q):
        words = list(dict.fromkeys(content_words(q)))
        return question_coverage(words, hits, {}, 100)  # every word equally rare

    assert cover("Which form do I use for travel claims?") >= 0.5
    assert cover("Who won the football world cup in 1998?") == 0.0
    assert cover("Which of them?") == 1.0  # no content words: nothing to check


def test_weighted_coverage_lets_rare_words_decide():
    import math

    assert content_words("Is the CEO's car a company car?") == ["ceo", "car", "company", "car"]

    hits = [page_hit(1, "The People team answers questions about leave.")]
    # 100 chunks: "team" is in 40 of them, "football" and "favourite" in none
    counts = {"team": 40, "football": 0, "favourite": 0}
    w = {t: math.log(1 + (100 - n + 0.5) / (n + 0.5)) for t, n in counts.items()}
    words = ["football", "team", "favourite"]
    got = question_coverage(words, hits, counts, 100)
    assert got == pytest.approx(w["team"] / sum(w.values()))
    assert got < 0.12 < question_coverage(words, hits, {}, 100)  # unweighted: 1/3
    # a question whose words are all in the passage covers everything, however common
    assert question_coverage(["team", "answer", "leave", "question"], hits,
                             {"team": 99, "answer": 5, "leave": 5, "question": 5},
                             100) == pytest.approx(1.0)


def test_calibration_is_monotone_in_evidence():
    weak = {"q_cover": 0.1, "support": 0.0, "judge": 0.1, "lp_mean": -2.0}
    strong = {"q_cover": 1.0, "support": 1.0, "judge": 0.9, "lp_mean": -0.1}
    assert CALIBRATION.probability(weak) < CALIBRATION.threshold <= CALIBRATION.probability(strong)


# ----- <think> ---------------------------------------------------------------------------------
def test_think_blocks_are_stripped_from_stream_and_text():
    f = ThinkFilter()
    pieces = ["<thi", "nk>I should say 42", "</th", "ink>The answer", " is 7 [1]", "."]
    shown = "".join(f.feed(p) for p in pieces) + f.flush()
    assert shown == "The answer is 7 [1]."
    assert strip_think("<think>a\nb</think> Final") == "Final"
    assert strip_think("reasoning only</think>Final") == "Final"
    assert strip_think("<think>never closed") == ""


class ThinkingModel:
    """An obedient fake reasoning model: long reasoning, then a short cited answer."""

    name, n_ctx, temperature = "fake-reasoner", 4096, 0.0
    capabilities = Capabilities()  # text only, in-process

    def count_prompt_tokens(self, messages):
        return sum(len(m["content"].split()) + 4 for m in messages)

    def stream(self, messages, max_tokens):
        reasoning = ["<think>"] + ["hmm "] * 50 + ["</think>"]
        answer = ["EUR", " 95", " per", " day", " [1]"]
        yield from (reasoning + answer)[:max_tokens]


def test_reasoning_does_not_count_against_the_answer_and_never_shows(tmp_path, embedder):
    from ragpipe.pipeline import Pipeline
    from ragpipe.settings import load_settings

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "travel.txt").write_text(PAGE)
    settings = load_settings(overrides={"paths.indexes": tmp_path / "idx", "llm.max_tokens": 8,
                                        "answer.judge": False, "answer.style": "extract",
                                        "answer.passages": 1}, environ={})
    pipe = Pipeline(settings, "t", embedder=embedder, generator=ThinkingModel())
    pipe.ingest(docs)
    stream = pipe.stream("What is the per diem for a Tier 1 city?")
    shown = "".join(stream)
    ans = stream.answer
    assert "hmm" not in shown and "think" not in shown
    assert ans.text.startswith("EUR 95 per day") or ans.withheld.startswith("EUR 95 per day")
    assert ans.answer_tokens == 5 and ans.think_tokens == 52
    assert ans.found and ans.citations[0].supported


class UntouchableModel:
    """A generator that fails if anything asks it for anything."""

    name, n_ctx, temperature = "untouchable", 4096, 0.0

    def __getattr__(self, attr):
        raise AssertionError(f"the model was used ({attr}) for an irrelevant question")


def test_an_irrelevant_question_is_answered_without_the_model(tmp_path, embedder):
    from ragpipe.pipeline import Pipeline
    from ragpipe.settings import load_settings

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "travel.txt").write_text(PAGE)
    (docs / "security.txt").write_text(OTHER)
    settings = load_settings(overrides={"paths.indexes": tmp_path / "idx"}, environ={})
    pipe = Pipeline(settings, "t", embedder=embedder, generator=UntouchableModel())
    pipe.ingest(docs)
    stream = pipe.stream("Who is the favourite football player of the travel team?")
    assert "".join(stream) == NOT_FOUND
    ans = stream.answer
    assert ans.abstain_reason == "not relevant" and ans.prompt_tokens == 0 and ans.hits
    assert ans.signals["q_cover"] < settings.answer.min_question_coverage


# ----- abstention with the real small model --------------------------------------------------
@pytest.mark.e2e
def test_absent_topic_is_answered_not_found_with_closest_passages(tmp_path, embedder, small_llm):
    from ragpipe.pipeline import Pipeline
    from ragpipe.settings import load_settings

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "travel.txt").write_text(PAGE)
    (docs / "security.txt").write_text(OTHER)
    settings = load_settings(
        overrides={"paths.indexes": tmp_path / "idx", "paths.models": ROOT / "models",
                   "llm.model": "smollm2-135m", "llm.n_ctx": 2048, "llm.max_tokens": 32,
                   "answer.style": "extract", "answer.passages": 1},
        environ={},
    )
    pipe = Pipeline(settings, "t", embedder=embedder, generator=small_llm)
    pipe.ingest(docs)
    stream = pipe.stream("Which team won the football world cup final in 1998?")
    list(stream)
    ans = stream.answer
    assert not ans.found and ans.text == NOT_FOUND
    assert ans.abstain_reason in ("unsupported", "uncertain", "not relevant")
    assert ans.hits, "the closest passages are still shown"
    assert not ans.citations
    assert ans.support.confidence is None or ans.support.confidence < CALIBRATION.threshold
    # Off-topic words that occur nowhere in the index outweigh a common one that does: the
    # question is answered "not found" before the model is asked.
    stream = pipe.stream("Who is the favourite football player of the travel team?")
    list(stream)
    assert stream.answer.abstain_reason == "not relevant", stream.answer.withheld
    counts, n = pipe.store.term_counts(["football", "travel", "tier-1"])
    assert counts["football"] == 0 and counts["travel"] > 0 and n == pipe.store.count_chunks()
    assert counts["tier-1"] == 1  # a term FTS5 splits counts as its rarest part


def test_answer_messages_use_the_extract_prompt():
    msgs = build_messages("q?", [page_hit(1, PAGE)], style="extract")
    assert "copied" in msgs[0]["content"] and "not instructions" in msgs[0]["content"]
    with pytest.raises(ValueError):
        build_messages("q?", [], style="poem")


def test_copy_constraint_starts_spans_at_words_only():
    from ragpipe.generation import CopyConstraint

    c = CopyConstraint(["Air travel is booked in economy class."])
    # "nomy" is inside "economy": the model's first choice may not start a span there
    assert c.choose([(1, "Nomy"), (2, "Economy")]) == 2
    assert c.choose([(3, " class"), (4, " seats")]) == 3
    assert c.span == "economy class"
    assert CopyConstraint(["economy"]).choose([(1, "nomy")]) is None


PASSAGE = ("Business class is allowed only when the scheduled flight time of a single leg "
           "is more than 6 hours. Premium economy may be booked for shorter legs.")


def _decode(c, wishes):
    """Feed the constraint one ranked list per step; the text it lets through."""
    out = ""
    for ranked in wishes:
        tok = c.choose(list(enumerate(ranked)))
        if tok is None:
            break
        out += ranked[tok]
    return out


def test_a_yes_no_answer_copies_its_whole_deciding_sentence():
    from ragpipe.generation import CopyConstraint

    # After "allowed" the model would rather cite; the copy goes on for a yes/no question.
    steps = [["Business"], [" class"], [" is"], [" allowed"]]
    steps += [[" [", " only"], [" [", " when"]]
    steps += [[w] for w in (" the", " scheduled", " flight", " time", " of", " a", " single",
                            " leg", " is", " more", " than", " 6", " hours", ".")]
    steps += [[" [", " Premium"], ["1"], ["].", "]"], ["."]]
    whole = _decode(CopyConstraint([PASSAGE], whole_sentence=True), steps)
    assert whole == ("Business class is allowed only when the scheduled flight time of a "
                     "single leg is more than 6 hours. [1]")
    # Without it (a span question), the span ends where the model wants to cite.
    span = steps[:5] + [["1"], ["].", "]"], ["."]]
    assert _decode(CopyConstraint([PASSAGE]), span) == "Business class is allowed [1]"


def test_an_opened_citation_marker_is_closed():
    from ragpipe.generation import CopyConstraint

    c = CopyConstraint([PASSAGE])
    text = _decode(c, [["Business"], [" class"], [" [", " is"], ["1"], ["].", "]"], ["\n"]])
    assert text == "Business class [1]"
    # Nothing to close: a token that is not a marker ends the answer as before.
    c = CopyConstraint([PASSAGE])
    assert _decode(c, [["Business"], [" [", " class"], ["2"], ["]"], [" and"]]) == "Business [2]"


def test_a_list_number_is_not_a_claim_a_passage_number_can_support():
    """'1. The United States [1]' must not be backed by the '1' of 'Tier 1'."""
    hits = [page_hit(1, PAGE)]
    c = check_answer("1. The United States [1].", hits)
    assert all(not cite.supported for cite in c.citations)
    assert c.support.supported == 0
