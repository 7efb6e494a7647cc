"""Turns at the answer model, first come first served, with each waiter's place in line.

One llama.cpp context answers one question at a time (its lock, generation.py). A
lock says nothing about who is next or how many are ahead, so the web app queues its
questions here first: a question joins the line, waits while others are ahead (the page
shows how many), answers when it is at the front, and leaves, letting the next one go.
The whole turn is held by one ticket, the judge's turn included, so another user's
answer never runs between an answer and its check.

The line is bounded (``limit``, setting server.queue_limit): one more question gets
``Busy`` at once, a clear "try again" instead of a wait nobody can see the end of. An
owner (a signed-in user or a browser) has at most one question in line; a second is
``Busy`` too, so one person cannot take every place. ``slots`` turns may run at once: 1
for an in-process model, a server's parallel slots for a server backend.
"""

from __future__ import annotations

import itertools
import threading
import time
from types import TracebackType

from .errors import RagpipeError


class Busy(RagpipeError):
    """The line is full, or this owner already has a question in it."""


class TurnQueue:
    """A bounded first-come-first-served line for one shared resource."""

    def __init__(self, limit: int | None = None, slots: int = 1) -> None:
        self._cond = threading.Condition()
        self._line: list[int] = []
        self._owners: dict[int, str] = {}
        self._numbers = itertools.count(1)
        self.limit = limit
        self.slots = max(1, slots)
        self.refused = 0  # questions told "busy" so far

    def join(self, owner: str | None = None) -> Ticket:
        """Get in line; leave with ``Ticket.leave`` (or use the ticket as a ``with`` block).

        Raises Busy when ``limit`` questions are in line already, or ``owner`` has one.
        """
        with self._cond:
            if owner is not None and owner in self._owners.values():
                self.refused += 1
                raise Busy("your previous question is still being answered: wait for it, "
                           "or stop it, before asking the next")
            if self.limit is not None and len(self._line) >= self.limit:
                self.refused += 1
                raise Busy(f"busy: {len(self._line)} questions are waiting for the model; "
                           "try again in a minute")
            number = next(self._numbers)
            self._line.append(number)
            if owner is not None:
                self._owners[number] = owner
            return Ticket(self, number)

    def wait_for_owner(self, owner: str, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds until ``owner`` has no question in line.

        True once it has none (at once when it had none). The web app waits here after
        a click that stopped an answer: the stopped run stores its last line, then leaves.
        """
        with self._cond:
            return self._cond.wait_for(lambda: owner not in self._owners.values(), timeout)

    def __len__(self) -> int:
        """Questions in line, the one being answered included."""
        with self._cond:
            return len(self._line)

    def _ahead(self, number: int) -> int:
        """Questions that must finish before this one may start (0: its turn)."""
        with self._cond:
            if number not in self._line:
                return 0
            return max(0, self._line.index(number) - self.slots + 1)

    def _wait(self, number: int, timeout: float | None) -> bool:
        with self._cond:
            return self._cond.wait_for(
                lambda: number not in self._line or self._line.index(number) < self.slots,
                timeout,
            )

    def _leave(self, number: int) -> None:
        with self._cond:
            if number in self._line:
                self._line.remove(number)
                self._owners.pop(number, None)
                self._cond.notify_all()


class Ticket:
    """A place in a TurnQueue."""

    def __init__(self, queue: TurnQueue, number: int) -> None:
        self._queue = queue
        self.number = number
        self.joined = time.monotonic()
        self.waited_s = 0.0  # time spent in line before the turn came
        self.most_ahead = 0  # the longest line seen ahead of this ticket

    @property
    def ahead(self) -> int:
        """How many are ahead in line (0: this ticket's turn)."""
        n = self._queue._ahead(self.number)
        self.most_ahead = max(self.most_ahead, n)
        return n

    def wait(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds for this ticket's turn; True when it has come."""
        self.ahead  # noqa: B018 - records the line's length as first seen
        turn = self._queue._wait(self.number, timeout)
        if turn:
            self.waited_s = time.monotonic() - self.joined
        return turn

    def leave(self) -> None:
        """Leave the line (done, or gave up); the next in line goes. Safe to call twice."""
        self._queue._leave(self.number)

    def __enter__(self) -> Ticket:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.leave()
