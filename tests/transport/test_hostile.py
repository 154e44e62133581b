"""Hostile and broken peers against a bound trimq socket that is serving a good peer.

Every case connects a raw TCP client that speaks hand-made bytes to a trimq
PULL while a well-behaved PUSH (libzmq through pyzmq in a thread, or another
trimq socket) streams numbered messages into the same PULL. For each bad peer
we check that its connection is dropped (its stream sees EOF or a reset), that
the drop is logged on "trimq.transport" and reported by the monitor, that
``protocol_errors`` grows, that nothing is raised into the user's tasks, and
that the good peer's messages all arrive, in order, none lost.
"""

from __future__ import annotations

import logging
import threading
import tracemalloc
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

import attrs
import hypothesis.strategies as st
import pytest
import trio
import trio.testing
import zmq
from hypothesis import HealthCheck, given, settings

import trimq
from trimq import EventType, MonitorEvent
from trimq.transport import run_engine
from trimq.zmtp import HandshakeComplete, Pong, SocketType, ZmtpConnection, encode_greeting

GOOD = b"good-peer-7f3a"
GOOD_END = b"good-peer-end-7f3a"
# Inbound messages above this size are refused (the good peer's are tiny).
MAXMSGSIZE = 100_000
DROP_TIMEOUT = 10

GoodKind = Literal["pyzmq", "trimq"]


# --------------------------------------------------------------------- the good peer


class Collector:
    """Receives from the PULL: the good peer's numbers, and anything else apart."""

    def __init__(self) -> None:
        self.good: list[int] = []
        self.other: list[list[bytes]] = []
        self.end: int | None = None
        self.done = trio.Event()
        self._waiters: list[tuple[Callable[[], bool], trio.Event]] = []

    def _check(self) -> None:
        for cond, event in self._waiters:
            if cond():
                event.set()
        self._waiters = [(c, e) for c, e in self._waiters if not e.is_set()]

    async def wait_until(self, cond: Callable[[], bool]) -> None:
        """Wait until ``cond()`` holds (checked after each received message)."""
        if cond():
            await trio.lowlevel.checkpoint()
            return
        event = trio.Event()
        self._waiters.append((cond, event))
        await event.wait()

    async def wait_count(self, n: int) -> None:
        """Wait until at least ``n`` good messages have arrived."""
        await self.wait_until(lambda: len(self.good) >= n)

    async def run(self, sock: trimq.Socket) -> None:
        async for msg in sock:
            if msg[0] == GOOD and len(msg) == 2:
                self.good.append(int(msg[1]))
            elif msg[0] == GOOD_END and len(msg) == 2:
                self.end = int(msg[1])
                self.done.set()
                return
            else:
                self.other.append(msg)
            self._check()


class PyzmqPusher:
    """A libzmq PUSH in a thread: numbered messages until stopped, then an end marker."""

    def __init__(self, endpoint: str, options: dict[str, Any] | None = None) -> None:
        self.endpoint = endpoint
        self.options = options or {}
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        zctx = zmq.Context()
        try:
            sock = zctx.socket(zmq.PUSH)
            try:
                sock.setsockopt(zmq.SNDHWM, 20)
                sock.setsockopt(zmq.SNDTIMEO, 50)
                for name, value in self.options.items():
                    sock.setsockopt(getattr(zmq, name.upper()), value)
                sock.connect(self.endpoint)
                n = 0
                while not self._stop.is_set():
                    try:
                        sock.send_multipart([GOOD, b"%d" % n])
                    except zmq.Again:
                        continue
                    n += 1
                sock.setsockopt(zmq.SNDTIMEO, 5000)
                sock.send_multipart([GOOD_END, b"%d" % n])
            finally:
                sock.close(linger=5000)
        finally:
            zctx.term()

    async def serve(self) -> None:
        await trio.to_thread.run_sync(self.run)


