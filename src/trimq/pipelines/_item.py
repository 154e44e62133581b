"""Which item a stage is working on: :func:`current_item`, for idempotent stages."""

from __future__ import annotations

import contextvars
from typing import Protocol

import attrs

__all__ = ["ItemInfo", "current_item"]


@attrs.frozen
class ItemInfo:
    """The item a stage's code is handling now.

    ``(run, index, path)`` names the item for good: a retry or a redelivery
    after a lost node has the same one, with a higher ``attempt``. A sink
    that keys its writes by it is idempotent.

    Attributes:
        run: The run's id (random, one per ``run()`` or ``open()``).
        stage: The stage's name.
        index: The source item's position in the source (0-based).
        path: Which output of which earlier generator stage this is (empty
            when no earlier stage is a generator): ``(2,)`` is the third
            output an earlier generator made of source item ``index``.
        attempt: 1 for the first attempt at this stage, 2 for the first retry...

    .. versionadded:: 0.1
    """

    run: str
    stage: str
    index: int
    path: tuple[int, ...]
    attempt: int


class Items(Protocol):
    """Where the current item's :class:`ItemInfo` comes from: a worker's batch,
    with ``at`` the position of the item being handled."""

    at: int

    def info(self, i: int) -> ItemInfo:
        """The ``i``-th item's."""
        ...


# The batch being handled (set once per batch; the worker moves ``at``): the
# ItemInfo is made only when asked for.
_CURRENT: contextvars.ContextVar[Items] = contextvars.ContextVar("trimq_pipeline_item")


def current_item() -> ItemInfo:
    """The item the calling stage code is handling.

    Raises:
        LookupError: Not called from a stage's function or ``process``
            (for a ``batch`` stage: the batch's first item).

    .. versionadded:: 0.1
    """
    try:
        items = _CURRENT.get()
    except LookupError:
        raise LookupError(
            "current_item() is only known inside a pipeline stage's function or process()"
        ) from None
    return items.info(items.at)


def set_items(items: Items) -> contextvars.Token[Items]:
    """Make ``items`` the current batch (the workers do, around each batch)."""
    return _CURRENT.set(items)


def reset_items(token: contextvars.Token[Items]) -> None:
    """Undo :func:`set_items`."""
    _CURRENT.reset(token)
