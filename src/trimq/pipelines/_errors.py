"""What a pipeline run reports when items fail: :class:`Failure`, :class:`PipelineError`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from .._errors import TrimqError

__all__ = ["Failure", "PipelineError"]


@attrs.frozen
class Failure:
    """A source item that did not make it through: a stage failed it ``attempts`` times.

    Attributes:
        item: The input of the stage that failed (not the source item, once
            an earlier stage has transformed it).
        stage: The name of the stage that failed it.
        error: The last attempt's exception: its own type where it could be
            rebuilt here, else an :class:`~trimq.actors.ActorError` standing
            in for it.
        attempts: How many attempts were made.
        index: The source item's position in the source (0-based).

    .. versionadded:: 0.1
    """

    item: Any
    stage: str
    error: BaseException
    attempts: int
    index: int = 0


class PipelineError(TrimqError):
    """A run finished with failed items (or could not go on).

    Attributes:
        failures: The failed items, in source order.
        results: The outputs of every item that succeeded, in source order.

    .. versionadded:: 0.1
    """

    def __init__(
        self, message: str, failures: Sequence[Failure] = (), results: Sequence[Any] = ()
    ) -> None:
        super().__init__(message)
        self.failures = list(failures)
        self.results = list(results)