class TrimqPusher:
    """The same good peer, as a trimq PUSH in this trio run."""

    def __init__(
        self, ctx: trimq.Context, endpoint: str, options: dict[str, Any] | None = None
    ) -> None:
        self.endpoint = endpoint
        self.ctx = ctx
        self.options = options or {}
        self._stop = trio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def serve(self) -> None:
        async with self.ctx.socket(trimq.PUSH, sndhwm=20, linger=5000, **self.options) as push:
            await push.connect(self.endpoint)
            n = 0
            while not self._stop.is_set():
                await push.send_multipart([GOOD, b"%d" % n])
                n += 1
            await push.send_multipart([GOOD_END, b"%d" % n])


# ---------------------------------------------------------------------- the harness


@attrs.define
class Harness:
    sock: trimq.Socket
    endpoint: str
    collector: Collector
    pusher: PyzmqPusher | TrimqPusher
    events: list[MonitorEvent] = attrs.Factory(list)
    _event_waiters: list[tuple[Callable[[MonitorEvent], bool], trio.Event]] = attrs.Factory(list)

    @property
    def host_port(self) -> tuple[str, int]:
        host, port = self.endpoint.removeprefix("tcp://").rsplit(":", 1)
        return host, int(port)

    async def record_events(self, mon: trimq.Monitor) -> None:
        async for event in mon:
            self.events.append(event)
            for pred, waiter in self._event_waiters:
                if pred(event):
                    waiter.set()

    async def wait_event(
        self, pred: Callable[[MonitorEvent], bool], start: int = 0
    ) -> MonitorEvent:
        """Wait for (or find among the past, from index ``start``) an event matching ``pred``."""
        while True:
            for event in self.events[start:]:
                if pred(event):
                    await trio.lowlevel.checkpoint()
                    return event
            waiter = trio.Event()
            self._event_waiters.append((pred, waiter))
            try:
                await waiter.wait()
            finally:
                self._event_waiters.remove((pred, waiter))

    async def wait_handshake(self, peer: str) -> None:
        """Wait until trimq has completed the handshake with ``peer``."""
        with trio.fail_after(DROP_TIMEOUT):
            await self.wait_event(
                lambda e: e.type == EventType.HANDSHAKE_SUCCEEDED and e.peer == peer
            )

    async def raw_connect(self) -> tuple[trio.SocketStream, str]:
        """A raw client connection and the peer name trimq reports for it."""
        if self.endpoint.startswith("ipc://"):
            mark = len(self.events)
            sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
            await sock.connect(self.endpoint.removeprefix("ipc://"))
            with trio.fail_after(DROP_TIMEOUT):
                accepted = await self.wait_event(lambda e: e.type == EventType.ACCEPTED, mark)
            return trio.SocketStream(sock), accepted.peer
        host, port = self.host_port
        stream = await trio.open_tcp_stream(host, port)
        local = stream.socket.getsockname()
        return stream, f"{local[0]}:{local[1]}"

    async def finish(self) -> None:
        """Let the good peer send a little more, stop it, and check every number arrived."""
        await self.collector.wait_count(len(self.collector.good) + 20)
        self.pusher.stop()
        with trio.fail_after(DROP_TIMEOUT):
            await self.collector.done.wait()
        assert self.collector.end is not None
        good = self.collector.good
        assert len(good) == self.collector.end, "good messages were lost"
        assert good == list(range(self.collector.end)), "good messages out of order"


@asynccontextmanager
async def serving_good_peer(
    good: GoodKind = "pyzmq",
    bind: str = "tcp://127.0.0.1:*",
    good_options: dict[str, Any] | None = None,
    **options: Any,
) -> AsyncIterator[Harness]:
    """A trimq PULL bound to ``bind``, already receiving a good peer's numbered stream.

    ``good_options`` are the good PUSH's socket options (e.g. its CURVE keys).
    """
    options.setdefault("maxmsgsize", MAXMSGSIZE)
    options.setdefault("rcvhwm", 20)
    async with trimq.Context() as ctx:
        pull = ctx.socket(trimq.PULL, **options)
        mon = pull.monitor(max_buffer=0)
        endpoint = await pull.bind(bind)
        collector = Collector()
        pusher: PyzmqPusher | TrimqPusher = (
            PyzmqPusher(endpoint, good_options)
            if good == "pyzmq"
            else TrimqPusher(ctx, endpoint, good_options)
        )
        harness = Harness(pull, endpoint, collector, pusher)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(harness.record_events, mon)
                nursery.start_soon(collector.run, pull)
                nursery.start_soon(pusher.serve)
                try:
                    with trio.fail_after(DROP_TIMEOUT):
                        await collector.wait_count(20)
                    yield harness
                finally:
                    pusher.stop()
                # The pusher sends its end marker; then stop everything else.
                with trio.fail_after(DROP_TIMEOUT):
                    await collector.done.wait()
                nursery.cancel_scope.cancel()
        finally:
            mon.aclose_nowait()


