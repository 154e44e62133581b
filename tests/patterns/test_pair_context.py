"""PAIR exclusivity and the Context lifecycle."""

from __future__ import annotations

import pytest
import trio

import trimq

from ._helpers import TIMEOUT, bind_endpoint, link, settle


async def test_pair_round_trip(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            a = ctx.socket(trimq.PAIR)
            bound = await a.bind(endpoint)
            b = ctx.socket(trimq.PAIR)
            await b.connect(bound)
            await b.send(b"ping")
            assert await a.recv() == b"ping"
            await a.send_multipart([b"po", b"ng"])
            assert await b.recv_multipart() == [b"po", b"ng"]


async def test_pair_refuses_a_second_peer(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            bound_pair = ctx.socket(trimq.PAIR)
            bound = await bound_pair.bind(endpoint)
            first = ctx.socket(trimq.PAIR)
            await link(bound_pair, first, bound)
            second = ctx.socket(trimq.PAIR, linger=0)
            async with bound_pair.monitor() as events:
                await second.connect(bound)
                if not endpoint.startswith("inproc://"):
                    event = await events.wait_for(trimq.EventType.HANDSHAKE_FAILED_PROTOCOL)
                    assert "refused" in event.reason
            await settle()
            assert bound_pair.statistics().peers == 1
            for i in range(3):
                await bound_pair.send(b"%d" % i)
            assert [await first.recv() for _ in range(3)] == [b"0", b"1", b"2"]
            await settle()
            with pytest.raises(trio.WouldBlock):
                second.recv_nowait()


async def test_context_closes_open_sockets_on_exit(transport: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            pull = ctx.socket(trimq.PULL)
            bound = await pull.bind(bind_endpoint(transport))
            push = ctx.socket(trimq.PUSH)
            await push.connect(bound)
            await push.send(b"flushed before close")
        assert pull.closed
        assert push.closed
        with pytest.raises(trio.ClosedResourceError):
            await push.send(b"x")
        with pytest.raises(trio.ClosedResourceError):
            pull.recv_nowait()


async def test_context_exit_respects_linger_then_stops() -> None:
    """A socket with undeliverable messages and linger=100 does not hold the Context up."""
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            push = ctx.socket(trimq.PUSH, linger=100, reconnect_ivl=10)
            await push.connect("tcp://127.0.0.1:1")  # nothing listens there
            push.send_nowait(b"never delivered")
        assert push.closed


async def test_exception_in_context_block_propagates_without_hanging() -> None:
    socks: list[trimq.Socket] = []

    async def body() -> None:
        async with trimq.Context() as ctx:
            push = ctx.socket(trimq.PUSH, linger=-1)  # would wait forever if flushed
            await push.connect("tcp://127.0.0.1:1")
            push.send_nowait(b"stuck")
            pull = ctx.socket(trimq.PULL)
            await pull.bind(bind_endpoint("tcp"))
            socks.extend([push, pull])
            raise RuntimeError("boom")

    with trio.fail_after(TIMEOUT):
        # The user's exception itself, not wrapped in an ExceptionGroup.
        with pytest.raises(RuntimeError, match="boom"):
            await body()
    assert [s.closed for s in socks] == [True, True]


async def test_cancellation_in_context_block_propagates() -> None:
    with trio.fail_after(TIMEOUT):
        with trio.move_on_after(0.05) as scope:
            async with trimq.Context() as ctx:
                pull = ctx.socket(trimq.PULL)
                await pull.bind(bind_endpoint("tcp"))
                await pull.recv()  # never arrives: cancelled by the deadline
        assert scope.cancelled_caught
        assert pull.closed


def test_socket_outside_context_raises() -> None:
    ctx = trimq.Context()
    with pytest.raises(trio.ClosedResourceError, match="async with"):
        ctx.socket(trimq.PUSH)


async def test_socket_after_context_exit_raises() -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            pass
        with pytest.raises(trio.ClosedResourceError):
            ctx.socket(trimq.PUSH)


async def test_context_aclose_closes_sockets() -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            socks = [ctx.socket(t) for t in (trimq.PUB, trimq.SUB, trimq.REQ, trimq.ROUTER)]
            await ctx.aclose()
            assert all(s.closed for s in socks)


async def test_pair_accepts_a_new_peer_after_the_first_leaves() -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            server = ctx.socket(trimq.PAIR)
            bound = await server.bind("inproc://pair-successor")
            first = ctx.socket(trimq.PAIR)
            await link(server, first, bound)
            await first.aclose()
            assert server.statistics().peers == 0
            second = ctx.socket(trimq.PAIR)
            await link(server, second, bound)
            await server.send(b"hello second")
            assert await second.recv() == b"hello second"


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
async def test_context_exit_flushes_open_sockets(transport: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as outer:
            pull = outer.socket(trimq.PULL)
            bound = await pull.bind(bind_endpoint(transport))
            async with trimq.Context() as inner:
                push = inner.socket(trimq.PUSH, sndhwm=0)
                await link(pull, push, bound)
                for i in range(300):
                    push.send_nowait(b"%d" % i)
            assert push.closed
            assert [await pull.recv() for _ in range(300)] == [b"%d" % i for i in range(300)]


async def test_refused_tcp_pair_gets_in_once_the_first_leaves() -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            server = ctx.socket(trimq.PAIR)
            bound = await server.bind(bind_endpoint("tcp"))
            first = ctx.socket(trimq.PAIR)
            await link(server, first, bound)
            second = ctx.socket(trimq.PAIR, reconnect_ivl=10)
            async with server.monitor() as events:
                await second.connect(bound)
                await events.wait_for(trimq.EventType.HANDSHAKE_FAILED_PROTOCOL)
                await first.aclose()
                # The refused peer keeps retrying, as libzmq's does, and now gets in.
                await events.wait_for(trimq.EventType.HANDSHAKE_SUCCEEDED)
            await server.send(b"your turn")
            assert await second.recv() == b"your turn"


async def test_context_pipe_is_a_connected_pair_at_once() -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            inbox, outbox = ctx.pipe(sndhwm=1, rcvhwm=2, linger=0)
            assert inbox.socket_type is outbox.socket_type is trimq.PAIR
            assert inbox.last_endpoint.startswith("inproc://trimq.pipe/")
            for n in range(3):  # the sender's sndhwm plus the receiver's rcvhwm
                outbox.send_nowait(b"%d" % n)
            with pytest.raises(trio.WouldBlock):
                outbox.send_nowait(b"full")
            assert [await inbox.recv() for _ in range(3)] == [b"0", b"1", b"2"]
            await inbox.send(b"back")
            assert await outbox.recv() == b"back"
            named, _ = ctx.pipe("inproc://mine")
            assert named.last_endpoint == "inproc://mine"


async def test_context_pipe_refuses_a_taken_name_and_other_transports() -> None:
    async with trimq.Context() as ctx:
        ctx.pipe("inproc://taken")
        sockets = len(ctx._sockets)
        with pytest.raises(OSError, match="already bound"):
            ctx.pipe("inproc://taken")
        assert len(ctx._sockets) == sockets  # the two new sockets were closed
        with pytest.raises(trimq.InvalidEndpointError, match="inproc://"):
            ctx.pipe("tcp://127.0.0.1:5555")
