"""What the network half may ask of the local node: the one boundary inside trimq.actors.

The package has two halves. The local half (``_node``, ``_runtime``,
``_cell``, ``_watch``, ``_bus``, ``_inbound``, ``_actor``, ``_supervisor``)
runs actors in this process. The network half (``_cluster``, ``_link``,
``_calls``, ``_events``, ``_turns``) talks to other nodes. The local half
calls the network half's public methods; the network half sees the local
node only through :class:`LocalNode` below (implemented by
``_inbound.Inbound``), and imports nothing of the local half but this
module and the leaves both share (``_ref``, ``_exit``, ``_errors``,
``_codec``, ``_wire``, ``_security``, ``_timer``), not even for type
checking: ``tests/actors/test_layers.py`` checks it.

To add a remote verb: its kind in ``_wire``, its request and handler in
``_cluster`` (with its right in ``_NEEDS`` and its handler in the dispatch
table), and, if it acts on local actors, one method here and in ``_inbound``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import attrs

if TYPE_CHECKING:
    import trio

    from ._codec import Codec
    from ._exit import ExitReason, Verdict
    from ._ref import ActorRef

__all__ = ["LocalNode", "PendingReply", "SpawnOptions"]


@attrs.frozen
class SpawnOptions:
    """How to start an actor another node asked for (``spawn(on=...)``).

    Attributes:
        name: Its name on the node that hosts it; ``None``: one is made up.
        mailbox_size: As for ``Node.spawn``.
        shutdown: As for ``Node.spawn``.
        supervisor: The name of its supervisor on the asking node, if any.
    """

    name: str | None = None
    mailbox_size: int = 1000
    shutdown: float = 5.0
    supervisor: str | None = None


class PendingReply(Protocol):
    """A local actor's answer to an ask from another node, while it is being handled."""

    #: Set once the handler returned (``value``) or raised (``error``).
    done: trio.Event
    value: Any
    error: BaseException | None
    #: True once :meth:`abandon` was called: nobody waits for the answer.
    abandoned: bool
    #: Called from the actor's task as the handler completes, so the network
    #: half can send the reply at once (no task of its own in between).
    on_done: Callable[[], None] | None

    def abandon(self) -> None:
        """The asker gave up (it cancelled, or its node was lost): cancel the handler."""


class LocalNode(Protocol):
    """What the network half may ask of this node's actors and their supervision."""

    @property
    def name(self) -> str:
        """This node's name: the ``node`` of its actors' refs."""
        ...

    @property
    def codec(self) -> Codec:
        """How payloads leaving this node are encoded."""
        ...

    @property
    def closing(self) -> bool:
        """Whether this node is closing (it then leaves new monitors unanswered)."""
        ...

    def adopt_task(self) -> None:
        """Make this node the current node of the calling task: the network's
        serve tasks call it once, since actors' handlers may run in them."""

    async def accept(
        self,
        actor: str,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        ask: bool,
    ) -> PendingReply | None:
        """A tell (``ask=False``: returns None) or an ask from another node for
        a local actor: handled at once if it can be, else queued.

        Raises:
            ActorNotFoundError: No such actor here.
            AttributeError: It has no such handler.
            ActorStoppedError: It stopped before taking the message.
        """

    def offer(
        self,
        actor: str,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        ask: bool,
    ) -> PendingReply | None:
        """:meth:`accept` without waiting: the task that reads a link calls it.

        Raises:
            trio.WouldBlock: The actor's mailbox is full (nothing was queued).
            ActorNotFoundError: No such actor here.
            AttributeError: It has no such handler.
            ActorStoppedError: It stopped before taking the message.
        """
        ...

    def hosts(self, actor: str) -> bool:
        """Whether an actor of that name runs here."""
        ...

    async def spawn_here(
        self,
        cls: type,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        options: SpawnOptions,
        requester: str,
    ) -> ActorRef:
        """Start an actor that node ``requester`` asked for (its supervisor, if
        ``options.supervisor``, is on that node); returns once it started.

        Raises:
            Exception: As ``Node.spawn``.
        """
        ...

    async def stop_here(self, actor: str, *, kill: bool) -> None:
        """Stop (or kill) a local actor for another node.

        Raises:
            ActorNotFoundError: No such actor here.
        """

    async def supervise_here(self, actor: str, verdict: Verdict, supervisor_node: str) -> None:
        """Carry out a supervisor's verdict on its child here.

        Raises:
            ActorNotFoundError: No such child here, or not supervised from
                ``supervisor_node``.
        """

    def watch(self, watcher: ActorRef, actor: str) -> bool:
        """Have ``watcher`` (on another node) told when ``actor`` ends; False
        if no such actor runs here."""
        ...

    def unwatch(self, watcher: ActorRef, actor: str) -> None:
        """Undo :meth:`watch`."""

    def down(self, watcher: ActorRef, target: ActorRef, reason: ExitReason) -> None:
        """Tell a local watcher that ``target`` (on another node) ended, or that
        its node was lost."""

    def child_exit(self, supervisor: ActorRef, child: ActorRef, reason: ExitReason) -> None:
        """Tell a local supervisor that its child on another node ended."""

    async def inject(self, topic: str, event: object) -> None:
        """Deliver an event from another node to the local subscribers (only)."""

    def peers_changed(self) -> None:
        """A node joined, came back, was lost or left."""

    def node_lost(self, name: str, why: str) -> None:
        """Node ``name`` stopped answering or left: forget its monitors of
        local actors and end the local actors it supervised."""
