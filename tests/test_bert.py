"""The NumPy encoder (bert.py) against sentence-transformers on the same shipped MiniLM."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import CORPUS, SHARED_DATA
from corpus_facts import FACTS

from ragpipe import bert
from ragpipe.embedding import SentenceTransformerEmbedder, resolve_model_path
from ragpipe.ingest import read_document

pytestmark = pytest.mark.e2e

EDGE = [
    "",
    "   leading and trailing spaces   ",
    "Zürich, naïve café, Ærøskøbing, İstanbul",
    "日本語のテキストと中文文本",
    "emoji \U0001F600 and \u200b zero width",
    "A" * 5000,  # one unknown token
    "word " * 600,  # over the 256-token window: truncated by both
    "x",
]


def corpus_texts(embedder: SentenceTransformerEmbedder) -> list[str]:
    """Chunks of every corpus file, as a sync makes them."""
    from ragpipe.chunking import Chunker

    chunker = Chunker(embedder.count_tokens, 200, 32, embedder.max_tokens)
    texts = []
    for f in sorted(CORPUS.iterdir()):
        doc, _ = read_document(f, f.name)
        texts += [c.text for c in chunker.split(doc)]
    return texts


def squad_questions(n: int) -> list[str]:
    path = SHARED_DATA / "squad" / "dev-v1.1-half-a.json"
    if not path.is_file():
        return []
    data = json.loads(path.read_text())
    qs = [q["question"] for a in data["data"] for p in a["paragraphs"] for q in p["qas"]]
    return qs[:: max(1, len(qs) // n)][:n]


@pytest.fixture(scope="module")
def reference(embedder):
    """sentence-transformers itself, loaded from the same folder."""
    return embedder._load()


def test_vectors_match_sentence_transformers(embedder, reference):
    queries = [q for q, _, _ in FACTS] + squad_questions(200)
    texts = queries + corpus_texts(embedder) + EDGE
    assert len(texts) > 60
    want = reference.encode(texts, batch_size=32, normalize_embeddings=True,
                            convert_to_numpy=True, show_progress_bar=False)
    encoder = bert.BertEncoder(embedder.path, 256)
    tok = bert.load_tokenizer(embedder.path, 256)
    got = np.vstack([encoder.encode([e.ids for e in tok.encode_batch(texts[i : i + 16])])
                     for i in range(0, len(texts), 16)])
    cos = (got * want).sum(axis=1)
    worst = int(cos.argmin())
    assert cos.min() > 0.9999, (texts[worst][:80], cos.min())
    assert np.abs(got - want).max() < 1e-4
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_a_vector_does_not_depend_on_its_batch(embedder):
    texts = [q for q, _, _ in FACTS]
    encoder = bert.BertEncoder(embedder.path, 256)
    tok = bert.load_tokenizer(embedder.path, 256)
    ids = [e.ids for e in tok.encode_batch(texts)]
    together = encoder.encode(ids)
    alone = np.vstack([encoder.encode([i]) for i in ids])
    np.testing.assert_allclose(together, alone, atol=1e-6)


def test_embedder_routes_and_keeps_order(embedder, reference):
    """Small batches run NumPy, large ones torch (length-sorted); rows stay in input order."""
    texts = corpus_texts(embedder)[:40] + EDGE
    small = SentenceTransformerEmbedder("minilm")
    few = small.embed(texts[:5])
    many = small.embed(texts)
    assert small._numpy is not None and small._model is not None
    want = reference.encode(texts, normalize_embeddings=True, convert_to_numpy=True,
                            show_progress_bar=False)
    np.testing.assert_allclose(many, want, atol=1e-5)
    np.testing.assert_allclose(few, want[:5], atol=1e-5)
    q = small.embed_query(FACTS[0][0])
    assert q.shape == (small.dim,) and abs(float(np.linalg.norm(q)) - 1) < 1e-5


def test_window_dimension_and_token_counts_from_files(embedder, reference):
    fresh = SentenceTransformerEmbedder("minilm")
    assert fresh.max_tokens == reference.max_seq_length - 2
    assert fresh.dim == reference.get_embedding_dimension()
    hf = reference.tokenizer
    for text in corpus_texts(embedder)[:20] + EDGE:
        want = len(hf(text, add_special_tokens=False, truncation=False)["input_ids"])
        assert fresh.count_tokens(text) == want
    assert fresh._model is None  # none of that loaded torch's model
    assert SentenceTransformerEmbedder("minilm", max_tokens=128).max_tokens == 126


def test_unsupported_models_fall_back_to_sentence_transformers(tmp_path):
    """A folder with a module the NumPy encoder does not compute (Dense) is not taken."""
    src = resolve_model_path("minilm")
    assert bert.supported(src)
    folder = tmp_path / "with-dense"
    shutil.copytree(src, folder, ignore=shutil.ignore_patterns("model.safetensors"))
    (folder / "model.safetensors").symlink_to(src / "model.safetensors")
    modules = json.loads((folder / "modules.json").read_text())
    modules.insert(2, {"idx": 2, "name": "2", "path": "2_Dense",
                       "type": "sentence_transformers.models.Dense"})
    (folder / "modules.json").write_text(json.dumps(modules))
    assert not bert.supported(folder)
    pooling = folder / "1_Pooling" / "config.json"
    modules.pop(2)
    (folder / "modules.json").write_text(json.dumps(modules))
    assert bert.supported(folder)
    cfg = json.loads(pooling.read_text())
    cfg["pooling_mode_cls_token"], cfg["pooling_mode_mean_tokens"] = True, False
    pooling.write_text(json.dumps(cfg))
    assert not bert.supported(folder)


def test_gelu_is_the_erf_form():
    import math

    x = np.linspace(-8, 8, 4001, dtype=np.float32)
    want = np.array([v * 0.5 * (1 + math.erf(v / math.sqrt(2))) for v in x.tolist()])
    got = bert.gelu(x.copy())
    assert np.abs(got - want).max() < 2e-6
