"""`ragpipe eval answers`: SQuAD scoring, deterministic samples, and a smoke run."""

from __future__ import annotations

import json

import pytest
from conftest import ROOT, SHARED_DATA

from ragpipe.eval_answers import (
    contains,
    exact_match,
    format_report,
    load_questions,
    normalize,
    run,
    sample,
    summarize,
    token_f1,
)

SQUAD_V2 = SHARED_DATA / "squad" / "dev-v2.0-half-a.json"


def test_squad_normalization_and_scores():
    assert normalize("The  Denver Broncos! [1]") == "denver broncos"
    assert exact_match("the Denver Broncos [2]", "Denver Broncos") == 1.0
    assert token_f1("Denver Broncos won", "Denver Broncos") == pytest.approx(0.8)
    assert token_f1("Carolina", "Denver Broncos") == 0.0
    assert contains("It was the Denver Broncos [1].", "Denver Broncos")
    assert not contains("Denverbroncos", "Denver Broncos")
    assert not contains("anything", "")


def test_samples_are_deterministic_and_slices_disjoint(tmp_path):
    data = {"data": [{"title": "T", "paragraphs": [{"context": "c", "qas": [
        {"id": str(i), "question": f"q{i}", "answers": [{"text": "a", "answer_start": 0}],
         "is_impossible": i % 2 == 1} for i in range(50)]}]}]}
    path = tmp_path / "s.json"
    path.write_text(json.dumps(data))
    qs = load_questions(path)
    assert sum(q.answerable for q in qs) == 25
    a, b = sample(qs, 10, seed=3), sample(qs, 10, seed=3)
    assert a == b
    tune = sample(qs, 10, seed=3, offset=10)
    assert not {q.id for q in a} & {q.id for q in tune}


def test_summary_counts_refusals_abstentions_and_citations():
    def rec(answerable, found, contained=False, valid=None):
        r = {"answerable": answerable, "found": found, "timings": {"first_token_s": 1.0,
             "total_s": 2.0}, "citations": [{"valid": valid}] if valid is not None else []}
        if answerable:
            r.update(f1=1.0 if contained else 0.0, em=0.0, contained=contained,
                     gold_in_context=True)
        return r

    m = summarize([rec(True, True, True, True), rec(True, False), rec(True, True, False, False),
                   rec(False, False), rec(False, True)])
    assert m["answerable"] == 3 and m["unanswerable"] == 2
    assert m["false_refusal"] == pytest.approx(1 / 3)
    assert m["contained"] == pytest.approx(1 / 3)
    assert m["abstain_ok"] == 0.5
    assert m["citation_valid"] == 0.5 and m["citations"] == 2


def test_calibration_is_fitted_on_a_run_and_rescores_it(tmp_path, capsys):
    from ragpipe.eval_answers import fit_calibration, main, rescore

    def rec(answerable, judge):
        r = {"answerable": answerable, "found": False, "draft": "EUR 70", "gold": ["EUR 70"],
             "signals": {"judge": judge}, "timings": {"total_s": 1.0}, "citations": [],
             "draft_citations": [{"valid": answerable}], "f1": 0.0, "em": 0.0,
             "contained": False, "gold_in_context": True}
        return r

    # the judge separates the two kinds except for one answerable question at 0.2
    records = [rec(True, j) for j in (0.9, 0.8, 0.7, 0.6, 0.2)] + [
        rec(False, j) for j in (0.1, 0.15, 0.3, 0.35, 0.4)]
    cal = fit_calibration(records, ["judge"])
    assert cal.weights["judge"] > 0
    m = rescore(records, cal)
    assert m["false_refusal"] == pytest.approx(0.2) and m["abstain_ok"] == 1.0
    assert m["contained"] == pytest.approx(0.8) and m["citation_valid"] == 1.0
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"records": records * 2}))
    assert main(["--tune", str(path)]) == 0
    out = capsys.readouterr().out
    assert "Calibration(" in out and "2-fold cross-validation" in out
    with pytest.raises(SystemExit):  # a misspelt signal would fit a weight on nothing
        main(["--tune", str(path), "--features", "jugde"])
    assert "unknown signal(s) jugde" in capsys.readouterr().err


def squad_excerpt(tmp_path, article: int, paragraphs: int):
    """A SQuAD v2 file with the first ``paragraphs`` paragraphs of one article of the real set."""
    full = json.loads(SQUAD_V2.read_text(encoding="utf-8"))
    a = full["data"][article]
    excerpt = {"version": "v2.0",
               "data": [{"title": a["title"], "paragraphs": a["paragraphs"][:paragraphs]}]}
    path = tmp_path / "tiny-squad.json"
    path.write_text(json.dumps(excerpt))
    return path


@pytest.mark.e2e
def test_eval_answers_smoke_on_a_small_slice(tmp_path, embedder, small_llm):
    """The whole runner on a tiny real SQuAD v2 excerpt with the real small models."""
    from ragpipe.pipeline import Pipeline
    from ragpipe.settings import load_settings

    path = squad_excerpt(tmp_path, article=0, paragraphs=3)
    settings = load_settings(
        overrides={"paths.indexes": tmp_path / "idx", "paths.models": ROOT / "models",
                   "llm.model": "smollm2-135m", "llm.n_ctx": 2048, "llm.max_tokens": 24,
                   "answer.style": "extract", "answer.passages": 1},
        environ={},
    )
    pipe = Pipeline(settings, "default", embedder=embedder, generator=small_llm)
    result = run(pipe, path, n=6, seed=1)
    m = result["metrics"]
    assert m["questions"] == 6 and m["answerable"] + m["unanswerable"] == 6
    assert len(result["records"]) == 6
    for r in result["records"]:
        assert r["timings"]["total_s"] > 0
        assert r["found"] or r["text"]
    assert 0.0 <= m["f1"] <= 1.0 and 0.0 <= m["abstain_ok"] <= 1.0
    report = format_report(result)
    assert "token F1" in report and "correctly abstained" in report and "p95" in report
    # the dataset's index is built by Pipeline.sync once and reused
    again = run(pipe, path, n=2, seed=1)
    assert again["settings"]["index"] == result["settings"]["index"]
    assert again["build_s"] < result["build_s"] + 5


def test_cli_eval_answers(tmp_path):
    """`ragpipe eval answers` as a user runs it, on a tiny excerpt, with JSON output."""
    import os
    import subprocess
    import sys

    path = squad_excerpt(tmp_path, article=1, paragraphs=2)
    env = {**os.environ, "RAGPIPE_PATHS_INDEXES": str(tmp_path / "idx"),
           "RAGPIPE_PATHS_MODELS": str(ROOT / "models"), "RAGPIPE_LLM_MODEL": "smollm2-135m",
           "RAGPIPE_LLM_N_CTX": "2048", "RAGPIPE_LLM_MAX_TOKENS": "16"}
    out = tmp_path / "run.json"
    r = subprocess.run([sys.executable, "-m", "ragpipe", "eval", "answers", "--dataset",
                        str(path), "--n", "3", "--json", str(out)],
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "correctly abstained" in r.stdout
    result = json.loads(out.read_text())
    assert result["sample"]["n"] == 3 and len(result["records"]) == 3
