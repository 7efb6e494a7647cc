"""The write lock: one writer per index, held with flock on ``write.lock``.

The lock file names its holder (pid, command, start) for the message a second
writer gets; it is emptied when the lock is released.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import IndexLocked
from . import private
from .schema import LOCK_NAME


def holder(folder: Path) -> str:
    """Who holds an index's write lock, as its lock file says ("" when nobody does)."""
    try:
        return (folder / LOCK_NAME).read_text(errors="replace").strip()
    except OSError:
        return ""


@contextmanager
def write_lock(folder: Path, command: str) -> Iterator[None]:
    """Hold the write lock of the index in ``folder``; raise IndexLocked if another does."""
    fd = private.open_file(folder / LOCK_NAME, os.O_RDWR)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise IndexLocked(
                f"index {folder.name!r} is being written by "
                f"{holder(folder) or 'another process'}; wait for it to finish"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} ({command}, since {time.ctime()})".encode())
        try:
            yield
        finally:
            os.ftruncate(fd, 0)  # only the holder empties it
    finally:
        os.close(fd)  # releases the flock
