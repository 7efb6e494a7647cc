
import pytest

from ragpipe.errors import ConfigError
from ragpipe.settings import load_settings


def test_defaults_toml_env_overrides_in_order(tmp_path):
    toml = tmp_path / "ragpipe.toml"
    toml.write_text('[llm]\nn_ctx = 2048\nmax_tokens = 100\n[retrieval]\ntop_k = 7\n'
                    '[paths]\nindexes = "idx"\n')
    s = load_settings(toml, overrides={"llm.max_tokens": 50},
                      environ={"RAGPIPE_LLM_N_CTX": "1024", "RAGPIPE_CHUNKING_SIZE": "150"})
    assert s.llm.n_ctx == 1024  # env beats toml
    assert s.llm.max_tokens == 50  # explicit beats toml
    assert s.retrieval.top_k == 7
    assert s.chunking.size == 150
    assert s.paths.indexes == tmp_path / "idx"  # relative to the toml's folder
    assert load_settings(environ={}).llm.n_ctx == 4096


def test_bad_values_are_named(tmp_path):
    with pytest.raises(ConfigError, match="llm.n_ctx"):
        load_settings(environ={"RAGPIPE_LLM_N_CTX": "lots"})
    with pytest.raises(ConfigError, match="unknown setting"):
        load_settings(overrides={"llm.nope": 1}, environ={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[llm\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_settings(bad, environ={})
    with pytest.raises(ConfigError, match="overlap"):
        load_settings(overrides={"chunking.overlap": 500}, environ={})


def test_index_names_are_checked():
    s = load_settings(environ={})
    assert s.index_dir("team-a").name == "team-a"
    with pytest.raises(ConfigError):
        s.index_dir("../etc")


def test_cli_set_overrides_one_setting_for_one_command():
    from ragpipe.cli import _parser, _settings
    from ragpipe.errors import ConfigError

    args = _parser().parse_args(["--set", "answer.passages=3", "--set",
                                 "retrieval.mode=bm25", "status"])
    s = _settings(args)
    assert s.answer.passages == 3 and s.retrieval.mode == "bm25"
    with pytest.raises(ConfigError, match="SECTION.KEY=VALUE"):
        _settings(_parser().parse_args(["--set", "answer.passages", "status"]))
    with pytest.raises(ConfigError):
        _settings(_parser().parse_args(["--set", "answer.nonsense=1", "status"]))


@pytest.mark.parametrize("key,value,allowed", [
    ("answer.style", "bogus", "extract, free"),
    ("answer.rewrite", "llm", "heuristic, model, off"),
    ("retrieval.mode", "vector", "dense, bm25, hybrid"),
    ("retrieval.fusion", "sum", "convex, rrf"),
])
def test_choice_settings_name_the_allowed_values(tmp_path, key, value, allowed):
    with pytest.raises(ConfigError, match=f"{key}.*{allowed}"):
        load_settings(overrides={key: value}, environ={})
    section, name = key.split(".")
    with pytest.raises(ConfigError, match=allowed):
        load_settings(environ={f"RAGPIPE_{section.upper()}_{name.upper()}": value})
    toml = tmp_path / "ragpipe.toml"
    toml.write_text(f'[{section}]\n{name} = "{value}"\n')
    with pytest.raises(ConfigError, match=allowed):
        load_settings(toml, environ={})


def test_choices_are_read_in_any_case():
    s = load_settings(environ={"RAGPIPE_RETRIEVAL_MODE": " BM25 ", "RAGPIPE_ANSWER_STYLE": "Free"})
    assert s.retrieval.mode == "bm25" and s.answer.style == "free"


@pytest.mark.parametrize("overrides,named", [
    ({"retrieval.top_k": -1}, "retrieval.top_k"),
    ({"answer.passages": -1}, "answer.passages"),
    ({"llm.n_ctx": 256, "llm.max_tokens": 384}, "llm.n_ctx"),
    ({"llm.max_tokens": 0}, "llm.max_tokens"),
    ({"retrieval.keyword_weight": 1.5}, "retrieval.keyword_weight"),
    ({"retrieval.candidates": 0}, "retrieval.candidates"),
    ({"retrieval.dedup": 2}, "retrieval.dedup"),
    ({"answer.min_confidence": 0.5}, None),  # valid: -1 or 0..1
    ({"answer.min_confidence": 3}, "answer.min_confidence"),
    ({"answer.history_turns": -2}, "answer.history_turns"),
    ({"ingest.timeout_s": 0}, "ingest.timeout_s"),
    ({"embedder.batch_size": 0}, "embedder.batch_size"),
])
def test_numbers_that_mean_nothing_are_refused(overrides, named):
    if named is None:
        load_settings(overrides=overrides, environ={})
        return
    with pytest.raises(ConfigError, match=named):
        load_settings(overrides=overrides, environ={})


def test_settings_changed_in_code_are_checked_before_any_model_loads(tmp_path):
    from ragpipe.pipeline import Pipeline

    s = load_settings(overrides={"paths.indexes": tmp_path}, environ={})
    s.answer.style = "bogus"  # type: ignore[assignment]
    with pytest.raises(ConfigError, match="answer.style.*extract, free"):
        Pipeline(s, embedder=object(), generator=object())  # type: ignore[arg-type]
    s.answer.style = "free"
    s.retrieval.top_k = 0
    with pytest.raises(ConfigError, match="retrieval.top_k"):
        Pipeline(s)


def test_cli_bad_setting_is_one_line_before_any_model_loads(tmp_path, monkeypatch, capsys):
    import sys

    from ragpipe.cli import main

    monkeypatch.setenv("RAGPIPE_PATHS_INDEXES", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    loaded = set(sys.modules)
    assert main(["--set", "answer.style=bogus", "ask", "What is the per diem?"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "answer.style" in err and "extract, free" in err
    heavy = {"torch", "llama_cpp", "sentence_transformers", "faiss"}
    assert not heavy & (set(sys.modules) - loaded)
