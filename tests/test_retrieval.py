"""Retrieval on small generated data: keyword index, fusion, filters, shaping, IVF recall."""

from __future__ import annotations

import hashlib
import zlib
from datetime import datetime
from types import SimpleNamespace

import numpy as np
import pytest

from ragpipe.datatypes import Chunk, Hit, Outcome
from ragpipe.errors import ConfigError
from ragpipe.filters import Filter, parse_where
from ragpipe.retrieval import (
    Retriever,
    collapse_duplicates,
    convex,
    keyword_query,
    query_terms,
    rrf,
)
from ragpipe.store import Store, ivf_nlist_for, keywords

DIM = 32
# A fake embedder with synonyms: words of one group land on the same dimension, so dense
# search finds "automobile" for "car" while keyword search does not.
GROUPS = [("car", "automobile", "vehicle"), ("holiday", "vacation", "leave"),
          ("salary", "pay", "wage"), ("laptop", "computer", "notebook")]


class FakeEmbedder:
    name = "fake:32"
    dim = DIM

    def _word_dim(self, w: str) -> int:
        for i, g in enumerate(GROUPS):
            if w in g:
                return i
        return len(GROUPS) + zlib.crc32(w.encode()) % (DIM - len(GROUPS))

    def embed(self, texts):
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in query_terms(t):
                out[i, self._word_dim(w)] += 1.0
            n = np.linalg.norm(out[i])
            out[i] = out[i] / n if n else out[i]
        return out

    def embed_query(self, text):
        return self.embed([text])[0]


def config(**kw):
    base = dict(mode="hybrid", fusion="convex", keyword_weight=0.4, rrf_k=60, candidates=50,
                dedup=0.8, neighbours=0, min_score=0.0, keyword_max_df=0.2)
    base.update(kw)
    return SimpleNamespace(**base)


META = {"embedder": "fake:32", "dim": str(DIM), "chunking": "r1", "root": "/x"}
EMB = FakeEmbedder()


def put(w, path, texts, kind="txt", mtime_ns=1, sha=None):
    sha = sha or hashlib.sha256((path + "|".join(texts)).encode()).hexdigest()
    chunks, pos = [], 0
    for i, t in enumerate(texts):  # one page, chunks one space apart
        chunks.append(Chunk(t, None, pos, pos + len(t), i))
        pos += len(t) + 1
    w.put_content(sha, kind, 1, "r1", EMB.name, chunks, EMB.embed(texts))
    w.set_file(path, sha, 10, mtime_ns, Outcome.OK, kind=kind, pages=1, chunks=len(texts))
    return sha


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "idx")
    with s.writer(META) as w:
        put(w, "fleet/cars.txt", ["The company car policy covers fuel and insurance."])
        put(w, "fleet/autos.txt", ["Every automobile must be serviced each spring."])
        put(w, "hr/leave.md", ["Annual vacation is twenty five days.",
                               "Unused leave expires in March.",
                               "Sick days need a doctor's note after three days."], kind="md")
        put(w, "hr/pay.pdf", ["Salary is paid on the last working day."], kind="pdf")
        put(w, "it/laptops.txt", ["Laptops are replaced every four years."])
        w.publish()
    return s


def search(store, q, k=5, **kw):
    mode = kw.pop("mode", None)
    where = kw.pop("where", None)
    shape = kw.pop("shape", True)
    return Retriever(store, EMB, config(**kw)).search(q, k, where, mode, shape)


# ----- keyword queries ---------------------------------------------------------------------------
def test_query_terms_drop_stopwords_and_repeats():
    assert query_terms("What is the policy for the car, the CAR?") == ["policy", "car"]
    assert query_terms("the and of") == []
    # A question's own function words are not search terms.
    assert query_terms("Which form do I use to claim travel expenses?") == [
        "form", "use", "claim", "travel", "expenses"]
    # ... unless written in capitals, as names are
    assert query_terms("Who funds the WHO in the US? Is IT told?") == [
        "funds", "who", "us", "it", "told"]


def test_keyword_query_quotes_every_term():
    assert keyword_query('say "hi" NEAR(x) OR y*') == '"say" OR "hi" OR "near" OR "x" OR "y"'
    assert keyword_query("?!") == ""


def test_fts_operators_in_a_question_are_harmless(store):
    for q in ['"unbalanced', "AND OR NOT", "col:umn", "a*b(c)", "NEAR(car leave)"]:
        search(store, q, mode="bm25")  # must not raise


