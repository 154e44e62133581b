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


@pytest.fixture
async def sockets() -> AsyncIterator[tuple[trimq.Socket, trimq.Socket]]:
    async with trimq.Context() as ctx:
        router = ctx.socket(trimq.ROUTER)
        dealer = ctx.socket(trimq.DEALER, routing_id=b"d")
        await router.bind("inproc://turns")
        await dealer.connect("inproc://turns")
        await dealer.send(b"hello")
        assert await router.recv_multipart() == [b"d", b"hello"]
        yield router, dealer


def blocked(turns: ReadTurns) -> bool:
    return turns.blocked


async def serve(turns: ReadTurns, got: list[bytes]) -> None:
    while True:
        message = await turns.next_for_server()
        got.append(message.frames[0])


async def test_the_serve_task_reads_when_nobody_else_does(
    sockets: tuple[trimq.Socket, trimq.Socket],
) -> None:
    router, dealer = sockets
    turns = ReadTurns(dealer)
    got: list[bytes] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve, turns, got)
        for body in (b"1", b"2"):
            router.send_multipart_nowait([b"d", body])
        await trio.testing.wait_all_tasks_blocked()
        assert got == [b"1", b"2"]
        nursery.cancel_scope.cancel()


async def test_an_asker_reads_while_the_serve_task_stands_aside(
    sockets: tuple[trimq.Socket, trimq.Socket],
) -> None:
    router, dealer = sockets
    turns = ReadTurns(dealer)
    got: list[bytes] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve, turns, got)
        await trio.testing.wait_all_tasks_blocked()  # the serve task waits in recv
        assert turns.take("asker")
        assert not turns.take("another")  # one reader at a time
        await trio.testing.wait_all_tasks_blocked()  # it stood aside
        router.send_multipart_nowait([b"d", b"reply"])
        router.send_multipart_nowait([b"d", b"later"])
        with trio.fail_after(TIMEOUT):
            message = await dealer.recv_message()
        assert message.frames == [b"reply"]
        await trio.testing.wait_all_tasks_blocked()
        assert got == []  # the serve task did not read meanwhile
        turns.give_back()
        await trio.testing.wait_all_tasks_blocked()
        assert got == [b"later"]
        # Given back, the next asker may take over at once (the serve task
        # stood aside or waits in recv: either way).
        assert turns.take("next")
        turns.give_back()
        nursery.cancel_scope.cancel()


async def test_what_the_asker_hands_back_comes_first_in_order(
    sockets: tuple[trimq.Socket, trimq.Socket],
) -> None:
    router, dealer = sockets
    turns = ReadTurns(dealer)
    got: list[bytes] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve, turns, got)
        await trio.testing.wait_all_tasks_blocked()
        assert turns.take("asker")
        for body in (b"call", b"after"):
            router.send_multipart_nowait([b"d", body])
        message = await dealer.recv_message()  # not a reply: hand it back
        turns.handoff.append(message)
        turns.give_back()
        assert not turns.take("another")  # the serve task has messages to handle first
        await trio.testing.wait_all_tasks_blocked()
        assert got == [b"call", b"after"]
        nursery.cancel_scope.cancel()


async def test_a_message_the_serve_task_got_as_an_asker_took_over_blocks_the_asker(
    sockets: tuple[trimq.Socket, trimq.Socket],
) -> None:
    router, dealer = sockets
    turns = ReadTurns(dealer)
    got: list[bytes] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve, turns, got)
        await trio.testing.wait_all_tasks_blocked()
        # The serve task is woken with "first", then the asker takes over
        # before it runs: it keeps "first", and what the asker reads after
        # must go back to it, behind "first".
        router.send_multipart_nowait([b"d", b"first"])
        assert turns.take("asker")
        await trio.testing.wait_all_tasks_blocked()
        assert got == [b"first"]
        assert blocked(turns)
        router.send_multipart_nowait([b"d", b"second"])
        turns.handoff.append(await dealer.recv_message())
        turns.give_back()
        assert not blocked(turns)
        await trio.testing.wait_all_tasks_blocked()
        assert got == [b"first", b"second"]
        nursery.cancel_scope.cancel()


async def test_a_busy_serve_task_keeps_its_turn(
    sockets: tuple[trimq.Socket, trimq.Socket],
) -> None:
    _, dealer = sockets
    turns = ReadTurns(dealer)
    # Neither in recv nor aside: handling a message (here: never started).
    assert not turns.take("asker")
    assert turns.asker is None
