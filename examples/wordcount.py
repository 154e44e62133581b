"""Word count with ``trimq.pipelines``, on one node: a generator stage and a batch stage.

::

    lines --> words (generator: one line in, its words out)
          --> normalise (batch: a list of words in, as many out)
          --> counted here

Three small text files are written to a temporary directory; their lines are
the source. ``words`` yields each word of a line: a line makes 0 or more
items, and they stay together, in order. ``normalise`` gets lists of up to
256 words and returns a list as long, each word lower-cased and stripped of
punctuation (a word that was only punctuation becomes ``""``).
``Pipeline.run`` returns every output in source order, and the program counts
them; words with the same count are shown in alphabetical order.

Run it with ``python examples/wordcount.py``. Expected output::

    wordcount: 3 files, 12 lines
    wordcount: 98 words, 60 different
    wordcount: in source order: a pipeline is a chain of stages each ...
    wordcount: top 5: the 9, a 8, item 5, is 4, at 3
"""

from __future__ import annotations

import collections
import string
import tempfile
from collections.abc import Iterator
from pathlib import Path

import trio

from trimq import actors
from trimq.pipelines import Pipeline, Stage

TEXTS = {
    "one.txt": """\
A pipeline is a chain of stages.
Each stage is a pool of workers.
The node that runs the pipeline owns every item.
An item is done at a stage when the stage answers.
""",
    "two.txt": """\
Batches go out to the workers with credit.
A worker holds two batches at most.
Retries wait a little, then go to another worker.
After the last attempt, the item is a failure.
""",
    "three.txt": """\
Outputs arrive exactly once.
Side effects happen at least once, so the sink
keys its writes by the item: the pipeline
gives each item a name of its own -- see current_item().
""",
}


def words(line: str) -> Iterator[str]:
    """The words of a line (0 or more items from one)."""
    yield from line.split()


def normalise(batch: list[str]) -> list[str]:
    """Lower-case each word and strip its punctuation: one call per list of words."""
    return [word.strip(string.punctuation).lower() for word in batch]


def read_lines(directory: Path) -> list[str]:
    """Every line of every ``.txt`` file in ``directory``, file by file."""
    return [
        line for path in sorted(directory.glob("*.txt")) for line in path.read_text().splitlines()
    ]


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        for name, text in TEXTS.items():
            (directory / name).write_text(text)
        lines = read_lines(directory)
        print(f"wordcount: {len(TEXTS)} files, {len(lines)} lines")
    pipeline = Pipeline(
        Stage(words, workers=2),
        Stage(normalise, batch=256),
        name="wordcount",
    )
    async with actors.open_node("wordcount") as node:
        outputs = await pipeline.run(node, lines, progress=False)
    counts = collections.Counter(word for word in outputs if word)
    print(f"wordcount: {sum(counts.values())} words, {len(counts)} different")
    print(f"wordcount: in source order: {' '.join(outputs[:8])} ...")
    # Most common first; words with the same count in alphabetical order.
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    print(f"wordcount: top 5: {', '.join(f'{word} {n}' for word, n in top)}")


if __name__ == "__main__":
    trio.run(main)
