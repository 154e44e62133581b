"""Timers, deterministically: reconnect backoff, handshake timeout, heartbeats, linger.

Most tests run on trio's ``autojump_clock`` (virtual time). MockClock may jump
while real I/O is in flight, so each test keeps a timer from being the only
thing pending while it waits for I/O: connections go through in-memory streams
driven by hand with :class:`ZmtpConnection` (``run_engine`` accepts any trio
stream), or to an ipc path where nobody listens (the connect fails
synchronously), or over loopback TCP with ``handshake_ivl=0`` so no trimq timer
runs until the peer has answered (loopback I/O is ready as soon as the sending
syscall returns, before trio decides it is idle). Sleeps appear only inside fake
peers that are slow or late on purpose, never to wait for trimq; absence of an
event is checked with checkpoints, ``wait_all_tasks_blocked`` and explicit
``MockClock.jump``.
"""

from __future__ import annotations

import functools
import itertools
import math
import socket as stdsocket
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest
import trio
import trio.testing

import trimq
from trimq import EventType, MonitorEvent
from trimq.transport import Outcome, next_delay, run_engine
from trimq.zmtp import (
    Event,
    HandshakeComplete,
    Ping,
    Pong,
    SocketType,
    ZmtpConnection,
    encode_greeting,
)

# A deadline far beyond any virtual wait in these tests: with autojump it only
# fires if the test is really stuck.
STUCK = 3600
EPS = 1e-6


# --------------------------------------------------------------------------- helpers


@attrs.define
class EventLog:
    """Records a socket's monitor events with the (virtual) time they arrived."""

    events: list[tuple[float, MonitorEvent]] = attrs.Factory(list)
    _waiters: list[tuple[Callable[[], bool], trio.Event]] = attrs.Factory(list)

    async def run(self, mon: trimq.Monitor) -> None:
        async for event in mon:
            self.events.append((trio.current_time(), event))
            for cond, waiter in self._waiters:
                if cond():
                    waiter.set()

    def of(self, type: EventType) -> list[tuple[float, MonitorEvent]]:
        return [(t, e) for t, e in self.events if e.type == type]

    async def wait(self, cond: Callable[[], bool]) -> None:
        if cond():
            await trio.lowlevel.checkpoint()
            return
        waiter = trio.Event()
        self._waiters.append((cond, waiter))
        await waiter.wait()

    async def wait_count(self, type: EventType, n: int) -> list[tuple[float, MonitorEvent]]:
        await self.wait(lambda: len(self.of(type)) >= n)
        return self.of(type)


async def checkpoints(n: int = 500) -> None:
    """Give every other task many chances to run (without letting time pass)."""
    for _ in range(n):
        await trio.lowlevel.checkpoint()


def missing_ipc(tmp_path: Path) -> str:
    """An ipc endpoint nobody listens on (connect fails at once, without I/O waits)."""
    return f"ipc://{tmp_path / 'nobody.sock'}"


def unused_tcp_port() -> int:
    with stdsocket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def raw_handshake(
    stream: trio.abc.Stream, socket_type: SocketType
) -> tuple[ZmtpConnection, list[Event]]:
    """Complete a NULL handshake over ``stream``; return the connection and later events."""
    conn = ZmtpConnection(socket_type)
    await stream.send_all(conn.data_to_send())
    while True:
        data = await stream.receive_some(65536)
        assert data, "trimq closed during a valid handshake"
        events = conn.receive_data(data)
        out = conn.data_to_send()
        if out:
            await stream.send_all(out)
        for i, event in enumerate(events):
            if isinstance(event, HandshakeComplete):
                return conn, events[i + 1 :]


@attrs.define
class EngineRun:
    """run_engine over one half of an in-memory stream pair, in the background."""

    outcome: Outcome | None = None
    ended_at: float = math.inf
    done: trio.Event = attrs.Factory(trio.Event)

    async def run(self, sock: trimq.Socket, stream: trio.abc.Stream) -> None:
        self.outcome = await run_engine(sock, stream, "mem://test", "mem-peer")
        self.ended_at = trio.current_time()
        self.done.set()


# ------------------------------------------------------------------ reconnect backoff


