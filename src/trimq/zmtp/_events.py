"""Events that :meth:`ZmtpConnection.receive_data` returns.

A complete data message is a plain ``list[bytes]`` (:data:`Frames`) rather than
a wrapper object: messages are by far the most common event, and skipping an
allocation per message is measurable at the throughput trimq aims for. The
rarer events are small frozen attrs classes; tell them apart with
``type(event) is list`` or ``match``.
"""

from __future__ import annotations

from typing import TypeAlias

import attrs

from ._sockettype import SocketType

__all__ = [
    "AuthRequest",
    "Cancel",
    "Event",
    "Frames",
    "HandshakeComplete",
    "Ping",
    "Pong",
    "Subscribe",
]

Frames: TypeAlias = list[bytes]
"""A complete multipart data message: one ``bytes`` per frame, never empty."""


@attrs.frozen
class HandshakeComplete:
    """The peer finished the ZMTP handshake; data may now flow both ways.

    Attributes:
        peer_socket_type: The peer's ``Socket-Type`` (already checked against ours).
        peer_identity: The peer's ``Identity`` property, or ``b""`` if it sent none.
        peer_metadata: Every property the peer sent in its handshake, keyed by the
            exact (case-sensitive) name, e.g. ``{"Socket-Type": b"DEALER"}``.
        peer_minor: 0 for a ZMTP 3.0 peer, 1 for ZMTP 3.1 (or newer).
        mechanism: The security mechanism: ``b"NULL"``, ``b"PLAIN"`` or ``b"CURVE"``.
        user_id: The identity the authenticator vouched for (ZAP's user id,
            libzmq's ``User-Id`` property); ``b""`` if none.
        peer_key: CURVE: the peer's long-term public key, proven by the
            handshake (the client's key on a server, the server's on a client).

    .. versionadded:: 0.1
    """

    peer_socket_type: SocketType
    peer_identity: bytes
    peer_metadata: dict[str, bytes]
    peer_minor: int
    mechanism: bytes = b"NULL"
    user_id: bytes = b""
    peer_key: bytes | None = None


@attrs.frozen
class AuthRequest:
    """The mechanism needs the peer's credentials checked before it goes on.

    Answer with :meth:`ZmtpConnection.auth_result` (typically after asking the
    ZAP handler); until then the handshake waits.

    Attributes:
        mechanism: ``b"NULL"``, ``b"PLAIN"`` or ``b"CURVE"``.
        credentials: ``()`` for NULL, ``(username, password)`` for PLAIN, the
            client's 32-byte long-term public key for CURVE.

    .. versionadded:: 0.1
    """

    mechanism: bytes
    credentials: tuple[bytes, ...]


@attrs.frozen
class Ping:
    """The peer sent a heartbeat PING. A PONG reply is already queued.

    Attributes:
        ttl: How long (seconds) the peer wants us to wait for traffic from it
            before giving up on the connection; 0 means no limit.
        context: Up to 16 opaque bytes, echoed in the PONG.

    .. versionadded:: 0.1
    """

    ttl: float
    context: bytes


@attrs.frozen
class Pong:
    """The peer answered one of our PINGs.

    Attributes:
        context: The context bytes of the PING being answered.

    .. versionadded:: 0.1
    """

    context: bytes


@attrs.frozen
class Subscribe:
    """A subscriber asked for messages starting with ``topic`` (PUB/XPUB only).

    Only the ZMTP 3.1 SUBSCRIBE command produces this event. A ZMTP 3.0 peer
    subscribes with a data message ``b"\\x01" + topic`` instead, which arrives
    as an ordinary :data:`Frames` message.

    Attributes:
        topic: The prefix to match; ``b""`` means everything.

    .. versionadded:: 0.1
    """

    topic: bytes


@attrs.frozen
class Cancel:
    """A subscriber withdrew a subscription (PUB/XPUB only).

    As with :class:`Subscribe`, a ZMTP 3.0 peer sends ``b"\\x00" + topic`` as a
    data message instead.

    Attributes:
        topic: The prefix being cancelled.

    .. versionadded:: 0.1
    """

    topic: bytes


Event: TypeAlias = Frames | HandshakeComplete | AuthRequest | Ping | Pong | Subscribe | Cancel
"""Anything :meth:`ZmtpConnection.receive_data` can return."""
