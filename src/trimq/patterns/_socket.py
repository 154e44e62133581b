"""The socket base class: API, pipes, endpoints and the hot send/recv paths.

Socket types subclass :class:`Socket` and override the ``_x*`` hooks, as
libzmq's socket types override ``xsend``/``xrecv``/``xattach_pipe``.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Final, Self, cast

import attrs
import trio

from .._errors import InvalidEndpointError, NotSupportedError, SocketStateError
from .._monitor import EventType, Monitor, MonitorEvent
from .._options import SocketOptions
from .._peer import Message, Peer
from ..transport import (
    NO_ITEMS,
    Listener,
    MsgQueue,
    Pipe,
    Security,
    Waiters,
    connect_loop,
    open_listener,
    parse_endpoint,
    serve_listener,
)
from ..zmtp import AuthRequest, Mechanism, SocketType, ZapReply

if TYPE_CHECKING:
    from ._context import Context

__all__ = ["DROPPED", "QUEUED", "Buffer", "Socket", "SocketStatistics"]

log = logging.getLogger("trimq")

Buffer = bytes | bytearray | memoryview
Frames = list[bytes]
_cancel_shielded_checkpoint = trio.lowlevel.cancel_shielded_checkpoint
_checkpoint_if_cancelled = trio.lowlevel.checkpoint_if_cancelled
#: ``_xsend`` results: 0 (falsy) means "would block".
QUEUED, DROPPED = 1, 2
_CONFLATING_TYPES = frozenset(
    {SocketType.DEALER, SocketType.PULL, SocketType.PUSH, SocketType.PUB, SocketType.SUB}
)
# Shared empty lists for state most sockets never use (actors make sockets by
# the hundred thousand, and each list is one more object for the cyclic GC).
# Never mutated: code replaces them with a fresh list before adding to one.
_NO_FRAMES: Final[list[bytes]] = []
_NO_MONITORS: Final[list[Monitor]] = []
_NO_PIPES: Final = cast("deque[Pipe]", ())
_NO_FLUSHES: Final = cast("list[Callable[[], None]]", ())
_NO_HANDLES: Final = cast("list[_EndpointHandle]", ())
_NO_WAITERS: Final = Waiters()
# Events that no counter in statistics() depends on.
_UNCOUNTED: Final = frozenset(
    {
        EventType.LISTENING,
        EventType.ACCEPTED,
        EventType.CONNECTED,
        EventType.CONNECT_DELAYED,
        EventType.HANDSHAKE_SUCCEEDED,
    }
)
# Socket types that never look inside the frames they send (see send_object).
_OBJECT_SENDERS = frozenset({SocketType.PAIR, SocketType.PUSH, SocketType.DEALER})
_OBJECT_PUBLISHERS = frozenset({SocketType.PUB, SocketType.XPUB})
# A send or recv that need not block still yields to the scheduler every this
# many calls, so a tight loop cannot starve the socket's own I/O tasks.
YIELD_EVERY = 64


@attrs.frozen
class SocketStatistics:
    """A snapshot of a socket's counters (see :meth:`Socket.statistics`).

    Attributes:
        peers: pipes currently attached.
        messages_sent: messages queued by ``send*`` (not counting drops).
        messages_received: messages returned by ``recv*``.
        messages_dropped: messages dropped by the pattern: ROUTER to an unknown or
            full peer, each subscriber's copy a PUB could not queue, REQ replies
            from the wrong peer, SUB messages nobody subscribed to...
        protocol_errors: connections dropped because the peer broke ZMTP.
        auth_failures: handshakes that authentication refused, either way
            (our authenticator refused the peer, or the peer refused us).
    """

    peers: int
    messages_sent: int
    messages_received: int
    messages_dropped: int
    protocol_errors: int
    auth_failures: int = 0


def to_bytes(frame: Buffer | str) -> bytes:
    """Copy a frame into immutable bytes (so a later mutation by the caller is harmless)."""
    if isinstance(frame, str):
        raise TypeError("frames must be bytes-like; encode str first (e.g. text.encode())")
    return bytes(frame)


@attrs.define(eq=False)
class _EndpointHandle:
    kind: str  # "bind" or "connect"
    endpoint: str
    scope: trio.CancelScope | None = None
    pipe: Pipe | None = None
    inproc_name: str = ""
    listener: Listener | None = None
    alias: str = ""  # the endpoint as asked for, if not what was bound (tcp://*:0)

    def matches(self, endpoint: str, kind: str) -> bool:
        return self.kind == kind and endpoint in (self.endpoint, self.alias)


class Socket:
    """A ZeroMQ socket. Create it with :meth:`trimq.Context.socket`.

    Message calls keep pyzmq's names (``send``, ``recv``, ``send_multipart``,
    ``recv_multipart``); everything else follows trio: ``*_nowait`` raise
    :class:`trio.WouldBlock`, timeouts come from cancel scopes, ``aclose`` and
    ``async with`` close it. A socket may be used by several tasks at once:
    each message is queued or taken atomically.
    """

    socket_type: ClassVar[SocketType]
    _can_send: ClassVar[bool] = True
    _can_recv: ClassVar[bool] = True
    #: See PipeOwner.flush_on_send: True for types that send one message per receive.
    flush_on_send: bool = (
        False  # a class default; send_multipart_nowait(flush=True) sets it briefly
    )

    def __init__(self, context: Context, options: SocketOptions) -> None:
        self._ctx = context
        self._options = options
        self.pipes: list[Pipe] = []
        # Made on first use and dropped when empty, like inproc queues (MsgQueue.lazy).
        self._ready: deque[Pipe] = _NO_PIPES
        # A shared, always-empty stand-in until a task waits (see _waiting):
        # waking it does nothing, and most sockets wait one way only.
        self._recv_waiters = _NO_WAITERS
        self._send_waiters = _NO_WAITERS
        self._idle: Waiters | None = None  # made when somebody waits (linger)
        self._handles: list[_EndpointHandle] = _NO_HANDLES  # binds and connects
        self._monitors: list[Monitor] = _NO_MONITORS
        self._closed = False
        self._fq_pipe: Pipe | None = None
        self._tx_partial: list[bytes] = _NO_FRAMES
        # A list, not a deque: messages are a few frames, and an empty deque
        # costs 760 bytes (actors make sockets by the hundred thousand).
        self._rx_partial: list[bytes] = _NO_FRAMES
        self._lb_next = 0
        #: Connections with messages their writer task has not picked up yet
        #: (a shared empty stand-in until there are some; see defer_flush).
        self.unflushed: list[Callable[[], None]] = _NO_FLUSHES
        self.last_endpoint = ""
        self._security: Security | None = None  # made by the first tcp/ipc connection
        self._sent = self._received = self._dropped = self._protocol_errors = 0
        self._auth_failures = 0

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self.pipes)} peers"
        return f"<trimq.Socket {self.socket_type.name} {state}>"

    # ------------------------------------------------------------------ options

    @property
    def options(self) -> SocketOptions:
        """The socket's options (read them here; change them with :meth:`set_options`)."""
        return self._options

    @property
    def conflates(self) -> bool:
        """Whether ``conflate`` is on and applies to this type (as libzmq: DEALER,
        PULL, PUSH, PUB and SUB; the others ignore the option)."""
        return self._options.conflate and self.socket_type in _CONFLATING_TYPES

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` has started."""
        return self._closed

    def set_options(self, **options: Any) -> None:
        """Change options by their libzmq names, e.g. ``sock.set_options(sndhwm=10)``."""
        self._options = self._options.replace(**options)

    @property
    def idle_waiters(self) -> Waiters:
        """Woken when a connection goes idle or a pipe ends (the transport layer uses it)."""
        if self._idle is None:
            self._idle = Waiters()
        return self._idle

    def defer_flush(self, flush: Callable[[], None]) -> None:
        """Have ``flush`` called before a task of this socket blocks (see PipeOwner)."""
        if self.unflushed is _NO_FLUSHES:
            self.unflushed = []
        self.unflushed.append(flush)

    def cancel_flush(self, flush: Callable[[], None]) -> None:
        """Undo :meth:`defer_flush` for a ``flush`` not called yet."""
        if flush in self.unflushed:
            self.unflushed.remove(flush)

    def queue_writable(self) -> None:
        """A full output queue has room (the socket is its pipes' outq writer)."""
        self._send_waiters.wake()

    def statistics(self) -> SocketStatistics:
        """Counters, as in trio's ``statistics()`` methods."""
        return SocketStatistics(
            peers=len(self.pipes),
            messages_sent=self._sent,
            messages_received=self._received,
            messages_dropped=self._dropped,
            protocol_errors=self._protocol_errors,
            auth_failures=self._auth_failures,
        )

    # ------------------------------------------------------------------ monitor

    def monitor(self, *, max_buffer: int = 10_000) -> Monitor:
        """Start recording connection events; iterate the returned :class:`Monitor`.

        Example::

            async with sock.monitor() as events:
                await sock.connect(endpoint)
                await events.wait_for(trimq.EventType.HANDSHAKE_SUCCEEDED)
        """
        if self._monitors is _NO_MONITORS:
            self._monitors = []
        mon = Monitor._create(self._monitors.remove, max_buffer)
        self._monitors.append(mon)
        return mon

    def emit(
        self, type: EventType, endpoint: str, peer: str = "", reason: str = "", value: int = 0
    ) -> None:
        """Deliver a monitor event to every monitor of this socket."""
        if type in _UNCOUNTED and self._monitors is _NO_MONITORS:
            return  # the common case: nobody listens (inproc pipes emit four events)
        if type is EventType.HANDSHAKE_FAILED_PROTOCOL or (
            type is EventType.DISCONNECTED and reason.startswith("protocol error")
        ):
            self._protocol_errors += 1
        elif type is EventType.HANDSHAKE_FAILED_AUTH:
            self._auth_failures += 1
        if self._monitors:
            event = MonitorEvent(type, endpoint, peer, reason, value)
            for mon in list(self._monitors):
                mon._push(event)

    # ------------------------------------------------------------------ pipes

    def attach_pipe(self, pipe: Pipe) -> bool:
        """Start routing to and from ``pipe``; False if this socket type refuses it."""
        if self._closed or not self._xattach(pipe):
            return False
        self.pipes.append(pipe)
        pipe.owner = self
        pipe.inq.reader = pipe
        pipe.outq.writer = self
        if pipe.inq.items:
            self.pipe_readable(pipe)
        self._send_waiters.wake()
        return True

    def new_pipe(self, endpoint: str, peer: Peer | None) -> Pipe | None:
        """Make and attach a pipe for a new tcp/ipc peer (None: refused).

        ``peer`` is None for a pipe made before its connection exists.
        """
        opts = self._options
        conflate = self.conflates
        pipe = Pipe(
            MsgQueue(opts.rcvhwm, conflate=conflate),
            MsgQueue(opts.sndhwm, conflate=conflate),
            endpoint,
        )
        if peer is not None:
            pipe.peer = peer
            pipe.peer_address = peer.address
            pipe.identity = peer.routing_id
        return pipe if self.attach_pipe(pipe) else None

    def pipe_reconnected(self, pipe: Pipe, peer: Peer) -> bool:
        """A kept pipe got a new connection (libzmq's "hiccup")."""
        if not pipe.alive or self._closed:
            return False
        pipe.peer = peer
        pipe.peer_address = peer.address
        pipe.identity = peer.routing_id
        self._xhiccup(pipe)
        return True

    def new_mechanism(self) -> Mechanism:
        """The security mechanism for a new connection, from the options."""
        if self._security is None:
            self._security = Security()
        return self._security.new_mechanism(self._options)

    async def authenticate(self, request: AuthRequest, address: str) -> ZapReply:
        """Ask the Context's ZAP handler about a peer (see ``trimq.auth``)."""
        return await self._ctx._zap.authenticate(self._options, request, address)

    def detach_pipe(self, pipe: Pipe) -> None:
        """Stop routing to ``pipe``; messages already received stay readable."""
        if not pipe.alive:
            return
        pipe.alive = False
        try:
            self.pipes.remove(pipe)
        except ValueError:
            pass
        else:
            self._xdetach(pipe)
        if not pipe.inproc:
            # An inproc outq is the peer's inq: what is in it is already delivered.
            pipe.outq.clear()
        pipe.terminate()
        if self._idle is not None:
            self._idle.wake()
        self._send_waiters.wake()
        self._recv_waiters.wake()

    # Hooks for socket types -------------------------------------------------

    def _xattach(self, pipe: Pipe) -> bool:
        return True

    def _xdetach(self, pipe: Pipe) -> None:
        pass

    def _xhiccup(self, pipe: Pipe) -> None:
        pass

    def pipe_readable(self, pipe: Pipe) -> None:
        """``pipe``'s input queue went from empty to non-empty (socket types override it)."""
        # Fair queueing: a pipe with input joins the ready ring once.
        if not pipe.in_ready:
            pipe.in_ready = True
            if self._ready is _NO_PIPES:
                self._ready = deque()
            self._ready.append(pipe)
        self._recv_waiters.wake()

    def _xsend(self, msg: Frames) -> int:
        """Route ``msg``: QUEUED, DROPPED (the pattern discards it), or 0 to wait for room."""
        raise NotSupportedError(f"{self.socket_type.name} sockets cannot send")

    def _xrecv(self) -> Frames | None:
        raise NotSupportedError(f"{self.socket_type.name} sockets cannot receive")

    # Routing strategies shared by several types --------------------------------

    def _fq_recv(self) -> Frames | None:
        """Fair queueing: the next message from the next pipe in the ready ring.

        The pipe it came from is left in ``_fq_pipe`` for ROUTER and REP.
        """
        ready = self._ready
        while ready:
            pipe = ready[0]
            q = pipe.inq
            items = q.items
            if items:
                msg = items.popleft()
                if not items:
                    q.release()
                    ready.popleft()
                    pipe.in_ready = False
                    if not ready:
                        self._ready = _NO_PIPES
                elif len(ready) > 1:
                    ready.rotate(-1)
                if q.writer_waiting:  # last: waking the writer may refill the queue
                    q.notify_space()
                self._fq_pipe = pipe
                return msg
            ready.popleft()
            pipe.in_ready = False
        self._ready = _NO_PIPES
        return None

    def _lb_pipe(self) -> Pipe | None:
        """The next pipe in turn with room, or None (then every pipe will wake us)."""
        pipes = self.pipes
        n = len(pipes)
        start = self._lb_next
        for i in range(n):
            idx = (start + i) % n
            pipe = pipes[idx]
            q = pipe.outq
            if q.hwm and len(q.items) >= q.hwm:
                continue
            self._lb_next = idx + 1
            return pipe
        for pipe in pipes:
            pipe.outq.writer_waiting = True
        return None

    def _lb_send(self, msg: Frames) -> int:
        pipes = self.pipes
        if len(pipes) == 1:  # the common case, without the round-robin arithmetic
            q = pipes[0].outq
            items = q.items
            if not q.hwm or len(items) < q.hwm:
                if items is NO_ITEMS:
                    items = q.items = deque()
                items.append(msg)
                if len(items) == 1:
                    q.reader.queue_readable()
                return QUEUED
        pipe = self._lb_pipe()
        if pipe is None:
            return 0
        pipe.outq.put(msg)
        return QUEUED

    # ------------------------------------------------------------------ sending

    def _check_open(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError(f"{self.socket_type.name} socket was closed")

    async def send(self, data: Buffer, *, more: bool = False) -> None:
        """Send one frame; with ``more=True`` it waits for the rest of the message.

        Waits while the pattern says to (HWM reached, no peer yet); drops where
        the pattern drops (PUB, ROUTER). If it raises ``Cancelled``, nothing was
        sent. Raises :class:`trio.ClosedResourceError` once the socket is closed.
        """
        # Check cancellation first: a send that raises Cancelled must not have happened.
        await _checkpoint_if_cancelled()
        frame: bytes = data if data.__class__ is bytes else to_bytes(data)
        if more:
            self._check_open()
            if self._tx_partial:
                self._tx_partial.append(frame)
            else:
                self._tx_partial = [frame]
            return
        if self._tx_partial:
            msg = self._with_partial(frame)
        else:
            msg = [frame]
        if not self._closed:
            # The fast path, inlined: no extra coroutine frame per message.
            status = self._xsend(msg)
            if status == QUEUED:
                self._sent = n = self._sent + 1
                if self._tx_partial:
                    self._tx_partial = _NO_FRAMES
                if not n % YIELD_EVERY:
                    await _cancel_shielded_checkpoint()
                return
            if status:
                self._done_sending(status)
                return
        await self._send_slow(msg)

    async def send_multipart(self, frames: Iterable[Buffer]) -> None:
        """Send a multipart message; the peer receives all of it or none of it."""
        await _checkpoint_if_cancelled()
        msg: Frames = [f if f.__class__ is bytes else to_bytes(f) for f in frames]
        if not msg:
            raise ValueError("a message needs at least one frame")
        if self._tx_partial or (len(msg) > 1 and self.conflates):
            msg = self._with_partial(*msg)
        if not self._closed:
            status = self._xsend(msg)
            if status == QUEUED:
                self._sent = n = self._sent + 1
                if self._tx_partial:
                    self._tx_partial = _NO_FRAMES
                if not n % YIELD_EVERY:
                    await _cancel_shielded_checkpoint()
                return
            if status:
                self._done_sending(status)
                return
        await self._send_slow(msg)

    async def send_object(self, obj: object, *, topic: bytes | None = None) -> None:
        """Queue a Python object itself as a message to inproc peers.

        Nothing is copied or encoded: the peer receives this very object, so
        both sides share it (do not mutate it after sending unless that is what
        you want). This is how ``trimq.actors`` passes messages between actors
        of one process. Waits and drops as :meth:`send` does. If it raises
        ``Cancelled``, nothing was sent.

        Args:
            obj: The object. On PAIR, PUSH and DEALER it is the whole message
                (read it with :meth:`recv_object`).
            topic: PUB and XPUB only, and required there: the message is
                ``[topic, obj]``, filtered by subscribers' prefixes as usual
                (read it with ``recv_multipart``).

        Raises:
            NotSupportedError: The socket type cannot carry objects (ROUTER,
                REQ, REP read their frames; PUB needs a topic; the others do
                not send), or a peer is connected over tcp or ipc: an object
                cannot leave the process.
            SocketStateError: A message was started with ``send(more=True)``.
        """
        await _checkpoint_if_cancelled()
        msg = self._object_message(obj, topic)
        if not self._closed:
            status = self._xsend(msg)
            if status == QUEUED:
                self._sent = n = self._sent + 1
                if not n % YIELD_EVERY:
                    await _cancel_shielded_checkpoint()
                return
            if status:
                self._done_sending(status)
                return
        await self._send_slow(msg)

    def send_object_nowait(self, obj: object, *, topic: bytes | None = None) -> None:
        """Like :meth:`send_object`, but now or never: raises :class:`trio.WouldBlock`
        instead of waiting for room (and ``ClosedResourceError`` once closed)."""
        msg = self._object_message(obj, topic)
        self._check_open()
        status = self._xsend(msg)
        if not status:
            raise trio.WouldBlock
        self._done_sending(status)

    def _object_message(self, obj: object, topic: bytes | None) -> Frames:
        if topic is None and self.socket_type not in _OBJECT_SENDERS:
            raise NotSupportedError(
                f"send_object works on PAIR, PUSH and DEALER sockets, and with a topic on "
                f"PUB and XPUB; not on {self.socket_type.name}"
            )
        if topic is not None and self.socket_type not in _OBJECT_PUBLISHERS:
            raise NotSupportedError(
                f"send_object(topic=...) is for PUB and XPUB sockets, not {self.socket_type.name}"
            )
        for pipe in self.pipes:
            if not pipe.inproc:
                raise NotSupportedError(
                    f"send_object needs inproc peers only, but this socket has a peer on "
                    f"{pipe.endpoint}: objects cannot leave the process; send bytes instead"
                )
        if self._tx_partial:
            raise SocketStateError(
                "send(more=True) started a message: finish it before send_object()"
            )
        # inproc carries objects as frames; the topic stays bytes for filtering.
        return [obj] if topic is None else [bytes(topic), obj]  # type: ignore[list-item]

    async def recv_object(self) -> object:
        """Like :meth:`recv`, for frames that are Python objects from :meth:`send_object`.

        A frame sent as bytes comes back as those bytes.
        """
        frame: object = await self.recv()
        return frame

    def discard_partial(self) -> int:
        """Give up the message begun with ``send(..., more=True)``.

        Its frames were never queued, so the peer sees nothing of it. Use it
        when the last ``send`` of a message was cancelled and the message
        should not go out after all.

        Returns:
            How many frames were dropped (0 if no message was begun).
        """
        dropped = len(self._tx_partial)
        self._tx_partial = _NO_FRAMES
        return dropped

    def _with_partial(self, *last: bytes) -> Frames:
        # The frames sent with more=True stay pending until the whole message is
        # sent: a cancelled final send() can be retried.
        msg = [*self._tx_partial, *last]
        if len(msg) > 1 and self.conflates:
            self._tx_partial = _NO_FRAMES
            raise ValueError(
                "a socket with conflate=True only carries single-frame messages; "
                "send one frame per message"
            )
        return msg

    async def _send_slow(self, msg: Frames) -> None:
        self._check_open()
        while True:
            if self._send_waiters is _NO_WAITERS:
                self._send_waiters = Waiters()
            await self._send_waiters.wait()
            self._check_open()
            status = self._xsend(msg)
            if status:
                self._done_sending(status)
                return

    def _done_sending(self, status: int) -> None:
        # Off the hot path (send's inlined QUEUED case): count, and forget the
        # more=True frames that went out with the message.
        if status == QUEUED:
            self._sent += 1
        else:
            self._dropped += 1
        self._tx_partial = _NO_FRAMES

    def send_nowait(self, data: Buffer) -> None:
        """Send one frame now or raise :class:`trio.WouldBlock`."""
        self.send_multipart_nowait([data])

    def send_multipart_nowait(self, frames: Iterable[Buffer], *, flush: bool = False) -> None:
        """Send a multipart message now or raise :class:`trio.WouldBlock`.

        With ``flush=True`` the message is also written from this task at once,
        as far as the kernel takes it, instead of by the connection's writer
        task in the next scheduling batch: for a lone request or reply, after
        which the task waits for something else (see :meth:`flush`).
        """
        self._check_open()
        msg = [f if f.__class__ is bytes else to_bytes(f) for f in frames]
        if not msg:
            raise ValueError("a message needs at least one frame")
        msg = self._with_partial(*msg)
        if not flush:
            status = self._xsend(msg)
        else:
            # Read by the engine as the message is queued: it writes at once
            # and does not wake its writer task (see PipeOwner.flush_on_send).
            self.flush_on_send = True
            try:
                status = self._xsend(msg)
            finally:
                del self.flush_on_send  # back to the class's own setting
        if not status:
            raise trio.WouldBlock
        self._done_sending(status)

    # ---------------------------------------------------------------- receiving

    @property
    def rcvmore(self) -> bool:
        """True if the last ``recv`` returned a frame and more of its message follows."""
        return bool(self._rx_partial)

    async def recv(self) -> bytes:
        """Receive the next frame (use :meth:`recv_multipart` for whole messages).

        If it raises ``Cancelled``, nothing was received.
        """
        await _checkpoint_if_cancelled()
        if self._rx_partial:
            return self._rx_partial.pop(0)
        msg = None if self._closed else self._xrecv()
        if msg is None:
            msg = await self._recv_slow()
        else:
            self._received = n = self._received + 1
            if not n % YIELD_EVERY:
                await _cancel_shielded_checkpoint()
        if len(msg) > 1:
            self._rx_partial = msg[1:]  # it was empty: recv returns leftovers first
        return msg[0]

    async def recv_multipart(self) -> list[bytes]:
        """Receive a whole message (the rest of it, if ``recv`` took its first frames)."""
        await _checkpoint_if_cancelled()
        if self._rx_partial:
            rest, self._rx_partial = self._rx_partial, _NO_FRAMES
            return rest
        msg = None if self._closed else self._xrecv()
        if msg is None:
            return await self._recv_slow()
        self._received = n = self._received + 1
        if not n % YIELD_EVERY:
            await _cancel_shielded_checkpoint()
        return msg

    def _flush(self) -> None:
        # About to block: send what we queued now rather than a scheduling hop
        # later (a REQ's request, a REP's reply), which is most of a round trip.
        flushes, self.unflushed = self.unflushed, _NO_FLUSHES
        for flush in flushes:
            flush()

    def flush(self) -> None:
        """Write queued tcp/ipc messages now, from this task, as far as the kernel
        takes them without blocking (the rest goes from the connection's writer
        task, as usual).

        Sends are written by a background task in trio's next scheduling
        batch, so that a burst goes out in few system calls; a task that
        sends one message and then waits for something other than this
        socket (an event, another socket) calls this to save that hop.
        A task blocked in this socket's ``recv`` flushes by itself.
        """
        if self.unflushed:
            self._flush()

    async def _recv_slow(self) -> Frames:
        self._check_open()
        while True:
            if self.unflushed:
                self._flush()
            pipes = self.pipes
            wait_input = pipes[0].wait_input if len(pipes) == 1 else None
            if self._recv_waiters is _NO_WAITERS:
                self._recv_waiters = Waiters()
            if wait_input is None:
                await self._recv_waiters.wait()
            else:
                await wait_input(self._recv_waiters)
            self._check_open()
            msg = self._xrecv()
            if msg is not None:
                self._received += 1
                return msg

    async def recv_message(self) -> Message:
        """Receive a whole message together with the peer that sent it.

        ``message.peer`` says who that is: its transport and address, and what
        the handshake proved (CURVE public key, ZAP user id), so an application
        can decide per message what the sender may do. If it raises
        ``Cancelled``, nothing was received.

        Raises:
            SocketStateError: ``recv`` returned part of a message; read the rest first.
        """
        await _checkpoint_if_cancelled()
        if self._rx_partial:
            raise SocketStateError(
                "recv() took the first frames of a message: recv_multipart() the rest first"
            )
        msg = None if self._closed else self._xrecv()
        if msg is None:
            msg = await self._recv_slow()  # returns right after _xrecv: no task switch
        else:
            self._received += 1
        pipe = self._source_pipe()
        message = Message(msg, None if pipe is None else pipe.peer)
        if not self._received % YIELD_EVERY:
            await _cancel_shielded_checkpoint()
        return message

    def has_input(self) -> bool:
        """Whether a message is waiting here: ``recv`` would return at once.

        .. versionadded:: 0.1
        """
        return bool(self._rx_partial) or any(pipe.inq.items for pipe in self._ready)

    def _source_pipe(self) -> Pipe | None:
        """The pipe the message ``_xrecv`` just returned came from."""
        return self._fq_pipe

    @property
    def peers(self) -> list[Peer]:
        """The peers connected now (whose handshake completed), in no particular order."""
        return [pipe.peer for pipe in self.pipes if pipe.peer is not None and pipe.alive]

    def recv_nowait(self) -> bytes:
        """The next frame if one is waiting, else raise :class:`trio.WouldBlock`."""
        if self._rx_partial:
            return self._rx_partial.pop(0)
        msg = self.recv_multipart_nowait()
        if len(msg) > 1:
            self._rx_partial = msg[1:]  # it was empty: recv returns leftovers first
        return msg[0]

    def recv_multipart_nowait(self) -> list[bytes]:
        """The next whole message if one is waiting, else raise :class:`trio.WouldBlock`."""
        self._check_open()
        if self._rx_partial:
            rest, self._rx_partial = self._rx_partial, _NO_FRAMES
            return rest
        msg = self._xrecv()
        if msg is None:
            raise trio.WouldBlock
        self._received += 1
        return msg

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> list[bytes]:
        """Iterate over whole messages until the socket is closed."""
        try:
            return await self.recv_multipart()
        except trio.ClosedResourceError:
            raise StopAsyncIteration from None

    # ------------------------------------------------------------- subscriptions

    def subscribe(self, topic: bytes | str) -> None:
        """SUB only: receive messages whose first frame starts with ``topic``."""
        raise NotSupportedError(f"{self.socket_type.name} sockets have no subscriptions")

    def unsubscribe(self, topic: bytes | str) -> None:
        """SUB only: undo one :meth:`subscribe` of ``topic``."""
        raise NotSupportedError(f"{self.socket_type.name} sockets have no subscriptions")

    # ------------------------------------------------------------- endpoints

    def _spawn(self, handle: _EndpointHandle, fn: Any, *args: Any) -> None:
        scope = trio.CancelScope()
        handle.scope = scope

        async def run() -> None:
            with scope:
                try:
                    await fn(*args)
                except Exception:
                    # A bug must not take the whole Context (and the user's program) down.
                    log.exception("internal error in a %s background task", self.socket_type.name)

        self._ctx._spawn_system_task(run)

    async def bind(self, endpoint: str) -> str:
        """Listen on ``endpoint`` and return the endpoint really bound.

        ``tcp://127.0.0.1:*`` (or port 0) picks a free port; the return value
        (also :attr:`last_endpoint`) has the real one.
        """
        self._check_open()
        ep = parse_endpoint(endpoint, for_bind=True)
        self._options.security()  # refuse inconsistent security options now, not per peer
        if ep.transport == "inproc":
            await trio.lowlevel.checkpoint()
            self._bind_inproc(endpoint, ep.path)
            return endpoint
        try:
            listener = await open_listener(
                ep, backlog=self._options.backlog, ipv6=self._options.ipv6
            )
        except OSError as exc:
            self.emit(EventType.BIND_FAILED, endpoint, reason=str(exc))
            raise OSError(exc.errno, f"cannot bind {endpoint}: {exc.strerror or exc}") from exc
        bound = listener.endpoint
        handle = _EndpointHandle("bind", bound, listener=listener)
        if bound != endpoint:
            handle.alias = endpoint
        self._spawn(handle, serve_listener, self, listener)
        self._add_handle(handle)
        self.last_endpoint = bound
        self.emit(EventType.LISTENING, bound)
        return bound

    async def connect(self, endpoint: str) -> None:
        """Connect to ``endpoint``; returns at once and (re)connects in the background.

        Unless ``immediate=True``, messages sent before the connection is up wait
        in its queue (up to ``sndhwm``).
        """
        self._check_open()
        ep = parse_endpoint(endpoint)
        self._options.security()
        await trio.lowlevel.checkpoint()
        if ep.transport == "inproc":
            self._connect_inproc(endpoint, ep.path)
            return
        handle = _EndpointHandle("connect", endpoint)
        pipe = None
        if self.pipe_before_connect():
            pipe = self.new_pipe(endpoint, None)
        handle.pipe = pipe
        self._spawn(handle, connect_loop, self, ep, endpoint, pipe)
        self._add_handle(handle)
        self.last_endpoint = endpoint

    # inproc needs no I/O, so these are synchronous (Context.pipe uses them directly).

    def _bind_inproc(self, endpoint: str, name: str) -> None:
        self._ctx._inproc.bind(name, self)
        self._add_handle(_EndpointHandle("bind", endpoint, inproc_name=name))
        self.last_endpoint = endpoint
        self.emit(EventType.LISTENING, endpoint)

    def _connect_inproc(self, endpoint: str, name: str) -> None:
        handle = _EndpointHandle("connect", endpoint)
        handle.pipe = self._ctx._inproc.connect(name, self, endpoint)
        self._add_handle(handle)
        self.last_endpoint = endpoint

    def pipe_before_connect(self) -> bool:
        """Whether a connect makes a pipe at once, so sends queue before the peer exists."""
        # ROUTER cannot route to a peer before it knows its identity.
        return not self._options.immediate and self.socket_type is not SocketType.ROUTER

    def _add_handle(self, handle: _EndpointHandle) -> None:
        if self._handles is _NO_HANDLES:
            self._handles = []
        self._handles.append(handle)

    def _pop_endpoint(self, endpoint: str, kind: str) -> list[_EndpointHandle]:
        handles = [h for h in self._handles if h.matches(endpoint, kind)]
        if not handles:
            done = "bound" if kind == "bind" else "connected"
            raise InvalidEndpointError(f"{endpoint} was not {done} on this socket")
        self._handles = [h for h in self._handles if h not in handles]
        return handles

    async def unbind(self, endpoint: str) -> None:
        """Stop listening on ``endpoint`` and close the connections accepted through it."""
        for handle in self._pop_endpoint(endpoint, "bind"):
            self._stop_handle(handle)
        await trio.lowlevel.checkpoint()

    async def disconnect(self, endpoint: str) -> None:
        """Stop connecting to ``endpoint`` and drop that connection and its queue."""
        for handle in self._pop_endpoint(endpoint, "connect"):
            self._stop_handle(handle)
        await trio.lowlevel.checkpoint()

    def _stop_handle(self, handle: _EndpointHandle) -> None:
        if handle.scope is not None:
            handle.scope.cancel()
        if handle.listener is not None:
            handle.listener.close()
        if handle.pipe is not None:
            self.detach_pipe(handle.pipe)
        if handle.inproc_name:
            self._ctx._inproc.unbind(handle.inproc_name, self)
        if handle.kind == "bind":
            for pipe in list(self.pipes):
                if pipe.endpoint == handle.endpoint and not pipe.inproc:
                    self.detach_pipe(pipe)

    # ------------------------------------------------------------------ closing

    async def aclose(self, linger: int | None = None) -> None:
        """Close the socket, first waiting up to ``linger`` ms (default: the option)
        for queued messages to be written. Idempotent."""
        if self._closed:
            await trio.lowlevel.checkpoint()
            return
        linger = self._options.linger if linger is None else linger
        if linger != 0:
            timeout = math.inf if linger < 0 else linger / 1000
            with trio.move_on_after(timeout):
                while self._unflushed():
                    await self.idle_waiters.wait()
        self.close_nowait()
        await trio.lowlevel.checkpoint()

    def _unflushed(self) -> bool:
        return any((p.outq.items or p.busy) for p in self.pipes if not p.inproc)

    def close_nowait(self) -> None:
        """Close the socket at once, without lingering: queued messages that
        were not written yet are dropped. Idempotent; :meth:`aclose` with
        ``linger=0`` does the same and then checkpoints.

        .. versionadded:: 0.1
        """
        if self._closed:
            return
        self._closed = True
        handles, self._handles = self._handles, _NO_HANDLES
        for handle in handles:
            self._stop_handle(handle)
        for pipe in list(self.pipes):
            self.detach_pipe(pipe)
        self._recv_waiters.wake()
        self._send_waiters.wake()
        for mon in list(self._monitors):
            mon._push(MonitorEvent(EventType.MONITOR_STOPPED, ""))
            mon._stop()
        self._monitors = _NO_MONITORS
        self._ctx._forget(self)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            await self.aclose()
        else:
            self.close_nowait()