@pytest.mark.parametrize("ivl", [1, 100, 250, 5000])
def test_next_delay_without_max_is_ivl_plus_jitter(ivl: int) -> None:
    waits = []
    base = float(ivl)
    for _ in range(200):
        wait, base = next_delay(ivl, 0, base)
        assert base == ivl
        assert ivl <= wait < 2 * ivl
        waits.append(wait)
    if ivl > 1:
        assert len(set(waits)) > 1, "no jitter"


def test_next_delay_with_max_doubles_up_to_max() -> None:
    waits = []
    base = 100.0
    for _ in range(7):
        wait, base = next_delay(100, 1000, base)
        waits.append(wait)
    assert waits == [100, 200, 400, 800, 1000, 1000, 1000]


async def test_connect_retried_with_jitter(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, ctx: trimq.Context
) -> None:
    log = EventLog()
    async with trio.open_nursery() as nursery:
        push = ctx.socket(trimq.PUSH, reconnect_ivl=100, linger=0)
        nursery.start_soon(log.run, push.monitor())
        with trio.fail_after(STUCK):
            await push.connect(missing_ipc(tmp_path))
            retried = await log.wait_count(EventType.CONNECT_RETRIED, 12)
        delayed = log.of(EventType.CONNECT_DELAYED)
        assert len(delayed) == 1
        assert not log.of(EventType.CONNECTED)
        values = [e.value for _, e in retried]
        assert all(100 <= v < 200 for v in values), values
        assert len(set(values)) > 1, "no jitter"
        # Each attempt follows the announced wait.
        for (t0, e0), (t1, _) in itertools.pairwise(retried):
            assert abs((t1 - t0) * 1000 - e0.value) <= 1, (t0, t1, e0)
        await push.aclose()
        nursery.cancel_scope.cancel()


async def test_connect_retried_doubles_up_to_max(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, ctx: trimq.Context
) -> None:
    log = EventLog()
    async with trio.open_nursery() as nursery:
        push = ctx.socket(trimq.PUSH, reconnect_ivl=100, reconnect_ivl_max=1000, linger=0)
        nursery.start_soon(log.run, push.monitor())
        with trio.fail_after(STUCK):
            await push.connect(missing_ipc(tmp_path))
            retried = await log.wait_count(EventType.CONNECT_RETRIED, 8)
        values = [e.value for _, e in retried[:8]]
        assert values == [100, 200, 400, 800, 1000, 1000, 1000, 1000]
        times = [t for t, _ in retried[:8]]
        gaps = [round((b - a) * 1000) for a, b in itertools.pairwise(times)]
        assert gaps == values[:-1]
        await push.aclose()
        nursery.cancel_scope.cancel()


async def test_connect_retried_over_tcp_real_clock(ctx: trimq.Context) -> None:
    """The same rule against a tcp port where nobody listens (real time, small ivl)."""
    log = EventLog()
    async with trio.open_nursery() as nursery:
        push = ctx.socket(trimq.PUSH, reconnect_ivl=20, linger=0)
        nursery.start_soon(log.run, push.monitor())
        with trio.fail_after(10):
            await push.connect(f"tcp://127.0.0.1:{unused_tcp_port()}")
            retried = await log.wait_count(EventType.CONNECT_RETRIED, 5)
        values = [e.value for _, e in retried]
        assert all(20 <= v < 40 for v in values), values
        for (t0, e0), (t1, _) in itertools.pairwise(retried):
            assert (t1 - t0) * 1000 >= e0.value - 1
        await push.aclose()
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("ivl", [-1, 0])
async def test_no_retry_when_reconnect_is_off(
    ivl: int, autojump_clock: trio.testing.MockClock, tmp_path: Path, ctx: trimq.Context
) -> None:
    """-1 turns reconnection off; libzmq also arms its reconnect timer only if ivl > 0."""
    log = EventLog()
    async with trio.open_nursery() as nursery:
        push = ctx.socket(trimq.PUSH, reconnect_ivl=ivl, linger=0)
        nursery.start_soon(log.run, push.monitor())
        with trio.fail_after(STUCK):
            await push.connect(missing_ipc(tmp_path))
            await log.wait_count(EventType.CONNECT_DELAYED, 1)
        await checkpoints()
        autojump_clock.jump(60)
        await checkpoints()
        assert not log.of(EventType.CONNECT_RETRIED), log.events[:5]
        await push.aclose()
        nursery.cancel_scope.cancel()


