"""Endpoints: parsing, bind/connect/unbind/disconnect, ipc files, IPv6, inproc namespaces."""

from __future__ import annotations

import os
import socket
import tempfile
import uuid

import pytest
import trio

import trimq
from trimq.transport import Endpoint, parse_endpoint

from ._helpers import TIMEOUT, bind_endpoint, concrete_endpoint, link, settle


@pytest.mark.parametrize(
    ("text", "for_bind", "expected"),
    [
        ("tcp://127.0.0.1:5555", False, Endpoint("tcp", host="127.0.0.1", port=5555)),
        ("tcp://127.0.0.1:5555", True, Endpoint("tcp", host="127.0.0.1", port=5555)),
        ("tcp://[::1]:5555", False, Endpoint("tcp", host="::1", port=5555)),
        ("tcp://[::1]:*", True, Endpoint("tcp", host="::1", port=0)),
        ("tcp://*:5555", True, Endpoint("tcp", host="*", port=5555)),
        ("tcp://127.0.0.1:*", True, Endpoint("tcp", host="127.0.0.1", port=0)),
        ("tcp://127.0.0.1:0", True, Endpoint("tcp", host="127.0.0.1", port=0)),
        ("tcp://localhost:80", False, Endpoint("tcp", host="localhost", port=80)),
        ("tcp://example.com:65535", False, Endpoint("tcp", host="example.com", port=65535)),
        ("ipc:///tmp/trimq.sock", False, Endpoint("ipc", path="/tmp/trimq.sock")),
        ("ipc://relative/path", True, Endpoint("ipc", path="relative/path")),
        ("ipc://@abstract-name", False, Endpoint("ipc", path="\0abstract-name")),
        ("inproc://name", False, Endpoint("inproc", path="name")),
        ("inproc://a/b:c", True, Endpoint("inproc", path="a/b:c")),
    ],
)
def test_parse_endpoint(text: str, for_bind: bool, expected: Endpoint) -> None:
    assert parse_endpoint(text, for_bind=for_bind) == expected


@pytest.mark.parametrize(
    "text", ["tcp://127.0.0.1:5555", "tcp://[::1]:5555", "ipc://@abstract", "inproc://x"]
)
def test_endpoint_str_round_trips(text: str) -> None:
    assert str(parse_endpoint(text)) == text


def test_parse_ipc_wildcard_makes_a_temporary_path() -> None:
    ep = parse_endpoint("ipc://*", for_bind=True)
    assert ep.transport == "ipc"
    assert ep.path.startswith(tempfile.gettempdir())
    assert ep.path != parse_endpoint("ipc://*", for_bind=True).path


@pytest.mark.parametrize(
    ("text", "for_bind"),
    [
        ("127.0.0.1:5555", False),
        ("tcp:/127.0.0.1:5555", False),
        ("tcp://127.0.0.1", False),
        ("tcp://:5555", True),
        ("tcp://127.0.0.1:", False),
        ("tcp://127.0.0.1:65536", False),
        ("tcp://127.0.0.1:-1", False),
        ("tcp://127.0.0.1:http", False),
        ("tcp://::1:5555", False),
        ("tcp://[::1:5555", False),
        ("tcp://[::1]5555", False),
        ("tcp://*:5555", False),
        ("tcp://127.0.0.1:*", False),
        ("tcp://127.0.0.1:0", False),
        ("ipc://", True),
        ("ipc://*", False),
        ("ipc:///" + "x" * 200, True),
        ("inproc://", True),
        ("bogus://x", False),
        ("TCP://127.0.0.1:5555", False),
    ],
)
def test_bad_endpoints(text: str, for_bind: bool) -> None:
    with pytest.raises(trimq.InvalidEndpointError) as info:
        parse_endpoint(text, for_bind=for_bind)
    assert not isinstance(info.value, trimq.UnsupportedTransportError)
    # The message quotes what was wrong so the user can find it.
    message = str(info.value)
    assert text[:40] in message or text.partition("://")[0] in message


