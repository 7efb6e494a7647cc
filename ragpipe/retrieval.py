"""Question -> Hits: dense and keyword search, fusion, filters and result shaping.

Keyword search is SQLite FTS5 ranked by its bm25(), queried with the
question's terms as an OR query without stopwords (``STOPWORDS``: Lucene's
English list, as bm25s uses, and the function words of questions), each term
quoted so FTS5 syntax in a question is inert. It ranks each chunk by its
*window*, the chunk with its neighbours (store/keywords.py), kept in the
index's database by the writer in the same transaction as the chunks, so it
follows every sync (adds, changes, deletes) and is as crash-safe as they are.
Why not bm25s: on the same chunks FTS5 ranked at least as well (SciFact
nDCG@10 0.684 vs 0.676), and a second index file would need its own
per-generation publishing (README: Retrieval quality).

Fusion (``retrieval.fusion``): ``convex`` (default) unites the dense and keyword
candidates, min-max normalizes each score list and ranks by
``w * keyword + (1 - w) * dense`` (``keyword_weight``, 0.4, chosen on held-out
data). Every candidate is scored by both sides: one missing from the keyword
top list gets its real BM25 (one more FTS5 query restricted to those ids; 0
when it matches no term), one missing from the dense list its exact cosine from
its stored vector. Guessing instead (the list's lowest score) cost 0.005
nDCG@10 on SciFact. Convex fusion beat reciprocal rank fusion (``rrf``) by
0.015 (SciFact) and 0.036 (SQuAD) nDCG@10: scores carry more than ranks here.

Filters (filters.py) are applied inside both searches (an id selector in FAISS, an SQL
condition in FTS5), so a filtered query returns k hits when k exist. The same filter
carries document permissions (access.py), and a hit names only the files it lets
through. Keyword statistics are the whole index's: FTS5's BM25 weighs a term by its
document frequency over every chunk, readable or not (README: Security).

Shaping: near-duplicate chunks (word-trigram Jaccard >= ``dedup``) collapse
into the better one (its ``also_in`` names the other's file); ``neighbours``
adds the chunks next to each hit, in document order, for context;
``min_score`` drops hits whose dense cosine similarity (the keyword score in
``bm25`` mode) is below it.
"""

from __future__ import annotations

import dataclasses
import re
import sys
import threading
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from .datatypes import Hit
from .errors import ConfigError
from .filters import Filter
from .settings import Fusion, RetrievalMode

MODES: tuple[str, ...] = typing.get_args(RetrievalMode)
FUSIONS: tuple[str, ...] = typing.get_args(Fusion)

# Lucene's English stopwords (the list bm25s uses for "en") ...
LUCENE_STOPWORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their "
    "then there these they this to was will with".split()
)
# ... and the words that make a sentence a question (pronouns, wh-words, auxiliaries) and a
# few other function words. In a small folder their BM25 weight is far from zero: "Which
# form do I use to claim travel expenses?" ranked a Q&A page full of "do I" above the
# travel policy's "Claiming travel expenses" section. Dropping them gained SQuAD nDCG@10
# 0.002-0.009 and changed SciFact (claims, not questions) by <= 0.002 (README).
QUESTION_WORDS = frozenset(
    """i me my mine myself we us our ours ourselves you your yours yourself yourselves he him
    his himself she her hers herself its itself they them their theirs themselves what which
    who whom whose when where why how do does did doing done can could should would shall am
    were been being have has had having so than too very just also here there whether while
    any all each every some other others own same""".split()
)
STOPWORDS = LUCENE_STOPWORDS | QUESTION_WORDS
_OPERATORS = frozenset({"and", "or", "not"})
_WORD = re.compile(r"\w+", re.UNICODE)


class RetrievalConfig(Protocol):
    """The settings the retriever reads (settings.RetrievalSettings)."""

    mode: RetrievalMode
    fusion: Fusion
    keyword_weight: float
    keyword_max_df: float
    rrf_k: int
    candidates: int
    dedup: float
    neighbours: int
    min_score: float


# ----- keyword queries ---------------------------------------------------------------------------
def query_terms(question: str) -> list[str]:
    """Lower-cased word tokens of ``question`` without stopwords, first occurrence order.

    A stopword written in capitals is kept: "US", "IT", "WHO" and "NO" (nitric oxide)
    are names there, not function words; but not AND, OR, NOT, which people type as
    search operators. A question written all in capitals keeps them all, which
    costs little.
    """
    seen: dict[str, None] = {}
    for word in _WORD.findall(question):
        t = word.lower()
        name = len(word) > 1 and word.isupper() and t not in _OPERATORS
        if t in seen or (t in STOPWORDS and not name):
            continue
        seen[t] = None
    return list(seen)


def match_expression(terms: Sequence[str]) -> str:
    """An FTS5 MATCH expression: ``terms``, each quoted (FTS5 syntax in them is inert), ORed."""
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)


