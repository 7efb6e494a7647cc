"""Model cards: a GGUF header read in pure Python, the catalogue's licence and openness, the
embedder's facts, and `ragpipe models info` for files and for a server backend."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT
from openai_stub import StubServer

from ragpipe import models
from ragpipe.cli import main
from ragpipe.embedding import embedder_card
from ragpipe.errors import ModelNotFound
from ragpipe.gguf import FILE_TYPES, read_header

SMOL = models.resolve_gguf("smollm2-135m", ROOT / "models")


@pytest.mark.parametrize("name", ["smollm2-135m", "qwen2.5-coder-0.5b"])
def test_the_header_says_what_llama_cpp_reads(name):
    from llama_cpp import Llama

    path = models.resolve_gguf(name, ROOT / "models")
    header = read_header(path)
    theirs = Llama(model_path=str(path), vocab_only=True, verbose=False).metadata
    assert theirs
    for key, text in theirs.items():
        ours = header.metadata[key]
        if isinstance(ours, bool):
            assert str(ours).lower() == text, key
        elif isinstance(ours, float):
            assert ours == pytest.approx(float(text), rel=1e-5), key
        else:
            assert str(ours) == text, key


def test_file_types_are_llama_cpps():
    import llama_cpp

    theirs = {getattr(llama_cpp, k): k.removeprefix("LLAMA_FTYPE_MOSTLY_")
              for k in dir(llama_cpp) if k.startswith("LLAMA_FTYPE_MOSTLY_")}
    for value, name in FILE_TYPES.items():
        assert theirs.get(value, "F32" if value == 0 else None) == name


def test_smollm2_card():
    card = models.model_card("smollm2-135m", ROOT / "models")
    assert card["quantization"] == "Q4_1" and card["architecture"] == "llama"
    assert card["context_length"] == 8192 and card["chat_template"] is True
    assert card["licence"] == "apache-2.0" and card["size_label"] == "135M"
    assert abs(card["parameters"] - 135e6) < 0.05 * 135e6
    assert card["file_size"] == SMOL.stat().st_size
    assert card["sha256"] == models.SMOLLM2.sha256
    assert card["catalogue"]["weights_open"] == "yes"
    assert card["catalogue"]["data_open"] == "yes"


def test_a_copied_file_is_hashed_and_not_in_the_catalogue(tmp_path):
    copy = tmp_path / "my-model.gguf"
    shutil.copyfile(SMOL, copy)
    card = models.model_card(str(copy), tmp_path)
    assert card["sha256"] == models.SMOLLM2.sha256  # computed from the file itself
    assert "catalogue" not in card and card["quantization"] == "Q4_1"


def test_a_damaged_file_gives_one_line(tmp_path):
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(SMOL.read_bytes()[:5000])  # ends inside the vocabulary
    with pytest.raises(ModelNotFound, match="unreadable GGUF header.*corrupt or incomplete"):
        read_header(cut)
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 16)
    with pytest.raises(ModelNotFound, match="unreadable GGUF header"):
        read_header(junk)


def test_every_catalogue_model_says_its_licence_and_openness():
    for m in models.KNOWN.values():
        o = models.openness(m)
        assert o["licence"] and o["note"]
        assert {o["weights_open"], o["data_open"], o["code_open"]} <= {"yes", "no", "partly"}
    for o in models.EMBEDDER_OPENNESS.values():
        assert {o["weights_open"], o["data_open"], o["code_open"]} <= {"yes", "no", "partly"}


def test_embedder_card_matches_the_loaded_model(embedder):
    card = embedder_card("minilm")
    assert card["name"] == embedder.name == "all-MiniLM-L6-v2"
    assert card["dim"] == embedder.dim and card["window"] == embedder.max_tokens + 2
    assert card["licence"] == "apache-2.0"


def test_a_card_loads_no_model():
    code = ("import sys; from pathlib import Path; from ragpipe.models import model_card;"
            "from ragpipe.embedding import embedder_card;"
            f"model_card('qwen2.5-coder-0.5b', Path({str(ROOT / 'models')!r}), sha256=False);"
            "embedder_card(); print(sorted({'llama_cpp', 'torch'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_cli_models_info(capsys):
    code = main(["--set", f"paths.models={ROOT / 'models'}", "models", "info", "smollm2-135m"])
    out = capsys.readouterr().out
    assert code == 0
    for words in ("smollm2-135m (llama_cpp)", "Q4_1", "8192 tokens trained", "apache-2.0",
                  models.SMOLLM2.sha256, "weights yes, training data yes, training code yes",
                  "all-MiniLM-L6-v2: 384 dimensions, 256-token window"):
        assert words in out, words
    code = main(["--set", f"paths.models={ROOT / 'models'}", "models", "info", "--json",
                 "--no-hash"])
    card = json.loads(capsys.readouterr().out)
    assert code == 0 and "sha256" not in card["answer_model"]
    assert card["answer_model"]["model"] == "qwen2.5-coder-0.5b"
    assert card["answer_model"]["catalogue"]["data_open"] == "no"
    assert card["embedder"]["dim"] == 384


def test_cli_models_info_for_a_server_says_what_it_reports(capsys):
    with StubServer() as stub:
        code = main(["--set", "llm.backend=openai", "--set", f"llm.base_url={stub.url}",
                     "models", "info"])
    out = capsys.readouterr().out
    assert code == 0 and f"server         {stub.url}" in out and "stub-reasoner" in out


def test_cli_refuses_a_model_for_other_actions(capsys):
    assert main(["models", "list", "smollm2-135m"]) == 2
    assert "models info" in capsys.readouterr().err
    assert main(["models", "info", "/no/such/model.gguf"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not exist" in err
