"""Items of one stage, side by side: what waits in a queue, and what a batch carries.

Parallel lists, not an object per item, so that moving a batch costs per
batch: source indexes, paths (``None`` while every path is empty), values,
and the attempts each item has had at this stage.
"""

from __future__ import annotations

from typing import Any

from .. import actors

__all__ = ["Chunk"]


class Chunk:
    """Items of one stage, side by side: waiting, or at a worker."""

    __slots__ = ("attempts", "avoid", "ids", "keys", "paths", "values")

    def __init__(
        self,
        ids: list[int],
        paths: list[tuple[int, ...]] | None,
        values: list[Any],
        attempts: list[int] | None = None,
        avoid: actors.ActorRef | None = None,
    ) -> None:
        self.ids = ids
        self.paths = paths  # None: every path is ()
        self.values = values
        self.attempts = attempts if attempts is not None else [0] * len(ids)  # made so far
        self.avoid = avoid  # the worker a retry should not go back to, if it can
        self.keys: list[Any] | None = None  # a keyed stage's: each item's key

    def __len__(self) -> int:
        return len(self.ids)

    def path(self, i: int) -> tuple[int, ...]:
        """The ``i``-th item's path."""
        return self.paths[i] if self.paths is not None else ()

    def pick(
        self,
        which: list[int],
        attempts: list[int] | None = None,
        avoid: actors.ActorRef | None = None,
    ) -> Chunk:
        """Items ``which`` of this chunk, as a chunk of their own (with
        ``attempts`` instead of theirs, if given)."""
        return Chunk(
            [self.ids[i] for i in which],
            [self.path(i) for i in which],
            [self.values[i] for i in which],
            attempts if attempts is not None else [self.attempts[i] for i in which],
            avoid,
        )

    def take(self, n: int) -> Chunk:
        """The first ``n`` items, removed from this chunk."""
        head = Chunk(
            self.ids[:n],
            None if self.paths is None else self.paths[:n],
            self.values[:n],
            self.attempts[:n],
            self.avoid,
        )
        del self.ids[:n], self.values[:n], self.attempts[:n]
        if self.paths is not None:
            del self.paths[:n]
        return head

    def extend(self, other: Chunk) -> None:
        """Append ``other``'s items."""
        if other.paths is not None or self.paths is not None:
            self.paths = [self.path(i) for i in range(len(self))] + [
                other.path(i) for i in range(len(other))
            ]
        self.ids += other.ids
        self.values += other.values
        self.attempts += other.attempts
