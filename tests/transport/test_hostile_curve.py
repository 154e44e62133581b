"""Hostile CURVE peers against a trimq CURVE server that is serving a good CURVE client.

Same harness as test_hostile.py: a good PUSH (libzmq or trimq, with CURVE keys)
streams numbered messages into a trimq PULL that is a CURVE server, while raw
TCP clients send hand-made CURVE traffic. Each bad connection must be dropped
and reported, nothing may reach the application from it, and the good peer's
stream must arrive complete and in order.
"""

from __future__ import annotations

import gc
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import pytest
import trio

import trimq
from trimq import EventType, MonitorEvent
from trimq.zmtp import (
    CurveClientMechanism,
    CurveServerMechanism,
    HandshakeComplete,
    SocketType,
    ZmtpConnection,
    encode_greeting,
)

from .test_hostile import DROP_TIMEOUT, GoodKind, Harness, read_until_dropped, serving_good_peer

SERVER_PUBLIC, SERVER_SECRET = trimq.curve_keypair()
CLIENT_PUBLIC, CLIENT_SECRET = trimq.curve_keypair()
OTHER_SERVER_PUBLIC, _ = trimq.curve_keypair()

SERVER: dict[str, Any] = {
    "curve_server": True,
    "curve_secretkey": SERVER_SECRET,
    "curve_publickey": SERVER_PUBLIC,
}
GOOD_CLIENT: dict[str, Any] = {
    "curve_serverkey": SERVER_PUBLIC,
    "curve_publickey": CLIENT_PUBLIC,
    "curve_secretkey": CLIENT_SECRET,
}


def curve_client(server_key: bytes = SERVER_PUBLIC) -> ZmtpConnection:
    """A sans-I/O CURVE PUSH client, for writing raw traffic."""
    return ZmtpConnection(
        SocketType.PUSH,
        mechanism=CurveClientMechanism(CLIENT_PUBLIC, CLIENT_SECRET, server_key),
    )


def command_frame(body: bytes) -> bytes:
    """A ZMTP command frame (short or long) around ``body``."""
    if len(body) < 256:
        return bytes((0x04, len(body))) + body
    return b"\x06" + len(body).to_bytes(8, "big") + body


@attrs.define
class Transcript:
    """What a real client sent and received up to a point, as raw bytes."""

    greeting_and_hello: bytes
    initiate: bytes = b""
    after_ready: bytes = b""


async def handshake_until(
    stream: trio.abc.Stream, conn: ZmtpConnection, *, stop_before_initiate: bool = False
) -> Transcript:
    """Run a real CURVE client handshake over ``stream``, recording what it sent."""
    transcript = Transcript(conn.data_to_send())
    await stream.send_all(transcript.greeting_and_hello)
    with trio.fail_after(DROP_TIMEOUT):
        while True:
            data = await stream.receive_some(65536)
            assert data, "the server closed a valid handshake"
            events = conn.receive_data(data)
            out = conn.data_to_send()
            if any(isinstance(e, HandshakeComplete) for e in events):
                return transcript
            if b"\x08INITIATE" in out:
                transcript.initiate = out
                if stop_before_initiate:
                    return transcript
            elif out:  # the HELLO, sent once the server's greeting arrived
                transcript.greeting_and_hello += out
            await stream.send_all(out)


def client_hello(server_key: bytes = SERVER_PUBLIC) -> bytes:
    """A client's greeting and HELLO, as if the server's greeting had arrived."""
    conn = curve_client(server_key)
    out = conn.data_to_send()
    conn.receive_data(encode_greeting(b"CURVE", as_server=True))
    return out + conn.data_to_send()


async def expect_drop(
    h: Harness, stream: trio.SocketStream, peer: str, event_type: EventType, reason: str
) -> MonitorEvent:
    """The connection from ``peer`` was dropped and reported with ``reason``."""
    await read_until_dropped(stream)

    def is_drop(event: MonitorEvent) -> bool:
        return event.peer == peer and event.type in (
            EventType.HANDSHAKE_FAILED_PROTOCOL,
            EventType.HANDSHAKE_FAILED_AUTH,
            EventType.DISCONNECTED,
        )

    with trio.fail_after(DROP_TIMEOUT):
        event = await h.wait_event(is_drop)
    assert event.type == event_type, event
    assert reason.lower() in event.reason.lower(), event
    return event


