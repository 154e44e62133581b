"""Socket types, their ZMTP names, and which pairs may talk to each other."""

from __future__ import annotations

import enum

__all__ = ["SocketType", "peer_allowed"]


class SocketType(enum.IntEnum):
    """The eleven ZeroMQ socket types, numbered as in libzmq's ``zmq.h``.

    .. versionadded:: 0.1
    """

    PAIR = 0
    PUB = 1
    SUB = 2
    REQ = 3
    REP = 4
    DEALER = 5
    ROUTER = 6
    PULL = 7
    PUSH = 8
    XPUB = 9
    XSUB = 10

    @property
    def zmtp_name(self) -> bytes:
        """The ``Socket-Type`` value sent in READY, e.g. ``b"DEALER"``."""
        return self.name.encode("ascii")

    @classmethod
    def from_zmtp_name(cls, name: bytes) -> SocketType:
        """Parse a ``Socket-Type`` value; raises ``ValueError`` for unknown names."""
        try:
            return cls[name.decode("ascii")]
        except (KeyError, UnicodeDecodeError):
            raise ValueError(f"unknown ZMTP socket type {name!r}") from None


_S = SocketType
_ALLOWED: dict[SocketType, frozenset[SocketType]] = {
    _S.PAIR: frozenset({_S.PAIR}),
    _S.PUB: frozenset({_S.SUB, _S.XSUB}),
    _S.XPUB: frozenset({_S.SUB, _S.XSUB}),
    _S.SUB: frozenset({_S.PUB, _S.XPUB}),
    _S.XSUB: frozenset({_S.PUB, _S.XPUB}),
    _S.REQ: frozenset({_S.REP, _S.ROUTER}),
    _S.REP: frozenset({_S.REQ, _S.DEALER}),
    _S.DEALER: frozenset({_S.REP, _S.DEALER, _S.ROUTER}),
    _S.ROUTER: frozenset({_S.REQ, _S.DEALER, _S.ROUTER}),
    _S.PUSH: frozenset({_S.PULL}),
    _S.PULL: frozenset({_S.PUSH}),
}


def peer_allowed(ours: SocketType, theirs: SocketType) -> bool:
    """True if a socket of type ``ours`` may be connected to one of type ``theirs``
    (libzmq's ``check_socket_type``)."""
    return theirs in _ALLOWED[ours]
