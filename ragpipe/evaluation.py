"""Measuring retrieval: datasets, metrics and the `ragpipe eval retrieval` runner.

Three dataset formats are read:

* BEIR: a folder with ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``;
* SQuAD JSON (v1.1 or v2.0): each paragraph is a document and a question's one
  relevant document is its paragraph; unanswerable questions are skipped;
* a user's own set of question -> expected-source pairs (``.jsonl`` with
  ``{"question": ..., "source": ...}`` lines, or ``.csv`` with ``question`` and
  ``expected_source`` columns; several sources separated by ``|``), measured
  against an existing index, so admins can check retrieval on their own files.

For BEIR and SQuAD the corpus is written once as one text file per document
into ``<indexes>/.eval-corpora/<key>/`` and indexed by an ordinary
``Pipeline.sync``, so the measured path is exactly the product's (reader,
chunker, embedder, store). Re-running syncs again, which finds nothing to do
and reuses the index; the key covers the corpus bytes, the embedder and the
chunking settings, so a change builds a new index instead of mixing them.

Relevance is judged per document: a ranked list of chunks becomes a ranked
list of documents by keeping each document's first (best) chunk.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

KS = (1, 5, 10, 20)
DEPTH = 20  # documents ranked per query (the deepest cut-off reported)


@dataclass(frozen=True)
class EvalDoc:
    """One corpus document of a dataset."""

    id: str
    text: str
    title: str = ""


@dataclass(frozen=True)
class EvalQuery:
    """One question and the documents (id -> graded relevance > 0) that answer it."""

    id: str
    text: str
    relevant: dict[str, int]


@dataclass
class EvalSet:
    """A loaded dataset. ``docs`` is None for a user set measured against an existing index."""

    name: str
    kind: str  # "beir", "squad" or "pairs"
    queries: list[EvalQuery]
    docs: list[EvalDoc] | None = None
    fingerprint: str = ""  # changes when the corpus changes


# ----- loading -----------------------------------------------------------------------------------
def load_dataset(path: Path, split: str = "test") -> EvalSet:
    """Read a BEIR folder, a SQuAD JSON file or a user JSONL/CSV of question -> source."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"dataset {path} does not exist")
    if path.is_dir():
        if (path / "corpus.jsonl").is_file():
            return load_beir(path, split)
        raise ConfigError(f"{path} is a folder without corpus.jsonl (BEIR layout expected)")
    suffix = path.suffix.lower()
    if suffix == ".json":
        return load_squad(path)
    if suffix in (".jsonl", ".csv", ".tsv"):
        return load_pairs(path)
    raise ConfigError(
        f"cannot tell the format of {path}: give a BEIR folder, a SQuAD .json, "
        "or a .jsonl/.csv of question -> expected source"
    )


def _read_jsonl(path: Path) -> Iterable[dict]:
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ConfigError(f"{path}:{n}: invalid JSON ({exc})") from None


def _file_digest(*paths: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes())
    return h.hexdigest()[:12]


def load_beir(folder: Path, split: str = "test") -> EvalSet:
    """BEIR layout: corpus.jsonl (_id, title, text), queries.jsonl (_id, text), qrels/SPLIT.tsv."""
    qrels_path = folder / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        have = sorted(p.stem for p in (folder / "qrels").glob("*.tsv"))
        raise ConfigError(f"{qrels_path} does not exist; splits here: {', '.join(have) or 'none'}")
    docs = [
        EvalDoc(str(d["_id"]), str(d.get("text") or ""), str(d.get("title") or ""))
        for d in _read_jsonl(folder / "corpus.jsonl")
    ]
    texts = {str(q["_id"]): str(q["text"]) for q in _read_jsonl(folder / "queries.jsonl")}
    rel: dict[str, dict[str, int]] = {}
    with open(qrels_path, encoding="utf-8") as f:
        for row in csv.reader(f, delimiter="\t"):
            if len(row) < 3 or row[0] == "query-id":
                continue
            if int(row[2]) > 0:
                rel.setdefault(row[0], {})[row[1]] = int(row[2])
    queries = [EvalQuery(qid, texts[qid], r) for qid, r in rel.items() if qid in texts]
    fp = _file_digest(folder / "corpus.jsonl")
    return EvalSet(f"{folder.name}-{split}", "beir", queries, docs, fp)