def test_non_string_endpoint() -> None:
    with pytest.raises(trimq.InvalidEndpointError, match="str"):
        parse_endpoint(b"tcp://127.0.0.1:5555")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text", ["pgm://eth0;239.192.1.1:5555", "epgm://eth0;239.1.1.1:5555", "ws://h:80", "udp://h:1"]
)
def test_unsupported_transports(text: str) -> None:
    with pytest.raises(trimq.UnsupportedTransportError, match=text.partition(":")[0]):
        parse_endpoint(text)
    assert issubclass(trimq.UnsupportedTransportError, trimq.InvalidEndpointError)
    assert issubclass(trimq.InvalidEndpointError, ValueError)


async def test_socket_bind_and_connect_validate_endpoints() -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            sock = ctx.socket(trimq.PULL)
            with pytest.raises(trimq.InvalidEndpointError, match="no transport"):
                await sock.bind("127.0.0.1:5555")
            with pytest.raises(trimq.UnsupportedTransportError):
                await sock.connect("pgm://eth0;239.192.1.1:5555")
            with pytest.raises(trimq.InvalidEndpointError):
                await sock.connect("tcp://127.0.0.1:*")


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
async def test_bind_returns_the_real_endpoint(transport: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            sock = ctx.socket(trimq.PULL)
            bound = await sock.bind(bind_endpoint(transport))
            assert sock.last_endpoint == bound
            assert "*" not in bound
            ep = parse_endpoint(bound)
            if transport == "tcp":
                assert ep.host == "127.0.0.1"
                assert ep.port > 0
            else:
                assert await trio.Path(ep.path).exists()
            push = ctx.socket(trimq.PUSH)
            await push.connect(bound)
            assert push.last_endpoint == bound
            await push.send(b"via real endpoint")
            assert await sock.recv() == b"via real endpoint"
        if transport == "ipc":
            assert not await trio.Path(ep.path).exists()  # removed on close


async def test_bind_port_zero_and_all_interfaces() -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            sock = ctx.socket(trimq.PULL)
            bound = await sock.bind("tcp://*:0")
            port = parse_endpoint(bound).port
            assert port > 0
            push = ctx.socket(trimq.PUSH)
            await push.connect(f"tcp://127.0.0.1:{port}")
            await push.send(b"x")
            assert await sock.recv() == b"x"


async def test_connect_by_dns_name() -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            pull = ctx.socket(trimq.PULL)
            bound = await pull.bind("tcp://127.0.0.1:*")
            push = ctx.socket(trimq.PUSH)
            await push.connect(f"tcp://localhost:{parse_endpoint(bound).port}")
            await push.send(b"by name")
            assert await pull.recv() == b"by name"


@pytest.mark.parametrize("transport", ["tcp", "ipc", "inproc"])
async def test_binding_a_taken_endpoint_raises(transport: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            first = ctx.socket(trimq.PULL)
            bound = await first.bind(bind_endpoint(transport))
            second = ctx.socket(trimq.PULL)
            async with second.monitor() as events:
                with pytest.raises(OSError, match=r"already|in use|listening") as info:
                    await second.bind(bound)
                if transport != "inproc":
                    event = await events.wait_for(trimq.EventType.BIND_FAILED)
                    assert event.endpoint == bound
            assert bound in str(info.value)
            # The first socket still works.
            push = ctx.socket(trimq.PUSH)
            await push.connect(bound)
            await push.send(b"still here")
            assert await first.recv() == b"still here"


async def test_stale_ipc_file_is_replaced() -> None:
    path = os.path.join(tempfile.gettempdir(), f"trimq-stale-{uuid.uuid4().hex[:12]}")
    leftover = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    leftover.bind(path)
    leftover.close()  # the file stays, but nobody listens: a dead process's socket
    assert await trio.Path(path).exists()
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            pull = ctx.socket(trimq.PULL)
            bound = await pull.bind(f"ipc://{path}")
            push = ctx.socket(trimq.PUSH)
            await push.connect(bound)
            await push.send(b"fresh")
            assert await pull.recv() == b"fresh"
    assert not await trio.Path(path).exists()


async def test_live_ipc_socket_is_not_replaced() -> None:
    path = os.path.join(tempfile.gettempdir(), f"trimq-live-{uuid.uuid4().hex[:12]}")
    live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        live.bind(path)
        live.listen(1)
        with trio.fail_after(TIMEOUT):
            async with trimq.Context() as ctx:
                pull = ctx.socket(trimq.PULL)
                with pytest.raises(OSError, match=path):
                    await pull.bind(f"ipc://{path}")
        assert await trio.Path(path).exists()  # the other listener's file was left alone
    finally:
        live.close()
        os.unlink(path)


async def test_ipc_refuses_to_replace_a_regular_file() -> None:
    path = os.path.join(tempfile.gettempdir(), f"trimq-file-{uuid.uuid4().hex[:12]}")
    await trio.Path(path).write_text("precious")
    try:
        with trio.fail_after(TIMEOUT):
            async with trimq.Context() as ctx:
                pull = ctx.socket(trimq.PULL)
                with pytest.raises(OSError):
                    await pull.bind(f"ipc://{path}")
        assert await trio.Path(path).read_text() == "precious"
    finally:
        os.unlink(path)


async def test_abstract_ipc() -> None:
    name = f"ipc://@trimq-abstract-{uuid.uuid4().hex[:12]}"
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            pull = ctx.socket(trimq.PULL)
            assert await pull.bind(name) == name
            push = ctx.socket(trimq.PUSH)
            await push.connect(name)
            await push.send(b"abstract")
            assert await pull.recv() == b"abstract"


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


async def test_ipv6_loopback() -> None:
    if not _has_ipv6_loopback():
        pytest.skip("this machine has no IPv6 loopback")
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            pull = ctx.socket(trimq.PULL)
            bound = await pull.bind("tcp://[::1]:*")
            assert bound.startswith("tcp://[::1]:")
            assert parse_endpoint(bound).port > 0
            push = ctx.socket(trimq.PUSH)
            await push.connect(bound)
            await push.send(b"over ipv6")
            assert await pull.recv() == b"over ipv6"


async def test_unbind_closes_the_listener() -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            pull = ctx.socket(trimq.PULL)
            bound = await pull.bind(bind_endpoint("tcp"))
            async with pull.monitor() as pull_events:
                await pull.unbind(bound)
                await pull_events.wait_for(trimq.EventType.CLOSED)
            ep = parse_endpoint(bound)
            with pytest.raises(OSError):
                await trio.open_tcp_stream(ep.host, ep.port)
            push = ctx.socket(trimq.PUSH, reconnect_ivl=-1, linger=0)
            async with push.monitor() as events:
                await push.connect(bound)
                event = await events.wait_for(
                    trimq.EventType.CONNECT_DELAYED,
                    trimq.EventType.HANDSHAKE_SUCCEEDED,
                    trimq.EventType.HANDSHAKE_FAILED_PROTOCOL,
                )
            assert event.type is not trimq.EventType.HANDSHAKE_SUCCEEDED
            with pytest.raises(trimq.InvalidEndpointError):
                await pull.unbind(bound)  # not bound any more


async def test_unbind_drops_connections_accepted_through_it() -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            pull = ctx.socket(trimq.PULL)
            bound = await pull.bind(bind_endpoint("tcp"))
            push = ctx.socket(trimq.PUSH, reconnect_ivl=-1)
            await link(pull, push, bound)
            async with push.monitor() as events:
                await pull.unbind(bound)
                await events.wait_for(trimq.EventType.DISCONNECTED)
            assert pull.statistics().peers == 0


async def test_unbind_by_wildcard_endpoint() -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            pull = ctx.socket(trimq.PULL)
            bound = await pull.bind("tcp://127.0.0.1:*")
            async with pull.monitor() as events:
                await pull.unbind("tcp://127.0.0.1:*")  # the endpoint as written also works
                await events.wait_for(trimq.EventType.CLOSED)
            with pytest.raises(trimq.InvalidEndpointError):
                await pull.unbind(bound)


async def test_disconnect_stops_delivery(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            pull = ctx.socket(trimq.PULL)
            bound = await pull.bind(endpoint)
            push = ctx.socket(trimq.PUSH)
            await link(pull, push, bound)
            await push.send(b"before")
            assert await pull.recv() == b"before"
            async with pull.monitor() as events:
                await push.disconnect(bound)
                if not endpoint.startswith("inproc://"):
                    await events.wait_for(trimq.EventType.DISCONNECTED)
            assert push.statistics().peers == 0
            with pytest.raises(trio.WouldBlock):
                push.send_nowait(b"after")
            await settle()
            assert pull.statistics().peers == 0
            with pytest.raises(trio.WouldBlock):
                pull.recv_nowait()
            with pytest.raises(trimq.InvalidEndpointError):
                await push.disconnect(bound)


async def test_disconnect_one_of_several(transport: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            pulls = [ctx.socket(trimq.PULL) for _ in range(2)]
            push = ctx.socket(trimq.PUSH)
            eps = []
            for pull in pulls:
                ep = await pull.bind(bind_endpoint(transport))
                await link(pull, push, ep)
                eps.append(ep)
            await push.disconnect(eps[0])
            for i in range(4):
                await push.send(b"%d" % i)
            assert [await pulls[1].recv() for _ in range(4)] == [b"0", b"1", b"2", b"3"]
            await settle()
            with pytest.raises(trio.WouldBlock):
                pulls[0].recv_nowait()


async def test_inproc_name_reuse_after_unbind() -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            first = ctx.socket(trimq.PULL)
            await first.bind("inproc://reused")
            await first.unbind("inproc://reused")
            second = ctx.socket(trimq.PULL)
            await second.bind("inproc://reused")
            push = ctx.socket(trimq.PUSH)
            await push.connect("inproc://reused")
            await push.send(b"to the new owner")
            assert await second.recv() == b"to the new owner"
            await settle()
            with pytest.raises(trio.WouldBlock):
                first.recv_nowait()


async def test_inproc_name_is_free_after_close() -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            first = ctx.socket(trimq.PULL)
            await first.bind("inproc://closed-name")
            await first.aclose()
            second = ctx.socket(trimq.PULL)
            await second.bind("inproc://closed-name")


async def test_contexts_have_separate_inproc_namespaces() -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx1, trimq.Context() as ctx2:
            pull1 = ctx1.socket(trimq.PULL)
            pull2 = ctx2.socket(trimq.PULL)
            await pull1.bind("inproc://same-name")
            await pull2.bind("inproc://same-name")  # no clash
            push2 = ctx2.socket(trimq.PUSH)
            await push2.connect("inproc://same-name")
            await push2.send(b"ctx2 only")
            assert await pull2.recv() == b"ctx2 only"
            await settle()
            with pytest.raises(trio.WouldBlock):
                pull1.recv_nowait()


async def test_tcp_connect_before_bind_with_concrete_port() -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            endpoint = concrete_endpoint("tcp")
            push = ctx.socket(trimq.PUSH, reconnect_ivl=10)
            async with push.monitor() as events:
                await push.connect(endpoint)
                await events.wait_for(trimq.EventType.CONNECT_DELAYED)
                retried = await events.wait_for(trimq.EventType.CONNECT_RETRIED)
                assert retried.value >= 10
            pull = ctx.socket(trimq.PULL)
            await pull.bind(endpoint)
            await push.send(b"finally")
            assert await pull.recv() == b"finally"


async def test_one_socket_bound_on_several_transports() -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            pull = ctx.socket(trimq.PULL)
            eps = [await pull.bind(bind_endpoint(t)) for t in ("inproc", "tcp", "ipc")]
            pushes = [ctx.socket(trimq.PUSH) for _ in eps]
            for push, ep in zip(pushes, eps, strict=True):
                await link(pull, push, ep)
                await push.send(ep.encode())
            assert sorted([await pull.recv() for _ in eps]) == sorted(e.encode() for e in eps)
            assert pull.statistics().peers == 3


async def test_wildcard_host_bind_reports_the_any_address() -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            pull = ctx.socket(trimq.PULL)
            bound = await pull.bind("tcp://*:*")
            assert bound.startswith("tcp://0.0.0.0:")  # what libzmq's LAST_ENDPOINT shows
            push = ctx.socket(trimq.PUSH)
            await push.connect(f"tcp://127.0.0.1:{parse_endpoint(bound).port}")
            await push.send(b"any")
            assert await pull.recv() == b"any"


async def test_ipv6_option_makes_wildcard_bind_dual_stack() -> None:
    if not _has_ipv6_loopback():
        pytest.skip("this machine has no IPv6 loopback")
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            pull = ctx.socket(trimq.PULL, ipv6=True)
            bound = await pull.bind("tcp://*:*")
            assert bound.startswith("tcp://[::]:")
            port = parse_endpoint(bound).port
            for host in ("127.0.0.1", "[::1]"):
                push = ctx.socket(trimq.PUSH)
                await push.connect(f"tcp://{host}:{port}")
                await push.send(host.encode())
                assert await pull.recv() == host.encode()