@attrs.define
class RawServer:
    """A tcp listener that answers every connection with ``reply`` and then waits for EOF."""

    reply: bytes
    accepted: int = 0
    closed: int = 0
    first_accept: trio.Event = attrs.Factory(trio.Event)
    second_accept: trio.Event = attrs.Factory(trio.Event)

    async def start(self, nursery: trio.Nursery) -> int:
        """Listen on 127.0.0.1 in ``nursery``; return the port."""
        serve = functools.partial(trio.serve_tcp, self.handle, 0, host="127.0.0.1")
        listeners = await nursery.start(serve)
        port: int = listeners[0].socket.getsockname()[1]
        return port

    async def handle(self, stream: trio.SocketStream) -> None:
        self.accepted += 1
        (self.second_accept if self.accepted > 1 else self.first_accept).set()
        async with stream:
            try:
                if self.reply:
                    await stream.send_all(self.reply)
                else:
                    return  # close at once
                while await stream.receive_some(65536):
                    pass
            except trio.BrokenResourceError:
                pass
        self.closed += 1


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 400 Bad Request\r\n\r\n",
        b"\xff" + bytes(8) + b"\x7f\x01\x07",  # ZMTP 2.0
        encode_greeting(b"CURVE"),
    ],
    ids=["http", "zmtp2", "curve"],
)
async def test_no_reconnect_after_a_protocol_error(
    reply: bytes, autojump_clock: trio.testing.MockClock, ctx: trimq.Context
) -> None:
    server = RawServer(reply)
    log = EventLog()
    async with trio.open_nursery() as nursery:
        port = await server.start(nursery)
        # handshake_ivl=0: no timer runs while real (loopback) I/O is in flight.
        push = ctx.socket(trimq.PUSH, reconnect_ivl=100, handshake_ivl=0, linger=0)
        nursery.start_soon(log.run, push.monitor())
        with trio.fail_after(STUCK):
            await push.connect(f"tcp://127.0.0.1:{port}")
            failed = await log.wait_count(EventType.HANDSHAKE_FAILED_PROTOCOL, 1)
        assert failed[0][1].reason
        await trio.testing.wait_all_tasks_blocked()
        autojump_clock.jump(60)
        await trio.testing.wait_all_tasks_blocked()
        assert server.accepted == 1
        assert not log.of(EventType.CONNECT_RETRIED)
        assert push.statistics().protocol_errors == 1
        await push.aclose()
        nursery.cancel_scope.cancel()


async def test_reconnect_after_the_peer_just_closes(
    autojump_clock: trio.testing.MockClock, ctx: trimq.Context
) -> None:
    """The control case: a network-level close is not a protocol error."""
    server = RawServer(b"")
    log = EventLog()
    async with trio.open_nursery() as nursery:
        port = await server.start(nursery)
        push = ctx.socket(trimq.PUSH, reconnect_ivl=100, handshake_ivl=0, linger=0)
        nursery.start_soon(log.run, push.monitor())
        with trio.fail_after(STUCK):
            await push.connect(f"tcp://127.0.0.1:{port}")
            await server.second_accept.wait()
        retried = log.of(EventType.CONNECT_RETRIED)
        assert retried
        assert 100 <= retried[0][1].value < 200
        await push.aclose()
        nursery.cancel_scope.cancel()


async def test_backoff_resets_after_a_successful_handshake(
    autojump_clock: trio.testing.MockClock, ctx: trimq.Context
) -> None:
    """A server that completes the handshake and then hangs up: every retry waits the
    base interval again (libzmq makes a fresh connecter per reconnect)."""
    sessions = 0
    enough = trio.Event()

    async def handle(stream: trio.SocketStream) -> None:
        nonlocal sessions
        async with stream:
            await raw_handshake(stream, SocketType.PULL)
        sessions += 1
        if sessions == 5:
            enough.set()

    log = EventLog()
    async with trio.open_nursery() as nursery:
        serve = functools.partial(trio.serve_tcp, handle, 0, host="127.0.0.1")
        listeners = await nursery.start(serve)
        port = listeners[0].socket.getsockname()[1]
        push = ctx.socket(trimq.PUSH, reconnect_ivl=100, reconnect_ivl_max=5000, handshake_ivl=0)
        nursery.start_soon(log.run, push.monitor())
        with trio.fail_after(STUCK):
            await push.connect(f"tcp://127.0.0.1:{port}")
            await enough.wait()
            await log.wait_count(EventType.CONNECT_RETRIED, 4)
        assert len(log.of(EventType.HANDSHAKE_SUCCEEDED)) >= 4
        assert [e.value for _, e in log.of(EventType.CONNECT_RETRIED)[:4]] == [100] * 4
        await push.aclose(linger=0)
        nursery.cancel_scope.cancel()


