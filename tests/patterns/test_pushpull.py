"""PUSH/PULL: load balancing, fair queueing, blocking when mute, multipart atomicity."""

from __future__ import annotations

import pytest
import trio

import trimq

from ._helpers import TIMEOUT, bind_endpoint, fill, link, settle


@pytest.mark.parametrize("transport", ["inproc", "tcp", "ipc"])
async def test_round_trip(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            pull = ctx.socket(trimq.PULL)
            bound = await pull.bind(endpoint)
            push = ctx.socket(trimq.PUSH)
            await push.connect(bound)
            await push.send_multipart([b"a", b"b"])
            assert await pull.recv_multipart() == [b"a", b"b"]


async def test_push_load_balances_round_robin(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            push = ctx.socket(trimq.PUSH)
            bound = await push.bind(endpoint)
            pulls = [ctx.socket(trimq.PULL) for _ in range(3)]
            for pull in pulls:
                await link(push, pull, bound)
            for i in range(9):
                await push.send(b"%d" % i)
            got = [[int(await pull.recv()) for _ in range(3)] for pull in pulls]
            # Each PULL got every third message, in order.
            assert sorted(got) == [[0, 3, 6], [1, 4, 7], [2, 5, 8]]
            await settle()
            for pull in pulls:
                with pytest.raises(trio.WouldBlock):
                    pull.recv_nowait()


async def test_pull_fair_queues(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            pull = ctx.socket(trimq.PULL)
            bound = await pull.bind(endpoint)
            pushes = [ctx.socket(trimq.PUSH) for _ in range(3)]
            for i, push in enumerate(pushes):
                await link(pull, push, bound)
                for j in range(4):
                    await push.send_multipart([b"%d" % i, b"%d" % j])
            await settle()  # every message is now queued at the PULL
            got = [await pull.recv_multipart() for _ in range(12)]
            senders = [int(m[0]) for m in got]
            # Fair queueing: every round of three takes one message from each sender ...
            for k in range(0, 12, 3):
                assert sorted(senders[k : k + 3]) == [0, 1, 2]
            # ... and each sender's messages stay in order.
            for i in range(3):
                assert [int(m[1]) for m in got if m[0] == b"%d" % i] == [0, 1, 2, 3]


async def test_push_without_peer_blocks(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            push = ctx.socket(trimq.PUSH)
            bound = await push.bind(endpoint)  # a bound socket has no pipe yet
            with pytest.raises(trio.WouldBlock):
                push.send_nowait(b"x")
            done = trio.Event()

            async def sender() -> None:
                await push.send(b"first")
                done.set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(sender)
                await settle()
                assert not done.is_set()  # still waiting for a peer
                pull = ctx.socket(trimq.PULL)
                await pull.connect(bound)
                assert await pull.recv() == b"first"
            assert done.is_set()


async def test_push_blocks_when_all_peers_full(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            pull = ctx.socket(trimq.PULL, rcvhwm=1)
            bound = await pull.bind(endpoint)
            push = ctx.socket(trimq.PUSH, sndhwm=1, linger=0)
            await link(pull, push, bound)
            payload = b"x" * 256 * 1024
            sent = await fill(push, payload)
            assert sent >= 2
            with pytest.raises(trio.WouldBlock):
                push.send_nowait(payload)
            blocked = trio.Event()

            async def sender() -> None:
                blocked.set()
                await push.send(b"last")

            async with trio.open_nursery() as nursery:
                nursery.start_soon(sender)
                await blocked.wait()
                await settle()
                # Draining the PULL unblocks the sender; nothing was dropped.
                for _ in range(sent):
                    assert await pull.recv() == payload
                assert await pull.recv() == b"last"
            assert push.statistics().messages_dropped == 0
            assert push.statistics().messages_sent == sent + 1


@pytest.mark.parametrize("transport", ["inproc", "tcp", "ipc"])
async def test_multipart_is_atomic(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            pull = ctx.socket(trimq.PULL, rcvhwm=2)
            bound = await pull.bind(endpoint)
            push = ctx.socket(trimq.PUSH, sndhwm=2)
            await link(pull, push, bound)

            # A message built with more=True is invisible until its last frame.
            await push.send(b"head", more=True)
            await push.send(b"body", more=True)
            await settle()
            with pytest.raises(trio.WouldBlock):
                pull.recv_nowait()
            await push.send(b"tail")
            assert await pull.recv_multipart() == [b"head", b"body", b"tail"]

            # Several tasks sending multipart messages through a tiny HWM: never interleaved.
            async def sender(n: int) -> None:
                for j in range(20):
                    await push.send_multipart([b"%d" % n, b"%d" % j, b"%d-%d" % (n, j)])

            async with trio.open_nursery() as nursery:
                for n in range(4):
                    nursery.start_soon(sender, n)
                seen: dict[bytes, list[int]] = {}
                for _ in range(80):
                    msg = await pull.recv_multipart()
                    assert len(msg) == 3
                    assert msg[2] == msg[0] + b"-" + msg[1]
                    seen.setdefault(msg[0], []).append(int(msg[1]))
            assert seen == {b"%d" % n: list(range(20)) for n in range(4)}


async def test_push_skips_a_departed_peer(transport: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            push = ctx.socket(trimq.PUSH)
            bound = await push.bind(bind_endpoint(transport))
            pulls = [ctx.socket(trimq.PULL) for _ in range(3)]
            for pull in pulls:
                await link(push, pull, bound)
            async with push.monitor() as events:
                await pulls[1].aclose()
                if transport != "inproc":
                    await events.wait_for(trimq.EventType.DISCONNECTED)
            assert push.statistics().peers == 2
            for i in range(10):
                await push.send(b"%d" % i)
            got = [await pulls[0].recv() for _ in range(5)] + [
                await pulls[2].recv() for _ in range(5)
            ]
            assert sorted(got, key=int) == [b"%d" % i for i in range(10)]


async def test_messages_already_received_survive_the_sender_leaving(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            pull = ctx.socket(trimq.PULL)
            bound = await pull.bind(endpoint)
            push = ctx.socket(trimq.PUSH)
            await link(pull, push, bound)
            for i in range(3):
                await push.send(b"%d" % i)
            async with pull.monitor() as events:
                await push.aclose()
                if not endpoint.startswith("inproc://"):
                    await events.wait_for(trimq.EventType.DISCONNECTED)
            assert pull.statistics().peers == 0
            assert [await pull.recv() for _ in range(3)] == [b"0", b"1", b"2"]


async def test_disconnect_before_bind_cancels_the_pending_inproc_connection() -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            push = ctx.socket(trimq.PUSH)
            await push.connect("inproc://pending-then-gone")
            push.send_nowait(b"queued")
            await push.disconnect("inproc://pending-then-gone")
            pull = ctx.socket(trimq.PULL)
            await pull.bind("inproc://pending-then-gone")
            await settle()
            assert pull.statistics().peers == 0
            with pytest.raises(trio.WouldBlock):
                pull.recv_nowait()
