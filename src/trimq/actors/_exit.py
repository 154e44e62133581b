"""Why an actor ended: what monitors receive."""

from __future__ import annotations

from typing import Literal

import attrs

__all__ = ["ExitKind", "ExitReason", "Verdict"]

ExitKind = Literal["stopped", "crashed", "killed", "not running", "node lost"]

#: What a supervisor does with a child, on the child's node: end its current
#: incarnation for a restart (``suspend``), start the next one (``restart``),
#: or end it for good (``terminate``).
Verdict = Literal["suspend", "restart", "terminate"]


@attrs.frozen
class ExitReason:
    """Why an actor ended, as its monitors are told (see :meth:`Actor.monitor`).

    Attributes:
        kind: ``"stopped"`` (gracefully: ``stop()`` or its node closing),
            ``"crashed"`` (a handler raised), ``"killed"`` (``kill()``),
            ``"not running"`` (it had already ended when the monitor was set),
            or ``"node lost"`` (its node stopped answering: it may still run,
            cut off; see ``open_node(timeout=...)``).
        error: For ``"crashed"``, the exception the handler raised.

    .. versionadded:: 0.1
    """

    kind: ExitKind
    error: BaseException | None = attrs.field(default=None, eq=False)

    @property
    def normal(self) -> bool:
        """True for a graceful stop: what a *transient* supervised child may do."""
        return self.kind == "stopped"

    def __str__(self) -> str:
        if self.error is None:
            return self.kind
        return f"{self.kind}: {type(self.error).__name__}: {self.error}"
