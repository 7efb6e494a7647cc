"""The one place where ragpipe's stages are wired together.

    folder --walk--> files --read--> Document --chunk--> [Chunk] --embed--> vectors --> Store
    question --embed--> query vector --search--> [Hit] --fit prompt--> model --> Answer

The CLI and the web UI both use only this module's Pipeline.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import models
from .chunking import Chunker, chunk_settings_key
from .datatypes import (
    Answer,
    Chunk,
    Citation,
    Document,
    FileReport,
    Hit,
    Outcome,
    Support,
    SyncStats,
)
from .embedding import Embedder, SentenceTransformerEmbedder
from .errors import ReadError
from .followup import history_messages, standalone_query
from .generation import Generator, LlamaCppGenerator, ThinkFilter, strip_think
from .grounding import (
    CALIBRATION,
    SUPPORT_THRESHOLD,
    check_answer,
    complete_last_word,
    content_words,
    question_coverage,
    signals_for,
)
from .ingest import READER_VERSION, FoundFile, read_many, walk
from .prompts import (
    NOT_FOUND,
    REFUSAL,
    FittedPrompt,
    cited_numbers,
    fit_prompt,
    judge_messages,
    remove_invalid_citations,
)
from .retrieval import Filter, Retriever
from .settings import Settings, load_settings
from .store import Store, Writer

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

Progress = Callable[[str, int, int], None]  # (stage, done, total)



@dataclass
class _Plan:
    """What a sync will do, decided from size/mtime and content hashes."""

    unchanged: list[str] = field(default_factory=list)
    touched: list[FoundFile] = field(default_factory=list)  # same bytes, new mtime
    to_read: list[tuple[FoundFile, str, bool]] = field(default_factory=list)  # (file, sha, new?)
    renamed: list[tuple[str, FoundFile]] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    skipped: list[FileReport] = field(default_factory=list)
    reembed: list[str] = field(default_factory=list)  # contents needing new vectors only
    found: dict[str, FoundFile] = field(default_factory=dict)
    scan_errors: list[tuple[str, str]] = field(default_factory=list)  # (folder, reason)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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
    def _plan(self, root: Path, known: dict, stored_recipes: dict, recipe: str, embedder: str):
        plan = _Plan()
        found: dict[str, FoundFile] = {}
        max_bytes = int(self.settings.ingest.max_file_mb * 1024 * 1024)
        for f in walk(root, self.settings.ingest.skip, plan.scan_errors):
            if f.symlink_escape:
                plan.skipped.append(
                    FileReport(f.rel, Outcome.SKIPPED_SYMLINK, f.reason or "symlink not followed")
                )
                continue
            if f.size > max_bytes:
                plan.skipped.append(
                    FileReport(
                        f.rel,
                        Outcome.TOO_LARGE,
                        f"{f.size / 1e6:.1f} MB is over ingest.max_file_mb "
                        f"({self.settings.ingest.max_file_mb} MB)",
                    )
                )
                continue
            found[f.rel] = f
        missing = {p: row for p, row in known.items() if p not in found}
        missing_by_sha: dict[str, list[str]] = {}
        for p, row in missing.items():
            if row.sha256:
                missing_by_sha.setdefault(row.sha256, []).append(p)
        skipped_paths = {r.path for r in plan.skipped}
        for rel, f in found.items():
            row = known.get(rel)
            stored = stored_recipes.get(row.sha256) if (row and row.sha256) else None
            recipe_ok = stored is not None and stored[0] == recipe
            if row and row.size == f.size and row.mtime_ns == f.mtime_ns:
                if row.sha256 is None or row.stale or recipe_ok:
                    plan.unchanged.append(rel)
                    continue
            try:
                sha = _sha256_file(f.path)
            except FileNotFoundError:
                plan.skipped.append(FileReport(rel, Outcome.VANISHED, "file disappeared"))
                continue
            except OSError as exc:
                plan.skipped.append(FileReport(rel, Outcome.UNREADABLE, str(exc)))
                continue
            if row and row.sha256 == sha and recipe_ok:
                plan.touched.append(f)
            elif (
                row is None
                and missing_by_sha.get(sha)
                and stored_recipes.get(sha, ("",))[0] == recipe
            ):
                old = missing_by_sha[sha].pop(0)
                plan.renamed.append((old, f))
                del missing[old]
            else:
                plan.to_read.append((f, sha, row is None))
        # A path is deleted only when the folder it was in was listed completely.
        incomplete = tuple(prefix for prefix, _ in plan.scan_errors)
        plan.deleted = sorted(
            p for p in missing
            if p not in skipped_paths and not (incomplete and p.startswith(incomplete))
        )
        plan.found = found
        # Contents kept as they are, but embedded by another model: new vectors from their text.
        kept = [known[p].sha256 for p in plan.unchanged]
        kept += [known[f.rel].sha256 for f in plan.touched]
        kept += [known[old].sha256 for old, _ in plan.renamed]
        kept += [known[r.path].sha256 for r in plan.skipped if r.path in known]
        plan.reembed = sorted(
            sha for sha in set(kept)
            if sha and sha in stored_recipes and stored_recipes[sha][1] != embedder
        )
        return plan

    def sync(
        self,
        folder: Path,
        dry_run: bool = False,
        progress: Progress | None = None,
        command: str = "sync",
    ) -> SyncStats:
        """Bring the index in line with ``folder``: add, update, rename and delete exactly."""
        root = Path(folder)
        if not root.exists():
            raise ReadError(Outcome.VANISHED, f"folder {root} does not exist")
        root = root.resolve()
        embedder = self.embedder
        recipe = self.recipe()
        exists = self.store.exists()
        if dry_run:
            known = self.store.file_rows() if exists else {}
            stored = self.store.content_recipes() if exists else {}
            plan = self._plan(root, known, stored, recipe, embedder.name)
            return SyncStats(
                added=tuple(f.rel for f, _, new in plan.to_read if new),
                changed=tuple(f.rel for f, _, new in plan.to_read if not new),
                deleted=tuple(plan.deleted),
                renamed=tuple((old, f.rel) for old, f in plan.renamed),
                unchanged=len(plan.unchanged) + len(plan.touched),
                failed=tuple(plan.skipped),
                dry_run=True,
            )
        meta = {"embedder": embedder.name, "chunking": recipe, "root": str(root)}
        with self.store.writer(meta, command=command) as w:
            known = self.store.file_rows()
            plan = self._plan(root, known, self.store.content_recipes(), recipe, embedder.name)
            return self._apply(w, root, plan, known, recipe, progress)

    def _apply(self, w: Writer, root: Path, plan: _Plan, known: dict, recipe: str, progress):
        embedder = self.embedder
        if plan.to_read or plan.reembed or "dim" not in w.previous_meta:
            w.set_meta({"dim": str(embedder.dim)})  # loads the embedding model
        chunker = self.chunker() if plan.to_read or plan.reembed else None
        failed: list[FileReport] = list(plan.skipped)
        added: list[str] = []
        changed: list[str] = []
        chunks_added = 0
        generation = 0
        for rep in plan.skipped:
            row = known.get(rep.path)
            w.set_file(
                rep.path, row.sha256 if row else None, 0, 0, rep.outcome, rep.message,
                stale=bool(row and row.sha256),
            )
        for f in plan.touched:
            w.touch_file(f.rel, f.size, f.mtime_ns)
        for old, f in plan.renamed:
            w.rename_file(old, f.rel, f.size, f.mtime_ns)
        # Embedder changed: new vectors from the stored chunk text, published together at the
        # end. A chunk over the new model's window would be truncated: re-read that file.
        by_sha = {row.sha256: plan.found[p] for p, row in known.items() if p in plan.found}
        for sha in plan.reembed:
            rows = w.chunks_of(sha)
            too_long = any(embedder.count_tokens(t) > embedder.max_tokens for _, t in rows)
            if too_long and sha in by_sha:
                plan.to_read.append((by_sha[sha], sha, False))
                continue
            vecs = embedder.embed([t for _, t in rows])
            w.replace_vectors(sha, embedder.name, [i for i, _ in rows], vecs)
        bar = _bar(len(plan.to_read), "files", progress)
        last_publish = time.monotonic()
        since_publish = 0

        def step() -> None:
            nonlocal since_publish, last_publish, generation
            bar.update()
            since_publish += 1
            if not plan.reembed and (
                since_publish >= self.checkpoint_files
                or time.monotonic() - last_publish > self.checkpoint_seconds
            ):
                generation = w.publish(note="checkpoint") or generation
                since_publish, last_publish = 0, time.monotonic()

        def share(f: FoundFile, sha: str) -> bool:
            """Point a path at content already stored for another path (same bytes)."""
            if not w.has_content(sha, recipe, embedder.name):
                return False
            outcome, message, kind, pages, n = w.content_facts(sha)
            w.set_file(f.rel, sha, f.size, f.mtime_ns, outcome, message, kind, pages, n)
            return True

        to_parse: dict[str, tuple[FoundFile, bool]] = {}
        for f, sha, is_new in plan.to_read:
            if share(f, sha):
                (added if is_new else changed).append(f.rel)
                step()
            else:
                to_parse[f.rel] = (f, is_new)
        # Parsing runs in isolated worker processes, overlapping with embedding here.
        # Chunks of several files are embedded together: tiny per-file batches waste the model.
        pending: list[tuple[FoundFile, bool, Document, Outcome, list[Chunk]]] = []
        flush_at = max(64, 4 * self.settings.embedder.batch_size)

        def flush() -> None:
            nonlocal chunks_added
            if not pending:
                return  # nothing to embed: don't load the model
            texts = [c.text for *_, chunks in pending for c in chunks]
            vectors = embedder.embed(texts)
            start = 0
            for f, is_new, doc, outcome, chunks in pending:
                vecs, start = vectors[start : start + len(chunks)], start + len(chunks)
                if not share(f, doc.sha256):  # the same bytes may come twice in one batch
                    notes = "; ".join(doc.notes)
                    w.put_content(
                        doc.sha256, doc.kind, len(doc.pages), recipe, embedder.name, chunks,
                        vecs, notes,
                    )
                    w.set_file(
                        f.rel, doc.sha256, f.size, f.mtime_ns, outcome, notes, doc.kind,
                        len(doc.pages), len(chunks),
                    )
                    chunks_added += len(chunks)
                    bar.chunks(len(chunks))
                (added if is_new else changed).append(f.rel)
                step()
            pending.clear()

        results = read_many(((f.path, f.rel) for f, _ in to_parse.values()), self.settings.ingest)
        for rel, doc, outcome, message in results:
            f, is_new = to_parse[rel]
            row = known.get(rel)
            if doc is None:
                keep_old = bool(row and row.sha256)
                w.set_file(
                    rel, row.sha256 if keep_old and row else None, f.size, f.mtime_ns,
                    outcome, message, Path(rel).suffix.lower().lstrip("."), stale=keep_old,
                )
                failed.append(FileReport(rel, outcome, message))
                bar.note(f"{rel}: {outcome.value}: {message}")
                step()
            elif share(f, doc.sha256):  # stored under the hash of the bytes actually read
                (added if is_new else changed).append(rel)
                step()
            else:
                assert chunker is not None
                pending.append((f, is_new, doc, outcome, chunker.split(doc)))
                if sum(len(p[4]) for p in pending) >= flush_at:
                    flush()
        flush()
        bar.close()
        for p in plan.deleted:
            w.remove_file(p)
        removed = w.collect()
        generation = w.publish(note="sync") or generation
        return SyncStats(
            added=tuple(added),
            changed=tuple(changed),
            deleted=tuple(plan.deleted),
            renamed=tuple((old, f.rel) for old, f in plan.renamed),
            unchanged=len(plan.unchanged) + len(plan.touched),
            failed=tuple(failed) + tuple(
                FileReport(prefix or ".", Outcome.UNREADABLE, f"folder not listed: {why}")
                for prefix, why in plan.scan_errors
            ),
            chunks_added=chunks_added,
            chunks_removed=removed,
            generation=generation,
        )

    ingest = sync

    def fsck(self, repair: bool = False) -> tuple[list[str], list[str]]:
        """Problems found in the index, and (with ``repair``) what was done about them."""
        problems = self.store.fsck()
        if not repair:
            return problems, []
        meta = self.store.meta()
        with self.store.writer(
            {k: meta[k] for k in ("embedder", "chunking", "root") if k in meta}, command="fsck"
        ) as w:
            done = w.repair(self.embedder.embed)
        return problems, done

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
        retrieval.Filter or a dict with path/type/modified_from/modified_to);
        ``mode`` is dense, bm25 or hybrid (default: retrieval.mode);
        ``shape=False`` returns the raw ranking (no dedup, neighbours or floor).
        """
        r = self.settings.retrieval
        k = k or r.top_k
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
    ) -> FittedPrompt:
        """Retrieve passages for ``query`` (default: the question) and fit them into the budget.

        The budget is ``llm.n_ctx - llm.max_tokens``, counted with the model's tokenizer
        over system prompt, the latest ``answer.history_turns`` of ``history``, passages and
        question; passages that do not fit are dropped whole, lowest ranked first.
        """
        a = self.settings.answer
        if hits is None:
            hits = self.search(query or question, k=a.passages or None)
        gen = self.generator
        budget = gen.n_ctx - self.settings.llm.max_tokens
        turns = history_messages(history, a.history_turns)
        return fit_prompt(question, hits, gen.count_prompt_tokens, budget, turns, a.style)

    def stream(self, question: str, history: Sequence[dict] = ()) -> AnswerStream:
        """Start answering: iterate the returned stream for text, then read ``.answer``.

        ``history`` is the chat so far (``{"role", "content"}`` dicts, oldest first); a
        follow-up question is made standalone for the search (``answer.rewrite``).
        """
        t0 = time.monotonic()
        a = self.settings.answer
        query = question
        if history:
            gen = self.generator if a.rewrite == "model" else None
            query = standalone_query(question, history, a.rewrite, gen)
        n = a.passages or self.settings.retrieval.top_k
        hits = self.search(query, k=max(n, self.settings.retrieval.top_k))
        fitted = self.prepare(question, history, hits=hits[:n], query=query)
        return AnswerStream(self, question, fitted, t0, query, tuple(hits[n:]))

    def ask(self, question: str, history: Sequence[dict] = ()) -> Answer:
        """Answer ``question`` in one call (no streaming)."""
        s = self.stream(question, history)
        for _ in s:
            pass
        return s.answer


