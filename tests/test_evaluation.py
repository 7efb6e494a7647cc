"""Retrieval evaluation: metrics against hand-computed cases, the three dataset formats,
and end-to-end `ragpipe eval retrieval` runs on small slices (real MiniLM)."""

from __future__ import annotations

import json
import math

import pytest
from conftest import SHARED_DATA

from ragpipe.errors import ConfigError
from ragpipe.evaluation import (
    doc_filename,
    load_dataset,
    mrr_at,
    ndcg_at,
    percentile,
    rank_documents,
    recall_at,
    score_run,
    write_corpus,
)


# ----- metrics -----------------------------------------------------------------------------------
def test_ndcg_binary_and_graded():
    assert ndcg_at(["a", "b", "c"], {"a": 1}) == pytest.approx(1.0)
    assert ndcg_at(["x", "b", "c"], {"b": 1}) == pytest.approx(1 / math.log2(3))  # 0.6309
    # graded: gains 1 at rank 1 and 2 at rank 3 -> DCG 1 + 2/2 = 2; ideal 2 + 1/log2(3)
    assert ndcg_at(["c", "x", "a"], {"a": 2, "c": 1}) == pytest.approx(2 / (2 + 1 / math.log2(3)))
    assert ndcg_at(["x"] * 10 + ["a"], {"a": 1}, k=10) == 0.0
    # two relevant, one found at rank 1: 1 / (1 + 1/log2(3))
    assert ndcg_at(["a", "x"], {"a": 1, "b": 1}) == pytest.approx(1 / (1 + 1 / math.log2(3)))


def test_recall_and_mrr():
    rel = {"a": 1, "b": 1}
    ranked = ["a", "x", "b"]
    assert [recall_at(ranked, rel, k) for k in (1, 2, 3)] == [0.5, 0.5, 1.0]
    assert mrr_at(["x", "y", "b"], rel) == pytest.approx(1 / 3)
    assert mrr_at(["x"] * 10 + ["a"], rel, k=10) == 0.0
    assert recall_at([], rel, 5) == 0.0


def test_percentile_and_score_run():
    assert percentile([4, 1, 3, 2], 50) == pytest.approx(2.5)
    assert percentile([1, 2, 3, 4], 95) == pytest.approx(3.85)
    assert percentile([], 50) == 0.0
    m = score_run([(["a"], {"a": 1}), (["x", "b"], {"b": 1})], [10.0, 30.0])
    assert m["queries"] == 2
    assert m["recall@1"] == pytest.approx(0.5) and m["recall@5"] == pytest.approx(1.0)
    assert m["mrr@10"] == pytest.approx(0.75)
    assert m["ndcg@10"] == pytest.approx((1 + 1 / math.log2(3)) / 2)
    assert m["latency_p50_ms"] == pytest.approx(20.0)


def test_rank_documents_keeps_each_documents_best_chunk():
    assert rank_documents([["d1"], ["d2"], ["d1"], ["d3", "d2"], ["d4"]], depth=3) == [
        "d1", "d2", "d3"]


# ----- dataset formats ---------------------------------------------------------------------------
def write_beir(folder, docs, queries, qrels, split="test"):
    (folder / "qrels").mkdir(parents=True)
    with open(folder / "corpus.jsonl", "w") as f:
        for i, (title, text) in docs.items():
            f.write(json.dumps({"_id": i, "title": title, "text": text}) + "\n")
    with open(folder / "queries.jsonl", "w") as f:
        for i, text in queries.items():
            f.write(json.dumps({"_id": i, "text": text}) + "\n")
    with open(folder / "qrels" / f"{split}.tsv", "w") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for q, d, s in qrels:
            f.write(f"{q}\t{d}\t{s}\n")


def test_load_beir(tmp_path):
    write_beir(tmp_path, {"d1": ("T1", "one"), "d/2": ("", "two")},
               {"q1": "first?", "q2": "second?", "q3": "unjudged?"},
               [("q1", "d1", 1), ("q1", "d/2", 2), ("q2", "d1", 0)])
    ds = load_dataset(tmp_path, "test")
    assert ds.kind == "beir" and len(ds.docs) == 2
    assert [(q.id, q.relevant) for q in ds.queries] == [("q1", {"d1": 1, "d/2": 2})]
    with pytest.raises(ConfigError, match="splits here: test"):
        load_dataset(tmp_path, "train")


def squad_json(path, v2=False):
    qa = [{"id": "q1", "question": "Who?", "answers": [{"text": "Ann", "answer_start": 0}]},
          {"id": "q2", "question": "Why?", "answers": [], "is_impossible": True}]
    data = {"version": "2.0" if v2 else "1.1", "data": [
        {"title": "A", "paragraphs": [{"context": "Ann wrote it.", "qas": qa},
                                      {"context": "Bob read it.", "qas": [
                                          {"id": "q3", "question": "Who read?",
                                           "answers": [{"text": "Bob", "answer_start": 0}]}]}]}]}
    path.write_text(json.dumps(data))
    return path