# Each case gets a fresh raw connection and writes its bad traffic on it.
Case = Callable[[trio.SocketStream], Awaitable[None]]


async def truncated_hello(stream: trio.SocketStream) -> None:
    greeting = curve_client().data_to_send()
    await stream.send_all(greeting + command_frame(b"\x05HELLO" + bytes(100)))


async def oversized_hello(stream: trio.SocketStream) -> None:
    greeting = curve_client().data_to_send()
    await stream.send_all(greeting + command_frame(b"\x05HELLO" + bytes(300)))


async def hello_for_another_server(stream: trio.SocketStream) -> None:
    await stream.send_all(client_hello(OTHER_SERVER_PUBLIC))


async def truncated_initiate(stream: trio.SocketStream) -> None:
    t = await handshake_until(stream, curve_client(), stop_before_initiate=True)
    await stream.send_all(t.initiate[:100])
    await stream.send_eof()


async def oversized_initiate(stream: trio.SocketStream) -> None:
    # Only the header of a 2 MiB INITIATE: it must be refused from the header,
    # before anything is buffered (the body never comes).
    await handshake_until(stream, curve_client(), stop_before_initiate=True)
    await stream.send_all(b"\x06" + (2 << 20).to_bytes(8, "big") + b"\x08INITIATE")


async def corrupted_initiate_box(stream: trio.SocketStream) -> None:
    t = await handshake_until(stream, curve_client(), stop_before_initiate=True)
    bad = bytearray(t.initiate)
    bad[-5] ^= 0x40  # inside the box's ciphertext
    await stream.send_all(bytes(bad))


async def message_before_ready(stream: trio.SocketStream) -> None:
    await handshake_until(stream, curve_client(), stop_before_initiate=True)
    await stream.send_all(command_frame(b"\x07MESSAGE" + bytes(8 + 17)))


async def corrupted_message(stream: trio.SocketStream) -> None:
    conn = curve_client()
    await handshake_until(stream, conn)
    (wire,) = conn.encode_messages([[b"from the bad peer"]])
    bad = bytearray(wire)
    bad[-1] ^= 1
    await stream.send_all(bytes(bad))


async def replayed_message(stream: trio.SocketStream) -> None:
    conn = curve_client()
    await handshake_until(stream, conn)
    (wire,) = conn.encode_messages([[b"once only"]])
    await stream.send_all(bytes(wire) + bytes(wire))


async def plaintext_after_handshake(stream: trio.SocketStream) -> None:
    conn = curve_client()
    await handshake_until(stream, conn)
    await stream.send_all(b"\x00\x05hello")


CASES: list[tuple[str, Case, EventType, str]] = [
    ("truncated-hello", truncated_hello, EventType.HANDSHAKE_FAILED_PROTOCOL, "HELLO of 100 bytes"),
    ("oversized-hello", oversized_hello, EventType.HANDSHAKE_FAILED_PROTOCOL, "HELLO of 300 bytes"),
    (
        "hello-for-another-server",
        hello_for_another_server,
        EventType.HANDSHAKE_FAILED_PROTOCOL,
        "cannot open the client's HELLO",
    ),
    ("truncated-initiate", truncated_initiate, EventType.HANDSHAKE_FAILED_PROTOCOL, "mid-frame"),
    (
        "oversized-initiate",
        oversized_initiate,
        EventType.HANDSHAKE_FAILED_PROTOCOL,
        "2097152-byte command frame",
    ),
    (
        "corrupted-initiate-box",
        corrupted_initiate_box,
        EventType.HANDSHAKE_FAILED_PROTOCOL,
        "INITIATE failed authentication",
    ),
    (
        "message-before-ready",
        message_before_ready,
        EventType.HANDSHAKE_FAILED_PROTOCOL,
        "expects INITIATE",
    ),
    ("corrupted-message", corrupted_message, EventType.DISCONNECTED, "failed authentication"),
    ("replayed-message", replayed_message, EventType.DISCONNECTED, "does not exceed"),
    (
        "plaintext-after-handshake",
        plaintext_after_handshake,
        EventType.DISCONNECTED,
        "not a CURVE MESSAGE",
    ),
]


