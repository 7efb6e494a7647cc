"""`ragpipe eval compare`: the answer eval per model, same questions and index, one table."""

from __future__ import annotations

import json

import pytest
from conftest import ROOT

from ragpipe.cli import main
from ragpipe.errors import ConfigError
from ragpipe.eval_compare import ModelSpec, parse_model

PAGE = ("Northwind travel rules. Tier 1 cities (London, New York): EUR 95 per day. "
        "Tier 2 cities (Berlin, Paris): EUR 70 per day. Claims use form TR-7.")


def test_model_specs():
    assert parse_model("smollm2-135m") == ModelSpec(
        "smollm2-135m", {"llm.backend": "llama_cpp", "llm.model": "smollm2-135m"})
    assert parse_model("small=/m/a=b.gguf").overrides["llm.model"] == "/m/a=b.gguf"
    assert parse_model("/m/a=b.gguf").label == "/m/a=b.gguf"
    srv = parse_model("ollama=llama3.2:1b@http://127.0.0.1:11434/v1")
    assert srv.label == "ollama" and srv.overrides == {
        "llm.backend": "openai", "llm.model": "llama3.2:1b",
        "llm.base_url": "http://127.0.0.1:11434/v1"}
    for bad in ("", "x=", "m@"):
        with pytest.raises(ConfigError, match="LABEL"):
            parse_model(bad)


def base_args(tmp_path):
    return ["--set", f"paths.indexes={tmp_path / 'idx'}",
            "--set", f"paths.models={ROOT / 'models'}",
            "--set", "llm.n_ctx=2048", "--set", "llm.max_tokens=32"]


def test_two_models_with_one_label_are_refused(tmp_path, capsys):
    code = main([*base_args(tmp_path), "eval", "compare", "--dataset", str(tmp_path / "q.jsonl"),
                 "--model", "smollm2-135m", "--model", "smollm2-135m"])
    assert code == 2 and "labelled alike" in capsys.readouterr().err


@pytest.mark.e2e
def test_workplace_set_in_process_and_via_server(tmp_path, llama_server, capsys):
    from ragpipe.pipeline import Pipeline
    from ragpipe.settings import load_settings

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "travel.txt").write_text(PAGE)
    questions = tmp_path / "questions.jsonl"
    questions.write_text("\n".join(json.dumps(q) for q in [
        {"id": "A1", "question": "What is the per diem for a Tier 1 city?", "type": "factoid",
         "answerable": True, "sources": ["travel.txt"], "key_points": ["95"]},
        {"id": "U1", "question": "Who won the football world cup in 1998?", "type": "absent",
         "answerable": False, "sources": [], "key_points": []},
    ]) + "\n")
    out = tmp_path / "run.json"
    code = main([*base_args(tmp_path), "eval", "compare", "--dataset", str(questions),
                 "--model", "in-process=smollm2-135m",
                 "--model", f"server=smollm2@{llama_server}", "--json", str(out)])
    text = capsys.readouterr().out
    assert code == 0, text
    lines = text.splitlines()
    assert lines[0] == "questions.jsonl: 2 questions per model"
    for col in ("recall", "fully", "false NF", "NF ok", "1st token p50/p95", "tokens/s",
                "peak RSS"):
        assert col in lines[1]
    assert lines[2].startswith("in-process ") and lines[3].startswith("server ")
    run = json.loads(out.read_text())
    assert [m["label"] for m in run["models"]] == ["in-process", "server"]
    results = [m["result"] for m in run["models"]]
    assert {r["settings"]["index"] for r in results} == {results[0]["settings"]["index"]}
    for r in results:
        assert r["kind"] == "workplace" and r["metrics"]["questions"] == 2
        assert r["peak_rss_mb"] > 100  # torch, MiniLM and the index at least
    # the index was built once, before the models ran: each run found it unchanged
    settings = load_settings(overrides={"paths.indexes": tmp_path / "idx"}, environ={})
    assert len(Pipeline(settings, results[0]["settings"]["index"]).store.generations()) == 1


@pytest.mark.e2e
def test_squad_set_and_a_model_that_fails(tmp_path, capsys):
    squad = tmp_path / "dev-v2.0-mini.json"
    squad.write_text(json.dumps({"version": "v2.0", "data": [{"title": "Travel", "paragraphs": [
        {"context": PAGE, "qas": [
            {"id": "q1", "question": "How much is the per diem in a Tier 2 city?",
             "is_impossible": False, "answers": [{"text": "EUR 70", "answer_start": 120}]},
            {"id": "q2", "question": "Which form is used for travel claims?",
             "is_impossible": False, "answers": [{"text": "TR-7", "answer_start": 150}]}]},
        {"context": "Passwords must have at least 14 characters.", "qas": [
            {"id": "q3", "question": "Who designed the password manager logo?",
             "is_impossible": True, "answers": []}]},
    ]}]}))
    code = main([*base_args(tmp_path), "eval", "compare", "--dataset", str(squad), "--n", "3",
                 "--model", "smollm2-135m", "--model", "broken=/no/such/model.gguf"])
    text = capsys.readouterr().out
    assert code == 1, text
    lines = text.splitlines()
    assert lines[0] == "dev-v2.0-mini.json: 3 questions per model"
    assert "F1" in lines[1] and "abstained ok" in lines[1]
    assert lines[2].startswith("smollm2-135m ") and lines[3].split()[:2] == ["broken", "failed"]
    assert any(line.startswith("failed: broken: model file /no/such/model.gguf does not exist")
               for line in lines)
