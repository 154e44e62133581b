"""Socket monitoring: an async iterator of connection events.

Tests and applications wait for ``HANDSHAKE_SUCCEEDED`` instead of sleeping.
"""

from __future__ import annotations

import enum
import math
from types import TracebackType

import attrs
import trio

__all__ = ["EventType", "Monitor", "MonitorEvent"]


class EventType(enum.IntFlag):
    """Monitor event kinds, with libzmq's ``ZMQ_EVENT_*`` codes.

    .. versionadded:: 0.1
    """

    CONNECTED = 0x1
    CONNECT_DELAYED = 0x2
    CONNECT_RETRIED = 0x4
    LISTENING = 0x8
    BIND_FAILED = 0x10
    ACCEPTED = 0x20
    ACCEPT_FAILED = 0x40
    CLOSED = 0x80
    CLOSE_FAILED = 0x100
    DISCONNECTED = 0x200
    MONITOR_STOPPED = 0x400
    HANDSHAKE_FAILED_NO_DETAIL = 0x800
    HANDSHAKE_SUCCEEDED = 0x1000
    HANDSHAKE_FAILED_PROTOCOL = 0x2000
    HANDSHAKE_FAILED_AUTH = 0x4000


@attrs.frozen
class MonitorEvent:
    """One thing that happened to a socket's connections.

    Attributes:
        type: what happened.
        endpoint: the endpoint it happened on (as bound or connected).
        peer: the remote address, when known.
        reason: a human-readable reason for failures and disconnects.
        value: libzmq's event value (e.g. the retry interval in ms), when meaningful.
    """

    type: EventType
    endpoint: str
    peer: str = ""
    reason: str = ""
    value: int = 0


@attrs.define(eq=False)
class Monitor:
    """Events of one socket from the moment the monitor was created.

    Use it as an async iterator, optionally inside ``async with`` (which stops
    it on exit). Events are buffered without limit only up to ``max_buffer``;
    beyond that new events are dropped and counted in :attr:`dropped`.
    """

    _send: trio.MemorySendChannel[MonitorEvent]
    _recv: trio.MemoryReceiveChannel[MonitorEvent]
    _detach: object  # callable; typed loosely to avoid a cycle with the socket
    dropped: int = 0

    @classmethod
    def _create(cls, detach: object, max_buffer: int = 10_000) -> Monitor:
        send, recv = trio.open_memory_channel[MonitorEvent](
            max_buffer if max_buffer > 0 else math.inf
        )
        return cls(send, recv, detach)

    def _push(self, event: MonitorEvent) -> None:
        try:
            self._send.send_nowait(event)
        except trio.WouldBlock:
            self.dropped += 1
        except trio.ClosedResourceError:
            pass

    def _stop(self) -> None:
        self._send.close()

    async def receive(self) -> MonitorEvent:
        """The next event; raises ``trio.EndOfChannel`` once the monitor or socket stopped."""
        return await self._recv.receive()

    async def wait_for(self, *types: EventType, endpoint: str | None = None) -> MonitorEvent:
        """Skip events until one of ``types`` (optionally on ``endpoint``) arrives; return it.

        Wrap it in ``trio.fail_after`` to bound the wait.
        """
        wanted = EventType(0)
        for t in types:
            wanted |= t
        while True:
            event = await self.receive()
            if event.type & wanted and (endpoint is None or event.endpoint == endpoint):
                return event

    def aclose_nowait(self) -> None:
        """Stop receiving events (the iterator ends once the buffer is drained)."""
        detach = self._detach
        if callable(detach):
            detach(self)
        self._send.close()

    def __aiter__(self) -> Monitor:
        return self

    async def __anext__(self) -> MonitorEvent:
        try:
            return await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> Monitor:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.aclose_nowait()