def test_load_squad_skips_unanswerable(tmp_path):
    ds = load_dataset(squad_json(tmp_path / "s.json", v2=True))
    assert ds.kind == "squad" and [d.id for d in ds.docs] == ["000-000", "000-001"]
    assert [(q.id, q.relevant) for q in ds.queries] == [("q1", {"000-000": 1}),
                                                       ("q3", {"000-001": 1})]


def test_load_pairs_jsonl_and_csv(tmp_path):
    j = tmp_path / "set.jsonl"
    j.write_text('{"question": "Q1?", "source": "a.pdf"}\n'
                 '{"question": "Q2?", "source": ["b.md", "c.txt"]}\n')
    ds = load_dataset(j)
    assert ds.kind == "pairs" and ds.docs is None
    assert [q.relevant for q in ds.queries] == [{"a.pdf": 1}, {"b.md": 1, "c.txt": 1}]
    c = tmp_path / "set.csv"
    c.write_text("question,expected_source\nQ1?,a.pdf\n\"Q2, really?\",b.md|c.txt\n")
    assert [q.text for q in load_dataset(c).queries] == ["Q1?", "Q2, really?"]
    bad = tmp_path / "bad.csv"
    bad.write_text("q,src\nx,y\n")
    with pytest.raises(ConfigError, match="expected_source"):
        load_dataset(bad)
    with pytest.raises(ConfigError):
        load_dataset(tmp_path / "nothing.json")


def test_write_corpus_is_idempotent_and_removes_stale_files(tmp_path):
    from ragpipe.evaluation import EvalDoc

    docs = [EvalDoc("a", "alpha", "Title"), EvalDoc("x/y", "why"), EvalDoc("e", "")]
    mapping = write_corpus(docs, tmp_path)
    assert mapping[doc_filename("x/y")] == "x/y" and "/" not in doc_filename("x/y")
    assert (tmp_path / "a.txt").read_text() == "Title\n\nalpha"
    assert not (tmp_path / "e.txt").exists()  # empty: nothing to index
    mtime = (tmp_path / "a.txt").stat().st_mtime_ns
    (tmp_path / "old.txt").write_text("stale")
    write_corpus(docs, tmp_path)
    assert (tmp_path / "a.txt").stat().st_mtime_ns == mtime  # unchanged: not rewritten
    assert not (tmp_path / "old.txt").exists()


# ----- end to end: `ragpipe eval retrieval` ------------------------------------------------------
TOPICS = {
    "volcano": ("Volcanoes", "Magma rises through the crust and erupts as lava from a volcano."),
    "bees": ("Honey bees", "Worker bees collect nectar and pollen to make honey in the hive."),
    "tides": ("Ocean tides", "The moon's gravity pulls the oceans and causes high and low tides."),
    "chess": ("Chess", "In chess each player starts with sixteen pieces including a king."),
    "bread": ("Baking", "Yeast ferments the dough so the bread rises before it is baked."),
    "rust": ("Corrosion", "Iron reacts with oxygen and water and slowly turns into rust."),
}
QUESTIONS = {
    "volcano": "What comes out of a volcano when it erupts?",
    "bees": "How do bees make honey?",
    "tides": "What causes the tides?",
    "chess": "How many pieces does a chess player start with?",
    "bread": "Why does bread dough rise?",
    "rust": "How does iron turn into rust?",
}