def load_squad(path: Path) -> EvalSet:
    """SQuAD JSON: one document per paragraph; unanswerable questions are skipped."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: invalid JSON ({exc})") from None
    if not isinstance(data, dict) or "data" not in data:
        raise ConfigError(f"{path} is not SQuAD JSON (no top-level 'data' list)")
    docs: list[EvalDoc] = []
    queries: list[EvalQuery] = []
    for a, article in enumerate(data["data"]):
        title = str(article.get("title", ""))
        for p, para in enumerate(article["paragraphs"]):
            doc_id = f"{a:03d}-{p:03d}"
            docs.append(EvalDoc(doc_id, para["context"], title))
            for qa in para.get("qas", []):
                if qa.get("is_impossible") or not qa.get("answers"):
                    continue
                queries.append(EvalQuery(str(qa["id"]), qa["question"], {doc_id: 1}))
    return EvalSet(path.stem, "squad", queries, docs, _file_digest(path))


def load_pairs(path: Path) -> EvalSet:
    """A user's question -> expected source(s) set, measured against an existing index."""
    rows: list[tuple[str, str]] = []
    if path.suffix.lower() == ".jsonl":
        for d in _read_jsonl(path):
            q = d.get("question")
            src = d.get("source", d.get("expected_source", d.get("sources")))
            if isinstance(src, list):
                src = "|".join(str(s) for s in src)
            if not q or not src:
                raise ConfigError(f"{path}: each line needs 'question' and 'source'")
            rows.append((str(q), str(src)))
    else:
        delim = "\t" if path.suffix.lower() == ".tsv" else ","
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f, delimiter=delim)
            fields = {(n or "").strip().lower(): n for n in reader.fieldnames or []}
            qcol = fields.get("question")
            scol = fields.get("expected_source") or fields.get("source")
            if not qcol or not scol:
                raise ConfigError(f"{path}: needs columns 'question' and 'expected_source'")
            for r in reader:
                if (r.get(qcol) or "").strip():
                    rows.append((r[qcol].strip(), (r.get(scol) or "").strip()))
    queries = [
        EvalQuery(str(i), q, {s.strip(): 1 for s in src.split("|") if s.strip()})
        for i, (q, src) in enumerate(rows, start=1)
    ]
    return EvalSet(path.stem, "pairs", queries, None, _file_digest(path))


