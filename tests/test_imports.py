"""Commands that need no model runtime import none: a cold status or search stays fast.

Each check runs in a fresh interpreter (``python -c``), as a user's command does, and
looks at ``sys.modules`` afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CORPUS, ROOT

# Seconds to import, each: what status, search and the reader processes must not pay.
HEAVY = ("torch", "transformers", "sentence_transformers")


def modules_after(code: str, env: dict[str, str] | None = None, cwd: Path | None = None
                  ) -> set[str]:
    """The modules loaded after running ``code`` in a new interpreter."""
    full = code + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
    environ = {**os.environ, **(env or {}), "HF_HUB_OFFLINE": "1",
               "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get(
                   "PYTHONPATH", "")) if p)}
    r = subprocess.run([sys.executable, "-c", full], env=environ, cwd=cwd,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return set(json.loads(r.stdout.strip().splitlines()[-1]))


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY)


def test_the_cli_and_the_pipeline_import_no_model_runtime():
    loaded = modules_after(
        "import ragpipe.cli, ragpipe.pipeline, ragpipe.embedding, ragpipe.bert, "
        "ragpipe.retrieval, ragpipe.store\n"
        "ragpipe.cli._parser()"
    )
    assert not heavy(loaded)
    assert "ragpipe.pipeline.answer" not in loaded  # the answer path loads when asked


def test_reader_processes_import_no_model_runtime():
    """What a reader worker imports, and what reading every corpus format pulls in."""
    from ragpipe.ingest.workers import _BOOT

    boot = _BOOT.split(";")[1].strip()  # the worker's import line, without running it
    loaded = modules_after(
        f"{boot}\n"
        "from pathlib import Path\n"
        "from ragpipe.ingest import read_document\n"
        f"for f in sorted(Path({str(CORPUS)!r}).iterdir()):\n"
        "    read_document(f, f.name)\n"
    )
    assert "ragpipe.ingest.workers" in loaded
    assert not heavy(loaded)


@pytest.mark.e2e
def test_status_and_search_commands_import_no_torch(tmp_path, embedder):
    from ragpipe.pipeline import Pipeline
    from ragpipe.settings import load_settings

    indexes = tmp_path / "indexes"
    settings = load_settings(overrides={"paths.indexes": indexes}, environ={})
    stats = Pipeline(settings, "c", embedder=embedder).ingest(CORPUS)
    assert not stats.failed
    env = {"RAGPIPE_PATHS_INDEXES": str(indexes)}
    loaded = modules_after(
        "import contextlib, io\n"
        "from ragpipe.cli import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        "    assert main(['status', '--index', 'c']) == 0\n"
        "    assert main(['search', 'Which form is used to claim travel expenses?', "
        "'--index', 'c', '--mode', 'dense', '-k', '1']) == 0\n"
        "    assert main(['search', 'per diem Tier 1 city', '--index', 'c']) == 0\n"
        "text = out.getvalue()\n"
        "assert 'chunks' in text and 'travel-policy.pdf' in text, text\n",
        env, tmp_path,
    )
    assert "ragpipe.bert" in loaded  # the query vectors were computed ...
    assert not heavy(loaded)  # ... without torch


@pytest.mark.e2e
def test_torch_loads_with_passive_openmp_waits():
    """torch's OpenMP threads must not spin: on shared cores that cost ingest a quarter."""
    code = (
        "import os\n"
        "os.environ.pop('OMP_WAIT_POLICY', None)\n"
        "from ragpipe.embedding import SentenceTransformerEmbedder\n"
        "e = SentenceTransformerEmbedder()\n"
        "e.embed(['a text'] * 40)\n"  # more than the NumPy runtime takes: torch loads
        "assert os.environ['OMP_WAIT_POLICY'] == 'PASSIVE'\n"
    )
    loaded = modules_after(code)
    assert "torch" in loaded


@pytest.mark.e2e
def test_an_int8_ingest_imports_no_torch(tmp_path):
    """With the int8 export cached (``ragpipe models prepare``), ingest runs on ONNX Runtime."""
    from ragpipe.embedding import SentenceTransformerEmbedder

    SentenceTransformerEmbedder(precision="int8").prepare()  # cached, or exported now
    indexes = tmp_path / "indexes"
    loaded = modules_after(
        "import contextlib, io\n"
        "from ragpipe.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    assert main(['--set', 'embedder.precision=int8', 'ingest', {str(CORPUS)!r}, "
        "'--index', 'q']) == 0\n",
        {"RAGPIPE_PATHS_INDEXES": str(indexes)}, tmp_path,
    )
    assert "onnxruntime" in loaded
    assert not heavy(loaded)
