"""The audit log: a row per question with user, index, documents, answer id and model, no text."""

from __future__ import annotations

import json

import pytest

from ragpipe import appstate, audit
from ragpipe.cli import main
from ragpipe.datatypes import Hit


def hit(source: str, chunk: int) -> Hit:
    return Hit(chunk, "SECRET PASSAGE TEXT", source, None, 0, 10, 0.5)


def test_rows_hold_who_what_when_and_no_text(tmp_path):
    log = audit.for_indexes(tmp_path)
    log.record("ann", "hr", [hit("hr/pay.md", 3), hit("hr/pay.md", 4), hit("a.md", 9)], 17,
               "qwen", "answered")
    log.record("bob", "eng", [], None, "qwen", "busy")
    rows = log.rows()
    assert [r["user"] for r in rows] == ["bob", "ann"]  # newest first
    ann = rows[1]
    assert ann["documents"] == ["a.md", "hr/pay.md"] and ann["chunks"] == [3, 4, 9]
    assert (ann["answer"], ann["model"], ann["outcome"], ann["index"]) == (
        17, "qwen", "answered", "hr")
    assert [r["user"] for r in log.rows(user="ann")] == ["ann"]
    assert [r["index"] for r in log.rows(index="eng")] == ["eng"]
    raw = b"".join(p.read_bytes() for p in appstate.db_path(tmp_path).parent.glob("app.sqlite*"))
    assert b"SECRET PASSAGE TEXT" not in raw
    lines = log.export_jsonl().splitlines()
    assert [json.loads(x)["user"] for x in lines] == ["ann", "bob"]  # oldest first


def test_cli_lists_and_exports(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    log = audit.for_indexes(tmp_path / "indexes")
    log.record("ann", "hr", [hit("hr/pay.md", 3)], 1, "qwen", "not_found")
    assert main(["audit"]) == 0
    out = capsys.readouterr()
    assert "ann" in out.out and "hr/pay.md" in out.out and "not_found" in out.out
    assert "1 question(s)" in out.err
    assert main(["audit", "--jsonl", "--user", "nobody"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["audit", "--jsonl", "--days", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["documents"] == ["hr/pay.md"]


@pytest.mark.e2e
def test_a_question_in_the_web_app_is_audited(tmp_path, monkeypatch, embedder):
    from conftest import CORPUS, ROOT, web_app_index
    from streamlit.testing.v1 import AppTest


    web_app_index(monkeypatch, tmp_path, CORPUS, embedder)
    at = AppTest.from_file(str(ROOT / "ui" / "app.py"), default_timeout=240).run()
    at.chat_input[0].set_value("Which form do I use to claim travel expenses?").run()
    assert not at.exception, at.exception
    rows = audit.for_indexes(tmp_path / "indexes").rows()
    assert len(rows) == 1
    row = rows[0]
    assert row["user"] == "local" and row["index"] == "default"
    assert row["model"] == "smollm2-135m" and row["outcome"] in ("answered", "not_found")
    assert "travel-policy.pdf" in row["documents"] and row["answer"] is not None
