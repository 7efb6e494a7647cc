"""The Pipeline: the one place where ragpipe's stages are wired together.

    folder --walk--> files --read--> Document --chunk--> [Chunk] --embed--> vectors --> Store
    question --embed--> query vector --search--> [Hit] --fit prompt--> model --> Answer

The CLI and the web UI both use only the Pipeline. Components are built lazily from
settings, so constructing one is cheap; sync lives in ``sync`` and the answer
stream in ``answer``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from .. import models
from ..chunking import Chunker, chunk_settings_key
from ..datatypes import Answer, Hit, SyncStats
from ..embedding import Embedder, SentenceTransformerEmbedder
from ..errors import InvalidArgument, RagpipeError
from ..filters import Filter
from ..followup import history_messages, standalone_query
from ..generation import Generator, LlamaCppGenerator
from ..grounding import content_words, question_coverage
from ..ingest import READER_VERSION
from ..prompts import FittedPrompt, fit_prompt
from ..retrieval import Retriever
from ..settings import Settings, load_settings
from ..store import Store
from .answer import AnswerStream
from .progress import Progress
from .sync import sync_folder


class Pipeline:
    """ragpipe's library API: ingest/sync, search, ask, stream. Cheap to construct."""

    # A long sync publishes a checkpoint generation this often, so a crash loses little
    # work; each checkpoint rewrites the FAISS file, hence not too often.
    checkpoint_files = 1000
    checkpoint_seconds = 60.0

    def __init__(
        self,
        settings: Settings | None = None,
        index: str = "default",
        embedder: Embedder | None = None,
        generator: Generator | None = None,
        store: Store | None = None,
    ) -> None:
        self.settings = settings or load_settings()
        self.settings.check()  # also settings built or changed in code, before any model loads
        self.index_name = index
        self.store = store or Store(self.settings.index_dir(index))
        self.store.ann_threshold = self.settings.retrieval.ann_threshold
        self._embedder = embedder
        self._generator = generator

    # ----- components (lazy) ----------------------------------------------------------------
    @property
    def embedder(self) -> Embedder:
        """The configured embedder (model loads on first use)."""
        if self._embedder is None:
            s = self.settings.embedder
            self._embedder = SentenceTransformerEmbedder(s.model, s.batch_size, s.max_tokens)
        return self._embedder

    @property
    def generator(self) -> Generator:
        """The configured answer model (loads on first use)."""
        if self._generator is None:
            s = self.settings.llm
            path = models.resolve_gguf(s.model, self.settings.paths.models)
            self._generator = LlamaCppGenerator(path, s.n_ctx, s.threads, s.temperature, s.seed)
        return self._generator

    def chunker(self) -> Chunker:
        """A chunker sized for the embedder's window."""
        s = self.settings.chunking
        e = self.embedder
        return Chunker(e.count_tokens, s.size, s.overlap, e.max_tokens)

    def recipe(self) -> str:
        """Identifies how text is extracted and chunked; a change means re-chunking.

        Built from settings only, so an unchanged folder syncs without loading any model.
        """
        s = self.settings.chunking
        window = self.settings.embedder.max_tokens or "model"
        return f"reader={READER_VERSION};" + chunk_settings_key(s.size, s.overlap, window)

    # ----- ingest / sync -------------------------------------------------------------------
    def sync(
        self,
        folder: Path,
        dry_run: bool = False,
        progress: Progress | None = None,
        command: str = "sync",
        allow_deletes: bool = False,
        rebase: bool = False,
    ) -> SyncStats:
        """Bring the index in line with ``folder``: add, update, rename and delete exactly.

        Stops before writing (errors.SyncRefused) when ``folder`` is not the index's
        folder, unless ``rebase`` re-points the index at it, or when it would delete too
        much of the index (ingest.max_delete_share), unless ``allow_deletes``.
        """
        return sync_folder(self, folder, dry_run, progress, command, allow_deletes, rebase)

    ingest = sync

    def fsck(
        self, repair: bool = False, notes: list[str] | None = None
    ) -> tuple[list[str], list[str]]:
        """Problems found in the index, and (with ``repair``) what was done about them.

        A damaged database is salvaged (store/salvage.py), then its folder is synced so
        that the files whose rows were lost are read again. ``notes`` collects remarks
        that are not problems (an index being written while it is checked).
        """
        problems = self.store.fsck(notes)
        if not repair:
            return problems, []
        with self.store.writer({}, command="fsck", salvage=True) as w:
            done = w.salvaged + w.repair(self.embedder.embed)
        if w.salvaged:
            done.append(self._reread())
        return problems, done

    def _reread(self) -> str:
        """Sync the index's folder after a salvage; says what happened or what to run."""
        meta = self.store.meta()
        root, name = meta.get("root", ""), self.index_name
        how = f"`ragpipe sync FOLDER --index {name}`"
        if meta.get("embedder") != self.embedder.name:
            return f"run {how} to read again the files whose rows were lost"
        if not root or not Path(root).is_dir():
            return (f"the folder {root or '(not recorded)'} is not there: run {how} to read "
                    "again the files whose rows were lost")
        try:
            st = self.sync(Path(root), command="fsck")
        except RagpipeError as exc:
            return f"could not sync {root} ({exc}): run {how} to read again the lost files"
        return (f"synced {root}: +{len(st.added)} added, ~{len(st.changed)} read again, "
                f"-{len(st.deleted)} deleted, {len(st.failed)} failed")

    # ----- search --------------------------------------------------------------------------
    def search(
        self,
        question: str,
        k: int | None = None,
        where: Filter | dict | None = None,
        mode: str | None = None,
        shape: bool = True,
    ) -> list[Hit]:
        """The ``k`` passages most relevant to ``question`` (see retrieval.py).

        ``where`` filters by path prefix, file type and modified date (a
        filters.Filter or a dict with path/type/modified_from/modified_to);
        ``mode`` is dense, bm25 or hybrid (default: retrieval.mode);
        ``shape=False`` returns the raw ranking (no dedup, neighbours or floor).
        """
        r = self.settings.retrieval
        _check_question(question)
        if k is None:
            k = r.top_k
        elif k < 1:
            raise InvalidArgument(f"k = {k}: ask for at least 1 passage")
        self.store.check_embedder(self.embedder.name)
        self.store.nprobe = r.nprobe
        return Retriever(self.store, self.embedder, r).search(question, k, where, mode, shape)

    # ----- answers -------------------------------------------------------------------------
    def prepare(
        self,
        question: str,
        history: Sequence[dict] = (),
        hits: Sequence[Hit] | None = None,
        query: str | None = None,
        where: Filter | dict | None = None,
    ) -> FittedPrompt:
        """Retrieve passages for ``query`` (default: the question) and fit them into the budget.

        ``where`` limits the passages to some files, as in ``search``.

        The budget is ``llm.n_ctx - llm.max_tokens``, counted with the model's tokenizer
        over system prompt, the latest ``answer.history_turns`` of ``history``, passages and
        question; passages that do not fit are dropped whole, lowest ranked first.
        """
        a = self.settings.answer
        _check_question(question)
        if hits is None:
            hits = self.search(query or question, k=a.passages or None, where=where)
        gen = self.generator
        budget = gen.n_ctx - self.settings.llm.max_tokens
        turns = history_messages(history, a.history_turns)
        return fit_prompt(question, hits, gen.count_prompt_tokens, budget, turns, a.style)

    def stream(
        self, question: str, history: Sequence[dict] = (), where: Filter | dict | None = None
    ) -> AnswerStream:
        """Start answering: iterate the returned stream for text, then read ``.answer``.

        ``history`` is the chat so far (``{"role", "content"}`` dicts, oldest first); a
        follow-up question is made standalone for the search (``answer.rewrite``).
        ``where`` limits the passages to some files (a folder, a type, chosen documents),
        as in ``search``.
        """
        t0 = time.monotonic()
        _check_question(question)
        a = self.settings.answer
        query = question
        if history:
            gen = self.generator if a.rewrite == "model" else None
            query = standalone_query(question, history, a.rewrite, gen)
        n = a.passages or self.settings.retrieval.top_k
        hits = self.search(query, k=max(n, self.settings.retrieval.top_k), where=where)
        passages, rest = tuple(hits[:n]), tuple(hits[n:])
        coverage = self.question_coverage(query, passages) if a.check and passages else None
        if coverage is not None and coverage < a.min_question_coverage:
            # Not relevant: answered "not found" without loading the model for the prompt.
            unasked = FittedPrompt([], passages, (), 0, 0)
            return AnswerStream(self, question, unasked, t0, query, rest, coverage)
        fitted = self.prepare(question, history, hits=passages, query=query)
        return AnswerStream(self, question, fitted, t0, query, rest, coverage)

    def question_coverage(self, question: str, passages: Sequence[Hit]) -> float:
        """The best passage's share of the question's words, weighted by their rarity here."""
        words = list(dict.fromkeys(content_words(question)))
        counts, n = self.store.term_counts(words)
        return question_coverage(words, passages, counts, n)

    def ask(
        self, question: str, history: Sequence[dict] = (), where: Filter | dict | None = None
    ) -> Answer:
        """Answer ``question`` in one call (no streaming)."""
        s = self.stream(question, history, where)
        for _ in s:
            pass
        return s.answer


def _check_question(question: str) -> None:
    """Refuse an empty or blank question: there is nothing to search for or to answer."""
    if not isinstance(question, str) or not question.strip():
        raise InvalidArgument("the question is empty: type the question to search for or answer")
