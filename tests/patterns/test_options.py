"""conflate and immediate, and option validation."""

from __future__ import annotations

import attrs
import pytest
import trio

import trimq

from ._helpers import TIMEOUT, bind_endpoint, concrete_endpoint, connect, link, settle


@pytest.mark.parametrize("transport", ["inproc", "tcp", "ipc"])
async def test_conflate_receiver_keeps_only_the_newest(transport: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            pull = ctx.socket(trimq.PULL, conflate=True)
            bound = await pull.bind(bind_endpoint(transport))
            push = ctx.socket(trimq.PUSH)
            await link(pull, push, bound)
            for i in range(10):
                await push.send(b"%d" % i)
            await settle()
            assert await pull.recv() == b"9"
            await settle()
            with pytest.raises(trio.WouldBlock):
                pull.recv_nowait()


@pytest.mark.parametrize("transport", ["inproc", "tcp"])
async def test_conflate_sender_keeps_only_the_newest_before_connecting(transport: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            endpoint = concrete_endpoint(transport)
            push = ctx.socket(trimq.PUSH, conflate=True, reconnect_ivl=10)
            await push.connect(endpoint)
            for i in range(5):
                push.send_nowait(b"%d" % i)  # never blocks: the queue holds one message
            pull = ctx.socket(trimq.PULL)
            await pull.bind(endpoint)
            assert await pull.recv() == b"4"
            await settle()
            with pytest.raises(trio.WouldBlock):
                pull.recv_nowait()


@pytest.mark.parametrize("socket_type", [trimq.PUSH, trimq.DEALER, trimq.PUB])
async def test_conflate_rejects_multipart(socket_type: trimq.SocketType) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            sock = ctx.socket(socket_type, conflate=True, linger=0)
            await sock.connect("inproc://conflate-multipart")
            with pytest.raises(ValueError, match="conflate"):
                await sock.send_multipart([b"a", b"b"])
            with pytest.raises(ValueError, match="conflate"):
                sock.send_multipart_nowait([b"a", b"b"])
            await sock.send(b"a", more=True)
            with pytest.raises(ValueError, match="conflate"):
                await sock.send(b"b")


@pytest.mark.parametrize("transport", ["inproc", "tcp"])
async def test_immediate_queues_nothing_before_a_connection(transport: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            endpoint = concrete_endpoint(transport)
            push = ctx.socket(trimq.PUSH, immediate=True, reconnect_ivl=10)
            async with push.monitor() as events:
                await push.connect(endpoint)
                with pytest.raises(trio.WouldBlock):
                    push.send_nowait(b"too early")
                pull = ctx.socket(trimq.PULL)
                await pull.bind(endpoint)
                await events.wait_for(trimq.EventType.HANDSHAKE_SUCCEEDED)
            await settle()
            push.send_nowait(b"now")
            assert await pull.recv() == b"now"
            await settle()
            with pytest.raises(trio.WouldBlock):
                pull.recv_nowait()


@pytest.mark.parametrize("transport", ["inproc", "tcp", "ipc"])
async def test_messages_sent_before_bind_are_delivered(transport: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            endpoint = concrete_endpoint(transport)
            push = ctx.socket(trimq.PUSH, reconnect_ivl=10)
            await push.connect(endpoint)
            for i in range(3):
                push.send_nowait(b"%d" % i)  # queued in the pipe connect created
            pull = ctx.socket(trimq.PULL)
            await pull.bind(endpoint)
            assert [await pull.recv() for _ in range(3)] == [b"0", b"1", b"2"]


async def test_connect_before_bind_reqrep(transport: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            endpoint = concrete_endpoint(transport)
            req = ctx.socket(trimq.REQ, reconnect_ivl=10)
            await req.connect(endpoint)
            await req.send(b"early")
            rep = ctx.socket(trimq.REP)
            await rep.bind(endpoint)
            assert await rep.recv() == b"early"
            await rep.send(b"reply")
            assert await req.recv() == b"reply"


async def test_unknown_option_names_the_option() -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            with pytest.raises(TypeError, match="sndhwmm'; known: sndhwm, rcvhwm"):
                ctx.socket(trimq.PUSH, sndhwmm=1)
            sock = ctx.socket(trimq.PUSH)
            with pytest.raises(TypeError, match="no_such_option"):
                sock.set_options(no_such_option=1)


@pytest.mark.parametrize(
    "options",
    [
        {"sndhwm": -1},
        {"rcvhwm": -5},
        {"linger": -2},
        {"reconnect_ivl": -2},
        {"routing_id": b"x" * 256},
        {"routing_id": b"\x00starts-with-zero"},
    ],
    ids=lambda o: next(iter(o)),
)
async def test_bad_option_value_is_a_value_error(options: dict[str, object]) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            name = next(iter(options))
            with pytest.raises(ValueError, match=name):
                ctx.socket(trimq.DEALER, **options)
            sock = ctx.socket(trimq.DEALER)
            with pytest.raises(ValueError, match=name):
                sock.set_options(**options)


@pytest.mark.parametrize("value", ["yes", 2, None, 1.0])
async def test_flags_must_be_booleans(value: object) -> None:
    async with trimq.Context() as ctx:
        with pytest.raises(
            TypeError, match=f"router_mandatory must be True or False, got {value!r}"
        ):
            ctx.socket(trimq.ROUTER, router_mandatory=value)
        sock = ctx.socket(trimq.ROUTER)
        with pytest.raises(TypeError, match="immediate must be True or False"):
            sock.set_options(immediate=value)
        assert sock.options.immediate is False


async def test_flags_accept_zero_and_one_as_pyzmq_code_does() -> None:
    async with trimq.Context() as ctx:
        sock = ctx.socket(trimq.ROUTER, router_mandatory=1, immediate=0)
        assert sock.options.router_mandatory
        assert not sock.options.immediate


async def test_set_options_validates_before_changing_anything() -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            sock = ctx.socket(trimq.DEALER, sndhwm=5)
            with pytest.raises(ValueError):
                sock.set_options(sndhwm=7, rcvhwm=-1)
            assert sock.options.sndhwm == 5
            sock.set_options(sndhwm=7, routing_id="text id")
            assert sock.options.sndhwm == 7
            assert sock.options.routing_id == b"text id"


async def test_option_defaults_follow_libzmq() -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            opts = ctx.socket(trimq.DEALER).options
            assert (opts.sndhwm, opts.rcvhwm) == (1000, 1000)
            assert (opts.reconnect_ivl, opts.reconnect_ivl_max) == (100, 0)
            assert (opts.maxmsgsize, opts.handshake_ivl, opts.heartbeat_ivl) == (-1, 30000, 0)
            assert not opts.immediate
            assert not opts.conflate
            assert not opts.router_mandatory


async def test_routing_id_set_after_creation_is_used(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            router = ctx.socket(trimq.ROUTER)
            bound = await router.bind(endpoint)
            dealer = ctx.socket(trimq.DEALER)
            dealer.set_options(routing_id=b"late")
            await link(router, dealer, bound)
            await dealer.send(b"x")
            assert await router.recv_multipart() == [b"late", b"x"]


async def test_connect_helper_sanity(endpoint: str) -> None:
    """The handshake event the other tests synchronise on is emitted on both transports."""
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            pull = ctx.socket(trimq.PULL)
            bound = await pull.bind(endpoint)
            push = ctx.socket(trimq.PUSH)
            await connect(push, bound)
            assert push.statistics().peers == 1


async def test_messages_wait_in_the_pipe_while_reconnecting() -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            first = ctx.socket(trimq.PULL)
            bound = await first.bind(bind_endpoint("tcp"))
            push = ctx.socket(trimq.PUSH, reconnect_ivl=10)
            await link(first, push, bound)
            async with push.monitor() as events:
                await first.aclose()
                await events.wait_for(trimq.EventType.DISCONNECTED)
                assert push.statistics().peers == 1  # the pipe outlives the connection
                for i in range(3):
                    push.send_nowait(b"%d" % i)
                second = ctx.socket(trimq.PULL)
                await second.bind(bound)
                assert [await second.recv() for _ in range(3)] == [b"0", b"1", b"2"]


async def test_immediate_drops_the_pipe_while_disconnected() -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            first = ctx.socket(trimq.PULL)
            bound = await first.bind(bind_endpoint("tcp"))
            push = ctx.socket(trimq.PUSH, immediate=True, reconnect_ivl=10)
            await link(first, push, bound)
            async with push.monitor() as events:
                await first.aclose()
                await events.wait_for(trimq.EventType.DISCONNECTED)
                await settle()
                assert push.statistics().peers == 0
                with pytest.raises(trio.WouldBlock):
                    push.send_nowait(b"nowhere to go")
                second = ctx.socket(trimq.PULL)
                await second.bind(bound)
                await events.wait_for(trimq.EventType.HANDSHAKE_SUCCEEDED)
            await settle()
            push.send_nowait(b"back")
            assert await second.recv() == b"back"


@pytest.mark.parametrize(
    ("receiver_type", "sender_type"),
    [
        pytest.param(trimq.ROUTER, trimq.DEALER, id="router"),
        pytest.param(trimq.PAIR, trimq.PAIR, id="pair"),
        pytest.param(trimq.XSUB, trimq.XPUB, id="xsub"),
    ],
)
async def test_conflate_is_ignored_by_other_socket_types(
    endpoint: str, receiver_type: trimq.SocketType, sender_type: trimq.SocketType
) -> None:
    """libzmq applies CONFLATE to DEALER, PULL, PUSH, PUB and SUB only."""
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            receiver = ctx.socket(receiver_type, conflate=True)
            bound = await receiver.bind(endpoint)
            sender = ctx.socket(sender_type, routing_id=b"s")
            await link(receiver, sender, bound)
            if receiver_type is trimq.XSUB:
                await receiver.send(b"\x01")
                assert await sender.recv() == b"\x01"
            for i in range(3):
                await sender.send(b"%d" % i)
            got = []
            while True:
                await settle()
                try:
                    got.append(receiver.recv_multipart_nowait()[-1])
                except trio.WouldBlock:
                    break
            assert got == [b"0", b"1", b"2"]


def test_xpub_welcome_msg_must_be_bytes() -> None:
    """A str would otherwise fail later, inside the listener's background task."""
    with pytest.raises(TypeError, match="xpub_welcome_msg must be bytes"):
        trimq.SocketOptions(xpub_welcome_msg="hello")  # type: ignore[arg-type]
    opts = trimq.SocketOptions(xpub_welcome_msg=b"hello")
    with pytest.raises(TypeError, match="xpub_welcome_msg must be bytes"):
        opts.replace(xpub_welcome_msg="bye")
    assert opts.xpub_welcome_msg == b"hello"


async def test_sockets_with_the_same_options_share_them_until_one_changes() -> None:
    async with trimq.Context() as ctx:
        a = ctx.socket(trimq.PAIR, sndhwm=7, linger=0)
        b = ctx.socket(trimq.PAIR, sndhwm=7, linger=0)
        assert a.options is b.options
        a.set_options(sndhwm=9)
        assert (a.options.sndhwm, b.options.sndhwm) == (9, 7)
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            b.options.sndhwm = 1  # type: ignore[misc]
        with pytest.raises(ValueError, match="sndhwm must be >= 0"):
            a.set_options(sndhwm=-1)
        assert a.options.sndhwm == 9


async def test_secret_options_are_not_kept_for_sharing() -> None:
    _public, secret = trimq.curve_keypair()
    async with trimq.Context() as ctx:
        a = ctx.socket(trimq.REP, curve_server=True, curve_secretkey=secret, linger=0)
        b = ctx.socket(trimq.REP, curve_server=True, curve_secretkey=secret, linger=0)
        assert a.options == b.options
        assert a.options is not b.options
        # An unhashable value works too, unshared.
        c = ctx.socket(trimq.REP, routing_id=bytearray(b"r"), linger=0)
        assert c.options.routing_id == b"r"
