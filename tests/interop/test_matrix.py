"""Every valid socket-type pair, trimq against libzmq, both ways round, tcp and ipc.

Each case binds one side, connects the other, waits for the ZMTP handshake on
both (trimq's monitor and libzmq's monitor socket), then runs the pattern's
exchange with multipart messages, empty frames, 255/256-byte frames (the
short/long frame boundary) and a message over 1 MiB.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import attrs
import pytest
import trio
import zmq

from ._peers import Endpoints, Peer, PeerFactory

BIG = bytes(range(256)) * 4096 + b"tail"  # 1 MiB + 4 bytes

MESSAGES: list[list[bytes]] = [
    [b"hello"],
    [b"multi", b"part", b"message"],
    [b""],
    [b"a", b"", b"", b"d"],
    [b"x" * 255, b"y" * 256, b"z" * 254, b"w" * 257],
    [b"big", BIG],
]

Exchange = Callable[[Peer, Peer, bool], Awaitable[None]]
"""An exchange gets peer a, peer b, and whether a is the connecting side."""


def reply_to(msg: list[bytes]) -> list[bytes]:
    """A reply that differs from the request but is as demanding."""
    return [b"re:" + frame for frame in reversed(msg)]


async def one_way(sender: Peer, receiver: Peer) -> None:
    for msg in MESSAGES:
        await sender.send_multipart(msg)
        assert await receiver.recv_multipart() == msg


async def push_pull(a: Peer, b: Peer, _a_connects: bool) -> None:
    await one_way(a, b)


async def both_ways(a: Peer, b: Peer, _a_connects: bool) -> None:
    await one_way(a, b)
    await one_way(b, a)


async def req_rep(a: Peer, b: Peer, _a_connects: bool) -> None:
    for msg in MESSAGES:
        await a.send_multipart(msg)
        assert await b.recv_multipart() == msg
        await b.send_multipart(reply_to(msg))
        assert await a.recv_multipart() == reply_to(msg)


async def req_router(a: Peer, b: Peer, _a_connects: bool) -> None:
    for msg in MESSAGES:
        await a.send_multipart(msg)
        routing_id, delimiter, *body = await b.recv_multipart()
        assert (delimiter, body) == (b"", msg)
        await b.send_multipart([routing_id, b"", *reply_to(msg)])
        assert await a.recv_multipart() == reply_to(msg)


async def dealer_rep(a: Peer, b: Peer, _a_connects: bool) -> None:
    for msg in MESSAGES:
        await a.send_multipart([b"", *msg])
        assert await b.recv_multipart() == msg
        await b.send_multipart(reply_to(msg))
        assert await a.recv_multipart() == [b"", *reply_to(msg)]


async def dealer_router(a: Peer, b: Peer, _a_connects: bool) -> None:
    for msg in MESSAGES:
        await a.send_multipart(msg)
        routing_id, *body = await b.recv_multipart()
        assert body == msg
        await b.send_multipart([routing_id, *reply_to(msg)])
        assert await a.recv_multipart() == reply_to(msg)


ROUTER_IDS = {"a": b"router-a", "b": b"router-b"}


async def send_when_routable(router: Peer, msg: list[bytes]) -> None:
    """Send from a router_mandatory libzmq ROUTER, retrying while the peer's id is unknown.

    libzmq reports HANDSHAKE_SUCCEEDED from its I/O thread before the socket
    thread has attached the peer's pipe; the socket attaches it while handling
    a call, so retrying the send (each attempt processes pending commands) ends
    the race. The loop is bounded by the test's fail_after.
    """
    while True:
        try:
            await router.send_multipart(msg)
            return
        except zmq.ZMQError as exc:
            if exc.errno != zmq.EHOSTUNREACH:
                raise


async def router_router(a: Peer, b: Peer, a_connects: bool) -> None:
    connector, binder = (a, b) if a_connects else (b, a)
    connector_id, binder_id = (
        (ROUTER_IDS["a"], ROUTER_IDS["b"]) if a_connects else (ROUTER_IDS["b"], ROUTER_IDS["a"])
    )
    for msg in MESSAGES:
        if connector.kind == "pyzmq":
            await send_when_routable(connector, [binder_id, *msg])
        else:
            await connector.send_multipart([binder_id, *msg])
        assert await binder.recv_multipart() == [connector_id, *msg]
        await binder.send_multipart([connector_id, *reply_to(msg)])
        assert await connector.recv_multipart() == [binder_id, *reply_to(msg)]


async def wait_until_subscribed(pub: Peer, sub: Peer) -> None:
    """Make sure the publisher applies the subscriber's subscription to b"".

    An XPUB shows it (b"\\x01"); a PUB is probed until a message gets through.
    """
    if pub.type_name == "XPUB":
        while (got := await pub.recv_within(0.02)) is None:
            sub.nudge()
        assert got == [b"\x01"]
        return
    probe = [b"\xffprobe"]
    while True:
        await pub.send_multipart(probe)
        if (got := await sub.recv_within(0.02)) is not None:
            assert got == probe
            return


async def pub_sub(a: Peer, b: Peer, _a_connects: bool) -> None:
    if b.type_name == "SUB":
        b.subscribe(b"")
    else:
        await b.send_multipart([b"\x01"])
    await wait_until_subscribed(a, b)
    for msg in MESSAGES:
        await a.send_multipart(msg)
        got = await b.recv_multipart()
        while got == [b"\xffprobe"]:  # probes still in flight when the first arrived
            got = await b.recv_multipart()
        assert got == msg


PAIRS: dict[tuple[str, str], Exchange] = {
    ("PUSH", "PULL"): push_pull,
    ("PAIR", "PAIR"): both_ways,
    ("REQ", "REP"): req_rep,
    ("REQ", "ROUTER"): req_router,
    ("DEALER", "REP"): dealer_rep,
    ("DEALER", "DEALER"): both_ways,
    ("DEALER", "ROUTER"): dealer_router,
    ("ROUTER", "ROUTER"): router_router,
    ("PUB", "SUB"): pub_sub,
    ("PUB", "XSUB"): pub_sub,
    ("XPUB", "SUB"): pub_sub,
    ("XPUB", "XSUB"): pub_sub,
}


@attrs.frozen
class Case:
    a: str
    b: str
    trimq_side: str  # "a" or "b"
    transport: str
    binder: str  # "a" or "b"

    @property
    def id(self) -> str:
        kinds = {"a": "pyzmq", "b": "pyzmq", self.trimq_side: "trimq"}
        left = f"{kinds['a']}-{self.a}" + ("(bind)" if self.binder == "a" else "")
        right = f"{kinds['b']}-{self.b}" + ("(bind)" if self.binder == "b" else "")
        return f"{self.transport}:{left}->{right}"


CASES = [
    Case(a, b, side, transport, binder)
    for (a, b) in PAIRS
    for side in ("a", "b")
    for transport in ("tcp", "ipc")
    for binder in ("a", "b")
]


@pytest.mark.interop
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_exchange(case: Case, peers: PeerFactory, endpoints: Endpoints) -> None:
    with trio.fail_after(4):
        made: dict[str, Peer] = {}
        for role, type_name in (("a", case.a), ("b", case.b)):
            kind = "trimq" if role == case.trimq_side else "pyzmq"
            options: dict[str, object] = {}
            if type_name == "ROUTER" and case.a == case.b:
                options["routing_id"] = ROUTER_IDS[role]
                options["router_mandatory"] = True
            made[role] = peers.make(kind, type_name, **options)
        binder = made[case.binder]
        connector = made["b" if case.binder == "a" else "a"]
        endpoint = await binder.bind(endpoints.bind_address(case.transport))
        await connector.connect(endpoint)
        await binder.wait_handshake()
        await connector.wait_handshake()
        await PAIRS[case.a, case.b](made["a"], made["b"], connector is made["a"])
