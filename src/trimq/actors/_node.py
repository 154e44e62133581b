"""A node: hosts actors in one process, each a trio task fed by an inproc PAIR mailbox."""

from __future__ import annotations

import contextlib
import functools
import inspect
import itertools
import logging
import os
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager, nullcontext
from typing import Any, TypeVar, cast

import trio

from ..patterns import Context, Socket
from ..zmtp import SocketType, curve_key
from ._actor import Actor, handler_names, plain_handler_names
from ._cluster import Cluster, NodeRef
from ._codec import Codec, CodecError, DefaultCodec
from ._errors import ActorNotFoundError, ActorStoppedError, LinkedActorError
from ._exit import ExitReason
from ._ref import ActorRef, _current_node
from ._security import KeyLike, NodeSecurity

__all__ = ["Node", "Timer", "open_node"]

log = logging.getLogger("trimq.actors")

A = TypeVar("A", bound=Actor)

_node_numbers = itertools.count(1)
SPAWNS_PER_YIELD = 64


class _Reply:
    """Where a handler's result goes, for one ask."""

    __slots__ = ("abandoned", "done", "error", "on_done", "scope", "value")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.value: Any = None
        self.error: BaseException | None = None
        self.abandoned = False
        self.scope: trio.CancelScope | None = None  # the running handler's
        #: Called when it completes (an ask from another node sends its reply).
        self.on_done: Callable[[], None] | None = None

    def succeed(self, value: Any) -> None:
        self.value = value
        self.done.set()
        if self.on_done is not None:
            self.on_done()

    def fail(self, error: BaseException) -> None:
        self.error = error
        self.done.set()
        if self.on_done is not None:
            self.on_done()

    def abandon(self) -> None:
        # The asker gave up (timeout, cancellation): the handler must not run,
        # or stop running if it has started.
        self.abandoned = True
        if self.scope is not None:
            self.scope.cancel()


class _Call:
    """One message in a mailbox. Passed as a Python object: never pickled locally."""

    __slots__ = ("args", "kwargs", "method", "reply")

    def __init__(
        self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any], reply: _Reply | None
    ) -> None:
        self.method = method
        self.args = args
        self.kwargs = kwargs
        self.reply = reply


class _Resume(_Call):
    """The rest of a call that ``Node._handle_now`` began: what its handler
    returned to be waited for, which the actor's own task does."""

    __slots__ = ("awaitable",)

    def __init__(self, awaitable: Any, call: _Call) -> None:
        super().__init__(call.method, call.args, call.kwargs, call.reply)
        self.awaitable = awaitable


_STOP = object()  # the graceful-stop marker, queued behind earlier messages


class Timer:
    """A message an actor scheduled for itself (see :meth:`Actor.send_after`).

    .. versionadded:: 0.1
    """

    __slots__ = ("_scope",)

    def __init__(self) -> None:
        self._scope = trio.CancelScope()

    def cancel(self) -> None:
        """Send no more messages (a message already sent stays in the mailbox)."""
        self._scope.cancel()

    @property
    def cancelled(self) -> bool:
        """True once :meth:`cancel` was called."""
        return self._scope.cancel_called


class _Flag:
    """A one-shot event that costs no trio.Event (and its set of tasks) until
    somebody waits for it: a node has two per actor, and most are never awaited."""

    __slots__ = ("_event", "_set")

    def __init__(self) -> None:
        self._set = False
        self._event: trio.Event | None = None

    def set(self) -> None:
        self._set = True
        if self._event is not None:
            self._event.set()

    def is_set(self) -> bool:
        return self._set

    async def wait(self) -> None:
        if self._event is None:
            self._event = trio.Event()
            if self._set:
                self._event.set()
        await self._event.wait()


# Shared stand-in for an empty set of names, replaced by a real set on the
# first add (see _added): most actors never monitor, link or subscribe.
# A frozenset, so a forgotten replacement fails loudly instead of being shared.
_NO_NAMES: set[str] = cast("set[str]", frozenset())


_NO_CHILDREN: list[str] = cast("list[str]", ())


def _added(names: set[str], name: str) -> set[str]:
    if names is _NO_NAMES:
        names = set()
    names.add(name)
    return names


def _discard(names: set[str], name: str) -> None:
    if name in names:
        names.discard(name)


class _Start:
    """How a spawn learns that the actor's first ``on_start`` is over."""

    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.error: BaseException | None = None


def _answer(cell: _Cell, error: BaseException | None) -> None:
    start, cell.start = cell.start, None  # an idle actor keeps nothing of its spawn
    assert start is not None
    start.error = error
    start.done.set()


class _Tap(Actor):
    """Hands the events it subscribed to to a task (see :meth:`Node.events`)."""

    def __init__(self, prefix: str, out: trio.MemorySendChannel[tuple[str, Any]]) -> None:
        self._prefix = prefix
        self._out = out

    async def on_start(self) -> None:
        await self.subscribe(self._prefix)

    async def on_event(self, topic: str, event: Any) -> None:
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await self._out.send((topic, event))


class _Crashed(Exception):
    """Internal: a handler raised; the actor ends."""