# ----- fusion ------------------------------------------------------------------------------------
def test_rrf_hand_computed():
    fused = rrf([[(1, 0.9), (2, 0.8)], [(2, 5.0), (3, 4.0)]], k=10)
    assert [c for c, _ in fused] == [2, 1, 3]
    assert fused[0][1] == pytest.approx(1 / 12 + 1 / 11)
    assert fused[1][1] == pytest.approx(1 / 11)
    assert fused[2][1] == pytest.approx(1 / 12)


def test_convex_hand_computed():
    dense = [(1, 0.9), (2, 0.5), (3, 0.1)]
    keyword = [(3, 10.0), (2, 6.0)]
    # dense normalized: 1 -> 1, 2 -> 0.5, 3 -> 0; keyword: 3 -> 1, 2 -> 0, 1 (missing) -> 0
    fused = dict(convex(dense, keyword, weight=0.5))
    assert fused[1] == pytest.approx(0.5)
    assert fused[2] == pytest.approx(0.25)
    assert fused[3] == pytest.approx(0.5)
    # a keyword-only candidate takes its cosine from cosine_of
    fused = dict(convex([(1, 0.9), (2, 0.1)], [(4, 3.0), (2, 1.0)], 0.5, {4: 0.5}))
    assert fused[4] == pytest.approx(0.5 * 1 + 0.5 * 0.5)
    assert fused[1] == pytest.approx(0.5)
    # no keyword hits: the dense order is kept
    assert [c for c, _ in convex(dense, [], 0.5)] == [1, 2, 3]


def test_convex_takes_real_keyword_scores_of_dense_candidates():
    dense = [(1, 0.9), (2, 0.8), (3, 0.1)]
    keyword = [(3, 10.0)]  # the keyword top list holds only chunk 3
    # Guessed: 1 and 2 both get the list's lowest score, so the keyword side cannot tell
    # them apart and the dense order decides.
    assert [c for c, _ in convex(dense, keyword, 0.5)][:2] == [1, 2]
    # Real: chunk 2 matches the query (BM25 6.0), chunk 1 matches no term (0).
    fused = dict(convex(dense, keyword, 0.5, keyword_of={2: 6.0}))
    assert fused[2] == pytest.approx(0.5 * 0.6 + 0.5 * 0.875)
    assert fused[1] == pytest.approx(0.5 * 1.0)
    assert max(fused, key=fused.__getitem__) == 2


def test_keyword_candidates_come_from_own_text_and_scores_from_windows(store):
    match = keyword_query("expires")
    with store.snapshot() as conn:
        ids = [cid for (cid,) in conn.execute("SELECT id FROM chunks ORDER BY id")]
        text = dict(conn.execute("SELECT id, text FROM chunks"))
        found = [c for c, _ in keywords.keyword_candidates(conn, match, len(ids))]
        scores = keywords.keyword_scores(conn, match, ids)
        assert keywords.keyword_scores(conn, match, found[:1]) == {
            found[0]: scores[found[0]]}  # the same BM25 whatever else is asked for
        # a search scores the candidate and its neighbours, whose windows hold the word
        assert store.keyword_search(conn, match, 5) == scores
        assert store.keyword_search(conn, keyword_query("zebra"), 5, also=ids) == {}
    assert [text[c] for c in found] == ["Unused leave expires in March."]
    # its neighbours' windows hold the word too (at half weight: lower scores)
    assert len(scores) == 3 and max(scores, key=scores.__getitem__) == found[0]


def test_hybrid_finds_what_each_side_alone_misses(store):
    dense = [h.source for h in search(store, "automobile", mode="dense", k=2)]
    bm25 = [h.source for h in search(store, "automobile", mode="bm25", k=2)]
    assert "fleet/cars.txt" in dense  # synonym: only the dense side knows
    assert bm25 == ["fleet/autos.txt"]  # exact word: one keyword match
    hybrid = [h.source for h in search(store, "automobile insurance", k=2)]
    assert sorted(hybrid) == ["fleet/autos.txt", "fleet/cars.txt"]


def test_rrf_fusion_is_selectable(store):
    hits = search(store, "automobile spring", fusion="rrf", k=2)
    assert hits[0].source == "fleet/autos.txt"
    with pytest.raises(ConfigError):
        search(store, "x", fusion="borda")
    with pytest.raises(ConfigError):
        search(store, "x", mode="sparse")