# ------------------------------------------------------------------- raw ZMTP helpers


def handshake_bytes(socket_type: SocketType = SocketType.PUSH) -> bytes:
    """A complete valid greeting + READY for ``socket_type``, as one piece."""
    conn = ZmtpConnection(socket_type)
    out = conn.data_to_send()
    conn.receive_data(encode_greeting())
    return out + conn.data_to_send()


def ready_command(**properties: bytes) -> bytes:
    """A hand-built READY command frame with the given properties (names verbatim)."""
    body = b"\x05READY"
    for name, value in properties.items():
        raw = name.replace("_", "-").encode()
        body += bytes((len(raw),)) + raw + len(value).to_bytes(4, "big") + value
    return bytes((0x04, len(body))) + body


async def raw_handshake(
    stream: trio.abc.Stream, socket_type: SocketType = SocketType.PUSH
) -> ZmtpConnection:
    """Complete a real NULL handshake over ``stream`` as ``socket_type``."""
    conn = ZmtpConnection(socket_type)
    await stream.send_all(conn.data_to_send())
    with trio.fail_after(DROP_TIMEOUT):
        while True:
            data = await stream.receive_some(65536)
            assert data, "trimq closed the connection during a valid handshake"
            events = conn.receive_data(data)
            out = conn.data_to_send()
            if out:
                await stream.send_all(out)
            if any(isinstance(e, HandshakeComplete) for e in events):
                return conn


async def read_until_dropped(stream: trio.abc.Stream) -> bytes:
    """Read until trimq closes the connection (EOF or reset); return what it sent."""
    received = bytearray()
    with trio.fail_after(DROP_TIMEOUT):
        while True:
            try:
                data = await stream.receive_some(65536)
            except trio.BrokenResourceError:
                break
            if not data:
                break
            received += data
    return bytes(received)


def is_drop_of(peer: str) -> Callable[[MonitorEvent], bool]:
    def pred(event: MonitorEvent) -> bool:
        return event.peer == peer and event.type in (
            EventType.HANDSHAKE_FAILED_PROTOCOL,
            EventType.HANDSHAKE_FAILED_AUTH,
            EventType.DISCONNECTED,
        )

    return pred


async def check_dropped(
    h: Harness,
    stream: trio.SocketStream,
    peer: str,
    caplog: pytest.LogCaptureFixture,
    *,
    event_type: EventType,
    reason: str,
    errors_before: int,
    auth_before: int = 0,
) -> None:
    """The connection from ``peer`` was dropped, logged, monitored and counted."""
    await read_until_dropped(stream)
    with trio.fail_after(DROP_TIMEOUT):
        event = await h.wait_event(is_drop_of(peer))
    assert event.type == event_type, event
    assert reason.lower() in event.reason.lower(), event
    if event_type == EventType.DISCONNECTED:
        assert event.reason.startswith("protocol error"), event
    warnings = [
        r
        for r in caplog.records
        if r.name == "trimq.transport" and r.levelno >= logging.WARNING and peer in r.getMessage()
    ]
    assert warnings, f"no WARNING logged for {peer}"
    assert any(reason.lower() in r.getMessage().lower() for r in warnings), warnings
    stats = h.sock.statistics()
    if event_type == EventType.HANDSHAKE_FAILED_AUTH:
        # A peer's ERROR is a refusal by it (libzmq reports it as an auth failure).
        assert (stats.protocol_errors, stats.auth_failures) == (errors_before, auth_before + 1)
    else:
        assert stats.protocol_errors == errors_before + 1