def keyword_query(question: str) -> str:
    """The FTS5 MATCH expression for a question: its terms, each quoted, joined by OR."""
    return match_expression(query_terms(question))


# ----- fusion ------------------------------------------------------------------------------------
def rrf(lists: Sequence[Sequence[tuple[int, float]]], k: int = 60,
        weights: Sequence[float] | None = None) -> list[tuple[int, float]]:
    """Reciprocal rank fusion: sum of w / (k + rank) over the lists, best first."""
    scores: dict[int, float] = {}
    for li, pairs in enumerate(lists):
        w = 1.0 if weights is None else weights[li]
        for rank, (cid, _) in enumerate(pairs, start=1):
            scores[cid] = scores.get(cid, 0.0) + w / (k + rank)
    return sorted(scores.items(), key=lambda x: (-x[1], x[0]))


def _minmax(values: np.ndarray) -> np.ndarray:
    lo, hi = float(values.min()), float(values.max())
    if hi - lo <= 1e-12:
        return np.ones_like(values) if hi > 0 else np.zeros_like(values)
    return (values - lo) / (hi - lo)


def convex(
    dense: Sequence[tuple[int, float]],
    keyword: Sequence[tuple[int, float]],
    weight: float,
    cosine_of: Mapping[int, float] | None = None,
    keyword_of: Mapping[int, float] | None = None,
) -> list[tuple[int, float]]:
    """Convex combination of min-max normalized scores over the union of candidates.

    ``weight`` is the keyword share. A candidate absent from the keyword list
    gets its score from ``keyword_of`` (0 when it is not there: it matches no
    query term), or, without ``keyword_of``, the list's lowest score; one absent
    from the dense list gets its cosine from ``cosine_of`` (else the dense list's
    lowest). Scores are in [0, 1].
    """
    if not keyword:
        weight = 0.0
    if not dense and not cosine_of:
        weight = 1.0
    order = list(dict.fromkeys([c for c, _ in dense] + [c for c, _ in keyword]))
    if not order:
        return []
    d = dict(dense)
    kw = dict(keyword)
    dense_floor = min(d.values()) if d else 0.0
    kw_floor = min(kw.values()) if kw else 0.0
    cos = np.array(
        [d.get(c, (cosine_of or {}).get(c, dense_floor)) for c in order], dtype=np.float64
    )
    if keyword_of is not None:
        bm = np.array([kw.get(c, keyword_of.get(c, 0.0)) for c in order], dtype=np.float64)
    else:
        bm = np.array([kw.get(c, kw_floor) for c in order], dtype=np.float64)
    fused = weight * _minmax(bm) + (1.0 - weight) * _minmax(cos)
    ranked = sorted(range(len(order)), key=lambda i: (-fused[i], order[i]))
    return [(order[i], float(fused[i])) for i in ranked]


# ----- shaping -----------------------------------------------------------------------------------
def _shingles(text: str) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    if len(words) < 3:
        return {tuple(words)}
    return {tuple(words[i : i + 3]) for i in range(len(words) - 2)}


def collapse_duplicates(hits: Sequence[Hit], threshold: float) -> list[Hit]:
    """Drop hits whose text is a near-duplicate (trigram Jaccard >= threshold) of a better one.

    The kept hit lists the dropped hit's files in ``also_in``. ``threshold`` <= 0 keeps all.
    """
    if threshold <= 0:
        return list(hits)
    kept: list[Hit] = []
    sigs: list[set[tuple[str, ...]]] = []
    for h in hits:
        sig = _shingles(h.text)
        for i, other in enumerate(sigs):
            union = len(sig | other)
            if union and len(sig & other) / union >= threshold:
                k = kept[i]
                extra = [p for p in (h.source, *h.also_in) if p != k.source and p not in k.also_in]
                if extra:
                    kept[i] = dataclasses.replace(k, also_in=k.also_in + tuple(extra))
                break
        else:
            kept.append(h)
            sigs.append(sig)
    return kept


_TORCH_THREADS = threading.Lock()


