"""Drive one ZMTP connection over a trio stream: handshake, reader, writer, heartbeats.

The writer batches every queued message into as few ``send_all`` calls as it
can, and the reader parses every frame of each ``receive_some``: per-message
syscalls and scheduling points are what make naive async ZeroMQ slow.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import attrs
import trio

from .._errors import AuthenticationError, LocalProtocolError, RemoteProtocolError
from .._monitor import EventType
from .._peer import Peer
from ..zmtp import (
    AuthRequest,
    Chunks,
    Event,
    Frames,
    HandshakeComplete,
    Ping,
    Subscribe,
    ZmtpConnection,
)
from ..zmtp import Cancel as CancelEvent
from ._owner import PipeOwner
from ._pipe import NOBODY, Pipe, Waiters, noop
from ._streams import peer_credentials, peer_ip

__all__ = ["Outcome", "run_engine"]

log = logging.getLogger("trimq.transport")

RECEIVE_SIZE = 256 * 1024
# os.writev takes at most this many buffers (Linux's IOV_MAX).
IOV_MAX = 1024
# How many queued messages one writer pass takes: bounds the latency a huge
# backlog adds in front of commands (PONG) and the size of one encode call.
MAX_BATCH = 4096
# An encrypting mechanism (CURVE) builds its whole batch in memory before the
# first byte goes out; past this many payload bytes a batch stops, so the peer
# decrypts one batch while we encrypt the next instead of taking turns.
MAX_SEALED_BATCH_BYTES = 256 * 1024


@attrs.frozen
class Outcome:
    """How a connection ended.

    Attributes:
        protocol_error: the peer broke ZMTP; libzmq does not reconnect after that.
        handshaken: the handshake had completed (so a backoff may reset).
        reason: human-readable.
    """

    protocol_error: bool
    handshaken: bool
    reason: str


class _PeerGone(Exception):
    """Internal: the peer closed or the heartbeat expired."""


class Engine:
    """One connection's tasks. Created per connection; a pipe may outlive it."""

    def __init__(self, owner: PipeOwner, stream: trio.abc.Stream, endpoint: str, peer: str) -> None:
        opts = owner.options
        self.owner = owner
        self.stream = stream
        self.endpoint = endpoint
        self.peer = peer
        self.conn = ZmtpConnection(
            owner.socket_type,
            identity=opts.routing_id,
            maxmsgsize=opts.maxmsgsize,
            mechanism=owner.new_mechanism(),
        )
        self.sealing = self.conn.mechanism.transforms_frames
        self.writer_wake = Waiters()
        self.reader_wake = Waiters()
        self.last_rx = trio.current_time()
        self.peer_ttl = math.inf  # from the peer's last PING: silence this long is fatal
        self.hb_sleep: trio.CancelScope | None = None
        self.handshaken = False
        self.heartbeating = False
        self.nursery: trio.Nursery | None = None
        self.error: Exception | None = None
        # Direct writes (see flush_now) need the raw descriptor; -1 disables them.
        self.fd = stream.socket.fileno() if isinstance(stream, trio.SocketStream) else -1
        # ipc: who the kernel says is at the other end, read once per connection.
        self.credentials = peer_credentials(stream)
        self.pipe: Pipe | None = None
        self.writing = False  # the writer task is inside send_all
        self.flush_listed = False  # flush_now is in the owner's unflushed list
        self.leftover: Chunks = []  # a direct write's unsent tail
        self.dupfd = -1  # a second descriptor for a task blocked in recv (see wait_input)
        self.eof = False  # a direct read saw the end: leave the rest to the reader task
        self.input_waiting = False  # a task is in wait_input's wait_readable

    async def handshake(self) -> tuple[HandshakeComplete, list[Event]]:
        """Exchange greetings and the mechanism's handshake (asking the ZAP
        handler when it calls for it); return the peer's info and the events
        parsed after it."""
        await self.stream.send_all(self.conn.data_to_send())
        while True:
            data = await self.stream.receive_some(RECEIVE_SIZE)
            try:
                events = self.conn.receive_data(data)
            except RemoteProtocolError as exc:
                # Handshake and messages may share the read that ends in a violation:
                # complete the handshake, deliver them, then drop the peer.
                events = self.conn.events_before_error
                if not any(isinstance(e, HandshakeComplete) for e in events):
                    # Send what the connection queued before the violation (our
                    # NULL READY, say) before hanging up, as libzmq does: a
                    # libzmq peer that reads a READY it cannot accept treats it
                    # as a protocol error and stops reconnecting.
                    await self._send_before_closing()
                    raise
                self.error = exc
            events = await self._authenticate(events)
            out = self.conn.data_to_send()
            if out:
                await self.stream.send_all(out)
            for i, event in enumerate(events):
                if isinstance(event, HandshakeComplete):
                    return event, events[i + 1 :]
            if not data:
                raise _PeerGone(
                    "peer closed the connection during the handshake, while we waited for "
                    + self.conn.waiting_for
                )

    async def _authenticate(self, events: list[Event]) -> list[Event]:
        # A mechanism's request for authentication ends the events of its read
        # (nothing may follow it in a handshake); the verdict continues them.
        if not events or not isinstance(events[-1], AuthRequest):
            return events
        verdict = await self.owner.authenticate(events[-1], peer_ip(self.stream))
        try:
            more = self.conn.auth_result(
                verdict.status_code,
                verdict.status_text.decode("utf-8", "replace"),
                user_id=verdict.user_id,
                metadata=verdict.metadata,
            )
        except AuthenticationError:
            # Tell the peer why (ERROR with the status code), as libzmq does.
            await self._send_before_closing()
            raise
        return [*events[:-1], *more]

    async def _send_before_closing(self) -> None:
        # Best effort, bounded: a peer that does not read must not hold us up.
        out = self.conn.data_to_send()
        if out:
            # A peer already gone changes nothing: the error being raised stands.
            with (
                trio.move_on_after(1),
                contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError),
            ):
                await self.stream.send_all(out)

    async def run(self, pipe: Pipe, pending: list[Event]) -> None:
        """Move messages between ``pipe`` and the stream until the connection ends.

        Raises the first error that ended it (not wrapped in an ExceptionGroup).
        """
        self.handshaken = True
        self.pipe = pipe
        pipe.outq.reader = self
        pipe.inq.writer = self
        if self.fd >= 0:
            pipe.wait_input = self.wait_input
        try:
            async with trio.open_nursery() as nursery:
                self.nursery = nursery
                nursery.start_soon(self._guard, self._writer, pipe)
                self._deliver(pipe, pending)
                if self.owner.options.heartbeat_ivl > 0:
                    self.heartbeating = True
                    nursery.start_soon(self._guard, self._heartbeat)
                if self.error is None:
                    await self._guard(self._reader, pipe)
                else:
                    nursery.cancel_scope.cancel()
        finally:
            self.fd = -1  # the stream is about to close; its number may be reused
            pipe.outq.reader = NOBODY
            pipe.wait_input = None
            if self.flush_listed:  # a socket that never blocks in recv never drains it
                self.flush_listed = False
                self.owner.cancel_flush(self.flush_now)
            if self.dupfd >= 0:
                trio.lowlevel.notify_closing(self.dupfd)
                os.close(self.dupfd)
                self.dupfd = -1
        if self.error is not None:
            raise self.error

    def queue_writable(self) -> None:
        """The socket read from a full input queue: the reader task may go on."""
        self.reader_wake.wake()

    def queue_readable(self) -> None:
        """The socket queued output on an empty queue (the engine reads ``outq``)."""
        # The socket queued a message on an empty queue. The writer task sends it
        # in trio's next scheduling batch; but if the sending task blocks first
        # (a DEALER waiting for its reply), the socket calls flush_now and the
        # bytes leave at once, a scheduling hop sooner. Lockstep sockets (REQ,
        # REP) send one message per receive, so they write at once.
        if self.owner.flush_on_send and not self.writing and self.fd >= 0:
            self.flush_now()
            if not self.leftover:
                return
        self.writer_wake.wake()
        if not self.flush_listed and self.fd >= 0:
            self.flush_listed = True
            self.owner.defer_flush(self.flush_now)

    def flush_now(self) -> None:
        """Write queued messages from the calling task, without blocking.

        Whatever the kernel does not take at once is left to the writer task.
        Does nothing while the writer task is busy, so writes never interleave.
        """
        self.flush_listed = False
        pipe = self.pipe
        if self.fd < 0 or self.writing or self.leftover or pipe is None:
            return
        items = pipe.outq.items
        if not items:
            return
        batch = self._take_batch(items)
        pipe.outq.notify_space()
        try:
            chunks = self.conn.encode_messages(batch)
        except LocalProtocolError:
            return  # the connection has failed; the reader or writer ends it
        try:
            sent = os.writev(self.fd, chunks[:IOV_MAX])
        except BlockingIOError:
            sent = 0
        except OSError:
            # The connection is broken: the reader sees it too and ends the engine.
            self.fd = -1
            return
        self.leftover = _unsent(chunks, sent)
        if self.leftover:
            pipe.busy = True  # for linger: bytes are still on their way
            self.writer_wake.wake()

    def _take_batch(self, items: deque[Frames]) -> list[Frames]:
        """The queued messages one write should carry (see MAX_SEALED_BATCH_BYTES)."""
        n = min(len(items), MAX_BATCH)
        if not self.sealing:
            return [items.popleft() for _ in range(n)]
        batch: list[Frames] = []
        size = 0
        while items and len(batch) < n and size < MAX_SEALED_BATCH_BYTES:
            msg = items.popleft()
            batch.append(msg)
            size += sum(map(len, msg))
        return batch

    async def _guard(self, task: Callable[..., Awaitable[None]], *args: Any) -> None:
        # The first task to fail ends the connection; its error is re-raised by
        # run() as is, since trio's nurseries would wrap it in an ExceptionGroup.
        try:
            await task(*args)
        except (
            RemoteProtocolError,
            _PeerGone,
            trio.BrokenResourceError,
            trio.ClosedResourceError,
            OSError,
        ) as exc:
            self._end(exc)
        else:
            self._end(None)

    def _end(self, exc: Exception | None) -> None:
        # End the connection; the first error is the one run() re-raises.
        if self.error is None:
            self.error = exc
        self.eof = True  # no more direct reads
        assert self.nursery is not None
        self.nursery.cancel_scope.cancel()

    def _deliver(self, pipe: Pipe, events: Sequence[Event]) -> None:
        inq = pipe.inq
        items = inq.writable()
        was_empty = not items
        for event in events:
            if isinstance(event, list):
                items.append(event)
            else:
                self._command(pipe, event)
        if was_empty and items:
            inq.reader.queue_readable()

    def _command(self, pipe: Pipe, event: Event) -> None:
        # Subscriptions travel to the socket as 0x01/0x00 messages, the form libzmq
        # shows XPUB applications, so inproc and tcp look the same to PUB/XPUB.
        if isinstance(event, Subscribe):
            pipe.inq.writable().append([b"\x01" + event.topic])
        elif isinstance(event, CancelEvent):
            pipe.inq.writable().append([b"\x00" + event.topic])
        elif isinstance(event, Ping):
            self.peer_ttl = event.ttl if event.ttl > 0 else math.inf
            if event.ttl > 0:
                if not self.heartbeating and not self.eof and self.nursery is not None:
                    self.heartbeating = True
                    self.nursery.start_soon(self._guard, self._heartbeat)
                elif self.hb_sleep is not None:
                    # The heartbeat task may be asleep until a later deadline.
                    self.hb_sleep.deadline = min(self.hb_sleep.deadline, self.last_rx + event.ttl)
            self.writer_wake.wake()

    async def _reader(self, pipe: Pipe) -> None:
        if self.fd >= 0:
            await self._fd_reader(pipe)
            return
        receive_some = self.stream.receive_some
        inq = pipe.inq
        while True:
            data = await receive_some(RECEIVE_SIZE)
            self._received(pipe, data)
            while inq.full():
                # Stop reading: TCP backpressure makes the sender's HWM decide.
                inq.writer_waiting = True
                await self.reader_wake.wait()

    async def _fd_reader(self, pipe: Pipe) -> None:
        # Like trio's receive_some, but parsing each read before any checkpoint:
        # a task blocked in recv may read the same descriptor (read_now), and the
        # bytes must reach the parser in the order the kernel handed them out.
        fd = self.fd
        inq = pipe.inq
        while True:
            await trio.lowlevel.checkpoint_if_cancelled()
            try:
                data = os.read(fd, RECEIVE_SIZE)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(fd)
                continue
            self._received(pipe, data)
            await trio.lowlevel.cancel_shielded_checkpoint()
            while inq.full():
                inq.writer_waiting = True
                await self.reader_wake.wait()

    def _received(self, pipe: Pipe, data: bytes | bytearray) -> None:
        self.last_rx = trio.current_time()
        try:
            events = self.conn.receive_data(data)
        except RemoteProtocolError:
            # Messages completed before the violation are the peer's to keep, as in libzmq.
            self._deliver(pipe, self.conn.events_before_error)
            raise
        if events:
            self._deliver(pipe, events)
        if not data:
            raise _PeerGone("peer closed the connection")

    def read_now(self) -> None:
        """Read and parse whatever the kernel holds for us, without blocking."""
        pipe = self.pipe
        if self.fd < 0 or self.eof or pipe is None or pipe.inq.full():
            return
        try:
            data = os.read(self.fd, RECEIVE_SIZE)
        except BlockingIOError:
            return
        except OSError:
            self.eof = True  # the reader task reads the end and reports it
            return
        if not data:
            self.eof = True
            return
        try:
            self._received(pipe, data)
        except RemoteProtocolError as exc:
            self._end(exc)

    def _interrupt_input_wait(self) -> None:
        # notify_closing wakes the tasks waiting on a descriptor (with
        # ClosedResourceError) and leaves it usable: a cheaper wake-up than
        # entering a cancel scope around every wait.
        if self.input_waiting and self.dupfd >= 0:
            trio.lowlevel.notify_closing(self.dupfd)

    async def wait_input(self, waiters: Waiters) -> None:
        """Block until ``waiters`` wakes or the connection is readable, then read.

        For a task blocked in ``recv`` on a socket with this one connection: it
        is woken by the kernel directly rather than by the reader task, which
        saves a scheduling hop per message received, about a tenth of a round trip.
        """
        if self.fd < 0 or self.eof or self.input_waiting:
            await waiters.wait()  # one task at a time may wait on the descriptor
            return
        if self.dupfd < 0:
            # trio lets one task at a time wait on a descriptor; the reader has fd.
            try:
                self.dupfd = os.dup(self.fd)
            except OSError:
                # Out of descriptors (EMFILE, ENFILE): the shortcut is only an
                # optimisation, so wait for the reader task to wake us instead,
                # and try the dup again next time.
                await waiters.wait()
                return
        waiters.add_waker(self._interrupt_input_wait)
        self.input_waiting = True
        readable = False
        try:
            await trio.lowlevel.wait_readable(self.dupfd)
            readable = True
        except trio.ClosedResourceError:
            return  # woken by _interrupt_input_wait, or the connection is ending
        finally:
            self.input_waiting = False
            waiters.remove_waker(self._interrupt_input_wait)
            if not readable and waiters:
                # Leaving with nothing read (cancelled): a task parked behind
                # this one takes the descriptor over, rather than waiting for
                # the reader task to read for it, a scheduling hop later.
                waiters.wake()
        self.read_now()

    async def _writer(self, pipe: Pipe) -> None:
        q = pipe.outq
        items = q.items
        conn = self.conn
        send_all = self.stream.send_all
        while True:
            if self.leftover:
                chunks, self.leftover = self.leftover, []
            elif items:
                batch = self._take_batch(items)
                q.notify_space()
                chunks = conn.encode_messages(batch)
            else:
                out = conn.data_to_send()
                if not out:
                    pipe.busy = False
                    self.owner.idle_waiters.wake()
                    await self.writer_wake.wait()
                    continue
                chunks = [out]
            pipe.busy = self.writing = True
            try:
                for chunk in chunks:
                    await send_all(chunk)
            finally:
                self.writing = False

    async def _heartbeat(self) -> None:
        # libzmq's rules: PING every heartbeat_ivl; after a PING, silence for
        # heartbeat_timeout is fatal; a peer's PING TTL makes silence that long fatal.
        opts = self.owner.options
        ivl = opts.heartbeat_ivl / 1000 if opts.heartbeat_ivl > 0 else math.inf
        timeout = opts.heartbeat_timeout_s
        next_ping = trio.current_time() + ivl
        waiting_since = math.inf  # when we sent a PING that nothing has answered yet
        while True:
            deadline = min(next_ping, waiting_since + timeout, self.last_rx + self.peer_ttl)
            with trio.CancelScope(deadline=deadline) as self.hb_sleep:
                await trio.sleep_forever()
            self.hb_sleep = None
            now = trio.current_time()
            if now >= self.last_rx + self.peer_ttl:
                raise _PeerGone("peer's heartbeat TTL expired: no traffic from it")
            if self.last_rx >= waiting_since:
                waiting_since = math.inf
            if now >= waiting_since + timeout:
                raise _PeerGone("heartbeat timed out: no traffic from the peer after PING")
            if now >= next_ping:
                self.conn.send_ping(ttl=opts.heartbeat_ttl / 1000)
                self.writer_wake.wake()
                waiting_since = min(waiting_since, now)
                next_ping = now + ivl


