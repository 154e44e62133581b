"""Supervisors: actors that start children and decide what happens when one ends (OTP)."""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import attrs
import trio

from ._actor import Actor
from ._errors import ActorNotFoundError, ActorStoppedError, RestartIntensityError
from ._exit import ExitReason
from ._ref import ActorRef, current_runtime

__all__ = ["REPORTS", "ChildSpec", "Supervisor", "SupervisorReport"]

log = logging.getLogger("trimq.actors")

Strategy = Literal["one_for_one", "one_for_all", "rest_for_one"]
Restart = Literal["permanent", "transient", "temporary"]
Happening = Literal["started", "restarted", "waiting", "ended"]

#: The event-bus topic prefix of supervisors' reports: a supervisor named
#: ``sup`` publishes on ``REPORTS + "sup"``.
REPORTS = "trimq.supervisor."


@attrs.frozen
class SupervisorReport:
    """What a supervisor did with a child, published on the event bus (as
    OTP's progress reports): subscribe to ``REPORTS`` (every supervisor) or
    ``REPORTS + name`` (one) to follow it.

    Attributes:
        supervisor: The supervisor.
        child: The child's ref, now (``None`` while it waits for a node).
        what: ``"started"`` (first start, or anew after its node was lost:
            its ref may be on another node), ``"restarted"`` (same ref, a
            fresh instance), ``"waiting"`` (no node matches its placement
            yet; retried every ``retry`` seconds), or ``"ended"`` (not
            restarted, by its restart policy or ``terminate_child``).
        reason: Why the previous incarnation ended, if one did.

    .. versionadded:: 0.1
    """

    supervisor: ActorRef
    child: ActorRef | None
    what: Happening
    reason: ExitReason | None = None


@attrs.frozen
class ChildSpec:
    """How a supervisor starts, and restarts, one child.

    Attributes:
        cls: The child's Actor class.
        args: Positional arguments for ``cls`` (each start builds a new instance).
        kwargs: Keyword arguments for ``cls``.
        name: The child's name on its node (its refs use it across restarts);
            default ``"<ClassName>-<n>"``.
        restart: ``"permanent"``: always restarted; ``"transient"``: restarted
            only after a crash or kill, not a graceful stop; ``"temporary"``:
            never restarted.
        shutdown: Seconds it gets to finish its message and ``on_stop`` when its
            supervisor stops it, before it is killed.
        mailbox_size: As for ``Node.spawn``.
        on: Where it runs, as ``Node.spawn(on=...)``: ``None`` (the
            supervisor's node), a node name, a tag, or ``"*"`` (any connected
            node). When its node is lost, the child is started again wherever
            ``on`` then matches: another node with the tag, or the named node
            once it is back.

    .. versionadded:: 0.1
    """

    cls: type[Actor]
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = attrs.field(factory=dict)
    name: str | None = None
    restart: Restart = "permanent"
    shutdown: float = 5.0
    mailbox_size: int = 1000
    on: str | None = None


class _Child:
    """A supervised child: its spec, and its ref (None while it waits for a node)."""

    __slots__ = ("ref", "spec")

    def __init__(self, spec: ChildSpec, ref: ActorRef | None) -> None:
        self.spec = spec
        self.ref = ref