def embed_query(embedder: Any, question: str) -> np.ndarray:
    """The query vector, computed with one torch thread when torch is in use.

    One short text gains nothing from intra-op threads, and on a busy machine
    torch's OpenMP threads wait on each other: 2 threads on 2 shared cores took
    ~500 ms per query, 1 thread ~10 ms (benchmarks/bench_retrieval.py). The
    thread count is restored afterwards, so batch embedding keeps its threads.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return embedder.embed_query(question)
    with _TORCH_THREADS:
        n = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return embedder.embed_query(question)
        finally:
            torch.set_num_threads(n)


# ----- the retriever -----------------------------------------------------------------------------
class Retriever:
    """Searches one Store with one embedder, as configured by RetrievalSettings."""

    def __init__(self, store: Any, embedder: Any, config: RetrievalConfig) -> None:
        self.store = store
        self.embedder = embedder
        self.config = config

    def search(
        self,
        question: str,
        k: int,
        where: Filter | Mapping[str, Any] | None = None,
        mode: str | None = None,
        shape: bool = True,
    ) -> list[Hit]:
        """The ``k`` best chunks for ``question``; ``shape=False`` skips dedup/neighbours/floor."""
        cfg = self.config
        mode = mode or cfg.mode
        if mode not in MODES:
            raise ConfigError(f"retrieval mode {mode!r}: use one of {', '.join(MODES)}")
        flt = Filter.of(where)
        n = max(cfg.candidates, k)
        query = embed_query(self.embedder, question) if mode != "bm25" else None
        terms = query_terms(question) if mode != "dense" else []
        with self.store.snapshot() as conn:
            dense: list[tuple[int, float]] = []
            keyword: list[tuple[int, float]] = []
            cond = flt.sql() if flt is not None else None
            if query is not None:
                # the filter becomes an id selector inside FAISS
                allowed = self.store.chunk_ids_where(cond, conn) if cond is not None else None
                dense = self.store.dense_pairs(conn, query, n, allowed)
            bm25_of: dict[int, float] = {}
            if terms:  # the filter becomes an SQL condition inside the FTS5 query
                match = match_expression(self._prune(conn, terms))
                # Window BM25 of the keyword candidates, their neighbours and the dense
                # candidates (Store.keyword_search).
                bm25_of = self.store.keyword_search(conn, match, n, cond, [c for c, _ in dense])
                keyword = sorted(bm25_of.items(), key=lambda x: (-x[1], x[0]))[:n]
            cosine: dict[int, float] = dict(dense)
            if mode == "dense":
                ranked = dense
            elif mode == "bm25":
                ranked = keyword
            else:
                assert query is not None
                missing = [c for c, _ in keyword if c not in cosine]
                for cid, vec in self.store.vectors_for(conn, missing).items():
                    cosine[cid] = float(np.dot(vec, query))
                if cfg.fusion == "rrf":
                    ranked = rrf([dense, keyword], cfg.rrf_k)
                elif cfg.fusion == "convex":
                    # Each candidate is scored by both sides: its window's BM25 (above) and
                    # its cosine.
                    ranked = convex(dense, keyword, cfg.keyword_weight, cosine, bm25_of)
                else:
                    raise ConfigError(
                        f"retrieval.fusion {cfg.fusion!r}: use one of {', '.join(FUSIONS)}"
                    )
            # A hit names only the files that pass the filter (the same text may be in others).
            if not shape:
                return self.store.hits_in(conn, ranked[:k], cond)
            # Fetch a margin beyond k so that collapsing duplicates still leaves k.
            hits = self.store.hits_in(conn, ranked[: 2 * k + 8], cond)
            hits = collapse_duplicates(hits, cfg.dedup)[:k]
            if cfg.min_score > 0:
                floor_of = cosine if mode != "bm25" else dict(keyword)
                hits = [h for h in hits if floor_of.get(h.chunk_id, 0.0) >= cfg.min_score]
            if cfg.neighbours > 0 and hits:
                hits = self._with_neighbours(conn, hits, cfg.neighbours, cond)
            return hits

    def _prune(self, conn: Any, terms: list[str]) -> list[str]:
        """The keyword terms without very common ones, for large indexes.

        Past ``ann_threshold`` chunks, terms found in more than ``keyword_max_df`` of
        them are left out (unless that leaves none): FTS5 must score every row a term
        matches, and such terms weigh little in BM25.
        """
        max_df = getattr(self.config, "keyword_max_df", 1.0)
        gen = self.store.current_generation(conn)
        if max_df >= 1 or gen is None or gen.vectors < self.store.ann_threshold:
            return terms
        common = self.store.common_terms(conn, terms, max_df)
        return [t for t in terms if t not in common] or terms

    def _with_neighbours(self, conn: Any, hits: list[Hit], n: int,
                         cond: tuple[str, list] | None = None) -> list[Hit]:
        """Each hit with up to ``n`` adjacent chunks of its document around it (document order).

        A neighbour carries its hit's score; chunks already shown are not repeated.
        """
        near = self.store.neighbour_ids(conn, [h.chunk_id for h in hits], n)
        wanted = {oid for pairs in near.values() for _, oid in pairs}
        shown = {h.chunk_id for h in hits}
        extra = {h.chunk_id: h
                 for h in self.store.hits_in(conn, [(i, 0.0) for i in wanted], cond)}
        out: list[Hit] = []
        for h in hits:
            before = [o for off, o in near[h.chunk_id] if off < 0]
            after = [o for off, o in near[h.chunk_id] if off > 0]
            for oid in [*before, None, *after]:
                if oid is None:
                    out.append(h)
                elif oid not in shown and oid in extra:
                    shown.add(oid)
                    out.append(dataclasses.replace(extra[oid], score=h.score))
        return out
