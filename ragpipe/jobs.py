"""Background syncs started from the web app, visible to every admin while they run.

A sync started from a page must not stop when its tab closes, and a second admin must
see it: it runs in a thread of the server process, and its state (files done of total,
chunks, the outcome) is a row of the app database (appstate.py), not session state.
Cancelling sets a flag in that row; the sync checks it after each file and stops there:
what its last checkpoint published stays, the rest is discarded (pipeline/sync.py).
A row left "running" by a server that is gone is marked "interrupted" on the next start.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import appstate
from .errors import JobRefused, RagpipeError

# The row is rewritten at most this often while files go by (each write is a commit).
WRITE_EVERY_S = 0.5
_LIVE: set[int] = set()  # jobs running in this process's threads


class SyncCancelled(JobRefused):
    """Raised inside a sync whose job was cancelled; nothing after the last checkpoint stays."""


@dataclass(frozen=True)
class Job:
    """One background sync as recorded."""

    id: int
    index: str
    folder: str
    state: str  # running | done | failed | cancelled | interrupted
    files_done: int
    files_total: int
    chunks: int
    message: str
    cancel: bool
    started: float
    updated: float
    finished: float | None

    @property
    def running(self) -> bool:
        """True while the sync runs."""
        return self.state == "running"

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the rate so far, once files are being read (None before)."""
        if not self.running or not self.files_done or not self.files_total:
            return None
        rate = self.files_done / max(self.updated - self.started, 1e-6)
        return (self.files_total - self.files_done) / rate


