"""The event bus across nodes: each node's PUB, and a SUB to every peer's.

Within a node, events travel as objects on an inproc PUB/SUB pair and are
never dropped. Between nodes each networked node binds a PUB next to each
of its listen endpoints and announces it in its HELLO/WELCOME; every peer
connects a SUB to it (one per peer: each has its own CURVE server key) and
subscribes to the prefixes its local actors subscribed to. An event from a
peer is delivered to local subscribers only, never published on again.

Across nodes events are at most once: a subscriber node whose queue is full,
or that is unreachable, misses them (PUB semantics), so a slow node never
stalls publishers elsewhere.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import trio

from .._peer import Peer
from ..patterns import Context, Socket
from ..transport import parse_endpoint
from ..zmtp import SocketType
from ._codec import Codec, CodecError
from ._security import NodeSecurity, address_host

if TYPE_CHECKING:
    from ._cluster import _Link

__all__ = ["EventBridge", "events_endpoint"]

log = logging.getLogger("trimq.actors")

EVENTS_ZAP_DOMAIN = "trimq.events"


def events_endpoint(listen: str) -> str:
    """Where to bind the events PUB beside the control endpoint ``listen`` (as bound)."""
    ep = parse_endpoint(listen, for_bind=True)
    if ep.transport == "tcp":
        host = f"[{ep.host}]" if ":" in ep.host else ep.host
        return f"tcp://{host}:*"
    return f"{listen}.events"


def _reach(announced: str, link_endpoint: str, peer: Peer | None) -> str:
    # The peer's events endpoint as we can reach it: the announced port on the
    # host we reached it at (a PUB bound to 0.0.0.0 is not an address).
    ep = parse_endpoint(announced, for_bind=True)
    if ep.transport != "tcp":
        return announced
    host = ""
    if link_endpoint:
        host = parse_endpoint(link_endpoint, for_bind=True).host
    elif peer is not None and peer.address:
        host = address_host(peer.address)
    host = host or ep.host
    return f"tcp://[{host}]:{ep.port}" if ":" in host else f"tcp://{host}:{ep.port}"


class EventBridge:
    """A node's events PUB and its SUBs to other nodes."""

    def __init__(
        self,
        context: Context,
        nursery: trio.Nursery,
        security: Callable[[], NodeSecurity],
        codec: Codec,
        options: Callable[[], dict[str, Any]],
        deliver: Callable[[str, object], Awaitable[None]],
    ) -> None:
        self._context = context
        self._nursery = nursery
        self._security = security  # read anew: connects add trusted keys
        self._codec = codec
        self._options = options
        self._deliver = deliver  # hands an event to the local bus
        self._pub: Socket | None = None
        self.endpoints: list[str] = []  # what HELLO/WELCOME announce
        self._prefixes: set[str] = set()
        self._subs: dict[str, tuple[str, Socket]] = {}  # node name -> (endpoint, SUB)

    async def listen(self, control_endpoint: str) -> None:
        """Bind the events PUB beside a control endpoint."""
        if self._pub is None:
            opts = self._options()
            if self._security().secure:
                opts.update(
                    curve_server=True, zap_domain=EVENTS_ZAP_DOMAIN, zap_enforce_domain=True
                )
            self._pub = self._context.socket(SocketType.PUB, **opts)
        self.endpoints.append(await self._pub.bind(events_endpoint(control_endpoint)))

    @property
    def listening(self) -> bool:
        """Whether this node has an events PUB (it listens somewhere)."""
        return self._pub is not None

    @property
    def prefixes(self) -> frozenset[str]:
        """The topic prefixes this node's actors subscribe to."""
        return frozenset(self._prefixes)

    def wants(self, topic: str) -> bool:
        """Whether a local actor subscribes to a prefix of ``topic``."""
        return any(topic.startswith(prefix) for prefix in self._prefixes)

    def publish(self, topic: str, event: object) -> None:
        """Send ``event`` to the subscribed nodes (dropped for those that cannot take it)."""
        if self._pub is None:
            return
        tag, data = self._codec.encode(event)
        # A PUB never blocks: a subscriber whose queue is full misses the event.
        self._pub.send_multipart_nowait([topic.encode(), tag, data])

    def subscribe(self, prefix: str) -> None:
        """Receive ``prefix`` events from every peer node."""
        self._prefixes.add(prefix)
        for _, sub in self._subs.values():
            sub.subscribe(prefix.encode())

    def unsubscribe(self, prefix: str) -> None:
        """Stop receiving ``prefix`` events."""
        self._prefixes.discard(prefix)
        for _, sub in self._subs.values():
            if not sub.closed:
                sub.unsubscribe(prefix.encode())

    def peer_known(self, link: _Link, announced: list[Any], peer: Peer | None) -> None:
        """A peer node told us where its events are: subscribe to them (once)."""
        if not self._security().may(peer, "publish"):
            return  # its events would be dropped anyway: do not even listen
        wanted = [a for a in announced if isinstance(a, str)]
        transport = "ipc" if link.endpoint.startswith("ipc://") else "tcp"
        wanted = [a for a in wanted if a.startswith(f"{transport}://")] or wanted
        if not wanted:
            return
        try:
            endpoint = _reach(wanted[0], link.endpoint, peer)
        except ValueError:
            log.warning("node %r announced a bad events endpoint %r", link.name, wanted[0])
            return
        known = self._subs.get(link.name)
        if known is not None and known[0] == endpoint:
            return
        if known is not None:
            known[1]._close_now()  # it restarted elsewhere
        opts = self._options()
        if self._security().secure:
            if peer is None or peer.public_key is None:
                return
            opts["curve_serverkey"] = peer.public_key
        sub = self._context.socket(SocketType.SUB, **opts)
        for prefix in self._prefixes:
            sub.subscribe(prefix.encode())
        self._subs[link.name] = (endpoint, sub)
        self._nursery.start_soon(self._serve, sub, endpoint, link.name)

    async def _serve(self, sub: Socket, endpoint: str, node: str) -> None:
        await sub.connect(endpoint)
        while True:
            try:
                message = await sub.recv_message()
            except trio.ClosedResourceError:
                return
            if len(message.frames) != 3:
                continue
            raw_topic, tag, data = message.frames
            security = self._security()
            if not security.may(message.peer, "publish"):
                continue
            try:
                event = security.decode(self._codec, tag, data, message.peer)
            except CodecError as exc:
                log.warning("dropped an event from node %r: %s", node, exc)
                continue
            await self._deliver(raw_topic.decode(errors="replace"), event)