@pytest.fixture
def eval_env(tmp_path, monkeypatch):
    monkeypatch.setenv("RAGPIPE_PATHS_INDEXES", str(tmp_path / "indexes"))
    monkeypatch.delenv("RAGPIPE_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_eval(args, capsys):
    from ragpipe.cli import main

    rc = main(["eval", "retrieval", *args])
    out = capsys.readouterr()
    assert rc == 0, out.err
    return out.out


@pytest.mark.e2e
def test_eval_beir_and_squad_end_to_end(eval_env, capsys):
    beir = eval_env / "beir"
    write_beir(beir, TOPICS, {k: v for k, v in QUESTIONS.items()},
               [(k, k, 1) for k in QUESTIONS], split="dev")
    out_json = eval_env / "beir.json"
    text = run_eval(["--dataset", str(beir), "--split", "dev", "--mode", "all",
                     "--json", str(out_json)], capsys)
    assert "nDCG@10" in text and "hybrid" in text
    reports = json.loads(out_json.read_text())
    assert [r["mode"] for r in reports] == ["dense", "bm25", "hybrid"]
    for r in reports:
        m = r["metrics"]
        assert set(m) >= {"ndcg@10", "recall@1", "recall@5", "recall@10", "recall@20",
                          "mrr@10", "latency_p50_ms", "latency_p95_ms"}
        assert m["queries"] == 6
    hybrid = reports[2]["metrics"]
    assert hybrid["recall@1"] >= 5 / 6 and hybrid["ndcg@10"] > 0.9
    # a second run reuses the index: nothing is embedded again
    index = reports[0]["index"]
    gens = sorted((eval_env / "indexes" / index).glob("vectors-*.faiss"))
    from ragpipe.evaluation import run_retrieval_eval
    from ragpipe.settings import load_settings

    # (the settings' embedder, as the command's: the index is named after it)
    (again,) = run_retrieval_eval(load_settings(), beir, "dev", ["bm25"])
    assert again.index == index and again.metrics["ndcg@10"] == pytest.approx(
        reports[1]["metrics"]["ndcg@10"], abs=1e-4)
    assert sorted((eval_env / "indexes" / index).glob("vectors-*.faiss")) == gens

    squad = eval_env / "squad.json"
    data = {"version": "1.1", "data": [{"title": k, "paragraphs": [{"context": v[1], "qas": [
        {"id": k, "question": QUESTIONS[k], "answers": [{"text": "x", "answer_start": 0}]}]}]}
        for k, v in TOPICS.items()]}
    squad.write_text(json.dumps(data))
    text = run_eval(["--dataset", str(squad), "--json", "-"], capsys)
    (report,) = json.loads(text)
    assert report["mode"] == "hybrid" and report["metrics"]["recall@5"] == 1.0


@pytest.mark.e2e
def test_eval_of_a_users_question_source_pairs(eval_env, capsys, embedder):
    from ragpipe.cli import main

    docs = eval_env / "docs"
    (docs / "sub").mkdir(parents=True)
    for k, (_, text) in TOPICS.items():
        (docs / ("sub" if k in ("bees", "rust") else "") / f"{k}.txt").write_text(text)
    from ragpipe.pipeline import Pipeline
    from ragpipe.settings import load_settings

    assert not Pipeline(load_settings(), "mine", embedder=embedder).ingest(docs).failed
    pairs = eval_env / "pairs.csv"
    pairs.write_text("question,expected_source\n" + "".join(
        f"{QUESTIONS[k]},{'sub/' if k in ('bees', 'rust') else ''}{k}.txt\n" for k in TOPICS)
        + "Where is the missing file?,gone.txt\n")
    capsys.readouterr()
    text = run_eval(["--dataset", str(pairs), "--index", "mine", "--json", "-"], capsys)
    (report,) = json.loads(text)
    assert report["index"] == "mine" and report["skipped"] == 1
    assert report["metrics"]["queries"] == 7
    assert report["metrics"]["recall@5"] == pytest.approx(6 / 7, abs=1e-3)
    assert main(["eval", "retrieval", "--dataset", str(pairs)]) == 2  # needs --index


def slice_of_shared(eval_env):
    """A small BEIR slice of SciFact and one SQuAD article, written under eval_env."""
    sf, sq = SHARED_DATA / "scifact", SHARED_DATA / "squad" / "dev-v1.1-half-a.json"
    if not (sf.is_dir() and sq.is_file()):
        pytest.skip("shared evaluation data is not present")
    rel = [ln.split("\t") for ln in (sf / "qrels" / "train.tsv").read_text().splitlines()[1:]]
    rel = rel[:6]
    want = {d for _, d, _ in rel}
    docs = [json.loads(ln) for ln in (sf / "corpus.jsonl").open()]
    keep = [d for d in docs if d["_id"] in want] + [d for d in docs if d["_id"] not in want][:10]
    qids = {q for q, _, _ in rel}
    queries = {q["_id"]: q["text"] for q in map(json.loads, (sf / "queries.jsonl").open())
               if q["_id"] in qids}
    beir = eval_env / "scifact-slice"
    write_beir(beir, {d["_id"]: (d["title"], d["text"]) for d in keep}, queries,
               [(q, d, s.strip()) for q, d, s in rel], split="train")
    squad = json.loads(sq.read_text())
    squad["data"] = squad["data"][:1]
    squad["data"][0]["paragraphs"] = squad["data"][0]["paragraphs"][:5]
    sq_slice = eval_env / "squad-slice.json"
    sq_slice.write_text(json.dumps(squad))
    return beir, sq_slice


@pytest.mark.e2e
def test_eval_on_slices_of_the_shared_data(eval_env, embedder):
    from ragpipe.evaluation import run_retrieval_eval
    from ragpipe.settings import load_settings

    beir, squad = slice_of_shared(eval_env)
    settings = load_settings()
    (r,) = run_retrieval_eval(settings, beir, "train", embedder=embedder)
    assert r.metrics["queries"] >= 5 and r.metrics["ndcg@10"] > 0.6
    (r,) = run_retrieval_eval(settings, squad, limit=20, embedder=embedder)
    assert r.metrics["queries"] == 20 and r.metrics["recall@5"] > 0.8