# ----- the keyword index follows every change ----------------------------------------------------
def test_keyword_index_follows_adds_changes_deletes_and_rollbacks(store):
    assert search(store, "quarterly bonus", mode="bm25") == []
    with store.writer(META) as w:
        put(w, "hr/bonus.txt", ["A quarterly bonus is paid in April."])
        w.publish()
    assert [h.source for h in search(store, "quarterly bonus", mode="bm25")] == ["hr/bonus.txt"]
    with store.writer(META) as w:  # change: same path, new content
        put(w, "hr/bonus.txt", ["The yearly bonus is paid in December."])
        w.collect()
        w.publish()
    assert search(store, "quarterly", mode="bm25") == []
    assert [h.source for h in search(store, "yearly", mode="bm25")] == ["hr/bonus.txt"]
    with store.writer(META) as w:  # delete
        w.remove_file("hr/bonus.txt")
        w.collect()
        w.publish()
    assert search(store, "yearly bonus", mode="bm25") == []
    with store.writer(META) as w:  # not published: a crash or rollback leaves no trace
        put(w, "hr/ghost.txt", ["phantom words here"])
    assert search(store, "phantom", mode="bm25") == []
    assert all(h.source != "hr/ghost.txt" for h in search(store, "phantom", k=20))


def test_a_chunk_is_ranked_with_the_words_around_it(tmp_path):
    s = Store(tmp_path / "win")
    with s.writer(META) as w:
        put(w, "travel.txt", ["Form TR-7 is the travel expense claim.",
                              "Hand it in within thirty days.",
                              "Late claims need the approval of the head of finance."])
        put(w, "resign.txt", ["Thirty days notice is needed to resign."])
        for i, topic in enumerate(["laptops", "parking", "canteen", "printers", "badges",
                                   "lockers", "plants", "mail", "lights", "keys"]):
            put(w, f"other{i}.txt", [f"Questions about {topic} go to the office manager."])
        w.publish()
    # "TR-7" is in the first chunk only; the second, next to it, is found too, after it
    # (a chunk's own words weigh more than its neighbours'); the third is not next to it.
    hits = search(s, "TR-7", mode="bm25", k=5)
    assert [h.text.split()[0] for h in hits] == ["Form", "Hand"]
    # Windows stay inside their document.
    assert [h.source for h in search(s, "resign", mode="bm25", k=5)] == ["resign.txt"]


def scores_of(store, questions):
    with store.snapshot() as conn:
        ids = [cid for (cid,) in conn.execute("SELECT id FROM chunks")]
        return [keywords.keyword_scores(conn, keyword_query(q), ids) for q in questions]


def test_windows_kept_by_every_change_equal_windows_built_afresh(store):
    with store.writer(META) as w:
        put(w, "hr/leave.md", ["Annual vacation is thirty days.", "Unused leave expires.",
                               "Sick days need a note."], kind="md")  # changed content
        put(w, "hr/bonus.txt", ["A quarterly bonus is paid in April.", "Or in May."])
        w.remove_file("fleet/cars.txt")
        w.collect()
        w.publish()
    questions = ["vacation days", "leave expires", "bonus paid May", "automobile spring",
                 "laptops replaced", "sick note days"]
    kept = scores_of(store, questions)
    assert store.fsck() == []
    with store.writer(META) as w:
        assert keywords.rebuild_windows(w.conn) == store.count_chunks()
        w.publish()
    again = scores_of(store, questions)
    assert again == [pytest.approx(x, rel=1e-12) for x in kept]
    assert all(kept)  # every question matched something
    assert search(store, "company car policy fuel", mode="bm25") == []  # deleted file


def as_format_1(store, windows=False):
    """Make ``store`` look written by a ragpipe of index format 1 (before windows)."""
    with store.snapshot() as conn:
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'format_version'")
        if not windows:
            conn.execute("DROP TABLE chunk_windows_fts")
            conn.execute("DELETE FROM meta WHERE key = ?", (keywords.WINDOWS_KEY,))


def test_an_index_without_windows_is_searched_by_chunk_then_windowed(store):
    as_format_1(store)
    with store.snapshot() as conn:
        assert not keywords.windows_current(conn)
    assert [h.source for h in search(store, "vacation", mode="bm25", k=1)] == ["hr/leave.md"]
    assert store.fsck() == []  # nothing wrong: it has no windows yet
    with store.writer(META) as w:  # the next writer windows it and marks the new format
        w.publish()
    with store.snapshot() as conn:
        assert keywords.windows_current(conn)
    assert store.meta()["format_version"] == "2"
    assert [h.source for h in search(store, "vacation", mode="bm25", k=1)] == ["hr/leave.md"]
    assert store.fsck() == []


