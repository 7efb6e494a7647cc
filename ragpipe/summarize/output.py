"""The output folder of a summarize run, written so that a kill at any moment loses nothing.

    OUT/.cache/KEY.json       one document's summary (records.DocumentSummary), by its key
    OUT/docs/PATH.md          the same, as Markdown, for each path with that content
    OUT/summaries.jsonl       one record per document of the last run
    OUT/index.md              the roll-up and a table of every document, with links
    OUT/.lock                 held by the run that writes the folder

Every file is written to a temporary name, fsynced and renamed over the old one, so a
reader (or a resumed run) sees the old file or the new one, never half of one; a
killed run's temporary files are removed by the next run. The cache entry is written
before the Markdown, so a summary that has a Markdown file is never computed again.
Files are private to their owner: summaries repeat the documents' content.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..errors import OutputLocked
from .records import UNSUPPORTED_MARK, DocumentSummary
from .rollup import RollupPart

_TEMP = ".tmp-"


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one step (temporary file, fsync, rename, fsync)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}{_TEMP}{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)  # the rename itself survives a power cut
    finally:
        os.close(dfd)


def markdown_rel(path: str) -> str:
    """The Markdown file of document ``path``, relative to OUT (mirrors the folder's layout)."""
    parts = [p for p in path.split("/") if p]
    if not parts or any(p in (".", "..") for p in parts) or path.startswith("/"):
        parts = [re.sub(r"[^\w.-]+", "_", path).strip("._") or "document"]
    return "docs/" + "/".join(parts) + ".md"


def _name(path: str) -> str:
    """A file name for Markdown: in backticks, which it cannot close."""
    return "`" + path.replace("`", "'").replace("\n", " ") + "`"


class SummaryFolder:
    """One output folder (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.cache_dir = self.root / ".cache"
        self.docs_dir = self.root / "docs"
        self.jsonl = self.root / "summaries.jsonl"
        self.index = self.root / "index.md"

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the folder's lock; raise OutputLocked if another run holds it."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                who = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
                raise OutputLocked(
                    f"summaries in {self.root} are being written by {who or 'another process'}:"
                    " wait for it to finish or choose another --out"
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} (since {time.ctime()})".encode(), 0)
            self._clean()
            yield
        finally:
            os.close(fd)

    def _clean(self) -> None:
        """Remove the temporary files of a run that was killed (only a lock holder may)."""
        for tmp in self.root.rglob(f".*{_TEMP}*"):
            tmp.unlink(missing_ok=True)

    # ----- one document -------------------------------------------------------------------
    def markdown_path(self, path: str) -> Path:
        """Where the Markdown of document ``path`` goes (markdown_rel)."""
        return self.root / markdown_rel(path)

    def cached(self, key: str) -> DocumentSummary | None:
        """The stored summary with ``key``, or None (a damaged entry counts as none)."""
        try:
            return DocumentSummary.from_dict(
                json.loads((self.cache_dir / f"{key}.json").read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save(self, summary: DocumentSummary, unsupported: str) -> None:
        """Store a new summary: its cache entry first, then its Markdown file(s)."""
        write_atomic(self.cache_dir / f"{summary.key}.json",
                     json.dumps(summary.to_dict(unsupported), ensure_ascii=False))
        self.show(summary, unsupported)

    def show(self, summary: DocumentSummary, unsupported: str) -> None:
        """Write the Markdown of each path of ``summary`` that is missing or out of date."""
        text = document_markdown(summary, unsupported)
        for path in (summary.source, *summary.also_in):
            md = self.markdown_path(path)
            try:
                if md.read_text(encoding="utf-8") == text:
                    continue
            except OSError:
                pass
            write_atomic(md, text)

    # ----- the set ------------------------------------------------------------------------
    def records(self) -> list[dict[str, Any]]:
        """The records of the last run (summaries.jsonl), [] before the first."""
        try:
            lines = self.jsonl.read_text(encoding="utf-8").splitlines()
        except OSError:
            return []
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def finish(
        self, title: str, summaries: Sequence[DocumentSummary], failures: Sequence[tuple],
        parts: Sequence[RollupPart], unsupported: str,
    ) -> None:
        """Write the set's JSONL and index, and remove what no current document owns."""
        summaries = sorted(summaries, key=lambda s: s.source)
        write_atomic(self.jsonl, "".join(
            json.dumps(s.to_dict(unsupported), ensure_ascii=False) + "\n" for s in summaries))
        write_atomic(self.index, index_markdown(title, summaries, failures, parts, unsupported))
        keep = {self.markdown_path(p) for s in summaries for p in (s.source, *s.also_in)}
        for md in self.docs_dir.rglob("*.md") if self.docs_dir.is_dir() else ():
            if md not in keep:
                md.unlink(missing_ok=True)
        for d in sorted(self.docs_dir.rglob("*"), reverse=True) if self.docs_dir.is_dir() else ():
            if d.is_dir() and not any(d.iterdir()):
                d.rmdir()

    def prune(self, keep: set[str], style: str, model: str) -> int:
        """Remove cache entries of this style and model that no current document uses."""
        removed = 0
        for f in self.cache_dir.glob("*.json") if self.cache_dir.is_dir() else ():
            if f.stem in keep or f.stem.startswith("rollup-"):
                continue
            s = self.cached(f.stem)
            if s is None or (s.style == style and s.model == model):
                f.unlink(missing_ok=True)
                removed += 1
        return removed

    def cached_rollup(self, key: str) -> list[RollupPart] | None:
        """The stored roll-up with ``key``, or None."""
        try:
            data = json.loads((self.cache_dir / f"rollup-{key}.json").read_text("utf-8"))
            return [RollupPart.from_dict(p) for p in data]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save_rollup(self, key: str, parts: Sequence[RollupPart]) -> None:
        """Store a roll-up; older ones go."""
        for f in self.cache_dir.glob("rollup-*.json") if self.cache_dir.is_dir() else ():
            f.unlink(missing_ok=True)
        write_atomic(self.cache_dir / f"rollup-{key}.json",
                     json.dumps([p.to_dict() for p in parts], ensure_ascii=False))


# ----- Markdown --------------------------------------------------------------------------------
def document_markdown(summary: DocumentSummary, unsupported: str) -> str:
    """One document's summary with each sentence's supporting passages."""
    s = summary
    names = ", ".join(_name(p) for p in (s.source, *s.also_in))
    lines = [
        f"# Summary of {names}", "",
        f"*{s.style} summary by {s.model}; {s.supported} of {len(s.sentences)} sentences "
        f"supported by the document; content sha256 {s.sha256[:12]}*", "",
        s.text(unsupported) or "*(no sentence of the summary could be checked)*", "",
    ]
    if unsupported == "flag" and s.supported < len(s.sentences):
        lines += [f"Sentences marked {UNSUPPORTED_MARK} are not backed by the document's text "
                  "(see below).", ""]
    lines += ["## Where each sentence comes from", ""]
    for i, sent in enumerate(s.sentences, start=1):
        verdict = "supported" if sent.supported else f"NOT supported: {sent.problem}"
        lines.append(f"{i}. {sent.text}  \n   *{verdict}*")
        for p in sent.sources:
            where = f"page {p.page}, " if p.page is not None else ""
            quote_ = " ".join(p.quote.split())
            lines.append(f"   > {quote_}  \n   > ({where}characters {p.start}\u2013{p.end})")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _link(path: str) -> str:
    return quote(markdown_rel(path))


def index_markdown(
    title: str, summaries: Sequence[DocumentSummary], failures: Sequence[tuple],
    parts: Sequence[RollupPart], unsupported: str,
) -> str:
    """The roll-up with links to the documents it cites, and a table of every document."""
    checked = sum(len(s.sentences) for s in summaries)
    supported = sum(s.supported for s in summaries)
    share = f"{supported / checked:.0%}" if checked else "no"
    lines = [f"# Summaries of {_name(title)}", "",
             f"{len(summaries)} documents summarized; {share} of {checked} summary sentences "
             f"supported by their document; {len(failures)} not summarized.", ""]
    for part in parts:
        lines += [f"## Overview{': ' + part.title if part.title else ''}", ""]

        def cite(m: re.Match[str], part: RollupPart = part) -> str:
            nums = [int(n) for n in m.group(1).split(",")]
            return "".join(f"[[{n}]]({_link(part.sources[n - 1])})" for n in nums
                           if 0 < n <= len(part.sources))

        lines += [re.sub(r"\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]", cite, part.text), ""]
        refs = [f"[{i}] [{_name(p)}]({_link(p)})" for i, p in enumerate(part.sources, 1)]
        lines += ["  \n".join(refs), ""]
    lines += ["## Documents", "", "| document | supported sentences | summary |", "|---|---|---|"]
    for s in summaries:
        first = " ".join(s.text(unsupported).split())
        first = (first[:160] + "\u2026" if len(first) > 160 else first).replace("|", "\\|")
        for p in (s.source, *s.also_in):
            lines.append(f"| [{_name(p)}]({_link(p)}) | {s.supported}/{len(s.sentences)} | "
                         f"{first} |")
    if failures:
        lines += ["", "## Not summarized", ""]
        lines += [f"- {_name(path)}: {' '.join(str(why).split())}" for path, why in failures]
    return "\n".join(lines).rstrip() + "\n"
