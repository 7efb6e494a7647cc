"""Turns at the answer model, first come first served, with each waiter's place in line.

One llama.cpp context answers one question at a time (its lock, generation.py). A
lock says nothing about who is next or how many are ahead, so the web app queues its
questions here first: a question joins the line, waits while others are ahead (the page
shows how many), answers when it is at the front, and leaves, letting the next one go.
"""

from __future__ import annotations

import itertools
import threading
import time
from types import TracebackType


class TurnQueue:
    """A first-come-first-served line for one shared resource."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._line: list[int] = []
        self._numbers = itertools.count(1)

    def join(self) -> Ticket:
        """Get in line; leave with ``Ticket.leave`` (or use the ticket as a ``with`` block)."""
        with self._cond:
            number = next(self._numbers)
            self._line.append(number)
            return Ticket(self, number)

    def __len__(self) -> int:
        """Questions in line, the one being answered included."""
        with self._cond:
            return len(self._line)

    def _ahead(self, number: int) -> int:
        with self._cond:
            return self._line.index(number) if number in self._line else 0

    def _wait(self, number: int, timeout: float | None) -> bool:
        with self._cond:
            return self._cond.wait_for(
                lambda: not self._line or self._line[0] == number or number not in self._line,
                timeout,
            )

    def _leave(self, number: int) -> None:
        with self._cond:
            if number in self._line:
                self._line.remove(number)
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
