"""The latency shortcuts: writes from the sending task and reads by a task blocked in recv.

A REQ/REP socket writes each message from the sending task (``flush_on_send``);
other sockets write queued messages when a task is about to block in ``recv``
(``flush_now``); and a task blocked in ``recv`` on a one-connection socket waits
on the connection itself (``wait_input``). These tests check that the shortcuts
keep every guarantee of the normal path: nothing lost or reordered when the
kernel takes only part of a write, other peers still wake the receiver, a peer
that leaves or breaks the protocol does not make the receiver spin, and
cancellation still works.
"""

from __future__ import annotations

import trio
import trio.testing

import trimq
from trimq.zmtp import SocketType

from .test_hostile import raw_handshake

TIMEOUT = 10
BIG = 16 * 1024 * 1024  # far more than a loopback socket buffer takes at once


async def _connected(
    ctx: trimq.Context, server_type: trimq.SocketType, client_type: trimq.SocketType
) -> tuple[trimq.Socket, trimq.Socket]:
    server = ctx.socket(server_type, linger=0)
    endpoint = await server.bind("tcp://127.0.0.1:*")
    client = ctx.socket(client_type, linger=0)
    async with server.monitor() as events:
        await client.connect(endpoint)
        await events.wait_for(trimq.EventType.HANDSHAKE_SUCCEEDED)
    return server, client