def test_windows_left_stale_by_a_format_1_writer_are_found_and_rebuilt(store):
    with store.snapshot() as conn:  # a chunk changed under its window, as a writer that
        conn.execute(  # knows nothing of windows would leave it
            "UPDATE chunks SET text = 'Laptops are returned after three years.' "
            "WHERE text LIKE 'Laptops%'")
        conn.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('rebuild')")
    problems = store.fsck()
    assert any("stale" in p or "term counts" in p for p in problems), problems
    as_format_1(store, windows=True)  # its windows are recorded as current ...
    with store.writer(META) as w:  # ... but a format-1 index is re-windowed all the same
        w.publish()
    assert store.fsck() == []
    assert [h.source for h in search(store, "returned", mode="bm25")] == ["it/laptops.txt"]


def test_chunks_whose_content_row_is_lost_keep_their_windows_through_repair(store):
    with store.snapshot() as conn:
        sha = conn.execute("SELECT sha256 FROM files WHERE path = 'it/laptops.txt'").fetchone()[0]
        conn.execute("DELETE FROM contents WHERE sha256 = ?", (sha,))
    assert store.fsck()
    with store.writer(META) as w:
        w.repair(lambda texts: EMB.embed(texts))
    assert store.fsck() == []
    with store.writer(META) as w:  # the next sync reads the file again
        put(w, "it/laptops.txt", ["Laptops are replaced every four years."])
        w.publish()
    assert store.fsck() == []
    assert [h.source for h in search(store, "laptops", mode="bm25")] == ["it/laptops.txt"]


def test_fsck_finds_a_missing_window_and_repair_restores_it(store):
    with store.snapshot() as conn:
        cid, text = conn.execute(
            "SELECT id, text FROM chunks WHERE text LIKE 'Laptops%'").fetchone()
        conn.execute("INSERT INTO chunk_windows_fts(chunk_windows_fts, rowid, text, context) "
                     "VALUES ('delete', ?, ?, '')", (cid, text))
    assert search(store, "laptops", mode="bm25") == []
    assert any("keyword windows: 1 missing, 0 without a chunk" in p for p in store.fsck())
    with store.writer(META) as w:
        w.repair(lambda texts: EMB.embed(texts))
    assert store.fsck() == []
    assert [h.source for h in search(store, "laptops", mode="bm25")] == ["it/laptops.txt"]


def test_writing_an_index_drops_the_old_neighbour_keyword_table(store):
    with store.snapshot() as conn:  # as made by a ragpipe with the neighbour-words index
        conn.execute("CREATE VIRTUAL TABLE chunk_context_fts USING fts5(text, near)")
        conn.execute("CREATE VIEW chunk_context AS SELECT id, text, '' AS near FROM chunks")
        conn.execute("CREATE TRIGGER chunks_context_ai AFTER INSERT ON chunks BEGIN "
                     "INSERT INTO chunk_context_fts(rowid, text, near) "
                     "SELECT id, text, near FROM chunk_context WHERE id = new.id; END")
        conn.execute("CREATE TRIGGER chunks_context_ad AFTER DELETE ON chunks BEGIN "
                     "DELETE FROM chunk_context_fts WHERE rowid = old.id; END")
    old = {"chunk_context_fts", "chunk_context", "chunks_context_ai", "chunks_context_ad"}
    assert search(store, "vacation", mode="bm25")  # reading an old index works as before
    with store.writer(META) as w:
        put(w, "hr/new.txt", ["Parental leave is sixteen weeks."])
        w.publish()
    with store.snapshot() as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert not names & old and "chunks_fts" in names
    assert [h.source for h in search(store, "parental", mode="bm25")] == ["hr/new.txt"]
    assert store.fsck() == []


