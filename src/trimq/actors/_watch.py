"""Monitors and links among one node's actors (as Erlang's monitors and links).

A monitor is one-way and lasts one incarnation of its target: the watcher is
told once, through ``on_down``, when that incarnation ends. A link ties two
live incarnations together both ways: a crash or kill of one ends the other
with :class:`LinkedActorError`. Watchers may be on other nodes (the runtime
routes their notices through the cluster); links are local only.

This module is local bookkeeping: who watches whom, who is linked to whom.
Notices travel through the watcher's mailbox like any message, posted from a
task of their own so that a full mailbox makes them wait, never drops them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from ._cell import NO_NAMES
from ._errors import LinkedActorError
from ._mail import Call

if TYPE_CHECKING:
    from ._cell import Cell
    from ._exit import ExitReason
    from ._ref import ActorRef

__all__ = ["Watches"]


class Watches:
    """Who monitors, and who is linked to, the actors of one node."""

    def __init__(self, cells: Mapping[str, Cell], post: Callable[[Cell, Call], None]) -> None:
        self._cells = cells  # the node's, read only
        self._post = post  # through a cell's mailbox, from a task of its own
        self._watchers: dict[str, set[ActorRef]] = {}  # actor name -> its monitors
        self._watching: dict[str, set[str]] = {}  # local watcher -> names it monitors

    def __len__(self) -> int:
        """How many actors here are monitored (a leak shows as growth)."""
        return len(self._watchers)

    # ------------------------------------------------------------------ monitors

    def monitor(self, watcher: ActorRef, target: str) -> bool:
        """Have local ``watcher`` told when ``target`` (here) ends; False if it
        is not running."""
        cell = self._cells.get(target)
        if cell is None:
            return False
        self._watching.setdefault(watcher.name, set()).add(target)
        self._watchers.setdefault(target, set()).add(watcher)
        return True

    def watch_from(self, watcher: ActorRef, target: str) -> bool:
        """A monitor set from another node; False if ``target`` is not running here."""
        if target not in self._cells:
            return False
        self._watchers.setdefault(target, set()).add(watcher)
        return True

    def demonitor(self, watcher: ActorRef, target: str) -> None:
        """Stop telling ``watcher`` about ``target`` (a notice already sent stays queued)."""
        self._discard(self._watching, watcher.name, target)
        watchers = self._watchers.get(target)
        if watchers is not None:
            watchers.discard(watcher)

    def take(self, target: str) -> set[ActorRef]:
        """The monitors of ``target``'s incarnation, forgotten here."""
        return self._watchers.pop(target, set())

    def tell(self, watcher: str, target: ActorRef, reason: ExitReason) -> None:
        """Local ``target``'s incarnation ended: tell local ``watcher`` (once)."""
        self._discard(self._watching, watcher, target.name)
        self.post_down(watcher, target, reason)

    def post_down(self, watcher: str, target: ActorRef, reason: ExitReason) -> None:
        """Post ``on_down(target, reason)`` to local ``watcher``, if it still runs."""
        cell = self._cells.get(watcher)
        if cell is not None:
            self._post(cell, Call("on_down", (target, reason), {}, None))

    def forget(self, ref: ActorRef) -> None:
        """Local actor ``ref`` ended for good: it needs no more notices."""
        for target in self._watching.pop(ref.name, ()):
            watchers = self._watchers.get(target)
            if watchers is not None:
                watchers.discard(ref)

    def forget_node(self, node: str) -> None:
        """Node ``node`` is gone: forget its actors' monitors of ours."""
        for watchers in self._watchers.values():
            for watcher in [w for w in watchers if w.node == node]:
                watchers.discard(watcher)

    # ------------------------------------------------------------------ links

    def link(self, a: Cell, b: Cell) -> None:
        """Link two actors' current incarnations (each cell keeps its own
        incarnation's links, so that a name reused meanwhile has none)."""
        if a is not b:
            a.links = _added(a.links, b.ref.name)
            b.links = _added(b.links, a.ref.name)

    def unlink(self, a: str, b: str) -> None:
        """Undo :meth:`link` (nothing happens if they were not linked)."""
        for one, other in ((a, b), (b, a)):
            cell = self._cells.get(one)
            if cell is not None and other in cell.links:
                cell.links.discard(other)

    def break_links(self, cell: Cell, reason: ExitReason) -> None:
        """``cell``'s incarnation ended: a crash or kill takes the linked
        incarnations down with it (they crash, with on_stop); a graceful stop
        just unlinks."""
        for name in cell.links:
            other = self._cells.get(name)
            if other is None or cell.ref.name not in other.links:
                continue
            other.links.discard(cell.ref.name)  # (in it, so a real set)
            if not reason.normal:
                other.crash(LinkedActorError(cell.ref, reason))
        cell.links = NO_NAMES

    @staticmethod
    def _discard(table: dict[str, set[str]], key: str, name: str) -> None:
        # Remove ``name`` from ``table[key]``, and the entry once empty.
        names = table.get(key)
        if names is not None and name in names:
            names.discard(name)
            if not names:
                del table[key]


def _added(names: set[str], name: str) -> set[str]:
    if names is NO_NAMES:
        names = set()
    names.add(name)
    return names
