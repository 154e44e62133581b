"""High-water marks: blocking types wait, dropping types drop; 0 is unlimited."""

from __future__ import annotations

import pytest
import trio

import trimq

from ._helpers import TIMEOUT, bind_endpoint, fill, link, settle

BLOCKING = [
    pytest.param(trimq.PUSH, trimq.PULL, id="push-pull"),
    pytest.param(trimq.DEALER, trimq.DEALER, id="dealer-dealer"),
    pytest.param(trimq.PAIR, trimq.PAIR, id="pair-pair"),
]


async def _drain(sock: trimq.Socket) -> int:
    """Receive until nothing more arrives; return how many messages came."""
    count = 0
    while True:
        await settle()
        try:
            sock.recv_nowait()
        except trio.WouldBlock:
            return count
        count += 1


@pytest.mark.parametrize(("sender_type", "receiver_type"), BLOCKING)
@pytest.mark.parametrize("sender_binds", [False, True], ids=["receiver-binds", "sender-binds"])
async def test_inproc_capacity_is_sndhwm_plus_rcvhwm(
    sender_type: trimq.SocketType, receiver_type: trimq.SocketType, sender_binds: bool
) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            sender = ctx.socket(sender_type, sndhwm=3, rcvhwm=50)
            receiver = ctx.socket(receiver_type, sndhwm=70, rcvhwm=4)
            endpoint = bind_endpoint("inproc")
            if sender_binds:
                await link(sender, receiver, await sender.bind(endpoint))
            else:
                await link(receiver, sender, await receiver.bind(endpoint))
            for i in range(7):
                sender.send_nowait(b"%d" % i)
            with pytest.raises(trio.WouldBlock):
                sender.send_nowait(b"7")
            assert sender.statistics().messages_dropped == 0
            assert await receiver.recv() == b"0"
            sender.send_nowait(b"7")
            assert [await receiver.recv() for _ in range(7)] == [b"%d" % i for i in range(1, 8)]


@pytest.mark.parametrize(("sender_type", "receiver_type"), BLOCKING)
async def test_blocking_types_wait_when_full_over_tcp(
    sender_type: trimq.SocketType, receiver_type: trimq.SocketType
) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            receiver = ctx.socket(receiver_type, rcvhwm=2)
            bound = await receiver.bind(bind_endpoint("tcp"))
            sender = ctx.socket(sender_type, sndhwm=2, linger=0)
            await link(receiver, sender, bound)
            payload = b"p" * 200_000
            sent = await fill(sender, payload)
            assert sent >= 4  # at least both HWMs' worth, plus whatever the kernel buffers
            stats = sender.statistics()
            assert (stats.messages_sent, stats.messages_dropped) == (sent, 0)
            for _ in range(sent):  # nothing was lost
                assert await receiver.recv() == payload
            await settle()
            with pytest.raises(trio.WouldBlock):
                receiver.recv_nowait()


async def test_router_drops_for_a_full_peer(transport: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            router = ctx.socket(trimq.ROUTER, sndhwm=2)
            bound = await router.bind(bind_endpoint(transport))
            dealer = ctx.socket(trimq.DEALER, routing_id=b"d", rcvhwm=1)
            await link(router, dealer, bound)
            for i in range(10):  # no checkpoint in between: nothing drains meanwhile
                router.send_multipart_nowait([b"d", b"%d" % i])  # never blocks
            capacity = 3 if transport == "inproc" else 2
            assert router.statistics().messages_dropped == 10 - capacity
            assert [await dealer.recv() for _ in range(capacity)] == [
                b"%d" % i for i in range(capacity)
            ]
            await settle()
            with pytest.raises(trio.WouldBlock):
                dealer.recv_nowait()


@pytest.mark.parametrize("transport", ["inproc", "tcp", "ipc"])
async def test_hwm_zero_is_unlimited(transport: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            pull = ctx.socket(trimq.PULL, rcvhwm=0)
            bound = await pull.bind(bind_endpoint(transport))
            push = ctx.socket(trimq.PUSH, sndhwm=0)
            await link(pull, push, bound)
            n = 5000
            for i in range(n):  # never WouldBlock, however far ahead of the reader
                push.send_nowait(b"%d" % i)
            assert push.statistics().messages_sent == n
            for i in range(n):
                assert await pull.recv() == b"%d" % i


async def test_pub_hwm_zero_never_drops(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            pub = ctx.socket(trimq.PUB, sndhwm=0)
            bound = await pub.bind(endpoint)
            sub = ctx.socket(trimq.SUB, rcvhwm=0)
            sub.subscribe(b"")
            await link(pub, sub, bound)
            await settle()
            for i in range(3000):
                pub.send_nowait(b"%d" % i)
            assert pub.statistics().messages_dropped == 0
            for i in range(3000):
                assert await sub.recv() == b"%d" % i


async def test_hwm_is_per_peer(transport: str) -> None:
    """One full peer does not stop PUSH from using the others."""
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            push = ctx.socket(trimq.PUSH, sndhwm=1, linger=0)
            bound = await push.bind(bind_endpoint(transport))
            slow = ctx.socket(trimq.PULL, rcvhwm=1)
            await link(push, slow, bound)
            fast = ctx.socket(trimq.PULL, rcvhwm=1)
            await link(push, fast, bound)
            payload = b"x" * 100_000
            sent = await fill(push, payload)
            # Drain only "fast": PUSH keeps sending to it while "slow" stays full.
            first_fast = await _drain(fast)
            assert first_fast >= 1
            more = await fill(push, payload)
            assert more >= 1
            got_fast = first_fast + await _drain(fast)
            got_slow = await _drain(slow)
            assert got_fast + got_slow == sent + more
            assert got_fast > got_slow


async def test_full_subscriber_pushes_back_over_tcp_instead_of_dropping() -> None:
    """At RCVHWM the receiver stops reading; the publisher's own SNDHWM decides."""
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            pub = ctx.socket(trimq.PUB, sndhwm=0)
            bound = await pub.bind(bind_endpoint("tcp"))
            sub = ctx.socket(trimq.SUB, rcvhwm=1)
            sub.subscribe(b"")
            await link(pub, sub, bound)
            await settle()
            payload = b"z" * 10_000
            for _ in range(1000):  # ~10 MB: far more than the kernel buffers hold
                pub.send_nowait(payload)
            await settle()
            assert pub.statistics().messages_dropped == 0
            for _ in range(1000):
                assert await sub.recv() == payload
            assert sub.statistics().messages_dropped == 0


async def test_inproc_connect_before_bind_capacity() -> None:
    """Before the bind only the connector's SNDHWM applies; once bound, the binder's
    RCVHWM is added (libzmq's hwm "boost" for pending inproc connections)."""
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            push = ctx.socket(trimq.PUSH, sndhwm=2, rcvhwm=50)
            await push.connect("inproc://early-capacity")
            push.send_nowait(b"0")
            push.send_nowait(b"1")
            with pytest.raises(trio.WouldBlock):
                push.send_nowait(b"2")
            pull = ctx.socket(trimq.PULL, sndhwm=70, rcvhwm=3)
            await pull.bind("inproc://early-capacity")
            for i in range(2, 5):
                push.send_nowait(b"%d" % i)
            with pytest.raises(trio.WouldBlock):
                push.send_nowait(b"5")
            assert [await pull.recv() for _ in range(5)] == [b"%d" % i for i in range(5)]