# ----- filters inside the search -----------------------------------------------------------------
@pytest.fixture
def many(tmp_path):
    """30 one-chunk files in two folders, three kinds and three months."""
    s = Store(tmp_path / "many")
    months = [datetime(2024, m, 15).timestamp() * 1e9 for m in (1, 2, 3)]
    with s.writer(META) as w:
        for i in range(30):
            folder = "policies" if i % 3 == 0 else "other"
            kind = ("pdf", "md", "txt")[i % 3 if folder == "other" else 0]
            put(w, f"{folder}/doc{i:02d}.{kind}", [f"travel rules number {i} for staff"],
                kind=kind, mtime_ns=int(months[(i // 3) % 3]))
        w.publish()
    return s


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_filters_return_k_when_k_exist(many, mode):
    where = parse_where(["path=policies/"])
    hits = search(many, "travel rules", k=8, mode=mode, where=where)
    assert len(hits) == 8 and all(h.source.startswith("policies/") for h in hits)
    hits = search(many, "travel rules", k=50, mode=mode, where=where)
    assert len(hits) == 10  # all that exist
    md_other = search(many, "travel rules", k=50, mode=mode,
                      where=parse_where(["type=md", "path=other/"]))
    assert len(md_other) == 10
    assert all(h.source.startswith("other/") and h.source.endswith(".md") for h in md_other)


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_modified_date_filter(many, mode):
    feb = search(many, "travel rules", k=50, mode=mode,
                 where=parse_where(["modified>=2024-02-01", "modified<2024-03-01"]))
    expected = {f"doc{i:02d}" for i in range(30) if (i // 3) % 3 == 1}
    assert {h.source.split("/")[1].split(".")[0] for h in feb} == expected
    day = search(many, "travel rules", k=50, mode=mode, where=parse_where(["modified=2024-03-15"]))
    assert len(day) == 9
    none = search(many, "travel rules", k=5, mode=mode, where=parse_where(["path=nowhere/"]))
    assert none == []


def test_common_terms_are_left_out_of_the_keyword_query_of_large_indexes(many):
    with many.snapshot() as conn:
        common = many.common_terms(conn, ["travel", "rules", "number", "17", "zebra"], 0.2)
    assert common == {"travel", "rules", "number"}  # stemmed as FTS5 stems them ("rule")
    many.ann_threshold = 10  # 30 chunks: "large"
    hits = search(many, "travel rules 17", mode="bm25", k=3)
    assert [h.source for h in hits] == ["other/doc17.txt"]  # only "17" was asked
    assert len(search(many, "travel rules", mode="bm25", k=50)) == 30  # all common: all kept
    many.ann_threshold = 1000
    assert len(search(many, "travel rules 17", mode="bm25", k=50)) == 30


def test_parse_where_forms():
    f = parse_where(["path=a/", "path=b/", "type=.PDF", "modified>2024-01-31",
                     "modified<=2024-02-29"])
    assert f.paths == ("a/", "b/") and f.kinds == ("pdf",)
    assert f.modified_from == int(datetime(2024, 2, 1).timestamp() * 1e9)
    assert f.modified_to == int(datetime(2024, 3, 1).timestamp() * 1e9)
    assert parse_where([]) is None
    for bad in ["size=3", "path>=x", "modified>=yesterday", "type"]:
        with pytest.raises(ConfigError):
            parse_where([bad])
    assert Filter.of({"path": "hr/", "type": ["md"]}) == Filter(("hr/",), ("md",))
    with pytest.raises(ConfigError):
        Filter.of({"folder": "x"})


# ----- shaping -----------------------------------------------------------------------------------
def hit(cid, text, source, score=1.0):
    return Hit(cid, text, source, None, 0, len(text), score)


BOILER = ("This message and any attachments are intended only for the named recipient and "
          "may contain information that is privileged or exempt from disclosure; if you "
          "received it by mistake please tell the sender and delete it.")


def test_near_duplicates_collapse_into_the_better_hit():
    a = hit(1, "Passwords must have at least twelve characters and one digit.", "a.txt")
    b = hit(2, "Passwords must have at least twelve characters and one digit!", "b.txt", 0.9)
    c = hit(3, "Laptops are replaced every four years.", "c.txt", 0.8)
    out = collapse_duplicates([a, b, c], 0.9)
    assert [h.chunk_id for h in out] == [1, 3] and out[0].also_in == ("b.txt",)
    assert len(collapse_duplicates([a, b, c], 0.0)) == 3


def test_search_collapses_duplicates_and_still_returns_k(tmp_path):
    s = Store(tmp_path / "dups")
    with s.writer(META) as w:
        for i in range(4):  # the same boilerplate in four files, differing by one word
            put(w, f"f{i}.txt", [f"Confidential notice: {BOILER} Issued to staff {i} only."])
        put(w, "g.txt", ["Staff notice board rules."])
        put(w, "h.txt", ["Staff canteen opening hours."])
        w.publish()
    hits = search(s, "staff notice", k=3)
    assert len(hits) == 3
    assert sum("Confidential" in h.text for h in hits) == 1
    conf = next(h for h in hits if "Confidential" in h.text)
    assert len(conf.also_in) == 3
    raw = search(s, "staff notice", k=6, shape=False)
    assert sum("Confidential" in h.text for h in raw) == 4


def test_neighbours_are_added_in_document_order(store):
    hits = search(store, "expires March", k=1, neighbours=1, mode="bm25")
    assert [h.text.split()[0] for h in hits] == ["Annual", "Unused", "Sick"]
    assert len({h.score for h in hits}) == 1
    hits = search(store, "annual vacation", k=1, neighbours=1, mode="bm25")
    assert [h.text.split()[0] for h in hits] == ["Annual", "Unused"]  # first chunk: no left


def test_min_score_drops_weak_hits(store):
    assert search(store, "laptops replaced", k=5, mode="dense")[-1].score < 0.5
    hits = search(store, "laptops replaced", k=5, min_score=0.5)
    assert [h.source for h in hits] == ["it/laptops.txt"]


# ----- approximate index -------------------------------------------------------------------------
def clustered(n, dim, seed, centers=40):
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centers, dim)).astype(np.float32)
    x = c[rng.integers(0, centers, n)] + 0.6 * rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def put_vectors(w, vecs, start=0):
    for i, v in enumerate(vecs, start=start):
        sha = f"v{i:05d}"
        w.put_content(sha, "txt", 1, "r1", EMB.name, [Chunk(f"t{i}", None, 0, 2, 0)], v[None])
        w.set_file(f"{'even' if i % 2 == 0 else 'odd'}/{i:05d}.txt", sha, 1, 1, Outcome.OK,
                   kind="txt", chunks=1)


def test_ivf_index_past_the_threshold_keeps_recall_and_exact_deletes(tmp_path):
    import faiss

    vecs = clustered(4000, DIM, 1)
    queries = clustered(60, DIM, 2)
    ann = Store(tmp_path / "ann")
    ann.ann_threshold = 2000
    exact = Store(tmp_path / "exact")
    for s in (ann, exact):
        with s.writer(META) as w:
            put_vectors(w, vecs)
            w.publish()
    with ann.snapshot() as conn:
        index = ann._live_index(ann.current_generation(conn))
    ivf = faiss.extract_index_ivf(index)
    assert ivf.nlist == ivf_nlist_for(4000)
    assert ann.fsck() == []  # reads the ids of an IVF index too

    def top(s, q, k=10, allowed=None):
        with s.snapshot() as conn:
            return [c for c, _ in s.dense_pairs(conn, q, k, allowed)]

    recall = np.mean([len(set(top(ann, q)) & set(top(exact, q))) / 10 for q in queries])
    assert recall >= 0.95
    # exact deletes: every odd file goes; no odd id is ever returned again
    odd = [r.path for r in ann.files() if r.path.startswith("odd/")]
    with ann.writer(META) as w:
        for p in odd:
            w.remove_file(p)
        assert w.collect() == 2000
        w.publish()
    assert ann.stats()["vectors"] == 2000
    with ann.snapshot() as conn:
        live = {r[0] for r in conn.execute("SELECT id FROM chunks")}
    for q in queries[:20]:
        got = top(ann, q, 50)
        assert len(got) == 50 and set(got) <= live
    # a filter that leaves few ids still returns k (exact over the allowed lists)
    few = sorted(live)[:7]
    assert sorted(top(ann, queries[0], 10, few)) == few


def test_ivf_turns_flat_again_when_the_index_shrinks(tmp_path):
    import faiss

    s = Store(tmp_path / "shrink")
    s.ann_threshold = 1000
    with s.writer(META) as w:
        put_vectors(w, clustered(1200, DIM, 3))
        w.publish()
    with s.snapshot() as conn:
        assert faiss.extract_index_ivf(s._live_index(s.current_generation(conn))).nlist > 0
    with s.writer(META) as w:
        for r in s.files()[:900]:
            w.remove_file(r.path)
        w.collect()
        w.publish()
    with s.snapshot() as conn:
        index = s._live_index(s.current_generation(conn))
        assert isinstance(index, faiss.IndexIDMap2) and index.ntotal == 300