# -------------------------------------------------------------------- handshake timeout


@pytest.mark.parametrize("sent", [b"", encode_greeting()[:20], encode_greeting()])
async def test_silent_peer_dropped_after_handshake_ivl(
    sent: bytes, autojump_clock: trio.testing.MockClock, ctx: trimq.Context
) -> None:
    sock = ctx.socket(trimq.PULL, handshake_ivl=750)
    log = EventLog()
    ours, theirs = trio.testing.memory_stream_pair()
    engine = EngineRun()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(log.run, sock.monitor())
        start = trio.current_time()
        nursery.start_soon(engine.run, sock, ours)
        if sent:
            await theirs.send_all(sent)
        with trio.fail_after(STUCK):
            await engine.done.wait()
        assert engine.ended_at - start == pytest.approx(0.75, abs=EPS)
        assert engine.outcome is not None
        assert not engine.outcome.handshaken
        assert "timed out" in engine.outcome.reason
        # A timeout is not a protocol error: libzmq's "no detail" failure.
        await log.wait_count(EventType.HANDSHAKE_FAILED_NO_DETAIL, 1)
        (_, event), *_ = log.of(EventType.HANDSHAKE_FAILED_NO_DETAIL)
        assert "timed out" in event.reason
        assert not log.of(EventType.HANDSHAKE_FAILED_PROTOCOL)
        # trimq sent its greeting, nothing more, then closed.
        received = b""
        while chunk := await theirs.receive_some():
            received += chunk
        assert received[:64] == encode_greeting()
        if len(sent) < 64:
            assert len(received) == 64
        nursery.cancel_scope.cancel()


async def test_trickling_peer_dropped_at_handshake_ivl(
    autojump_clock: trio.testing.MockClock, ctx: trimq.Context
) -> None:
    """A slowloris peer sending its greeting a byte every 100 ms is still dropped on time."""
    sock = ctx.socket(trimq.PULL, handshake_ivl=1000)
    ours, theirs = trio.testing.memory_stream_pair()
    engine = EngineRun()
    async with trio.open_nursery() as nursery:
        start = trio.current_time()
        nursery.start_soon(engine.run, sock, ours)
        with trio.move_on_after(STUCK):
            for byte in encode_greeting():
                try:
                    await theirs.send_all(bytes((byte,)))
                except trio.BrokenResourceError:
                    break
                if engine.done.is_set():
                    break
                await trio.sleep(0.1)  # the slow peer's own pace
        with trio.fail_after(STUCK):
            await engine.done.wait()
        assert engine.ended_at - start == pytest.approx(1.0, abs=EPS)
        assert engine.outcome is not None
        assert "timed out" in engine.outcome.reason
        nursery.cancel_scope.cancel()


async def test_silent_tcp_client_dropped_after_handshake_ivl(
    autojump_clock: trio.testing.MockClock, ctx: trimq.Context
) -> None:
    sock = ctx.socket(trimq.PULL, handshake_ivl=2000)
    log = EventLog()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(log.run, sock.monitor())
        endpoint = await sock.bind("tcp://127.0.0.1:*")
        host, port = endpoint.removeprefix("tcp://").rsplit(":", 1)
        stream = await trio.open_tcp_stream(host, int(port))
        start = trio.current_time()
        with trio.fail_after(STUCK):
            failed = await log.wait_count(EventType.HANDSHAKE_FAILED_NO_DETAIL, 1)
        t, event = failed[0]
        assert "timed out" in event.reason
        assert sock.statistics().protocol_errors == 0
        assert t - start == pytest.approx(2.0, abs=0.01)
        async with stream:
            with trio.fail_after(STUCK):
                while await stream.receive_some():
                    pass
        assert sock.statistics().peers == 0
        nursery.cancel_scope.cancel()