# ----------------------------------------------------------------------- bad peers

ZMTP2_GREETING = b"\xff" + bytes(8) + b"\x7f" + b"\x01" + bytes((SocketType.PUSH.value,))
ZMTP1_LONG_GREETING = b"\xff" + (1).to_bytes(8, "big") + b"\x00" + b"\x00"


@attrs.frozen
class BadBytes:
    """A peer that sends ``payload`` (after a real handshake if ``after_handshake``)."""

    name: str
    payload: bytes
    event_type: EventType
    reason: str
    after_handshake: bool = False
    half_close: bool = False


BAD_PEERS = [
    BadBytes(
        "garbage",
        b"\x00\x13\x37 not zmtp at all \x99" * 8,
        EventType.HANDSHAKE_FAILED_PROTOCOL,
        "not speaking ZMTP 3",
    ),
    BadBytes(
        "http",
        b"GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: curl/8.0\r\nAccept: */*\r\n\r\n",
        EventType.HANDSHAKE_FAILED_PROTOCOL,
        "HTTP",
    ),
    BadBytes(
        "tls",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(32),
        EventType.HANDSHAKE_FAILED_PROTOCOL,
        "TLS",
    ),
    BadBytes(
        "zmtp1.0-short",
        b"\x01\x00\x06\x00hello",
        EventType.HANDSHAKE_FAILED_PROTOCOL,
        "ZMTP 1.0",
    ),
    BadBytes(
        "zmtp1.0-long",
        ZMTP1_LONG_GREETING,
        EventType.HANDSHAKE_FAILED_PROTOCOL,
        "ZMTP 1.0",
    ),
    BadBytes(
        "zmtp2.0",
        ZMTP2_GREETING + b"\x00\x00",
        EventType.HANDSHAKE_FAILED_PROTOCOL,
        "ZMTP 2.0",
    ),
    BadBytes(
        "plain-mechanism",
        encode_greeting(b"PLAIN"),
        EventType.HANDSHAKE_FAILED_PROTOCOL,
        "mechanism",
    ),
    BadBytes(
        "curve-mechanism",
        encode_greeting(b"CURVE", as_server=True),
        EventType.HANDSHAKE_FAILED_PROTOCOL,
        "mechanism",
    ),
    BadBytes(
        "pub-to-pull",
        handshake_bytes(SocketType.PUB),
        EventType.HANDSHAKE_FAILED_PROTOCOL,
        "incompatible socket types",
    ),
    BadBytes(
        "router-to-pull",
        handshake_bytes(SocketType.ROUTER),
        EventType.HANDSHAKE_FAILED_PROTOCOL,
        "incompatible socket types",
    ),
    BadBytes(
        "unknown-socket-type",
        encode_greeting() + ready_command(Socket_Type=b"BOGUS"),
        EventType.HANDSHAKE_FAILED_PROTOCOL,
        "Socket-Type",
    ),
    BadBytes(
        "ready-without-socket-type",
        encode_greeting() + ready_command(),
        EventType.HANDSHAKE_FAILED_PROTOCOL,
        "Socket-Type",
    ),
    BadBytes(
        "data-before-ready",
        encode_greeting() + b"\x00\x05hello",
        EventType.HANDSHAKE_FAILED_PROTOCOL,
        "data before the handshake",
    ),
    BadBytes(
        "error-during-handshake",
        encode_greeting() + b"\x04\x0a\x05ERROR\x03400",
        EventType.HANDSHAKE_FAILED_AUTH,
        "ERROR",
    ),
    BadBytes(
        # Only the header: the body never comes, so an EOF proves the refusal
        # was decided from the header.
        "oversized-frame-header-only",
        b"\x02" + (MAXMSGSIZE * 2).to_bytes(8, "big"),
        EventType.DISCONNECTED,
        "maxmsgsize",
        after_handshake=True,
    ),
    BadBytes(
        "oversized-multipart-header-only",
        b"\x01\xff" + bytes(255) + b"\x02" + (MAXMSGSIZE - 100).to_bytes(8, "big"),
        EventType.DISCONNECTED,
        "maxmsgsize",
        after_handshake=True,
    ),
    BadBytes(
        "endless-multipart-of-tiny-frames",
        b"\x01\x00" * 10 + (b"\x01\x10" + bytes(16)) * 7000,  # 126 kB, no last frame
        EventType.DISCONNECTED,
        "maxmsgsize",
        after_handshake=True,
    ),
    BadBytes(
        "length-2**62",
        b"\x02" + (1 << 62).to_bytes(8, "big") + b"xx",
        EventType.DISCONNECTED,
        "frame length",
        after_handshake=True,
    ),
    BadBytes(
        "length-2**62-during-handshake",
        encode_greeting() + b"\x06" + (1 << 62).to_bytes(8, "big"),
        EventType.HANDSHAKE_FAILED_PROTOCOL,
        "frame length",
    ),
    BadBytes(
        "huge-command",
        b"\x06" + (1 << 40).to_bytes(8, "big"),
        EventType.DISCONNECTED,
        "command",
        after_handshake=True,
    ),
    BadBytes(
        "command-with-more-flag",
        b"\x05\x07\x04PING\x00\x00",
        EventType.DISCONNECTED,
        "MORE",
        after_handshake=True,
    ),
    BadBytes(
        "ready-again",
        ready_command(Socket_Type=b"PUSH"),
        EventType.DISCONNECTED,
        "READY again",
        after_handshake=True,
    ),
    BadBytes(
        "vanishes-mid-frame",
        b"\x01\x03bad\x00\x05whole" + b"\x01\x03bad\x00\x20partial",
        EventType.DISCONNECTED,
        "mid-frame",
        after_handshake=True,
        half_close=True,
    ),
    BadBytes(
        "vanishes-mid-header",
        b"\x01\x03bad\x00\x05whole" + b"\x02\x00\x00",
        EventType.DISCONNECTED,
        "mid-frame",
        after_handshake=True,
        half_close=True,
    ),
    BadBytes(
        "vanishes-mid-message",
        b"\x01\x03bad\x00\x05whole" + b"\x01\x03bad\x01\x07partial",
        EventType.DISCONNECTED,
        "mid-message",
        after_handshake=True,
        half_close=True,
    ),
    BadBytes(
        "vanishes-mid-greeting",
        encode_greeting()[:40],
        EventType.HANDSHAKE_FAILED_PROTOCOL,
        "mid-greeting",
        half_close=True,
    ),
]


