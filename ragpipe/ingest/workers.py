"""Parsing files in isolated worker processes: a timeout and a memory cap per file.

Why a hand-rolled pool: ``concurrent.futures.ProcessPoolExecutor`` marks the
whole pool broken when one worker dies, and ``multiprocessing.Pool`` cannot
kill one task that hangs; both would let one bad file spoil the others. Here
each worker has its own pipes, parses one file at a time, and is killed and
replaced when it overruns its deadline or dies; the rest carry on.

Why ``subprocess`` rather than multiprocessing's "spawn": spawn re-runs the
parent's ``__main__`` module in every worker, which breaks scripts without an
``if __name__ == "__main__"`` guard and imports whatever they import (torch,
FAISS) into the workers. A worker here is a fresh interpreter (fork+exec, so
safe in a parent holding torch threads) that imports only the readers, and
talks over two pipes with ``multiprocessing.connection`` framing.

Each worker caps its own address space with RLIMIT_AS, so an allocation
explosion fails inside it (as MemoryError or a crash) instead of exhausting
the machine, and leads its own session, so a timeout kill also reaches the
Tesseract processes it started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from ..datatypes import Document, Outcome
from ..errors import ConfigError, ReadError
from ..settings import IngestSettings
from .base import ReadOptions
from .readers import read_document

Result = tuple[str, Document | None, Outcome, str]  # (rel, document or None, outcome, message)

# Test-only readers, honoured only when this variable is "1": files named *.slowtest
# sleep (a hanging parser), *.memtest allocate 4 GiB (a memory explosion) and
# *.crashtest abort the process (a parser bug in C code).
TEST_READERS_ENV = "RAGPIPE_TEST_READERS"
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
STARTUP_TIMEOUT_S = 60.0
# A worker is replaced after this many files, so slow leaks and heap growth in the
# parsers (C libraries included) cannot accumulate over a long sync.
RECYCLE_AFTER = 500  # a worker that is not ready by then is replaced
MAX_STARTUP_FAILURES = 3  # in a row, before giving up with a configuration error


def cpu_count() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _test_reader(path: Path) -> None:
    if os.environ.get(TEST_READERS_ENV) != "1":
        return
    if path.name.endswith(".slowtest"):
        time.sleep(3600)
    if path.name.endswith(".memtest"):
        bytes(4 << 30)  # calloc: costs nothing unless a cap refuses it
    if path.name.endswith(".crashtest"):
        os.abort()


def read_one(path: Path, rel: str, options: ReadOptions) -> Result:
    """Read one file in this process and return its result instead of raising."""
    try:
        _test_reader(path)
        doc, outcome = read_document(path, rel, options)
        return rel, doc, outcome, "; ".join(doc.notes)
    except ReadError as exc:
        return rel, None, Outcome(exc.outcome), str(exc)
    except MemoryError:
        return rel, None, Outcome.MEMORY_LIMIT, "ran out of memory (over ingest.memory_mb)"
    except Exception as exc:  # noqa: BLE001 - one file must never stop the worker
        return rel, None, Outcome.PARSE_ERROR, f"{type(exc).__name__}: {exc}"


def _die_with_parent() -> None:
    """Ask Linux to kill this worker when the parent dies, so a hung parse cannot linger."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the worker still exits when its pipe closes


