"""PUB/SUB filtering between trimq and libzmq, in both directions.

Synchronisation without sleeping: ``sync`` subscribes the subscriber to a
fresh marker topic and publishes the marker until it arrives. Subscriptions
travel on the same connection, in order, so once the marker gets through the
publisher has applied every earlier subscribe and unsubscribe.
"""

from __future__ import annotations

import itertools

import pytest
import trio

from ._peers import Endpoints, Peer, PeerFactory

DIRECTIONS = [
    pytest.param("trimq", "pyzmq", id="trimq-PUB->pyzmq-SUB"),
    pytest.param("pyzmq", "trimq", id="pyzmq-PUB->trimq-SUB"),
]

_markers = itertools.count()


async def sync(pub: Peer, sub: Peer) -> None:
    """Return once ``pub`` has applied all of ``sub``'s (un)subscriptions so far."""
    marker = b"sync-%d" % next(_markers)
    sub.subscribe(marker)
    while True:
        await pub.send_multipart([marker])
        if (got := await sub.recv_within(0.02)) is not None:
            assert got[0].startswith(b"sync-")
            if got == [marker]:
                return


async def publish_and_collect(
    pub: Peer, sub: Peer, messages: list[list[bytes]]
) -> list[list[bytes]]:
    """Publish ``messages`` then an end marker; return what arrived before the marker."""
    end = b"end-%d" % next(_markers)
    sub.subscribe(end)
    await sync(pub, sub)
    for msg in messages:
        await pub.send_multipart(msg)
    await pub.send_multipart([end])
    return await collect_until(sub, [end])


async def collect_until(sub: Peer, end: list[bytes]) -> list[list[bytes]]:
    """Messages received before ``end``, leaving out sync markers still in flight."""
    received = []
    while (msg := await sub.recv_multipart()) != end:
        if not msg[0].startswith(b"sync-"):
            received.append(msg)
    return received


async def connected_pair(
    peers: PeerFactory, endpoints: Endpoints, pub_kind: str, sub_kind: str
) -> tuple[Peer, Peer]:
    pub = peers.make(pub_kind, "PUB")
    sub = peers.make(sub_kind, "SUB")
    await sub.connect(await pub.bind(endpoints.bind_address("tcp")))
    await pub.wait_handshake()
    await sub.wait_handshake()
    return pub, sub


@pytest.mark.interop
@pytest.mark.parametrize(("pub_kind", "sub_kind"), DIRECTIONS)
async def test_only_subscribed_prefixes_arrive(
    peers: PeerFactory, endpoints: Endpoints, pub_kind: str, sub_kind: str
) -> None:
    with trio.fail_after(5):
        pub, sub = await connected_pair(peers, endpoints, pub_kind, sub_kind)
        sub.subscribe(b"alpha")
        sub.subscribe(b"beta")
        got = await publish_and_collect(
            pub,
            sub,
            [
                [b"alpha"],
                [b"alphabet", b"x"],
                [b"gamma"],
                [b"bet"],
                [b"ALPHA"],
                [b"beta.1", b"payload", b""],
                [b"x", b"beta"],  # only the first frame is matched
                [b""],
            ],
        )
        assert got == [[b"alpha"], [b"alphabet", b"x"], [b"beta.1", b"payload", b""]]


@pytest.mark.interop
@pytest.mark.parametrize(("pub_kind", "sub_kind"), DIRECTIONS)
async def test_unsubscribe_stops_delivery(
    peers: PeerFactory, endpoints: Endpoints, pub_kind: str, sub_kind: str
) -> None:
    with trio.fail_after(5):
        pub, sub = await connected_pair(peers, endpoints, pub_kind, sub_kind)
        sub.subscribe(b"alpha")
        sub.subscribe(b"beta")
        messages = [[b"alpha.1"], [b"beta.1"]]
        assert await publish_and_collect(pub, sub, messages) == messages
        sub.unsubscribe(b"alpha")
        assert await publish_and_collect(pub, sub, [[b"alpha.2"], [b"beta.2"]]) == [[b"beta.2"]]
        sub.unsubscribe(b"beta")
        assert await publish_and_collect(pub, sub, [[b"alpha.3"], [b"beta.3"]]) == []
        sub.subscribe(b"alpha")
        assert await publish_and_collect(pub, sub, [[b"alpha.4"], [b"beta.4"]]) == [[b"alpha.4"]]


@pytest.mark.interop
@pytest.mark.parametrize(("pub_kind", "sub_kind"), DIRECTIONS)
async def test_duplicate_subscriptions_are_counted(
    peers: PeerFactory, endpoints: Endpoints, pub_kind: str, sub_kind: str
) -> None:
    """A SUB refcounts its subscriptions: two subscribes need two unsubscribes."""
    with trio.fail_after(5):
        pub, sub = await connected_pair(peers, endpoints, pub_kind, sub_kind)
        sub.subscribe(b"dup")
        sub.subscribe(b"dup")
        sub.unsubscribe(b"dup")
        assert await publish_and_collect(pub, sub, [[b"dup.1"]]) == [[b"dup.1"]]
        sub.unsubscribe(b"dup")
        assert await publish_and_collect(pub, sub, [[b"dup.2"]]) == []


@pytest.mark.interop
@pytest.mark.parametrize(("pub_kind", "sub_kind"), DIRECTIONS)
async def test_overlapping_and_empty_subscriptions(
    peers: PeerFactory, endpoints: Endpoints, pub_kind: str, sub_kind: str
) -> None:
    """Overlapping prefixes deliver a message once; b"" matches everything."""
    with trio.fail_after(5):
        pub, sub = await connected_pair(peers, endpoints, pub_kind, sub_kind)
        sub.subscribe(b"a")
        sub.subscribe(b"ab")
        sub.subscribe(b"abc")
        messages = [[b"abcd"], [b"ab"], [b"a"], [b"b"], [b"xabc"]]
        assert await publish_and_collect(pub, sub, messages) == [[b"abcd"], [b"ab"], [b"a"]]
        sub.subscribe(b"")
        assert await publish_and_collect(pub, sub, messages) == messages
        sub.unsubscribe(b"")
        sub.unsubscribe(b"a")
        assert await publish_and_collect(pub, sub, messages) == [[b"abcd"], [b"ab"]]


@pytest.mark.interop
@pytest.mark.parametrize(("pub_kind", "sub_kind"), DIRECTIONS)
async def test_several_subscribers_filter_independently(
    peers: PeerFactory, endpoints: Endpoints, pub_kind: str, sub_kind: str
) -> None:
    with trio.fail_after(5):
        pub = peers.make(pub_kind, "PUB")
        endpoint = await pub.bind(endpoints.bind_address("tcp"))
        subs = [peers.make(sub_kind, "SUB") for _ in range(3)]
        for sub in subs:
            await sub.connect(endpoint)
            await sub.wait_handshake()
        for sub, topic in zip(subs, [b"one", b"two", b"t"], strict=True):
            sub.subscribe(topic)
            sub.subscribe(b"end")
            await sync(pub, sub)
        for msg in [[b"one.1"], [b"two.1"], [b"three.1"], [b"end"]]:
            await pub.send_multipart(msg)
        got = [await collect_until(sub, [b"end"]) for sub in subs]
        assert got == [[[b"one.1"]], [[b"two.1"]], [[b"two.1"], [b"three.1"]]]
