"""Reconnection after the peer restarts on the same endpoint, trimq and libzmq both ways.

The bound side is closed and a fresh socket is bound on the same tcp port (or
ipc path); the connecting side must notice (DISCONNECTED), reconnect by itself
(HANDSHAKE_SUCCEEDED again), re-send SUB subscriptions, and carry messages.
Messages the connecting side sends while disconnected wait in its pipe, as in
libzmq, and are delivered after the reconnect.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio

from ._peers import Endpoints, Peer, PeerFactory, PyzmqPeer, free_tcp_port

RECONNECT_IVL = 20  # ms, on both implementations, to keep the suite fast
TRANSPORTS = ["tcp", "ipc"]


def fixed_endpoint(transport: str, peers: PeerFactory, endpoints: Endpoints) -> str:
    if transport == "tcp":
        return f"tcp://127.0.0.1:{free_tcp_port()}"
    return endpoints.ipc()


async def request(client: Peer, server: Peer, body: bytes) -> None:
    """A DEALER->ROUTER round trip (works for PUSH->PULL too, one way)."""
    await client.send_multipart([body])
    got = await server.recv_multipart()
    assert got[-1] == body
    if server.type_name == "ROUTER":
        await server.send_multipart([got[0], b"re:" + body])
        assert await client.recv_multipart() == [b"re:" + body]


@pytest.mark.interop
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(("client_type", "server_type"), [("PUSH", "PULL"), ("DEALER", "ROUTER")])
async def test_trimq_reconnects_to_restarted_pyzmq(
    peers: PeerFactory, endpoints: Endpoints, transport: str, client_type: str, server_type: str
) -> None:
    with trio.fail_after(5):
        endpoint = fixed_endpoint(transport, peers, endpoints)
        server = peers.pyzmq(server_type)
        await server.bind(endpoint)
        client = peers.trimq(client_type, reconnect_ivl=RECONNECT_IVL)
        await client.connect(endpoint)
        await client.wait_handshake()
        await request(client, server, b"first")

        await server.close_listener(endpoint)
        await server.aclose()
        await client.wait_event("DISCONNECTED")
        await client.send_multipart([b"queued while down"])
        server = peers.pyzmq(server_type)
        await server.bind(endpoint)
        await client.wait_handshake()
        assert (await server.recv_multipart())[-1] == b"queued while down"
        await request(client, server, b"second")


@pytest.mark.interop
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(("client_type", "server_type"), [("PUSH", "PULL"), ("DEALER", "ROUTER")])
async def test_pyzmq_reconnects_to_restarted_trimq(
    peers: PeerFactory, endpoints: Endpoints, transport: str, client_type: str, server_type: str
) -> None:
    with trio.fail_after(5):
        endpoint = fixed_endpoint(transport, peers, endpoints)
        server = peers.trimq(server_type)
        await server.bind(endpoint)
        client = peers.pyzmq(client_type, reconnect_ivl=RECONNECT_IVL)
        await client.connect(endpoint)
        await server.wait_handshake()
        await client.wait_handshake()
        await request(client, server, b"first")

        await server.aclose()
        await client.wait_event("DISCONNECTED")
        server = peers.trimq(server_type)
        await server.bind(endpoint)
        await server.wait_handshake()
        await client.wait_handshake()
        await request(client, server, b"second")


@pytest.mark.interop
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_pyzmq_reconnects_to_trimq_rebound_at_once(
    peers: PeerFactory, endpoints: Endpoints, transport: str
) -> None:
    """Restarting a trimq server: close it and bind a new socket right away."""
    with trio.fail_after(5):
        endpoint = fixed_endpoint(transport, peers, endpoints)
        server = peers.trimq("ROUTER")
        await server.bind(endpoint)
        client = peers.pyzmq("DEALER", reconnect_ivl=RECONNECT_IVL)
        await client.connect(endpoint)
        await client.wait_handshake()
        await request(client, server, b"first")

        await server.aclose()
        server = peers.trimq("ROUTER")
        await server.bind(endpoint)  # the old listener is closed once aclose() returned
        await client.wait_event("DISCONNECTED")
        await server.wait_handshake()
        await client.wait_handshake()
        await request(client, server, b"second")


async def until_received(pub: Peer, sub: Peer, msg: list[bytes]) -> None:
    """Publish ``msg`` until it arrives (a PUB shows no sign of a new subscription)."""
    while True:
        await pub.send_multipart(msg)
        if (got := await sub.recv_within(0.02)) is not None:
            assert got == msg
            return


async def drain_until(sub: Peer, msg: list[bytes]) -> None:
    while await sub.recv_multipart() != msg:
        pass


async def check_subscribed(pub: Peer, sub: Peer, tag: bytes) -> None:
    """``sub`` (subscribed to b"news" only) gets news and not weather from ``pub``."""
    if pub.type_name == "XPUB":
        while (got := await pub.recv_within(0.02)) is None:
            sub.nudge()  # an idle libzmq SUB sends its subscriptions on its next call
        assert got == [b"\x01news"]
        await pub.send_multipart([b"weather", tag])
        await pub.send_multipart([b"news", tag])
        assert await sub.recv_multipart() == [b"news", tag]
    else:
        await until_received(pub, sub, [b"news", b"probe-" + tag])
        await pub.send_multipart([b"weather", tag])
        await pub.send_multipart([b"news", tag])
        await drain_until(sub, [b"news", tag])
        # Nothing but news, and it is in order: weather was filtered out.
        await pub.send_multipart([b"news", tag + b"-end"])
        assert await sub.recv_multipart() == [b"news", tag + b"-end"]


Restart = Callable[[], Peer]


@pytest.mark.interop
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("pub_type", ["PUB", "XPUB"])
@pytest.mark.parametrize(
    ("sub_kind", "pub_kind"),
    [
        pytest.param("trimq", "pyzmq", id="trimq-SUB->pyzmq"),
        pytest.param("pyzmq", "trimq", id="pyzmq-SUB->trimq"),
    ],
)
async def test_sub_resubscribes_after_publisher_restart(
    peers: PeerFactory,
    endpoints: Endpoints,
    transport: str,
    pub_type: str,
    sub_kind: str,
    pub_kind: str,
) -> None:
    with trio.fail_after(5):
        endpoint = fixed_endpoint(transport, peers, endpoints)
        pub = peers.make(pub_kind, pub_type)
        await pub.bind(endpoint)
        sub = peers.make(sub_kind, "SUB", reconnect_ivl=RECONNECT_IVL)
        sub.subscribe(b"news")
        await sub.connect(endpoint)
        await sub.wait_handshake()
        await check_subscribed(pub, sub, b"1")

        if isinstance(pub, PyzmqPeer):
            await pub.close_listener(endpoint)
        await pub.aclose()
        await sub.wait_event("DISCONNECTED")
        pub = peers.make(pub_kind, pub_type)
        await pub.bind(endpoint)
        await sub.wait_handshake()
        await check_subscribed(pub, sub, b"2")