@pytest.mark.parametrize("good", ["pyzmq", "trimq"])
@pytest.mark.parametrize("bad", BAD_PEERS, ids=[b.name for b in BAD_PEERS])
async def test_bad_peer_is_dropped_and_good_peer_unharmed(
    bad: BadBytes, good: GoodKind, transport_log: pytest.LogCaptureFixture
) -> None:
    async with serving_good_peer(good) as h:
        errors_before = h.sock.statistics().protocol_errors
        stream, peer = await h.raw_connect()
        async with stream:
            if bad.after_handshake:
                await raw_handshake(stream)
                await h.wait_handshake(peer)
            await stream.send_all(bad.payload)
            if bad.half_close:
                await stream.send_eof()
            await check_dropped(
                h,
                stream,
                peer,
                transport_log,
                event_type=bad.event_type,
                reason=bad.reason,
                errors_before=errors_before,
            )
        await h.finish()
        # A complete message sent before the bad part is delivered; no partial one is.
        leftovers = []
        while True:
            try:
                leftovers.append(h.sock.recv_multipart_nowait())
            except trio.WouldBlock:
                break
        other = h.collector.other + leftovers
        if b"whole" in bad.payload:
            assert other == [[b"bad", b"whole"]]
        else:
            assert other == []


async def test_tolerated_oddities_keep_the_connection(
    transport_log: pytest.LogCaptureFixture,
) -> None:
    """What libzmq accepts, trimq accepts: unknown commands, reserved flag bits, the
    LONG form for a small frame, a PING context over 16 bytes (echoed cut to 16)."""
    async with serving_good_peer("trimq") as h:
        stream, peer = await h.raw_connect()
        async with stream:
            conn = await raw_handshake(stream)
            await h.wait_handshake(peer)
            await stream.send_all(
                b"\x04\x06\x05HELLO"  # unknown command
                + b"\x08\x02hi"  # reserved flag bit 3 set
                + b"\x02"
                + (3).to_bytes(8, "big")
                + b"abc"  # LONG form, 3 bytes
                + b"\x04\x1b\x04PING\x00\x00"
                + b"0123456789abcdefXYZ!"  # 20-byte context
                + b"\x00\x04last"
            )
            with trio.fail_after(DROP_TIMEOUT):
                await h.collector.wait_until(lambda: [b"last"] in h.collector.other)
                pongs: list[Pong] = []
                while not pongs:
                    data = await stream.receive_some(65536)
                    assert data, "trimq dropped a peer that did nothing wrong"
                    pongs += [e for e in conn.receive_data(data) if isinstance(e, Pong)]
            assert pongs == [Pong(b"0123456789abcdef")]
            assert h.collector.other == [[b"hi"], [b"abc"], [b"last"]]
            assert not [e for e in h.events if is_drop_of(peer)(e)]
            assert h.sock.statistics().protocol_errors == 0
        await h.finish()