def _unsent(chunks: Chunks, sent: int) -> Chunks:
    """What remains of ``chunks`` after the first ``sent`` bytes went out."""
    for i, chunk in enumerate(chunks):
        size = len(chunk)
        if sent < size:
            rest = chunks[i:]
            if sent:
                rest[0] = memoryview(chunk)[sent:]
            return rest
        sent -= size
    return []


async def run_engine(
    owner: PipeOwner,
    stream: trio.abc.Stream,
    endpoint: str,
    peer: str,
    pipe: Pipe | None = None,
) -> Outcome:
    """Handshake over ``stream`` and serve it until it ends; never raises for peer errors.

    ``pipe`` is the connect side's long-lived pipe (None: make one on handshake).
    """
    try:
        engine = Engine(owner, stream, endpoint, peer)
    except ValueError as exc:  # security options that do not fit together
        await stream.aclose()
        return _failed(owner, endpoint, peer, f"cannot start the handshake: {exc}", protocol=True)
    owns_pipe = pipe is None
    attached: Pipe | None = None
    try:
        async with stream:
            hs_timeout = owner.options.handshake_ivl / 1000 or math.inf
            with trio.move_on_after(hs_timeout) as hs_scope:
                hs, pending = await engine.handshake()
            if hs_scope.cancelled_caught:
                return _failed(owner, endpoint, peer, "handshake timed out", protocol=False)
            info = _peer_info(hs, endpoint, peer, engine.credentials)
            if pipe is None:
                attached = owner.new_pipe(endpoint, info)
            elif owner.pipe_reconnected(pipe, info):
                attached = pipe
            if attached is None:
                # A closing socket, or a pipe it let go (disconnect), refuses
                # routinely; an open socket refusing a new peer (a PAIR that
                # has one) is worth a warning.
                routine = owner.closed or pipe is not None
                return _failed(
                    owner, endpoint, peer, "peer refused by the socket", protocol=not routine
                )
            owner.emit(EventType.HANDSHAKE_SUCCEEDED, endpoint, peer)
            with trio.CancelScope() as scope:
                attached.on_terminate = scope.cancel
                await engine.run(attached, pending)
            return _lost(owner, endpoint, peer, "closed by the socket", protocol=True)
    except AuthenticationError as exc:
        return _refused(owner, endpoint, peer, exc)
    except RemoteProtocolError as exc:
        if not engine.handshaken:
            return _failed(owner, endpoint, peer, str(exc), protocol=True)
        return _lost(owner, endpoint, peer, f"protocol error: {exc}", protocol=True)
    except _PeerGone as exc:
        if not engine.handshaken:
            return _failed(owner, endpoint, peer, str(exc), protocol=False)
        return _lost(owner, endpoint, peer, str(exc), protocol=False)
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
        reason = f"connection lost: {exc or type(exc).__name__}"
        if not engine.handshaken:
            return _failed(owner, endpoint, peer, reason, protocol=False)
        return _lost(owner, endpoint, peer, reason, protocol=False)
    finally:
        if attached is not None:
            attached.busy = False
            attached.on_terminate = noop
            if owns_pipe:
                owner.detach_pipe(attached)
            owner.idle_waiters.wake()


