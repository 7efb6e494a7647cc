
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
