"""int8 document embeddings (int8.py): the real export of the shipped MiniLM under ONNX Runtime."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from conftest import CORPUS

from ragpipe import int8
from ragpipe.embedding import SentenceTransformerEmbedder, resolve_precision
from ragpipe.errors import IndexMismatch, ModelNotFound
from ragpipe.pipeline import Pipeline
from ragpipe.settings import load_settings

pytestmark = pytest.mark.e2e

PARAGRAPHS = [
    "Employees accrue 25 days of paid annual leave per calendar year. Up to five unused "
    "days may be carried over into the first quarter of the following year.",
    "Expense claims must be submitted within 30 days of the expense, with receipts, "
    "through the finance portal; claims over EUR 500 need a director's approval.",
    "The backup server replicates the file shares every night at 02:00 and keeps 14 "
    "daily and 8 weekly snapshots.",
    "Visitors sign in at reception, wear a badge at all times and are accompanied in "
    "the laboratories.",
]


@pytest.fixture(scope="module")
def int8_embedder():
    e = SentenceTransformerEmbedder("minilm", precision="int8")
    e.prepare()
    return e


def test_int8_documents_are_close_to_float32_and_questions_are_float32(embedder, int8_embedder):
    assert int8_embedder.name == "all-MiniLM-L6-v2+int8" and embedder.name == "all-MiniLM-L6-v2"
    got = int8_embedder.embed(PARAGRAPHS)
    want = embedder.embed(PARAGRAPHS)
    assert got.shape == want.shape == (len(PARAGRAPHS), 384) and got.dtype == np.float32
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-4)
    cos = (got * want).sum(axis=1)
    assert cos.min() > 0.97, cos  # close ...
    assert cos.max() < 0.99999, cos  # ... but really the int8 model, not the float32 one
    # A question is embedded at float32 exactly, whatever the documents' precision.
    q = "Can I carry over unused leave?"
    assert np.array_equal(int8_embedder.embed_query(q), embedder.embed_query(q))
    # Ranking survives: each paragraph's own int8 vector is its float32 vector's nearest.
    assert list((want @ got.T).argmax(axis=1)) == list(range(len(PARAGRAPHS)))


def test_batches_and_progress(int8_embedder):
    texts = PARAGRAPHS * 20  # 80 texts of mixed length, 3 batches of 32
    seen: list[int] = []
    out = int8_embedder.embed(texts, progress=seen.append)
    assert sum(seen) == 80 and len(seen) == 3
    # Copies of one text in one call get nearly the same vector.
    assert float(out[0] @ out[4]) > 0.999
    assert int8_embedder.embed([]).shape == (0, 384)


def test_auto_follows_the_index_and_picks_int8_for_a_new_one():
    assert resolve_precision("auto", "minilm", None) == "int8"
    assert resolve_precision("auto", "minilm", "all-MiniLM-L6-v2") == "fp32"
    assert resolve_precision("auto", "minilm", "all-MiniLM-L6-v2+int8") == "int8"
    assert resolve_precision("fp32", "minilm", "all-MiniLM-L6-v2+int8") == "fp32"
    with pytest.raises(ValueError):
        SentenceTransformerEmbedder("minilm", precision="int4")


def _settings(tmp_path, precision: str):
    return load_settings(overrides={"paths.indexes": tmp_path / "indexes",
                                    "embedder.precision": precision}, environ={})


def test_a_float32_index_keeps_working_and_a_new_one_is_int8(tmp_path, monkeypatch):
    docs = tmp_path / "docs"
    shutil.copytree(CORPUS, docs)
    old = Pipeline(_settings(tmp_path, "fp32"), index="old")
    old.sync(docs)
    assert old.store.meta()["embedder"] == "all-MiniLM-L6-v2"
    # The default ("auto") searches an index built at float32 with float32 documents.
    again = Pipeline(_settings(tmp_path, "auto"), index="old")
    assert again.embedder.name == "all-MiniLM-L6-v2"
    assert again.search("expense receipts", k=3)
    # A new index under "auto" is int8 and records it.
    new = Pipeline(_settings(tmp_path, "auto"), index="new")
    new.sync(docs)
    assert new.store.meta()["embedder"] == "all-MiniLM-L6-v2+int8"
    fp_hits = [h.source for h in again.search("expense receipts", k=3)]
    q8_hits = [h.source for h in new.search("expense receipts", k=3)]
    assert fp_hits[0] == q8_hits[0]
    # An answer's units (sentences) are scored at float32, as the question is: the int8
    # vectors of short sentences cost the workplace set 0.03 key-point recall (README: Speed).
    hits = new.search("How do I claim travel expenses?", k=3)

    def no_int8(*args, **kwargs):
        raise AssertionError("compose used the int8 document embedding")

    monkeypatch.setattr(new.embedder, "embed", no_int8)
    assert new.compose("How do I claim travel expenses?", hits).text
    monkeypatch.undo()
    # Forcing the other precision on a built index is refused with the way out ...
    with pytest.raises(IndexMismatch, match="embedder"):
        Pipeline(_settings(tmp_path, "fp32"), index="new").search("expense", k=1)
    # ... and a sync in it re-embeds the stored text.
    converted = Pipeline(_settings(tmp_path, "int8"), index="old")
    st = converted.sync(docs)
    assert st.unchanged == len(list(docs.iterdir()))
    assert converted.store.meta()["embedder"] == "all-MiniLM-L6-v2+int8"
    assert converted.store.fsck() == []


def test_a_failed_export_check_keeps_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(int8, "MIN_COSINE", 1.01)  # fault injection: no export can pass
    e = SentenceTransformerEmbedder("minilm", precision="int8")
    with pytest.raises(ModelNotFound, match="embedder.precision"):
        e.embed(PARAGRAPHS)
    folder = tmp_path / "cache" / "ragpipe" / "embedders"
    assert list(folder.iterdir()) == []  # neither the file nor the export's temporary folder


def test_a_damaged_cached_file_names_itself(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    e = SentenceTransformerEmbedder("minilm", precision="int8")
    path = int8.model_file(e.path, "all-MiniLM-L6-v2")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not an onnx file")
    with pytest.raises(ModelNotFound, match=path.name):
        e.embed(PARAGRAPHS)