class _Cell:
    """One named actor on this node: its mailbox, its task, and its current incarnation.

    The mailbox outlives incarnations: when a supervisor restarts the actor,
    the new instance takes over the messages still queued.
    """

    __slots__ = (
        "actor",
        "args",
        "busy",
        "children",
        "cls",
        "decision",
        "decision_value",
        "done",
        "fatal",
        "handlers",
        "idle",
        "inbox",
        "incarnation_done",
        "interrupt",
        "killed",
        "kwargs",
        "last_exit",
        "links",
        "outbox",
        "ref",
        "reply",
        "restarted",
        "scope",
        "shutdown",
        "start",
        "stop_scope",
        "supervisor",
        "suspended",
        "timers",
        "timers_allowed",
        "topics",
        "watching",
    )

    def __init__(
        self,
        ref: ActorRef,
        cls: type[Actor],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        first: Actor,
        inbox: Socket,
        outbox: Socket,
        supervisor: ActorRef | None,
        shutdown: float,
    ) -> None:
        self.ref = ref
        # What each restart makes a fresh instance from (fields, not a closure:
        # a closure is seven objects for the garbage collector to walk).
        self.cls = cls
        self.args = args
        self.kwargs = kwargs
        self.inbox = inbox  # the actor's end of the mailbox
        self.outbox = outbox  # the end every local sender shares
        self.supervisor = supervisor
        self.shutdown = shutdown  # seconds a supervisor's stop may take before a kill
        # Names of the actors it supervises, in start order (shared stand-in until one).
        self.children: list[str] = _NO_CHILDREN
        self.done = _Flag()  # the cell has ended for good
        self.watching = _NO_NAMES  # names of the actors this one monitors
        self.topics = _NO_NAMES  # event-bus prefixes it subscribed to
        # Timer tasks run in the node's nursery; each incarnation cancels its own
        # (a nursery per actor would cost more than all its timers usually do).
        self.timers: list[Timer] | None = None
        self.timers_allowed = False
        self.reply: _Reply | None = None  # the ask being handled now
        self.decision: trio.Event | None = None  # the supervisor's verdict, once awaited
        self.decision_value = ""
        self.restarted: trio.Event | None = None  # set once a restart's on_start is over
        self.start: _Start | None = None  # the spawn() waiting for the first on_start
        self.last_exit: ExitReason | None = None  # how the previous incarnation ended
        self.begin(first)

    def begin(self, actor: Actor) -> None:
        """Make ``actor`` the current incarnation, with fresh per-incarnation state."""
        self.actor = actor
        self.handlers = handler_names(type(actor))
        self.scope = trio.CancelScope()
        self.stop_scope: trio.CancelScope | None = None  # around on_stop, once it runs
        self.incarnation_done = _Flag()
        self.links = _NO_NAMES  # actors whose abnormal end ends this incarnation
        # What ended this incarnation from outside its task: a linked actor's
        # end, or a handler that crashed in another task (see _handle_now).
        self.fatal: Exception | None = None
        self.idle = False  # waiting for a message, none queued (see _handle_now)
        self.busy = False  # inside a handler
        self.interrupt = False  # end after the current handler (a shutdown)
        self.killed = False
        self.suspended = False  # stopped by its supervisor, awaiting a restart

    def kill_now(self) -> None:
        """Cancel the current incarnation, its handler and ``on_stop`` included."""
        self.killed = True
        self.scope.cancel()
        if self.stop_scope is not None:
            self.stop_scope.cancel()


async def _call_hook(hook: Any) -> None:
    result = hook()
    if inspect.isawaitable(result):
        await result


