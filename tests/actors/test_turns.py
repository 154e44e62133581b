"""ReadTurns: an asker reading a link's DEALER for its reply, while the serve task stands aside.

Unit tests over an inproc DEALER/ROUTER pair, where delivery is synchronous,
so the interleavings that matter can be set up exactly; the node tests cover
the same over tcp.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing

import trimq
from trimq.actors._turns import ReadTurns

TIMEOUT = 10


class Served:
    """A DEALER/ROUTER pair, the DEALER's ReadTurns, and a serve task that
    records what it handles in ``got``."""

    def __init__(self, router: trimq.Socket, dealer: trimq.Socket) -> None:
        self.router = router
        self.dealer = dealer
        self.turns = ReadTurns(dealer)
        self.got: list[bytes] = []

    def peer_sends(self, *bodies: bytes) -> None:
        for body in bodies:
            self.router.send_multipart_nowait([b"d", body])

    async def serve(self) -> None:
        while True:
            message = await self.turns.next_for_server()
            self.got.append(message.frames[0])


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    async with trimq.Context() as ctx, trio.open_nursery() as nursery:
        router = ctx.socket(trimq.ROUTER)
        dealer = ctx.socket(trimq.DEALER, routing_id=b"d")
        await router.bind("inproc://turns")
        await dealer.connect("inproc://turns")
        await dealer.send(b"hello")
        assert await router.recv_multipart() == [b"d", b"hello"]
        it = Served(router, dealer)
        nursery.start_soon(it.serve)
        await trio.testing.wait_all_tasks_blocked()  # it waits in recv
        yield it
        nursery.cancel_scope.cancel()


def blocked(turns: ReadTurns) -> bool:
    return turns.blocked


async def test_the_serve_task_reads_when_nobody_else_does(served: Served) -> None:
    served.peer_sends(b"1", b"2")
    await trio.testing.wait_all_tasks_blocked()
    assert served.got == [b"1", b"2"]


async def test_an_asker_reads_while_the_serve_task_stands_aside(served: Served) -> None:
    turns = served.turns
    assert turns.take("asker")
    assert not turns.take("another")  # one reader at a time
    await trio.testing.wait_all_tasks_blocked()  # it stood aside
    served.peer_sends(b"reply", b"later")
    with trio.fail_after(TIMEOUT):
        message = await served.dealer.recv_message()
    assert message.frames == [b"reply"]
    await trio.testing.wait_all_tasks_blocked()
    assert served.got == []  # the serve task did not read meanwhile
    turns.give_back()
    await trio.testing.wait_all_tasks_blocked()
    assert served.got == [b"later"]
    # Given back, the next asker may take over at once (the serve task
    # stood aside or waits in recv: either way).
    assert turns.take("next")
    turns.give_back()


async def test_what_the_asker_hands_back_comes_first_in_order(served: Served) -> None:
    turns = served.turns
    assert turns.take("asker")
    served.peer_sends(b"call", b"after")
    message = await served.dealer.recv_message()  # not a reply: hand it back
    turns.handoff.append(message)
    turns.give_back()
    assert not turns.take("another")  # the serve task has messages to handle first
    await trio.testing.wait_all_tasks_blocked()
    assert served.got == [b"call", b"after"]


async def test_a_message_the_serve_task_got_as_an_asker_took_over_blocks_the_asker(
    served: Served,
) -> None:
    turns = served.turns
    # The serve task is woken with "first", then the asker takes over
    # before it runs: it keeps "first", and what the asker reads after
    # must go back to it, behind "first".
    served.peer_sends(b"first")
    assert turns.take("asker")
    await trio.testing.wait_all_tasks_blocked()
    assert served.got == [b"first"]
    assert blocked(turns)
    served.peer_sends(b"second")
    turns.handoff.append(await served.dealer.recv_message())
    turns.give_back()
    assert not blocked(turns)
    await trio.testing.wait_all_tasks_blocked()
    assert served.got == [b"first", b"second"]


async def test_a_busy_serve_task_keeps_its_turn() -> None:
    async with trimq.Context() as ctx:
        turns = ReadTurns(ctx.socket(trimq.DEALER))
        # Neither in recv nor aside: handling a message (here: never started).
        assert not turns.take("asker")
        assert turns.asker is None
