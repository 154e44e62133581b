"""Every ``examples/*.py`` runs as a real program and prints what its docstring shows.

Examples are found by globbing, so a new example is tested without editing this
file. Each must start with a docstring containing a block introduced by a line
with ``Expected output`` and ending in ``::``; the block's indented lines are
the output. In them ``...`` stands for any text. The part of a line before its
first ``:`` names who prints it (``sink: ...``, ``client-1: ...``): lines of one
speaker must appear in the order shown, while concurrent speakers may
interleave. The program may print more lines than the block shows, but nothing
on stderr (no warnings, no tracebacks), and it must exit 0 within ``TIMEOUT``.
"""

from __future__ import annotations

import ast
import os
import re
import sys
from pathlib import Path

import pytest
import trio

import trimq

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"
EXAMPLES = sorted(EXAMPLES_DIR.glob("*.py"))
# Most examples take well under a second, the cluster ones a few; the margin is
# for slow CI machines.
TIMEOUT = 30


def expected_output(source: str) -> list[str]:
    """The lines of the docstring's ``Expected output ...::`` block."""
    doc = ast.get_docstring(ast.parse(source))
    assert doc, "an example must start with a docstring explaining its pattern"
    lines = doc.splitlines()
    starts = [i for i, line in enumerate(lines) if "Expected output" in line]
    assert starts, "the docstring needs an 'Expected output ...::' block"
    i = starts[0]
    while not lines[i].rstrip().endswith("::"):
        i += 1
    block: list[str] = []
    for line in lines[i + 1 :]:
        if line.strip() and not line.startswith("    "):
            break
        if line.strip():
            block.append(line.strip())
    assert block, "the 'Expected output' block is empty"
    return block


def speaker(line: str) -> str:
    """Who printed ``line``: the text before its first colon."""
    return line.partition(":")[0] if ":" in line else ""


def matches(pattern: str, line: str) -> bool:
    """``line`` matches ``pattern``, in which ``...`` stands for any text."""
    regex = ".*".join(re.escape(part) for part in pattern.split("..."))
    return re.fullmatch(regex, line) is not None


def check_output(patterns: list[str], output: list[str]) -> None:
    """Each speaker's expected lines appear, in order, among that speaker's output lines."""
    for who in dict.fromkeys(speaker(p) for p in patterns):
        assert "..." not in who, f"the speaker of expected lines must be literal: {who!r}"
        wanted = [p for p in patterns if speaker(p) == who]
        remaining = iter(line for line in output if speaker(line) == who)
        for pattern in wanted:
            if not any(matches(pattern, line) for line in remaining):
                pytest.fail(
                    f"expected a line matching {pattern!r} (after the earlier {who!r} lines); "
                    "got:\n" + "\n".join(output)
                )


def subprocess_env() -> dict[str, str]:
    """The environment for an example: it must import the trimq under test."""
    package_parent = str(Path(trimq.__file__).resolve().parent.parent)
    path = [package_parent, *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(path)}


async def run_example(args: list[str], cwd: Path) -> tuple[list[str], str]:
    """Run ``python *args``; return its stdout lines and stderr, asserting exit status 0."""
    with trio.fail_after(TIMEOUT):
        proc = await trio.run_process(
            [sys.executable, *args],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            cwd=cwd,
            env=subprocess_env(),
        )
    stdout = proc.stdout.decode()
    stderr = proc.stderr.decode()
    assert proc.returncode == 0, f"exit status {proc.returncode}\n{stdout}\n{stderr}"
    return stdout.splitlines(), stderr


def test_the_examples_are_found() -> None:
    names = {path.name for path in EXAMPLES}
    assert {"pipeline.py", "pubsub.py", "broker.py", "with_pyzmq.py"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=[path.stem for path in EXAMPLES])
def test_example_is_listed_in_readme(path: Path) -> None:
    readme = (EXAMPLES_DIR / "README.md").read_text()
    assert f"({path.name})" in readme, f"examples/README.md should link {path.name}"


@pytest.mark.parametrize("path", EXAMPLES, ids=[path.stem for path in EXAMPLES])
async def test_example_runs_and_prints_its_expected_output(path: Path, tmp_path: Path) -> None:
    source = await trio.Path(path).read_text()
    if re.search(r"^\s*import zmq\b", source, re.MULTILINE):
        pytest.importorskip("zmq")
    patterns = expected_output(source)
    # Run from an unrelated directory: an example must not depend on the cwd.
    output, stderr = await run_example([str(path)], cwd=tmp_path)
    assert stderr == "", f"{path.name} wrote to stderr:\n{stderr}"
    check_output(patterns, output)


async def test_with_pyzmq_exits_cleanly_without_pyzmq(tmp_path: Path) -> None:
    # A None entry in sys.modules makes ``import zmq`` raise ImportError.
    script = (
        "import runpy, sys\n"
        "sys.modules['zmq'] = None\n"
        f"runpy.run_path({str(EXAMPLES_DIR / 'with_pyzmq.py')!r}, run_name='__main__')\n"
    )
    output, stderr = await run_example(["-c", script], cwd=tmp_path)
    assert stderr == ""
    assert output == ["with_pyzmq: pyzmq is not installed (pip install pyzmq); nothing to show"]


def test_check_output_allows_interleaving_but_not_reordering() -> None:
    patterns = ["a: 1", "a: ...", "b: x", "done"]
    check_output(patterns, ["b: x", "a: 1", "extra line", "b: y", "a: 2", "done"])
    with pytest.raises(pytest.fail.Exception):  # the second "a" line is missing
        check_output(patterns, ["a: 1", "b: x", "done"])
    with pytest.raises(pytest.fail.Exception):
        check_output(["a: 1", "a: 2"], ["a: 2", "a: 1"])


# The pipeline examples: beyond their documented output, what the output shows.


async def test_wordcount_prints_exactly_its_documented_output(tmp_path: Path) -> None:
    # Nothing in it varies: every line, and only those, in order.
    path = EXAMPLES_DIR / "wordcount.py"
    output, stderr = await run_example([str(path)], cwd=tmp_path)
    assert stderr == ""
    assert output == expected_output(path.read_text())


async def test_pipeline_cluster_sends_the_killed_workers_items_again(tmp_path: Path) -> None:
    output, stderr = await run_example([str(EXAMPLES_DIR / "pipeline_cluster.py")], cwd=tmp_path)
    assert stderr == ""
    assert "hub: 2000 of 2000 items came out, each exactly once" in output
    stats = {line.split(":")[1].strip(): line for line in output if line.startswith("stats:")}
    assert list(stats) == ["parse", "transform", "store"]
    retried = re.search(r"retried (\d+),", stats["transform"])
    assert retried, stats["transform"]
    # worker-1 held batches when it was killed: they failed and went out again.
    assert int(retried.group(1)) > 0, stats["transform"]
    for name in ("parse", "store"):
        assert "completed 2000, failed 0, retried 0," in stats[name]


async def test_cluster_pool_loses_no_job_to_the_killed_worker(tmp_path: Path) -> None:
    output, stderr = await run_example([str(EXAMPLES_DIR / "cluster_pool.py")], cwd=tmp_path)
    assert stderr == ""
    assert "hub: 40 of 40 jobs done, results sum to 20540" in output
    assert "hub: jobs 10 to 39 ran on worker-2" in output