async def test_handshake_timeout_on_connect_side_reconnects(
    autojump_clock: trio.testing.MockClock, ctx: trimq.Context
) -> None:
    """A timeout is not a protocol error: the connecting side tries again."""
    server = RawServer(b"\xff")  # one byte of greeting, then silence
    log = EventLog()
    async with trio.open_nursery() as nursery:
        port = await server.start(nursery)
        push = ctx.socket(trimq.PUSH, reconnect_ivl=100, handshake_ivl=500, linger=0)
        nursery.start_soon(log.run, push.monitor())
        with trio.fail_after(STUCK):
            await push.connect(f"tcp://127.0.0.1:{port}")
            await server.second_accept.wait()
        (_, failed), *_ = log.of(EventType.HANDSHAKE_FAILED_NO_DETAIL)
        assert "timed out" in failed.reason
        await push.aclose()
        nursery.cancel_scope.cancel()


# --------------------------------------------------------------------------- heartbeats


@attrs.define
class RawPeer:
    """The far end of an in-memory connection, driven by hand."""

    stream: trio.abc.Stream
    conn: ZmtpConnection
    pings: list[tuple[float, Ping]] = attrs.Factory(list)
    pongs: list[tuple[float, Pong]] = attrs.Factory(list)
    messages: list[list[bytes]] = attrs.Factory(list)
    closed_at: float = math.inf
    answer_pings: bool = False
    ping_seen: trio.Event = attrs.Factory(trio.Event)
    pong_seen: trio.Event = attrs.Factory(trio.Event)

    async def read(self) -> None:
        """Read until trimq closes, recording PINGs/PONGs (answering PINGs if asked)."""
        while True:
            try:
                data = await self.stream.receive_some(65536)
            except trio.BrokenResourceError:
                data = b""
            now = trio.current_time()
            if not data:
                self.closed_at = now
                return
            for event in self.conn.receive_data(data):
                if isinstance(event, Ping):
                    self.pings.append((now, event))
                    self.ping_seen.set()
                elif isinstance(event, Pong):
                    self.pongs.append((now, event))
                    self.pong_seen.set()
                elif isinstance(event, list):
                    self.messages.append(event)
            out = self.conn.data_to_send()  # the PONGs our codec queued
            if out and self.answer_pings:
                await self.stream.send_all(out)

    async def wait_pings(self, n: int) -> None:
        while len(self.pings) < n:
            self.ping_seen = trio.Event()
            await self.ping_seen.wait()


def slow_reader_pair() -> tuple[
    trio.StapledStream[trio.abc.SendStream, trio.abc.ReceiveStream],
    trio.StapledStream[trio.abc.SendStream, trio.abc.ReceiveStream],
]:
    """(trimq's end, the peer's end): trimq's writes wait until the peer reads them
    (lockstep); the peer's writes are buffered, so both may send their greeting first."""
    to_peer_send, to_peer_recv = trio.testing.lockstep_stream_one_way_pair()
    to_trimq_send, to_trimq_recv = trio.testing.memory_stream_one_way_pair()
    return (
        trio.StapledStream(to_peer_send, to_trimq_recv),
        trio.StapledStream(to_trimq_send, to_peer_recv),
    )


async def start_pair(
    nursery: trio.Nursery, sock: trimq.Socket, peer_type: SocketType
) -> tuple[EngineRun, RawPeer]:
    ours, theirs = trio.testing.memory_stream_pair()
    engine = EngineRun()
    nursery.start_soon(engine.run, sock, ours)
    conn, _ = await raw_handshake(theirs, peer_type)
    return engine, RawPeer(theirs, conn)


@pytest.mark.parametrize(
    ("timeout", "dropped_at"),
    [(350, 0.45), (-1, 0.2), (100, 0.2)],
    ids=["timeout-350", "timeout-default", "timeout-100"],
)
async def test_pings_a_silent_peer_then_drops_it(
    timeout: int, dropped_at: float, autojump_clock: trio.testing.MockClock, ctx: trimq.Context
) -> None:
    sock = ctx.socket(trimq.PULL, heartbeat_ivl=100, heartbeat_timeout=timeout, heartbeat_ttl=2000)
    log = EventLog()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(log.run, sock.monitor())
        start = trio.current_time()
        engine, peer = await start_pair(nursery, sock, SocketType.PUSH)
        with trio.fail_after(STUCK):
            await peer.read()
            await engine.done.wait()
        ping_times = [round(t - start, 6) for t, _ in peer.pings]
        n = int(dropped_at * 10 + 1e-9) - 1
        assert ping_times[:n] == [round(0.1 * (i + 1), 6) for i in range(n)]
        # libzmq: the timeout runs from the first unanswered PING (0.1 + timeout).
        assert engine.ended_at - start == pytest.approx(dropped_at, abs=0.001)
        assert peer.closed_at == engine.ended_at
        assert all(p.ttl == 2.0 for _, p in peer.pings)
        assert engine.outcome is not None
        assert engine.outcome.handshaken
        assert not engine.outcome.protocol_error
        assert "heartbeat" in engine.outcome.reason
        await log.wait_count(EventType.DISCONNECTED, 1)
        nursery.cancel_scope.cancel()


