"""Sync: bring an index in line with a folder exactly, losing little work to a crash.

    walk --> plan (size/mtime, then SHA-256) --> share, rename, read, chunk, embed --> publish

Planning loads no model: an unchanged file is recognised by size and mtime, a
changed or new one by the SHA-256 of its bytes. Content is stored once per hash, so
the same bytes under a new name are a rename and a duplicate shares the stored
chunks. A path is deleted only when the folder it was in was listed completely.
Contents whose vectors came from another embedder get new vectors from their stored
text, without parsing.

Before writing, a sync checks that it is asked for: a folder other than the index's
stored root is refused unless ``rebase`` (a moved or renamed folder: the index is
re-pointed, and files with the same relative paths and bytes are kept as they are), and
a plan that would delete too much of the index (``delete_refusal``) stops unless
``allow_deletes``: an unmounted share or a mistyped folder looks exactly like one whose
files were all deleted. A dry run reports the same refusals in ``SyncStats.refused``.

Applying parses in isolated worker processes (ingest.read_many), takes their results
in plan order (so chunk ids do not depend on which worker finished first), and embeds
the chunks of several files together in a background thread while the next files are
parsed and chunked and the batch before is stored; the batch embedder (torch) starts
loading before the first file is read. A long sync publishes a checkpoint
generation every ``Pipeline.checkpoint_files`` files or ``checkpoint_seconds``
(not while re-embedding: those vectors are published together at the end).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..datatypes import Chunk, Document, FileReport, Outcome, SyncStats
from ..errors import MassDelete, ReadError, RootMismatch, SyncRefused
from ..ingest import FoundFile, read_many, walk
from ..ingest.walk import special_kind
from ..ingest.workers import Result
from ..settings import Settings
from ..store import Writer
from ..store.vectors import sha256_file
from .progress import Progress, ProgressBar

if TYPE_CHECKING:
    from .pipeline import Pipeline


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


def make_plan(
    settings: Settings, root: Path, known: dict, stored_recipes: dict, recipe: str, embedder: str
) -> _Plan:
    """Decide what a sync of ``root`` does, from size/mtime first and content hashes second."""
    plan = _Plan()
    found: dict[str, FoundFile] = {}
    max_bytes = int(settings.ingest.max_file_mb * 1024 * 1024)
    for f in walk(root, settings.ingest.skip, plan.scan_errors):
        if f.special:
            plan.skipped.append(
                FileReport(f.rel, Outcome.UNSUPPORTED_TYPE, f"not a regular file ({f.special})")
            )
            continue
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
                    f"({settings.ingest.max_file_mb} MB)",
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
            sha = sha256_file(f.path)
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


# Below this many files, only deleting all of them stops a sync (share rule: see below).
MIN_FILES_FOR_SHARE = 20


def delete_refusal(
    index: str, root: Path, deleting: int, files: int, max_share: float
) -> MassDelete | None:
    """The error for a sync that would delete too many of an index's files, or None.

    Too many: all of them, or more than ``max_share`` of them once the index holds
    ``MIN_FILES_FOR_SHARE`` files.
    """
    if not deleting:
        return None
    if deleting >= files:
        why = "all of them"
    elif files >= MIN_FILES_FOR_SHARE and deleting > max_share * files:
        why = f"more than ingest.max_delete_share = {max_share:g} of them"
    else:
        return None
    return MassDelete(
        f"index {index!r}: this sync would delete {deleting} of its {files} files ({why}); "
        f"is {root} unmounted, emptied or the wrong folder? Nothing was written; "
        "to delete them, run again with --allow-deletes"
    )


def root_refusal(index: str, root: Path, stored: str) -> RootMismatch | None:
    """The error for syncing ``root`` into an index that holds the folder ``stored``."""
    if not stored or Path(stored) == root:
        return None
    keep = "files with the same paths and content are kept"
    if not Path(stored).is_dir():
        return RootMismatch(
            f"index {index!r} holds the folder {stored}, which no longer exists: if it was "
            f"moved or renamed to {root}, add --rebase to re-point the index at it ({keep})"
        )
    return RootMismatch(
        f"index {index!r} holds the folder {stored}, not {root}: sync {stored} (or leave "
        f"out the folder), or add --rebase to re-point the index at {root} ({keep})"
    )


def sync_folder(
    pipe: Pipeline,
    folder: Path,
    dry_run: bool = False,
    progress: Progress | None = None,
    command: str = "sync",
    allow_deletes: bool = False,
    rebase: bool = False,
) -> SyncStats:
    """Pipeline.sync: check, plan, then (unless ``dry_run``) apply the plan in one writer.

    Raises RootMismatch or MassDelete before writing anything (see the module doc); a
    dry run returns their messages in ``SyncStats.refused`` instead.
    """
    root = Path(folder)
    index = pipe.store.path.name
    exists = pipe.store.exists()
    stored_root = pipe.store.meta().get("root", "") if exists else ""
    if not root.exists():
        hint = ""
        if stored_root and root.resolve() == Path(stored_root):
            hint = f"; if it was moved, sync the new folder with --index {index} --rebase"
        raise ReadError(Outcome.VANISHED, f"folder {root} does not exist{hint}")
    if not root.is_dir():
        kind = "file" if root.is_file() else special_kind(root.stat().st_mode)
        raise ReadError(
            Outcome.UNSUPPORTED_TYPE, f"{root} is a {kind}, not a folder: give a folder"
        )
    root = root.resolve()
    refused: list[SyncRefused] = []
    if not rebase and (wrong_root := root_refusal(index, root, stored_root)):
        if not dry_run:
            raise wrong_root
        refused.append(wrong_root)
    embedder = pipe.embedder
    recipe = pipe.recipe()
    max_share = pipe.settings.ingest.max_delete_share
    if dry_run:
        known = pipe.store.file_rows() if exists else {}
        stored = pipe.store.content_recipes() if exists else {}
        plan = make_plan(pipe.settings, root, known, stored, recipe, embedder.name)
        too_many = delete_refusal(index, root, len(plan.deleted), len(known), max_share)
        if too_many and not allow_deletes:
            refused.append(too_many)
        return SyncStats(
            added=tuple(f.rel for f, _, new in plan.to_read if new),
            changed=tuple(f.rel for f, _, new in plan.to_read if not new),
            deleted=tuple(plan.deleted),
            renamed=tuple((old, f.rel) for old, f in plan.renamed),
            unchanged=len(plan.unchanged) + len(plan.touched),
            failed=tuple(plan.skipped),
            dry_run=True,
            refused=tuple(str(e) for e in refused),
        )
    meta = {"embedder": embedder.name, "chunking": recipe, "root": str(root),
            # where its passages may be sent (privacy.py): as the settings say at each sync
            "local_only": "true" if pipe.settings.privacy.local_only else "false"}
    with pipe.store.writer(meta, command=command) as w:
        known = pipe.store.file_rows()
        stored = pipe.store.content_recipes()
        plan = make_plan(pipe.settings, root, known, stored, recipe, embedder.name)
        too_many = delete_refusal(index, root, len(plan.deleted), len(known), max_share)
        if too_many and not allow_deletes:
            raise too_many  # inside the writer: its transaction is discarded, nothing written
        return apply_plan(pipe, w, root, plan, known, recipe, progress)


def store_document(
    w: Writer, rel: str, size: int, mtime_ns: int, doc: Document, outcome: Outcome,
    chunks: list[Chunk], vectors: Any, recipe: str, embedder: str,
) -> None:
    """Store a document read from ``rel``: its content (chunks, vectors) and its file row."""
    notes = "; ".join(doc.notes)
    w.put_content(doc.sha256, doc.kind, len(doc.pages), recipe, embedder, chunks, vectors, notes)
    w.set_file(rel, doc.sha256, size, mtime_ns, outcome, notes, doc.kind, len(doc.pages),
               len(chunks))


def record_failure(
    w: Writer, rel: str, row: Any, size: int, mtime_ns: int, outcome: Outcome, message: str
) -> None:
    """Record that ``rel`` could not be read; its earlier content, if any, stays (stale)."""
    keep_old = bool(row and row.sha256)
    w.set_file(
        rel, row.sha256 if keep_old else None, size, mtime_ns, outcome, message,
        Path(rel).suffix.lower().lstrip("."), stale=keep_old,
    )


# Start loading the batch embedder early when this much is to be read (bytes): a few
# small files are embedded by the NumPy runtime, which needs no torch (embedding.py).
WARM_UP_BYTES = 32 * 1024

# (file, new?, document, outcome, chunks)
_Parsed = tuple[FoundFile, bool, Document, Outcome, list[Chunk]]


def in_order(results: Iterable[Result], order: Sequence[str]) -> Iterator[Result]:
    """``results`` (in completion order) in the order of ``order`` (their rel paths).

    A result that arrives early waits for those before it; the workers keep parsing.
    """
    waiting: dict[str, Result] = {}
    i = 0
    for result in results:
        waiting[result[0]] = result
        while i < len(order) and order[i] in waiting:
            yield waiting.pop(order[i])
            i += 1
    yield from waiting.values()  # none unless a result came for a path not asked for


class _Embedding:
    """One batch of chunks embedding at a time, in a thread (or inline, ``overlap=False``).

    ``submit`` starts a batch and returns the previous one with its vectors, so batches
    come back in the order they went in: the sequential and the overlapped paths store
    the same chunks in the same order with the same vectors.
    """

    def __init__(self, embed: Callable[[list[str]], Any], overlap: bool) -> None:
        self.embed = embed
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="embed") if overlap else None
        self.running: tuple[Future, list[_Parsed]] | None = None

    def submit(self, batch: list[_Parsed], texts: list[str]) -> tuple[list[_Parsed], Any] | None:
        """Start embedding ``texts``; return the batch before it, with its vectors, if any."""
        if self.pool is None:
            return batch, self.embed(texts)
        done = self.finish()
        self.running = (self.pool.submit(self.embed, texts), batch)
        return done

    def finish(self) -> tuple[list[_Parsed], Any] | None:
        """Wait for the running batch; return it with its vectors (None when none runs)."""
        if self.running is None:
            return None
        future, batch = self.running
        self.running = None
        return batch, future.result()

    def close(self) -> None:
        """Stop the thread (after the running batch, whose result is dropped)."""
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


def apply_plan(
    pipe: Pipeline,
    w: Writer,
    root: Path,
    plan: _Plan,
    known: dict,
    recipe: str,
    progress: Progress | None,
) -> SyncStats:
    """Carry out ``plan`` in ``w`` and publish; checkpoints on the way (see the module doc)."""
    t0 = time.monotonic()
    embedder = pipe.embedder
    if plan.to_read or plan.reembed or "dim" not in w.previous_meta:
        w.set_meta({"dim": str(embedder.dim)})  # from the model's files, or by loading it
    chunker = pipe.chunker() if plan.to_read or plan.reembed else None
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
    bar = ProgressBar(len(plan.to_read), "files", progress)
    last_publish = time.monotonic()
    since_publish = 0

    def step() -> None:
        nonlocal since_publish, last_publish, generation
        bar.update()
        since_publish += 1
        if not plan.reembed and (
            since_publish >= pipe.checkpoint_files
            or time.monotonic() - last_publish > pipe.checkpoint_seconds
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
    if embedder_warm_up := getattr(embedder, "warm_up", None):
        if sum(f.size for f, _ in to_parse.values()) >= WARM_UP_BYTES:
            embedder_warm_up()  # torch loads while the first files are read and chunked
    # Parsing runs in isolated worker processes; results are taken in plan order, so chunk
    # ids do not depend on which worker finished first. Chunks of several files are
    # embedded together (tiny per-file batches waste the model), in a background thread
    # while the next files are parsed and chunked and the previous batch is stored.
    pending: list[_Parsed] = []
    flush_at = pipe.embed_batch_chunks or max(64, 4 * pipe.settings.embedder.batch_size)
    embedding = _Embedding(embedder.embed, pipe.overlap_embedding)

    def store(batch: list[_Parsed], vectors: Any) -> None:
        nonlocal chunks_added
        start = 0
        for f, is_new, doc, outcome, chunks in batch:
            vecs, start = vectors[start : start + len(chunks)], start + len(chunks)
            if not share(f, doc.sha256):  # the same bytes may come twice in one batch
                store_document(w, f.rel, f.size, f.mtime_ns, doc, outcome, chunks, vecs,
                               recipe, embedder.name)
                chunks_added += len(chunks)
                bar.chunks(len(chunks))
            (added if is_new else changed).append(f.rel)
            step()

    def flush() -> None:
        if not pending:
            return  # nothing to embed: don't load the model
        done = embedding.submit(list(pending), [c.text for *_, chunks in pending for c in chunks])
        pending.clear()
        if done is not None:
            store(*done)

    files = [(f.path, f.rel) for f, _ in to_parse.values()]
    results = in_order(read_many(iter(files), pipe.settings.ingest), [rel for _, rel in files])
    try:
        for rel, doc, outcome, message in results:
            f, is_new = to_parse[rel]
            row = known.get(rel)
            if doc is None:
                record_failure(w, rel, row, f.size, f.mtime_ns, outcome, message)
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
        last = embedding.finish()
        if last is not None:
            store(*last)
    finally:
        embedding.close()
    bar.close()
    # Reported in plan order, whichever batch stored a file.
    position = {f.rel: i for i, (f, _, _) in enumerate(plan.to_read)}
    added.sort(key=lambda rel: position.get(rel, -1))
    changed.sort(key=lambda rel: position.get(rel, -1))
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
        files_read=len(plan.to_read),
        seconds=time.monotonic() - t0,
    )