def _limit_memory(memory_mb: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crashing parser leaves no core file
    if memory_mb <= 0:
        return
    limit = memory_mb << 20
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def worker_main(task_fd: int, result_fd: int) -> None:
    """Body of a worker process: read the files sent over the task pipe until told to stop."""
    conn_in = Connection(task_fd, writable=False)
    conn_out = Connection(result_fd, readable=False)
    parent, memory_mb, options = conn_in.recv()
    _die_with_parent()
    if os.getppid() != parent:
        return  # the parent died before the death signal was armed
    _limit_memory(memory_mb)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent to handle
    conn_out.send(("ready",))
    while True:
        try:
            task = conn_in.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        result = read_one(Path(task[0]), task[1], options)
        try:
            conn_out.send(("done", *result))
        except (MemoryError, ValueError, OSError) as exc:  # too large to pass back
            message = f"extracted text too large to pass back ({type(exc).__name__})"
            conn_out.send(("done", result[0], None, Outcome.MEMORY_LIMIT, message))


_BOOT = (
    "import sys; from ragpipe.ingest.workers import worker_main; "
    "worker_main(*map(int, sys.argv[1:]))"
)


@dataclass(eq=False)
class _Worker:
    proc: subprocess.Popen
    tasks: Connection  # we write
    results: Connection  # we read; EOF when the worker is gone
    deadline: float  # of the start-up, then of the current file
    ready: bool = False
    task: tuple[str, str] | None = None
    done: int = 0  # files parsed


def _crash_result(rel: str, exitcode: int | None, memory_mb: int) -> Result:
    if exitcode is not None and exitcode < 0:
        sig = -exitcode
        name = signal.Signals(sig).name if sig in signal.valid_signals() else f"signal {sig}"
        if sig == signal.SIGKILL:  # not ours: the kernel's out-of-memory killer
            return rel, None, Outcome.MEMORY_LIMIT, "killed by the system (out of memory)"
        # C++ parsers (PDFium) abort when an allocation fails under the address-space cap;
        # a real bug crashes the same way, so say both.
        hint = f"; possibly out of memory, ingest.memory_mb = {memory_mb}" if memory_mb else ""
        return rel, None, Outcome.PARSE_ERROR, f"the parser crashed ({name}{hint})"
    return rel, None, Outcome.PARSE_ERROR, f"the reader process exited with status {exitcode}"


class ReaderPool:
    """A fixed number of reader processes, replaced one by one when they time out or die.

    Use as a context manager, or call ``close()``; ``map`` may be called more than once.
    """

    def __init__(self, size: int, timeout_s: float, memory_mb: int, options: ReadOptions) -> None:
        self.size = max(1, size)
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self.options = options
        self.workers: list[_Worker] = []
        self._startup_failures = 0
        self._stderr: Any = None  # shared by the workers; its tail explains start-up failures

    def __enter__(self) -> ReaderPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----- worker life -------------------------------------------------------------------
    def _start(self) -> None:
        if self._stderr is None:
            self._stderr = tempfile.TemporaryFile()
        task_r, task_w = os.pipe()
        result_r, result_w = os.pipe()
        env = dict(os.environ)
        # Make this ragpipe importable in the worker even when it is not installed.
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH", "")) if p
        )
        try:
            proc = subprocess.Popen(
                [sys.executable, "-c", _BOOT, str(task_r), str(result_w)],
                pass_fds=(task_r, result_w),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=self._stderr,
                env=env,
                start_new_session=True,  # its own process group: a kill reaches its children
            )
        finally:
            os.close(task_r)
            os.close(result_w)
        tasks = Connection(task_w, readable=False)
        results = Connection(result_r, writable=False)
        w = _Worker(proc, tasks, results, time.monotonic() + STARTUP_TIMEOUT_S)
        self.workers.append(w)
        try:
            tasks.send((os.getpid(), self.memory_mb, self.options))
        except OSError:
            pass  # it died at once; its closed result pipe will tell

    def _stop(self, w: _Worker) -> None:
        """Kill a worker and everything it started, and forget it."""
        try:
            os.killpg(w.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            w.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        w.tasks.close()
        w.results.close()
        if w in self.workers:
            self.workers.remove(w)

    def _startup_failed(self, w: _Worker) -> None:
        self._stop(w)
        self._startup_failures += 1
        if self._startup_failures >= MAX_STARTUP_FAILURES:
            detail = ""
            if self._stderr is not None:
                self._stderr.seek(0)
                lines = self._stderr.read().decode("utf-8", "replace").strip().splitlines()
                detail = f": {lines[-1]}" if lines else ""
            raise ConfigError(
                f"reader processes exit at start-up (status {w.proc.returncode}{detail}); "
                f"is ingest.memory_mb ({self.memory_mb}) too low?"
            )

    def close(self) -> None:
        """Stop all workers (a worker busy with a file is killed)."""
        for w in list(self.workers):
            self._stop(w)
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    # ----- one message or event ----------------------------------------------------------
    def _receive(self, w: _Worker, results: list[Result]) -> None:
        """Handle one message from ``w``, or its death when its pipe has closed."""
        try:
            msg = w.results.recv()
        except (EOFError, OSError):
            self._died(w, results)
            return
        if msg[0] == "ready":
            w.ready = True
        elif msg[0] == "done":
            result: Result = (msg[1], msg[2], Outcome(msg[3]), msg[4])
            results.append(result)
            w.task = None
            w.done += 1
            self._startup_failures = 0  # workers do work: failures so far were not systematic
            # After a MemoryError its heap may be fragmented or half-freed: start afresh.
            if result[2] is Outcome.MEMORY_LIMIT or w.done >= RECYCLE_AFTER:
                self._stop(w)

    def _died(self, w: _Worker, results: list[Result]) -> None:
        try:
            w.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass  # closed its pipe but lives on: _stop kills it
        if w.task is not None:
            results.append(_crash_result(w.task[1], w.proc.returncode, self.memory_mb))
            w.task = None
        if w.ready:
            self._stop(w)
        else:
            self._startup_failed(w)

    # ----- the loop ----------------------------------------------------------------------
    def map(self, files: Iterable[tuple[Path, str]]) -> Iterator[Result]:
        """Yield a result for every (path, rel) in ``files``, in completion order."""
        source = iter(files)
        pending: deque[tuple[str, str]] = deque()
        exhausted = False

        def fetch() -> tuple[str, str] | None:
            nonlocal exhausted
            if exhausted:
                return None
            try:
                path, rel = next(source)
            except StopIteration:
                exhausted = True
                return None
            return str(path), rel

        results: list[Result] = []
        while True:
            # Hand out work before yielding, so parsing overlaps what the consumer does.
            for w in list(self.workers):
                if w.ready and w.task is None:
                    task = pending.popleft() if pending else fetch()
                    if task is None:
                        break
                    try:
                        w.tasks.send(task)
                    except OSError:  # it died while idle: not this file's fault
                        pending.appendleft(task)
                        self._startup_failed(w)
                        continue
                    w.task, w.deadline = task, time.monotonic() + self.timeout_s
            while len(self.workers) < self.size:
                if len(pending) <= sum(not w.ready for w in self.workers):
                    task = fetch()
                    if task is None:
                        break
                    pending.append(task)
                self._start()
            if results:
                yield from results
                results = []
                continue
            busy = [w for w in self.workers if w.task is not None]
            if exhausted and not pending and not busy:
                return
            watched = [w for w in self.workers if w.task is not None or not w.ready]
            timeout = (
                max(0.0, min(w.deadline for w in watched) - time.monotonic()) if watched else None
            )
            by_conn = {w.results: w for w in self.workers}
            for conn in wait(list(by_conn), timeout):
                w = by_conn[conn]  # type: ignore[index]
                if w in self.workers:
                    self._receive(w, results)
            now = time.monotonic()
            for w in list(self.workers):
                if now < w.deadline or w.results.poll():
                    continue
                if w.task is not None:
                    results.append(
                        (w.task[1], None, Outcome.TIMEOUT,
                         f"parsing took longer than ingest.timeout_s ({self.timeout_s:g} s)")
                    )
                    self._stop(w)
                elif not w.ready:
                    self._startup_failed(w)


def read_many(
    files: Iterable[tuple[Path, str]], settings: IngestSettings | None = None
) -> Iterator[Result]:
    """Read files in isolated worker processes; yield (rel, document, outcome, message) for each.

    ``settings`` is an ``IngestSettings`` (``workers``, ``timeout_s``, ``memory_mb``,
    ``max_file_mb``, ``ocr``, ``ocr_lang``). Results come in completion order. The
    document is set only for ok and ok_partial; otherwise the message says why.
    """
    settings = settings or IngestSettings()
    pool = ReaderPool(
        settings.workers or cpu_count(),
        settings.timeout_s,
        settings.memory_mb,
        ReadOptions.from_settings(settings),
    )
    with pool:
        yield from pool.map(files)