IPC_CASES = [b for b in BAD_PEERS if b.name in {"http", "zmtp2.0", "pub-to-pull", "length-2**62"}]


@pytest.mark.parametrize("bad", IPC_CASES, ids=[b.name for b in IPC_CASES])
async def test_bad_peer_over_ipc(
    bad: BadBytes, tmp_path: Path, transport_log: pytest.LogCaptureFixture
) -> None:
    async with serving_good_peer("pyzmq", bind=f"ipc://{tmp_path / 'h.sock'}") as h:
        stream, _ = await h.raw_connect()
        async with stream:
            if bad.after_handshake:
                await raw_handshake(stream)
            await stream.send_all(bad.payload)
            await read_until_dropped(stream)
        with trio.fail_after(DROP_TIMEOUT):
            event = await h.wait_event(
                lambda e: e.type in (EventType.HANDSHAKE_FAILED_PROTOCOL, EventType.DISCONNECTED)
            )
        assert event.type == bad.event_type
        assert bad.reason.lower() in event.reason.lower()
        assert any(
            bad.reason.lower() in r.getMessage().lower()
            for r in transport_log.records
            if r.name == "trimq.transport" and r.levelno >= logging.WARNING
        )
        assert h.sock.statistics().protocol_errors == 1
        await h.finish()
        assert h.collector.other == []


async def test_oversized_frame_refused_before_the_body_is_sent(
    transport_log: pytest.LogCaptureFixture,
) -> None:
    """The body is never sent; trimq must not wait for (or buffer) it."""
    async with serving_good_peer("trimq", maxmsgsize=1000) as h:
        stream, peer = await h.raw_connect()
        async with stream:
            await raw_handshake(stream)
            await h.wait_handshake(peer)
            # 1 MB announced; only the header goes out.
            await stream.send_all(b"\x02" + (1_000_000).to_bytes(8, "big"))
            await check_dropped(
                h,
                stream,
                peer,
                transport_log,
                event_type=EventType.DISCONNECTED,
                reason="maxmsgsize",
                errors_before=0,
            )
        # A message exactly at the limit from a compliant peer still passes.
        await h.finish()


async def test_many_bad_peers_in_a_row_keep_counting(
    transport_log: pytest.LogCaptureFixture,
) -> None:
    async with serving_good_peer("trimq") as h:
        for bad in (b for b in BAD_PEERS if not b.after_handshake):
            before = h.sock.statistics()
            stream, peer = await h.raw_connect()
            async with stream:
                await stream.send_all(bad.payload)
                if bad.half_close:
                    await stream.send_eof()
                await check_dropped(
                    h,
                    stream,
                    peer,
                    transport_log,
                    event_type=bad.event_type,
                    reason=bad.reason,
                    errors_before=before.protocol_errors,
                    auth_before=before.auth_failures,
                )
        await h.finish()


