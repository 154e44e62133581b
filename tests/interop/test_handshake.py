"""Handshake details against libzmq: READY metadata, refused socket types, maxmsgsize."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import zmq
import zmq.utils.monitor

import trimq

from ._peers import SOCKET_TIMEOUT_MS, Endpoints, Peer, PeerFactory


async def connect(first: Peer, second: Peer, endpoints: Endpoints) -> None:
    await second.connect(await first.bind(endpoints.bind_address("tcp")))


@pytest.mark.interop
@pytest.mark.parametrize(
    ("trimq_type", "pyzmq_type"),
    [("PUSH", "PULL"), ("DEALER", "ROUTER"), ("REQ", "ROUTER"), ("PAIR", "PAIR"), ("PUB", "SUB")],
)
async def test_libzmq_reads_trimq_ready_metadata(
    peers: PeerFactory, endpoints: Endpoints, trimq_type: str, pyzmq_type: str
) -> None:
    """libzmq exposes the READY properties trimq sent as message metadata."""
    with trio.fail_after(5):
        sender = peers.trimq(trimq_type, routing_id=b"trimq-id")
        receiver = peers.pyzmq(pyzmq_type)
        await connect(receiver, sender, endpoints)
        if pyzmq_type == "SUB":
            receiver.subscribe(b"")
        await sender.wait_handshake()
        await receiver.wait_handshake()

        def recv_frame() -> Any:
            if receiver.sock.poll(20):
                return receiver.sock.recv(copy=False)
            return None

        while True:  # a PUB sends nothing until the subscription is in
            await sender.send_multipart([b"x"])
            if (frame := await trio.to_thread.run_sync(recv_frame)) is not None:
                break
        assert frame.get("Socket-Type") == trimq_type
        if trimq_type in ("DEALER", "REQ"):
            assert frame.get("Identity") == "trimq-id"
        assert frame.get("Peer-Address") == "127.0.0.1"


INCOMPATIBLE = [("PUSH", "PUSH"), ("REQ", "REQ"), ("PUB", "PULL"), ("ROUTER", "PAIR")]


@pytest.mark.interop
@pytest.mark.parametrize("trimq_binds", [True, False], ids=["trimq-binds", "trimq-connects"])
@pytest.mark.parametrize(("trimq_type", "pyzmq_type"), INCOMPATIBLE)
async def test_incompatible_socket_types_are_refused(
    peers: PeerFactory, endpoints: Endpoints, trimq_type: str, pyzmq_type: str, trimq_binds: bool
) -> None:
    """trimq refuses libzmq's READY for a socket type it cannot talk to, and says why."""
    with trio.fail_after(5):
        ours = peers.trimq(trimq_type)
        theirs = peers.pyzmq(pyzmq_type)
        if trimq_binds:
            await connect(ours, theirs, endpoints)
        else:
            await connect(theirs, ours, endpoints)
        event = await ours.monitor.wait_for(
            trimq.EventType.HANDSHAKE_FAILED_PROTOCOL, trimq.EventType.HANDSHAKE_SUCCEEDED
        )
        assert event.type is trimq.EventType.HANDSHAKE_FAILED_PROTOCOL
        assert event.reason
        assert ours.sock.statistics().peers == 0  # the connect side drops its pipe too


@pytest.mark.interop
async def test_trimq_maxmsgsize_drops_libzmq_peer_sending_too_much(
    peers: PeerFactory, endpoints: Endpoints
) -> None:
    with trio.fail_after(5):
        pull = peers.trimq("PULL", maxmsgsize=1000)
        push = peers.pyzmq("PUSH")
        await connect(pull, push, endpoints)
        await pull.wait_handshake()
        await push.wait_handshake()
        await push.send_multipart([b"a" * 1000])
        assert await pull.recv_multipart() == [b"a" * 1000]
        await push.send_multipart([b"b" * 1001])
        event = await pull.monitor.wait_for(trimq.EventType.DISCONNECTED)
        assert "protocol error" in event.reason
        assert pull.sock.statistics().protocol_errors == 1
        assert await pull.recv_within(0.05) is None


@pytest.mark.interop
async def test_libzmq_maxmsgsize_drops_trimq_peer_sending_too_much(
    peers: PeerFactory, endpoints: Endpoints
) -> None:
    with trio.fail_after(5):
        pull = peers.pyzmq("PULL", maxmsgsize=1000)
        push = peers.trimq("PUSH")
        await connect(pull, push, endpoints)
        await pull.wait_handshake()
        await push.wait_handshake()
        await push.send_multipart([b"a" * 1000])
        assert await pull.recv_multipart() == [b"a" * 1000]
        await push.send_multipart([b"b" * 1001])
        await push.wait_event("DISCONNECTED")


@pytest.mark.interop
async def test_libzmq_stops_reconnecting_to_incompatible_trimq(
    ctx: trimq.Context, zctx: Any, endpoints: Endpoints
) -> None:
    """trimq sends its READY before refusing, so libzmq sees the mismatch and gives up.

    A bare hang-up looks to libzmq like a lost connection (HANDSHAKE_FAILED_NO_DETAIL,
    then CONNECT_RETRIED, forever); a READY it cannot accept is a protocol error,
    after which libzmq does not reconnect.
    """
    rep = ctx.socket(trimq.SocketType.REP)
    push = zctx.socket(zmq.PUSH)
    push.linger = 0
    push.reconnect_ivl = 10
    monitor = push.get_monitor_socket(zmq.EVENT_ALL)
    monitor.linger = 0
    try:
        push.connect(await rep.bind(endpoints.bind_address("tcp")))

        def next_event() -> int:
            # The timeout only guards against a hang; events drive the test.
            assert monitor.poll(SOCKET_TIMEOUT_MS), "no libzmq monitor event in time"
            return int(zmq.utils.monitor.recv_monitor_message(monitor)["event"])

        def events_until(*wanted: int) -> list[int]:
            seen = [next_event()]
            while seen[-1] not in wanted:
                seen.append(next_event())
            return seen

        with trio.fail_after(10):
            before = await trio.to_thread.run_sync(events_until, zmq.EVENT_DISCONNECTED)
            # Stopping the monitor ends its stream with MONITOR_STOPPED, after
            # everything libzmq did on the disconnect (a retry is scheduled then).
            push.disable_monitor()
            after = await trio.to_thread.run_sync(events_until, zmq.EVENT_MONITOR_STOPPED)
        events = before + after
        assert events.count(zmq.EVENT_CONNECTED) == 1, events
        assert zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL not in events, events
        assert zmq.EVENT_CONNECT_RETRIED not in events, events
    finally:
        monitor.close(linger=0)
        push.close(linger=0)
        await rep.aclose()
