"""The inproc transport: sockets of one Context linked by shared in-memory queues.

No ZMTP, no encoding: a message is the same ``list[bytes]`` object on both
sides. Connect-before-bind works, as in libzmq 4: the connecting side gets its
pipe at once and messages wait in it until somebody binds the name.
"""

from __future__ import annotations

import errno
import functools
import logging
import types
from collections.abc import Mapping

import attrs

from .._errors import NotSupportedError
from .._monitor import EventType
from .._peer import Peer
from ..zmtp import SocketType, peer_allowed
from ._owner import PipeOwner
from ._pipe import Pipe, inproc_pipe_pair

__all__ = ["InprocRegistry"]

log = logging.getLogger("trimq.transport")


def _pair_hwm(sndhwm: int, rcvhwm: int) -> int:
    # libzmq sizes an inproc pipe as sender's SNDHWM + receiver's RCVHWM; 0 is "no limit".
    return 0 if sndhwm == 0 or rcvhwm == 0 else sndhwm + rcvhwm


@attrs.define(eq=False)
class _Pending:
    owner: PipeOwner
    pipe: Pipe  # the connector's own pipe, already attached
    far: Pipe  # the half the binder will attach
    attached: bool  # whether ``pipe`` is attached to its socket yet


@attrs.define
class InprocRegistry:
    """Names bound with ``inproc://`` in one Context, and connects waiting for them."""

    _bound: dict[str, PipeOwner] = attrs.field(factory=dict)
    _pending: dict[str, list[_Pending]] = attrs.field(factory=dict)

    def is_bound(self, name: str) -> bool:
        """Whether a socket is bound at ``inproc://name``."""
        return name in self._bound

    def bind(self, name: str, owner: PipeOwner) -> None:
        """Claim ``name``; attach any connects that were waiting for it."""
        if name in self._bound:
            raise OSError(errno.EADDRINUSE, f"inproc://{name} is already bound in this Context")
        self._bound[name] = owner
        for pending in self._pending.pop(name, []):
            connector, mine = pending.owner, pending.pipe
            if not peer_allowed(owner.socket_type, connector.socket_type):
                reason = _mismatch(connector.socket_type, owner.socket_type)
                log.warning("inproc://%s: %s", name, reason)
                connector.emit(EventType.HANDSHAKE_FAILED_PROTOCOL, mine.endpoint, "", reason)
                connector.detach_pipe(mine)
                continue
            if mine.alive:
                if owner.conflates:
                    mine.outq.set_conflate()
                    mine.inq.set_conflate()
                elif not connector.conflates:
                    # Now the binder's HWMs are known, add them (libzmq's "hwm boost").
                    copts, bopts = connector.options, owner.options
                    mine.outq.hwm = _pair_hwm(copts.sndhwm, bopts.rcvhwm)
                    mine.inq.hwm = _pair_hwm(bopts.sndhwm, copts.rcvhwm)
                self._link(owner, pending.far, connector, mine, attached=pending.attached)
                mine.outq.notify_space()

    def unbind(self, name: str, owner: PipeOwner) -> None:
        """Release ``name`` (existing pipes stay connected, as in libzmq)."""
        if self._bound.get(name) is owner:
            del self._bound[name]

    def connect(self, name: str, owner: PipeOwner, endpoint: str = "") -> Pipe | None:
        """Link ``owner`` to the socket bound at ``name`` (now, or once it binds).

        ``endpoint`` is ``"inproc://" + name``, if the caller has it already.
        Returns the connector's pipe, or None if the socket refused it.
        """
        endpoint = endpoint or f"inproc://{name}"
        binder = self._bound.get(name)
        opts = owner.options
        if binder is None:
            # Until the binder exists only our own HWMs apply, as in libzmq.
            mine, far = inproc_pipe_pair(
                opts.sndhwm,
                opts.rcvhwm,
                endpoint,
                conflate=owner.conflates,
            )
            far.identity = opts.routing_id
            # Queue before the peer exists, unless immediate=True or the socket
            # needs the peer's identity first (ROUTER).
            attached = owner.pipe_before_connect()
            if attached and not owner.attach_pipe(mine):
                return None
            self._pending.setdefault(name, []).append(_Pending(owner, mine, far, attached))
            owner.emit(EventType.CONNECT_DELAYED, endpoint)
            return mine
        if not peer_allowed(owner.socket_type, binder.socket_type):
            raise NotSupportedError(_mismatch(owner.socket_type, binder.socket_type))
        bopts = binder.options
        mine, far = inproc_pipe_pair(
            _pair_hwm(opts.sndhwm, bopts.rcvhwm),
            _pair_hwm(bopts.sndhwm, opts.rcvhwm),
            endpoint,
            conflate=owner.conflates or binder.conflates,
        )
        far.identity = opts.routing_id
        self._link(binder, far, owner, mine, attached=False)
        return mine if mine.alive else None

    def _link(
        self, binder: PipeOwner, far: Pipe, connector: PipeOwner, mine: Pipe, *, attached: bool
    ) -> None:
        endpoint = far.endpoint
        mine.identity = binder.options.routing_id
        mine.peer = _inproc_peer(mine.identity, binder.socket_type)
        far.peer = _inproc_peer(far.identity, connector.socket_type)
        if not attached and not connector.attach_pipe(mine):
            mine.alive = False
            return
        if not binder.attach_pipe(far):
            connector.detach_pipe(mine)
            return
        # Either side going away ends the other's pipe too.
        far.other = mine
        mine.other = far
        binder.emit(EventType.ACCEPTED, endpoint)
        binder.emit(EventType.HANDSHAKE_SUCCEEDED, endpoint)
        connector.emit(EventType.CONNECTED, endpoint)
        connector.emit(EventType.HANDSHAKE_SUCCEEDED, endpoint)


@functools.lru_cache(maxsize=256)
def _inproc_peer(routing_id: bytes, socket_type: SocketType) -> Peer:
    # inproc has no handshake and no security: both ends are this process. Peers
    # are immutable, so equal ones are shared (mailboxes come by the hundred thousand).
    return Peer("inproc", routing_id=routing_id, socket_type=socket_type, metadata=_NO_METADATA)


_NO_METADATA: Mapping[str, bytes] = types.MappingProxyType({})


def _mismatch(ours: SocketType, theirs: SocketType) -> str:
    return f"incompatible socket types: {ours.name} cannot talk to {theirs.name}"