@pytest.mark.parametrize(
    "bad",
    [
        b"\x02" + (1 << 62).to_bytes(8, "big"),
        b"\x00\xff" + bytes(255),  # over maxmsgsize=200
        b"\x04\x06\x05READY",
    ],
    ids=["2**62", "maxmsgsize", "ready-again"],
)
@pytest.mark.parametrize("one_write", [True, False], ids=["with-ready", "after-handshake"])
async def test_messages_before_a_protocol_error_in_the_same_read_are_delivered(
    bad: bytes, one_write: bool, transport_log: pytest.LogCaptureFixture
) -> None:
    """libzmq delivers the messages it decoded before the bad frame; so should trimq,
    whether or not they share a TCP segment with the bad frame (or with READY)."""
    async with serving_good_peer("trimq", maxmsgsize=200) as h:
        stream, peer = await h.raw_connect()
        async with stream:
            messages = b"\x01\x03bad\x00\x05first" + b"\x00\x06second"
            if one_write:
                # Greeting, READY, two messages and the bad frame in one write.
                await stream.send_all(handshake_bytes() + messages + bad)
            else:
                await raw_handshake(stream)
                await h.wait_handshake(peer)
                await stream.send_all(messages + bad)
            await check_dropped(
                h,
                stream,
                peer,
                transport_log,
                event_type=EventType.DISCONNECTED,
                reason="",
                errors_before=0,
            )
        await h.finish()
        leftovers = []
        while True:
            try:
                leftovers.append(h.sock.recv_multipart_nowait())
            except trio.WouldBlock:
                break
        assert h.collector.other + leftovers == [[b"bad", b"first"], [b"second"]]
        assert any(e.type == EventType.HANDSHAKE_SUCCEEDED and e.peer == peer for e in h.events)


# ------------------------------------------------------------- half-open connections


def count_tasks() -> int:
    def walk(task: trio.lowlevel.Task) -> int:
        return 1 + sum(walk(t) for n in task.child_nurseries for t in n.child_tasks)

    root = trio.lowlevel.current_root_task()
    assert root is not None
    return walk(root)


IDLE_CONNECTIONS = 300


async def test_hundreds_of_idle_half_open_connections_are_reaped() -> None:
    tracemalloc.start()
    try:
        async with serving_good_peer("pyzmq", handshake_ivl=1500) as h:
            errors_before = h.sock.statistics().protocol_errors
            baseline_tasks = count_tasks()
            mem_before, _ = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            streams: list[trio.SocketStream] = []
            accepted = 0

            def is_accept(event: MonitorEvent) -> bool:
                return event.type == EventType.ACCEPTED

            try:
                for i in range(IDLE_CONNECTIONS):
                    stream, _ = await h.raw_connect()
                    streams.append(stream)
                    if i % 2:
                        # A partial greeting, then silence.
                        await stream.send_all(encode_greeting()[:11])
                    if i % 50 == 49:
                        # Let the accept loop keep up with the listen backlog.
                        with trio.fail_after(DROP_TIMEOUT):
                            while accepted < i + 2:  # + the good peer
                                await h.wait_event(is_accept)
                                accepted = sum(1 for e in h.events if is_accept(e))
                # The good peer keeps flowing while they are all open.
                with trio.fail_after(DROP_TIMEOUT):
                    await h.collector.wait_count(len(h.collector.good) + 200)

                received: list[bytes] = []

                async def drain(s: trio.SocketStream) -> None:
                    received.append(await read_until_dropped(s))

                async with trio.open_nursery() as nursery:
                    for s in streams:
                        nursery.start_soon(drain, s)
            finally:
                for s in streams:
                    await s.aclose()
            # Each saw only trimq's greeting before being dropped.
            assert len(received) == IDLE_CONNECTIONS
            assert all(len(r) <= 64 for r in received)
            timeouts = [
                e
                for e in h.events
                if e.type == EventType.HANDSHAKE_FAILED_NO_DETAIL and "timed out" in e.reason
            ]
            assert len(timeouts) == IDLE_CONNECTIONS
            # Idle peers are not protocol errors (health checks and scanners do this).
            assert h.sock.statistics().protocol_errors == errors_before
            _, peak = tracemalloc.get_traced_memory()
            assert peak - mem_before < 10 * 2**20, f"peak grew by {peak - mem_before} bytes"
            await h.finish()
            await trio.testing.wait_all_tasks_blocked()
            # Every engine task is gone (the finished good peer's too).
            assert count_tasks() <= baseline_tasks
    finally:
        tracemalloc.stop()


