"""Walking a folder: which files to read, relative paths, skip patterns, symlink safety."""

from __future__ import annotations

import fnmatch
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class FoundFile:
    """A file seen by the walk, with the cheap facts used for change detection."""

    path: Path  # absolute
    rel: str  # relative to the root, '/' separators
    size: int
    mtime_ns: int
    symlink_escape: bool = False  # a link that leaves the root, loops or dangles: not read
    reason: str = ""  # why a symlink is not followed, for the ingestion report
    special: str = ""  # a FIFO, socket or device: what it is (never opened: a FIFO blocks)


def special_kind(mode: int) -> str:
    """What a file that is neither a folder nor a regular file is, e.g. "named pipe"."""
    if stat.S_ISFIFO(mode):
        return "named pipe"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode):
        return "character device"
    if stat.S_ISBLK(mode):
        return "block device"
    return "special file"


def is_skipped(name: str, patterns: Iterable[str]) -> bool:
    """True when a file or folder name matches one of the skip patterns."""
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _unfollowable(link: Path, real_root: Path) -> str:
    """Why the symlink ``link`` must not be followed, or "" when its target is inside the root."""
    try:
        target = link.resolve(strict=True)
    except FileNotFoundError:
        return "broken symlink: its target does not exist"
    except (RuntimeError, OSError):  # RuntimeError before Python 3.13, OSError(ELOOP) after
        return "symlink loop"
    if not target.is_relative_to(real_root):
        return "symlink points outside the folder"
    return ""


def walk(
    root: Path, skip: Iterable[str] = (), errors: list[tuple[str, str]] | None = None
) -> Iterator[FoundFile]:
    """Yield the files under the folder ``root`` in a stable (sorted) order.

    FIFOs, sockets and devices are yielded with ``special`` set, so they can be
    reported; the walk only stats them (opening a FIFO would block).
    Symlinks are followed only while they stay inside ``root``; a link that
    leaves it, loops or dangles is yielded with ``symlink_escape=True`` and a
    ``reason`` so it can be reported. Directory loops end because each real
    directory is visited once.
    Folders that cannot be listed are appended to ``errors`` as (rel, reason):
    the scan was incomplete there, so nothing below them may be deleted.
    """
    root = Path(root)
    real_root = root.resolve()
    patterns = tuple(skip)
    seen_dirs: set[tuple[int, int]] = set()

    def visit(folder: Path, rel_prefix: str) -> Iterator[FoundFile]:
        try:
            st = folder.stat()
        except OSError:
            return
        key = (st.st_dev, st.st_ino)
        if key in seen_dirs:
            return
        seen_dirs.add(key)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            if errors is not None:
                errors.append((rel_prefix, exc.strerror or str(exc)))
            return
        for entry in entries:
            if is_skipped(entry.name, patterns):
                continue
            rel = f"{rel_prefix}{entry.name}"
            p = Path(entry.path)
            if entry.is_symlink():
                why = _unfollowable(p, real_root)
                if why:
                    yield FoundFile(p, rel, 0, 0, symlink_escape=True, reason=why)
                    continue
            try:
                if entry.is_dir(follow_symlinks=True):
                    yield from visit(p, rel + "/")
                    continue
                st = entry.stat(follow_symlinks=True)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                yield FoundFile(p, rel, st.st_size, st.st_mtime_ns)
            else:
                yield FoundFile(p, rel, 0, st.st_mtime_ns, special=special_kind(st.st_mode))

    yield from visit(root, "")
