"""A node's links to its peers: the control sockets, HELLO/WELCOME, heartbeats, loss.

Each networked node binds a ROUTER. ``connect`` adds a DEALER to another
node's ROUTER, so one connection carries messages both ways: we send
through the DEALER, the other node answers (and asks) through its ROUTER,
which gives each connection a routing id of its own. :class:`Links` owns
the sockets, reads them, names each :class:`~._link.Link` from its HELLO or
WELCOME (a name bound to the key that proved it, or to the live
connection), pings every ``heartbeat`` and declares a peer lost after
``timeout`` of silence. What messages mean is its owner's business (the
cluster, see :class:`~._link.LinkOwner`).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import secrets
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import trio

from .._errors import HostUnreachableError
from .._monitor import EventType
from ..auth import Authenticator
from ..zmtp import SocketType, z85_encode
from . import _wire as wire
from ._errors import ActorNotFoundError
from ._link import Link, LinkOwner, NetworkOptions, NodeRef, who
from ._security import EVENTS_ZAP_DOMAIN, ZAP_DOMAIN, NodeSecurity
from ._turns import ReadTurns

if TYPE_CHECKING:
    from .._peer import Peer
    from ..patterns import Context, Socket
    from ._local import LocalNode

__all__ = ["Links"]

log = logging.getLogger("trimq.actors")


class Links:
    """This node's links to the others, and the sockets they run on."""

    def __init__(
        self,
        owner: LinkOwner,
        local: LocalNode,
        context: Context,
        nursery: trio.Nursery,
        security: NodeSecurity,
        options: NetworkOptions,
    ) -> None:
        self._owner = owner
        self._receive = owner.receive  # every message read, once per message
        self._local = local
        self._context = context
        self._nursery = nursery
        #: Replaced as ``connect`` trusts each node it connects to by its key.
        self.security = security
        self.options = options
        #: Where this node listens, as bound.
        self.endpoints: list[str] = []
        self._router: Socket | None = None
        self._named: dict[str, Link] = {}  # by node name, once known
        # Each HELLO or WELCOME we send starts a credit epoch (see _flow).
        self._epochs = itertools.count(secrets.randbelow(2**62) + 1)
        self._inbound: dict[bytes, Link] = {}  # ROUTER peers, by routing id
        self._outbound: list[Link] = []  # our DEALERs' links, named or not yet
        # Secure: which key holds each name, and which name each key holds
        # (first claim wins; one name per key).
        self._key_of: dict[str, bytes] = {}
        self._name_of: dict[bytes, str] = {}
        self._authenticator: Authenticator | None = None
        self._started = False

    # ------------------------------------------------------------------ sockets

    def socket_options(self) -> dict[str, Any]:
        """The options of every socket a node opens to or for other nodes."""
        sec = self.security
        ms = round(self.options.heartbeat * 1000)
        opts: dict[str, Any] = {
            "linger": 0,
            "heartbeat_ivl": ms,
            "heartbeat_timeout": round(self.options.timeout * 1000),
            "reconnect_ivl": ms // 4 or 1,
            "reconnect_ivl_max": ms,
            # A bigger message drops its connection: memory stays bounded,
            # whatever an allowed (or, insecure, local) peer sends.
            "maxmsgsize": self.options.max_message,
        }
        if sec.secure:
            opts.update(curve_publickey=sec.public, curve_secretkey=sec.secret)
        return opts

    async def _start(self) -> None:
        if self._started:
            return
        self._started = True
        if self.security.secure:
            self._authenticator = await self._nursery.start(self._authenticate)
        self._nursery.start_soon(self._beat)

    async def _authenticate(self, task_status: trio.TaskStatus[Authenticator]) -> None:
        # The ZAP handler that enforces the allow-list, for the node's lifetime.
        async with Authenticator(self._context) as auth:
            self._configure(auth)
            task_status.started(auth)
            await trio.sleep_forever()

    def _configure(self, auth: Authenticator) -> None:
        auth.configure_curve(ZAP_DOMAIN, list(self.security.allowed))
        auth.configure_curve(EVENTS_ZAP_DOMAIN, list(self.security.allowed_to("subscribe")))

    async def listen(self, endpoint: str) -> str:
        """Bind the control ROUTER at ``endpoint``; returns the endpoint bound."""
        self.security.check_endpoint(endpoint, "listen on")
        await self._start()
        if self._router is None:
            opts = self.socket_options()
            if self.security.secure:
                opts.update(curve_server=True, zap_domain=ZAP_DOMAIN, zap_enforce_domain=True)
            # router_mandatory: a full peer makes sends wait (or WouldBlock)
            # instead of dropping replies; an unknown one raises.
            self._router = self._context.socket(
                # No handover: a routing id a peer announces never takes over
                # another connection's route (our DEALERs announce none, so
                # each connection gets an id of its own).
                SocketType.ROUTER,
                router_handover=False,
                router_mandatory=True,
                **opts,
            )
            self._nursery.start_soon(self._serve_router, self._router)
        bound = await self._router.bind(endpoint)
        self.endpoints.append(bound)
        return bound

    async def connect(self, endpoint: str, key: bytes | None) -> NodeRef:
        """Join the node listening at ``endpoint`` (see :meth:`Node.connect`)."""
        self.security.check_endpoint(endpoint, "connect to")
        opts = self.socket_options()
        if self.security.secure:
            if key is None:
                raise ValueError(
                    f"connecting to {endpoint} needs the node's public key (key=...): "
                    "CURVE proves the server is who we think only if we know its key"
                )
            self.security = self.security.with_peer(key)
            if self._authenticator is not None:  # let it connect back to us too
                self._configure(self._authenticator)
            opts["curve_serverkey"] = key
        await self._start()
        dealer = self._context.socket(SocketType.DEALER, immediate=True, **opts)
        link = Link(dealer.send_multipart_nowait, dealer.send_multipart, endpoint)
        self._outbound.append(link)
        refused: list[str] = []
        wait = 2 * self.options.timeout  # time for a slow handshake, or a node that is starting
        async with dealer.monitor() as events, trio.open_nursery() as nursery:
            await dealer.connect(endpoint)
            self._nursery.start_soon(self._serve_dealer, dealer, link)

            async def join() -> None:
                # immediate=True: this waits for the connection (later HELLOs,
                # from the heartbeat, are dropped while there is none).
                hello = self._about(wire.Hello)
                await dealer.send_multipart(wire.encode_envelope(hello))
                link.start_epoch(hello.epoch)
                await link.welcomed.wait()
                nursery.cancel_scope.cancel()

            async def watch() -> None:
                event = await events.wait_for(EventType.HANDSHAKE_FAILED_AUTH)
                refused.append(event.reason or f"status {event.value}")
                nursery.cancel_scope.cancel()

            nursery.start_soon(join)
            nursery.start_soon(watch)
            nursery.cancel_scope.deadline = trio.current_time() + wait
        if link.welcomed.is_set():
            return link.ref
        self._outbound.remove(link)
        await dealer.aclose(linger=0)
        if refused:
            raise ConnectionRefusedError(
                f"the node at {endpoint} refused this node's key ({refused[0]}): add "
                f"{z85_encode(self.security.public or b'').decode()} to its allow-list"
            )
        raise ConnectionError(
            f"no trimq node answered at {endpoint} within {wait} s (not running, or unreachable)"
        )

    # ------------------------------------------------------------------ the links

    @property
    def peers(self) -> list[NodeRef]:
        """The nodes currently reachable."""
        return [link.ref for link in self._named.values() if link.alive]

    @property
    def hosts(self) -> list[NodeRef]:
        """The reachable nodes this one may place actors on: those whose key
        has the ``host`` right (insecure: every one, all being local)."""
        sec = self.security
        if not sec.secure:
            return self.peers
        trusted = sec.allowed_to("host")
        return [link.ref for link in self._named.values() if link.alive and link.key in trusted]

    def alive(self) -> Iterator[Link]:
        """The links to the nodes currently reachable."""
        return (link for link in self._named.values() if link.alive)

    def find(self, node: str) -> Link | None:
        """The link to ``node``, reachable or not; None if it never was known."""
        return self._named.get(node)

    def get(self, node: str) -> Link:
        """The link to ``node``, which must be reachable.

        Raises:
            ActorNotFoundError: It is not connected, or was lost.
        """
        link = self._named.get(node)
        if link is None or not link.alive:
            state = "is not connected" if link is None else "was lost"
            raise ActorNotFoundError(f"node {node!r} {state} (from node {self._local.name!r})")
        return link

    # ------------------------------------------------------------------ receiving

    async def _serve_router(self, router: Socket) -> None:
        self._local.adopt_task()  # for the handlers it runs (see LocalNode.accept)
        while True:
            try:
                message = await router.recv_message()
            except trio.ClosedResourceError:
                return
            frames = message.frames
            if len(frames) < 2:
                continue
            identity = frames[0]
            link = self._inbound.get(identity)
            if link is None:
                link = self._inbound[identity] = self._router_link(router, identity)
            link.heard = trio.current_time()
            await self._receive(link, frames[1:], message.peer)

    @staticmethod
    def _router_link(router: Socket, identity: bytes) -> Link:
        # Its senders read link.identity as they send: a node that reconnects
        # keeps its link, on its new connection (see _rebind).
        def send(frames: list[bytes], flush: bool = False) -> None:
            router.send_multipart_nowait([link.identity, *frames], flush=flush)

        async def asend(frames: list[bytes]) -> None:
            await router.send_multipart([link.identity, *frames])

        link = Link(send, asend)
        link.identity = identity
        return link

    async def _serve_dealer(self, dealer: Socket, link: Link) -> None:
        self._local.adopt_task()  # for the handlers it runs (see LocalNode.accept)
        link.turns = turns = ReadTurns(dealer)
        try:
            while True:
                message = await turns.next_for_server()
                await self._receive(link, message.frames, message.peer)
        except trio.ClosedResourceError:
            return
        finally:
            link.turns = None

    # ------------------------------------------------------------------ naming

    def handshake(self, link: Link, env: wire.Envelope, peer: Peer | None) -> None:
        """Handle a HELLO or WELCOME, or anything from a link not named yet."""
        if env.kind == wire.HELLO or env.kind == wire.WELCOME:
            named = self._learn(link, env, peer)
            if named is None:
                return
            self._owner.greeted(named, env, peer)
            self.seen(named)
            if env.kind == wire.HELLO:
                self._greet(named, wire.Welcome)
            named.welcomed.set()
        elif env.kind != wire.WHO:
            self.send(link, wire.Who())  # a node that forgot us, or a stranger
        else:
            self._hello(link)

    def _learn(self, link: Link, env: wire.Envelope, peer: Peer | None) -> Link | None:
        # Name ``link`` from its HELLO or WELCOME if it may have that name;
        # returns the link that now has it (None: refused).
        header = env.head(wire.Hello)  # or Welcome, its subclass
        name = header.name
        refused = self._refusal(link, name, peer)
        if refused:
            log.warning(
                "node %r: refused a peer (%s) calling itself %r: %s",
                self._local.name,
                who(peer),
                name[:64],
                refused,
            )
            return None
        known = self._named.get(name)
        if known is not None and known is not link and known.identity and link.identity:
            link = self._rebind(known, link)  # that node, on a new connection
        link.name = name
        link.key = None if peer is None else peer.public_key
        link.tags = frozenset(header.tags)
        # Credit (see _flow): its window for our calls; its calls count from 0.
        link.window = header.window
        link.peer_epoch, link.delivered, link.granted_back = header.epoch, 0, 0
        if link.key is not None:
            self._key_of[name] = link.key
            self._name_of[link.key] = name
        if known is None or not known.alive or known is link:
            self._named[name] = link
        return link

    def _rebind(self, known: Link, new: Link) -> Link:
        # A node that reconnected to our ROUTER keeps its link (its pending
        # requests, its children, its monitors), now on its new connection.
        if self._inbound.get(known.identity) is known:
            del self._inbound[known.identity]
        known.identity = new.identity
        known.heard = new.heard
        self._inbound[new.identity] = known
        return known

    def _refusal(self, link: Link, name: str, peer: Peer | None) -> str:
        # Why ``link`` may not be called ``name`` ("" if it may): a name is
        # bound to the key that first proved it (secure) or to the live
        # connection that holds it (insecure), and a connection keeps its name.
        if not name or len(name) > 256:
            return "not a node name"
        if name == self._local.name:
            return "that is this node's name"
        if link.name and link.name != name:
            return f"its connection is already node {link.name!r}"
        if self.security.secure:
            key = None if peer is None else peer.public_key
            if key is None:
                return "its connection proved no key"
            held = self._key_of.get(name)
            if held is not None and held != key:
                return "that name belongs to another key"
            other = self._name_of.get(key)
            if other is not None and other != name:
                return f"its key is node {other!r}'s"
            return ""
        known = self._named.get(name)
        if (
            known is not None
            and known is not link
            and known.identity
            and link.identity
            and self._connected(known.identity)
        ):
            return "another live connection holds that name"
        return ""

    def _connected(self, identity: bytes) -> bool:
        # Whether our ROUTER still has a connection with that routing id.
        try:
            self._router.peer(identity)  # type: ignore[union-attr]
        except HostUnreachableError:
            return False
        return True

    def _hello(self, link: Link) -> None:
        self._greet(link, wire.Hello)

    def _greet(self, link: Link, kind: type[wire.Hello]) -> None:
        header = self._about(kind)
        if self.send(link, header):
            link.start_epoch(header.epoch)

    def _about(self, kind: type[wire.Hello]) -> wire.Hello:
        return kind(
            name=self._local.name,
            tags=sorted(self.options.tags),
            epoch=next(self._epochs),
            window=self.options.limits.window,
            **self._owner.about(),
        )

    def seen(self, link: Link) -> None:
        """A message came from ``link``: its node is alive."""
        link.last_seen = trio.current_time()
        if not link.alive:
            link.alive = True
            if link.welcomed.is_set():
                log.info("node %r: node %r is back", self._local.name, link.name)
            self._owner.found(link)
            self._local.peers_changed()

    # ------------------------------------------------------------------ sending

    def send(
        self,
        link: Link,
        header: wire.Header,
        payload: tuple[bytes, bytes] | None = None,
        *,
        flush: bool = False,
    ) -> bool:
        """Send one envelope now or never; False if it was not sent.

        A peer whose queue is full (or not connected) misses it, and asks
        waiting on it time out or see the node lost.
        """
        try:
            link.send(wire.encode_envelope(header, payload), flush=flush)
        except (trio.WouldBlock, trio.ClosedResourceError, HostUnreachableError):
            return False
        return True

    def send_surely(self, link: Link, frames: list[bytes]) -> None:
        """Send a message that must not be dropped (a reply, a DOWN): now if
        there is room, else from a task that waits for room while the node is
        reachable."""
        try:
            link.send(frames, flush=True)  # the actor's task goes back to its mailbox
        except (trio.WouldBlock, HostUnreachableError):
            self._nursery.start_soon(self._send_when_room, link, frames)
        except trio.ClosedResourceError:
            pass  # closing

    async def _send_when_room(self, link: Link, frames: list[bytes]) -> None:
        # For up to the node timeout: a full queue waits for room, a peer that
        # is reconnecting (a ROUTER has no route to it meanwhile) is tried again;
        # past that, the peer is lost and the other side knows it too.
        timeout = self.options.timeout
        with trio.move_on_after(timeout), contextlib.suppress(trio.ClosedResourceError):
            while True:
                try:
                    await link.asend(frames)
                    return
                except HostUnreachableError:
                    await trio.sleep(self.options.heartbeat / 4)

    # ------------------------------------------------------------------ liveness

    async def _beat(self) -> None:
        while True:
            await trio.sleep(self.options.heartbeat)
            now = trio.current_time()
            self._forget(now)
            for link in self._all():
                if link.alive and now - link.last_seen > self.options.timeout:
                    log.warning(
                        "node %r: node %r lost (nothing heard for %.1f s)",
                        self._local.name,
                        link.name,
                        now - link.last_seen,
                    )
                    self.lose(link, f"node {link.name!r} lost")
                if link.endpoint and not link.alive:
                    self._hello(link)  # rejoin once it answers
                else:
                    self.send(link, link.grant(wire.Ping))

    def _forget(self, now: float) -> None:
        # A ROUTER peer silent for twice the timeout is gone with its
        # connection: its entries go too (a reconnection is a new link).
        stale = 2 * self.options.timeout
        for identity, link in list(self._inbound.items()):
            if not link.alive and now - link.heard > stale:
                del self._inbound[identity]
                if self._named.get(link.name) is link:
                    del self._named[link.name]
                    self._owner.forgot(link)

    def _all(self) -> list[Link]:
        links = {id(link): link for link in self._outbound}
        links.update({id(link): link for link in self._named.values()})
        links.update({id(link): link for link in self._inbound.values() if link.name})
        return list(links.values())

    def lose(self, link: Link, why: str) -> None:
        """``link``'s node is gone (silent too long, or it said BYE)."""
        link.alive = False
        self._local.peers_changed()
        self._owner.lost(link, why)

    async def aclose(self) -> None:
        """Tell peers we are leaving (the sockets close with the node's context)."""
        for link in self._all():
            if link.alive:
                self.send(link, wire.Bye())
        await trio.lowlevel.checkpoint()