@pytest.mark.parametrize("good", ["pyzmq", "trimq"])
async def test_bad_curve_peers_are_dropped_and_good_peer_unharmed(good: GoodKind) -> None:
    async with serving_good_peer(good, good_options=GOOD_CLIENT, **SERVER) as h:
        for name, case, event_type, reason in CASES:
            stream, peer = await h.raw_connect()
            async with stream:
                await case(stream)
                event = await expect_drop(h, stream, peer, event_type, reason)
            assert event.type == event_type, name
        # The genuine message before the replay is delivered, once; nothing else is.
        assert h.collector.other == [[b"once only"]]
        await h.finish()


async def test_a_replayed_handshake_is_refused() -> None:
    """A captured HELLO + INITIATE replayed on a new connection must not authenticate.

    The cookie inside INITIATE opens (same server, cookie key still current),
    but it was used once already: the replay is refused.
    """
    async with serving_good_peer("trimq", good_options=GOOD_CLIENT, **SERVER) as h:
        first, _ = await h.raw_connect()
        async with first:
            transcript = await handshake_until(first, curve_client())
        second, peer = await h.raw_connect()
        async with second:
            await second.send_all(transcript.greeting_and_hello)
            with trio.fail_after(DROP_TIMEOUT):
                welcome = await second.receive_some(65536)
            assert welcome, "the server should answer the replayed HELLO"
            await second.send_all(transcript.initiate)
            await expect_drop(
                h, second, peer, EventType.HANDSHAKE_FAILED_PROTOCOL, "reuses a cookie"
            )
        assert h.collector.other == []
        await h.finish()


FLOOD = 300


def live_handshakes(h: Harness) -> int:
    """CURVE server handshakes (one per connection) that trimq still holds.

    A count of objects, not of bytes, so neither CPU load nor allocator caches
    move it. The test's records (monitor events it keeps) are let go first.
    """
    h.events.clear()
    gc.collect()
    return sum(isinstance(o, CurveServerMechanism) for o in gc.get_objects())


async def test_hello_flood_keeps_no_state() -> None:
    """Hundreds of clients that send HELLO and never INITIATE cost the server nothing lasting.

    Each gets its WELCOME (so the server did the work), yet the socket's CURVE
    state holds no cookie or key per client, and once they are gone so is every
    per-connection handshake the server made for them. Bogus HELLOs are refused
    outright. Meanwhile the good client's stream goes on, complete and in order.
    """
    async with serving_good_peer("pyzmq", good_options=GOOD_CLIENT, **SERVER) as h:
        security = h.sock._security  # made by the good client's connection
        assert security is not None
        keys: Any = security._curve_keys
        cookies = keys.remembered_cookies  # the good client's, used once
        before = live_handshakes(h)  # the good client's connection
        streams: list[trio.SocketStream] = []
        try:
            for i in range(FLOOD):
                stream, _ = await h.raw_connect()
                streams.append(stream)
                await handshake_until(stream, curve_client(), stop_before_initiate=True)
                if i % 3 == 0:
                    bogus, peer = await h.raw_connect()
                    async with bogus:
                        await hello_for_another_server(bogus)
                        await expect_drop(
                            h, bogus, peer, EventType.HANDSHAKE_FAILED_PROTOCOL, "HELLO"
                        )
            assert keys.remembered_cookies == cookies
            # The pending handshakes live in their connections (the count sees them) ...
            assert live_handshakes(h) >= before + FLOOD
        finally:
            for stream in streams:
                await stream.aclose()
            streams.clear()
        # The server notices each close and ends those engines.
        with trio.fail_after(DROP_TIMEOUT):
            await h.wait_event(
                lambda e: (
                    e.type == EventType.HANDSHAKE_FAILED_NO_DETAIL
                    and sum(x.type == EventType.HANDSHAKE_FAILED_NO_DETAIL for x in h.events)
                    >= FLOOD
                )
            )
        # ... and nowhere else: once the clients are gone, none is left behind.
        assert live_handshakes(h) == before
        assert keys.remembered_cookies == cookies
        await h.finish()