def _failed(owner: PipeOwner, endpoint: str, peer: str, reason: str, *, protocol: bool) -> Outcome:
    # A broken protocol is worth a warning; a peer that connects and leaves or
    # stalls (port scanners, health checks, timeouts) is routine, so only INFO.
    level = logging.WARNING if protocol else logging.INFO
    log.log(level, "handshake with %s on %s failed: %s", peer or "peer", endpoint, reason)
    if protocol:
        owner.emit(EventType.HANDSHAKE_FAILED_PROTOCOL, endpoint, peer, reason)
    else:
        owner.emit(EventType.HANDSHAKE_FAILED_NO_DETAIL, endpoint, peer, reason)
    return Outcome(protocol, False, reason)


def _refused(owner: PipeOwner, endpoint: str, peer: str, exc: AuthenticationError) -> Outcome:
    # Refusing strangers is routine for a server on an open network (INFO); being
    # refused ourselves usually means a misconfigured key or password (WARNING).
    level = logging.WARNING if exc.by_peer else logging.INFO
    log.log(level, "handshake with %s on %s failed: %s", peer or "peer", endpoint, exc)
    owner.emit(EventType.HANDSHAKE_FAILED_AUTH, endpoint, peer, str(exc), exc.status_code)
    return Outcome(True, False, str(exc))


def _peer_info(
    hs: HandshakeComplete,
    endpoint: str,
    address: str,
    credentials: tuple[int, int, int] | None = None,
) -> Peer:
    pid, uid, gid = credentials if credentials is not None else (None, None, None)
    return Peer(
        transport=endpoint.partition("://")[0],
        address=address,
        mechanism=hs.mechanism.decode(),
        user_id=hs.user_id,
        public_key=hs.peer_key,
        routing_id=hs.peer_identity,
        socket_type=hs.peer_socket_type,
        metadata=hs.peer_metadata,
        pid=pid,
        uid=uid,
        gid=gid,
    )


def _lost(owner: PipeOwner, endpoint: str, peer: str, reason: str, *, protocol: bool) -> Outcome:
    level = logging.WARNING if protocol else logging.DEBUG
    log.log(level, "connection to %s on %s dropped: %s", peer or "peer", endpoint, reason)
    owner.emit(EventType.DISCONNECTED, endpoint, peer, reason)
    return Outcome(protocol, True, reason)
