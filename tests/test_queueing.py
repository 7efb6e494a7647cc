"""The line at the answer model: first come first served, with each waiter's place."""

from __future__ import annotations

import threading
import time

import pytest

from ragpipe.queueing import Busy, TurnQueue


def test_first_come_first_served_with_places_in_line():
    q = TurnQueue()
    a, b, c = q.join(), q.join(), q.join()
    assert (a.ahead, b.ahead, c.ahead) == (0, 1, 2)
    assert a.wait(0) and not b.wait(0.01) and not c.wait(0)
    a.leave()
    assert (b.ahead, c.ahead) == (0, 1) and b.wait(0)
    c.leave()  # gave up waiting (a stopped question): the line moves without it
    d = q.join()
    assert d.ahead == 1
    b.leave()
    b.leave()  # twice is harmless
    assert d.wait(0) and len(q) == 1
    assert c.most_ahead == 2


def test_threads_are_served_in_the_order_they_joined():
    q = TurnQueue()
    order: list[int] = []
    first = q.join()
    tickets = [q.join() for _ in range(4)]

    def answer(i: int) -> None:
        with tickets[i] as t:
            while not t.wait(0.05):
                pass
            order.append(i)

    threads = [threading.Thread(target=answer, args=(i,)) for i in reversed(range(4))]
    for t in threads:
        t.start()
    assert all(t.ahead == i + 1 for i, t in enumerate(tickets))
    first.leave()
    for t in threads:
        t.join(10)
    assert order == [0, 1, 2, 3]
    assert tickets[3].waited_s > 0 and tickets[3].most_ahead == 4
    assert len(q) == 0


def test_a_ticket_left_by_an_exception_frees_the_turn():
    q = TurnQueue()
    try:
        with q.join() as t:
            assert t.wait(0)
            raise RuntimeError("the page was closed")
    except RuntimeError:
        pass
    assert q.join().wait(0)


def test_a_full_line_says_busy_at_once_and_counts_it():
    q = TurnQueue(limit=2)
    a, b = q.join(), q.join()
    with pytest.raises(Busy, match="busy: 2 questions are waiting"):
        q.join()
    assert q.refused == 1 and len(q) == 2
    a.leave()
    q.join().leave()  # a place came free
    b.leave()


def test_one_question_in_line_per_owner():
    q = TurnQueue(limit=10)
    mine = q.join("ann")
    with pytest.raises(Busy, match="previous question is still being answered"):
        q.join("ann")
    other = q.join("bob")  # others are not held up by ann
    mine.leave()
    q.join("ann").leave()  # once answered, ann may ask again
    other.leave()


def test_a_server_with_parallel_slots_runs_that_many_at_once():
    q = TurnQueue(slots=2)
    a, b, c = q.join(), q.join(), q.join()
    assert a.wait(0) and b.wait(0) and not c.wait(0.01)
    assert (a.ahead, b.ahead, c.ahead) == (0, 0, 1)
    b.leave()
    assert c.wait(0)


def test_never_two_turns_at_once_under_contention():
    q = TurnQueue(limit=8)
    inside, most, served, busy = [0], [0], [0], [0]
    guard = threading.Lock()

    def user(i: int) -> None:
        for _ in range(5):
            try:
                t = q.join(f"user{i}")
            except Busy:
                with guard:
                    busy[0] += 1
                continue
            with t:
                while not t.wait(0.01):
                    pass
                with guard:
                    inside[0] += 1
                    most[0] = max(most[0], inside[0])
                time.sleep(0.001)
                with guard:
                    inside[0] -= 1
                    served[0] += 1

    threads = [threading.Thread(target=user, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert most[0] == 1
    assert served[0] + busy[0] == 100 and busy[0] == q.refused and served[0] >= 8
    assert len(q) == 0


def test_waiting_for_an_owner_to_leave_the_line():
    q = TurnQueue()
    assert q.wait_for_owner("ann", 0)  # nothing in line
    t = q.join("ann")
    other = q.join("bob")
    assert not q.wait_for_owner("ann", 0.01)
    assert q.wait_for_owner("cid", 0)  # someone else's turn does not count
    threading.Timer(0.2, t.leave).start()
    started = time.monotonic()
    assert q.wait_for_owner("ann", 10)
    assert 0.1 < time.monotonic() - started < 5
    assert not q.wait_for_owner("bob", 0)
    other.leave()