class Node:
    """Hosts actors in this process. Create it with :func:`open_node`.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        name: str,
        context: Context,
        nursery: trio.Nursery,
        codec: Codec,
        security: NodeSecurity,
        network: dict[str, Any],
    ) -> None:
        self.name = name
        #: Encodes payloads that leave the process (see :class:`Codec`).
        self.codec = codec
        self._context = context
        self._nursery = nursery
        self._cells: dict[str, _Cell] = {}
        self._watchers: dict[str, set[ActorRef]] = {}  # actor name -> its monitors
        self._subscribers: dict[str, set[str]] = {}  # event prefix -> actor names
        self._bus_pub: Socket | None = None
        self._bus_sub: Socket | None = None
        self._names = itertools.count(1)
        self._spawns = 0
        self._security = security
        self._network_options = network  # Cluster's keyword arguments, for when it is needed
        self._cluster: Cluster | None = None
        self._placed = 0  # spreads spawn(on="*" or a tag) over the matching nodes
        self._members = trio.Event()  # set (and replaced) when peers change
        self._closing = False

    def __repr__(self) -> str:
        return f"<trimq.actors.Node {self.name!r} {len(self._cells)} actors>"

    # ------------------------------------------------------------------ spawning

    async def spawn(
        self,
        cls: type[A],
        /,
        *args: Any,
        name: str | None = None,
        mailbox_size: int = 1000,
        supervisor: ActorRef | None = None,
        shutdown: float = 5.0,
        on: NodeRef | str | None = None,
        **kwargs: Any,
    ) -> ActorRef:
        """Create an actor of ``cls`` with ``cls(*args, **kwargs)`` and start it.

        Returns once its ``on_start`` has run.

        With ``on``, it starts on another node: the class, ``args`` and
        ``kwargs`` travel with the codec (the class by value, with cloudpickle,
        if that node cannot import it), and the returned ref works like a
        local one.

        Args:
            cls: An :class:`Actor` subclass.
            *args: Passed to ``cls``.
            name: Unique on this node; default ``"<ClassName>-<n>"``.
            mailbox_size: Messages its mailbox holds before ``tell`` and
                ``ask`` wait (0: no limit; otherwise at least 2).
            supervisor: The supervisor that decides what happens when this
                actor ends (see :class:`Supervisor`, which passes it); ``None``
                for an actor that simply ends.
            shutdown: Seconds a supervisor gives it to finish its current
                message and ``on_stop`` when stopping it, before killing it.
            on: Where to start it: a :class:`NodeRef` or node name, a tag
                some connected node offers (``"gpu"``, ``"region=eu"``), or
                ``"*"`` for any connected node (in turn). ``None``: here.
            **kwargs: Passed to ``cls``.

        Raises:
            ValueError: ``name`` is taken, or ``mailbox_size`` is 1 or negative.
            TypeError: ``cls`` is not an Actor subclass.
            ActorNotFoundError: No connected node matches ``on``.
            Exception: Whatever ``cls(...)`` or its ``on_start`` raised.
        """
        if not (isinstance(cls, type) and issubclass(cls, Actor)):
            raise TypeError(f"spawn() needs an Actor subclass, got {cls!r}")
        if mailbox_size == 1 or mailbox_size < 0:
            raise ValueError(f"mailbox_size must be 0 (no limit) or at least 2, got {mailbox_size}")
        target = self._placement(on)
        if target != self.name:
            options: dict[str, Any] = {
                "name": name,
                "mailbox_size": mailbox_size,
                "shutdown": float(shutdown),
            }
            if supervisor is not None:
                options["supervisor"] = supervisor.name  # on this node
            return await self._networked().spawn(target, cls, args, kwargs, options)
        if self._closing:
            raise trio.ClosedResourceError(f"node {self.name!r} is closing")
        if name is None:
            name = f"{cls.__name__}-{next(self._names)}"
            while name in self._cells:
                name = f"{cls.__name__}-{next(self._names)}"
        elif name in self._cells:
            raise ValueError(f"an actor named {name!r} already runs on node {self.name!r}")
        ref = ActorRef(self.name, name)
        first = self._make(cls, ref, args, kwargs)  # a failing __init__ raises before any socket
        # The mailbox holds mailbox_size messages in all: the inproc pipe's
        # limit is the sender's sndhwm plus the receiver's rcvhwm.
        send_hwm, recv_hwm = (1, mailbox_size - 1) if mailbox_size else (0, 0)
        inbox, outbox = self._context.pipe(
            f"inproc://trimq.actors/{self.name}/{name}", sndhwm=send_hwm, rcvhwm=recv_hwm, linger=0
        )
        cell = _Cell(ref, cls, args, kwargs, first, inbox, outbox, supervisor, shutdown)
        self._cells[name] = cell
        if supervisor is not None and supervisor.name in self._cells:
            parent = self._cells[supervisor.name]
            if parent.children is _NO_CHILDREN:
                parent.children = []
            parent.children.append(name)
        # start_soon and an event rather than nursery.start(), whose temporary
        # nursery costs more than the rest of a spawn. Without on_start there is
        # nothing to wait for: the task starts at the next schedule point, which
        # spawn() passes every SPAWNS_PER_YIELD calls (as sockets do for sends),
        # since a scheduling round trip is a quarter of a spawn's cost.
        start = cell.start = None if cls.on_start is Actor.on_start else _Start()
        self._nursery.start_soon(self._run, cell, name=name)  # the task is named after it
        try:
            if start is None:
                await trio.lowlevel.checkpoint_if_cancelled()
                self._spawns += 1
                if not self._spawns % SPAWNS_PER_YIELD:
                    await trio.lowlevel.cancel_shielded_checkpoint()
            else:
                await start.done.wait()
        except BaseException:
            cell.kill_now()  # cancelled while it starts: it must not outlive spawn()
            raise
        if start is not None and start.error is not None:
            raise start.error
        return ref

    def _make(
        self, cls: type[Actor], ref: ActorRef, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Actor:
        actor = cls(*args, **kwargs)
        actor.ref = ref
        actor.node = self
        return actor

    async def lookup(self, name: str) -> ActorRef | None:
        """The reference of the actor named ``name``: on this node, else on the
        first connected node that has one; ``None`` if none does."""
        ref = self.lookup_local(name)
        if ref is None and self._cluster is not None:
            return await self._cluster.lookup(name)
        await trio.lowlevel.checkpoint()
        return ref

    def lookup_local(self, name: str) -> ActorRef | None:
        """The reference of the actor named ``name`` on this node, or ``None``."""
        cell = self._cells.get(name)
        return None if cell is None else cell.ref

    # ------------------------------------------------------------------ other nodes

    async def connect(self, endpoint: str, *, key: bytes | str | None = None) -> NodeRef:
        """Join the node listening at ``endpoint``; returns once it answered.

        One connection carries messages both ways, so the other node can reach
        this one's actors too. If the connection breaks, it is re-established
        by itself; meanwhile the node counts as lost (see ``timeout``).

        Args:
            endpoint: The other node's ``listen`` endpoint.
            key: Its public CURVE key (40 Z85 characters or 32 bytes), needed
                unless this node is insecure; it is trusted from then on.

        Raises:
            ConnectionError: No node answered within twice the node's ``timeout``.
            ValueError: A secure node without ``key``, or an insecure one
                connecting off loopback.
        """
        if key is not None and not self._security.secure:
            raise ValueError(
                "key= given to an insecure node: without keys of its own it cannot check "
                "the other node's key (open it with keys= to use CURVE)"
            )
        return await self._networked().connect(
            endpoint, None if key is None else curve_key(key, "key")
        )

    @property
    def peers(self) -> list[NodeRef]:
        """The other nodes currently reachable."""
        return [] if self._cluster is None else self._cluster.peers

    @property
    def endpoints(self) -> list[str]:
        """Where this node listens (its ``listen`` endpoints, as bound)."""
        return [] if self._cluster is None else list(self._cluster.endpoints)

    def _placement(self, on: NodeRef | str | None) -> str:
        # The name of the node that ``spawn(on=...)`` means.
        if on is None:
            return self.name
        wanted = on.name if isinstance(on, NodeRef) else on
        if wanted == self.name:
            return self.name
        peers = self.peers
        names = [peer.name for peer in peers]
        if wanted in names:
            return wanted
        matching = names if wanted == "*" else [p.name for p in peers if wanted in p.tags]
        if not matching:
            raise ActorNotFoundError(
                f"no connected node is named or tagged {wanted!r} "
                f"(connected: {', '.join(names) or 'none'})"
            )
        self._placed += 1
        return matching[self._placed % len(matching)]

    def _networked(self) -> Cluster:
        if self._cluster is None:
            self._cluster = Cluster(
                self, self._context, self._nursery, self._security, **self._network_options
            )
        return self._cluster

    async def membership_changed(self) -> None:
        """Return at the next change of :attr:`peers`: a node joined, came
        back, was lost or left. Loop on it to wait for a condition::

            with trio.fail_after(10):
                while "worker-1" not in [peer.name for peer in node.peers]:
                    await node.membership_changed()
        """
        await self._members.wait()

    def _membership_changed(self) -> None:
        self._members.set()
        self._members = trio.Event()

    def _node_lost(self, name: str, why: str) -> None:
        """Another node stopped answering (called by the cluster).

        Its actors' monitors of ours are forgotten (our watchers of its actors
        were told by the cluster). Our actors that it supervised are ended:
        its supervisor counts them lost and starts them again elsewhere, and
        a partitioned node must not keep a second copy running.
        """
        for watchers in self._watchers.values():
            for watcher in [w for w in watchers if w.node == name]:
                watchers.discard(watcher)
        for cell in list(self._cells.values()):
            if cell.supervisor is not None and cell.supervisor.node == name:
                log.warning(
                    "actor %r: its supervisor's node %r is lost; ending it", cell.ref.name, name
                )
                self._nursery.start_soon(self.terminate, cell.ref)

    def _child_exit(self, supervisor: ActorRef, child: ActorRef, reason: ExitReason) -> None:
        # A child on another node ended (or its node was lost): its supervisor decides.
        parent = self._cells.get(supervisor.name)
        if parent is not None:
            self._post_later(parent, _Call("on_child_exit", (child, reason), {}, None))

    @property
    def actors(self) -> list[ActorRef]:
        """References of the actors running on this node, oldest first."""
        return [cell.ref for cell in self._cells.values()]

    # ------------------------------------------------------------------ messages

    def _cell(self, ref: ActorRef, method: str | None = None) -> _Cell:
        if ref.node != self.name:
            raise ActorNotFoundError(
                f"{ref!r} lives on node {ref.node!r}, which this node ({self.name!r}) "
                "is not connected to"
            )
        cell = self._cells.get(ref.name)
        if cell is None:
            raise ActorNotFoundError(f"no actor named {ref.name!r} runs on node {self.name!r}")
        if method is not None and method not in cell.handlers:
            raise AttributeError(
                f"{type(cell.actor).__name__} actor {ref.name!r} has no handler {method!r}"
            )
        return cell

    async def _post(self, cell: _Cell, message: object) -> None:
        # Every tell and ask passes here: the socket call itself, not _deliver,
        # which would add a coroutine frame per message.
        try:
            await cell.outbox.send_object(message)
        except trio.ClosedResourceError:
            raise ActorStoppedError(f"actor {cell.ref.name!r} has stopped") from None

    async def tell(
        self, ref: ActorRef, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        """Deliver a message without waiting for the result (see :meth:`ActorRef.tell`)."""
        if ref.node != self.name:
            await self._remote(ref).tell(ref, method, args, kwargs)
            return
        cell = self._cell(ref, method)
        await self._post(cell, _Call(method, args, kwargs, None))

    async def ask(
        self,
        ref: ActorRef,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None,
    ) -> Any:
        """Deliver a message and return the result (see :meth:`ActorRef.ask`)."""
        if ref.node != self.name:
            return await self._remote(ref).ask(ref, method, args, kwargs, timeout)
        cell = self._cell(ref, method)
        reply = _Reply()
        try:
            with trio.fail_after(timeout) if timeout is not None else nullcontext():
                await self._post(cell, _Call(method, args, kwargs, reply))
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

    async def _accept(
        self,
        ref: ActorRef,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        ask: bool,
    ) -> _Reply | None:
        # A tell or an ask from another node: handled now if it can be (see
        # _handle_now), else queued; an ask is answered when its reply is done.
        cell = self._cell(ref, method)
        reply = _Reply() if ask else None
        call = _Call(method, args, kwargs, reply)
        if not self._handle_now(cell, call):
            await self._post(cell, call)
        return reply

    def _remote(self, ref: ActorRef) -> Cluster:
        if self._cluster is None:
            raise ActorNotFoundError(
                f"{ref!r} lives on node {ref.node!r}, and this node ({self.name!r}) is not "
                "networked: open it with listen= or connect it to other nodes"
            )
        return self._cluster

    async def stop(self, ref: ActorRef) -> None:
        """Stop an actor gracefully (see :meth:`ActorRef.stop`).

        A supervised actor's supervisor then decides (a permanent child is
        restarted): remove it with ``Supervisor.terminate_child`` instead.
        """
        if ref.node != self.name:
            await self._remote(ref).stop(ref, kill=False)
            return
        cell = self._cell(ref)
        done = cell.incarnation_done
        await self._deliver(cell, _STOP)
        await done.wait()

    async def kill(self, ref: ActorRef) -> None:
        """Stop an actor at once (see :meth:`ActorRef.kill`); a supervisor then decides."""
        if ref.node != self.name:
            await self._remote(ref).stop(ref, kill=True)
            return
        cell = self._cell(ref)
        done = cell.incarnation_done
        cell.kill_now()
        await done.wait()

    # ------------------------------------------------------------------ supervision

    async def suspend(self, ref: ActorRef) -> None:
        """End ``ref``'s current incarnation for a restart (its supervisor's call).

        The actor finishes its current message (not the queued ones, which
        wait for the next incarnation) and runs ``on_stop``, within its
        ``shutdown`` time, after which it is killed. Its supervisor is not
        notified: it asked for this. Follow with :meth:`restart` or :meth:`terminate`.
        """
        if ref.node != self.name:
            await self._remote(ref).supervise(ref, "suspend")
            return
        cell = self._cell(ref)
        cell.suspended = True
        await self._end_incarnation(cell)

    async def restart(self, ref: ActorRef) -> None:
        """Start a new incarnation of an actor whose incarnation ended (its
        supervisor's call); returns once its ``on_start`` is over."""
        if ref.node != self.name:
            await self._remote(ref).supervise(ref, "restart")
            return
        cell = self._cell(ref)
        restarted = cell.restarted = trio.Event()
        self._decide(cell, "restart")
        await restarted.wait()

    async def terminate(self, ref: ActorRef) -> None:
        """End an actor for good, within its ``shutdown`` time (its supervisor's call).

        Messages left in its mailbox fail with :class:`ActorStoppedError`.
        """
        if ref.node != self.name:
            if self._cluster is not None and ref.node in {p.name for p in self.peers}:
                await self._cluster.supervise(ref, "terminate")
            return  # on a lost node it ends by itself (see _node_lost)
        cell = self._cells.get(ref.name)
        if cell is None:
            return
        cell.suspended = True
        await self._end_incarnation(cell)
        self._decide(cell, "terminate")
        await cell.done.wait()

    async def _end_incarnation(self, cell: _Cell) -> None:
        done = cell.incarnation_done
        cell.interrupt = True
        if not cell.busy:
            cell.scope.cancel()  # idle: nothing to finish
        await self._within_shutdown(cell, done)

    async def _within_shutdown(self, cell: _Cell, done: _Flag) -> None:
        # Wait for ``done`` for the actor's shutdown time, then kill it.
        with trio.move_on_after(cell.shutdown):
            await done.wait()
            return
        log.warning("actor %r did not stop within %s s: killing it", cell.ref.name, cell.shutdown)
        cell.kill_now()
        await done.wait()

    def _restart_over(self, cell: _Cell) -> None:
        if cell.restarted is not None:
            cell.restarted.set()
            cell.restarted = None

    def _decide(self, cell: _Cell, verdict: str) -> None:
        cell.decision_value = verdict
        if cell.decision is None:
            cell.decision = trio.Event()
        cell.decision.set()

    # ------------------------------------------------------------------ timers

    def start_timer(
        self,
        ref: ActorRef,
        delay: float,
        interval: float | None,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Timer:
        """Tell ``ref`` ``method`` after ``delay`` s, then every ``interval`` s if given.

        The timer belongs to the actor's current incarnation and ends with it.

        Raises:
            AttributeError: No such handler.
            ActorNotFoundError: The actor is not running.
            ValueError: A negative delay, or an interval that is not positive.
        """
        cell = self._cell(ref, method)
        if delay < 0 or (interval is not None and interval <= 0):
            raise ValueError(f"timer delay must be >= 0 and interval > 0, got {delay}, {interval}")
        if not cell.timers_allowed:
            raise ActorStoppedError(f"actor {ref.name!r} is not running")
        timer = Timer()
        if cell.timers is None:
            cell.timers = []
        cell.timers.append(timer)
        self._nursery.start_soon(self._tick, cell, timer, delay, interval, method, args, kwargs)
        return timer

    async def _tick(
        self,
        cell: _Cell,
        timer: Timer,
        delay: float,
        interval: float | None,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        with timer._scope:
            due = trio.current_time() + delay
            while True:
                await trio.sleep_until(due)
                # A fresh message each time: a handler may keep the one it got.
                if not await self._deliver(cell, _Call(method, args, kwargs, None)):
                    return  # the actor ended for good
                if interval is None:
                    return
                # Fixed rate, but a tick delayed by a full mailbox is not made up.
                due = max(due + interval, trio.current_time())

    # ------------------------------------------------------------------ the actor task

    async def _run(self, cell: _Cell) -> None:
        # One task per cell, through every incarnation. Its refs use this node,
        # whichever node's task spawned it (several nodes in one process).
        _current_node.set(self)
        ended = False  # not cut short by the node's cancellation
        try:
            # None: its first on_start failed, and spawn() raised the error.
            reason = await self._finish(cell, await self._live(cell))
            while reason is not None and cell.supervisor is not None and not self._closing:
                if not cell.suspended:
                    self._tell_supervisor(cell, reason)
                if await self._verdict(cell) != "restart":
                    break
                cell.last_exit = reason
                try:
                    cell.begin(self._make(cell.cls, cell.ref, cell.args, cell.kwargs))
                except Exception as exc:  # a failing constructor is a failed restart
                    log.warning("actor %r could not be rebuilt: %r", cell.ref.name, exc)
                    reason = ExitReason("crashed", exc)
                    cell.suspended = False
                    self._restart_over(cell)
                    continue
                reason = await self._finish(cell, await self._live(cell))
            ended = True
        finally:
            cell.incarnation_done.set()  # also if the node's cancellation cut it short
            if not ended:  # only the node's own cancellation gets out of _run
                self._closing = True
            self._close(cell, tell_watchers=ended)
            cell.done.set()
            if cell.start is not None:  # killed, or the node cancelled, during on_start
                _answer(cell, ActorStoppedError(f"actor {cell.ref.name!r} stopped while starting"))

    async def _verdict(self, cell: _Cell) -> str:
        if cell.decision is None:
            cell.decision = trio.Event()
        await cell.decision.wait()
        verdict, cell.decision = cell.decision_value, None
        return verdict

    def _tell_supervisor(self, cell: _Cell, reason: ExitReason) -> None:
        assert cell.supervisor is not None
        if cell.supervisor.node != self.name and self._cluster is not None:
            if not self._cluster.child_exit(cell.supervisor, cell.ref, reason):
                self._decide(cell, "terminate")  # its supervisor's node is gone
            return
        parent = self._cells.get(cell.supervisor.name)
        if parent is None:
            self._decide(cell, "terminate")  # an orphan: nobody to restart it
            return
        self._post_later(parent, _Call("on_child_exit", (cell.ref, reason), {}, None))

    async def _live(self, cell: _Cell) -> Exception | None:
        # One incarnation, from on_start (or on_restart) to its last message, in
        # its cancel scope; returns the error that crashed it, if one did. The
        # message loop is here rather than in a helper: an idle actor's stack is
        # kept for as long as it lives, one coroutine frame per level.
        actor = cell.actor
        with cell.scope:
            cell.timers_allowed = True
            try:
                if cell.last_exit is not None:  # a restart
                    await _call_hook(functools.partial(actor.on_restart, cell.last_exit))
                elif type(actor).on_start is not Actor.on_start:
                    await _call_hook(actor.on_start)
            except Exception as exc:
                if cell.start is None:  # a first start raises it into spawn()
                    log.warning("actor %r failed to restart: %r", cell.ref.name, exc)
                return exc
            finally:
                self._restart_over(cell)
            if cell.start is not None:
                _answer(cell, None)
            # recv() itself rather than recv_object(), which wraps it: one
            # coroutine frame less per message (the frames are objects either way).
            inbox = cell.inbox
            try:
                while not cell.interrupt:
                    cell.idle = True
                    message: object = await inbox.recv()
                    cell.idle = False
                    if message is _STOP:
                        return None
                    assert isinstance(message, _Call)
                    cell.busy = True
                    try:
                        await self._handle(cell, message)
                    finally:
                        cell.busy = False
            except _Crashed as crashed:
                error = crashed.__cause__
                assert isinstance(error, Exception)
                self._log_crash(cell, error)
                return error
        return None  # interrupted, killed, or crashed in _handle_now

    def _log_crash(self, cell: _Cell, error: Exception) -> None:
        log.warning(
            "actor %r on node %r crashed: %s: %s",
            cell.ref.name,
            self.name,
            type(error).__name__,
            error,
            exc_info=error,
        )

    async def _finish(self, cell: _Cell, crash: Exception | None) -> ExitReason | None:
        # However the incarnation ended (stop, crash, kill, a failed start): no
        # more timers, no answer for an ask in flight, and its monitors and
        # subscriptions are taken now, since once closed the name may be reused
        # at once. Returns how it ended (None: a first on_start failed, and
        # spawn() raises its error).
        cell.idle = False
        try:
            self._cancel_timers(cell)
            self._fail_current(cell)
            watchers = self._watchers.pop(cell.ref.name, set())
            self._drop_topics(cell)
            if cell.supervisor is None or self._closing:
                self._close(cell)  # no restart can follow: refuse messages from now on
            if cell.start is not None and crash is not None:
                await self._end_children(cell)  # those a failing on_start did start
                _answer(cell, crash)
                return None
            if cell.killed:
                reason = ExitReason("killed")
            else:
                crash = cell.fatal or crash
                reason = ExitReason("crashed", crash) if crash else ExitReason("stopped")
                with trio.CancelScope(shield=self._closing) as cell.stop_scope:
                    try:
                        await _call_hook(cell.actor.on_stop)
                    except Exception:
                        log.exception("on_stop of actor %r raised", cell.ref.name)
            await self._end_children(cell)
            self._notify_down(cell.ref, reason, watchers)
            self._break_links(cell, reason)
            return reason
        finally:
            cell.incarnation_done.set()

    def _handle_now(self, cell: _Cell, call: _Call) -> bool:
        """Handle ``call`` in the calling task if nobody could tell the difference.

        That is when the actor waits for a message and has none queued, and
        the handler is a plain ``def`` (which cannot wait, so nothing else can
        run meanwhile): the result is the same as through the mailbox, minus
        two task switches. A crash ends the actor's incarnation as it would
        in its own task. False: post ``call`` to the mailbox as usual.
        """
        if (
            not cell.idle
            or cell.interrupt
            or call.method not in plain_handler_names(type(cell.actor))
            or cell.scope.cancel_called
            or cell.inbox._has_input()
        ):
            return False
        reply = call.reply
        if reply is not None and reply.abandoned:
            return True
        cell.idle = False  # a message it sends itself meanwhile goes to the mailbox
        try:
            result = getattr(cell.actor, call.method)(*call.args, **call.kwargs)
        except Exception as exc:
            if reply is not None:
                exc.add_note(f"raised by actor {cell.ref.name!r} handling {call.method}()")
                reply.fail(exc)
            self._log_crash(cell, exc)
            cell.fatal = exc
            cell.scope.cancel()
            return True
        finally:
            cell.idle = True  # its task still waits: it cannot have run meanwhile
        if result is not None and inspect.isawaitable(result):
            # A def that returned something to wait for: the actor's task waits
            # for it, next (its mailbox is empty, so there is room).
            cell.outbox.send_object_nowait(_Resume(result, call))
        elif reply is not None:
            reply.succeed(result)
        return True

    async def _handle(self, cell: _Cell, call: _Call) -> None:
        reply = call.reply
        if reply is None:
            # A tell: nobody can cancel it, so no cancel scope (the costliest
            # part of handling a small message).
            try:
                # The handler's result, or what _handle_now's call of it returned.
                if call.__class__ is _Resume:
                    result = call.awaitable
                else:
                    result = getattr(cell.actor, call.method)(*call.args, **call.kwargs)
                if result is not None and inspect.isawaitable(result):
                    await result
            except Exception as exc:
                raise _Crashed from exc
            return
        if reply.abandoned:
            if isinstance(call, _Resume) and inspect.iscoroutine(call.awaitable):
                call.awaitable.close()  # never to be awaited
            return
        cell.reply = reply
        try:
            if call.__class__ is _Resume:
                result = call.awaitable
            else:
                result = getattr(cell.actor, call.method)(*call.args, **call.kwargs)
            if result is not None and inspect.isawaitable(result):
                # Only a handler that waits can be cancelled while it runs (the
                # asker gave up): a cancel scope for those alone, since it is
                # the costliest part of answering a small ask.
                with trio.CancelScope() as scope:
                    reply.scope = scope
                    result = await result
                if scope.cancelled_caught:
                    cell.reply = None
                    return
        except Exception as exc:
            exc.add_note(f"raised by actor {cell.ref.name!r} handling {call.method}()")
            reply.fail(exc)
            raise _Crashed from exc
        # Killed mid-handler, the reply stays in cell.reply for _fail_current.
        cell.reply = None
        reply.succeed(result)

    async def _end_children(self, cell: _Cell) -> None:
        # A supervisor's children end with its incarnation (its on_stop usually
        # saw to it; not if it was killed), newest first, so a restart starts
        # them afresh.
        for child in reversed(list(cell.children)):
            await self.terminate(ActorRef(self.name, child))
        if self._cluster is not None:  # and those it placed on other nodes
            for ref in reversed(self._cluster.children_of(cell.ref)):
                with contextlib.suppress(ActorNotFoundError, ActorStoppedError):
                    await self.terminate(ref)

    def _cancel_timers(self, cell: _Cell) -> None:
        cell.timers_allowed = False
        if cell.timers is not None:
            for timer in cell.timers:
                timer.cancel()
            cell.timers = None

    def _fail_current(self, cell: _Cell) -> None:
        if cell.reply is not None and not cell.reply.done.is_set():
            error = cell.fatal or ActorStoppedError(f"actor {cell.ref.name!r} was killed")
            cell.reply.fail(error)
        cell.reply = None

    def _close(self, cell: _Cell, *, tell_watchers: bool = False) -> None:
        # The cell ends for good: refuse new messages and fail the queued ones.
        self._restart_over(cell)
        if cell.inbox.closed:
            return
        if self._cells.get(cell.ref.name) is cell:
            del self._cells[cell.ref.name]
            # Monitors set between two incarnations (it was suspended, or
            # awaiting its supervisor's verdict) wait for the next one, and
            # there is none: they hear now. (A closing node's watchers, here
            # or on other nodes, are going too, or hear of the node instead.)
            watchers = self._watchers.pop(cell.ref.name, None)
            if watchers and tell_watchers and not self._closing:
                self._notify_down(cell.ref, ExitReason("not running"), watchers)
        for target in cell.watching:  # a gone watcher needs no notices
            self._watchers.get(target, set()).discard(cell.ref)
        stopped = ActorStoppedError(f"actor {cell.ref.name!r} stopped before handling this")
        while True:
            try:
                message: object = cell.inbox.recv_multipart_nowait()[0]
            except (trio.WouldBlock, trio.ClosedResourceError):
                break
            if isinstance(message, _Call) and message.reply is not None:
                message.reply.fail(stopped)
        cell.outbox._close_now()
        cell.inbox._close_now()
        if cell.supervisor is not None and cell.supervisor.name in self._cells:
            siblings = self._cells[cell.supervisor.name].children
            if cell.ref.name in siblings:
                siblings.remove(cell.ref.name)

    # ------------------------------------------------------------------ monitors

    def monitor(self, watcher: ActorRef, target: ActorRef) -> None:
        """Have ``watcher`` told (``on_down``) when ``target``'s current incarnation
        ends (see :meth:`Actor.monitor`).

        Raises:
            ActorNotFoundError: ``watcher`` is not running here.
        """
        cell = self._cell(watcher)
        if target.node != self.name and self._cluster is not None:
            self._cluster.monitor(watcher, target)
            return
        if target.node != self.name or target.name not in self._cells:
            self._post_down(cell, target, ExitReason("not running"))
            return
        cell.watching = _added(cell.watching, target.name)
        self._watchers.setdefault(target.name, set()).add(watcher)

    def _watch_from(self, watcher: ActorRef, target: str) -> bool:
        # A monitor set from another node (the cluster's call); False if
        # ``target`` is not running here.
        if target not in self._cells:
            return False
        self._watchers.setdefault(target, set()).add(watcher)
        return True

    def _down(self, watcher: ActorRef, target: ActorRef, reason: ExitReason) -> None:
        # A notice from another node (or its loss), for a local watcher.
        cell = self._cells.get(watcher.name)
        if cell is not None:
            self._post_down(cell, target, reason)

    def demonitor(self, watcher: ActorRef, target: ActorRef) -> None:
        """Stop telling ``watcher`` about ``target`` (a notice already sent stays queued)."""
        if target.node != self.name and self._cluster is not None:
            self._cluster.demonitor(watcher, target)
            return
        cell = self._cells.get(watcher.name)
        if cell is not None:
            _discard(cell.watching, target.name)
        self._watchers.get(target.name, set()).discard(watcher)

    def _notify_down(self, ref: ActorRef, reason: ExitReason, watchers: set[ActorRef]) -> None:
        for watcher in watchers:
            if watcher.node != self.name:
                if self._cluster is not None:
                    self._cluster.notify_down(watcher, ref, reason)
                continue
            cell = self._cells.get(watcher.name)
            if cell is not None:
                _discard(cell.watching, ref.name)
                self._post_down(cell, ref, reason)

    def _post_down(self, cell: _Cell, ref: ActorRef, reason: ExitReason) -> None:
        self._post_later(cell, _Call("on_down", (ref, reason), {}, None))

    def _post_later(self, cell: _Cell, call: _Call) -> None:
        # Through the mailbox like any message, from a task of its own: a
        # notice waits for room rather than being dropped.
        self._nursery.start_soon(self._deliver, cell, call)

    async def _deliver(self, cell: _Cell, message: object) -> bool:
        # False if the receiver ended meanwhile.
        try:
            await cell.outbox.send_object(message)
        except trio.ClosedResourceError:
            return False
        return True

    # ------------------------------------------------------------------ links

    def link(self, a: ActorRef, b: ActorRef) -> None:
        """Link two actors' current incarnations (see :meth:`Actor.link`).

        Raises:
            ActorNotFoundError: Either is not running.
        """
        first, second = self._cell(a), self._cell(b)
        if first is not second:
            first.links = _added(first.links, second.ref.name)
            second.links = _added(second.links, first.ref.name)

    def unlink(self, a: ActorRef, b: ActorRef) -> None:
        """Undo :meth:`link` (nothing happens if they were not linked)."""
        for one, other in ((a, b), (b, a)):
            cell = self._cells.get(one.name)
            if cell is not None:
                _discard(cell.links, other.name)

    def _break_links(self, cell: _Cell, reason: ExitReason) -> None:
        # A crash or kill takes linked incarnations down with it (they crash,
        # with on_stop); a graceful stop just unlinks.
        for name in cell.links:
            other = self._cells.get(name)
            if other is None or cell.ref.name not in other.links:
                continue
            _discard(other.links, cell.ref.name)
            if not reason.normal and other.fatal is None and not other.interrupt:
                other.fatal = LinkedActorError(cell.ref, reason)
                other.scope.cancel()
        cell.links = _NO_NAMES

    # ------------------------------------------------------------------ event bus

    async def publish(self, topic: str, event: object) -> None:
        """Send ``event`` to every actor subscribed to a prefix of ``topic``.

        Delivered through each subscriber's mailbox, in publishing order, as
        the object itself. Never dropped: a subscriber with a full mailbox
        makes publishing wait.
        """
        await self._inject(topic, event)
        if self._cluster is not None:
            self._cluster.publish(topic, event)

    @asynccontextmanager
    async def events(
        self, prefix: str, *, buffer: int = 100
    ) -> AsyncIterator[trio.MemoryReceiveChannel[tuple[str, Any]]]:
        """Receive events in this task: ``(topic, event)`` for each topic that
        starts with ``prefix``, published here or on a connected node, as an
        actor subscribed to ``prefix`` would.

        Example::

            async with node.events(actors.REPORTS) as reports:
                async for topic, report in reports:
                    print(report.what, report.child)

        A reader that falls ``buffer`` events behind makes delivery wait,
        as a full mailbox does (reports alone never wait: see ``Supervisor``).
        The subscription ends with the block.

        .. versionadded:: 0.1
        """
        send, receive = trio.open_memory_channel[tuple[str, Any]](buffer)
        tap = await self.spawn(_Tap, prefix, send, mailbox_size=2)  # buffer is the buffer
        try:
            yield receive
        finally:
            with trio.CancelScope(shield=True), contextlib.suppress(ActorNotFoundError):
                await self.kill(tap)  # not stop: its mailbox may be full
            receive.close()

    async def _report(self, topic: str, event: object) -> None:
        # A report (a supervisor's): published like an event, but never waiting
        # for subscribers, so that observers cannot hold up what they observe.
        # Dropped if the bus is full, or not sent on if it cannot be encoded.
        pub = await self._bus()
        try:
            pub.send_object_nowait(event, topic=topic.encode())
        except trio.WouldBlock:
            log.debug("node %r: the event bus is full: dropped a report on %r", self.name, topic)
        if self._cluster is not None:
            try:
                self._cluster.publish(topic, event)
            except CodecError as exc:
                log.debug("node %r: a report on %r cannot travel: %s", self.name, topic, exc)

    async def _inject(self, topic: str, event: object) -> None:
        # Onto the local bus: a local publish, or an event from another node.
        pub = await self._bus()
        await pub.send_object(event, topic=topic.encode())

    async def subscribe(self, ref: ActorRef, prefix: str) -> None:
        """Deliver events whose topic starts with ``prefix`` to ``ref``'s ``on_event``."""
        cell = self._cell(ref)
        await self._bus()
        sub = self._bus_sub
        assert sub is not None
        names = self._subscribers.setdefault(prefix, set())
        if not names:
            sub.subscribe(prefix.encode())
            if self._cluster is not None:
                self._cluster.subscribe(prefix)
        names.add(ref.name)
        cell.topics = _added(cell.topics, prefix)

    def unsubscribe(self, ref: ActorRef, prefix: str) -> None:
        """Stop delivering ``prefix`` events to ``ref``."""
        cell = self._cells.get(ref.name)
        if cell is not None:
            _discard(cell.topics, prefix)
        names = self._subscribers.get(prefix)
        if names is None:
            return
        names.discard(ref.name)
        if not names:
            del self._subscribers[prefix]
            if self._bus_sub is not None and not self._bus_sub.closed:
                self._bus_sub.unsubscribe(prefix.encode())
            if self._cluster is not None:
                self._cluster.unsubscribe(prefix)

    def _drop_topics(self, cell: _Cell) -> None:
        # Subscriptions belong to an incarnation: a restarted actor makes its own.
        for prefix in list(cell.topics):
            self.unsubscribe(cell.ref, prefix)

    async def _bus(self) -> Socket:
        if self._bus_pub is None:
            endpoint = f"inproc://trimq.actors/{self.name}/events"
            # xpub_nodrop: publishers wait for a slow subscriber instead of losing events.
            pub = self._context.socket(SocketType.PUB, xpub_nodrop=True, linger=0)
            sub = self._context.socket(SocketType.SUB, linger=0)
            await pub.bind(endpoint)
            await sub.connect(endpoint)
            self._bus_pub, self._bus_sub = pub, sub
            self._nursery.start_soon(self._dispatch, sub)
        return self._bus_pub

    async def _dispatch(self, sub: Socket) -> None:
        # One event at a time, to each subscriber once, however many of its
        # prefixes match.
        while True:
            try:
                raw_topic, event = await sub.recv_multipart()
            except trio.ClosedResourceError:
                return
            topic = raw_topic.decode()
            targets: set[str] = set()
            for prefix, names in self._subscribers.items():
                if topic.startswith(prefix):
                    targets |= names
            for name in sorted(targets):
                cell = self._cells.get(name)
                if cell is not None:
                    await self._deliver(cell, _Call("on_event", (topic, event), {}, None))

    # ------------------------------------------------------------------ closing

    async def aclose(self) -> None:
        """Stop every actor, newest first, each running its ``on_stop``; then
        tell the other nodes this one is leaving."""
        self._closing = True
        for cell in reversed(list(self._cells.values())):
            if not cell.done.is_set():
                await self._deliver(cell, _STOP)
                # Each gets its shutdown time, as a supervisor gives it: an
                # on_stop that hangs must not hold the node open.
                await self._within_shutdown(cell, cell.done)
        if self._cluster is not None:
            await self._cluster.aclose()


@asynccontextmanager
async def open_node(
    name: str | None = None,
    *,
    codec: Codec | None = None,
    listen: str | Sequence[str] = (),
    keys: tuple[KeyLike, KeyLike] | None = None,
    allow: Iterable[KeyLike] | Mapping[KeyLike, Iterable[str]] = (),
    insecure: bool = False,
    tags: Iterable[str] = (),
    heartbeat: float = 1.0,
    timeout: float = 3.0,
    max_message: int = 64 * 2**20,
) -> AsyncIterator[Node]:
    """Run an actor node for the duration of the block.

    On exit every actor is stopped, newest first, running its ``on_stop``
    (if the block raised, actors are cancelled instead).

    Args:
        name: The node's name, part of every reference it hands out; default
            ``"node-<pid>-<n>"``.
        codec: How payloads are encoded when they leave the process (default
            :class:`DefaultCodec`); messages between local actors are never encoded.
        listen: Endpoint(s) where other nodes reach this one (its control
            ROUTER), e.g. ``"tcp://0.0.0.0:7000"``. Without it the node is
            local until it connects to another (:meth:`Node.connect`).
        keys: This node's CURVE key pair ``(public, secret)`` (Z85 or raw), e.g.
            from ``trimq keygen``. Required to listen or connect anywhere but
            loopback and ipc.
        allow: Public keys of the nodes allowed to connect, each with every
            right; or a mapping from key to its rights, among ``"ask"``
            (plain-data messages to actors), ``"code"`` (payloads that carry
            code or objects), ``"spawn"`` (needs ``"code"``), ``"publish"`` and
            ``"subscribe"``. Any other key is refused during the handshake.
            Nodes this one connects to, by their key, get every right unless
            listed here.
        insecure: No CURVE: for development on loopback and ipc only (any
            local process can then drive the node); refused elsewhere.
        tags: What this node offers (``"gpu"``, ``"region=eu"``), for placement.
        heartbeat: Seconds between liveness messages to each peer node.
        timeout: Seconds of silence after which a peer node counts as lost.
        max_message: The largest message, in bytes, another node may send
            (a bigger one drops its connection, which then reconnects);
            keeps memory bounded whatever a peer sends.

    Raises:
        ValueError: Inconsistent security settings, or no keys off loopback.

    .. versionadded:: 0.1
    """
    name = name or f"node-{os.getpid()}-{next(_node_numbers)}"
    security = NodeSecurity.make(keys, allow, insecure)
    if insecure:
        log.warning(
            "node %r is INSECURE: no CURVE, so any local process can spawn code in it. "
            "Use it on loopback for development only.",
            name,
        )
    network = {
        "tags": tuple(tags),
        "heartbeat": heartbeat,
        "timeout": timeout,
        "max_message": max_message,
    }
    try:
        async with Context() as context, trio.open_nursery() as nursery:
            node = Node(name, context, nursery, codec or DefaultCodec(), security, network)
            token = _current_node.set(node)
            try:
                for endpoint in [listen] if isinstance(listen, str) else listen:
                    await node._networked().listen(endpoint)
                yield node
                await node.aclose()
            finally:
                node._closing = True
                _current_node.reset(token)
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # Whatever crosses the nursery comes wrapped; a single error (the
        # block's own, usually) is raised as itself, as Context does.
        if len(group.exceptions) != 1:
            raise
        error = group.exceptions[0]
        raise error from error.__cause__
