"""Walking a folder: which files to read, relative paths, skip patterns, symlink safety."""

from __future__ import annotations

import fnmatch
import os
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
    symlink_escape: bool = False  # a link that points outside the root: recorded, not read


def is_skipped(name: str, patterns: Iterable[str]) -> bool:
    """True when a file or folder name matches one of the skip patterns."""
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def walk(
    root: Path, skip: Iterable[str] = (), errors: list[tuple[str, str]] | None = None
) -> Iterator[FoundFile]:
    """Yield the regular files under ``root`` in a stable (sorted) order.

    Symlinks are followed only while they stay inside ``root``; a link that
    leaves it is yielded with ``symlink_escape=True`` so it can be reported.
    Directory loops end because each real directory is visited once.
    Folders that cannot be listed are appended to ``errors`` as (rel, reason):
    the scan was incomplete there, so nothing below them may be deleted.
    """
    root = Path(root)
    real_root = root.resolve()
    patterns = tuple(skip)
    seen_dirs: set[tuple[int, int]] = set()

    def inside(p: Path) -> bool:
        try:
            p.resolve().relative_to(real_root)
        except (ValueError, OSError, RuntimeError):
            return False
        return True

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
            link = entry.is_symlink()
            if link and not inside(p):
                yield FoundFile(p, rel, 0, 0, symlink_escape=True)
                continue
            try:
                if entry.is_dir(follow_symlinks=True):
                    yield from visit(p, rel + "/")
                    continue
                if not entry.is_file(follow_symlinks=True):
                    continue
                st = entry.stat(follow_symlinks=True)
            except OSError:
                continue
            yield FoundFile(p, rel, st.st_size, st.st_mtime_ns)

    if root.is_file():
        st = root.stat()
        yield FoundFile(root, root.name, st.st_size, st.st_mtime_ns)
        return
    yield from visit(root, "")
