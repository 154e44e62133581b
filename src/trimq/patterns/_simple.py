"""PUSH, PULL, PAIR and DEALER: load-balance out, fair-queue in."""

from __future__ import annotations

from typing import ClassVar

from ..transport import Pipe
from ..zmtp import SocketType
from ._socket import Socket

__all__ = ["Dealer", "Pair", "Pull", "Push"]


class Push(Socket):
    """PUSH: each message goes to the next peer with room (round robin); waits when all are full."""

    socket_type: ClassVar[SocketType] = SocketType.PUSH
    _can_recv = False

    _xsend = Socket._lb_send


class Pull(Socket):
    """PULL: receives from every peer in turn (fair queueing)."""

    socket_type: ClassVar[SocketType] = SocketType.PULL
    _can_send = False

    _xrecv = Socket._fq_recv


class Dealer(Socket):
    """DEALER: load-balances out, fair-queues in; no envelopes added or removed."""

    socket_type: ClassVar[SocketType] = SocketType.DEALER

    _xsend = Socket._lb_send

    _xrecv = Socket._fq_recv


class Pair(Socket):
    """PAIR: exactly one peer; later peers are refused while it is attached."""

    socket_type: ClassVar[SocketType] = SocketType.PAIR

    def _xattach(self, pipe: Pipe) -> bool:
        return not self.pipes

    _xsend = Socket._lb_send

    _xrecv = Socket._fq_recv
