"""Message queues and Waiters: lazy inproc queues, waking and cancellation."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

import trimq
from trimq.transport import NO_ITEMS, MsgQueue, Waiters


def test_a_lazy_queue_holds_no_deque_while_empty() -> None:
    woken: list[str] = []

    class Reader:
        def queue_readable(self) -> None:
            woken.append("readable")

    q = MsgQueue(2, lazy=True)
    q.reader = Reader()
    assert q.items is NO_ITEMS
    q.put([b"a"])
    q.put([b"b"])
    assert q.full()
    assert woken == ["readable"]
    assert q.get() == [b"a"]
    assert q.get() == [b"b"]
    q.release()
    assert q.items is NO_ITEMS
    with pytest.raises(AttributeError):
        q.items.append([b"lost"])  # a write that skips writable() fails loudly
    q.writable().append([b"c"])
    assert list(q.items) == [[b"c"]]
    q.clear()
    assert q.items is NO_ITEMS


def test_conflating_and_eager_queues_keep_their_deque() -> None:
    conflating = MsgQueue(5, conflate=True, lazy=True)
    eager = MsgQueue(5)
    for q in (conflating, eager):
        q.put([b"x"])
        q.get()
        q.release()
        assert q.items is not NO_ITEMS
    conflating.put([b"1"])
    conflating.put([b"2"])
    assert list(conflating.items) == [[b"2"]]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(1, 5)), min_size=1, max_size=30))
def test_inproc_pair_keeps_order_through_lazy_queues(steps: list[tuple[bool, int]]) -> None:
    """Bursts of sends and receives, with the queue drained, freed and regrown
    between them, and the HWM reached: every message arrives once, in order."""

    async def main() -> None:
        async with trimq.Context() as ctx:
            a = ctx.socket(trimq.PAIR, sndhwm=1, rcvhwm=2, linger=0)
            b = ctx.socket(trimq.PAIR, sndhwm=1, rcvhwm=2, linger=0)
            await a.bind("inproc://lazy")
            await b.connect("inproc://lazy")
            sent = received = 0
            for send, count in steps:
                for _ in range(count):
                    if send:
                        try:
                            a.send_nowait(b"%d" % sent)
                        except trio.WouldBlock:
                            break
                        sent += 1
                    elif received < sent:
                        assert await b.recv() == b"%d" % received
                        received += 1
            while received < sent:
                assert await b.recv() == b"%d" % received
                received += 1
            assert b.pipes[0].inq.items is NO_ITEMS  # drained: no deque kept

    trio.run(main)


async def test_a_cancelled_waiter_leaves_and_the_others_still_wake() -> None:
    waiters = Waiters()
    woken: list[int] = []

    async def wait(n: int, task_status: trio.TaskStatus[trio.CancelScope]) -> None:
        with trio.CancelScope() as scope:
            task_status.started(scope)
            await waiters.wait()
            woken.append(n)

    async with trio.open_nursery() as nursery:
        scopes = [await nursery.start(wait, n) for n in range(3)]
        await trio.testing.wait_all_tasks_blocked()
        assert waiters
        scopes[1].cancel()
        await trio.testing.wait_all_tasks_blocked()
        waiters.wake()
    assert sorted(woken) == [0, 2]
    assert not waiters
