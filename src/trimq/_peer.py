"""Who is at the other end of a connection, as its handshake proved it."""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from .zmtp import SocketType
from .zmtp._keys import z85_encode

__all__ = ["Message", "Peer"]


@attrs.frozen
class Peer:
    """One connected peer, as its handshake identified it.

    What is proven depends on the mechanism: with CURVE, ``public_key`` is the
    peer's long-term key and the handshake proved the peer holds its secret;
    ``user_id`` is whatever the ZAP authenticator vouched for (PLAIN: the
    username it accepted; CURVE with trimq's authenticator: the Z85 key). With
    NULL nothing is proven, and a PLAIN *client* learns nothing about the
    server. Decide what a peer may do from ``public_key`` or ``user_id``, never
    from ``address`` or ``routing_id``, which the peer chooses.

    Attributes:
        transport: ``"tcp"``, ``"ipc"`` or ``"inproc"``.
        address: The remote address (``"10.0.0.5:41234"``, an ipc path); ``""``
            for inproc.
        mechanism: ``"NULL"``, ``"PLAIN"`` or ``"CURVE"`` (inproc: ``"NULL"``).
        user_id: The ZAP user id (libzmq's ``User-Id`` property), ``b""`` if none.
        public_key: CURVE: the peer's long-term public key (32 raw bytes).
        routing_id: The ``Identity`` the peer announced (``b""`` if none).
        socket_type: The peer's socket type.
        metadata: Every property of the peer's handshake, plus the authenticator's.
        pid: ipc: the peer process's id, as the kernel reported it when the
            connection was made (``SO_PEERCRED``; the listening process for
            the side that connected; ``0`` if that process is in another pid
            namespace). ``None`` for tcp and inproc, or where the platform
            cannot tell.
        uid: ipc: the peer process's effective user id, from the kernel like
            ``pid``; unlike ``address`` the peer cannot choose it. ``None``
            where ``pid`` is.
        gid: ipc: the peer process's effective group id; ``None`` where ``pid`` is.

    .. versionadded:: 0.1
    """

    transport: str
    address: str = ""
    mechanism: str = "NULL"
    user_id: bytes = b""
    public_key: bytes | None = None
    routing_id: bytes = b""
    socket_type: SocketType | None = None
    metadata: Mapping[str, bytes] = attrs.field(factory=dict, eq=False, hash=False)
    pid: int | None = None
    uid: int | None = None
    gid: int | None = None

    @property
    def z85_public_key(self) -> bytes | None:
        """``public_key`` as the 40 Z85 characters certificates use, or ``None``."""
        return None if self.public_key is None else z85_encode(self.public_key)


@attrs.frozen
class Message:
    """A received message together with the peer that sent it.

    Returned by :meth:`trimq.Socket.recv_message`.

    Attributes:
        frames: The message's frames.
        peer: Its sender, or ``None`` where no single connection sent it (the
            subscription notices an XPUB reads).

    .. versionadded:: 0.1
    """

    frames: list[bytes]
    peer: Peer | None
