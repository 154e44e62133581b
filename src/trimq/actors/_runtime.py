"""A node's runtime: its cells, and the routing of every message and control
to a local cell or, through the cluster, to another node.

:class:`NodeRuntime` is what the rest of the local half works through:
refs, actors and supervisors reach it as the current :class:`Runtime` of
their task (``_ref``); cells reach it through ``_host``, the network half
through ``_inbound``. It owns the table of cells, the monitors and links
(``_watch``), the local event bus (``_bus``) and, once the node talks to
others, the cluster. Each operation on an actor lives here once, with its
local/remote branch.
"""

from __future__ import annotations

import functools
import itertools
import logging
from collections.abc import Awaitable, Callable
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

import trio

from ..zmtp import curve_key
from ._actor import Actor
from ._bus import Bus
from ._cell import Cell
from ._cluster import Cluster
from ._codec import CodecError
from ._errors import ActorNotFoundError
from ._exit import ExitReason
from ._host import Host
from ._inbound import Inbound
from ._link import NetworkOptions, NodeRef
from ._local import SpawnOptions
from ._mail import STOP, Call, Reply
from ._ref import ActorRef
from ._task import run
from ._watch import Watches

if TYPE_CHECKING:
    from ..patterns import Context
    from ._codec import Codec
    from ._node import Node
    from ._security import NodeSecurity
    from ._timer import Timer

__all__ = ["SPAWNS_PER_YIELD", "NodeRuntime"]

log = logging.getLogger("trimq.actors")

SPAWNS_PER_YIELD = 64


