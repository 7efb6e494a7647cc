"""The Pipeline: the one place where ragpipe's stages are wired together.

    folder --walk--> files --read--> Document --chunk--> [Chunk] --embed--> vectors --> Store
    question --embed--> query vector --search--> [Hit] --fit prompt--> model --> Answer

The CLI and the web UI both use only the Pipeline. Components are built lazily from
settings, so constructing one is cheap; sync lives in ``sync`` and the answer
stream in ``answer``.

A Pipeline works for one ``viewer`` (access.py): its searches, answers, documents and
summaries hold only what that person may read under ``access.folders``, as read from the
settings at each call. The default is the single local user, an admin: the CLI and
scripts are the server operator's, who can read the index's files anyway; the web app
builds one per signed-in user.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..access import LOCAL_USER, Permissions, Viewer
from ..datatypes import Answer, FileReport, Hit, SyncStats
from ..errors import ConfigError, InvalidArgument, RagpipeError
from ..filters import Filter
from ..settings import Settings, load_settings
from ..store import Store

# Everything else loads where it is used: `ragpipe status` and `ragpipe search` start in a
# fraction of a second because they import no generator, answer, summary or torch code
# (tests/test_imports.py).
if TYPE_CHECKING:
    from ..chunking import Chunker
    from ..compose import Composition
    from ..embedding import Embedder
    from ..generation import Generator
    from ..prompts import FittedPrompt
    from ..summarize import DocumentSummary
    from ..summarize.rollup import RollupPart
    from . import summarize as batch
    from .answer import AnswerStream
    from .progress import Progress


class Pipeline:
    """ragpipe's library API: ingest/sync, search, ask, stream. Cheap to construct."""

    # A long sync publishes a checkpoint generation this often, so a crash loses little
    # work; each checkpoint rewrites the FAISS file, hence not too often.
    checkpoint_files = 1000
    checkpoint_seconds = 60.0
    # A sync embeds this many chunks at a time (0: 4 x embedder.batch_size, at least 64),
    # in a background thread while the next files are parsed (False: in line, in turn).
    embed_batch_chunks = 0
    overlap_embedding = True

    def __init__(
        self,
        settings: Settings | None = None,
        index: str = "default",
        embedder: Embedder | None = None,
        generator: Generator | None = None,
        store: Store | None = None,
        viewer: Viewer = LOCAL_USER,
    ) -> None:
        self.settings = settings or load_settings()
        self.settings.check()  # also settings built or changed in code, before any model loads
        self.viewer = viewer
        self.index_name = index
        self.store = store or Store(self.settings.index_dir(index))
        self.store.ann_threshold = self.settings.retrieval.ann_threshold
        self._embedder = embedder
        self._given_embedder = embedder
        self._generator = generator
        self._permissions: tuple[dict, Permissions] | None = None  # (mapping, its rules)

    # ----- components (lazy) ----------------------------------------------------------------
    @property
    def embedder(self) -> Embedder:
        """The configured embedder (model loads on first use)."""
        if self._embedder is None:
            recorded = self.store.meta().get("embedder") if self.store.exists() else None
            self._embedder = self._configured_embedder(recorded)
        return self._embedder

    def embedder_for_new_index(self) -> Embedder:
        """The embedder these settings give an index that does not exist yet.

        Evaluations name their index after it. It can differ from ``embedder``: with
        ``embedder.precision = "auto"`` an existing index keeps the precision it recorded.
        """
        if self._given_embedder is not None:  # one passed in code (tests, benchmarks)
            return self._given_embedder
        return self._configured_embedder(None)

    def _configured_embedder(self, recorded: str | None) -> Embedder:
        from ..embedding import SentenceTransformerEmbedder, resolve_precision

        s = self.settings.embedder
        precision = resolve_precision(s.precision, s.model, recorded)
        return SentenceTransformerEmbedder(s.model, s.batch_size, s.max_tokens, precision)

    def model_name(self) -> str:
        """The answer model's name as its generator reports it, without building it."""
        if self._generator is not None:
            return self._generator.name
        s = self.settings.llm
        if s.backend == "openai":
            return s.model
        from .. import models

        known = models.known(s.model)
        return known.filename if known is not None else Path(s.model).name

    @property
    def generator(self) -> Generator:
        """The configured answer model (loads on first use), if this index may use it.

        Raises PrivacyRefused when the model is a server this index's passages may not be
        sent to (privacy.py): checked on every use, before anything is sent.
        """
        if self._generator is None:
            self._generator = build_generator(self.settings)
        endpoint = self._generator.capabilities.endpoint
        if endpoint:
            from ..privacy import check_destination

            p = self.settings.privacy
            recorded = self.store.meta().get("local_only") if self.store.exists() else None
            # An index synced before the setting existed counts as local_only.
            local_only = p.local_only or recorded != "false"
            check_destination(endpoint, self.index_name, local_only, p.trusted_hosts)
        return self._generator

    def model_card(self, sha256: bool = True) -> dict:
        """What answers and embeds here, for `ragpipe models info` and the UI; nothing loads.

        The answer model's card (models.model_card), or what its server reports, and the
        embedder's (embedding.embedder_card).
        """
        from .. import models
        from ..embedding import embedder_card
        from ..generation.openai import OpenAIGenerator

        s = self.settings
        card: dict = {"backend": s.llm.backend, "n_ctx": s.llm.n_ctx,
                      "embedder": embedder_card(s.embedder.model)}
        if s.llm.backend == "openai":
            gen = build_generator(s)
            assert isinstance(gen, OpenAIGenerator)
            card["answer_model"] = {"model": s.llm.model, "server": gen.server_info()}
        else:
            card["answer_model"] = models.model_card(s.llm.model, s.paths.models, sha256)
        return card

    def chunker(self) -> Chunker:
        """A chunker sized for the embedder's window."""
        from ..chunking import Chunker

        s = self.settings.chunking
        e = self.embedder
        return Chunker(e.count_tokens, s.size, s.overlap, e.max_tokens)

    def recipe(self) -> str:
        """Identifies how text is extracted and chunked; a change means re-chunking.

        Built from settings only, so an unchanged folder syncs without loading any model.
        """
        from ..chunking import chunk_settings_key
        from ..ingest import READER_VERSION

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
        from .sync import sync_folder

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

    # ----- who may read what ---------------------------------------------------------------
    @property
    def permissions(self) -> Permissions:
        """The folder permissions as the settings say now (a changed mapping counts at once).

        Built again only when the mapping changed: answers and summaries test many paths.
        """
        folders = {k: tuple(v) for k, v in self.settings.access.folders.items()}
        if self._permissions is None or self._permissions[0] != folders:
            self._permissions = (folders, Permissions(folders))
        return self._permissions[1]

    def can_read(self, path: str) -> bool:
        """True when the viewer may read the document at ``path`` of this index."""
        return self.permissions.allows(self.viewer, path)

    def readable(self, where: Filter | dict | None = None) -> Filter | None:
        """``where`` narrowed to what the viewer may read (None: everything, unfiltered)."""
        flt = Filter.of(where)
        areas = self.permissions.areas(self.viewer)
        if areas is None:
            return flt
        return (flt or Filter()).restricted(areas)

    def files(self) -> list[FileReport]:
        """The recorded outcome of every file the viewer may read, by path."""
        rules, who = self.permissions, self.viewer
        return [r for r in self.store.files() if rules.allows(who, r.path)]

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
        Only documents the viewer may read are searched (``readable``), inside both the
        vector and the keyword search, so k of them come back when k exist.
        """
        r = self.settings.retrieval
        _check_question(question, self.settings.answer.max_question_chars)
        if k is None:
            k = r.top_k
        elif k < 1:
            raise InvalidArgument(f"k = {k}: ask for at least 1 passage")
        self.store.check_embedder(self.embedder.name)
        self.store.nprobe = r.nprobe
        from ..retrieval import Retriever

        return Retriever(self.store, self.embedder, r).search(
            question, k, self.readable(where), mode, shape)

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
        from ..followup import history_messages
        from ..prompts import fit_prompt

        a = self.settings.answer
        _check_question(question, self.settings.answer.max_question_chars)
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
        from ..compose import merge_adjacent
        from ..followup import standalone_query
        from ..prompts import FittedPrompt
        from .answer import AnswerStream

        t0 = time.monotonic()
        _check_question(question, self.settings.answer.max_question_chars)
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
        if a.style == "compose":
            # The answer is selected from the passages (compose.py); the model only judges.
            unprompted = FittedPrompt([], tuple(merge_adjacent(passages)), (), 0, 0)
            return AnswerStream(self, question, unprompted, t0, query, rest, coverage)
        fitted = self.prepare(question, history, hits=passages, query=query)
        return AnswerStream(self, question, fitted, t0, query, rest, coverage)

    def compose(self, question: str, passages: Sequence[Hit]) -> Composition:
        """The passages' units that answer ``question``, written out with citations."""
        from ..compose import compose, idf_weights
        from ..grounding import content_words
        from ..retrieval import embed_query

        words = list(dict.fromkeys(content_words(question)))
        counts, n = self.store.term_counts(words)
        # Units (sentences, list items) are scored against the float32 question at float32:
        # an int8 vector of a short sentence is noticeably further from its float32 one
        # than a passage's is, and only the search index gains from int8's speed.
        embed = getattr(self.embedder, "embed_float32", self.embedder.embed)
        return compose(question, passages, embed,
                       lambda text: embed_query(self.embedder, text),
                       idf_weights(words, counts, n))

    def question_coverage(self, question: str, passages: Sequence[Hit]) -> float:
        """The best passage's share of the question's words, weighted by their rarity here."""
        from ..grounding import content_words, question_coverage

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

    # ----- summaries (pipeline/summarize.py) --------------------------------------------------
    def summarize(
        self, folder: Path | None = None, where: Filter | dict | None = None,
        style: str | None = None, prompt: Path | None = None, out: Path | None = None,
        progress: Progress | None = None, note: Callable[[str], None] | None = None,
    ) -> batch.SummaryRun:
        """Summarize every document of ``folder``, or of this index when it is None.

        Resumable: each summary is stored under its key (content hash, model, prompt
        version, style) in ``out`` (default: the index's ``summaries`` folder, or
        ./summaries/FOLDER) and reused while that key holds.
        """
        self.settings.check_summaries()
        from . import summarize as batch

        return batch.run(self, folder, where, style, prompt, out, progress, note)

    def summaries(self, out: Path | None = None) -> dict[str, DocumentSummary]:
        """Path -> the last run's summary, for each document whose content it still matches.

        Only documents the viewer may read.
        """
        from . import summarize as batch

        return batch.summaries(self, out)

    def rollups(self, out: Path | None = None) -> list[RollupPart]:
        """The last run's overviews of which the viewer may read every source."""
        from . import summarize as batch

        return batch.rollups(self, out)

    def summary_of(self, path: str, out: Path | None = None) -> DocumentSummary | None:
        """The cached summary of an indexed document's current content, or None.

        None also when the viewer may not read the document.
        """
        from . import summarize as batch

        return batch.summary_of(self, path, out)

    def summarize_document(self, path: str, out: Path | None = None
                           ) -> DocumentSummary:
        """Summarize one indexed document ("summarize this document"); cached when present."""
        self.settings.check_summaries()
        from . import summarize as batch

        return batch.summarize_one(self, path, out)

    def current_summaries(self, out: Path | None = None) -> dict[str, DocumentSummary]:
        """Path -> ``summary_of(path)`` for every document that has one, in one pass."""
        from . import summarize as batch

        return batch.current_summaries(self, out)


