"""CPU instructions per actor message, counted by valgrind: a figure load cannot move.

``python benchmarks/instructions.py [--vs OTHER_SRC] [--cases ...] [--n 2000,12000]``

Wall-clock figures drift by ±20 % on these shared machines, too much to see
a change of a few percent. Callgrind counts the instructions a process runs,
which is the same for the same code and inputs whatever else the machine
does. Each case runs twice under ``valgrind --tool=callgrind`` (with
``PYTHONHASHSEED=0``), with a small and a large number of messages; the
difference over the difference in messages is the cost of one message,
start-up and warm-up cancelled out. Repeated, a local figure moves by about
0.1 %, a remote one by about 0.5 % (the garbage collector's and the event
loop's timing): compare changes larger than that. A whole run takes ~10
minutes, twice that with ``--vs``.

Cases (one process each; the remote cases run both nodes in it, over tcp on
loopback, so their figure is both sides together):

* ``tell`` / ``ask``: a local ``ref.tell`` / ``ref.ask`` to one actor;
* ``remote-tell`` / ``remote-ask``: the same to an actor on the other node.

``--vs DIR`` runs every case against the trimq sources in DIR as well (a
checkout's ``src``, e.g. from ``git worktree add /tmp/before HEAD~1``) and
prints the ratio: how a change moves the cost of a message.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import trio

from trimq import actors

CASES = ("tell", "ask", "remote-tell", "remote-ask")
HERE = Path(__file__).resolve()
SRC = HERE.parent.parent / "src"


class Counter(actors.Actor):
    def __init__(self) -> None:
        self.count = 0

    def add(self, n: int) -> None:
        self.count += n

    def get(self) -> int:
        return self.count


async def _messages(ref: actors.ActorRef, kind: str, n: int) -> None:
    for _ in range(200):  # warm-up, in both runs alike
        await ref.tell("add", 1)
        await ref.ask("get")
    if kind == "tell":
        for _ in range(n):
            await ref.tell("add", 1)
        await ref.ask("get")  # all handled
    else:
        for _ in range(n):
            await ref.ask("get")


async def workload(case: str, n: int) -> None:
    """Send ``n`` messages of ``case`` (the child process's job)."""
    kind = case.removeprefix("remote-")
    if not case.startswith("remote-"):
        async with actors.open_node() as node:
            await _messages(await node.spawn(Counter), kind, n)
        return
    async with (
        actors.open_node("a", listen="tcp://127.0.0.1:*", insecure=True) as a,
        actors.open_node("b", insecure=True) as b,
    ):
        await b.connect(a.endpoints[0])
        await _messages(await a.spawn(Counter), kind, n)


def _instructions(src: Path, case: str, n: int) -> int:
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(src)}
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    command += [sys.executable, str(HERE), "--child", case, str(n)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode:
        raise RuntimeError(f"{case} x{n} failed:\n{done.stderr[-2000:]}")
    found = re.search(r"Collected\s*:\s*([\d,]+)|I\s+refs:\s*([\d,]+)", done.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{done.stderr[-2000:]}")
    return int((found.group(1) or found.group(2)).replace(",", ""))


def per_message(src: Path, case: str, small: int, large: int) -> float:
    """Instructions per message of ``case`` with the trimq sources in ``src``."""
    return (_instructions(src, case, large) - _instructions(src, case, small)) / (large - small)


def main() -> None:
    """Print instructions per message for each case (and against ``--vs``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vs", type=Path, help="other trimq sources to compare with")
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument(
        "--n", default="2000,12000", help="the two message counts (default 2000,12000)"
    )
    parser.add_argument("--child", nargs=2, metavar=("CASE", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        trio.run(workload, args.child[0], int(args.child[1]))
        return
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is needed (Debian: apt install valgrind)")
    cases = args.cases.split(",")
    print(f"{'case':<12} {'this tree':>12}" + (f" {'--vs':>12} {'ratio':>8}" if args.vs else ""))
    for case in cases:
        small, large = (int(x) for x in args.n.split(","))
        mine = per_message(SRC, case, small, large)
        line = f"{case:<12} {mine:>12,.0f}"
        if args.vs:
            other = per_message(args.vs.resolve(), case, small, large)
            line += f" {other:>12,.0f} {mine / other:>8.3f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
