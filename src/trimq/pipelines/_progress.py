"""The live progress display of a run, on stderr (``progress=True``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio
from rich.console import Console
from rich.live import Live
from rich.table import Table

if TYPE_CHECKING:
    from ._run import RunCore

__all__ = ["show_progress"]


def _title(core: RunCore, started: float) -> str:
    title = f"pipeline {core.pipeline.name} (run {core.id[:6]}): {core.finished:,}"
    if core.total is None:
        return title + " items done"
    title += f" of {core.total:,} items done"
    elapsed = trio.current_time() - started
    if core.finished and core.finished < core.total and elapsed > 0:
        eta = (core.total - core.finished) * elapsed / core.finished
        title += f", about {eta:,.0f} s to go"
    return title


def _table(core: RunCore, started: float) -> Table:
    table = Table(title=_title(core, started))
    for column in (
        "stage",
        "done",
        "failed",
        "retried",
        "in flight",
        "queued",
        "items/s",
        "p50 ms",
    ):
        table.add_column(column, justify="right" if column != "stage" else "left")
    for s in core.statistics():
        table.add_row(
            s.name,
            str(s.completed),
            str(s.failed),
            str(s.retried),
            str(s.in_flight),
            str(s.queued),
            f"{s.rate:,.0f}",
            f"{s.p50 * 1000:.2f}",
        )
    return table


async def show_progress(core: RunCore) -> None:
    """Redraw the per-stage table a few times a second until the run is done."""
    started = trio.current_time()
    console = Console(stderr=True)
    with Live(_table(core, started), console=console, refresh_per_second=4) as live:
        while not core.done.is_set():
            with trio.move_on_after(0.25):
                await core.done.wait()
            live.update(_table(core, started))