# ---------------------------------------------------------------------- fuzzing


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    junk=st.binary(min_size=1, max_size=300),
    after_handshake=st.booleans(),
    close=st.booleans(),
)
async def test_random_bytes_after_a_valid_greeting(
    junk: bytes, after_handshake: bool, close: bool
) -> None:
    async with serving_good_peer("trimq") as h:
        stream, _ = await h.raw_connect()
        async with stream:
            if after_handshake:
                await raw_handshake(stream)
            else:
                await stream.send_all(encode_greeting())
            await stream.send_all(junk)
            if close:
                await stream.send_eof()
                await read_until_dropped(stream)
        # Whatever happened to it, the socket serves the good peer and
        # accepts a fresh, valid connection.
        stream2, _ = await h.raw_connect()
        async with stream2:
            await raw_handshake(stream2)
            await stream2.send_all(b"\x00\x05after")
        with trio.fail_after(DROP_TIMEOUT):
            await h.collector.wait_until(lambda: [b"after"] in h.collector.other)
        await h.finish()


# ------------------------------------------------------------- a PING flood that never reads


async def test_ping_flood_from_a_peer_that_never_reads_stays_bounded() -> None:
    """A peer sends PINGs without ever reading the PONGs. libzmq keeps at most one
    pending PONG; trimq must not queue an unbounded backlog of them either."""
    n_pings = 200_000
    ping = b"\x04\x07\x04PING\x00\x00"
    async with trimq.Context() as ctx:
        sock = ctx.socket(trimq.PULL)
        # trimq's writes block until the peer reads (it never does after the
        # handshake); the peer's writes are buffered.
        to_peer_send, to_peer_recv = trio.testing.lockstep_stream_one_way_pair()
        to_trimq_send, to_trimq_recv = trio.testing.memory_stream_one_way_pair()
        ours = trio.StapledStream(to_peer_send, to_trimq_recv)
        theirs = trio.StapledStream(to_trimq_send, to_peer_recv)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_engine, sock, ours, "mem://flood", "flooder")
            await raw_handshake(theirs)
            tracemalloc.start()
            try:
                before, _ = tracemalloc.get_traced_memory()
                for _ in range(n_pings // 1000):
                    await theirs.send_all(ping * 1000)
                    await trio.testing.wait_all_tasks_blocked()
                after, _ = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            # The flood itself is 1.6 MB; the PONGs it asks for are 1.4 MB.
            assert after - before < 512 * 1024, f"grew by {after - before} bytes"
            await theirs.aclose()
            nursery.cancel_scope.cancel()


async def test_closing_the_socket_drops_idle_and_half_done_connections() -> None:
    """aclose() must not leave accepted connections (handshaken or not) open."""
    async with trimq.Context() as ctx:
        pull = ctx.socket(trimq.PULL, linger=0)
        endpoint = await pull.bind("tcp://127.0.0.1:*")
        host, port = endpoint.removeprefix("tcp://").rsplit(":", 1)
        silent = await trio.open_tcp_stream(host, int(port))
        partial = await trio.open_tcp_stream(host, int(port))
        await partial.send_all(encode_greeting()[:30])
        ready = await trio.open_tcp_stream(host, int(port))
        await raw_handshake(ready)
        await pull.aclose()
        for stream in (silent, partial, ready):
            async with stream:
                await read_until_dropped(stream)