async def test_heartbeat_timeout_counts_from_the_ping_not_the_last_traffic(
    autojump_clock: trio.testing.MockClock, ctx: trimq.Context
) -> None:
    """Traffic at 0.95 s, then silence: PING at 1.0 s, dropped at 1.0 + 0.1 s (libzmq)."""
    sock = ctx.socket(trimq.PULL, heartbeat_ivl=1000, heartbeat_timeout=100)
    async with trio.open_nursery() as nursery:
        start = trio.current_time()
        engine, peer = await start_pair(nursery, sock, SocketType.PUSH)
        nursery.start_soon(peer.read)
        await trio.sleep(0.95)  # the fake peer's own pace
        await peer.stream.send_all(b"\x00\x04last")
        with trio.fail_after(STUCK):
            await engine.done.wait()
        assert [round(t - start, 6) for t, _ in peer.pings] == [1.0]
        assert engine.ended_at - start == pytest.approx(1.1, abs=0.001)


@pytest.mark.parametrize("handshake_delay", [0, 1.0])
async def test_peer_answering_pongs_stays_connected(
    handshake_delay: float, autojump_clock: trio.testing.MockClock, ctx: trimq.Context
) -> None:
    """Also when the handshake itself was slow (well within handshake_ivl)."""
    sock = ctx.socket(trimq.PULL, heartbeat_ivl=100, heartbeat_timeout=100)
    async with trio.open_nursery() as nursery:
        ours, theirs = trio.testing.memory_stream_pair()
        engine = EngineRun()
        nursery.start_soon(engine.run, sock, ours)
        conn = ZmtpConnection(SocketType.PUSH)
        await theirs.send_all(conn.data_to_send())
        conn.receive_data(await theirs.receive_some(64))
        await trio.sleep(handshake_delay)  # a slow peer, on purpose
        await theirs.send_all(conn.data_to_send())  # READY
        peer = RawPeer(theirs, conn, answer_pings=True)
        nursery.start_soon(peer.read)
        with trio.fail_after(STUCK):
            await peer.wait_pings(50)
        assert not engine.done.is_set(), engine.outcome
        assert sock.statistics().peers == 1
        nursery.cancel_scope.cancel()


async def test_data_traffic_counts_as_liveness(
    autojump_clock: trio.testing.MockClock, ctx: trimq.Context
) -> None:
    """A peer that never PONGs but keeps sending messages is not dropped."""
    sock = ctx.socket(trimq.PULL, heartbeat_ivl=100, heartbeat_timeout=100, rcvhwm=0)
    async with trio.open_nursery() as nursery:
        engine, peer = await start_pair(nursery, sock, SocketType.PUSH)
        nursery.start_soon(peer.read)
        for i in range(40):
            await peer.stream.send_all(b"\x00\x01" + bytes((i,)))
            await trio.sleep(0.05)  # the fake peer's own pace
        assert not engine.done.is_set(), engine.outcome
        assert len(peer.pings) >= 10
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("our_ivl", [0, 10_000])
async def test_peer_ping_ttl_drops_it_after_silence(
    our_ivl: int, autojump_clock: trio.testing.MockClock, ctx: trimq.Context
) -> None:
    """A PING with TTL 0.5 s, then silence: trimq closes after 0.5 s, whatever its own
    heartbeat options (libzmq arms the TTL timer on any socket)."""
    sock = ctx.socket(trimq.PULL, heartbeat_ivl=our_ivl)
    async with trio.open_nursery() as nursery:
        engine, peer = await start_pair(nursery, sock, SocketType.PUSH)
        peer.conn.send_ping(ttl=0.5, context=b"x")
        await peer.stream.send_all(peer.conn.data_to_send())
        pinged = trio.current_time()
        with trio.fail_after(STUCK):
            await peer.read()
            await engine.done.wait()
        assert engine.ended_at - pinged == pytest.approx(0.5, abs=0.001)
        assert engine.outcome is not None
        assert "TTL" in engine.outcome.reason
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("context", [b"", b"ctx-123", b"0123456789abcdef"])
async def test_pong_echoes_the_ping_context(context: bytes, ctx: trimq.Context) -> None:
    sock = ctx.socket(trimq.PULL)
    async with trio.open_nursery() as nursery:
        engine, peer = await start_pair(nursery, sock, SocketType.PUSH)
        nursery.start_soon(peer.read)
        peer.conn.send_ping(ttl=0, context=context)
        await peer.stream.send_all(peer.conn.data_to_send())
        with trio.fail_after(5):
            await peer.pong_seen.wait()
        assert [p.context for _, p in peer.pongs] == [context]
        assert not engine.done.is_set()
        nursery.cancel_scope.cancel()


