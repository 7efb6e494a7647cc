"""Batch summaries: find the documents, summarize what is new, write the output folder.

    index (its stored chunks) | folder (walk, read in workers, chunk)
      --> documents by content hash --cached under their key?--> reuse
      --> summarize.summarize_document --> OUT/.cache + OUT/docs (atomic, one by one)
      --> roll-up --> OUT/summaries.jsonl + OUT/index.md; summaries of gone content pruned

An index-based run reads the chunks the index holds, so it follows the index's last
sync: a changed document has a new content hash (so a new key) and is summarized again,
a deleted one leaves the JSONL, the index page and the docs folder. A folder run reads
the files itself, in the same isolated reader processes as a sync, and cuts them into
passages by characters (``FOLDER_CHUNKS``) so that it loads no embedding model; the
model's budget is still counted exactly with its own tokenizer.

What a viewer reads of them (access.py): a document's summary only if they may read that
document, naming only the paths they may read; a roll-up only if they may read every
document it was written from. An index run for a viewer who is not an admin summarizes
only what they may read (as a ``--where`` run: the others' summaries stay cached).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..chunking import Chunker
from ..datatypes import Chunk, Document
from ..errors import ConfigError, InvalidArgument, ModelNotFound, OutputLocked
from ..filters import Filter
from ..ingest import read_many, walk
from ..ingest.sniff import EXT_KINDS
from ..store.vectors import sha256_file
from ..summarize import DocumentSummary, SummaryFolder, SummaryOptions, summarize_document
from ..summarize.rollup import RollupPart, rollup, rollup_key, scopes
from ..summarize.templates import read_prompt
from .progress import Progress, ProgressBar

if TYPE_CHECKING:
    from .pipeline import Pipeline

# Passages of a folder run, in characters/4 (about a token of English): the index's size.
FOLDER_CHUNKS = 200
# Errors that no other document would escape: they stop the run.
_FATAL = (ModelNotFound, ConfigError, OutputLocked)


@dataclass(frozen=True)
class SummaryRun:
    """What one summarize run did."""

    out: Path
    summarized: tuple[str, ...] = ()  # documents summarized now
    reused: tuple[str, ...] = ()  # already summarized with the same key
    failed: tuple[tuple[str, str], ...] = ()  # (path, reason)
    removed: int = 0  # summaries of content no longer in the set
    sentences: int = 0  # checked summary sentences of the set
    supported: int = 0
    generated_tokens: int = 0  # by this run
    generation_s: float = 0.0
    seconds: float = 0.0
    rollup_error: str = ""

    @property
    def ok(self) -> bool:
        """True when at least one document has a summary."""
        return bool(self.summarized or self.reused)


@dataclass
class _Doc:
    paths: list[str]
    sha256: str
    file: Path | None = None  # folder runs: the file to read


def options(pipe: Pipeline, style: str | None = None, prompt: Path | None = None
            ) -> SummaryOptions:
    """The summary options from settings (and a run's --style and --prompt)."""
    s = pipe.settings.summarize
    return SummaryOptions(style or s.style, pipe.settings.llm.model, s.max_tokens,
                          s.group_tokens, read_prompt(prompt) if prompt else None)


def default_out(pipe: Pipeline, folder: Path | None) -> Path:
    """An index's summaries live in its folder; a folder's in ./summaries/NAME."""
    if folder is None:
        return pipe.settings.index_dir(pipe.index_name) / "summaries"
    return Path.cwd() / "summaries" / (Path(folder).resolve().name or "root")


def lower_priority(increment: int) -> int:
    """Add ``increment`` to this process's CPU niceness (threads started later inherit it).

    Returns the niceness now. For a batch process only: in the web UI's process it would
    slow the answers too. Where the kernel groups processes by session (autogroups), a
    niceness only ranks processes of one session, so ``run_in_own_session`` comes first.
    """
    try:
        now = os.nice(increment) if increment > 0 else os.nice(0)
    except OSError:
        now = os.nice(0)
    if increment > 0 and _own_autogroup():
        try:  # this session holds the batch alone: rank it below other sessions too
            Path("/proc/self/autogroup").write_text(str(now))
        except OSError:
            pass
    return now


def _autogroups() -> bool:
    try:
        return Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1"
    except OSError:
        return False


def _own_autogroup() -> bool:
    return _autogroups() and os.getsid(0) == os.getpid()


def run_in_own_session(run: Callable[[], int]) -> int:
    """``run()``'s exit code, from a child process that leads a session of its own.

    With autogroups the CPU is shared fairly between sessions first (a terminal, the web
    server's service), whatever the niceness, so a batch started beside a serving web app
    took half the CPU at any niceness (README: Batch summaries, sharing the machine). In a
    session of its own the batch's group can be ranked low (``lower_priority``). Where
    nothing needs doing (no autogroups, already a session leader, no fork) ``run`` runs
    here. The parent stays as the terminal's job: Ctrl-C and SIGTERM are passed on, and
    the child is killed if the parent is (SIGKILL included), so the run stops as one.
    """
    if not _autogroups() or os.getsid(0) == os.getpid() or not hasattr(os, "fork"):
        return run()
    import signal
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # the child: run, then end here, never back in the caller's code
        code = 1
        try:
            try:
                import ctypes

                ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PDEATHSIG
            except (OSError, AttributeError):
                pass
            if os.getppid() == parent:
                os.setsid()
                code = run()
        except BaseException:  # noqa: BLE001 - shown, then this process ends
            import traceback

            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    def _pass_on(signum: int, _frame: object) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _pass_on)
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code  # killed by a signal: the shell's 128 + N


