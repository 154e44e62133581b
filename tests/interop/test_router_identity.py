"""ROUTER routing ids between trimq and libzmq, both ways round."""

from __future__ import annotations

import pytest
import trio
import zmq

import trimq

from ._peers import Endpoints, Peer, PeerFactory

BINDERS = [pytest.param("router", id="router-binds"), pytest.param("client", id="client-binds")]
CLIENTS = ["DEALER", "REQ"]


def envelope(client_type: str) -> list[bytes]:
    """What a ROUTER sees between the routing id and the body: REQ adds a delimiter."""
    return [b""] if client_type == "REQ" else []


async def connect(router: Peer, client: Peer, endpoints: Endpoints, binder: str) -> None:
    first, second = (router, client) if binder == "router" else (client, router)
    await second.connect(await first.bind(endpoints.bind_address("tcp")))
    await router.wait_handshake()
    await client.wait_handshake()


async def round_trip(router: Peer, client: Peer, client_type: str, expected_id: bytes) -> None:
    await client.send_multipart([b"hello"])
    routing_id, *rest = await router.recv_multipart()
    assert routing_id == expected_id
    assert rest == [*envelope(client_type), b"hello"]
    await router.send_multipart([routing_id, *envelope(client_type), b"reply"])
    assert await client.recv_multipart() == [b"reply"]


@pytest.mark.interop
@pytest.mark.parametrize("binder", BINDERS)
@pytest.mark.parametrize("client_type", CLIENTS)
async def test_pyzmq_routing_id_seen_by_trimq_router(
    peers: PeerFactory, endpoints: Endpoints, binder: str, client_type: str
) -> None:
    with trio.fail_after(5):
        router = peers.trimq("ROUTER", router_mandatory=True)
        client = peers.pyzmq(client_type, routing_id=b"libzmq-client")
        await connect(router, client, endpoints, binder)
        await round_trip(router, client, client_type, b"libzmq-client")
        with pytest.raises(trimq.HostUnreachableError):
            await router.send_multipart([b"nobody", b"x"])


@pytest.mark.interop
@pytest.mark.parametrize("binder", BINDERS)
@pytest.mark.parametrize("client_type", CLIENTS)
async def test_trimq_routing_id_seen_by_pyzmq_router(
    peers: PeerFactory, endpoints: Endpoints, binder: str, client_type: str
) -> None:
    with trio.fail_after(5):
        router = peers.pyzmq("ROUTER", router_mandatory=1)
        client = peers.trimq(client_type, routing_id=b"trimq-client")
        await connect(router, client, endpoints, binder)
        await round_trip(router, client, client_type, b"trimq-client")
        with pytest.raises(zmq.ZMQError) as info:
            await router.send_multipart([b"nobody", b"x"])
        assert info.value.errno == zmq.EHOSTUNREACH


def assert_generated(routing_id: bytes) -> None:
    assert len(routing_id) == 5, routing_id
    assert routing_id.startswith(b"\x00"), routing_id


@pytest.mark.interop
@pytest.mark.parametrize("binder", BINDERS)
async def test_trimq_router_generates_ids_for_anonymous_libzmq_peers(
    peers: PeerFactory, endpoints: Endpoints, binder: str
) -> None:
    with trio.fail_after(5):
        router = peers.trimq("ROUTER", router_mandatory=True)
        types = ["DEALER", "REQ", "DEALER"]
        clients = [peers.pyzmq(t) for t in types]
        if binder == "router":
            endpoint = await router.bind(endpoints.bind_address("tcp"))
            for client in clients:
                await client.connect(endpoint)
        else:
            for client in clients:
                await router.connect(await client.bind(endpoints.bind_address("tcp")))
        for client in clients:
            await client.wait_handshake()
        ids = {}
        for n, (client, client_type) in enumerate(zip(clients, types, strict=True)):
            await client.send_multipart([b"client-%d" % n])
            routing_id, *rest = await router.recv_multipart()
            assert rest == [*envelope(client_type), b"client-%d" % n]
            assert_generated(routing_id)
            ids[n] = routing_id
        assert len(set(ids.values())) == len(clients)
        # Replies in reverse order reach the right peer.
        for n in reversed(range(len(clients))):
            await router.send_multipart([ids[n], *envelope(types[n]), b"for-%d" % n])
        for n, client in enumerate(clients):
            assert await client.recv_multipart() == [b"for-%d" % n]


