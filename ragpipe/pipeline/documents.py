"""One document at a time: its original file, an upload, removing it, reading it again.

Every path here is a document's path relative to the index's source folder (the ``root``
an index records when it is synced), and nothing outside that folder is ever opened,
written or moved: a path that leads out of it (``..``, a symlink) is refused with
SourceUnavailable. Removing a document moves its file out of the folder into a kept
folder (so the next sync does not add it again, and nothing is lost) and takes it out
of the index in one writer.

Only documents the Pipeline's viewer may read (access.py) are opened, read again or
removed; any other is "not a document of index ..." exactly as a path the index does not
hold, so the answer does not tell whether it exists. Changing the folder or the index
(upload, remove, read again) is for admins.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from .. import appstate
from ..access import require_admin
from ..datatypes import FileReport
from ..errors import InvalidArgument, SourceUnavailable
from ..ingest import read_many
from ..ingest.walk import is_skipped
from ..safety import terminal_safe
from .progress import Progress
from .sync import record_failure, store_document

if TYPE_CHECKING:
    from .pipeline import Pipeline


def source_root(pipe: Pipeline) -> Path:
    """The index's source folder, as recorded by its last sync."""
    root = pipe.store.meta().get("root", "") if pipe.store.exists() else ""
    if not root:
        raise SourceUnavailable(
            f"index {pipe.index_name!r} has no source folder yet: sync it from a folder first")
    return Path(root)


def _inside(root: Path, rel: str) -> Path:
    """``root / rel`` for a relative path that stays inside ``root`` (not resolved)."""
    parts = PurePosixPath(rel).parts
    if not rel or PurePosixPath(rel).is_absolute() or ".." in parts or "\\" in rel:
        raise SourceUnavailable(f"{rel!r} is not a path inside the index's folder")
    return root.joinpath(*parts)


def source_path(pipe: Pipeline, rel: str) -> Path:
    """The original file of the document ``rel``, only if it is inside the source folder.

    Raises SourceUnavailable when ``rel`` is not a document of the index, is gone, is not
    a regular file, or leads outside the folder (``..``, a symlink pointing out).
    """
    root = source_root(pipe)
    _check_document(pipe, rel)
    base = root.resolve()
    try:
        real = _inside(base, rel).resolve(strict=True)
    except (OSError, RuntimeError):
        raise SourceUnavailable(
            f"{rel} is no longer in {root}: sync the index to bring it up to date") from None
    if not real.is_relative_to(base):
        raise SourceUnavailable(f"{rel} leads outside the index's folder {root}: not opened")
    if not real.is_file():
        raise SourceUnavailable(f"{rel} is not a regular file: not opened")
    return real


def _check_document(pipe: Pipeline, rel: str) -> None:
    """Raise SourceUnavailable unless ``rel`` is a document of the index the viewer may read."""
    if rel not in pipe.store.file_rows() or not pipe.can_read(rel):
        raise SourceUnavailable(f"{rel} is not a document of index {pipe.index_name!r}")


def check_name(name: str, pipe: Pipeline) -> str:
    """An uploaded file's name, if a sync would read a file of that name; else the reason.

    Only the last part of ``name`` is kept (browsers may send a path).
    """
    base = PurePosixPath(name.replace("\\", "/")).name
    if not base or base in (".", ".."):
        raise InvalidArgument(f"{name!r} is not a file name")
    if terminal_safe(base) != base:
        raise InvalidArgument(f"{terminal_safe(base)}: control characters in a file name; "
                              "rename the file and upload it again")
    if len(base.encode("utf-8")) > 255:
        raise InvalidArgument(f"{base[:40]}…: the name is too long; rename the file")
    if is_skipped(base, pipe.settings.ingest.skip):
        raise InvalidArgument(f"{base}: a sync skips files named like this (ingest.skip); "
                              "rename the file and upload it again")
    return base


