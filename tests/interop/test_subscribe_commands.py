"""Subscriptions on the wire between trimq and libzmq 4.3.5 (which speaks ZMTP 3.1).

A recording relay sits between the two real peers, so the tests see that
subscriptions travel as ZMTP 3.1 SUBSCRIBE/CANCEL commands in both
directions, and that an XPUB application sees them as ``\\x01topic`` /
``\\x00topic``. A libzmq peer that advertises ZMTP 3.0 cannot be built with
pyzmq 27, so the 3.0 fallback is left to the raw-socket tests elsewhere.
"""

from __future__ import annotations

import pytest
import trio

from ._peers import Peer, PeerFactory
from ._relay import Frame, Relay, start_relay, tcp_port


def assert_upstream_command(relay: Relay, name: bytes, data: bytes) -> None:
    """Call once the XPUB saw the subscription: the relay recorded it before forwarding."""
    commands = relay.upstream_commands(name)
    assert Frame(0x04, bytes([len(name)]) + name + data) in commands, relay.upstream_frames()


def assert_no_data_subscriptions(relay: Relay) -> None:
    data_frames = [f for f in relay.upstream_frames() if not f.is_command]
    assert not [f for f in data_frames if f.body[:1] in (b"\x00", b"\x01")], data_frames


async def xpub_behind_relay(nursery: trio.Nursery, xpub: Peer, sub: Peer) -> Relay:
    endpoint = await xpub.bind("tcp://127.0.0.1:*")
    relay = await start_relay(nursery, tcp_port(endpoint))
    await sub.connect(relay.endpoint)
    await sub.wait_handshake()
    await xpub.wait_handshake()
    return relay


@pytest.mark.interop
@pytest.mark.parametrize(
    ("sub_kind", "xpub_kind"),
    [
        pytest.param("trimq", "pyzmq", id="trimq-SUB->pyzmq-XPUB"),
        pytest.param("pyzmq", "trimq", id="pyzmq-SUB->trimq-XPUB"),
    ],
)
async def test_subscriptions_are_zmtp31_commands(
    peers: PeerFactory, nursery: trio.Nursery, sub_kind: str, xpub_kind: str
) -> None:
    with trio.fail_after(5):
        xpub = peers.make(xpub_kind, "XPUB")
        sub = peers.make(sub_kind, "SUB")
        relay = await xpub_behind_relay(nursery, xpub, sub)
        # Both ends announced ZMTP 3.1 in their greetings (byte 10 major, 11 minor).
        assert relay.upstream[10:12] == b"\x03\x01"
        assert relay.downstream[10:12] == b"\x03\x01"

        sub.subscribe(b"topic")
        assert await xpub.recv_multipart() == [b"\x01topic"]
        assert_upstream_command(relay, b"SUBSCRIBE", b"topic")

        sub.subscribe(b"")
        assert await xpub.recv_multipart() == [b"\x01"]
        assert_upstream_command(relay, b"SUBSCRIBE", b"")

        sub.unsubscribe(b"topic")
        assert await xpub.recv_multipart() == [b"\x00topic"]
        assert_upstream_command(relay, b"CANCEL", b"topic")
        assert_no_data_subscriptions(relay)

        # And the subscription is in force: a matching message gets through.
        await xpub.send_multipart([b"topic", b"body"])
        assert await sub.recv_multipart() == [b"topic", b"body"]


@pytest.mark.interop
async def test_trimq_sub_subscription_made_before_connect_is_sent(
    peers: PeerFactory, nursery: trio.Nursery
) -> None:
    with trio.fail_after(5):
        xpub = peers.pyzmq("XPUB")
        sub = peers.trimq("SUB")
        sub.subscribe(b"early")
        sub.subscribe(b"early")  # counted locally, sent again (as libzmq does)
        relay = await xpub_behind_relay(nursery, xpub, sub)
        assert await xpub.recv_multipart() == [b"\x01early"]
        assert_upstream_command(relay, b"SUBSCRIBE", b"early")
        assert_no_data_subscriptions(relay)


@pytest.mark.interop
async def test_trimq_xsub_subscription_reaches_pyzmq_xpub(
    peers: PeerFactory, nursery: trio.Nursery
) -> None:
    """An XSUB's 0x01 message reaches libzmq's XPUB as a subscription in either wire form."""
    with trio.fail_after(5):
        xpub = peers.pyzmq("XPUB")
        xsub = peers.trimq("XSUB")
        await xpub_behind_relay(nursery, xpub, xsub)
        await xsub.send_multipart([b"\x01news"])
        assert await xpub.recv_multipart() == [b"\x01news"]
        await xpub.send_multipart([b"news", b"1"])
        await xpub.send_multipart([b"other", b"1"])
        await xpub.send_multipart([b"news", b"2"])
        assert await xsub.recv_multipart() == [b"news", b"1"]
        assert await xsub.recv_multipart() == [b"news", b"2"]
        await xsub.send_multipart([b"\x00news"])
        assert await xpub.recv_multipart() == [b"\x00news"]
