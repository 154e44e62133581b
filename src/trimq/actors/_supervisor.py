"""Supervisors: actors that start children and decide what happens when one ends (OTP)."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import attrs
import trio

from .._errors import TrimqError
from ._actor import Actor
from ._exit import ExitReason
from ._ref import ActorRef

__all__ = ["ChildSpec", "RestartIntensityError", "Supervisor"]

log = logging.getLogger("trimq.actors")

Strategy = Literal["one_for_one", "one_for_all", "rest_for_one"]
Restart = Literal["permanent", "transient", "temporary"]


class RestartIntensityError(TrimqError):
    """A supervisor's children ended more often than its restart intensity allows.

    The supervisor crashes with it, so that its own supervisor decides.

    .. versionadded:: 0.1
    """


@attrs.frozen
class ChildSpec:
    """How a supervisor starts, and restarts, one child.

    Attributes:
        cls: The child's Actor class.
        args: Positional arguments for ``cls`` (each start builds a new instance).
        kwargs: Keyword arguments for ``cls``.
        name: The child's name on the node (its refs use it across restarts);
            default ``"<ClassName>-<n>"``.
        restart: ``"permanent"``: always restarted; ``"transient"``: restarted
            only after a crash or kill, not a graceful stop; ``"temporary"``:
            never restarted.
        shutdown: Seconds it gets to finish its message and ``on_stop`` when its
            supervisor stops it, before it is killed.
        mailbox_size: As for ``Node.spawn``.

    .. versionadded:: 0.1
    """

    cls: type[Actor]
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = attrs.field(factory=dict)
    name: str | None = None
    restart: Restart = "permanent"
    shutdown: float = 5.0
    mailbox_size: int = 1000


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

    A child's ref stays valid across restarts: messages already queued, and
    later ones, go to the new incarnation. The message whose handler crashed
    is not retried; an ask waiting on it fails with the handler's error.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        children: Sequence[ChildSpec] = (),
        *,
        strategy: Strategy = "one_for_one",
        max_restarts: int = 3,
        period: float = 5.0,
    ) -> None:
        if strategy not in ("one_for_one", "one_for_all", "rest_for_one"):
            raise ValueError(f"unknown supervision strategy {strategy!r}")
        if max_restarts < 0 or period <= 0:
            raise ValueError("max_restarts must be >= 0 and period > 0")
        self._initial = list(children)
        self.strategy = strategy
        self.max_restarts = max_restarts
        self.period = period
        self._specs: dict[str, ChildSpec] = {}  # by child name, in start order
        self._restarts: deque[float] = deque()

    async def on_start(self) -> None:
        """Start the initial children, in order."""
        for spec in self._initial:
            await self._start(spec)

    async def on_stop(self) -> None:
        """Stop the children, newest first, each within its ``shutdown`` time."""
        for name in reversed(list(self._specs)):
            await self.node.terminate(ActorRef(self.node.name, name))
        self._specs.clear()

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
        if self._specs.pop(ref.name, None) is None:
            return False
        await self.node.terminate(ref)
        return True

    def children(self) -> list[ActorRef]:
        """The supervised children, in start order."""
        return [ActorRef(self.node.name, name) for name in self._specs]

    async def on_child_exit(self, ref: ActorRef, reason: ExitReason) -> None:
        """A child's incarnation ended: restart it (and others, by strategy) or let it go.

        Raises:
            RestartIntensityError: Too many restarts; the supervisor crashes.
        """
        spec = self._specs.get(ref.name)
        if spec is None:  # terminated meanwhile
            await self.node.terminate(ref)
            return
        if spec.restart == "temporary" or (spec.restart == "transient" and reason.normal):
            log.info(
                "supervisor %r: child %r ended (%s), not restarted", self.ref.name, ref.name, reason
            )
            del self._specs[ref.name]
            await self.node.terminate(ref)
            return
        self._count_restart(ref, reason)
        names = list(self._specs)
        if self.strategy == "one_for_one":
            affected = [ref.name]
        elif self.strategy == "one_for_all":
            affected = names
        else:
            affected = names[names.index(ref.name) :]
        log.info(
            "supervisor %r: child %r ended (%s); restarting %s",
            self.ref.name,
            ref.name,
            reason,
            ", ".join(affected),
        )
        for name in reversed(affected):
            if name != ref.name:
                await self.node.suspend(ActorRef(self.node.name, name))
        for name in affected:  # in start order, each started before the next
            await self.node.restart(ActorRef(self.node.name, name))

    # ------------------------------------------------------------------ internals

    async def _start(self, spec: ChildSpec) -> ActorRef:
        ref = await self.node.spawn(
            spec.cls,
            *spec.args,
            name=spec.name,
            mailbox_size=spec.mailbox_size,
            supervisor=self.ref,
            shutdown=spec.shutdown,
            **spec.kwargs,
        )
        self._specs[ref.name] = spec
        return ref

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
