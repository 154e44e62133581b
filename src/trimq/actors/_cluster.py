"""A node's links to other nodes: the control channel over DEALER/ROUTER.

Each networked node binds a ROUTER. ``connect`` adds a DEALER to another
node's ROUTER, whose routing id is our node's name, so one connection carries
messages both ways: we send through the DEALER, the other node answers (and
asks) through its ROUTER. Envelopes are in ``_wire``; payloads are decoded by
:meth:`NodeSecurity.decode`, which decides from what the sending connection
proved whether they may carry code.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import math
import traceback
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar

import attrs
import cloudpickle
import trio

from .._errors import HostUnreachableError
from .._monitor import EventType
from .._peer import Message, Peer
from ..auth import Authenticator
from ..patterns import Context, Socket
from ..zmtp import SocketType, z85_encode
from . import _wire as wire
from ._codec import CodecError
from ._errors import ActorError, ActorNotFoundError, ActorStoppedError
from ._events import EVENTS_ZAP_DOMAIN, EventBridge
from ._exit import ExitReason
from ._ref import ActorRef, _current_node
from ._security import NodeSecurity
from ._turns import ReadTurns

if TYPE_CHECKING:
    from ._actor import Actor
    from ._node import Node

__all__ = ["Cluster", "NodeRef"]

_Handler = Callable[["Cluster", "_Link", wire.Envelope, Peer | None], Awaitable[None]]

log = logging.getLogger("trimq.actors")

ZAP_DOMAIN = "trimq.node"
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


@attrs.frozen
class NodeRef:
    """Another node this one knows, as :meth:`Node.connect` and :attr:`Node.peers` give it.

    Attributes:
        name: Its node name (the ``node`` of its actors' refs).
        tags: What it said it offers (``"gpu"``, ``"region=eu"``), for placement.
        endpoint: Where we reached it, or ``""`` if it connected to us.

    .. versionadded:: 0.1
    """

    name: str
    tags: frozenset[str] = frozenset()
    endpoint: str = attrs.field(default="", eq=False)


class _Link:
    """One known peer node and how to send to it."""

    def __init__(
        self,
        send: Callable[..., None],
        asend: Callable[[list[bytes]], Awaitable[None]],
        endpoint: str = "",
    ) -> None:
        #: send(frames, flush=False) never blocks: raises trio.WouldBlock when
        #: the queue is full; flush=True writes at once (a lone request or reply).
        self.send = send
        self.asend = asend  # waits for room
        self.endpoint = endpoint
        self.name = ""
        self.tags: frozenset[str] = frozenset()
        # What its actors subscribe to: events we send it as EVENT messages
        # when we have no events PUB (see Cluster.publish).
        self.topics: frozenset[str] = frozenset()
        self.alive = False
        self.last_seen = -math.inf
        self.welcomed = trio.Event()
        # Who reads the DEALER, on a link we connected (see _turns).
        self.turns: ReadTurns | None = None

    @property
    def ref(self) -> NodeRef:
        return NodeRef(self.name, self.tags, self.endpoint)


class _Pending:
    """A request to another node, waiting for its REPLY."""

    __slots__ = ("done", "envelope", "error", "node", "peer", "reading", "scope")

    def __init__(self, node: str) -> None:
        self.node = node
        self.done = trio.Event()
        self.envelope: wire.Envelope | None = None
        self.peer: Peer | None = None
        self.error: BaseException | None = None  # set if the node was lost
        self.scope: trio.CancelScope | None = None  # around its asker's read
        self.reading = False  # its asker reads the socket (see _turns)

    def finish(self) -> None:
        """Wake the asker, wherever it waits."""
        self.done.set()
        if self.reading:
            assert self.scope is not None
            self.scope.cancel()


class Cluster:
    """The networked part of a node (see ``open_node(listen=...)``)."""

    def __init__(
        self,
        node: Node,
        context: Context,
        nursery: trio.Nursery,
        security: NodeSecurity,
        *,
        tags: Iterable[str],
        heartbeat: float,
        timeout: float,
        max_message: int = 64 * 2**20,
    ) -> None:
        if heartbeat <= 0 or timeout <= heartbeat:
            raise ValueError(
                f"heartbeat must be > 0 and timeout > heartbeat, got {heartbeat}, {timeout}"
            )
        self._node = node
        self._context = context
        self._nursery = nursery
        self._security = security
        self.tags = frozenset(tags)
        self._heartbeat = heartbeat
        self._timeout = timeout
        self._max_message = max_message
        self._router: Socket | None = None
        self._links: dict[str, _Link] = {}  # by node name, once known
        self._inbound: dict[bytes, _Link] = {}  # ROUTER peers, by routing id
        self._outbound: list[_Link] = []  # our DEALERs' links, named or not yet
        self._pending: dict[int, _Pending] = {}
        # Monitors of actors on other nodes: node name -> {(watcher, target)}.
        self._watching: dict[str, set[tuple[ActorRef, ActorRef]]] = {}
        # Our supervisors' children on other nodes: node name -> {(supervisor, child)}.
        self._children: dict[str, set[tuple[ActorRef, ActorRef]]] = {}
        # Children on a lost node that their supervisors replaced: ended on it
        # when it is back, in case it never noticed it was cut off (a paused
        # process does not).
        self._orphans: dict[str, set[ActorRef]] = {}
        self._serving: dict[tuple[str, int], Any] = {}  # asks we run for others
        self._ids = itertools.count(1)
        self._tells = 0
        self._authenticator: Authenticator | None = None
        self._started = False
        self.events = EventBridge(
            context, nursery, lambda: self._security, node.codec, self._options, node._inject
        )
        for prefix in node._subscribers:
            self.events.subscribe(prefix)
        self.endpoints: list[str] = []

    # ------------------------------------------------------------------ sockets

    def _options(self) -> dict[str, Any]:
        sec = self._security
        ms = round(self._heartbeat * 1000)
        opts: dict[str, Any] = {
            "linger": 0,
            "heartbeat_ivl": ms,
            "heartbeat_timeout": round(self._timeout * 1000),
            "reconnect_ivl": ms // 4 or 1,
            "reconnect_ivl_max": ms,
            # A bigger message drops its connection: memory stays bounded,
            # whatever an allowed (or, insecure, local) peer sends.
            "maxmsgsize": self._max_message,
        }
        if sec.secure:
            opts.update(curve_publickey=sec.public, curve_secretkey=sec.secret)
        return opts

    async def _start(self) -> None:
        if self._started:
            return
        self._started = True
        if self._security.secure:
            self._authenticator = await self._nursery.start(self._authenticate)
        self._nursery.start_soon(self._beat)

    async def _authenticate(self, task_status: trio.TaskStatus[Authenticator]) -> None:
        # The ZAP handler that enforces the allow-list, for the node's lifetime.
        async with Authenticator(self._context) as auth:
            self._configure(auth)
            task_status.started(auth)
            await trio.sleep_forever()

    def _configure(self, auth: Authenticator) -> None:
        auth.configure_curve(ZAP_DOMAIN, list(self._security.allowed))
        auth.configure_curve(EVENTS_ZAP_DOMAIN, list(self._security.allowed_to("subscribe")))

    async def listen(self, endpoint: str) -> str:
        """Bind the control ROUTER at ``endpoint``; returns the endpoint bound."""
        self._security.check_endpoint(endpoint, "listen on")
        await self._start()
        if self._router is None:
            opts = self._options()
            if self._security.secure:
                opts.update(curve_server=True, zap_domain=ZAP_DOMAIN, zap_enforce_domain=True)
            # router_mandatory: a full peer makes sends wait (or WouldBlock)
            # instead of dropping replies; an unknown one raises.
            self._router = self._context.socket(
                SocketType.ROUTER, router_handover=True, router_mandatory=True, **opts
            )
            self._nursery.start_soon(self._serve_router, self._router)
        bound = await self._router.bind(endpoint)
        self.endpoints.append(bound)
        await self.events.listen(bound)
        return bound

    async def connect(self, endpoint: str, key: bytes | None) -> NodeRef:
        """Join the node listening at ``endpoint`` (see :meth:`Node.connect`)."""
        self._security.check_endpoint(endpoint, "connect to")
        opts = self._options()
        if self._security.secure:
            if key is None:
                raise ValueError(
                    f"connecting to {endpoint} needs the node's public key (key=...): "
                    "CURVE proves the server is who we think only if we know its key"
                )
            self._security = self._security.with_peer(key)
            if self._authenticator is not None:  # let it connect back to us too
                self._configure(self._authenticator)
            opts["curve_serverkey"] = key
        await self._start()
        dealer = self._context.socket(
            SocketType.DEALER, routing_id=self._node.name.encode(), immediate=True, **opts
        )
        link = _Link(dealer.send_multipart_nowait, dealer.send_multipart, endpoint)
        self._outbound.append(link)
        refused: list[str] = []
        wait = 2 * self._timeout  # time for a slow handshake, or a node that is starting
        async with dealer.monitor() as events, trio.open_nursery() as nursery:
            await dealer.connect(endpoint)
            self._nursery.start_soon(self._serve_dealer, dealer, link)

            async def join() -> None:
                # immediate=True: this waits for the connection (later HELLOs,
                # from the heartbeat, are dropped while there is none).
                await dealer.send_multipart(wire.encode_envelope(wire.HELLO, self._about()))
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
                f"{z85_encode(self._security.public or b'').decode()} to its allow-list"
            )
        raise ConnectionError(
            f"no trimq node answered at {endpoint} within {wait} s (not running, or unreachable)"
        )

    @property
    def peers(self) -> list[NodeRef]:
        """The nodes currently reachable."""
        return [link.ref for link in self._links.values() if link.alive]

    # ------------------------------------------------------------------ receiving

    async def _serve_router(self, router: Socket) -> None:
        _current_node.set(self._node)  # for the handlers it runs (see Node._handle_now)
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
                link = _Link(*self._router_senders(router, identity))
                self._inbound[identity] = link
            await self._receive(link, frames[1:], message.peer)

    def _router_senders(
        self, router: Socket, identity: bytes
    ) -> tuple[Callable[[list[bytes]], None], Callable[[list[bytes]], Awaitable[None]]]:
        def send(frames: list[bytes], flush: bool = False) -> None:
            router.send_multipart_nowait([identity, *frames], flush=flush)

        async def asend(frames: list[bytes]) -> None:
            await router.send_multipart([identity, *frames])

        return send, asend

    async def _serve_dealer(self, dealer: Socket, link: _Link) -> None:
        _current_node.set(self._node)  # for the handlers it runs (see Node._handle_now)
        link.turns = turns = ReadTurns(dealer)
        try:
            while True:
                message = await turns.next_for_server()
                await self._receive(link, message.frames, message.peer)
        except trio.ClosedResourceError:
            return
        finally:
            link.turns = None

    async def _receive(self, link: _Link, frames: list[bytes], peer: Peer | None) -> None:
        try:
            env = wire.decode_envelope(frames)
        except wire.ProtocolError as exc:
            log.warning("node %r: dropped a message from %s: %s", self._node.name, _who(peer), exc)
            return
        if env.kind == wire.HELLO:
            self._on_hello(link, env, peer)
            return
        if env.kind == wire.WELCOME:
            self._on_welcome(link, env, peer)
            return
        if not link.name:
            if env.kind != wire.WHO:
                self._send(link, wire.WHO, {})  # a node that forgot us, or a stranger
            else:
                self._hello(link)
            return
        self._seen(link)
        handler = self._handlers.get(env.kind)
        if handler is None:
            return
        right = _NEEDS.get(env.kind)
        if right is not None and not self._security.may(peer, right):
            self._deny(link, env, peer, right)
            return
        await handler(self, link, env, peer)

    def _deny(self, link: _Link, env: wire.Envelope, peer: Peer | None, right: str) -> None:
        what = env.kind.decode()
        log.warning(
            "node %r: refused a %r message from node %r (%s): it lacks the %r right",
            self._node.name,
            what,
            link.name,
            _who(peer),
            right,
        )
        rid = env.get("id", int)
        if rid is not None:
            error = PermissionError(
                f"node {self._node.name!r} does not let node {link.name!r} {what} "
                f"(it lacks the {right!r} right: see allow= on that node)"
            )
            self._reply(link, rid, error=error)

    def _seen(self, link: _Link) -> None:
        link.last_seen = trio.current_time()
        if not link.alive:
            link.alive = True
            if link.welcomed.is_set():
                log.info("node %r: node %r is back", self._node.name, link.name)
            for orphan in self._orphans.pop(link.name, set()):
                self._nursery.start_soon(self._end_orphan, orphan)
            self._node._membership_changed()

    def _hello(self, link: _Link) -> None:
        self._send(link, wire.HELLO, self._about())

    def _about(self) -> dict[str, Any]:
        return {
            "name": self._node.name,
            "tags": sorted(self.tags),
            "events": self.events.endpoints,
            "topics": sorted(self.events.prefixes),
        }

    def _learn(self, link: _Link, env: wire.Envelope) -> bool:
        name = env.get("name", str, "")
        tags = env.get("tags", list, [])
        if not name or name == self._node.name:
            log.warning("node %r: refused a peer calling itself %r", self._node.name, name)
            return False
        link.name = name
        link.tags = frozenset(t for t in tags if isinstance(t, str))
        known = self._links.get(name)
        if known is None or not known.alive or known is link:
            self._links[name] = link
        return True

    def _learn_topics(self, link: _Link, env: wire.Envelope, peer: Peer | None) -> None:
        if self._security.may(peer, "subscribe"):
            link.topics = frozenset(t for t in env.get("topics", list, []) if isinstance(t, str))

    def _on_hello(self, link: _Link, env: wire.Envelope, peer: Peer | None) -> None:
        if self._learn(link, env):
            self._learn_topics(link, env, peer)
            self._seen(link)
            self._send(link, wire.WELCOME, self._about())
            self.events.peer_known(link, env.get("events", list, []), peer)
            link.welcomed.set()

    def _on_welcome(self, link: _Link, env: wire.Envelope, peer: Peer | None) -> None:
        if self._learn(link, env):
            self._learn_topics(link, env, peer)
            self._seen(link)
            self.events.peer_known(link, env.get("events", list, []), peer)
            link.welcomed.set()

    # ------------------------------------------------------------------ sending

    def _send(
        self,
        link: _Link,
        kind: bytes,
        header: dict[str, Any],
        payload: tuple[bytes, bytes] | None = None,
        *,
        flush: bool = False,
    ) -> bool:
        # Never blocks: a peer whose queue is full (or not connected) misses
        # this message, and asks waiting on it time out or see the node lost.
        try:
            link.send(wire.encode_envelope(kind, header, payload), flush=flush)
        except (trio.WouldBlock, trio.ClosedResourceError, HostUnreachableError):
            return False
        return True

    def _send_surely(self, link: _Link, frames: list[bytes]) -> None:
        # A message that must not be dropped (a reply): now if there is room,
        # else from a task that waits for room while the node is reachable.
        try:
            link.send(frames, flush=True)  # the actor's task goes back to its mailbox
        except (trio.WouldBlock, HostUnreachableError):
            self._nursery.start_soon(self._send_when_room, link, frames)
        except trio.ClosedResourceError:
            pass  # closing

    async def _send_when_room(self, link: _Link, frames: list[bytes]) -> None:
        # For up to the node timeout: a full queue waits for room, a peer that
        # is reconnecting (a ROUTER has no route to it meanwhile) is tried again;
        # past that, the peer is lost and the other side knows it too.
        with trio.move_on_after(self._timeout), contextlib.suppress(trio.ClosedResourceError):
            while True:
                try:
                    await link.asend(frames)
                    return
                except HostUnreachableError:
                    await trio.sleep(self._heartbeat / 4)

    def _link(self, node: str) -> _Link:
        link = self._links.get(node)
        if link is None or not link.alive:
            state = "is not connected" if link is None else "was lost"
            raise ActorNotFoundError(f"node {node!r} {state} (from node {self._node.name!r})")
        return link

    async def _request(
        self,
        node: str,
        kind: bytes,
        header: dict[str, Any],
        payload: tuple[bytes, bytes] | None,
        timeout: float | None,
    ) -> tuple[wire.Envelope, Peer | None]:
        link = self._link(node)
        rid = next(self._ids)
        pending = self._pending[rid] = _Pending(node)
        try:
            with trio.fail_after(timeout) if timeout is not None else contextlib.nullcontext():
                if not self._send(link, kind, {**header, "id": rid}, payload, flush=True):
                    raise ActorStoppedError(f"node {node!r} is not reachable now")
                await self._await_reply(link, pending)
        except BaseException:
            self._send(link, wire.CANCEL, {"id": rid})  # best effort
            raise
        finally:
            del self._pending[rid]
        if pending.error is not None:
            raise pending.error
        assert pending.envelope is not None
        return pending.envelope, pending.peer

    async def _await_reply(self, link: _Link, pending: _Pending) -> None:
        # On a link we connected, read the reply ourselves if we may (see
        # _turns): it then wakes this task directly. Replies and pings are
        # handled here; anything else goes to the serve task, and with it the
        # wait for our reply.
        turns = link.turns
        if turns is None or not turns.take(pending):
            await pending.done.wait()
            return
        pending.reading = True
        try:
            # Entered once the request is on its way: not on the round trip's path.
            with trio.CancelScope() as pending.scope:  # pending.finish() ends it
                while not pending.done.is_set():
                    message = await turns.dealer.recv_message()
                    if turns.blocked or not self._take_reply(link, message):
                        turns.handoff.append(message)
                        break
        except trio.ClosedResourceError:
            pass
        finally:
            pending.reading = False
            turns.give_back()
        if not pending.done.is_set():  # (a set Event's wait() is a checkpoint still)
            await pending.done.wait()

    def _take_reply(self, link: _Link, message: Message) -> bool:
        # A REPLY or PING an asker read (see _await_reply), handled as the
        # serve task would; False for anything else.
        try:
            env = wire.decode_envelope(message.frames)
        except wire.ProtocolError:
            return False  # the serve task says what was wrong
        if env.kind not in (wire.REPLY, wire.PING) or not link.name:
            return False
        self._seen(link)
        if env.kind == wire.REPLY:
            self._settle(link, env, message.peer, reader=link.turns)
        return True

    # ------------------------------------------------------------------ the API

    def publish(self, topic: str, event: object) -> None:
        """Send ``event`` to the nodes subscribed to it, at most once.

        Through our events PUB if we listen; else (we only connect) as an
        EVENT on each link whose node subscribes to a prefix of ``topic``.
        Either way a node that cannot take it now misses it.
        """
        if self.events.listening:
            self.events.publish(topic, event)
            return
        links = [
            link
            for link in self._links.values()
            if link.alive and any(topic.startswith(prefix) for prefix in link.topics)
        ]
        if links:
            payload = self._node.codec.encode(event)
            for link in links:
                self._send(link, wire.EVENT, {"topic": topic}, payload)

    def subscribe(self, prefix: str) -> None:
        """Our actors want ``prefix`` events from other nodes."""
        self.events.subscribe(prefix)
        self._tell_topics()

    def unsubscribe(self, prefix: str) -> None:
        """Our actors no longer want ``prefix`` events."""
        self.events.unsubscribe(prefix)
        self._tell_topics()

    def _tell_topics(self) -> None:
        # For peers that send us their events as EVENT messages.
        topics = sorted(self.events.prefixes)
        for link in self._links.values():
            if link.alive:
                self._send(link, wire.TOPICS, {"topics": topics})

    async def _on_event(self, link: _Link, env: wire.Envelope, peer: Peer | None) -> None:
        topic = env.get("topic", str, "")
        if env.tag is None or not self.events.wants(topic):
            return
        try:
            event = self._payload(env, peer)
        except CodecError as exc:
            name = self._node.name
            log.warning("node %r: dropped an event from node %r: %s", name, link.name, exc)
            return
        await self._node._inject(topic, event)  # to local subscribers only

    async def _on_topics(self, link: _Link, env: wire.Envelope, peer: Peer | None) -> None:
        self._learn_topics(link, env, peer)

    async def tell(
        self, ref: ActorRef, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        link = self._link(ref.node)
        payload = self._node.codec.encode((args, kwargs))
        frames = wire.encode_envelope(wire.CALL, {"actor": ref.name, "method": method}, payload)
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
                    return
            raise ActorStoppedError(
                f"node {ref.node!r} took no message for {self._timeout} s (lost or stalled)"
            ) from None
        except (trio.ClosedResourceError, HostUnreachableError):
            raise ActorStoppedError(f"node {ref.node!r} is not reachable now") from None
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
        payload = self._node.codec.encode((args, kwargs))
        try:
            env, peer = await self._request(
                ref.node, wire.CALL, {"actor": ref.name, "method": method}, payload, timeout
            )
        except trio.TooSlowError:
            raise TimeoutError(
                f"actor {ref.name!r} on node {ref.node!r} did not answer {method}() within "
                f"{timeout} s; its handler was cancelled"
            ) from None
        return self._outcome(env, peer)

    async def spawn(
        self,
        node: str,
        cls: type[Actor],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        options: dict[str, Any],
    ) -> ActorRef:
        payload = self._node.codec.encode((cls, args, kwargs))
        env, peer = await self._request(node, wire.SPAWN, options, payload, None)
        try:
            self._outcome(env, peer)
        except Exception as exc:
            if not _cannot_import(exc, cls):
                raise
            # That host cannot import the class: send it by value this time.
            payload = _by_value(self._node.codec.encode, (cls, args, kwargs), cls)
            env, peer = await self._request(node, wire.SPAWN, options, payload, None)
            self._outcome(env, peer)
        child = ActorRef(node, env.get("name", str, ""))
        if "supervisor" in options:
            supervisor = ActorRef(self._node.name, options["supervisor"])
            self._children.setdefault(node, set()).add((supervisor, child))
        return child

    def children_of(self, supervisor: ActorRef) -> list[ActorRef]:
        """The children ``supervisor`` placed on other nodes."""
        return [c for pairs in self._children.values() for s, c in pairs if s == supervisor]

    async def _end_orphan(self, child: ActorRef) -> None:
        # Until its node confirms (or says it has no such child): a replaced
        # child left running there would be a duplicate.
        while True:
            link = self._links.get(child.node)
            if link is None or not link.alive:
                self._orphans.setdefault(child.node, set()).add(child)  # next time it is back
                return
            try:
                with trio.fail_after(self._timeout):
                    await self.supervise(child, "terminate")
                return
            except ActorNotFoundError:
                if link.alive:
                    return  # it answered that the child is gone already
            except (ActorStoppedError, trio.TooSlowError):
                pass  # not delivered, or no answer: ask again
            await trio.sleep(self._heartbeat)

    async def supervise(self, ref: ActorRef, verdict: str) -> None:
        """Carry out a supervisor's decision for its child on another node."""
        env, peer = await self._request(
            ref.node, wire.SUPERVISE, {"actor": ref.name, "verdict": verdict}, None, None
        )
        self._outcome(env, peer)
        if verdict == "terminate":
            for pair in list(self._children.get(ref.node, ())):
                if pair[1] == ref:
                    self._children[ref.node].discard(pair)

    def child_exit(self, supervisor: ActorRef, child: ActorRef, reason: ExitReason) -> bool:
        """Tell a supervisor on another node that its child here ended; False
        if that node is unreachable (lost, or never known)."""
        link = self._links.get(supervisor.node)
        if link is None or not link.alive:
            return False
        header, payload = self._encode_reason(reason)
        header.update(actor=child.name, supervisor=supervisor.name)
        # Not dropped while that node is reachable: the child waits for its
        # verdict (and if the node is lost meanwhile, _node_lost ends the child).
        self._send_surely(link, wire.encode_envelope(wire.CHILD_EXIT, header, payload))
        return True

    async def _on_child_exit(self, link: _Link, env: wire.Envelope, peer: Peer | None) -> None:
        supervisor = ActorRef(self._node.name, env.get("supervisor", str, ""))
        child = ActorRef(link.name, env.get("actor", str, ""))
        if (supervisor, child) not in self._children.get(link.name, set()):
            return  # not a child we placed there
        reason = self._reason(env, peer)
        if reason is not None:
            self._node._child_exit(supervisor, child, reason)

    async def _on_supervise(self, link: _Link, env: wire.Envelope, peer: Peer | None) -> None:
        self._nursery.start_soon(self._supervise_here, link, env)

    async def _supervise_here(self, link: _Link, env: wire.Envelope) -> None:
        rid = env.get("id", int, 0)
        ref = ActorRef(self._node.name, env.get("actor", str, ""))
        verdict = env.get("verdict", str, "")
        try:
            cell = self._node._cells.get(ref.name)
            if cell is None or cell.supervisor is None or cell.supervisor.node != link.name:
                raise ActorNotFoundError(f"node {link.name!r} supervises no {ref.name!r} here")
            if verdict == "suspend":
                await self._node.suspend(ref)
            elif verdict == "restart":
                await self._node.restart(ref)
            elif verdict == "terminate":
                await self._node.terminate(ref)
            else:
                raise wire.ProtocolError(f"unknown verdict {verdict!r}")
        except Exception as exc:
            self._reply(link, rid, error=exc)
            return
        self._reply(link, rid)

    async def stop(self, ref: ActorRef, *, kill: bool) -> None:
        env, peer = await self._request(
            ref.node, wire.STOP, {"actor": ref.name, "kill": kill}, None, None
        )
        self._outcome(env, peer)

    async def lookup(self, name: str) -> ActorRef | None:
        """Ask every reachable node for an actor called ``name``; the first found."""
        for link in list(self._links.values()):
            if not link.alive:
                continue
            try:
                env, _ = await self._request(
                    link.name, wire.LOOKUP, {"name": name}, None, self._timeout
                )
            except (ActorNotFoundError, ActorStoppedError, trio.TooSlowError):
                continue
            if env.get("found", bool, False):
                return ActorRef(link.name, name)
        return None

    def monitor(self, watcher: ActorRef, target: ActorRef) -> None:
        """Watch an actor on another node; a lost node counts as its end."""
        link = self._links.get(target.node)
        if link is None or not link.alive:
            self._node._down(watcher, target, ExitReason("node lost" if link else "not running"))
            return
        self._watching.setdefault(target.node, set()).add((watcher, target))
        # Never dropped: a lost MONITOR would leave the watcher waiting for good.
        header = {"actor": target.name, "watcher": watcher.name}
        self._send_surely(link, wire.encode_envelope(wire.MONITOR, header))

    def demonitor(self, watcher: ActorRef, target: ActorRef) -> None:
        """Stop watching an actor on another node."""
        self._watching.get(target.node, set()).discard((watcher, target))
        link = self._links.get(target.node)
        if link is not None and link.alive:
            self._send(link, wire.DEMONITOR, {"actor": target.name, "watcher": watcher.name})

    def notify_down(self, watcher: ActorRef, target: ActorRef, reason: ExitReason) -> None:
        """Tell a watcher on another node that a local actor ended."""
        link = self._links.get(watcher.node)
        if link is None or not link.alive:
            return  # that node is gone, and its watchers with it
        header, payload = self._encode_reason(reason)
        header.update(actor=target.name, watcher=watcher.name)
        # Never dropped while the node is reachable: the watcher waits for it.
        self._send_surely(link, wire.encode_envelope(wire.DOWN, header, payload))

    def _encode_reason(
        self, reason: ExitReason
    ) -> tuple[dict[str, Any], tuple[bytes, bytes] | None]:
        # What a DOWN or CHILD_EXIT carries (see _reason): the kind, and the
        # error as an object if it can travel, as text anyway.
        header: dict[str, Any] = {"kind": reason.kind}
        payload = None
        if reason.error is not None:
            header["error"] = f"{type(reason.error).__name__}: {reason.error}"
            with contextlib.suppress(CodecError):
                payload = self._node.codec.encode(reason.error)
        return header, payload

    async def _on_monitor(self, link: _Link, env: wire.Envelope, peer: Peer | None) -> None:
        if self._node._closing:
            return  # the watcher hears that this node left ("node lost"), for all
        watcher = ActorRef(link.name, env.get("watcher", str, ""))
        target = env.get("actor", str, "")
        if not self._node._watch_from(watcher, target):
            header = {"actor": target, "watcher": watcher.name, "kind": "not running"}
            self._send(link, wire.DOWN, header)

    async def _on_demonitor(self, link: _Link, env: wire.Envelope, peer: Peer | None) -> None:
        watcher = ActorRef(link.name, env.get("watcher", str, ""))
        self._node.demonitor(watcher, ActorRef(self._node.name, env.get("actor", str, "")))

    async def _on_down(self, link: _Link, env: wire.Envelope, peer: Peer | None) -> None:
        watcher = ActorRef(self._node.name, env.get("watcher", str, ""))
        target = ActorRef(link.name, env.get("actor", str, ""))
        watched = self._watching.get(link.name, set())
        if (watcher, target) not in watched:
            return  # demonitored meanwhile
        watched.discard((watcher, target))
        reason = self._reason(env, peer)
        if reason is not None:
            self._node._down(watcher, target, reason)

    def _reason(self, env: wire.Envelope, peer: Peer | None) -> ExitReason | None:
        # The ExitReason a DOWN or CHILD_EXIT carries (None: not a valid one).
        kind = env.get("kind", str, "")
        if kind not in ("stopped", "crashed", "killed", "not running"):
            return None
        error: BaseException | None = None
        if env.tag is not None:
            with contextlib.suppress(CodecError):
                decoded = self._payload(env, peer)
                error = decoded if isinstance(decoded, BaseException) else None
        if error is None and kind == "crashed":
            error = ActorError(env.get("error", str, "crashed"))
        return ExitReason(kind, error)

    def _outcome(self, env: wire.Envelope, peer: Peer | None) -> Any:
        if env.get("ok", bool, False):
            return self._payload(env, peer) if env.tag is not None else None
        value = None
        if env.tag is not None:
            with contextlib.suppress(CodecError):  # not rebuildable here: an ActorError
                value = self._payload(env, peer)
        raise self._error(env, value)

    def _error(self, env: wire.Envelope, value: object) -> BaseException:
        remote_tb = env.get("tb", str, "")
        if isinstance(value, BaseException):
            if remote_tb:
                value.add_note(f"remote traceback (node {env.get('node', str, '?')}):\n{remote_tb}")
            return value
        return ActorError(
            env.get("message", str, "the remote handler failed"),
            type_name=env.get("type", str, ""),
            traceback_text=remote_tb,
        )

    # ------------------------------------------------------------------ serving

    def _payload(self, env: wire.Envelope, peer: Peer | None) -> object:
        """Decode a control message's payload (see ``NodeSecurity.decode``)."""
        assert env.tag is not None
        return self._security.decode(self._node.codec, env.tag, env.data, peer)

    def _arguments(
        self, env: wire.Envelope, peer: Peer | None, *, with_class: bool = False
    ) -> tuple[Any, ...]:
        # A CALL's payload, (args, kwargs), or a SPAWN's, (class, args, kwargs).
        shape = "(class, args, kwargs)" if with_class else "(args, kwargs)"
        decoded = self._payload(env, peer) if env.tag is not None else None
        if not (isinstance(decoded, tuple) and len(decoded) == 2 + with_class):
            raise wire.ProtocolError(f"the payload must be {shape}")
        *_, args, kwargs = decoded
        if not isinstance(args, tuple) or not isinstance(kwargs, dict):
            raise wire.ProtocolError(f"the payload must be {shape}")
        return decoded

    def _reply(
        self, link: _Link, rid: int, result: Any = None, error: BaseException | None = None
    ) -> None:
        header: dict[str, Any] = {"id": rid, "ok": error is None, "node": self._node.name}
        if error is None:
            try:
                payload = None if result is None else self._node.codec.encode(result)
            except CodecError as exc:
                self._reply(link, rid, error=exc)  # the asker learns why
                return
            self._send_surely(link, wire.encode_envelope(wire.REPLY, header, payload))
            return
        header["type"] = f"{type(error).__module__}.{type(error).__qualname__}"
        header["message"] = str(error)
        header["tb"] = "".join(traceback.format_exception(error))
        try:
            payload = self._node.codec.encode(error)
        except CodecError:
            payload = None  # the asker gets an ActorError with the type and traceback
        self._send_surely(link, wire.encode_envelope(wire.REPLY, header, payload))

    async def _on_call(self, link: _Link, env: wire.Envelope, peer: Peer | None) -> None:
        rid = env.get("id", int)
        actor, method = env.get("actor", str, ""), env.get("method", str, "")
        try:
            args, kwargs = self._arguments(env, peer)
            ref = ActorRef(self._node.name, actor)
            reply = await self._node._accept(ref, method, args, kwargs, ask=rid is not None)
            if reply is None:
                return
        except Exception as exc:
            if rid is None:
                log.warning(
                    "node %r: a tell from node %r failed: %r", self._node.name, link.name, exc
                )
            else:
                self._reply(link, rid, error=exc)
            return
        if reply.done.is_set():  # handled already, in this task
            self._reply(link, rid, reply.value, reply.error)
            return
        self._serving[(link.name, rid)] = reply
        # Answered from the actor's task as its handler returns: no task and
        # no scheduling hop of our own between the result and the reply.
        reply.on_done = functools.partial(self._answer, link, rid, reply)

    def _answer(self, link: _Link, rid: int, reply: Any) -> None:
        if self._serving.pop((link.name, rid), None) is not None and not reply.abandoned:
            self._reply(link, rid, reply.value, reply.error)

    async def _on_cancel(self, link: _Link, env: wire.Envelope, peer: Peer | None) -> None:
        reply = self._serving.pop((link.name, env.get("id", int, 0)), None)
        if reply is not None:
            reply.abandon()

    async def _on_reply(self, link: _Link, env: wire.Envelope, peer: Peer | None) -> None:
        self._settle(link, env, peer)

    def _settle(
        self, link: _Link, env: wire.Envelope, peer: Peer | None, reader: ReadTurns | None = None
    ) -> None:
        # ``reader``: the asker reading ``link`` read this (see _take_reply).
        pending = self._pending.get(env.get("id", int, 0))
        if pending is None or pending.node != link.name:
            return  # late (the asker gave up), or not ours to answer
        pending.envelope, pending.peer = env, peer
        if reader is not None and reader.asker is pending:
            pending.done.set()  # it read its own reply: it is running, not waiting
        else:
            pending.finish()  # wherever it waits, the serve task's read included

    async def _on_spawn(self, link: _Link, env: wire.Envelope, peer: Peer | None) -> None:
        self._nursery.start_soon(self._spawn_here, link, env, peer)

    async def _spawn_here(self, link: _Link, env: wire.Envelope, peer: Peer | None) -> None:
        rid = env.get("id", int, 0)
        try:
            cls, args, kwargs = self._arguments(env, peer, with_class=True)
            supervisor = env.get("supervisor", str)
            ref = await self._node.spawn(
                cls,
                *args,
                name=env.get("name", str),
                mailbox_size=env.get("mailbox_size", int, 1000),
                shutdown=env.get("shutdown", float, 5.0),
                supervisor=None if supervisor is None else ActorRef(link.name, supervisor),
                **kwargs,
            )
        except Exception as exc:
            self._reply(link, rid, error=exc)
            return
        self._send(link, wire.REPLY, {"id": rid, "ok": True, "name": ref.name})

    async def _on_stop(self, link: _Link, env: wire.Envelope, peer: Peer | None) -> None:
        self._nursery.start_soon(self._stop_here, link, env)

    async def _stop_here(self, link: _Link, env: wire.Envelope) -> None:
        rid = env.get("id", int, 0)
        ref = ActorRef(self._node.name, env.get("actor", str, ""))
        try:
            if env.get("kill", bool, False):
                await self._node.kill(ref)
            else:
                await self._node.stop(ref)
        except Exception as exc:
            self._reply(link, rid, error=exc)
            return
        self._reply(link, rid)

    async def _on_lookup(self, link: _Link, env: wire.Envelope, peer: Peer | None) -> None:
        found = self._node.lookup_local(env.get("name", str, "")) is not None
        self._send(link, wire.REPLY, {"id": env.get("id", int, 0), "ok": True, "found": found})

    async def _on_ping(self, link: _Link, env: wire.Envelope, peer: Peer | None) -> None:
        return  # _receive already noted that the peer is alive

    async def _on_bye(self, link: _Link, env: wire.Envelope, peer: Peer | None) -> None:
        log.info("node %r: node %r left", self._node.name, link.name)
        self._lose(link, f"node {link.name!r} closed")

    _handlers: ClassVar[dict[bytes, _Handler]] = {
        wire.CALL: _on_call,
        wire.CANCEL: _on_cancel,
        wire.REPLY: _on_reply,
        wire.SPAWN: _on_spawn,
        wire.STOP: _on_stop,
        wire.LOOKUP: _on_lookup,
        wire.PING: _on_ping,
        wire.BYE: _on_bye,
        wire.MONITOR: _on_monitor,
        wire.DEMONITOR: _on_demonitor,
        wire.DOWN: _on_down,
        wire.CHILD_EXIT: _on_child_exit,
        wire.SUPERVISE: _on_supervise,
        wire.EVENT: _on_event,
        wire.TOPICS: _on_topics,
    }

    # ------------------------------------------------------------------ liveness

    async def _beat(self) -> None:
        while True:
            await trio.sleep(self._heartbeat)
            now = trio.current_time()
            for link in self._all_links():
                if link.alive and now - link.last_seen > self._timeout:
                    log.warning(
                        "node %r: node %r lost (nothing heard for %.1f s)",
                        self._node.name,
                        link.name,
                        now - link.last_seen,
                    )
                    self._lose(link, f"node {link.name!r} lost")
                if link.endpoint and not link.alive:
                    self._hello(link)  # rejoin once it answers
                else:
                    self._send(link, wire.PING, {})

    def _all_links(self) -> list[_Link]:
        links = {id(link): link for link in self._outbound}
        links.update({id(link): link for link in self._links.values()})
        links.update({id(link): link for link in self._inbound.values() if link.name})
        return list(links.values())

    def _lose(self, link: _Link, why: str) -> None:
        link.alive = False
        self._node._membership_changed()
        for rid, pending in list(self._pending.items()):
            if pending.node == link.name and not pending.done.is_set():
                pending.error = ActorStoppedError(f"{why} before answering request {rid}")
                pending.finish()
        for (name, _), reply in list(self._serving.items()):
            if name == link.name:
                reply.abandon()  # nobody is left to answer
        for watcher, target in self._watching.pop(link.name, set()):
            self._node._down(watcher, target, ExitReason("node lost"))
        for supervisor, child in self._children.pop(link.name, set()):
            self._orphans.setdefault(link.name, set()).add(child)
            self._node._child_exit(supervisor, child, ExitReason("node lost"))
        self._node._node_lost(link.name, why)

    async def aclose(self) -> None:
        """Tell peers we are leaving, then close the sockets."""
        for link in self._all_links():
            if link.alive:
                self._send(link, wire.BYE, {})
        await trio.lowlevel.checkpoint()


def _who(peer: Peer | None) -> str:
    if peer is None:
        return "an unknown peer"
    if peer.public_key is not None:
        return f"{peer.address} (key {z85_encode(peer.public_key).decode()})"
    return peer.address or peer.transport


def _cannot_import(exc: BaseException, cls: type) -> bool:
    # The remote decoder's error names what it could not find.
    text = f"{exc} {' '.join(getattr(exc, '__notes__', ()))}"
    return ("No module named" in text or "has no attribute" in text) and (
        cls.__module__.split(".")[0] in text or cls.__qualname__ in text
    )


def _by_value(
    encode: Callable[[object], tuple[bytes, bytes]], obj: object, cls: type
) -> tuple[bytes, bytes]:
    import sys

    module = sys.modules.get(cls.__module__)
    if module is None or cls.__module__ == "__main__":
        return encode(obj)
    cloudpickle.register_pickle_by_value(module)
    try:
        return encode(obj)
    finally:
        cloudpickle.unregister_pickle_by_value(module)
