"""The remote verbs: what a node asks of other nodes, and how it answers them.

:class:`Cluster` is the network half's top: the local half (``_runtime``)
calls its public methods to reach actors on other nodes, and it serves
other nodes' requests through :class:`LocalNode`, the declared boundary
(``_local``). Every message is decoded once, in :meth:`Cluster.receive`;
the right it needs from its sender is looked up in ``_NEEDS``, and its
handler in the dispatch table that ``Cluster.__init__`` builds: both are
tables, one line per kind.

The verbs that act on actors (tell, ask, stop, lookup) are here, both ends;
supervision across nodes is in ``_remote_children``, monitors in
``_remote_monitors``, events in ``_events``; links and their handshake in
``_link``, request ids and replies in ``_calls``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import trio

from .._errors import HostUnreachableError, RemoteProtocolError
from . import _wire as wire
from ._calls import Calls
from ._errors import ActorNotFoundError, ActorStoppedError
from ._events import EventBridge
from ._flow import Backlog, wait_for_credit
from ._link import Link, NetworkOptions, NodeRef, who
from ._links import Links
from ._local import LocalNode
from ._ref import ActorRef
from ._remote_children import RemoteChildren
from ._remote_monitors import RemoteMonitors

if TYPE_CHECKING:
    from .._peer import Peer
    from ..patterns import Context
    from ._local import PendingReply
    from ._security import NodeSecurity

__all__ = ["Cluster"]

#: A message kind's handler: the link it came on, the envelope, the sender's peer.
Handler = Callable[[Link, wire.Envelope, "Peer | None"], Awaitable[None]]

log = logging.getLogger("trimq.actors")

TELLS_PER_YIELD = 64  # as sockets' sends do (patterns._socket.YIELD_EVERY)

# The right (see _security.RIGHTS) each request needs from the sending node.
_NEEDS: dict[bytes, str] = {
    wire.CALL: "ask",
    wire.CANCEL: "ask",
    wire.LOOKUP: "ask",
    wire.SPAWN: "spawn",
    wire.STOP: "spawn",
    wire.MONITOR: "ask",
    wire.DEMONITOR: "ask",
    wire.DOWN: "ask",
    wire.CHILD_EXIT: "ask",
    wire.SUPERVISE: "spawn",
    wire.EVENT: "publish",
    wire.TOPICS: "subscribe",
}


class Cluster:
    """The networked part of a node (see ``open_node(listen=...)``)."""

    def __init__(
        self,
        local: LocalNode,
        context: Context,
        nursery: trio.Nursery,
        security: NodeSecurity,
        options: NetworkOptions,
    ) -> None:
        self._local = local
        self._codec = local.codec  # read once: it is on every message's path
        self._nursery = nursery
        self._timeout = options.timeout
        self._links = links = Links(self, local, context, nursery, security, options)
        self._calls = calls = Calls(links, local.codec, local.name)
        self.events = EventBridge(links, local, context, nursery)
        self.children = RemoteChildren(links, calls, local, nursery, options)
        self.monitors = RemoteMonitors(links, calls, local, options.limits)
        self._limits = options.limits
        self._backlog = Backlog(links, local, nursery, options.limits, self._accepted, self._failed)
        self._tells = 0
        #: What each message kind does here (its right is in _NEEDS).
        self._handlers: dict[bytes, Handler] = {
            wire.CALL: self._on_call,
            wire.CANCEL: self._on_cancel,
            wire.REPLY: self._on_reply,
            wire.STOP: self._on_stop,
            wire.LOOKUP: self._on_lookup,
            wire.PING: self._on_ping,
            wire.BYE: self._on_bye,
            wire.CREDIT: self._on_credit,
            wire.SPAWN: self.children.on_spawn,
            wire.SUPERVISE: self.children.on_supervise,
            wire.CHILD_EXIT: self.children.on_child_exit,
            wire.MONITOR: self.monitors.on_monitor,
            wire.DEMONITOR: self.monitors.on_demonitor,
            wire.DOWN: self.monitors.on_down,
            wire.EVENT: self.events.on_event,
            wire.TOPICS: self.events.on_topics,
        }

    # ------------------------------------------------------------------ joining

    async def listen(self, endpoint: str) -> str:
        """Bind the control ROUTER at ``endpoint``, and the events PUB beside it;
        returns the endpoint bound."""
        bound = await self._links.listen(endpoint)
        await self.events.listen(bound)
        return bound

    async def connect(self, endpoint: str, key: bytes | None) -> NodeRef:
        """Join the node listening at ``endpoint`` (see :meth:`Node.connect`)."""
        return await self._links.connect(endpoint, key)

    @property
    def peers(self) -> list[NodeRef]:
        """The nodes currently reachable."""
        return self._links.peers

    @property
    def hosts(self) -> list[NodeRef]:
        """The reachable nodes trusted to host this node's actors (placement)."""
        return self._links.hosts

    @property
    def endpoints(self) -> list[str]:
        """Where this node listens, as bound."""
        return self._links.endpoints

    async def aclose(self) -> None:
        """Tell peers we are leaving."""
        await self._links.aclose()

    # ------------------------------------------------------------------ calls

    async def tell(
        self, ref: ActorRef, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        """Deliver a message to an actor on another node, without a reply.

        Waits while the link's queue is full (backpressure), up to the node
        timeout.

        Raises:
            ActorNotFoundError: Its node is not reachable.
            ActorStoppedError: The message could not be sent.
        """
        link = self._links.get(ref.node)
        payload = self._codec.encode((args, kwargs))
        frames = wire.encode_envelope(wire.Call(actor=ref.name, method=method), payload)
        if not link.has_credit:
            await wait_for_credit(link, self._timeout)
        # As a socket send: a cancellation check each time, a schedule point
        # every TELLS_PER_YIELD tells (so that tells batch into few writes), and a
        # wait for room when the link's queue is full (backpressure), bounded
        # by the node timeout.
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            link.send(frames)
        except trio.WouldBlock:
            with trio.move_on_after(self._timeout):
                try:
                    await link.asend(frames)
                except (trio.ClosedResourceError, HostUnreachableError):
                    pass
                else:
                    link.sent += 1
                    return
            raise ActorStoppedError(
                f"node {ref.node!r} took no message for {self._timeout} s (lost or stalled)"
            ) from None
        except (trio.ClosedResourceError, HostUnreachableError):
            raise ActorStoppedError(f"node {ref.node!r} is not reachable now") from None
        link.sent += 1
        self._tells += 1
        if not self._tells % TELLS_PER_YIELD:
            await trio.lowlevel.cancel_shielded_checkpoint()

    async def ask(
        self,
        ref: ActorRef,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None,
    ) -> Any:
        """Ask an actor on another node and return its handler's result.

        Raises:
            TimeoutError: ``timeout`` expired (the remote handler is cancelled).
            ActorNotFoundError: Its node is not reachable, or has no such actor.
            ActorStoppedError: Its node was lost before answering.
            Exception: Whatever the handler raised (see ``_calls``).
        """
        payload = self._codec.encode((args, kwargs))
        link = self._links.get(ref.node)
        if not link.has_credit:
            await wait_for_credit(link, self._timeout)
        try:
            env, peer = await self._calls.request(
                ref.node, wire.Call(actor=ref.name, method=method), payload, timeout
            )
        except trio.TooSlowError:
            raise TimeoutError(
                f"actor {ref.name!r} on node {ref.node!r} did not answer {method}() within "
                f"{timeout} s; its handler was cancelled"
            ) from None
        return self._calls.outcome(env, peer)

    async def stop(self, ref: ActorRef, *, kill: bool) -> None:
        """Stop (or kill) an actor on another node; returns once it stopped.

        Raises:
            ActorNotFoundError: No such actor, or its node is not reachable.
        """
        env, peer = await self._calls.request(
            ref.node, wire.Stop(actor=ref.name, kill=kill), None, None
        )
        self._calls.outcome(env, peer)

    async def lookup(self, name: str) -> ActorRef | None:
        """Ask every reachable node for an actor called ``name``; the first found."""
        for link in list(self._links.alive()):
            try:
                env, _ = await self._calls.request(
                    link.name, wire.Lookup(name=name), None, self._timeout
                )
            except (ActorNotFoundError, ActorStoppedError, trio.TooSlowError):
                continue
            if env.head(wire.Reply).found:
                return ActorRef(link.name, name)
        return None

    # ------------------------------------------------------------------ from the links

    async def receive(self, link: Link, frames: list[bytes], peer: Peer | None) -> None:
        """A message from ``link``: decoded, its sender's right checked, handled."""
        try:
            env = wire.decode_envelope(frames)
        except RemoteProtocolError as exc:
            log.warning("node %r: dropped a message from %s: %s", self._local.name, who(peer), exc)
            return
        kind = env.kind
        # Nothing a peer sends may raise out of the task that reads the link:
        # every handler contains what it expects, and this catches the rest
        # (a bug, most likely), so that one message is lost and not the node.
        try:
            if kind == wire.HELLO or kind == wire.WELCOME or kind == wire.WHO or not link.name:
                self._links.handshake(link, env, peer)
                return
            self._links.seen(link)
            handler = self._handlers.get(kind)
            if handler is None:
                return
            right = _NEEDS.get(kind)
            if right is not None and not self._links.security.may(peer, right):
                self._deny(link, env, peer, right)
                return
            await handler(link, env, peer)
        except Exception:
            log.exception(
                "node %r: a %r message from %s failed here; it is dropped, the link kept",
                self._local.name,
                kind.decode(),
                who(peer),
            )

    def about(self) -> dict[str, Any]:
        """What HELLO and WELCOME say besides name and tags (see ``LinkOwner``)."""
        return self.events.about()

    def greeted(self, link: Link, env: wire.Envelope, peer: Peer | None) -> None:
        """A peer named itself (see ``LinkOwner``)."""
        self.events.greeted(link, env, peer)

    def found(self, link: Link) -> None:
        """A peer is reachable again (see ``RemoteChildren.found``)."""
        self.children.found(link)

    def lost(self, link: Link, why: str) -> None:
        """A peer is gone: fail what waits on it, and tell the local node."""
        self._calls.lost(link, why)
        self.monitors.lost(link)
        self.children.lost(link)
        self._local.node_lost(link.name, why)

    def forgot(self, link: Link) -> None:
        """A long-lost peer is forgotten: its events SUB and queued calls go too."""
        self.events.forget(link.name)
        self._backlog.forget(link)

    def _deny(self, link: Link, env: wire.Envelope, peer: Peer | None, right: str) -> None:
        what = env.kind.decode()
        log.warning(
            "node %r: refused a %r message from node %r (%s): it lacks the %r right",
            self._local.name,
            what,
            link.name,
            who(peer),
            right,
        )
        rid = env.header.id if isinstance(env.header, wire.Request) else None
        if rid is not None:
            error = PermissionError(
                f"node {self._local.name!r} does not let node {link.name!r} {what} "
                f"(it lacks the {right!r} right: see allow= on that node)"
            )
            self._calls.reply(link, rid, error=error)

    # ------------------------------------------------------------------ handlers

    async def _on_call(self, link: Link, env: wire.Envelope, peer: Peer | None) -> None:
        # Never waits (see _flow): this task reads the link.
        header = env.head(wire.Call)
        rid = header.id
        try:
            if rid is not None and self._calls.serving(link) >= self._limits.asks:
                raise ActorStoppedError(
                    f"node {self._local.name!r} is answering {self._limits.asks} asks from "
                    f"node {link.name!r} already (its PeerLimits.asks): try again later"
                )
            args, kwargs = self._calls.arguments(env, peer)
        except Exception as exc:
            self._backlog.refuse(link, rid, exc)
            return
        self._backlog.offer(link, header.actor, header.method, args, kwargs, rid)

    def _accepted(self, link: Link, rid: int | None, reply: PendingReply | None) -> None:
        # A mailbox took a call from ``link`` (or it was handled at once).
        if reply is None or rid is None:
            return
        if reply.done.is_set():  # handled already, in this task
            self._calls.reply(link, rid, reply.value, reply.error)
            return
        self._calls.serve(link, rid, reply)

    def _failed(self, link: Link, rid: int | None, exc: Exception) -> None:
        if rid is None:
            log.warning("node %r: a tell from node %r failed: %r", self._local.name, link.name, exc)
        else:
            self._calls.reply(link, rid, error=exc)

    async def _on_credit(self, link: Link, env: wire.Envelope, peer: Peer | None) -> None:
        header = env.head(wire.Credit)
        link.credited(header.epoch, header.delivered)

    async def _on_cancel(self, link: Link, env: wire.Envelope, peer: Peer | None) -> None:
        self._calls.cancel(link, env.head(wire.Cancel).id)

    async def _on_reply(self, link: Link, env: wire.Envelope, peer: Peer | None) -> None:
        self._calls.settle(link, env, peer)

    async def _on_stop(self, link: Link, env: wire.Envelope, peer: Peer | None) -> None:
        self._nursery.start_soon(self._stop_here, link, env)

    async def _stop_here(self, link: Link, env: wire.Envelope) -> None:
        header = env.head(wire.Stop)
        try:
            await self._local.stop_here(header.actor, kill=header.kill)
        except Exception as exc:
            self._calls.reply(link, header.id, error=exc)
            return
        self._calls.reply(link, header.id)

    async def _on_lookup(self, link: Link, env: wire.Envelope, peer: Peer | None) -> None:
        header = env.head(wire.Lookup)
        self._calls.reply(link, header.id, found=self._local.hosts(header.name))

    async def _on_ping(self, link: Link, env: wire.Envelope, peer: Peer | None) -> None:
        # receive() already noted that the peer is alive; a PING carries credit too.
        header = env.head(wire.Ping)
        link.credited(header.epoch, header.delivered)

    async def _on_bye(self, link: Link, env: wire.Envelope, peer: Peer | None) -> None:
        log.info("node %r: node %r left", self._local.name, link.name)
        self._links.lose(link, f"node {link.name!r} closed")