async def test_req_rep_messages_larger_than_the_socket_buffer() -> None:
    """The direct write takes part of the message; the writer task sends the rest."""
    request = bytes(range(256)) * (BIG // 256)
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            rep, req = await _connected(ctx, trimq.REP, trimq.REQ)

            async def serve() -> None:
                for _ in range(3):
                    msg = await rep.recv_multipart()
                    await rep.send_multipart([b"ok", msg[-1][-8:], msg[0][:4]])

            async with trio.open_nursery() as nursery:
                nursery.start_soon(serve)
                for i in range(3):
                    await req.send_multipart([b"%d" % i, request])
                    assert await req.recv_multipart() == [b"ok", request[-8:], b"%d" % i]


async def test_dealer_burst_then_block_keeps_order() -> None:
    """Messages written by flush_now and by the writer task arrive in order."""
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            router, dealer = await _connected(ctx, trimq.ROUTER, trimq.DEALER)
            sizes = [10, BIG, 10, 70_000, 3]
            for i, size in enumerate(sizes):
                await dealer.send_multipart([b"%d" % i, bytes(size)])
            got = []

            async def echo() -> None:
                for _ in sizes:
                    ident, index, body = await router.recv_multipart()
                    got.append((int(index), len(body)))
                    await router.send_multipart([ident, index])

            async with trio.open_nursery() as nursery:
                nursery.start_soon(echo)
                # Blocks at once: flush_now writes what the writer has not taken.
                replies = [await dealer.recv() for _ in sizes]
            assert replies == [b"%d" % i for i in range(len(sizes))]
            assert got == list(enumerate(sizes))


async def test_a_second_peer_wakes_a_receiver_waiting_on_the_first() -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            pull, _first = await _connected(ctx, trimq.PULL, trimq.PUSH)
            endpoint = pull.last_endpoint
            received: list[bytes] = []

            async def receive() -> None:
                received.append(await pull.recv())

            async with trio.open_nursery() as nursery:
                nursery.start_soon(receive)
                await trio.testing.wait_all_tasks_blocked()
                second = ctx.socket(trimq.PUSH, linger=0)
                await second.connect(endpoint)
                await second.send(b"from the second peer")
            assert received == [b"from the second peer"]
            assert pull.statistics().peers == 2


async def test_an_inproc_peer_wakes_a_receiver_waiting_on_a_tcp_peer() -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            pull, _ = await _connected(ctx, trimq.PULL, trimq.PUSH)
            await pull.bind("inproc://direct-io")
            received: list[bytes] = []

            async def receive() -> None:
                received.append(await pull.recv())

            async with trio.open_nursery() as nursery:
                nursery.start_soon(receive)
                await trio.testing.wait_all_tasks_blocked()
                local = ctx.socket(trimq.PUSH)
                await local.connect("inproc://direct-io")
                await local.send(b"inproc")
            assert received == [b"inproc"]


async def test_peer_leaving_while_we_wait_does_not_spin() -> None:
    """EOF keeps the descriptor readable; the waiting task must not busy-loop on it."""
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            pull, push = await _connected(ctx, trimq.PULL, trimq.PUSH)
            endpoint = pull.last_endpoint
            received: list[bytes] = []

            async def receive() -> None:
                received.append(await pull.recv())

            async with trio.open_nursery() as nursery:
                nursery.start_soon(receive)
                await trio.testing.wait_all_tasks_blocked()
                async with pull.monitor() as events:
                    await push.aclose()
                    await events.wait_for(trimq.EventType.DISCONNECTED)
                # A spinning receiver would never let every task block.
                await trio.testing.wait_all_tasks_blocked()
                assert received == []
                again = ctx.socket(trimq.PUSH, linger=0)
                await again.connect(endpoint)
                await again.send(b"after")
            assert received == [b"after"]


async def test_protocol_error_read_by_the_waiting_task_drops_only_that_peer() -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            pull = ctx.socket(trimq.PULL, linger=0)
            endpoint = await pull.bind("tcp://127.0.0.1:*")
            host, port = endpoint.removeprefix("tcp://").rsplit(":", 1)
            received: list[list[bytes]] = []

            async def receive() -> None:
                received.append(await pull.recv_multipart())

            raw = await trio.open_tcp_stream(host, int(port))
            async with raw:
                await raw_handshake(raw, SocketType.PUSH)
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(receive)
                    await trio.testing.wait_all_tasks_blocked()
                    async with pull.monitor() as events:
                        # One whole message, then a command frame with MORE set.
                        await raw.send_all(b"\x00\x02ok" + b"\x05\x05\x04PING")
                        await events.wait_for(trimq.EventType.DISCONNECTED)
                assert received == [[b"ok"]]
            assert pull.statistics().protocol_errors == 1
            good = ctx.socket(trimq.PUSH, linger=0)
            await good.connect(endpoint)
            await good.send(b"still serving")
            assert await pull.recv() == b"still serving"


async def test_cancelling_a_receiver_waiting_on_the_connection() -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            pull, push = await _connected(ctx, trimq.PULL, trimq.PUSH)
            with trio.move_on_after(0.05) as scope:
                await pull.recv()
            assert scope.cancelled_caught
            await push.send(b"next")
            assert await pull.recv() == b"next"


async def test_closing_the_socket_wakes_a_receiver_waiting_on_the_connection() -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            pull, _ = await _connected(ctx, trimq.PULL, trimq.PUSH)
            outcome: list[str] = []

            async def receive() -> None:
                try:
                    await pull.recv()
                except trio.ClosedResourceError:
                    outcome.append("closed")

            async with trio.open_nursery() as nursery:
                nursery.start_soon(receive)
                await trio.testing.wait_all_tasks_blocked()
                await pull.aclose()
            assert outcome == ["closed"]


async def test_a_sender_that_never_receives_keeps_no_state_for_gone_peers() -> None:
    """Connections register for flush-before-recv; a PUSH never drains that list,
    so each connection must take its entry with it when it ends."""
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            push = ctx.socket(trimq.PUSH, linger=0)
            endpoint = await push.bind("tcp://127.0.0.1:*")
            for round_ in range(5):
                pull = ctx.socket(trimq.PULL, linger=0)
                async with push.monitor() as events:
                    await pull.connect(endpoint)
                    await events.wait_for(trimq.EventType.HANDSHAKE_SUCCEEDED)
                    await push.send(b"%d" % round_)
                    assert await pull.recv() == b"%d" % round_
                    await pull.aclose()
                    await events.wait_for(trimq.EventType.DISCONNECTED)
            assert not push.unflushed
