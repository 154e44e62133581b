"""What a cell asks of its node: the node's side of :class:`CellHost`.

The cell (``_cell``) and its task (``_task``) reach the rest of their node
only through this: a supervisor to tell, watchers to notify, links to break,
subscriptions to drop, children to end, tables to leave. Each of these is a
few lines here over the runtime's parts, with its local/remote branch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ._errors import ActorNotFoundError, ActorStoppedError
from ._exit import ExitReason
from ._mail import Call
from ._ref import ActorRef, set_current_runtime

if TYPE_CHECKING:
    from ._actor import Actor
    from ._cell import Cell
    from ._runtime import NodeRuntime

__all__ = ["Host"]


class Host:
    """A node as its cells see it (see :class:`CellHost`)."""

    def __init__(self, runtime: NodeRuntime) -> None:
        self._runtime = runtime

    @property
    def name(self) -> str:
        """The node's name."""
        return self._runtime.name

    @property
    def closing(self) -> bool:
        """Whether the node is closing."""
        return self._runtime.closing

    def make_actor(
        self, cls: type[Actor], ref: ActorRef, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Actor:
        """A new instance for an incarnation, bound to its ref and node."""
        return self._runtime.make_actor(cls, ref, args, kwargs)

    def adopt_task(self) -> None:
        """Make this node the current node of the calling task."""
        set_current_runtime(self._runtime)

    def cancelled(self) -> None:
        """The node's own cancellation reached an actor task: it is closing."""
        self._runtime.closing = True

    def start_soon(self, fn: Callable[..., Awaitable[object]], *args: object) -> None:
        """Run ``fn(*args)`` in the node's nursery."""
        self._runtime.start_soon(fn, *args)

    def tell_supervisor(self, cell: Cell, reason: ExitReason) -> None:
        """``cell``'s incarnation ended on its own: its supervisor, here or
        there, decides (an orphan is terminated)."""
        runtime = self._runtime
        supervisor = cell.supervisor
        assert supervisor is not None
        if supervisor.node != runtime.name and runtime.cluster is not None:
            if not runtime.cluster.children.child_exit(supervisor, cell.ref, reason):
                cell.decide("terminate")  # its supervisor's node is gone
            return
        parent = runtime.cells.get(supervisor.name)
        if parent is None:
            cell.decide("terminate")  # an orphan: nobody to restart it
            return
        runtime.post_later(parent, Call("on_child_exit", (cell.ref, reason), {}, None))

    def take_watchers(self, ref: ActorRef) -> set[ActorRef]:
        """The monitors of ``ref``'s incarnation, forgotten here."""
        return self._runtime.watches.take(ref.name)

    def drop_topics(self, ref: ActorRef) -> None:
        """End ``ref``'s subscriptions (they belong to an incarnation)."""
        runtime = self._runtime
        for prefix in runtime.bus.drop(ref.name):
            if runtime.cluster is not None:
                runtime.cluster.events.unsubscribe(prefix)

    async def end_children(self, cell: Cell) -> None:
        """A supervisor's children end with its incarnation (its on_stop usually
        saw to it; not if it was killed), newest first, so a restart starts
        them afresh."""
        runtime = self._runtime
        for child in reversed(list(cell.children)):
            await runtime.terminate(ActorRef(runtime.name, child))
        if runtime.cluster is not None:  # and those it placed on other nodes
            for ref in reversed(runtime.cluster.children.children_of(cell.ref)):
                with contextlib.suppress(ActorNotFoundError, ActorStoppedError):
                    await runtime.terminate(ref)

    def notify_down(self, ref: ActorRef, reason: ExitReason, watchers: set[ActorRef]) -> None:
        """Tell ``watchers``, here or on other nodes, that ``ref``'s incarnation ended."""
        runtime = self._runtime
        for watcher in watchers:
            if watcher.node == runtime.name:
                runtime.watches.tell(watcher.name, ref, reason)
            elif runtime.cluster is not None:
                runtime.cluster.monitors.notify_down(watcher, ref, reason)

    def break_links(self, cell: Cell, reason: ExitReason) -> None:
        """A crash or kill of ``cell`` ends the incarnations linked to it (see ``_watch``)."""
        self._runtime.watches.break_links(cell, reason)

    def forget(self, cell: Cell, *, tell_watchers: bool) -> None:
        """``cell`` ended for good: out of the tables, so its name is free."""
        runtime = self._runtime
        name = cell.ref.name
        if runtime.cells.get(name) is cell:
            del runtime.cells[name]
            # Monitors set between two incarnations (it was suspended, or
            # awaiting its supervisor's verdict) wait for the next one, and
            # there is none: they hear now. (A closing node's watchers, here
            # or on other nodes, are going too, or hear of the node instead.)
            watchers = runtime.watches.take(name)
            if watchers and tell_watchers and not runtime.closing:
                self.notify_down(cell.ref, ExitReason("not running"), watchers)
        runtime.watches.forget(cell.ref)
        supervisor = cell.supervisor
        if supervisor is not None and supervisor.node == runtime.name:
            parent = runtime.cells.get(supervisor.name)
            if parent is not None and name in parent.children:
                parent.children.remove(name)
