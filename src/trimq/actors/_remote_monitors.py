"""Monitors across nodes: watching an actor on another node, and being watched from one.

A local watcher of a remote actor sends MONITOR; that node answers DOWN
once the actor's incarnation ends, or at once ("not running") if it does
not run there. The loss of the node counts as the end of every actor
watched there ("node lost"). The other way round, a remote watcher of a
local actor is kept by the local half (``_watch``) and told through
:meth:`RemoteMonitors.notify_down`. Both ends of each verb are here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import _wire as wire
from ._exit import ExitReason
from ._ref import ActorRef

if TYPE_CHECKING:
    from .._peer import Peer
    from ._calls import Calls
    from ._flow import PeerLimits
    from ._link import Link
    from ._links import Links
    from ._local import LocalNode

__all__ = ["RemoteMonitors"]


class RemoteMonitors:
    """Local watchers of actors on other nodes, and DOWN notices both ways."""

    def __init__(self, links: Links, calls: Calls, local: LocalNode, limits: PeerLimits) -> None:
        self._links = links
        self._calls = calls
        self._local = local
        self._limit = limits.monitors
        # Monitors other nodes set here: node name -> {(watcher, target)}, so
        # that each is bounded (PeerLimits.monitors) and goes with its node.
        self._from: dict[str, set[tuple[str, str]]] = {}
        # Monitors of actors on other nodes: node name -> {(watcher, target)}.
        self._watching: dict[str, set[tuple[ActorRef, ActorRef]]] = {}

    def monitor(self, watcher: ActorRef, target: ActorRef) -> None:
        """Watch an actor on another node; a lost node counts as its end."""
        link = self._links.find(target.node)
        if link is None or not link.alive:
            self._local.down(watcher, target, ExitReason("node lost" if link else "not running"))
            return
        self._watching.setdefault(target.node, set()).add((watcher, target))
        # Never dropped: a lost MONITOR would leave the watcher waiting for good.
        header = wire.Monitor(actor=target.name, watcher=watcher.name)
        self._links.send_surely(link, wire.encode_envelope(header))

    def demonitor(self, watcher: ActorRef, target: ActorRef) -> None:
        """Stop watching an actor on another node."""
        self._watching.get(target.node, set()).discard((watcher, target))
        link = self._links.find(target.node)
        if link is not None and link.alive:
            self._links.send(link, wire.Demonitor(actor=target.name, watcher=watcher.name))

    def notify_down(self, watcher: ActorRef, target: ActorRef, reason: ExitReason) -> None:
        """Tell a watcher on another node that a local actor ended."""
        link = self._links.find(watcher.node)
        if link is None or not link.alive:
            return  # that node is gone, and its watchers with it
        self._from.get(watcher.node, set()).discard((watcher.name, target.name))
        error, payload = self._calls.box_reason(reason)
        header = wire.Down(actor=target.name, watcher=watcher.name, kind=reason.kind, error=error)
        # Never dropped while the node is reachable: the watcher waits for it.
        self._links.send_surely(link, wire.encode_envelope(header, payload))

    def lost(self, link: Link) -> None:
        """``link``'s node is gone: every actor watched there counts as ended."""
        for watcher, target in self._watching.pop(link.name, set()):
            self._local.down(watcher, target, ExitReason("node lost"))
        self._from.pop(link.name, None)  # the local half forgets them too (node_lost)

    # ------------------------------------------------------------------ answering

    async def on_monitor(self, link: Link, env: wire.Envelope, peer: Peer | None) -> None:
        """MONITOR: a watcher on ``link``'s node wants to hear of a local actor's end."""
        if self._local.closing:
            return  # the watcher hears that this node left ("node lost"), for all
        header = env.head(wire.Monitor)
        watcher = ActorRef(link.name, header.watcher)
        mine = self._from.setdefault(link.name, set())
        pair = (header.watcher, header.actor)
        # Beyond its limit a node's monitor is answered at once, as for an
        # actor that is not running: its watcher waits for nothing.
        if (len(mine) >= self._limit and pair not in mine) or not self._local.watch(
            watcher, header.actor
        ):
            down = wire.Down(actor=header.actor, watcher=watcher.name, kind="not running")
            self._links.send(link, down)
            return
        mine.add(pair)

    async def on_demonitor(self, link: Link, env: wire.Envelope, peer: Peer | None) -> None:
        """DEMONITOR: undo a MONITOR."""
        header = env.head(wire.Demonitor)
        self._from.get(link.name, set()).discard((header.watcher, header.actor))
        self._local.unwatch(ActorRef(link.name, header.watcher), header.actor)

    async def on_down(self, link: Link, env: wire.Envelope, peer: Peer | None) -> None:
        """DOWN: an actor we watch on ``link``'s node ended."""
        header = env.head(wire.Down)
        watcher = ActorRef(self._local.name, header.watcher)
        target = ActorRef(link.name, header.actor)
        watched = self._watching.get(link.name, set())
        if (watcher, target) not in watched:
            return  # demonitored meanwhile
        watched.discard((watcher, target))
        self._local.down(watcher, target, self._calls.unbox_reason(env, peer))
