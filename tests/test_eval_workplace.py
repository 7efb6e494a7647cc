"""The workplace answer eval: the set's scoring rule, and a real run on a small slice."""

from __future__ import annotations

import json

import pytest
from conftest import SHARED_DATA

from ragpipe import eval_workplace as ew
from ragpipe.errors import ConfigError

EMPLOYEE_QA = SHARED_DATA / "employee-qa" / "questions.jsonl"


@pytest.mark.parametrize("answer,key,found", [
    ("You need 3 hard hats.", "hard hat", True),
    ("It costs EUR 200.", "EUR 20", False),
    ("Up to €1,000 on the card", "EUR 1,000", True),
    ("Takes 21 hours", "1 hour", False),
    ("Use Form PR-4 now", "form pr-4", True),
    ("Opens 07:00 daily", "07:00", True),
    ("a 15-minute break", "15 minute", True),
    ("", "anything", False),
])
def test_key_points_match_as_the_set_readme_says(answer, key, found):
    assert ew.has_key_point(answer, key) is found


def test_every_reference_answer_has_all_its_key_points():
    questions = ew.load_workplace(EMPLOYEE_QA)
    assert len(questions) == 45
    for q in questions:
        assert all(ew.has_key_point(q.reference_answer, k) for k in q.key_points), q.id


def test_the_set_is_recognised_by_its_key_points(tmp_path):
    assert ew.is_workplace_set(EMPLOYEE_QA)
    squadish = tmp_path / "pairs.jsonl"
    squadish.write_text(json.dumps({"question": "q", "source": "a.md"}) + "\n")
    assert not ew.is_workplace_set(squadish)


def test_a_bad_line_names_the_file_and_line(tmp_path):
    bad = tmp_path / "questions.jsonl"
    bad.write_text('{"question": "q", "key_points": []}\n{"key_points": ["x"]}\n')
    with pytest.raises(ConfigError, match="line 2"):
        ew.load_workplace(bad)


def test_records_score_recall_refusals_and_sources():
    from ragpipe.datatypes import Answer, Citation, Hit

    q = ew.WorkplaceQuestion("X1", "q?", "list", True, ("policy.md",), ("EUR 450", "RW-1"))
    h = Hit(1, "text", "sub/policy.md", None, 0, 4, 1.0)
    ans = Answer(question="q?", text="You get EUR 450 [1].", citations=(Citation(1, h),),
                 hits=(h,), found=True, timings={"first_token_s": 1.0, "total_s": 2.0})
    r = ew.record(q, ans)
    assert r["recall"] == 0.5 and not r["fully"] and r["missing"] == ["RW-1"]
    assert r["source_ok"] and r["words"] == 5
    refused = Answer(question="q?", text="not found", citations=(), hits=(h,), found=False)
    r2 = ew.record(q, refused)
    assert r2["recall"] == 0.0 and not r2["found"]
    m = ew.summarize([r, r2])
    assert m["false_not_found"] == 0.5 and m["recall"] == 0.25


@pytest.mark.e2e
def test_eval_answers_runs_a_slice_of_the_workplace_set(settings, embedder, small_llm):
    from ragpipe.pipeline import Pipeline

    def factory(name):
        return Pipeline(settings, name, embedder=embedder, generator=small_llm)

    result = ew.run(settings, EMPLOYEE_QA, limit=3, pipeline_factory=factory)
    assert result["metrics"]["questions"] == 3
    assert [r["id"] for r in result["records"]] == ["A01", "A02", "A03"]
    for r in result["records"]:
        assert 0.0 <= r["recall"] <= 1.0
        assert r["retrieved"], "every question retrieves passages"
    report = ew.format_report(result)
    assert "factoid" in report and "recall" in report
