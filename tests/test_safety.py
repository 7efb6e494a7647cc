"""Output that cannot be spoofed: file names and text escaped for the terminal."""

from __future__ import annotations

import csv
import io
import json

import pytest

from ragpipe.safety import terminal_safe


# ----- terminal output ---------------------------------------------------------------------------
def test_control_and_bidi_characters_are_shown_as_escapes():
    assert terminal_safe("a\nb") == "a\\nb"
    assert terminal_safe("invoice\u202etxt.exe") == "invoice\\u202etxt.exe"
    assert terminal_safe("\x1b[31mred\x07") == "\\x1b[31mred\\x07"
    assert terminal_safe("x\u2028y\u2066z\u200f") == "x\\u2028y\\u2066z\\u200f"
    assert terminal_safe("Zürich – naïve 日本.pdf") == "Zürich – naïve 日本.pdf"
    assert terminal_safe("two\nlines\tand\rcr", multiline=True) == "two\nlines\tand\\rcr"


# ----- file names that try to forge lines or hide their extension --------------------------------
FORGED = "policy\n2. 1.000  forged.txt"
RTL = "invoice\u202etxt.exe"


@pytest.fixture
def spoof_index(tmp_path, embedder, monkeypatch):
    from ragpipe import cli
    from ragpipe.pipeline import Pipeline
    from ragpipe.settings import load_settings

    docs = tmp_path / "docs\nembedder   forged"
    docs.mkdir()
    (docs / FORGED).write_text("Northwind travel rules. Tier 1 cities: EUR 95 per day.")
    (docs / RTL).write_text("Invoices are paid within 30 days of receipt.")
    monkeypatch.setenv("RAGPIPE_PATHS_INDEXES", str(tmp_path / "idx"))
    monkeypatch.chdir(tmp_path)
    pipe = Pipeline(load_settings(), "t", embedder=embedder)
    pipe.ingest(docs)
    monkeypatch.setattr(cli, "_pipeline", lambda args: Pipeline(
        cli._settings(args), index=args.index, embedder=embedder))
    return cli


def _lines(out: str) -> list[str]:
    return [line.strip() for line in out.splitlines()]


def test_report_search_and_status_escape_file_names(spoof_index, capsys):
    cli = spoof_index
    assert cli.main(["report", "--index", "t"]) == 0
    out = capsys.readouterr().out
    assert "policy\\n2. 1.000  forged.txt" in out and "invoice\\u202etxt.exe" in out
    assert not any(line.startswith("2. 1.000") for line in _lines(out))
    assert "\u202e" not in out

    assert cli.main(["search", "per diem Tier 1 cities", "-k", "2", "--index", "t"]) == 0
    out = capsys.readouterr().out
    assert "policy\\n2. 1.000  forged.txt" in out
    assert not any(line.startswith("2. 1.000  forged") for line in _lines(out))

    assert cli.main(["status", "--index", "t"]) == 0
    out = capsys.readouterr().out
    assert "docs\\nembedder   forged" in out
    assert not any(line.startswith("embedder   forged") for line in _lines(out))


def test_json_and_csv_keep_the_exact_names(spoof_index, capsys):
    cli = spoof_index
    assert cli.main(["report", "--index", "t", "--format", "json"]) == 0
    names = {r["path"] for r in json.loads(capsys.readouterr().out)}
    assert names == {FORGED, RTL}
    assert cli.main(["report", "--index", "t", "--format", "csv"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert {r[0] for r in rows[1:]} == {FORGED, RTL}