_COLUMNS = ("id, idx, folder, state, files_done, files_total, chunks, message, cancel, "
            "started, updated, finished")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class SyncJobs:
    """Starts syncs in threads and reads their rows. One per server process.

    ``pipeline_for(index)`` builds the Pipeline a sync runs on (the web app shares its
    loaded embedder with it).
    """

    def __init__(self, path: Path, pipeline_for: Callable[[str], Any]) -> None:
        self.path = Path(path)
        self.pipeline_for = pipeline_for
        self._threads: dict[int, threading.Thread] = {}
        self._lock = threading.Lock()
        with appstate.connect(self.path) as conn:
            for job_id, pid in conn.execute(
                "SELECT id, pid FROM jobs WHERE state = 'running'"
            ).fetchall():
                if (pid == os.getpid() and job_id not in _LIVE) or not _pid_alive(pid):
                    conn.execute(
                        "UPDATE jobs SET state = 'interrupted', finished = ?, message = "
                        "'the server stopped during this sync: start it again' WHERE id = ?",
                        (time.time(), job_id))

    def start(
        self,
        index: str,
        folder: Path,
        allow_deletes: bool = False,
        rebase: bool = False,
        reread: str = "",
    ) -> int:
        """Start syncing ``folder`` into ``index`` in the background; returns the job id.

        With ``reread`` (a path in the index) only that document is read again
        (pipeline/documents.reread). Refused (JobRefused) while a job runs on ``index``.
        """
        now = time.time()
        with self._lock, appstate.connect(self.path) as conn:
            conn.execute("BEGIN IMMEDIATE")
            running = conn.execute("SELECT id FROM jobs WHERE idx = ? AND state = 'running'",
                                   (index,)).fetchone()
            if running:
                conn.execute("ROLLBACK")
                raise JobRefused(f"a sync of index {index!r} is already running (job "
                                 f"{running[0]}): wait for it or cancel it")
            label = f"{folder} (re-read {reread})" if reread else str(folder)
            cur = conn.execute(
                "INSERT INTO jobs(idx, folder, state, pid, started, updated) "
                "VALUES (?, ?, 'running', ?, ?, ?)", (index, label, os.getpid(), now, now))
            conn.execute("COMMIT")
            job_id = cur.lastrowid
            assert job_id is not None
            _LIVE.add(job_id)
            thread = threading.Thread(
                target=self._run, args=(job_id, index, Path(folder), allow_deletes, rebase,
                                        reread),
                name=f"ragpipe-sync-{job_id}", daemon=True)
            self._threads[job_id] = thread
        thread.start()
        return job_id

    def cancel(self, job_id: int) -> None:
        """Ask a running sync to stop after the file it is reading."""
        with appstate.connect(self.path) as conn:
            conn.execute("UPDATE jobs SET cancel = 1 WHERE id = ? AND state = 'running'",
                         (job_id,))

    def get(self, job_id: int) -> Job | None:
        """The job's row, or None."""
        with appstate.connect(self.path) as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _job(row) if row else None

    def recent(self, index: str | None = None, n: int = 5) -> list[Job]:
        """The latest ``n`` jobs (of one index), newest first."""
        with appstate.connect(self.path) as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE ? IS NULL OR idx = ? ORDER BY id DESC "
                "LIMIT ?", (index, index, n)).fetchall()
        return [_job(r) for r in rows]

    def running(self) -> list[Job]:
        """Every job running now, oldest first."""
        with appstate.connect(self.path) as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE state = 'running' ORDER BY id").fetchall()
        return [_job(r) for r in rows]

    def wait(self, job_id: int, timeout: float | None = None) -> Job | None:
        """Wait for a job this process started to end; returns its row."""
        thread = self._threads.get(job_id)
        if thread is not None:
            thread.join(timeout)
        return self.get(job_id)

    # ----- the thread ----------------------------------------------------------------------
    def _update(self, job_id: int, **values: Any) -> bool:
        """Write ``values`` into the job's row; returns its cancel flag."""
        with appstate.connect(self.path) as conn:
            if values:
                sets = ", ".join(f"{k} = ?" for k in values)
                conn.execute(f"UPDATE jobs SET {sets}, updated = ? WHERE id = ?",
                             (*values.values(), time.time(), job_id))
            row = conn.execute("SELECT cancel FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return bool(row and row[0])

    def _run(
        self, job_id: int, index: str, folder: Path, allow_deletes: bool, rebase: bool,
        reread: str,
    ) -> None:
        from .pipeline import documents

        last = 0.0
        counts = {"files_done": 0, "files_total": 0, "chunks": 0}

        def progress(stage: str, done: int, total: int) -> None:
            nonlocal last
            if stage == "files":
                counts["files_done"], counts["files_total"] = done, total
            elif stage == "chunks":
                counts["chunks"] = done
            now = time.monotonic()
            if now - last >= WRITE_EVERY_S or (stage == "files" and done == total):
                last = now
                if self._update(job_id, **counts):
                    raise SyncCancelled("cancelled: stopped after the file being read")

        try:
            if self._update(job_id):
                raise SyncCancelled("cancelled before it started")
            pipe = self.pipeline_for(index)
            if reread:
                rep = documents.reread(pipe, reread, progress)
                message = f"re-read {rep.path}: {rep.outcome.value}" + (
                    f": {rep.message}" if rep.message else "")
            else:
                stats = pipe.sync(folder, progress=progress, command="web",
                                  allow_deletes=allow_deletes, rebase=rebase)
                message = (f"+{len(stats.added)} added, ~{len(stats.changed)} changed, "
                           f"-{len(stats.deleted)} deleted, {len(stats.renamed)} renamed, "
                           f"{stats.unchanged} unchanged, {len(stats.failed)} failed; "
                           f"chunks +{stats.chunks_added} -{stats.chunks_removed}")
            self._update(job_id, state="done", message=message, finished=time.time(),
                         **counts)
        except SyncCancelled as exc:
            self._update(job_id, state="cancelled", message=str(exc), finished=time.time())
        except RagpipeError as exc:
            self._update(job_id, state="failed", message=str(exc), finished=time.time())
        except Exception as exc:  # noqa: BLE001 - a thread has no one else to tell
            self._update(job_id, state="failed", finished=time.time(),
                         message=f"{type(exc).__name__}: {exc}")
        finally:
            _LIVE.discard(job_id)


def _job(row: tuple) -> Job:
    return Job(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], bool(row[8]),
               row[9], row[10], row[11])
