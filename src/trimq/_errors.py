"""The exception hierarchy shared by every layer of trimq.

This module must stay importable without trio: the sans-I/O :mod:`trimq.zmtp`
codec raises these too. Where trio already has the right exception
(``ClosedResourceError``, ``WouldBlock``, ``BusyResourceError``,
``TooSlowError``) trimq raises trio's instead of an errno clone.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "HandshakeError",
    "HostUnreachableError",
    "InvalidEndpointError",
    "LocalProtocolError",
    "MessageTooLargeError",
    "NotSupportedError",
    "ProtocolError",
    "RemoteProtocolError",
    "SocketStateError",
    "TrimqError",
    "UnsupportedTransportError",
]


class TrimqError(Exception):
    """Base class of every error trimq raises itself.

    .. versionadded:: 0.1
    """


class ProtocolError(TrimqError):
    """Something broke a protocol: ZMTP, or the actor nodes' protocol on top of it.
    Abstract: one of the two subclasses is raised.

    .. versionadded:: 0.1
    """


class LocalProtocolError(ProtocolError):
    """We were asked to emit something ZMTP does not allow (a bug in the caller).

    .. versionadded:: 0.1
    """


class RemoteProtocolError(ProtocolError):
    """The peer violated ZMTP (on a socket, that connection is dropped and logged),
    or sent an actor node a message that is not one of the node protocol's
    envelopes (the message is dropped and logged; a request gets this error back).

    .. versionadded:: 0.1
    """


class HandshakeError(RemoteProtocolError):
    """The greeting or handshake failed: not ZMTP, an old version, a mechanism or
    socket-type mismatch, or an ERROR command from the peer.

    .. versionadded:: 0.1
    """


class AuthenticationError(HandshakeError):
    """Authentication refused the handshake: our authenticator refused the peer,
    or the peer's refused us (it sent ERROR during the handshake).

    Attributes:
        status_code: The ZAP status (400 refused, 300 try later, 500 handler
            error), or 0 if none is known.
        by_peer: True if the peer refused us, False if we refused the peer.

    .. versionadded:: 0.1
    """

    def __init__(self, message: str, status_code: int = 0, *, by_peer: bool = False) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.by_peer = by_peer


class MessageTooLargeError(RemoteProtocolError):
    """The peer announced a frame that would exceed ``maxmsgsize``.

    .. versionadded:: 0.1
    """


class SocketStateError(TrimqError):
    """The call is not allowed in the socket's current state, such as a REQ socket
    sending twice without receiving the reply (libzmq's ``EFSM``).

    .. versionadded:: 0.1
    """


class NotSupportedError(TrimqError, TypeError):
    """The socket type does not support this operation (e.g. ``recv`` on PUSH).

    .. versionadded:: 0.1
    """


class HostUnreachableError(TrimqError):
    """A ROUTER with ``router_mandatory=True`` was asked to send to an unknown peer.

    .. versionadded:: 0.1
    """


class InvalidEndpointError(TrimqError, ValueError):
    """An endpoint string could not be parsed.

    .. versionadded:: 0.1
    """


class UnsupportedTransportError(InvalidEndpointError):
    """The endpoint names a transport trimq does not implement (e.g. ``pgm://``).

    .. versionadded:: 0.1
    """
