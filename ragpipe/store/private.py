"""Index files readable only by their owner: folders 0700, files 0600.

``index.sqlite`` holds the full text of every document, so nothing of an index is
left readable by other users. New folders and files are created private; an index
made by an older ragpipe is tightened the next time it is written (``tighten``).
SQLite gives ``-wal`` and ``-shm`` the database file's mode, so creating the
database private covers them.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def make_dir(folder: Path) -> None:
    """Create ``folder`` (and its parent, the indexes folder, if missing) private."""
    folder.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    folder.mkdir(mode=DIR_MODE, exist_ok=True)


def create_new(path: Path) -> None:
    """Create ``path`` empty and private if it does not exist; leave an existing one be.

    An existing SQLite file must not be opened here: closing any descriptor of it
    drops this process's POSIX locks on it, those of open SQLite connections too.
    """
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    except FileExistsError:
        pass


def open_file(path: Path, flags: int) -> int:
    """``os.open``, creating the file private if it is new (``tighten`` fixes older ones)."""
    return os.open(path, flags | os.O_CREAT, FILE_MODE)


def tighten(folder: Path) -> None:
    """Make an index folder and every file in it private (indexes written before 0600)."""
    for path in (folder, *folder.iterdir()):
        try:
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                continue  # chmod would change the file it points at
            mode = DIR_MODE if stat.S_ISDIR(st.st_mode) else FILE_MODE
            if stat.S_IMODE(st.st_mode) != mode:
                os.chmod(path, mode)
        except OSError:
            pass  # not ours (or gone): its owner's next write tightens it