# ----- metrics -----------------------------------------------------------------------------------
def ndcg_at(ranked: Sequence[str], relevant: dict[str, int], k: int = 10) -> float:
    """nDCG@k with linear gains (as BEIR's pytrec_eval): sum rel/log2(rank+1), normalized."""
    dcg = sum(relevant.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at(ranked: Sequence[str], relevant: dict[str, int], k: int) -> float:
    """Share of the relevant documents found in the first ``k``."""
    if not relevant:
        return 0.0
    return len(set(ranked[:k]) & set(relevant)) / len(relevant)


def mrr_at(ranked: Sequence[str], relevant: dict[str, int], k: int = 10) -> float:
    """1 / rank of the first relevant document within the first ``k`` (0 if none)."""
    for i, d in enumerate(ranked[:k]):
        if relevant.get(d, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation; 0 for no values."""
    if not values:
        return 0.0
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def timing_figures(records: Sequence[dict[str, Any]]) -> dict[str, float]:
    """First-token and total time p50/p95 of answer-eval records (their ``timings``)."""
    ttft = [r["timings"]["first_token_s"] for r in records if "first_token_s" in r["timings"]]
    total = [r["timings"]["total_s"] for r in records if "total_s" in r["timings"]]
    return {"ttft_p50_s": percentile(ttft, 50), "ttft_p95_s": percentile(ttft, 95),
            "total_p50_s": percentile(total, 50), "total_p95_s": percentile(total, 95)}


def score_run(
    runs: Sequence[tuple[Sequence[str], dict[str, int]]], latencies_ms: Sequence[float] = ()
) -> dict[str, float]:
    """Mean metrics over (ranked document ids, relevant) pairs, plus latency percentiles."""
    n = len(runs)
    out: dict[str, float] = {"queries": float(n)}
    if n:
        out["ndcg@10"] = statistics.fmean(ndcg_at(r, rel, 10) for r, rel in runs)
        for k in KS:
            out[f"recall@{k}"] = statistics.fmean(recall_at(r, rel, k) for r, rel in runs)
        out["mrr@10"] = statistics.fmean(mrr_at(r, rel, 10) for r, rel in runs)
    out["latency_p50_ms"] = percentile(latencies_ms, 50)
    out["latency_p95_ms"] = percentile(latencies_ms, 95)
    return out


def rank_documents(sources: Iterable[Sequence[str]], depth: int = DEPTH) -> list[str]:
    """Collapse ranked chunk hits (each: the document ids it belongs to) to ranked documents."""
    out: list[str] = []
    seen: set[str] = set()
    for ids in sources:
        for d in ids:
            if d not in seen:
                seen.add(d)
                out.append(d)
        if len(out) >= depth:
            break
    return out[:depth]


# ----- corpora as folders ------------------------------------------------------------------------
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def doc_filename(doc_id: str) -> str:
    """A safe, reversible-enough file name for a document id (collisions get a hash suffix)."""
    safe = _UNSAFE.sub("_", doc_id)[:80] or "doc"
    if safe != doc_id:
        safe += "-" + hashlib.sha1(doc_id.encode()).hexdigest()[:8]
    return safe + ".txt"


def doc_text(doc: EvalDoc) -> str:
    """The file text of a document: its title as a first paragraph, then its text."""
    return f"{doc.title}\n\n{doc.text}" if doc.title and doc.text else (doc.text or doc.title)


def write_corpus(docs: Sequence[EvalDoc], folder: Path, with_titles: bool = True) -> dict[str, str]:
    """Write each document as a text file (only when missing or different); path -> doc id."""
    folder.mkdir(parents=True, exist_ok=True)
    mapping: dict[str, str] = {}
    for d in docs:
        name = doc_filename(d.id)
        if name in mapping:
            raise ConfigError(f"two documents map to the file name {name}")
        mapping[name] = d.id
        text = doc_text(d) if with_titles else d.text
        if not text.strip():
            continue  # an empty document cannot be retrieved; it stays relevant-but-missing
        f = folder / name
        data = text.encode("utf-8")
        if not f.is_file() or f.read_bytes() != data:
            tmp = f.with_name("." + name + ".tmp")  # dot files are skipped by the walk
            tmp.write_bytes(data)
            tmp.replace(f)
    for f in folder.glob("*.txt"):
        if f.name not in mapping:
            f.unlink()
    return mapping


# ----- the runner --------------------------------------------------------------------------------
@dataclass
class EvalReport:
    """Figures of one evaluation run."""

    dataset: str
    split: str
    mode: str
    index: str
    metrics: dict[str, float]
    settings: dict[str, Any] = field(default_factory=dict)
    build_s: float = 0.0
    skipped: int = 0  # questions whose relevant documents are not in the index

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "dataset": self.dataset,
            "split": self.split,
            "mode": self.mode,
            "index": self.index,
            "metrics": {k: round(v, 4) for k, v in self.metrics.items()},
            "settings": self.settings,
            "build_s": round(self.build_s, 1),
            "skipped": self.skipped,
        }


def index_name_for(ds: EvalSet, embedder: str, recipe: str, with_titles: bool) -> str:
    """A stable index name for a dataset + embedder + chunking recipe."""
    key = hashlib.sha256(
        f"{ds.kind}|{ds.fingerprint}|{embedder}|{recipe}|titles={with_titles}".encode()
    ).hexdigest()[:10]
    slug = re.sub(r"[^a-z0-9]+", "-", ds.name.lower()).strip("-")[:40] or "dataset"
    return f"eval-{slug}-{key}"


Progress = Callable[[str, int, int], None]


def prepare_index(
    settings: Any, ds: EvalSet, embedder: Any = None, index: str | None = None,
    with_titles: bool = True, progress: Progress | None = None,
) -> tuple[Any, Callable[[str], str], float]:
    """The Pipeline over ``ds``'s index (built or brought up to date), path -> doc id, seconds.

    A question -> source set (no corpus) is measured on the existing index ``index``.
    """
    from .pipeline import Pipeline

    if ds.docs is None:
        if not index:
            raise ConfigError(
                f"{ds.name} lists questions and expected sources only: name the index that "
                "holds those documents with --index"
            )
        pipe = Pipeline(settings, index, embedder=embedder)
        pipe.store.meta()  # raises IndexNotFound with the command to build it
        return pipe, (lambda path: path), 0.0
    probe = Pipeline(settings, "default", embedder=embedder)
    if index:
        name, pipe = index, Pipeline(settings, index, embedder=embedder)
    else:
        fresh = probe.embedder_for_new_index()
        name = index_name_for(ds, fresh.name, probe.recipe(), with_titles)
        pipe = Pipeline(settings, name, embedder=fresh)
    pipe.store.ann_threshold = settings.retrieval.ann_threshold
    folder = settings.paths.indexes / ".eval-corpora" / name
    t0 = time.monotonic()
    mapping = write_corpus(ds.docs, folder, with_titles)
    pipe.sync(folder, command="eval", progress=progress)
    return pipe, (lambda path: mapping.get(path, path)), time.monotonic() - t0


def evaluate(
    pipe: Any,
    ds: EvalSet,
    doc_of: Callable[[str], str],
    mode: str | None = None,
    limit: int | None = None,
    progress: Progress | None = None,
) -> EvalReport:
    """Run every question of ``ds`` through ``pipe.search`` and score the document rankings.

    Latency is measured per question around ``pipe.search`` (query embedding,
    dense and keyword search, fusion, loading the hits), after one warm-up query.
    """
    queries = ds.queries[:limit] if limit else ds.queries
    retrieval = pipe.settings.retrieval
    mode = mode or retrieval.mode
    depth_chunks = max(3 * DEPTH, 60)  # chunks fetched so that DEPTH documents remain
    skipped = 0
    if ds.kind == "pairs":
        known = {r.path for r in pipe.store.files()}
        skipped = sum(1 for q in queries if not any(s in known for s in q.relevant))
    pipe.search("warm up", k=1, mode=mode)  # load the model and the index before timing
    runs: list[tuple[list[str], dict[str, int]]] = []
    latencies: list[float] = []
    for n, q in enumerate(queries, start=1):
        t0 = time.perf_counter()
        hits = pipe.search(q.text, k=depth_chunks, mode=mode, shape=False)
        latencies.append((time.perf_counter() - t0) * 1000)
        ranked = rank_documents([doc_of(h.source), *(doc_of(p) for p in h.also_in)] for h in hits)
        runs.append((ranked, q.relevant))
        if progress:
            progress("queries", n, len(queries))
    settings = {
        "embedder": pipe.embedder.name,
        "chunking": f"size={pipe.settings.chunking.size},overlap={pipe.settings.chunking.overlap}",
        "chunks": pipe.store.count_chunks(),
    }
    if mode == "hybrid":
        settings["fusion"] = retrieval.fusion
        settings["keyword_weight" if retrieval.fusion == "convex" else "rrf_k"] = (
            retrieval.keyword_weight if retrieval.fusion == "convex" else retrieval.rrf_k
        )
    if mode != "bm25":
        settings["candidates"] = retrieval.candidates
    return EvalReport(
        ds.name, "", mode, pipe.index_name, score_run(runs, latencies), settings, 0.0, skipped
    )


def run_retrieval_eval(
    settings: Any,
    dataset: Path,
    split: str = "test",
    modes: Sequence[str | None] = (None,),
    limit: int | None = None,
    index: str | None = None,
    embedder: Any = None,
    progress: Progress | None = None,
) -> list[EvalReport]:
    """Load ``dataset``, build or reuse its index, and measure each of ``modes`` on it."""
    ds = load_dataset(Path(dataset), split)
    pipe, doc_of, build_s = prepare_index(settings, ds, embedder, index, progress=progress)
    reports = []
    for mode in modes:
        r = evaluate(pipe, ds, doc_of, mode, limit, progress)
        r.split = split if ds.kind == "beir" else ""
        r.build_s = build_s
        reports.append(r)
    return reports


def format_table(reports: Sequence[EvalReport]) -> str:
    """A plain-text table of one or more reports."""
    cols = ["ndcg@10", "recall@1", "recall@5", "recall@10", "recall@20", "mrr@10",
            "latency_p50_ms", "latency_p95_ms"]
    heads = ["dataset", "mode", "queries", "nDCG@10", "R@1", "R@5", "R@10", "R@20", "MRR@10",
             "p50 ms", "p95 ms"]
    rows = []
    for r in reports:
        m = r.metrics
        rows.append(
            [r.dataset, r.mode, str(int(m.get("queries", 0)))]
            + [f"{m.get(c, 0.0):.3f}" if "latency" not in c else f"{m.get(c, 0.0):.1f}"
               for c in cols]
        )
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(heads)]

    def line(cells: Sequence[str]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in pairs)

    return "\n".join([line(heads), *(line(r) for r in rows)])