def save_upload(
    pipe: Pipeline, name: str, data: bytes, folder: str = "", replace: bool = False
) -> str:
    """Write an uploaded file into the index's source folder (or its ``folder``).

    Returns its path relative to the folder. Refused (InvalidArgument) when it is over
    ``ingest.max_file_mb``, its name would be skipped by a sync, or a file of that name
    exists and ``replace`` is not set. Written to a temporary name and renamed, so a sync
    never reads half a file.
    """
    require_admin(pipe.viewer, "adding documents")
    base = check_name(name, pipe)
    limit = pipe.settings.ingest.max_file_mb
    if len(data) > limit * 1024 * 1024:
        raise InvalidArgument(f"{base}: {len(data) / 1e6:.1f} MB is over ingest.max_file_mb "
                              f"({limit:g} MB)")
    root = source_root(pipe).resolve()
    target_dir = _inside(root, folder.strip("/")) if folder.strip("/") else root
    target_dir.mkdir(parents=True, exist_ok=True)
    if not target_dir.resolve().is_relative_to(root):
        raise SourceUnavailable(f"{folder} leads outside the index's folder {root}")
    target = target_dir / base
    if target.exists() and not replace:
        raise InvalidArgument(f"{base} is already in {target_dir}: choose replace to "
                              "overwrite it, or rename the file")
    tmp = target_dir / f".{base[:200]}.{secrets.token_hex(4)}.upload"
    try:
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target.relative_to(root).as_posix()


def remove(pipe: Pipeline, rel: str, keep_in: Path | None = None) -> Path | None:
    """Take ``rel`` out of the index and move its file out of the source folder.

    The file goes to ``keep_in/INDEX/YYYYmmdd-HHMMSS/rel`` (default: the app's
    ``removed`` folder beside the indexes), where it can be restored by hand; returns
    that path, or None when the file was already gone. The index write and the move
    succeed or fail together.
    """
    require_admin(pipe.viewer, "removing documents")
    root = source_root(pipe)
    _check_document(pipe, rel)
    src = _inside(root, rel)
    if not src.parent.resolve().is_relative_to(root.resolve()):
        raise SourceUnavailable(f"{rel} leads outside the index's folder {root}: not moved")
    keep = keep_in or appstate.removed_dir(pipe.settings.paths.indexes)
    dest: Path | None = None
    with pipe.store.writer({}, command="remove") as w:
        if os.path.lexists(src):
            dest = _inside(keep / pipe.index_name / time.strftime("%Y%m%d-%H%M%S"), rel)
            dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            shutil.move(src, dest)
        try:
            w.remove_file(rel)
            w.collect()
            w.publish(note="remove")
        except BaseException:
            if dest is not None:
                shutil.move(dest, src)  # not removed from the index: the file goes back
            raise
    return dest


def reread(pipe: Pipeline, rel: str, progress: Progress | None = None) -> FileReport:
    """Read one document again now, even if unchanged (e.g. after installing OCR).

    Its chunks are replaced (for every path with the same content); when reading fails
    it keeps its earlier chunks, marked stale, as in a sync.
    """
    require_admin(pipe.viewer, "reading documents again")
    path = source_path(pipe, rel)
    pipe.store.check_embedder(pipe.embedder.name)
    stat = path.stat()
    [(_, doc, outcome, message)] = list(read_many([(path, rel)], pipe.settings.ingest))
    recipe, embedder = pipe.recipe(), pipe.embedder
    with pipe.store.writer({}, command="reread") as w:
        rows = pipe.store.file_rows()
        if doc is None:
            record_failure(w, rel, rows.get(rel), stat.st_size, stat.st_mtime_ns, outcome,
                           message)
            report = FileReport(rel, outcome, message, kind=path.suffix.lower().lstrip("."))
        else:
            chunks = pipe.chunker().split(doc)
            vectors = embedder.embed([c.text for c in chunks])
            store_document(w, rel, stat.st_size, stat.st_mtime_ns, doc, outcome, chunks,
                           vectors, recipe, embedder.name)
            notes = "; ".join(doc.notes)
            for other, row in rows.items():  # the same bytes under other names
                if other != rel and row.sha256 == doc.sha256:
                    w.set_file(other, doc.sha256, row.size, row.mtime_ns, outcome, notes,
                               doc.kind, len(doc.pages), len(chunks))
            report = FileReport(rel, outcome, notes, len(doc.pages), len(chunks), doc.kind)
            if progress:
                progress("chunks", len(chunks), 1)
        w.collect()
        w.publish(note="reread")
    if progress:
        progress("files", 1, 1)
    return report
