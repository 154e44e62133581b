"""A node: hosts actors in one process, each a trio task fed by an inproc PAIR mailbox.

:class:`Node` is the public face; the work is done by its runtime
(``_runtime.NodeRuntime``), which refs, actors and supervisors reach through
the context of their task.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import trio

from ..patterns import Context
from ._actor import Actor
from ._bus import Tap
from ._codec import Codec, DefaultCodec
from ._errors import ActorNotFoundError
from ._link import NetworkOptions, NodeRef, PeerLimits
from ._ref import ActorRef, current_runtime, reset_current_runtime, set_current_runtime
from ._runtime import NodeRuntime
from ._security import KeyLike, NodeSecurity

__all__ = ["Node", "current_node", "open_node"]

log = logging.getLogger("trimq.actors")

A = TypeVar("A", bound=Actor)

_node_numbers = itertools.count(1)


class Node:
    """Hosts actors in this process. Create it with :func:`open_node`.

    Attributes:
        name: The node's name, part of every reference it hands out.
        codec: Encodes payloads that leave the process (see :class:`Codec`).

    .. versionadded:: 0.1
    """

    def __init__(self, runtime: NodeRuntime) -> None:
        self.name = runtime.name
        self.codec = runtime.codec
        self._runtime = runtime
        runtime.node = self

    def __repr__(self) -> str:
        return f"<trimq.actors.Node {self.name!r} {len(self._runtime.cells)} actors>"

    # ------------------------------------------------------------------ actors

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
        return await self._runtime.spawn(
            cls,
            args,
            kwargs,
            name=name,
            mailbox_size=mailbox_size,
            supervisor=supervisor,
            shutdown=shutdown,
            on=on,
        )

    async def lookup(self, name: str) -> ActorRef | None:
        """The reference of the actor named ``name``: on this node, else on the
        first connected node that has one; ``None`` if none does."""
        return await self._runtime.lookup(name)

    def lookup_local(self, name: str) -> ActorRef | None:
        """The reference of the actor named ``name`` on this node, or ``None``."""
        cell = self._runtime.cells.get(name)
        return None if cell is None else cell.ref

    @property
    def actors(self) -> list[ActorRef]:
        """References of the actors running on this node, oldest first."""
        return [cell.ref for cell in self._runtime.cells.values()]

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
        return await self._runtime.connect(endpoint, key)

    @property
    def peers(self) -> list[NodeRef]:
        """The other nodes currently reachable."""
        return self._runtime.peers

    @property
    def endpoints(self) -> list[str]:
        """Where this node listens (its ``listen`` endpoints, as bound)."""
        cluster = self._runtime.cluster
        return [] if cluster is None else list(cluster.endpoints)

    async def membership_changed(self) -> None:
        """Return at the next change of :attr:`peers`: a node joined, came
        back, was lost or left. Loop on it to wait for a condition::

            with trio.fail_after(10):
                while "worker-1" not in [peer.name for peer in node.peers]:
                    await node.membership_changed()
        """
        await self._runtime.membership_changed()

    # ------------------------------------------------------------------ events

    async def publish(self, topic: str, event: object) -> None:
        """Send ``event`` to every actor subscribed to a prefix of ``topic``.

        Delivered through each subscriber's mailbox, in publishing order, as
        the object itself. Never dropped: a subscriber with a full mailbox
        makes publishing wait.
        """
        await self._runtime.publish(topic, event)

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
        tap = await self.spawn(Tap, prefix, send, mailbox_size=2)  # buffer is the buffer
        try:
            yield receive
        finally:
            with trio.CancelScope(shield=True), contextlib.suppress(ActorNotFoundError):
                await self._runtime.kill(tap)  # not stop: its mailbox may be full
            receive.close()

    # ------------------------------------------------------------------ closing

    async def aclose(self) -> None:
        """Stop every actor, newest first, each running its ``on_stop``; then
        tell the other nodes this one is leaving."""
        await self._runtime.aclose()


def current_node() -> Node:
    """The node of the calling task (set inside ``open_node`` and every actor task).

    Raises:
        RuntimeError: Not inside a running node.
    """
    node = current_runtime().node
    assert isinstance(node, Node)  # NodeRuntime is the only Runtime
    return node


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
    limits: PeerLimits | None = None,
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
            ``"subscribe"``, and ``"host"`` (this node may place its actors
            there, see ``spawn(on=...)``). Any other key is refused during
            the handshake. Nodes this one connects to, by their key, get
            every right unless listed here.
        insecure: No CURVE: for development on loopback and ipc only (any
            local process on loopback tcp, and any process of this user on
            ipc, can then drive the node); refused elsewhere.
        tags: What this node offers (``"gpu"``, ``"region=eu"``), for placement.
        heartbeat: Seconds between liveness messages to each peer node.
        timeout: Seconds of silence after which a peer node counts as lost.
        max_message: The largest message, in bytes, another node may send
            (a bigger one drops its connection, which then reconnects);
            keeps memory bounded whatever a peer sends.
        limits: How much state each peer node may make this one hold:
            queued calls, asks in progress, monitors (default
            :class:`PeerLimits`'s).

    Raises:
        ValueError: Inconsistent security settings, no keys off loopback, or
            a ``heartbeat`` that is not positive or not below ``timeout``.

    .. versionadded:: 0.1
    """
    name = name or f"node-{os.getpid()}-{next(_node_numbers)}"
    security = NodeSecurity.make(keys, allow, insecure)
    network = NetworkOptions(
        frozenset(tags), heartbeat, timeout, max_message, limits or PeerLimits()
    )
    if insecure:
        log.warning(
            "node %r is INSECURE: no CURVE, so any local process can spawn code in it. "
            "Use it on loopback for development only.",
            name,
        )
    try:
        async with Context() as context, trio.open_nursery() as nursery:
            codec = codec or DefaultCodec()
            runtime = NodeRuntime(name, context, nursery, codec, security, network)
            node = Node(runtime)
            token = set_current_runtime(runtime)
            try:
                for endpoint in [listen] if isinstance(listen, str) else listen:
                    await runtime.networked().listen(endpoint)
                yield node
                await node.aclose()
            finally:
                runtime.closing = True
                reset_current_runtime(token)
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # Whatever crosses the nursery comes wrapped; a single error (the
        # block's own, usually) is raised as itself, as Context does.
        if len(group.exceptions) != 1:
            raise
        error = group.exceptions[0]
        raise error from error.__cause__
