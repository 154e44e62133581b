"""The event bus across nodes: each node's PUB, a SUB to every peer's, or EVENT messages.

Within a node, events travel as objects on an inproc PUB/SUB pair and are
never dropped (see ``_bus``). Between nodes each networked node binds a PUB
next to each of its listen endpoints and announces it in its HELLO/WELCOME;
every peer connects a SUB to it (one per peer: each has its own CURVE
server key) and subscribes to the prefixes its local actors subscribed to.
A node that listens nowhere has no PUB: it sends its events as EVENT
messages on its links instead, to the peers whose actors subscribe to them
(HELLO, WELCOME and TOPICS say which). An event from a peer is delivered to
local subscribers only, never published on again.

Across nodes events are at most once: a subscriber node whose queue is full,
or that is unreachable, misses them (PUB semantics), so a slow node never
stalls publishers elsewhere.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import trio

from ..transport import parse_endpoint
from ..zmtp import SocketType
from . import _wire as wire
from ._codec import CodecError
from ._security import EVENTS_ZAP_DOMAIN, address_host

if TYPE_CHECKING:
    from .._peer import Peer
    from ..patterns import Context, Socket
    from ._link import Link
    from ._links import Links
    from ._local import LocalNode

__all__ = ["EventBridge", "events_endpoint"]

log = logging.getLogger("trimq.actors")


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
        parse_endpoint(announced)  # the connect parser refuses what we cannot reach
        return announced
    host = ""
    if link_endpoint:
        host = parse_endpoint(link_endpoint, for_bind=True).host
    elif peer is not None and peer.address:
        host = address_host(peer.address)
    host = host or ep.host
    endpoint = f"tcp://[{host}]:{ep.port}" if ":" in host else f"tcp://{host}:{ep.port}"
    parse_endpoint(endpoint)  # the connect parser: no wildcard, a real port
    return endpoint


class EventBridge:
    """A node's events PUB and its SUBs to other nodes, or its EVENT messages."""

    def __init__(
        self, links: Links, local: LocalNode, context: Context, nursery: trio.Nursery
    ) -> None:
        self._links = links  # its security is read anew: connects add trusted keys
        self._local = local
        self._codec = local.codec  # read once: it is on every event's path
        self._context = context
        self._nursery = nursery
        self._pub: Socket | None = None
        self.endpoints: list[str] = []  # what HELLO/WELCOME announce
        self._prefixes: set[str] = set()
        self._subs: dict[str, tuple[str, Socket]] = {}  # node name -> (endpoint, SUB)

    async def listen(self, control_endpoint: str) -> None:
        """Bind the events PUB beside a control endpoint."""
        if self._pub is None:
            opts = self._links.socket_options()
            if self._links.security.secure:
                opts.update(
                    curve_server=True, zap_domain=EVENTS_ZAP_DOMAIN, zap_enforce_domain=True
                )
            self._pub = self._context.socket(SocketType.PUB, **opts)
        self.endpoints.append(await self._pub.bind(events_endpoint(control_endpoint)))

    @property
    def prefixes(self) -> frozenset[str]:
        """The topic prefixes this node's actors subscribe to."""
        return frozenset(self._prefixes)

    def about(self) -> dict[str, Any]:
        """What HELLO and WELCOME say about events: our PUB's endpoints, our prefixes."""
        return {"events": self.endpoints, "topics": sorted(self._prefixes)}

    # ------------------------------------------------------------------ sending

    def publish(self, topic: str, event: object) -> None:
        """Send ``event`` to the nodes subscribed to it, at most once.

        Through our events PUB if we listen; else (we only connect) as an
        EVENT on each link whose node subscribes to a prefix of ``topic``.
        Either way a node that cannot take it now misses it.

        Raises:
            CodecError: ``event`` cannot be encoded.
        """
        if self._pub is not None:
            tag, data = self._codec.encode(event)
            # A PUB never blocks: a subscriber whose queue is full misses the event.
            self._pub.send_multipart_nowait([topic.encode(), tag, data])
            return
        links = [
            link
            for link in self._links.alive()
            if any(topic.startswith(prefix) for prefix in link.topics)
        ]
        if links:
            payload = self._codec.encode(event)
            for link in links:
                self._links.send(link, wire.Event(topic=topic), payload)

    def subscribe(self, prefix: str) -> None:
        """Receive ``prefix`` events from every peer node.

        Raises:
            ValueError: The node's actors subscribe to :data:`~._wire.MAX_TOPICS`
                prefixes already (what a peer accepts from one node), or
                ``prefix`` is longer than :data:`~._wire.MAX_NAME`.
        """
        if prefix not in self._prefixes:
            if len(self._prefixes) >= wire.MAX_TOPICS:
                raise ValueError(
                    f"this node's actors subscribe to {wire.MAX_TOPICS} topic prefixes "
                    "already, the most its peers accept: subscribe to shorter, wider prefixes"
                )
            if len(prefix) > wire.MAX_NAME:
                raise ValueError(f"a topic prefix is at most {wire.MAX_NAME} characters")
        self._prefixes.add(prefix)
        for _, sub in self._subs.values():
            sub.subscribe(prefix.encode())
        self._tell_topics()

    def unsubscribe(self, prefix: str) -> None:
        """Stop receiving ``prefix`` events."""
        self._prefixes.discard(prefix)
        for _, sub in self._subs.values():
            if not sub.closed:
                sub.unsubscribe(prefix.encode())
        self._tell_topics()

    def _tell_topics(self) -> None:
        # For peers that send us their events as EVENT messages.
        topics = sorted(self._prefixes)
        for link in list(self._links.alive()):
            self._links.send(link, wire.TopicsChanged(topics=topics))

    # ------------------------------------------------------------------ receiving

    def greeted(self, link: Link, env: wire.Envelope, peer: Peer | None) -> None:
        """A peer's HELLO or WELCOME: what it subscribes to, where its events are."""
        self.learn_topics(link, env, peer)
        self._peer_known(link, env.head(wire.Hello).events, peer)

    def learn_topics(self, link: Link, env: wire.Envelope, peer: Peer | None) -> None:
        """The prefixes ``link``'s node subscribes to (a HELLO, WELCOME or TOPICS)."""
        if self._links.security.may(peer, "subscribe"):
            header = env.header
            assert isinstance(header, wire.Hello | wire.TopicsChanged)
            link.topics = frozenset(header.topics)

    async def on_topics(self, link: Link, env: wire.Envelope, peer: Peer | None) -> None:
        """TOPICS: what ``link``'s node subscribes to now."""
        self.learn_topics(link, env, peer)

    async def on_event(self, link: Link, env: wire.Envelope, peer: Peer | None) -> None:
        """An EVENT from a node that has no PUB: to local subscribers only."""
        topic = env.head(wire.Event).topic
        if env.tag is None or not any(topic.startswith(p) for p in self._prefixes):
            return
        try:
            event = self._links.security.decode(self._codec, env.tag, env.data, peer)
        except CodecError as exc:
            name = self._local.name
            log.warning("node %r: dropped an event from node %r: %s", name, link.name, exc)
            return
        await self._local.inject(topic, event)

    def _peer_known(self, link: Link, announced: list[Any], peer: Peer | None) -> None:
        # A peer node told us where its events are: subscribe to them (once).
        security = self._links.security
        if not security.may(peer, "publish"):
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
            known[1].close_nowait()  # it restarted elsewhere
        opts = self._links.socket_options()
        if security.secure:
            if peer is None or peer.public_key is None:
                return
            opts["curve_serverkey"] = peer.public_key
        sub = self._context.socket(SocketType.SUB, **opts)
        for prefix in self._prefixes:
            sub.subscribe(prefix.encode())
        self._subs[link.name] = (endpoint, sub)
        self._nursery.start_soon(self._serve, sub, endpoint, link.name)

    def forget(self, node: str) -> None:
        """Close the SUB to ``node``'s events (it is forgotten)."""
        known = self._subs.pop(node, None)
        if known is not None:
            known[1].close_nowait()

    def subscription(self, node: str) -> str | None:
        """The events endpoint of ``node`` our SUB connects to, if any."""
        known = self._subs.get(node)
        return None if known is None else known[0]

    async def _serve(self, sub: Socket, endpoint: str, node: str) -> None:
        try:
            await sub.connect(endpoint)
        except Exception as exc:  # what a peer announced: never out of a node task
            log.warning(
                "node %r announced an events endpoint %r we cannot reach: %r", node, endpoint, exc
            )
            sub.close_nowait()
            if self._subs.get(node, (None,))[0] == endpoint:
                del self._subs[node]
            return
        while True:
            try:
                message = await sub.recv_message()
            except trio.ClosedResourceError:
                return
            if len(message.frames) != 3:
                continue
            raw_topic, tag, data = message.frames
            security = self._links.security
            if not security.may(message.peer, "publish"):
                continue
            try:
                event = security.decode(self._codec, tag, data, message.peer)
            except CodecError as exc:
                log.warning("dropped an event from node %r: %s", node, exc)
                continue
            await self._local.inject(raw_topic.decode(errors="replace"), event)
