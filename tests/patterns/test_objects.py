"""send_object / recv_object: Python objects between inproc sockets, uncopied."""

from __future__ import annotations

import pytest
import trio
import trio.testing

import trimq

from ._helpers import TIMEOUT


class Payload:
    def __init__(self, value: int) -> None:
        self.value = value


@pytest.mark.parametrize(
    ("sender", "receiver"),
    [(trimq.PAIR, trimq.PAIR), (trimq.PUSH, trimq.PULL), (trimq.DEALER, trimq.DEALER)],
)
async def test_objects_arrive_as_themselves_in_order(
    sender: trimq.SocketType, receiver: trimq.SocketType
) -> None:
    async with trimq.Context() as ctx:
        rx = ctx.socket(receiver)
        tx = ctx.socket(sender)
        await rx.bind("inproc://objects")
        await tx.connect("inproc://objects")
        sent = [Payload(i) for i in range(100)] + [b"bytes too", None, {"a": [1]}]
        with trio.fail_after(TIMEOUT):
            for obj in sent:
                await tx.send_object(obj)
            got = [await rx.recv_object() for _ in sent]
        assert all(a is b for a, b in zip(got, sent, strict=True))


async def test_objects_wait_at_the_high_water_mark() -> None:
    async with trimq.Context() as ctx, trio.open_nursery() as nursery:
        rx = ctx.socket(trimq.PAIR, rcvhwm=2)
        tx = ctx.socket(trimq.PAIR, sndhwm=2)
        await rx.bind("inproc://hwm")
        await tx.connect("inproc://hwm")
        sent: list[int] = []

        async def flood() -> None:
            while True:
                await tx.send_object(Payload(len(sent)))
                sent.append(len(sent))

        nursery.start_soon(flood)
        await trio.testing.wait_all_tasks_blocked()
        assert 2 <= len(sent) <= 4  # the pipe's combined HWM, then send waits
        nursery.cancel_scope.cancel()
        with trio.fail_after(TIMEOUT):
            values = [getattr(await rx.recv_object(), "value", None) for _ in sent]
        assert values == sent


async def test_send_object_nowait_queues_now_or_raises_would_block() -> None:
    async with trimq.Context() as ctx:
        rx, tx = ctx.pipe(sndhwm=1, rcvhwm=1)
        first, second = Payload(1), Payload(2)
        tx.send_object_nowait(first)
        tx.send_object_nowait(second)  # the pipe's combined HWM is 2
        with pytest.raises(trio.WouldBlock):
            tx.send_object_nowait(Payload(3))
        with pytest.raises(trimq.NotSupportedError, match="PAIR, PUSH and DEALER"):
            ctx.socket(trimq.ROUTER).send_object_nowait(first)
        got: list[object] = [rx.recv_multipart_nowait()[0] for _ in range(2)]
        assert got[0] is first
        assert got[1] is second
        assert tx.statistics().messages_sent == 2
        await tx.aclose()
        with pytest.raises(trio.ClosedResourceError):
            tx.send_object_nowait(first)


async def test_objects_cannot_leave_the_process() -> None:
    async with trimq.Context() as ctx:
        rx = ctx.socket(trimq.PAIR)
        tx = ctx.socket(trimq.PAIR)
        await tx.connect(await rx.bind("tcp://127.0.0.1:*"))
        with pytest.raises(trimq.NotSupportedError, match="objects cannot leave the process"):
            await tx.send_object(Payload(1))
        assert tx.statistics().messages_sent == 0


@pytest.mark.parametrize("kind", [trimq.PUB, trimq.ROUTER, trimq.REQ])
async def test_only_types_that_do_not_read_frames_send_objects(kind: trimq.SocketType) -> None:
    async with trimq.Context() as ctx:
        sock = ctx.socket(kind)
        await sock.bind("inproc://kinds")
        with pytest.raises(trimq.NotSupportedError, match="PAIR, PUSH and DEALER"):
            await sock.send_object(Payload(1))


@pytest.mark.parametrize("kind", [trimq.PAIR, trimq.ROUTER])
async def test_topics_are_for_publishers(kind: trimq.SocketType) -> None:
    async with trimq.Context() as ctx:
        sock = ctx.socket(kind)
        with pytest.raises(trimq.NotSupportedError, match="for PUB and XPUB"):
            await sock.send_object(Payload(1), topic=b"t")


async def test_published_objects_are_filtered_by_topic() -> None:
    async with trimq.Context() as ctx:
        pub = ctx.socket(trimq.PUB)
        sub = ctx.socket(trimq.SUB)
        await pub.bind("inproc://bus")
        await sub.connect("inproc://bus")
        sub.subscribe(b"chat.")
        event = Payload(7)
        await pub.send_object(Payload(0), topic=b"news.x")
        await pub.send_object(event, topic=b"chat.room")
        with trio.fail_after(TIMEOUT):
            topic, got = await sub.recv_multipart()
        assert topic == b"chat.room"
        assert got is event  # type: ignore[comparison-overlap]


async def test_a_half_built_message_is_not_mixed_with_an_object() -> None:
    async with trimq.Context() as ctx:
        rx = ctx.socket(trimq.PAIR)
        tx = ctx.socket(trimq.PAIR)
        await rx.bind("inproc://half")
        await tx.connect("inproc://half")
        await tx.send(b"head", more=True)
        with pytest.raises(trimq.SocketStateError, match="more=True"):
            await tx.send_object(Payload(1))
        await tx.send(b"tail")
        with trio.fail_after(TIMEOUT):
            assert await rx.recv_multipart() == [b"head", b"tail"]
