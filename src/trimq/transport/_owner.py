"""What the transport layer needs from a socket (kept narrow so the layers stay apart)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable

    from .._monitor import EventType
    from .._options import SocketOptions
    from .._peer import Peer
    from ..zmtp import AuthRequest, Mechanism, SocketType, ZapReply
    from ._pipe import Pipe, Waiters

__all__ = ["PipeOwner"]


class PipeOwner(Protocol):
    """The socket side of a connection: it owns pipes and receives monitor events."""

    @property
    def socket_type(self) -> SocketType: ...

    @property
    def options(self) -> SocketOptions: ...

    @property
    def conflates(self) -> bool:
        """Whether this socket keeps only the newest message in each queue."""
        ...

    @property
    def flush_on_send(self) -> bool:
        """Whether a connection writes each message from the sending task itself
        (for lockstep sockets, which never send bursts)."""
        ...

    def defer_flush(self, flush: Callable[[], None]) -> None:
        """Call ``flush`` (a connection's ``flush_now``) before a task of the socket blocks."""

    def cancel_flush(self, flush: Callable[[], None]) -> None:
        """Forget a ``flush`` passed to :meth:`defer_flush` and not called yet."""

    def pipe_readable(self, pipe: Pipe) -> None:
        """``pipe.inq`` went from empty to non-empty."""

    @property
    def idle_waiters(self) -> Waiters:
        """Woken whenever a connection's writer goes idle or a pipe ends (for linger)."""
        ...

    def emit(
        self, type: EventType, endpoint: str, peer: str = "", reason: str = "", value: int = 0
    ) -> None:
        """Report a monitor event."""

    @property
    def closed(self) -> bool:
        """True once the socket is closing (it then refuses new peers)."""

    def pipe_before_connect(self) -> bool:
        """Whether a connecting socket queues messages before the peer exists."""

    def attach_pipe(self, pipe: Pipe) -> bool:
        """Start routing to and from ``pipe``; False refuses the peer."""

    def new_pipe(self, endpoint: str, peer: Peer | None) -> Pipe | None:
        """Create and attach a pipe for a new peer, or return None to refuse that peer."""

    def pipe_reconnected(self, pipe: Pipe, peer: Peer) -> bool:
        """A pipe kept across a reconnect has a new connection; False refuses it."""

    def new_mechanism(self) -> Mechanism:
        """The security mechanism for a new connection (raises ValueError if the
        socket's security options are inconsistent)."""

    async def authenticate(self, request: AuthRequest, address: str) -> ZapReply:
        """Ask the ZAP handler about a peer at ``address`` (an IP, or ``""``)."""

    def detach_pipe(self, pipe: Pipe) -> None:
        """The peer is gone for good: stop routing to the pipe (queued input stays readable)."""