class AnswerStream:
    """Iterates the answer's text as it is generated; ``answer`` is set when it ends.

    The passages (``hits``) are known before the first token, so a UI can show them early.
    The checks (citations, support, the calibrated abstention) run after the last token,
    so they never delay the first one; when they withhold the answer, ``answer.text`` is
    the not-found sentence, not what was streamed (a UI replaces the streamed text).
    Reasoning in <think> blocks is not streamed and not counted in ``llm.max_tokens``.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        question: str,
        fitted: FittedPrompt,
        t0: float,
        query: str | None = None,
        also_retrieved: tuple[Hit, ...] = (),
    ):
        self.pipeline = pipeline
        self.question = question
        self.query = query or question
        self.also_retrieved = also_retrieved
        self.fitted = fitted
        self.hits = fitted.used
        self._t0 = t0
        self._answer: Answer | None = None

    def __iter__(self) -> Iterator[str]:
        settings = self.pipeline.settings
        a = settings.answer
        if not self.hits:
            self._abstain("no passages")
            yield NOT_FOUND
            return
        if (
            a.check
            and content_words(self.query)
            and question_coverage(self.query, self.hits) < a.min_question_coverage
        ):
            self._abstain("not relevant")
            yield NOT_FOUND
            return
        gen = self.pipeline.generator
        visible_max = settings.llm.max_tokens
        # Reasoning may use the whole window; the visible answer stops at llm.max_tokens.
        room = max(visible_max, gen.n_ctx - self.fitted.tokens)
        scored = getattr(gen, "stream_scored", None)
        self._report: dict[str, float] = {}
        if scored is not None and getattr(gen, "temperature", 0) == 0:
            extract = a.style == "extract"
            tokens: Iterator[tuple[str, float]] = scored(
                self.fitted.messages, room,
                copy_from=[h.text for h in self.hits] if extract else (),
                refusal=REFUSAL if extract else "", report=self._report,
            )
        else:
            tokens = ((t, float("nan")) for t in gen.stream(self.fitted.messages, room))
        think = ThinkFilter()
        pieces: list[str] = []
        logprobs: list[float] = []
        n_visible = n_think = 0
        first = None
        try:
            for piece, logprob in tokens:
                was_thinking = think.thinking
                text = think.feed(piece)
                if was_thinking or think.thinking:
                    n_think += 1
                else:
                    n_visible += 1
                    logprobs.append(logprob)
                pieces.append(piece)
                if text:
                    if first is None:
                        first = time.monotonic() - self._t0
                    yield text
                if n_visible >= visible_max:
                    break
            tail = think.flush()
            if tail:
                yield tail
        finally:
            close = getattr(tokens, "close", None)
            if close:
                close()  # releases the model's lock at once
        self._finish("".join(pieces), n_visible, first, logprobs, n_think)

    def _abstain(self, reason: str) -> None:
        elapsed = time.monotonic() - self._t0  # the not-found text is the first token
        self._answer = Answer(
            question=self.question,
            text=NOT_FOUND,
            citations=(),
            hits=self.hits,
            dropped=self.fitted.dropped,
            prompt_tokens=self.fitted.tokens,
            found=False,
            timings={"first_token_s": elapsed, "total_s": elapsed},
            abstain_reason=reason,
            query=self.query,
            token_parts=dict(self.fitted.parts),
            also_retrieved=self.also_retrieved,
        )

    def _finish(
        self,
        raw: str,
        n_tokens: int,
        first: float | None,
        logprobs: Sequence[float] = (),
        n_think: int = 0,
    ) -> None:
        a = self.pipeline.settings.answer
        draft = strip_think(raw).strip()
        timings = {"generate_s": time.monotonic() - self._t0}
        if first is not None:
            timings["first_token_s"] = first
        said = draft.lower()
        refused = (
            not draft
            or NOT_FOUND.lower().rstrip(".") in said
            or said.startswith(REFUSAL.lower().rstrip("."))
        )
        common = dict(
            question=self.question, hits=self.hits, dropped=self.fitted.dropped,
            prompt_tokens=self.fitted.tokens, answer_tokens=n_tokens, timings=timings,
            query=self.query, token_parts=dict(self.fitted.parts), think_tokens=n_think,
            also_retrieved=self.also_retrieved,
        )
        if not a.check:
            text = remove_invalid_citations(draft, len(self.hits))
            cites = tuple(Citation(n, self.hits[n - 1]) for n in cited_numbers(text))
            timings["total_s"] = time.monotonic() - self._t0
            self._answer = Answer(
                text=text, citations=cites, found=not refused,
                abstain_reason="model" if refused else "", **common,  # type: ignore[arg-type]
            )
            return
        if a.style == "extract":
            draft = complete_last_word(draft, self.hits)
        checked = check_answer(draft, self.hits)
        judge = None
        gen = self.pipeline.generator
        yes_probability = getattr(gen, "yes_probability", None)
        if a.judge and yes_probability is not None and not refused:
            judge = yes_probability(judge_messages(self.fitted.messages))
        signals = signals_for(
            self.query, self.hits, checked, logprobs, judge,
            getattr(self, "_report", {}).get("refusal_p"),
        )
        # Without the signals it was fitted on (judge off, or a generator without it) the
        # calibration does not apply: then only the support check can withhold.
        confidence = CALIBRATION.probability(signals) if CALIBRATION.applies(signals) else None
        threshold = a.min_confidence if a.min_confidence >= 0 else CALIBRATION.threshold
        if refused:
            reason = "model"
        elif checked.best_score < SUPPORT_THRESHOLD:
            reason = "unsupported"  # no passage backs the draft: never shown as an answer
        elif confidence is not None and confidence < threshold:
            reason = "uncertain"
        else:
            reason = ""
        support = Support(
            checked.support.citations, checked.support.supported, checked.support.unsupported,
            checked.support.uncited_sentences,
            None if confidence is None else round(confidence, 4),
        )
        timings["total_s"] = time.monotonic() - self._t0
        timings["check_s"] = timings["total_s"] - timings["generate_s"]
        self._answer = Answer(
            text=NOT_FOUND if reason else checked.text,
            citations=() if reason else checked.citations,
            found=not reason,
            support=support,
            abstain_reason=reason,
            withheld=checked.text if reason and not refused else "",
            signals=signals,
            **common,  # type: ignore[arg-type]
        )

    @property
    def answer(self) -> Answer:
        """The finished Answer (iterate the stream first)."""
        if self._answer is None:
            raise RuntimeError("iterate the stream to the end before reading .answer")
        return self._answer


class _bar:
    """A tqdm progress bar on stderr (when it is a terminal or forced), plus a callback."""

    def __init__(self, total: int, unit: str, callback: Progress | None) -> None:
        self.total, self.done, self.n_chunks = total, 0, 0
        self.callback = callback
        self._tqdm = None
        if total and (sys.stderr.isatty() or os.environ.get("RAGPIPE_PROGRESS") == "1"):
            from tqdm import tqdm

            self._tqdm = tqdm(total=total, unit=unit, desc="ingest", file=sys.stderr)

    def update(self) -> None:
        self.done += 1
        if self._tqdm:
            self._tqdm.set_postfix(chunks=self.n_chunks, refresh=False)
            self._tqdm.update(1)
        if self.callback:
            self.callback("files", self.done, self.total)

    def chunks(self, n: int) -> None:
        self.n_chunks += n

    def note(self, text: str) -> None:
        if self._tqdm:
            self._tqdm.write(text, file=sys.stderr)

    def close(self) -> None:
        if self._tqdm:
            self._tqdm.close()
