"""Retrieval latency and approximate-index recall at 100,000 chunks. Run by hand:

    .venv/bin/python benchmarks/bench_retrieval.py [--chunks 100000] [--part ann|search|all]

Part ``ann``: exact (flat) search against IVF (several nprobe) and HNSW on the
same vectors: recall@10 against exact, single-query latency p50/p95, build time.

Part ``search``: a real index (SQLite + FTS5 + FAISS) of N chunks, searched
through ``Retriever`` with the real MiniLM query embedding, in each mode, with
the exact and the IVF index: latency p50/p95 of embedding + search.

Data: the vectors are synthetic but shaped like real ones: each is a real
chunk vector of the SciFact/SQuAD eval indexes (if built, else a Gaussian
mixture) plus noise, renormalized. Chunk texts are random runs of real
sentences from the shared data (else Zipf-distributed words), so FTS5 sees
realistic term statistics. Questions are real SciFact claims and SQuAD
questions. The built index is cached in /tmp/ragpipe-bench-<N>/.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
DATA = ROOT.parent / "shared" / "data"
DIM = 384


def pct(xs, q):
    return float(np.percentile(np.asarray(xs), q)) if len(xs) else 0.0


def real_vectors() -> np.ndarray | None:
    """Chunk vectors of the eval indexes built by `ragpipe eval` (if any)."""
    out = []
    for db in sorted((ROOT / "indexes").glob("eval-*/index.sqlite")):
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        rows = conn.execute("SELECT vector FROM chunks").fetchall()
        out += [np.frombuffer(r[0], dtype=np.float32) for r in rows]
        conn.close()
    return np.stack(out) if len(out) > 1000 else None


def synthetic_vectors(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = real_vectors()
    if base is None:
        base = rng.standard_normal((2000, DIM)).astype(np.float32)
        base /= np.linalg.norm(base, axis=1, keepdims=True)
    pick = rng.integers(0, len(base), n)
    x = base[pick] + 0.04 * rng.standard_normal((n, DIM)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def questions(limit: int = 400) -> list[str]:
    qs: list[str] = []
    sf = DATA / "scifact" / "queries.jsonl"
    if sf.is_file():
        qs += [json.loads(line)["text"] for line in sf.open()][: limit // 2]
    sq = DATA / "squad" / "dev-v1.1-half-a.json"
    if sq.is_file():
        d = json.loads(sq.read_text())
        qs += [q["question"] for a in d["data"] for p in a["paragraphs"] for q in p["qas"]][
            : limit - len(qs)
        ]
    return qs or [f"question number {i} about topic {i % 17}" for i in range(limit)]


def sentences() -> list[str]:
    out: list[str] = []
    sf = DATA / "scifact" / "corpus.jsonl"
    if sf.is_file():
        for line in sf.open():
            out += re.split(r"(?<=[.!?])\s+", json.loads(line)["text"])
    sq = DATA / "squad" / "dev-v1.1-half-a.json"
    if sq.is_file():
        d = json.loads(sq.read_text())
        for a in d["data"]:
            for p in a["paragraphs"]:
                out += re.split(r"(?<=[.!?])\s+", p["context"])
    if not out:
        rng = np.random.default_rng(1)
        vocab = [f"w{i}" for i in range(30000)]
        ranks = np.minimum(rng.zipf(1.2, 400000), 30000) - 1
        out = [" ".join(vocab[r] for r in ranks[i : i + 20]) + "." for i in range(0, 400000, 20)]
    return [s for s in out if s.strip()]


# ----- part 1: the vector index alone ----------------------------------------------------------
def bench_ann(n: int, queries: np.ndarray) -> None:
    import faiss

    from ragpipe.store import IVF_NPROBE, ivf_nlist_for

    x = synthetic_vectors(n)
    ids = np.arange(n, dtype=np.int64)
    flat = faiss.IndexIDMap2(faiss.IndexFlatIP(DIM))
    flat.add_with_ids(x, ids)
    truth = [flat.search(q[None], 10)[1][0] for q in queries]

    def run(index, params=None, label=""):
        lat, rec = [], []
        for q, t in zip(queries, truth, strict=True):
            t0 = time.perf_counter()
            _, got = index.search(q[None], 10, params=params)
            lat.append((time.perf_counter() - t0) * 1000)
            rec.append(len(set(got[0]) & set(t)) / 10)
        print(f"  {label:<28} recall@10 {np.mean(rec):.3f}   p50 {pct(lat, 50):6.2f} ms   "
              f"p95 {pct(lat, 95):6.2f} ms")

    print(f"\n== vector index alone: {n:,} vectors, dim {DIM}, {len(queries)} real questions, "
          f"{faiss.omp_get_max_threads()} threads")
    run(flat, label="flat (exact)")
    nlist = ivf_nlist_for(n)
    for lists in (nlist // 4, nlist):
        t0 = time.perf_counter()
        ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(DIM), DIM, lists, faiss.METRIC_INNER_PRODUCT)
        ivf.train(x[:: max(1, n // (64 * lists))])
        ivf.add_with_ids(x, ids)
        print(f"  IVF nlist={lists}: built in {time.perf_counter() - t0:.1f} s")
        for nprobe in (4, 8, 16, 32, 64):
            p = faiss.SearchParametersIVF(nprobe=nprobe)
            mark = "  <- default" if lists == nlist and nprobe == IVF_NPROBE else ""
            run(ivf, p, f"IVF{lists} nprobe={nprobe}{mark}")
    t0 = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(DIM, 32, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = 64
    hnsw.add(x)
    print(f"  HNSW M=32: built in {time.perf_counter() - t0:.1f} s (no remove_ids: deletes "
          f"would need tombstones and rebuilds)")
    for ef in (32, 64, 128):
        p = faiss.SearchParametersHNSW(efSearch=ef)
        run(hnsw, p, f"HNSW efSearch={ef}")
    # truth ids are 0..n-1 = HNSW's sequential ids, so recall compares directly


# ----- part 2: the whole search path ------------------------------------------------------------
def build_store(n: int, ann_threshold: int, folder: Path):
    from ragpipe.datatypes import Chunk, Outcome
    from ragpipe.store import Store

    store = Store(folder)
    store.ann_threshold = ann_threshold
    if store.exists() and store.count_chunks() == n:
        return up_to_date(store)
    sents = sentences()
    rng = np.random.default_rng(2)
    x = synthetic_vectors(n, seed=3)
    meta = {"embedder": "minilm:384", "dim": str(DIM), "chunking": "bench", "root": "/bench"}
    t0 = time.perf_counter()
    per_file = 10
    with store.writer(meta, command="bench") as w:
        for f in range(0, n, per_file):
            chunks = []
            for j in range(f, min(n, f + per_file)):
                picks = rng.integers(0, len(sents), 7)
                text = " ".join(sents[p] for p in picks)
                chunks.append(Chunk(text, None, 0, len(text), j - f))
            sha = f"{f:08d}"
            w.put_content(sha, "txt", 1, "bench", "minilm:384", chunks, x[f : f + len(chunks)])
            w.set_file(f"folder{f % 7}/doc{f:08d}.txt", sha, 1, 1, Outcome.OK, kind="txt",
                       chunks=len(chunks))
        w.publish(note="bench")
    print(f"  built a {n:,}-chunk index in {time.perf_counter() - t0:.0f} s at {folder}")
    return store


def index_meta(store) -> dict:
    """The index's own facts, less the format version (the writer sets its own)."""
    return {k: v for k, v in store.meta().items() if k != "format_version"}


