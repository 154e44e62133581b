"""What other nodes may do here: the local node as the network half sees it.

:class:`Inbound` implements :class:`LocalNode` (``_local``), the one
boundary between the two halves of the package, over the node's runtime.
Each method is the local end of a remote verb of ``_cluster``; whether the
sender may use that verb was decided there, from its rights.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ._errors import ActorNotFoundError
from ._exit import ExitReason
from ._mail import Call, Reply
from ._ref import ActorRef, set_current_runtime
from ._task import handle_now

if TYPE_CHECKING:
    from ._cell import Cell
    from ._codec import Codec
    from ._exit import Verdict
    from ._local import PendingReply, SpawnOptions
    from ._runtime import NodeRuntime

__all__ = ["Inbound"]

log = logging.getLogger("trimq.actors")


class Inbound:
    """The local node as the network half may use it (see :class:`LocalNode`)."""

    def __init__(self, runtime: NodeRuntime) -> None:
        self._runtime = runtime

    @property
    def name(self) -> str:
        """This node's name."""
        return self._runtime.name

    @property
    def codec(self) -> Codec:
        """This node's codec."""
        return self._runtime.codec

    @property
    def closing(self) -> bool:
        """Whether this node is closing."""
        return self._runtime.closing

    def adopt_task(self) -> None:
        """This node is the calling task's current node from now on."""
        set_current_runtime(self._runtime)

    async def accept(
        self,
        actor: str,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        ask: bool,
    ) -> PendingReply | None:
        """A call from another node: handled now if it can be (see
        ``Cell.handle_now``), else queued; an ask is answered when its reply
        is done."""
        cell, call = self._call(actor, method, args, kwargs, ask)
        if not handle_now(cell, call):
            await cell.post(call)
        return call.reply

    def offer(
        self,
        actor: str,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        ask: bool,
    ) -> PendingReply | None:
        """Like :meth:`accept`, but raises trio.WouldBlock instead of waiting for room."""
        cell, call = self._call(actor, method, args, kwargs, ask)
        if not handle_now(cell, call):
            cell.post_nowait(call)
        return call.reply

    def _call(
        self, actor: str, method: str, args: tuple[Any, ...], kwargs: dict[str, Any], ask: bool
    ) -> tuple[Cell, Call]:
        # The cell a call from another node is for, and the call (raises as
        # ``accept`` says).
        runtime = self._runtime
        cell = runtime.cell(ActorRef(runtime.name, actor), method)
        return cell, Call(method, args, kwargs, Reply() if ask else None)

    def hosts(self, actor: str) -> bool:
        """Whether an actor of that name runs here."""
        return actor in self._runtime.cells

    async def spawn_here(
        self,
        cls: type,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        options: SpawnOptions,
        requester: str,
    ) -> ActorRef:
        """Start an actor another node asked for."""
        supervisor = options.supervisor
        return await self._runtime.spawn(
            cls,
            args,
            kwargs,
            name=options.name,
            mailbox_size=options.mailbox_size,
            supervisor=None if supervisor is None else ActorRef(requester, supervisor),
            shutdown=options.shutdown,
            on=None,
        )

    async def stop_here(self, actor: str, *, kill: bool) -> None:
        """Stop or kill a local actor for another node."""
        ref = ActorRef(self._runtime.name, actor)
        if kill:
            await self._runtime.kill(ref)
        else:
            await self._runtime.stop(ref)

    async def supervise_here(self, actor: str, verdict: Verdict, supervisor_node: str) -> None:
        """A supervisor's verdict on its child here (a child it supervises from there)."""
        runtime = self._runtime
        cell = runtime.cells.get(actor)
        if cell is None or cell.supervisor is None or cell.supervisor.node != supervisor_node:
            raise ActorNotFoundError(f"node {supervisor_node!r} supervises no {actor!r} here")
        ref = cell.ref
        if verdict == "suspend":
            await runtime.suspend(ref)
        elif verdict == "restart":
            await runtime.restart(ref)
        else:
            await runtime.terminate(ref)

    def watch(self, watcher: ActorRef, actor: str) -> bool:
        """A monitor from another node; False if ``actor`` is not running here."""
        return self._runtime.watches.watch_from(watcher, actor)

    def unwatch(self, watcher: ActorRef, actor: str) -> None:
        """Undo :meth:`watch`."""
        self._runtime.watches.demonitor(watcher, actor)

    def down(self, watcher: ActorRef, target: ActorRef, reason: ExitReason) -> None:
        """A notice from another node (or of its loss), for a local watcher."""
        self._runtime.watches.post_down(watcher.name, target, reason)

    def child_exit(self, supervisor: ActorRef, child: ActorRef, reason: ExitReason) -> None:
        """A child on another node ended (or its node was lost): its supervisor decides."""
        runtime = self._runtime
        parent = runtime.cells.get(supervisor.name)
        if parent is not None:
            runtime.post_later(parent, Call("on_child_exit", (child, reason), {}, None))

    async def inject(self, topic: str, event: object) -> None:
        """An event from another node, for the local subscribers only.

        Never waits for a subscriber's full mailbox (the caller may be the
        task that reads a link): as across PUB/SUB, a subscriber that cannot
        take it now misses it.
        """
        await self._runtime.bus.report(topic, event)

    def peers_changed(self) -> None:
        """Peers joined, came back, were lost or left."""
        self._runtime.peers_changed()

    def node_lost(self, name: str, why: str) -> None:
        """Another node stopped answering or left.

        Its actors' monitors of ours are forgotten (our watchers of its actors
        were told by the cluster). Our actors that it supervised are ended:
        its supervisor counts them lost and starts them again elsewhere, and
        a partitioned node must not keep a second copy running.
        """
        runtime = self._runtime
        runtime.watches.forget_node(name)
        for cell in list(runtime.cells.values()):
            if cell.supervisor is not None and cell.supervisor.node == name:
                log.warning(
                    "actor %r: its supervisor's node %r is lost; ending it", cell.ref.name, name
                )
                runtime.start_soon(runtime.terminate, cell.ref)
