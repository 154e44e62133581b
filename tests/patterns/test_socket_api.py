"""The Socket API itself: frames, rcvmore, nowait, iteration, closing, errors, statistics."""

from __future__ import annotations

from typing import Any

import pytest
import trio

import trimq

from ._helpers import TIMEOUT, bind_endpoint, link, settle


def more(sock: trimq.Socket) -> bool:
    """``sock.rcvmore``, read through a call so mypy does not narrow it between reads."""
    return sock.rcvmore


def is_closed(sock: trimq.Socket) -> bool:
    return sock.closed


async def _pair(ctx: trimq.Context, endpoint: str) -> tuple[trimq.Socket, trimq.Socket]:
    pull = ctx.socket(trimq.PULL)
    bound = await pull.bind(endpoint)
    push = ctx.socket(trimq.PUSH)
    await link(pull, push, bound)
    return push, pull


async def test_send_more_builds_one_message(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            push, pull = await _pair(ctx, endpoint)
            await push.send(b"a", more=True)
            await push.send(bytearray(b"b"), more=True)
            await push.send(b"c")
            # more=True also prefixes a following send_multipart.
            await push.send(b"x", more=True)
            await push.send_multipart([b"y", b"z"])
            assert await pull.recv_multipart() == [b"a", b"b", b"c"]
            assert await pull.recv_multipart() == [b"x", b"y", b"z"]


async def test_recv_frame_by_frame_with_rcvmore(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            push, pull = await _pair(ctx, endpoint)
            assert not more(pull)
            await push.send_multipart([b"a", b"b", b"c"])
            await push.send(b"single")
            assert await pull.recv() == b"a"
            assert more(pull)
            assert await pull.recv() == b"b"
            assert more(pull)
            assert await pull.recv() == b"c"
            assert not more(pull)
            assert await pull.recv() == b"single"
            assert not more(pull)


async def test_recv_multipart_after_partial_recv(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            push, pull = await _pair(ctx, endpoint)
            await push.send_multipart([b"a", b"b", b"c"])
            await push.send_multipart([b"d", b"e"])
            assert await pull.recv() == b"a"
            assert await pull.recv_multipart() == [b"b", b"c"]
            assert not more(pull)
            assert pull.recv_nowait() == b"d"
            assert pull.recv_multipart_nowait() == [b"e"]


async def test_nowait_calls(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            push, pull = await _pair(ctx, endpoint)
            with pytest.raises(trio.WouldBlock):
                pull.recv_nowait()
            with pytest.raises(trio.WouldBlock):
                pull.recv_multipart_nowait()
            push.send_nowait(b"one")
            push.send_multipart_nowait([b"two", memoryview(b"parts")])
            await settle()
            assert pull.recv_nowait() == b"one"
            assert pull.recv_multipart_nowait() == [b"two", b"parts"]
            stats = push.statistics()
            assert (stats.messages_sent, stats.peers) == (2, 1)
            assert pull.statistics().messages_received == 2


async def test_async_iteration_until_closed(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            push, pull = await _pair(ctx, endpoint)
            got: list[list[bytes]] = []

            async def consume() -> None:
                async for msg in pull:
                    got.append(msg)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(consume)
                for i in range(3):
                    await push.send_multipart([b"m", b"%d" % i])
                while len(got) < 3:
                    await settle()
                await pull.aclose()  # ends the iteration cleanly
            assert got == [[b"m", b"%d" % i] for i in range(3)]


async def test_async_with_socket_closes_it(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            async with ctx.socket(trimq.PULL) as pull:
                await pull.bind(endpoint)
                assert not is_closed(pull)
            assert is_closed(pull)
            with pytest.raises(trio.ClosedResourceError):
                await pull.recv()
            # The endpoint is free again.
            if endpoint.startswith("inproc://"):
                again = ctx.socket(trimq.PULL)
                await again.bind(endpoint)


async def test_closed_socket_raises_closed_resource_error() -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            sub = ctx.socket(trimq.SUB)
            dealer = ctx.socket(trimq.DEALER)
            await sub.aclose()
            await dealer.aclose()
            await dealer.aclose()  # idempotent
            assert dealer.closed
            with pytest.raises(trio.ClosedResourceError):
                await dealer.send(b"x")
            with pytest.raises(trio.ClosedResourceError):
                await dealer.send(b"x", more=True)
            with pytest.raises(trio.ClosedResourceError):
                await dealer.send_multipart([b"x"])
            with pytest.raises(trio.ClosedResourceError):
                dealer.send_nowait(b"x")
            with pytest.raises(trio.ClosedResourceError):
                await dealer.recv()
            with pytest.raises(trio.ClosedResourceError):
                await dealer.recv_multipart()
            with pytest.raises(trio.ClosedResourceError):
                dealer.recv_nowait()
            with pytest.raises(trio.ClosedResourceError):
                await dealer.bind("inproc://closed")
            with pytest.raises(trio.ClosedResourceError):
                await dealer.connect("inproc://closed")
            with pytest.raises(trio.ClosedResourceError):
                sub.subscribe(b"x")


async def test_close_wakes_blocked_calls(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            pull = ctx.socket(trimq.PULL)
            await pull.bind(endpoint)
            push = ctx.socket(trimq.PUSH)
            await push.bind(bind_endpoint("inproc"))  # no peer: send blocks
            errors: list[type[BaseException]] = []

            async def blocked(fn: Any) -> None:
                try:
                    await fn()
                except trio.ClosedResourceError as exc:
                    errors.append(type(exc))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(blocked, pull.recv)
                nursery.start_soon(blocked, lambda: push.send(b"x"))
                await settle()
                await pull.aclose()
                await push.aclose(linger=0)
            assert errors == [trio.ClosedResourceError] * 2


@pytest.mark.parametrize(
    ("socket_type", "operation"),
    [
        (trimq.PUSH, "recv"),
        (trimq.PUSH, "recv_nowait"),
        (trimq.PUSH, "subscribe"),
        (trimq.PULL, "send"),
        (trimq.PULL, "send_nowait"),
        (trimq.PUB, "recv"),
        (trimq.SUB, "send"),
        (trimq.DEALER, "subscribe"),
        (trimq.XSUB, "subscribe"),
    ],
)
async def test_unsupported_operations(socket_type: trimq.SocketType, operation: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            sock = ctx.socket(socket_type)

            async def call() -> None:
                if operation == "recv":
                    await sock.recv()
                elif operation == "recv_nowait":
                    sock.recv_nowait()
                elif operation == "send":
                    await sock.send(b"x")
                elif operation == "send_nowait":
                    sock.send_nowait(b"x")
                else:
                    sock.subscribe(b"x")

            with pytest.raises(trimq.NotSupportedError, match=socket_type.name):
                await call()
            assert issubclass(trimq.NotSupportedError, TypeError)


async def test_incompatible_inproc_pair_raises() -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            push = ctx.socket(trimq.PUSH)
            await push.bind("inproc://incompatible")
            pub = ctx.socket(trimq.PUB)
            with pytest.raises(trimq.NotSupportedError, match="PUB"):
                await pub.connect("inproc://incompatible")
            assert push.statistics().peers == 0


async def test_incompatible_inproc_connect_before_bind_is_refused() -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            pub = ctx.socket(trimq.PUB)
            async with pub.monitor() as events:
                await pub.connect("inproc://incompatible-later")
                push = ctx.socket(trimq.PUSH)
                await push.bind("inproc://incompatible-later")
                event = await events.wait_for(trimq.EventType.HANDSHAKE_FAILED_PROTOCOL)
            assert "PUB" in event.reason
            assert push.statistics().peers == 0
            assert pub.statistics().peers == 0


async def test_incompatible_tcp_peers_never_attach() -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            push = ctx.socket(trimq.PUSH)
            bound = await push.bind(bind_endpoint("tcp"))
            pub = ctx.socket(trimq.PUB, linger=0)
            async with push.monitor() as events:
                await pub.connect(bound)
                # Whichever side reads the other's READY first refuses; if the PUB
                # refuses and resets first, the PUSH only sees the connection go.
                await events.wait_for(
                    trimq.EventType.HANDSHAKE_FAILED_PROTOCOL,
                    trimq.EventType.HANDSHAKE_FAILED_NO_DETAIL,
                )
            assert push.statistics().peers == 0


async def test_an_open_pair_refusing_a_second_tcp_peer_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            pair = ctx.socket(trimq.PAIR)
            bound = await pair.bind(bind_endpoint("tcp"))
            first = ctx.socket(trimq.PAIR, linger=0)
            second = ctx.socket(trimq.PAIR, linger=0)
            await first.connect(bound)
            await first.send(b"hi")
            assert await pair.recv() == b"hi"
            async with pair.monitor() as events:
                await second.connect(bound)
                event = await events.wait_for(trimq.EventType.HANDSHAKE_FAILED_PROTOCOL)
            assert event.reason == "peer refused by the socket"
    # The first refusal, by the open socket (later ones may meet it closing).
    refusals = [r for r in caplog.records if "peer refused by the socket" in r.getMessage()]
    assert refusals[0].levelname == "WARNING"


async def test_buffer_frames_are_copied_at_send(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            push, pull = await _pair(ctx, endpoint)
            buf = bytearray(b"original")
            view_source = bytearray(b"view")
            await push.send(buf)
            push.send_nowait(buf)
            await push.send_multipart([buf, memoryview(view_source)])
            await push.send(memoryview(buf)[2:5])
            buf[:] = b"MUTATED!"
            view_source[:] = b"VIEW"
            assert await pull.recv() == b"original"
            assert await pull.recv() == b"original"
            frames = await pull.recv_multipart()
            assert frames == [b"original", b"view"]
            assert all(type(f) is bytes for f in frames)
            assert await pull.recv() == b"igi"


@pytest.mark.parametrize("how", ["send", "send_more", "send_multipart", "send_nowait"])
async def test_str_frames_are_rejected(how: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            push = ctx.socket(trimq.PUSH)
            await push.bind("inproc://str-frames")
            pull = ctx.socket(trimq.PULL)
            await pull.connect("inproc://str-frames")
            bad: Any = "text"

            async def call() -> None:
                if how == "send":
                    await push.send(bad)
                elif how == "send_more":
                    await push.send(bad, more=True)
                elif how == "send_multipart":
                    await push.send_multipart([b"ok", bad])
                else:
                    push.send_nowait(bad)

            with pytest.raises(TypeError, match="encode"):
                await call()
            # Nothing half-built leaks into the next message.
            await push.send(b"clean")
            assert await pull.recv_multipart() == [b"clean"]


async def test_empty_multipart_is_rejected() -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            push = ctx.socket(trimq.PUSH)
            with pytest.raises(ValueError):
                await push.send_multipart([])


async def test_statistics_counts(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            pull = ctx.socket(trimq.PULL)
            bound = await pull.bind(endpoint)
            assert pull.statistics() == trimq.SocketStatistics(0, 0, 0, 0, 0)
            pushes = [ctx.socket(trimq.PUSH) for _ in range(2)]
            for push in pushes:
                await link(pull, push, bound)
                await push.send_multipart([b"a", b"b"])
            assert pull.statistics().peers == 2
            for _ in range(2):
                await pull.recv_multipart()
            stats = pull.statistics()
            assert (stats.messages_received, stats.messages_sent) == (2, 0)
            assert (stats.messages_dropped, stats.protocol_errors) == (0, 0)
            assert pushes[0].statistics().messages_sent == 1
            async with pull.monitor() as events:
                await pushes[0].aclose()
                if not endpoint.startswith("inproc://"):
                    await events.wait_for(trimq.EventType.DISCONNECTED)
            await settle()
            assert pull.statistics().peers == 1


async def test_socket_type_constants_and_repr() -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            sock = ctx.socket(7)  # plain ints work, like libzmq numbers
            assert sock.socket_type is trimq.PULL
            assert "PULL" in repr(sock)
            with pytest.raises(ValueError, match="99"):
                ctx.socket(99)


async def test_cancelled_recv_loses_nothing(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            push, pull = await _pair(ctx, endpoint)
            with trio.move_on_after(0.01) as scope:
                await pull.recv()
            assert scope.cancelled_caught
            await push.send_multipart([b"kept", b"whole"])
            assert await pull.recv_multipart() == [b"kept", b"whole"]


async def test_cancelled_send_sends_nothing() -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            push = ctx.socket(trimq.PUSH)
            bound = await push.bind("inproc://cancelled-send")  # no peer yet: send waits
            with trio.move_on_after(0.01) as scope:
                await push.send(b"abandoned")
            assert scope.cancelled_caught
            pull = ctx.socket(trimq.PULL)
            await pull.connect(bound)
            await push.send(b"wanted")
            assert await pull.recv() == b"wanted"
            await settle()
            with pytest.raises(trio.WouldBlock):
                pull.recv_nowait()
            assert push.statistics().messages_sent == 1


async def test_already_cancelled_calls_do_nothing(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            push, pull = await _pair(ctx, endpoint)
            await push.send(b"waiting")
            await settle()
            with trio.CancelScope() as scope:
                scope.cancel()
                with pytest.raises(trio.Cancelled):
                    await push.send(b"never")
                with pytest.raises(trio.Cancelled):
                    await pull.recv()
            assert await pull.recv() == b"waiting"
            await settle()
            with pytest.raises(trio.WouldBlock):
                pull.recv_nowait()


async def test_concurrent_receivers_share_the_messages(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            push, pull = await _pair(ctx, endpoint)
            got: list[bytes] = []

            async def receiver() -> None:
                for _ in range(10):
                    got.append(await pull.recv())

            async with trio.open_nursery() as nursery:
                for _ in range(3):
                    nursery.start_soon(receiver)
                await settle()
                for i in range(30):
                    await push.send(b"%02d" % i)
            assert sorted(got) == [b"%02d" % i for i in range(30)]


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
async def test_aclose_flushes_queued_messages(transport: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            pull = ctx.socket(trimq.PULL)
            bound = await pull.bind(bind_endpoint(transport))
            push = ctx.socket(trimq.PUSH, sndhwm=0)
            await link(pull, push, bound)
            for i in range(500):
                push.send_nowait(b"%d" % i)
            await push.aclose()  # default linger: waits until written
            assert [await pull.recv() for _ in range(500)] == [b"%d" % i for i in range(500)]


async def test_aclose_linger_zero_discards() -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            push = ctx.socket(trimq.PUSH, reconnect_ivl=10)
            await push.connect("tcp://127.0.0.1:1")  # nothing listens there
            push.send_nowait(b"undeliverable")
            with trio.fail_after(0.5):
                await push.aclose(linger=0)
            assert is_closed(push)


async def test_aclose_waits_at_most_linger() -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            push = ctx.socket(trimq.PUSH, linger=50, reconnect_ivl=10)
            await push.connect("tcp://127.0.0.1:1")
            push.send_nowait(b"undeliverable")
            start = trio.current_time()
            await push.aclose()
            assert 0.04 <= trio.current_time() - start < 1.0


async def test_retrying_the_last_frame_after_wouldblock_keeps_the_message_whole() -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            push = ctx.socket(trimq.PUSH)
            bound = await push.bind("inproc://retry-nowait")  # no peer: the last frame waits
            await push.send(b"header", more=True)
            with pytest.raises(trio.WouldBlock):
                push.send_nowait(b"body")
            pull = ctx.socket(trimq.PULL)
            await pull.connect(bound)
            push.send_nowait(b"body")
            assert await pull.recv_multipart() == [b"header", b"body"]


async def test_retrying_the_last_frame_after_cancel_keeps_the_message_whole() -> None:
    """A cancelled send had no effect, so the frames sent with more=True are still pending."""
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            push = ctx.socket(trimq.PUSH)
            bound = await push.bind("inproc://retry-cancel")
            await push.send(b"header", more=True)
            with trio.move_on_after(0.01) as scope:
                await push.send(b"body")
            assert scope.cancelled_caught
            with trio.move_on_after(0.01):
                await push.send_multipart([b"body"])
            pull = ctx.socket(trimq.PULL)
            await pull.connect(bound)
            await push.send(b"body")
            assert await pull.recv_multipart() == [b"header", b"body"]


async def test_discard_partial_gives_up_a_begun_message() -> None:
    async with trimq.Context() as ctx:
        pull = ctx.socket(trimq.PULL)
        push = ctx.socket(trimq.PUSH)
        await pull.bind("inproc://discard")
        await push.connect("inproc://discard")
        assert push.discard_partial() == 0
        await push.send(b"a", more=True)
        await push.send(b"b", more=True)
        assert push.discard_partial() == 2
        await push.send(b"whole")
        with trio.fail_after(5):
            assert await pull.recv_multipart() == [b"whole"]
        assert push.statistics().messages_sent == 1


async def test_shared_empty_state_is_never_mutated() -> None:
    """Sockets share empty lists for unused state; using that state must not touch them."""
    from trimq.patterns import _socket

    async with trimq.Context() as ctx:
        pull = ctx.socket(trimq.PULL)
        push = ctx.socket(trimq.PUSH)
        monitor = push.monitor()
        await pull.bind("inproc://shared")
        await push.connect("inproc://shared")
        await push.send(b"a", more=True)
        await push.send(b"b", more=True)
        assert push.discard_partial() == 2
        await push.send(b"x", more=True)
        await push.send(b"y")
        with trio.fail_after(5):
            assert await pull.recv() == b"x"
            assert pull.rcvmore
            assert await pull.recv() == b"y"
        monitor.aclose_nowait()
        await push.aclose()
        assert _socket._NO_FRAMES == []
        assert _socket._NO_MONITORS == []
        assert pull._rx_partial is _socket._NO_FRAMES or pull._rx_partial == []


async def test_has_input_says_whether_recv_would_return_at_once() -> None:
    async with trimq.Context() as ctx:
        inbox, outbox = ctx.pipe(linger=0)
        assert not inbox.has_input()
        await outbox.send_multipart([b"a", b"b"])
        assert inbox.has_input()
        assert await inbox.recv() == b"a"
        assert inbox.has_input()  # the rest of the message waits
        assert await inbox.recv() == b"b"
        assert not inbox.has_input()


async def test_close_nowait_closes_at_once_and_is_idempotent() -> None:
    async with trimq.Context() as ctx:
        inbox, outbox = ctx.pipe(linger=0)
        await outbox.send(b"queued")
        outbox.close_nowait()
        assert is_closed(outbox)
        outbox.close_nowait()
        with pytest.raises(trio.ClosedResourceError):
            await outbox.send(b"after")
        inbox.close_nowait()
        with pytest.raises(trio.ClosedResourceError):
            inbox.recv_nowait()