def up_to_date(store):
    """A cached index brought to this version's format (a writer migrates on opening)."""
    with store.writer(index_meta(store), command="bench") as w:
        if w.pending:
            t0 = time.perf_counter()
            w.publish(note="migrate")
            print(f"  brought the cached index up to date in {time.perf_counter() - t0:.0f} s")
    return store


def ivf_copy(exact):
    """The same index with an IVF vector index (built once, cached beside it)."""
    import shutil

    from ragpipe.store import Store

    folder = exact.path.with_name(exact.path.name + "-ivf")
    if not (folder / "index.sqlite").is_file():
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(exact.path, folder)
        store = Store(folder)
        store.ann_threshold = 1
        t0 = time.perf_counter()
        with store.writer(index_meta(store), command="bench") as w:
            w.publish(note="ivf", rebuild=True)
        print(f"  IVF index trained and built in {time.perf_counter() - t0:.0f} s")
    store = Store(folder)
    store.ann_threshold = 1
    return up_to_date(store)


def bench_search(n: int, qs: list[str]) -> None:
    from types import SimpleNamespace

    from ragpipe.embedding import SentenceTransformerEmbedder
    from ragpipe.filters import parse_where
    from ragpipe.retrieval import Retriever, embed_query

    emb = SentenceTransformerEmbedder("minilm")
    for q in qs[:60]:  # the first few dozen queries of a process are slower (warm-up)
        embed_query(emb, q)
    cfg = SimpleNamespace(mode="hybrid", fusion="convex", keyword_weight=0.4, rrf_k=60,
                          candidates=100, dedup=0.8, neighbours=0, min_score=0.0,
                          keyword_max_df=0.2)
    print(f"\n== whole search path at {n:,} chunks: query embedding + search, k=4, "
          f"{len(qs)} questions")
    t0 = time.perf_counter()
    lat = []
    for q in qs:
        t0 = time.perf_counter()
        embed_query(emb, q)
        lat.append((time.perf_counter() - t0) * 1000)
    print(f"  query embedding alone          p50 {pct(lat, 50):6.1f} ms   p95 {pct(lat, 95):6.1f}")
    exact = build_store(n, 10**9, Path(f"/tmp/ragpipe-bench-{n}"))
    for label in ("exact", "IVF"):  # exact: no term pruning; IVF: as past ann_threshold
        store = exact if label == "exact" else ivf_copy(exact)
        for mode in ("dense", "bm25", "hybrid"):
            r = Retriever(store, emb, cfg)
            for q in qs[:20]:
                r.search(q, 4, None, mode)
            lat = []
            for q in qs:
                t0 = time.perf_counter()
                r.search(q, 4, None, mode)
                lat.append((time.perf_counter() - t0) * 1000)
            print(f"  {label:<5} {mode:<7} p50 {pct(lat, 50):6.1f} ms   p95 {pct(lat, 95):6.1f} ms")
        where = parse_where(["path=folder3/"])
        lat = []
        for q in qs[:100]:
            t0 = time.perf_counter()
            r.search(q, 4, where, "hybrid")
            lat.append((time.perf_counter() - t0) * 1000)
        print(f"  {label:<5} hybrid + path filter (1/7 of chunks) p50 {pct(lat, 50):6.1f} ms   "
              f"p95 {pct(lat, 95):6.1f} ms")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chunks", type=int, default=100_000)
    ap.add_argument("--part", choices=["ann", "search", "all"], default="all")
    ap.add_argument("--queries", type=int, default=300)
    args = ap.parse_args()
    qs = questions(args.queries)
    if args.part in ("ann", "all"):
        from ragpipe.embedding import SentenceTransformerEmbedder

        qv = SentenceTransformerEmbedder("minilm").embed(qs)
        bench_ann(args.chunks, qv)
    if args.part in ("search", "all"):
        bench_search(args.chunks, qs)


if __name__ == "__main__":
    main()