def build_generator(settings: Settings) -> Generator:
    """The answer model ``llm.backend`` names: the one place a backend is chosen."""
    from .. import models
    from ..generation import LlamaCppGenerator
    from ..generation.openai import OpenAIGenerator

    s = settings.llm
    if s.backend == "openai":
        key = ""
        if s.api_key_env:
            key = os.environ.get(s.api_key_env, "")
            if not key:
                raise ConfigError(
                    f"llm.api_key_env = {s.api_key_env!r}, but that environment variable is "
                    "not set: export it with the server's API key, or set llm.api_key_env = "
                    '"" for a server without one'
                )
        return OpenAIGenerator(s.base_url, s.model, s.n_ctx, key, s.timeout_s, s.retries,
                               s.temperature, s.seed)
    path = models.resolve_gguf(s.model, settings.paths.models)
    return LlamaCppGenerator(path, s.n_ctx, s.threads, s.temperature, s.seed)


def _check_question(question: str, limit: int) -> None:
    """Refuse a blank question (nothing to search for) or one over the length limit.

    The limit keeps a pasted document (or an injection payload) from filling the
    model's window in place of the passages.
    """
    if not isinstance(question, str) or not question.strip():
        raise InvalidArgument("the question is empty: type the question to search for or answer")
    if len(question) > limit:
        raise InvalidArgument(
            f"the question has {len(question):,} characters, over the limit of {limit:,} "
            "(answer.max_question_chars): ask it shorter")
