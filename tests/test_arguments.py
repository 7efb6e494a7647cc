"""Arguments are checked before any work: a blank question and k < 1 are refused."""

from __future__ import annotations

import pytest

from ragpipe.cli import _parser, main
from ragpipe.errors import InvalidArgument

PAGE = "Northwind travel rules. Tier 1 cities: EUR 95 per day. Claims use form TR-7."


class UntouchableModel:
    """A generator that fails if anything asks it for anything."""

    name, n_ctx, temperature = "untouchable", 4096, 0.0

    def __getattr__(self, attr):
        raise AssertionError(f"the model was used ({attr}) for a refused question")


@pytest.fixture
def pipe(tmp_path, embedder):
    from ragpipe.pipeline import Pipeline
    from ragpipe.settings import load_settings

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "travel.txt").write_text(PAGE)
    settings = load_settings(overrides={"paths.indexes": tmp_path / "idx"}, environ={})
    p = Pipeline(settings, "t", embedder=embedder, generator=UntouchableModel())
    p.ingest(docs)
    return p


@pytest.mark.parametrize("question", ["", "   ", "\n\t"])
def test_a_blank_question_is_refused(pipe, question):
    with pytest.raises(InvalidArgument, match="question is empty"):
        pipe.search(question)
    with pytest.raises(InvalidArgument, match="question is empty"):
        pipe.stream(question)
    with pytest.raises(InvalidArgument, match="question is empty"):
        pipe.ask(question)


def test_a_question_over_the_length_limit_is_refused_before_the_model(pipe):
    limit = pipe.settings.answer.max_question_chars
    long = "What is the per diem? " + "x" * limit
    for call in (pipe.search, pipe.stream, pipe.ask):
        with pytest.raises(InvalidArgument, match="answer.max_question_chars"):
            call(long)
    assert pipe.search("What is the per diem? " + "x" * (limit - 30))  # under it: searched


def test_k_below_one_is_refused_by_the_library(pipe):
    assert len(pipe.search("per diem", k=1)) == 1
    for k in (0, -1):
        with pytest.raises(InvalidArgument, match=f"k = {k}"):
            pipe.search("per diem", k=k)


@pytest.mark.parametrize("k", ["0", "-1", "two"])
def test_cli_k_must_be_a_whole_number_of_at_least_one(k, capsys):
    with pytest.raises(SystemExit) as exc:
        _parser().parse_args(["search", "per diem", "-k", k])
    assert exc.value.code == 2
    assert "argument -k" in capsys.readouterr().err
    assert _parser().parse_args(["search", "per diem", "-k", "3"]).k == 3


@pytest.mark.parametrize("command", ["ask", "search"])
def test_cli_blank_question_is_one_line_and_exit_2(command, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RAGPIPE_PATHS_INDEXES", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert main([command, "  "]) == 2
    out = capsys.readouterr()
    assert out.err == (
        "ragpipe: error: the question is empty: type the question to search for or answer\n"
    )
    assert not out.out


@pytest.mark.parametrize("exc, words", [
    (__import__("sqlite3").OperationalError("database is locked"), "database is locked"),
    (OSError(28, "No space left on device", "idx/index.sqlite"), "No space left on device"),
])
def test_a_database_or_disk_failure_is_one_line_not_a_traceback(monkeypatch, capsys, exc, words):
    """Damage has its own error; a locked database or a full disk must read as one line too."""
    import ragpipe.cli as cli

    def fail(args):
        raise exc

    monkeypatch.setitem(cli.COMMANDS, "status", fail)
    assert main(["status"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ragpipe: error:") and words in err and "\n" not in err
    assert "Traceback" not in err