class Supervisor(Actor):
    """An actor that starts children and restarts them as Erlang/OTP's supervisor does.

    Args:
        children: Started in order by ``on_start``; if one fails to start, the
            supervisor fails to start.
        strategy: When a child must be restarted: ``"one_for_one"`` restarts it
            alone; ``"one_for_all"`` stops every other child (newest first) and
            restarts them all in start order; ``"rest_for_one"`` does that for
            the children started after it.
        max_restarts: More restarts than this within ``period`` seconds make the
            supervisor crash with :class:`RestartIntensityError`; its own
            supervisor then decides (OTP's restart intensity).
        period: The intensity window, in seconds.
        retry: Seconds between attempts to start a child whose placement
            matches no connected node (after its node was lost).

    A child's ref stays valid across restarts: messages already queued, and
    later ones, go to the new incarnation. The message whose handler crashed
    is not retried; an ask waiting on it fails with the handler's error. A
    child whose node is lost is started anew where its placement matches, so
    its ref changes (:meth:`children` has the current ones).

    Each start, restart and end of a child is published as a
    :class:`SupervisorReport` on the topic ``REPORTS + name``, without
    waiting: a subscriber that falls far behind misses reports rather than
    holding up its supervisor.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        children: Sequence[ChildSpec] = (),
        *,
        strategy: Strategy = "one_for_one",
        max_restarts: int = 3,
        period: float = 5.0,
        retry: float = 1.0,
    ) -> None:
        if strategy not in ("one_for_one", "one_for_all", "rest_for_one"):
            raise ValueError(f"unknown supervision strategy {strategy!r}")
        if max_restarts < 0 or period <= 0 or retry <= 0:
            raise ValueError("max_restarts must be >= 0, and period and retry > 0")
        self._initial = list(children)
        self.strategy = strategy
        self.max_restarts = max_restarts
        self.period = period
        self.retry = retry
        self._children: list[_Child] = []  # in start order
        self._restarts: deque[float] = deque()
        self._retrying = False

    async def on_start(self) -> None:
        """Start the initial children, in order."""
        for spec in self._initial:
            await self._start(spec)

    async def on_stop(self) -> None:
        """Stop the children, newest first, each within its ``shutdown`` time."""
        for child in reversed(self._children):
            if child.ref is not None:
                await self._terminate(child.ref)
        self._children.clear()

    # ------------------------------------------------------------------ handlers

    async def start_child(self, spec: ChildSpec) -> ActorRef:
        """Start and supervise one more child; returns its ref."""
        return await self._start(spec)

    async def terminate_child(self, ref: ActorRef) -> bool:
        """Stop a child for good (it is not restarted) and forget its spec.

        Returns:
            False if ``ref`` is not a child of this supervisor (a caller's
            mistake must not crash the supervisor).
        """
        child = self._find(ref)
        if child is None:
            return False
        self._children.remove(child)
        await self._terminate(ref)
        await self._report(ref, "ended")
        return True

    def children(self) -> list[ActorRef]:
        """The supervised children's current refs, in start order (a child
        waiting for a node to start on is left out)."""
        return [child.ref for child in self._children if child.ref is not None]

    async def on_child_exit(self, ref: ActorRef, reason: ExitReason) -> None:
        """A child's incarnation ended: restart it (and others, by strategy) or let it go.

        Raises:
            RestartIntensityError: Too many restarts; the supervisor crashes.
        """
        child = self._find(ref)
        if child is None:  # terminated meanwhile
            await self._terminate(ref)
            return
        spec = child.spec
        if spec.restart == "temporary" or (spec.restart == "transient" and reason.normal):
            log.info(
                "supervisor %r: child %r ended (%s), not restarted", self.ref.name, ref.name, reason
            )
            self._children.remove(child)
            await self._terminate(ref)
            await self._report(ref, "ended", reason)
            return
        self._count_restart(ref, reason)
        index = self._children.index(child)
        if self.strategy == "one_for_one":
            affected = [child]
        elif self.strategy == "one_for_all":
            affected = list(self._children)
        else:
            affected = self._children[index:]
        log.info(
            "supervisor %r: child %r ended (%s); restarting %s",
            self.ref.name,
            ref.name,
            reason,
            ", ".join(c.ref.name if c.ref else "?" for c in affected),
        )
        if reason.kind == "node lost":
            child.ref = None  # it is gone with its node: start it anew elsewhere
        for other in reversed(affected):
            if other is not child and other.ref is not None and self._reachable(other.ref):
                await current_runtime().suspend(other.ref)
        for one in affected:  # in start order, each started before the next
            why = reason if one is child else None
            if one.ref is not None and self._reachable(one.ref):
                await current_runtime().restart(one.ref)
                await self._report(one.ref, "restarted", why)
            else:
                await self._place(one, why)

    async def retry_starts(self) -> None:
        """Start the children that wait for a node (the supervisor's own timer)."""
        self._retrying = False
        for child in self._children:
            if child.ref is None:
                await self._place(child, None)

    # ------------------------------------------------------------------ internals

    def _find(self, ref: ActorRef) -> _Child | None:
        for child in self._children:
            if child.ref == ref:
                return child
        return None

    def _reachable(self, ref: ActorRef) -> bool:
        return ref.node == self.node.name or ref.node in {p.name for p in self.node.peers}

    async def _spawn(self, spec: ChildSpec) -> ActorRef:
        return await self.node.spawn(
            spec.cls,
            *spec.args,
            name=spec.name,
            mailbox_size=spec.mailbox_size,
            supervisor=self.ref,
            shutdown=spec.shutdown,
            on=spec.on,
            **spec.kwargs,
        )

    async def _start(self, spec: ChildSpec) -> ActorRef:
        ref = await self._spawn(spec)
        self._children.append(_Child(spec, ref))
        await self._report(ref, "started")
        return ref

    async def _report(
        self, child: ActorRef | None, what: Happening, reason: ExitReason | None = None
    ) -> None:
        report = SupervisorReport(self.ref, child, what, reason)
        await current_runtime().report(REPORTS + self.ref.name, report)

    async def _place(self, child: _Child, reason: ExitReason | None) -> None:
        # Start a child whose node was lost, wherever its placement matches now.
        child.ref = None
        try:
            child.ref = await self._spawn(child.spec)
        except (ActorNotFoundError, ValueError) as exc:  # no node yet; its old copy there
            log.warning(
                "supervisor %r: cannot start %s yet (%s); retrying every %s s",
                self.ref.name,
                child.spec.name or child.spec.cls.__name__,
                exc,
                self.retry,
            )
            if not self._retrying:
                self._retrying = True
                self.send_after(self.retry, "retry_starts")
            if reason is not None:  # once, not at every retry
                await self._report(None, "waiting", reason)
            return
        await self._report(child.ref, "started", reason)

    async def _terminate(self, ref: ActorRef) -> None:
        with contextlib.suppress(ActorNotFoundError, ActorStoppedError):
            await current_runtime().terminate(ref)

    def _count_restart(self, ref: ActorRef, reason: ExitReason) -> None:
        now = trio.current_time()
        restarts = self._restarts
        restarts.append(now)
        while restarts and restarts[0] <= now - self.period:
            restarts.popleft()
        if len(restarts) > self.max_restarts:
            raise RestartIntensityError(
                f"supervisor {self.ref.name!r}: more than {self.max_restarts} restarts within "
                f"{self.period} s (last: child {ref.name!r}, {reason}); giving up"
            )
