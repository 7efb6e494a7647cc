"""Which int8 MiniLM: quantization variants side by side, speed and SciFact ranking.

usage: python benchmarks/bench_int8.py [--extra 1200] [--speed 300]

A quick comparison that chose ragpipe's int8 recipe (int8.py), not the product's
figure (that is ``ragpipe eval retrieval`` on the whole SciFact index, README: Speed).
Documents are SciFact abstracts (title + text, first 256 tokens, one vector each): all
documents relevant to a train query plus ``--extra`` others; dense retrieval only,
document-level nDCG@10 over the 809 train queries. For each variant it prints nDCG@10
with its own question vectors and with float32 question vectors, the documents' mean
cosine to float32, and the time to embed ``--speed`` SQuAD paragraphs beside float32
sentence-transformers on torch (batches of 32, sorted by length, 2 threads).

Variants: ONNX Runtime dynamic quantization of the exported graph with per-channel or
per-tensor weight scales, per-channel with the feed-forward output layers kept float32,
and torch's own dynamic int8 (``torch.ao.quantization.quantize_dynamic``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--extra", type=int, default=1200, help="non-relevant abstracts added")
    ap.add_argument("--speed", type=int, default=300, help="SQuAD paragraphs timed")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import onnx
    import onnxruntime as ort
    import torch
    from sentence_transformers import SentenceTransformer

    from ragpipe import int8
    from ragpipe.bert import load_tokenizer
    from ragpipe.embedding import resolve_model_path

    torch.set_num_threads(2)
    folder = resolve_model_path("minilm")
    tok = load_tokenizer(folder, 256)
    st = SentenceTransformer(str(folder), device="cpu", local_files_only=True)

    def batches(texts: list[str]):
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for i in range(0, len(texts), 32):
            yield order[i : i + 32]

    def torch_embed(model, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), 384), np.float32)
        for rows in batches(texts):
            out[rows] = model.encode([texts[j] for j in rows], batch_size=32,
                                     normalize_embeddings=True, show_progress_bar=False)
        return out

    def ort_embed(session, texts: list[str]) -> np.ndarray:
        names = [i.name for i in session.get_inputs()]
        out = np.zeros((len(texts), 384), np.float32)
        for rows in batches(texts):
            ids = [e.ids for e in tok.encode_batch([texts[j] for j in rows])]
            a = np.zeros((len(ids), max(map(len, ids))), np.int64)
            m = np.zeros_like(a)
            for k, seq in enumerate(ids):
                a[k, : len(seq)], m[k, : len(seq)] = seq, 1
            out[rows] = session.run(None, {names[0]: a, names[1]: m})[0]
        return out

    # The exported float32 graph (what int8.export quantizes) and the variants of it.
    tmp = Path(tempfile.mkdtemp(prefix="bench-int8-"))
    f32 = tmp / "f32.onnx"
    int8.export_float32(st, f32)
    model = onnx.load(str(f32))
    down = [n.name for n in model.graph.node if n.op_type == "MatMul"
            and "/output/dense" in n.name and "attention" not in n.name]
    variants = {}
    for name, options in {
        "onnx int8 per-channel (ragpipe)": {},
        "onnx int8 per-tensor": {"per_channel": False},
        "onnx int8 per-channel, FFN output float32": {"nodes_to_exclude": down},
    }.items():
        path = tmp / f"{len(variants)}.onnx"
        int8.quantize(f32, path, **options)
        variants[name] = path

    def session(path: Path):
        o = ort.SessionOptions()
        o.intra_op_num_threads, o.inter_op_num_threads = 2, 1
        return ort.InferenceSession(str(path), o, providers=["CPUExecutionProvider"])

    squad = json.loads((DATA / "squad" / "dev-v1.1-half-a.json").read_text())
    paras = [p["context"] for a in squad["data"] for p in a["paragraphs"]][: args.speed]
    sf = DATA / "scifact"
    corpus = [json.loads(line) for line in open(sf / "corpus.jsonl")]
    queries = {}
    for line in open(sf / "queries.jsonl"):
        row = json.loads(line)
        queries[row["_id"]] = row["text"]
    qrels: dict[str, set[str]] = {}
    for line in list(open(sf / "qrels" / "train.tsv"))[1:]:
        qid, did, _ = line.split()
        qrels.setdefault(qid, set()).add(did)
    qids = [q for q in qrels if q in queries]
    rel = set().union(*qrels.values())
    docs_rows = [c for c in corpus if c["_id"] in rel]
    docs_rows += [c for c in corpus if c["_id"] not in rel][: args.extra]
    docs = [c["title"] + "\n" + c["text"] for c in docs_rows]
    dids = [c["_id"] for c in docs_rows]
    qtexts = [queries[q] for q in qids]

    def ndcg(dv: np.ndarray, qv: np.ndarray) -> float:
        scores = qv @ dv.T
        total = 0.0
        for i, qid in enumerate(qids):
            top = np.argsort(-scores[i])[:10]
            dcg = sum(1 / math.log2(r + 2) for r, j in enumerate(top) if dids[j] in qrels[qid])
            idcg = sum(1 / math.log2(r + 2) for r in range(min(10, len(qrels[qid]))))
            total += dcg / idcg
        return total / len(qids)

    print(f"{len(docs)} SciFact abstracts, {len(qids)} queries; speed on {len(paras)} SQuAD "
          f"paragraphs; load average {os.getloadavg()[0]:.2f}", flush=True)
    t = time.perf_counter()
    torch_embed(st, paras)
    base_s = time.perf_counter() - t
    dref, qref = torch_embed(st, docs), torch_embed(st, qtexts)
    print(f"{'float32, torch':<45} nDCG@10 {ndcg(dref, qref):.4f}  {base_s:6.1f} s  1.00x",
          flush=True)

    def report(name: str, embed) -> None:
        embed(paras[:8])
        t = time.perf_counter()
        embed(paras)
        dt = time.perf_counter() - t
        dv, qv = embed(docs), embed(qtexts)
        print(f"{name:<45} nDCG@10 {ndcg(dv, qv):.4f} (float32 questions {ndcg(dv, qref):.4f})"
              f"  {dt:6.1f} s  {base_s / dt:.2f}x  cosine {float((dv * dref).sum(1).mean()):.4f}",
              flush=True)

    for name, path in variants.items():
        s = session(path)
        report(name, lambda texts, s=s: ort_embed(s, texts))
    q8 = torch.ao.quantization.quantize_dynamic(
        SentenceTransformer(str(folder), device="cpu", local_files_only=True),
        {torch.nn.Linear}, dtype=torch.qint8)
    report("torch dynamic int8", lambda texts: torch_embed(q8, texts))


if __name__ == "__main__":
    main()