@pytest.mark.interop
async def test_named_and_anonymous_peers_on_one_trimq_router(
    peers: PeerFactory, endpoints: Endpoints
) -> None:
    with trio.fail_after(5):
        router = peers.trimq("ROUTER")
        endpoint = await router.bind(endpoints.bind_address("tcp"))
        named = peers.pyzmq("DEALER", routing_id=b"named")
        anonymous = peers.pyzmq("DEALER")
        for client in (named, anonymous):
            await client.connect(endpoint)
            await client.wait_handshake()
        await anonymous.send_multipart([b"from-anonymous"])
        await named.send_multipart([b"from-named"])
        received = [await router.recv_multipart() for _ in range(2)]
        by_body = {body: routing_id for routing_id, body in received}
        assert by_body[b"from-named"] == b"named"
        assert_generated(by_body[b"from-anonymous"])
        await router.send_multipart([by_body[b"from-anonymous"], b"to-anonymous"])
        await router.send_multipart([b"named", b"to-named"])
        assert await named.recv_multipart() == [b"to-named"]
        assert await anonymous.recv_multipart() == [b"to-anonymous"]


@pytest.mark.interop
async def test_libzmq_router_generates_ids_for_anonymous_trimq_peers(
    peers: PeerFactory, endpoints: Endpoints
) -> None:
    """The mirror image: trimq peers without routing_id get libzmq's generated ids."""
    with trio.fail_after(5):
        router = peers.pyzmq("ROUTER")
        endpoint = await router.bind(endpoints.bind_address("tcp"))
        client = peers.trimq("DEALER")
        await client.connect(endpoint)
        await client.wait_handshake()
        await client.send_multipart([b"hi"])
        routing_id, body = await router.recv_multipart()
        assert body == b"hi"
        assert_generated(routing_id)
        await router.send_multipart([routing_id, b"back"])
        assert await client.recv_multipart() == [b"back"]


@pytest.mark.interop
@pytest.mark.parametrize("handover", [False, True], ids=["first-wins", "handover"])
async def test_duplicate_routing_id_from_libzmq_peers(
    peers: PeerFactory, endpoints: Endpoints, handover: bool
) -> None:
    """A second libzmq peer claiming a taken id is ignored, or takes over with router_handover."""
    with trio.fail_after(5):
        router = peers.trimq("ROUTER", router_handover=handover)
        endpoint = await router.bind(endpoints.bind_address("tcp"))
        first = peers.pyzmq("DEALER", routing_id=b"dup")
        await first.connect(endpoint)
        await first.wait_handshake()
        await first.send_multipart([b"one"])
        assert await router.recv_multipart() == [b"dup", b"one"]

        second = peers.pyzmq("DEALER", routing_id=b"dup")
        await second.connect(endpoint)
        await second.wait_handshake()
        await second.send_multipart([b"two"])
        if handover:
            assert await router.recv_multipart() == [b"dup", b"two"]
            await router.send_multipart([b"dup", b"to the newcomer"])
            assert await second.recv_multipart() == [b"to the newcomer"]
        else:
            await first.send_multipart([b"three"])
            assert await router.recv_multipart() == [b"dup", b"three"]
            await router.send_multipart([b"dup", b"to the first"])
            assert await first.recv_multipart() == [b"to the first"]
            assert await router.recv_within(0.1) is None  # "two" was never delivered
            assert await second.recv_within(0.05) is None
