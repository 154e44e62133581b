"""trimq.pipelines: supervised task pipelines over actor pools, across hosts.

A :class:`Pipeline` is a chain of :class:`Stage`\\ s; each stage is a
supervised pool of workers (actors) on this node or on other nodes
(``on=``). The node that runs the pipeline owns every item until the stage
it was handed to answers for it: a worker that crashes, times out or is lost
with its node fails the attempt, and the item goes out again (back-off with
jitter, another worker where there is one) up to ``max_attempts``; then it
is a :class:`Failure`. Outputs reach the caller exactly once each; stage
side effects are at least once, which :func:`current_item` lets a sink make
idempotent.

Example::

    from trimq import actors, pipelines

    def parse(line: str) -> dict: ...

    pipeline = pipelines.Pipeline(
        pipelines.Stage(parse, workers=4),
        pipelines.Stage(store, batch=500),
        name="etl",
    )
    async with actors.open_node("hub") as node:
        outputs = await pipeline.run(node, lines)
"""

from ._errors import Failure as Failure
from ._errors import PipelineError as PipelineError
from ._item import ItemInfo as ItemInfo
from ._item import current_item as current_item
from ._journal import JournalError as JournalError
from ._pipeline import Pipeline as Pipeline
from ._run import Run as Run
from ._stage import Stage as Stage
from ._stats import StageStatistics as StageStatistics

__all__ = [
    "Failure",
    "ItemInfo",
    "JournalError",
    "Pipeline",
    "PipelineError",
    "Run",
    "Stage",
    "StageStatistics",
    "current_item",
]