def folder_chunker() -> Chunker:
    """How a folder run cuts documents into passages: by characters, about 4 per token."""
    return Chunker(lambda t: len(t) // 4 + 1, FOLDER_CHUNKS, 0, FOLDER_CHUNKS)


def _folder_docs(folder: Path, pipe: Pipeline, where: Filter | None,
                 failed: list[tuple[str, str]]) -> list[_Doc]:
    if not folder.is_dir():
        raise InvalidArgument(f"{folder} is not a folder: give a folder of documents to "
                              "summarize, or --index NAME")
    ing = pipe.settings.ingest
    errors: list[tuple[str, str]] = []
    docs: dict[str, _Doc] = {}
    for f in walk(folder, ing.skip, errors):
        ext = Path(f.rel).suffix.lower()
        if where is not None and not where.matches(f.rel, EXT_KINDS.get(ext, ext[1:]),
                                                   f.mtime_ns):
            continue  # a folder run's type= is the extension's: decided before reading
        if f.special or f.symlink_escape:
            failed.append((f.rel, f.reason or f"not a regular file ({f.special})"))
            continue
        if f.size > ing.max_file_mb * 1024 * 1024:
            failed.append((f.rel, f"larger than ingest.max_file_mb ({ing.max_file_mb:g} MB)"))
            continue
        try:
            sha = sha256_file(f.path)
        except OSError as exc:
            failed.append((f.rel, f"unreadable: {exc}"))
            continue
        docs.setdefault(sha, _Doc([], sha, f.path)).paths.append(f.rel)
    failed += [(path or ".", f"folder not listed: {why}") for path, why in errors]
    return list(docs.values())


def _index_docs(pipe: Pipeline, where: Filter | None) -> list[_Doc]:
    pipe.store.require()
    return [_Doc(paths, sha) for sha, paths in pipe.store.contents(where.sql() if where else None)]


def _read(pipe: Pipeline, todo: list[_Doc]) -> Iterator[tuple[_Doc, list[Chunk] | str]]:
    """Each document to summarize with its chunks in order, or why it has none."""
    if not todo or todo[0].file is None:
        for d in todo:
            chunks = pipe.store.chunks_of(d.sha256)
            yield d, chunks or "no longer in the index (it was synced during the run)"
        return
    by_rel = {d.paths[0]: d for d in todo}
    chunker = folder_chunker()
    files = [(d.file, d.paths[0]) for d in todo if d.file is not None]
    for rel, doc, outcome, message in read_many(files, pipe.settings.ingest):
        d = by_rel[rel]
        if doc is None:
            yield d, f"{outcome.value}: {message}"
            continue
        d.sha256 = doc.sha256  # what was read, should the file have changed since
        yield d, chunker.split(Document(rel, doc.pages, doc.kind, doc.sha256))


def run(
    pipe: Pipeline, folder: Path | None = None, where: Filter | dict | None = None,
    style: str | None = None, prompt: Path | None = None, out: Path | None = None,
    progress: Progress | None = None, note: Callable[[str], None] | None = None,
) -> SummaryRun:
    """Summarize every document of ``folder``, or of the index when ``folder`` is None.

    Failures of single documents are recorded and the run goes on; ``note`` receives a
    line for each (above the progress bar). See the module docstring for the flow.
    """
    t0 = time.monotonic()
    opts = options(pipe, style, prompt)
    unsupported = pipe.settings.summarize.unsupported
    filt = Filter.of(where)
    failed: list[tuple[str, str]] = []
    if folder is None:
        # only what the viewer may read: like a --where run, the others' are not pruned
        filt = pipe.readable(filt)
        docs = _index_docs(pipe, filt)
    else:
        docs = _folder_docs(Path(folder), pipe, filt, failed)
    target = SummaryFolder(out or default_out(pipe, folder))
    title = str(folder) if folder is not None else f"index {pipe.index_name}"
    done: list[DocumentSummary] = []
    summarized, reused = [], []
    tokens, gen_s = 0, 0.0
    with target.lock():
        todo = []
        for d in docs:
            cached = target.cached(opts.key(d.sha256))
            if cached is None:
                todo.append(d)
                continue
            cached = dataclasses.replace(cached, source=d.paths[0], also_in=tuple(d.paths[1:]))
            target.show(cached, unsupported)
            done.append(cached)
            reused.append(d.paths[0])
        bar = ProgressBar(len(todo), "doc", progress, desc="summarize", stage="documents")
        try:
            for d, chunks in _read(pipe, todo):
                if isinstance(chunks, str):
                    failed.append((d.paths[0], chunks))
                    (note or bar.note)(f"! {d.paths[0]}: {chunks}")
                    bar.advance()
                    continue
                try:
                    s = summarize_document(pipe.generator, d.paths[0], d.sha256, chunks, opts,
                                           d.paths[1:])
                except _FATAL:
                    raise
                except Exception as exc:  # noqa: BLE001 - one document's failure, reported
                    why = f"{type(exc).__name__}: {exc}"
                    failed.append((d.paths[0], why))
                    (note or bar.note)(f"! {d.paths[0]}: {why}")
                    bar.advance()
                    continue
                target.save(s, unsupported)
                done.append(s)
                summarized.append(d.paths[0])
                tokens += s.generated_tokens
                gen_s += s.timings.get("map_s", 0) + s.timings.get("reduce_s", 0)
                bar.advance({"tok/s": f"{tokens / gen_s:.1f}" if gen_s else "-",
                             "reused": len(reused), "failed": len(failed)})
        finally:
            bar.close()
        parts, rollup_error = _rollup(pipe, target, done)
        target.finish(title, done, failed, parts, unsupported)
        # A filtered run sees only part of the documents: the others' summaries stay cached.
        removed = target.prune({s.key for s in done}, opts.style, opts.model) if filt is None \
            else 0
    return SummaryRun(
        target.root, tuple(summarized), tuple(reused), tuple(failed), removed,
        sum(len(s.sentences) for s in done), sum(s.supported for s in done), tokens,
        round(gen_s, 3), round(time.monotonic() - t0, 3), rollup_error,
    )


def _rollup(pipe: Pipeline, target: SummaryFolder, done: list[DocumentSummary]
            ) -> tuple[list[RollupPart], str]:
    """The roll-up of ``done`` (cached when its inputs are unchanged), or why there is none."""
    how = pipe.settings.summarize.rollup
    parts = scopes(done, by_folder=how == "folders") if how != "off" else []
    if not parts:
        return [], ""
    key = rollup_key(pipe.settings.llm.model, parts)
    cached = target.cached_rollup(key)
    if cached is not None:
        return cached, ""
    try:
        made = rollup(pipe.generator, parts, pipe.settings.summarize.max_tokens)
    except _FATAL:
        raise
    except Exception as exc:  # noqa: BLE001 - the documents' summaries stand without it
        return [], f"{type(exc).__name__}: {exc}"
    target.save_rollup(key, made)
    return made, ""


# ----- one document, for the UI -----------------------------------------------------------------
def _for_viewer(pipe: Pipeline, s: DocumentSummary, path: str) -> DocumentSummary:
    """``s`` as the summary of ``path``, naming only the other paths the viewer may read."""
    others = tuple(p for p in (s.source, *s.also_in) if p != path and pipe.can_read(p))
    return dataclasses.replace(s, source=path, also_in=others)


def summaries(pipe: Pipeline, out: Path | None = None) -> dict[str, DocumentSummary]:
    """Path -> summary of every document of the index whose last-run summary is current.

    Only documents the viewer may read.
    """
    rows = pipe.store.file_rows()
    found: dict[str, DocumentSummary] = {}
    for rec in SummaryFolder(out or default_out(pipe, None)).records():
        try:
            s = DocumentSummary.from_dict(rec)
        except (KeyError, TypeError, ValueError):
            continue
        for path in (s.source, *s.also_in):
            row = rows.get(path)
            if row is not None and row.sha256 == s.sha256 and pipe.can_read(path):
                found[path] = _for_viewer(pipe, s, path)
    return found


def rollups(pipe: Pipeline, out: Path | None = None) -> list[RollupPart]:
    """The last run's roll-up parts that the viewer may read every source of."""
    folder = SummaryFolder(out or default_out(pipe, None))
    found = sorted(folder.cache_dir.glob("rollup-*.json")) if folder.cache_dir.is_dir() else []
    parts = folder.cached_rollup(found[-1].stem.removeprefix("rollup-")) if found else None
    return [p for p in parts or () if p.sources and all(pipe.can_read(x) for x in p.sources)]


def summary_of(pipe: Pipeline, path: str, out: Path | None = None) -> DocumentSummary | None:
    """The cached summary of ``path``'s current content, or None.

    The last run's summary when it is current, else one made with the configured options
    (by summarize_one, or a run with them).
    """
    if not pipe.can_read(path):
        return None
    last = summaries(pipe, out).get(path)
    if last is not None:
        return last
    row = pipe.store.file_rows().get(path)
    if row is None or not row.sha256:
        return None
    cached = SummaryFolder(out or default_out(pipe, None)).cached(options(pipe).key(row.sha256))
    return _for_viewer(pipe, cached, path) if cached else None


def summarize_one(pipe: Pipeline, path: str, out: Path | None = None) -> DocumentSummary:
    """The summary of one indexed document: the cached one when present, else made now.

    One made now is cached, so the next call and the next batch run reuse it.
    """
    found = summary_of(pipe, path, out)
    if found is not None:
        return found
    row = pipe.store.file_rows().get(path)
    if row is None or not row.sha256 or not pipe.can_read(path):
        raise InvalidArgument(f"{path!r} is not a document of index {pipe.index_name!r}: "
                              "give its path as `ragpipe report` lists it")
    chunks = pipe.store.chunks_of(row.sha256)
    s = summarize_document(pipe.generator, path, row.sha256, chunks, options(pipe))
    SummaryFolder(out or default_out(pipe, None)).save(s, pipe.settings.summarize.unsupported)
    return _for_viewer(pipe, s, path)


def current_summaries(pipe: Pipeline, out: Path | None = None) -> dict[str, DocumentSummary]:
    """Path -> summary of every document of the index that has a current one.

    ``summaries`` (the last run's), and for the other documents the one cached with the
    configured options (made by summarize_one since): what ``summary_of`` returns for each
    path, read in one pass for a table of the whole index; only documents the viewer may
    read.
    """
    found = summaries(pipe, out)
    folder = SummaryFolder(out or default_out(pipe, None))
    if not folder.cache_dir.is_dir():
        return found
    opts = options(pipe)
    for path, row in pipe.store.file_rows().items():
        if path in found or not row.sha256 or not pipe.can_read(path):
            continue
        cached = folder.cached(opts.key(row.sha256))
        if cached is not None:
            found[path] = _for_viewer(pipe, cached, path)
    return found
