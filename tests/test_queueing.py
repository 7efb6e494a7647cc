"""The line at the answer model: first come first served, with each waiter's place."""

from __future__ import annotations

import threading

from ragpipe.queueing import TurnQueue


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