# ------------------------------------------------------------------------------ linger


@pytest.mark.parametrize(
    ("how", "expected"),
    [("option-0", 0.0), ("arg-0", 0.0), ("arg-500", 0.5), ("default", 1.0)],
)
async def test_linger_with_unsent_messages_to_an_unreachable_peer(
    how: str,
    expected: float,
    autojump_clock: trio.testing.MockClock,
    tmp_path: Path,
    ctx: trimq.Context,
) -> None:
    options = {"linger": 0} if how == "option-0" else {}
    push = ctx.socket(trimq.PUSH, **options)
    await push.connect(missing_ipc(tmp_path))
    for i in range(5):
        await push.send(b"%d" % i)  # queued on the pipe made at connect
    start = trio.current_time()
    with trio.fail_after(STUCK):
        if how.startswith("arg-"):
            await push.aclose(linger=int(how.removeprefix("arg-")))
        else:
            await push.aclose()
    assert trio.current_time() - start == pytest.approx(expected, abs=EPS)
    assert push.closed


async def test_context_exit_is_bounded_by_the_default_linger(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    start = trio.current_time()
    with trio.fail_after(STUCK):
        async with trimq.Context() as context:
            push = context.socket(trimq.PUSH)
            await push.connect(missing_ipc(tmp_path))
            await push.send(b"never delivered")
    assert trio.current_time() - start == pytest.approx(1.0, abs=EPS)


@pytest.mark.parametrize("linger", [None, -1, 5000])
async def test_linger_waits_for_a_slow_reader_to_take_everything(
    linger: int | None, autojump_clock: trio.testing.MockClock, ctx: trimq.Context
) -> None:
    """aclose() returns once the last byte is taken, well before the linger (if any)."""
    push = ctx.socket(trimq.PUSH) if linger is None else ctx.socket(trimq.PUSH, linger=linger)
    ours, theirs = slow_reader_pair()
    engine = EngineRun()
    big = [bytes([i]) * 40_000 for i in range(20)]
    received: list[list[bytes]] = []
    last_at = math.inf

    async def slow_reader(conn: ZmtpConnection) -> None:
        nonlocal last_at
        while True:
            await trio.sleep(0.01)  # a slow consumer, on purpose
            data = await theirs.receive_some(65536)
            if not data:
                return
            for event in conn.receive_data(data):
                if isinstance(event, list):
                    received.append(event)
                    last_at = trio.current_time()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(engine.run, push, ours)
        conn, _ = await raw_handshake(theirs, SocketType.PULL)
        nursery.start_soon(slow_reader, conn)
        for msg in big:
            await push.send(msg)
        start = trio.current_time()
        with trio.fail_after(STUCK):
            await push.aclose()
        closed_at = trio.current_time()
        assert received == [[m] for m in big]
        assert start < last_at <= closed_at < start + 1.0
        nursery.cancel_scope.cancel()


async def test_linger_gives_up_on_a_peer_that_never_reads(
    autojump_clock: trio.testing.MockClock, ctx: trimq.Context
) -> None:
    push = ctx.socket(trimq.PUSH, linger=300)
    ours, theirs = slow_reader_pair()
    engine = EngineRun()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(engine.run, push, ours)
        await raw_handshake(theirs, SocketType.PULL)
        for i in range(10):
            await push.send(b"%d" % i)
        start = trio.current_time()
        with trio.fail_after(STUCK):
            await push.aclose()
            await engine.done.wait()
        assert trio.current_time() - start == pytest.approx(0.3, abs=EPS)
        nursery.cancel_scope.cancel()


async def test_linger_flushes_over_tcp(ctx: trimq.Context) -> None:
    """Real clock: everything sent before aclose() reaches a trimq PULL."""
    pull = ctx.socket(trimq.PULL)
    endpoint = await pull.bind("tcp://127.0.0.1:*")
    push = ctx.socket(trimq.PUSH, sndhwm=0)
    async with push.monitor() as mon:
        await push.connect(endpoint)
        with trio.fail_after(10):
            await mon.wait_for(EventType.HANDSHAKE_SUCCEEDED)
    n = 3000
    for i in range(n):
        await push.send(b"%d" % i)
    got: list[int] = []

    async def receive() -> None:
        for _ in range(n):
            got.append(int(await pull.recv()))

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(receive)
            await push.aclose()
    assert got == list(range(n))


async def test_linger_delivers_to_a_peer_that_appears_within_it(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, ctx: trimq.Context
) -> None:
    """Messages queued while the peer is down are flushed if it comes up before linger ends."""
    endpoint = missing_ipc(tmp_path)
    push = ctx.socket(trimq.PUSH, reconnect_ivl=100, linger=2000)
    await push.connect(endpoint)
    for i in range(3):
        await push.send(b"%d" % i)
    got: list[bytes] = []

    async def late_peer() -> None:
        await trio.sleep(0.5)  # the peer starts late, on purpose
        # A raw listener bound synchronously: trio binds ipc paths in a worker
        # thread, and MockClock would jump while that thread runs.
        raw = stdsocket.socket(stdsocket.AF_UNIX, stdsocket.SOCK_STREAM)
        raw.bind(endpoint.removeprefix("ipc://"))
        raw.listen()
        async with trio.SocketListener(trio.socket.from_stdlib_socket(raw)) as listener:
            stream = await listener.accept()
            async with stream:
                conn, pending = await raw_handshake(stream, SocketType.PULL)
                messages = [e for e in pending if isinstance(e, list)]
                while len(messages) < 3:
                    data = await stream.receive_some(65536)
                    assert data
                    messages += [e for e in conn.receive_data(data) if isinstance(e, list)]
                got.extend(m[0] for m in messages)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(late_peer)
        start = trio.current_time()
        with trio.fail_after(STUCK):
            await push.aclose()
        elapsed = trio.current_time() - start
    assert got == [b"0", b"1", b"2"]
    assert 0.5 <= elapsed < 1.0


async def test_heartbeat_timeout_on_connect_side_reconnects_and_delivers(
    autojump_clock: trio.testing.MockClock, ctx: trimq.Context
) -> None:
    """A dead-but-open connection is detected by heartbeats; the PUSH reconnects and the
    message sent meanwhile reaches the new session."""
    sessions: list[list[list[bytes]]] = []
    second = trio.Event()

    async def handle(stream: trio.SocketStream) -> None:
        received: list[list[bytes]] = []
        sessions.append(received)
        async with stream:
            conn, pending = await raw_handshake(stream, SocketType.PULL)
            first = len(sessions) == 1
            received += [e for e in pending if isinstance(e, list)]
            while True:  # session 1: never answers PINGs
                try:
                    data = await stream.receive_some(65536)
                except trio.BrokenResourceError:
                    return
                if not data:
                    return
                received += [e for e in conn.receive_data(data) if isinstance(e, list)]
                out = conn.data_to_send()
                if out and not first:
                    await stream.send_all(out)
                if received and not first:
                    second.set()

    log = EventLog()
    async with trio.open_nursery() as nursery:
        serve = functools.partial(trio.serve_tcp, handle, 0, host="127.0.0.1")
        listeners = await nursery.start(serve)
        port = listeners[0].socket.getsockname()[1]
        push = ctx.socket(trimq.PUSH, heartbeat_ivl=100, reconnect_ivl=100, linger=0)
        nursery.start_soon(log.run, push.monitor())
        with trio.fail_after(STUCK):
            await push.connect(f"tcp://127.0.0.1:{port}")
            (_, lost), *_ = await log.wait_count(EventType.DISCONNECTED, 1)
            assert "heartbeat" in lost.reason
            await push.send(b"after")
            await second.wait()
        assert sessions[-1] == [[b"after"]]
        assert push.statistics().protocol_errors == 0
        await push.aclose()
        nursery.cancel_scope.cancel()
