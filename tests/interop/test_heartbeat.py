"""ZMTP 3.1 heartbeats between trimq and libzmq.

The connection runs through a recording relay, so each test checks both the
outcome (no DISCONNECTED on either side through a quiet period several
heartbeat intervals long, then messages still flow) and the wire (PINGs with
the configured TTL, answered by PONGs echoing the PING context).

The quiet period is a bounded wait for an event that must *not* happen, not a
sleep standing in for synchronisation. Heartbeat expiry against an
unresponsive peer is tested elsewhere with raw sockets.
"""

from __future__ import annotations

import struct

import pytest
import trio

from ._peers import Peer, PeerFactory
from ._relay import Frame, Relay, start_relay, tcp_port

IVL = 50  # ms
TIMEOUT = 250  # ms
TTL = 300  # ms; sent on the wire in deciseconds
QUIET = 0.5  # s: ten heartbeat intervals, longer than the timeout and the TTL
HEARTBEAT_OPTIONS = {"heartbeat_ivl": IVL, "heartbeat_timeout": TIMEOUT, "heartbeat_ttl": TTL}


async def no_disconnect_during(seconds: float, *peers: Peer) -> dict[str, bool]:
    """For each peer, whether it reported DISCONNECTED within ``seconds`` (all watched at once)."""
    seen: dict[str, bool] = {}

    async def watch(peer: Peer) -> None:
        seen[peer.kind] = await peer.event_within("DISCONNECTED", seconds)

    async with trio.open_nursery() as nursery:
        for peer in peers:
            nursery.start_soon(watch, peer)
    return seen


def sent_by(relay: Relay, peer: Peer, connector: Peer, name: bytes) -> list[Frame]:
    """Command frames called ``name`` that ``peer`` sent through the relay."""
    return relay.upstream_commands(name) if peer is connector else relay.downstream_commands(name)


def assert_pings_answered(relay: Relay, pinger: Peer, ponger: Peer, connector: Peer) -> None:
    pings = sent_by(relay, pinger, connector, b"PING")
    pongs = sent_by(relay, ponger, connector, b"PONG")
    # About QUIET / IVL = 10 pings; allow for a slow machine.
    assert len(pings) >= 4, pings
    assert len(pongs) >= len(pings) - 2, (pings, pongs)  # the last may be in flight
    for ping in pings:
        (ttl_ds,) = struct.unpack(">H", ping.command_data[:2])
        assert ttl_ds == TTL // 100
    contexts = {ping.command_data[2:] for ping in pings}
    assert {pong.command_data for pong in pongs} <= contexts


@pytest.mark.interop
@pytest.mark.parametrize("binder", ["trimq", "pyzmq"])
@pytest.mark.parametrize("heartbeating", ["trimq", "pyzmq", "both"])
async def test_heartbeats_keep_connection_up(
    peers: PeerFactory, nursery: trio.Nursery, binder: str, heartbeating: str
) -> None:
    with trio.fail_after(5):
        made: dict[str, Peer] = {}
        for kind in ("trimq", "pyzmq"):
            options = HEARTBEAT_OPTIONS if heartbeating in (kind, "both") else {}
            made[kind] = peers.make(kind, "DEALER", **options)
        bound = made[binder]
        connector = made["pyzmq" if binder == "trimq" else "trimq"]
        relay = await start_relay(nursery, tcp_port(await bound.bind("tcp://127.0.0.1:*")))
        await connector.connect(relay.endpoint)
        for peer in made.values():
            await peer.wait_handshake()
        await made["trimq"].send_multipart([b"before"])
        assert await made["pyzmq"].recv_multipart() == [b"before"]

        disconnected = await no_disconnect_during(QUIET, *made.values())
        assert disconnected == {"trimq": False, "pyzmq": False}

        for kind in ("trimq", "pyzmq"):
            if heartbeating in (kind, "both"):
                other = made["pyzmq" if kind == "trimq" else "trimq"]
                assert_pings_answered(relay, made[kind], other, connector)
            else:
                assert sent_by(relay, made[kind], connector, b"PING") == []
        await made["pyzmq"].send_multipart([b"after", b"quiet"])
        assert await made["trimq"].recv_multipart() == [b"after", b"quiet"]
        await made["trimq"].send_multipart([b"and", b"back"])
        assert await made["pyzmq"].recv_multipart() == [b"and", b"back"]