class NodeRuntime:
    """Everything one node does locally, and where each call goes (see the module docs)."""

    #: The public face of this node (it binds itself here as it is made).
    node: Node

    def __init__(
        self,
        name: str,
        context: Context,
        nursery: trio.Nursery,
        codec: Codec,
        security: NodeSecurity,
        network: NetworkOptions,
    ) -> None:
        self.name = name
        self.codec = codec
        self.cells: dict[str, Cell] = {}
        self.watches = Watches(self.cells, self.post_later)
        self.bus = Bus(name, context, nursery, self.cells)
        self.cluster: Cluster | None = None  # made when the node first listens or connects
        #: Set once the node closes (or its tasks are cancelled): no restarts then.
        self.closing = False
        self._context = context
        self._nursery = nursery
        self._security = security
        self._network = network
        self._inbound = Inbound(self)
        self._host = Host(self)
        self._names = itertools.count(1)
        self._spawns = 0
        self._placed = 0  # spreads spawn(on="*" or a tag) over the matching nodes
        self._members = trio.Event()  # set (and replaced) when peers change

    def networked(self) -> Cluster:
        """The cluster, made on first use."""
        if self.cluster is None:
            self.cluster = Cluster(
                self._inbound, self._context, self._nursery, self._security, self._network
            )
            for prefix in self.bus.prefixes:
                self.cluster.events.subscribe(prefix)
        return self.cluster

    async def connect(self, endpoint: str, key: bytes | str | None) -> NodeRef:
        """See :meth:`Node.connect`."""
        if key is not None and not self._security.secure:
            raise ValueError(
                "key= given to an insecure node: without keys of its own it cannot check "
                "the other node's key (open it with keys= to use CURVE)"
            )
        return await self.networked().connect(
            endpoint, None if key is None else curve_key(key, "key")
        )

    @property
    def peers(self) -> list[NodeRef]:
        """The other nodes currently reachable."""
        return [] if self.cluster is None else self.cluster.peers

    async def membership_changed(self) -> None:
        """Return at the next change of :attr:`peers`."""
        await self._members.wait()

    def peers_changed(self) -> None:
        """Wake :meth:`membership_changed`'s waiters."""
        self._members.set()
        self._members = trio.Event()

    # ------------------------------------------------------------------ spawning

    async def spawn(
        self,
        cls: type,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        name: str | None,
        mailbox_size: int,
        supervisor: ActorRef | None,
        shutdown: float,
        on: NodeRef | str | None,
    ) -> ActorRef:
        """Start an actor here or where ``on`` says (see :meth:`Node.spawn`)."""
        if not (isinstance(cls, type) and issubclass(cls, Actor)):
            raise TypeError(f"spawn() needs an Actor subclass, got {cls!r}")
        if mailbox_size == 1 or mailbox_size < 0:
            raise ValueError(f"mailbox_size must be 0 (no limit) or at least 2, got {mailbox_size}")
        target = self._placement(on)
        if target != self.name:
            options = SpawnOptions(
                name, mailbox_size, float(shutdown), None if supervisor is None else supervisor.name
            )
            return await self.networked().children.spawn(target, cls, args, kwargs, options)
        if self.closing:
            raise trio.ClosedResourceError(f"node {self.name!r} is closing")
        if name is None:
            name = f"{cls.__name__}-{next(self._names)}"
            while name in self.cells:
                name = f"{cls.__name__}-{next(self._names)}"
        elif name in self.cells:
            raise ValueError(f"an actor named {name!r} already runs on node {self.name!r}")
        ref = ActorRef(self.name, name)
        # A failing __init__ raises before any socket is made.
        first = self.make_actor(cls, ref, args, kwargs)
        # The mailbox holds mailbox_size messages in all: the inproc pipe's
        # limit is the sender's sndhwm plus the receiver's rcvhwm.
        send_hwm, recv_hwm = (1, mailbox_size - 1) if mailbox_size else (0, 0)
        inbox, outbox = self._context.pipe(
            f"inproc://trimq.actors/{self.name}/{name}", sndhwm=send_hwm, rcvhwm=recv_hwm, linger=0
        )
        cell = Cell(self._host, ref, cls, args, kwargs, first, inbox, outbox, supervisor, shutdown)
        self.cells[name] = cell
        if supervisor is not None and supervisor.node == self.name:
            parent = self.cells.get(supervisor.name)
            if parent is not None:
                parent.add_child(name)
        # start_soon and a wait of the cell's rather than nursery.start(), whose
        # temporary nursery costs more than the rest of a spawn. Without
        # on_start there is nothing to wait for: the task starts at the next
        # schedule point, which spawn() passes every SPAWNS_PER_YIELD calls (as
        # sockets do for sends), since a scheduling round trip is a quarter of
        # a spawn's cost.
        waits = cls.on_start is not Actor.on_start
        if waits:
            cell.start = "waiting"
        self._nursery.start_soon(run, cell, name=name)  # the task is named after it
        try:
            if not waits:
                await trio.lowlevel.checkpoint_if_cancelled()
                self._spawns += 1
                if not self._spawns % SPAWNS_PER_YIELD:
                    await trio.lowlevel.cancel_shielded_checkpoint()
            else:
                await cell.wait_started()
        except BaseException:
            cell.kill_now()  # cancelled while it starts: it must not outlive spawn()
            raise
        if isinstance(cell.start, BaseException):
            raise cell.start
        return ref

    def make_actor(
        self, cls: type[Actor], ref: ActorRef, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Actor:
        """A new instance for an incarnation, bound to its ref and this node."""
        actor = cls(*args, **kwargs)
        actor.ref = ref
        actor.node = self.node
        return actor

    def _placement(self, on: NodeRef | str | None) -> str:
        # The name of the node that ``spawn(on=...)`` means.
        if on is None:
            return self.name
        wanted = on.name if isinstance(on, NodeRef) else on
        if wanted == self.name:
            return self.name
        # Only nodes trusted to host ours (the ``host`` right): a peer's own
        # claims (its name, its tags) never make it a target otherwise.
        hosts = [] if self.cluster is None else self.cluster.hosts
        names = [peer.name for peer in hosts]
        if wanted in names:
            return wanted
        matching = names if wanted == "*" else [p.name for p in hosts if wanted in p.tags]
        if not matching:
            others = sorted({p.name for p in self.peers} - set(names))
            untrusted = f"; not trusted to host: {', '.join(others)}" if others else ""
            raise ActorNotFoundError(
                f"no connected node trusted to host actors is named or tagged {wanted!r} "
                f"(trusted: {', '.join(names) or 'none'}{untrusted}; give a node the "
                "'host' right in allow=, or connect to it with key=)"
            )
        self._placed += 1
        return matching[self._placed % len(matching)]

    async def lookup(self, name: str) -> ActorRef | None:
        """See :meth:`Node.lookup`."""
        cell = self.cells.get(name)
        if cell is None and self.cluster is not None:
            return await self.cluster.lookup(name)
        await trio.lowlevel.checkpoint()
        return None if cell is None else cell.ref

    # ------------------------------------------------------------------ messages

    def cell(self, ref: ActorRef, method: str | None = None) -> Cell:
        """The cell ``ref`` names here (with a handler ``method``, if given).

        Raises:
            ActorNotFoundError: No such actor runs here.
            AttributeError: It has no handler ``method``.
        """
        if ref.node != self.name:
            raise ActorNotFoundError(
                f"{ref!r} lives on node {ref.node!r}, which this node ({self.name!r}) "
                "is not connected to"
            )
        cell = self.cells.get(ref.name)
        if cell is None:
            raise ActorNotFoundError(f"no actor named {ref.name!r} runs on node {self.name!r}")
        if method is not None and method not in cell.handlers:
            raise AttributeError(
                f"{type(cell.actor).__name__} actor {ref.name!r} has no handler {method!r}"
            )
        return cell

    def _remote(self, ref: ActorRef) -> Cluster:
        if self.cluster is None:
            raise ActorNotFoundError(
                f"{ref!r} lives on node {ref.node!r}, and this node ({self.name!r}) is not "
                "networked: open it with listen= or connect it to other nodes"
            )
        return self.cluster

    async def tell(
        self, ref: ActorRef, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        """See :meth:`ActorRef.tell`."""
        if ref.node != self.name:
            await self._remote(ref).tell(ref, method, args, kwargs)
            return
        cell = self.cell(ref, method)
        await cell.post(Call(method, args, kwargs, None))

    async def ask(
        self,
        ref: ActorRef,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None,
    ) -> Any:
        """See :meth:`ActorRef.ask`."""
        if ref.node != self.name:
            return await self._remote(ref).ask(ref, method, args, kwargs, timeout)
        cell = self.cell(ref, method)
        reply = Reply()
        try:
            with trio.fail_after(timeout) if timeout is not None else nullcontext():
                await cell.post(Call(method, args, kwargs, reply))
                await reply.done.wait()
        except trio.TooSlowError:
            reply.abandon()
            raise TimeoutError(
                f"actor {ref.name!r} did not answer {method}() within {timeout} s; "
                "its handler was cancelled"
            ) from None
        except BaseException:
            reply.abandon()
            raise
        if reply.error is not None:
            raise reply.error
        return reply.value

    async def stop(self, ref: ActorRef) -> None:
        """See :meth:`ActorRef.stop`."""
        if ref.node != self.name:
            await self._remote(ref).stop(ref, kill=False)
            return
        cell = self.cell(ref)
        generation = cell.generation
        await cell.deliver(STOP)
        await cell.wait_over(generation)

    async def kill(self, ref: ActorRef) -> None:
        """See :meth:`ActorRef.kill`."""
        if ref.node != self.name:
            await self._remote(ref).stop(ref, kill=True)
            return
        cell = self.cell(ref)
        generation = cell.generation
        cell.kill_now()
        await cell.wait_over(generation)

    # ------------------------------------------------------------------ supervision

    async def suspend(self, ref: ActorRef) -> None:
        """End ``ref``'s current incarnation for a restart (its supervisor's call).

        The actor finishes its current message (not the queued ones, which
        wait for the next incarnation) and runs ``on_stop``, within its
        ``shutdown`` time, after which it is killed. Its supervisor is not
        notified: it asked for this. Follow with :meth:`restart` or :meth:`terminate`.
        """
        if ref.node != self.name:
            await self._remote(ref).children.supervise(ref, "suspend")
            return
        await self._halt(self.cell(ref))

    async def restart(self, ref: ActorRef) -> None:
        """Start a new incarnation of an actor whose incarnation ended (its
        supervisor's call); returns once its ``on_restart`` is over."""
        if ref.node != self.name:
            await self._remote(ref).children.supervise(ref, "restart")
            return
        cell = self.cell(ref)
        generation = cell.generation
        cell.decide("restart")
        await cell.wait_restarted(generation)

    async def terminate(self, ref: ActorRef) -> None:
        """End an actor for good, within its ``shutdown`` time (its supervisor's call).

        Messages left in its mailbox fail with :class:`ActorStoppedError`.
        """
        if ref.node != self.name:
            if self.cluster is not None and ref.node in {p.name for p in self.peers}:
                await self.cluster.children.supervise(ref, "terminate")
            return  # on a lost node it ends by itself (see node_lost)
        cell = self.cells.get(ref.name)
        if cell is None:
            return
        await self._halt(cell)
        cell.decide("terminate")
        await cell.wait_ended()

    async def _halt(self, cell: Cell) -> None:
        generation = cell.generation
        cell.halt()
        await cell.within_shutdown(functools.partial(cell.wait_over, generation))

    def start_timer(
        self,
        ref: ActorRef,
        delay: float,
        interval: float | None,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Timer:
        """See :meth:`Actor.send_after` (the timer ends with the incarnation)."""
        return self.cell(ref, method).start_timer(delay, interval, method, args, kwargs)

    # ------------------------------------------------------------------ monitors and links

    def monitor(self, watcher: ActorRef, target: ActorRef) -> None:
        """See :meth:`Actor.monitor`.

        Raises:
            ActorNotFoundError: ``watcher`` is not running here.
        """
        self.cell(watcher)
        if target.node != self.name and self.cluster is not None:
            self.cluster.monitors.monitor(watcher, target)
            return
        if target.node != self.name or not self.watches.monitor(watcher, target.name):
            self.watches.post_down(watcher.name, target, ExitReason("not running"))

    def demonitor(self, watcher: ActorRef, target: ActorRef) -> None:
        """Stop telling ``watcher`` about ``target`` (a notice already sent stays queued)."""
        if target.node != self.name and self.cluster is not None:
            self.cluster.monitors.demonitor(watcher, target)
            return
        self.watches.demonitor(watcher, target.name)

    def link(self, a: ActorRef, b: ActorRef) -> None:
        """See :meth:`Actor.link`.

        Raises:
            ActorNotFoundError: Either is not running here.
        """
        self.watches.link(self.cell(a), self.cell(b))

    def unlink(self, a: ActorRef, b: ActorRef) -> None:
        """Undo :meth:`link` (nothing happens if they were not linked)."""
        self.watches.unlink(a.name, b.name)

    def start_soon(self, fn: Callable[..., Awaitable[object]], *args: object) -> None:
        """Run ``fn(*args)`` in the node's nursery."""
        self._nursery.start_soon(fn, *args)

    def post_later(self, cell: Cell, call: Call) -> None:
        """Through ``cell``'s mailbox like any message, from a task of its own:
        a notice waits for room rather than being dropped."""
        self._nursery.start_soon(cell.deliver, call)

    # ------------------------------------------------------------------ events

    async def publish(self, topic: str, event: object) -> None:
        """See :meth:`Node.publish`."""
        await self.bus.publish(topic, event)
        if self.cluster is not None:
            self.cluster.events.publish(topic, event)

    async def report(self, topic: str, event: object) -> None:
        """A supervisor's report: published like an event, but never waiting
        for subscribers, so that observers cannot hold up what they observe.
        Dropped if the bus is full, or not sent on if it cannot be encoded."""
        await self.bus.report(topic, event)
        if self.cluster is not None:
            try:
                self.cluster.events.publish(topic, event)
            except CodecError as exc:
                log.debug("node %r: a report on %r cannot travel: %s", self.name, topic, exc)

    async def subscribe(self, ref: ActorRef, prefix: str) -> None:
        """See :meth:`Actor.subscribe`."""
        self.cell(ref)
        if await self.bus.subscribe(ref.name, prefix) and self.cluster is not None:
            self.cluster.events.subscribe(prefix)

    def unsubscribe(self, ref: ActorRef, prefix: str) -> None:
        """See :meth:`Actor.unsubscribe`."""
        if self.bus.unsubscribe(ref.name, prefix) and self.cluster is not None:
            self.cluster.events.unsubscribe(prefix)

    # ------------------------------------------------------------------ closing

    async def aclose(self) -> None:
        """See :meth:`Node.aclose`."""
        self.closing = True
        for cell in reversed(list(self.cells.values())):
            if cell.phase != "ended":
                # Each gets its shutdown time, as a supervisor gives it, for
                # the STOP to find room in its mailbox and for it to end: a
                # full mailbox or an on_stop that hangs must not hold the
                # node open.
                await cell.within_shutdown(_stopper(cell))
        if self.cluster is not None:
            await self.cluster.aclose()


def _stopper(cell: Cell) -> Callable[[], Awaitable[None]]:
    # The first wait delivers STOP (it may wait for room); once the actor is
    # killed for taking too long, only its end is waited for.
    stop = [STOP]

    async def wait() -> None:
        if stop and not await cell.deliver(stop.pop()):
            return  # ended for good already
        await cell.wait_ended()

    return wait
