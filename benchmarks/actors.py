"""Local actor benchmarks: trimq.actors next to Pykka, in the same run.

``python benchmarks/actors.py [--reps 3] [--idle 100000]`` (needs ``pip install pykka``;
run it again under ``taskset -c 0`` for the pinned figures BENCHMARKING.md asks for).

Each repetition runs trimq then Pykka, each in a fresh process (so that one
run's heap, threads and garbage never weigh on the next); cells are the median
of the repetitions with min-max. Measured per implementation:

* tell: N one-way messages to one actor (each handler adds to a counter),
  then one ask to make sure all were handled; msgs/s.
* ask: round trips to one actor, each timed alone after a warm-up; median, p99.
* spawn: actors started per second (each started and ready), 5,000 in a
  row, all kept alive: the cost of CPython's garbage collector re-walking the
  growing heap is included, as a program that starts actors pays it.
* idle: memory per idle actor, traced with tracemalloc while ``--idle`` actors
  exist (Pykka: a thread per actor, so it is measured with 1,000).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import trio

from trimq import actors

TELLS = 200_000
ASKS = 20_000
SPAWNS = 5_000


class TrimqCounter(actors.Actor):
    def __init__(self) -> None:
        self.count = 0

    def add(self, n: int) -> None:
        self.count += n

    def get(self) -> int:
        return self.count


def trimq_run(idle: int) -> dict[str, float]:
    async def main() -> dict[str, float]:
        out: dict[str, float] = {}
        async with actors.open_node() as node:
            ref = await node.spawn(TrimqCounter)
            start = time.perf_counter()
            for _ in range(TELLS):
                await ref.tell("add", 1)
            assert await ref.ask("get") == TELLS
            out["tell"] = TELLS / (time.perf_counter() - start)
            lat = []
            for _ in range(ASKS):
                t = time.perf_counter_ns()
                await ref.ask("get")
                lat.append(time.perf_counter_ns() - t)
            out.update(_latency(lat))
            start = time.perf_counter()
            for _ in range(SPAWNS):
                await node.spawn(TrimqCounter)
            out["spawn"] = SPAWNS / (time.perf_counter() - start)
            gc.collect()
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            for _ in range(idle):
                await node.spawn(TrimqCounter)
            gc.collect()
            out["idle_kib"] = (tracemalloc.get_traced_memory()[0] - before) / idle / 1024
            tracemalloc.stop()
        return out

    return trio.run(main)


def pykka_run(idle: int) -> dict[str, float]:
    # Imported by name: Pykka is optional (the bench extra), so mypy may not see it.
    pykka: Any = importlib.import_module("pykka")

    def on_receive(self: Any, message: Any) -> Any:
        if message[0] == "add":
            self.count += message[1]
            return None
        return self.count

    PykkaCounter: Any = type(
        "PykkaCounter", (pykka.ThreadingActor,), {"count": 0, "on_receive": on_receive}
    )

    out: dict[str, float] = {}
    try:
        ref = PykkaCounter.start()
        start = time.perf_counter()
        for _ in range(TELLS):
            ref.tell(("add", 1))
        assert ref.ask(("get",)) == TELLS
        out["tell"] = TELLS / (time.perf_counter() - start)
        lat = []
        for _ in range(ASKS):
            t = time.perf_counter_ns()
            ref.ask(("get",))
            lat.append(time.perf_counter_ns() - t)
        out.update(_latency(lat))
        start = time.perf_counter()
        for _ in range(min(SPAWNS, 1000)):
            PykkaCounter.start()
        out["spawn"] = min(SPAWNS, 1000) / (time.perf_counter() - start)
        pykka.ActorRegistry.stop_all()
        count = min(idle, 1000)
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(count):
            PykkaCounter.start()
        gc.collect()
        out["idle_kib"] = (tracemalloc.get_traced_memory()[0] - before) / count / 1024
        tracemalloc.stop()
    finally:
        pykka.ActorRegistry.stop_all()
    return out


def _run_alone(name: str, idle: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--one", name, "--idle", str(idle)],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    figures: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return figures


def _latency(samples: list[int]) -> dict[str, float]:
    samples = sorted(samples[len(samples) // 10 :])  # drop the warm-up tenth
    return {
        "ask_median_us": statistics.median(samples) / 1000,
        "ask_p99_us": samples[int(len(samples) * 0.99)] / 1000,
    }


def _cell(values: list[float], fmt: Callable[[float], str]) -> str:
    return f"{fmt(statistics.median(values))} ({fmt(min(values))}-{fmt(max(values))})"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a table (median and min-max of the repetitions)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument(
        "--idle", type=int, default=100_000, help="idle actors for the memory figure"
    )
    parser.add_argument("--one", choices=["trimq", "pykka"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:  # a child process: one run, the figures as JSON on stdout
        run = trimq_run if args.one == "trimq" else pykka_run
        print(json.dumps(run(args.idle)))
        return 0
    try:
        importlib.import_module("pykka")
    except ImportError:
        print("Pykka is not installed (pip install pykka): measuring trimq alone")
        impls: dict[str, Callable[[int], dict[str, float]]] = {"trimq": trimq_run}
    else:
        impls = {"trimq": trimq_run, "pykka": pykka_run}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in impls}
    for rep in range(args.reps):
        for name in impls:
            idle = args.idle if rep == 0 else min(args.idle, 10_000)
            results[name].append(_run_alone(name, idle))
            print(f"rep {rep + 1} {name}: {results[name][-1]}", file=sys.stderr)
    rows = [
        ("tell (msgs/s)", "tell", lambda v: f"{v / 1000:.0f}k", "≥ 2x Pykka"),
        ("ask median (µs)", "ask_median_us", lambda v: f"{v:.1f}", "≤ 0.5x Pykka"),
        ("ask p99 (µs)", "ask_p99_us", lambda v: f"{v:.1f}", ""),
        ("spawn (actors/s)", "spawn", lambda v: f"{v / 1000:.1f}k", "≥ 20k/s"),
        ("idle actor (KiB)", "idle_kib", lambda v: f"{v:.1f}", "≤ 10 KiB at 100k"),
    ]
    print(f"{'measure':<18} " + " ".join(f"{n:<24}" for n in impls) + " ratio    target")
    for label, key, fmt, target in rows:
        cells = [_cell([r[key] for r in results[n]], fmt) for n in impls]
        ratio = ""
        if "pykka" in impls:
            mine = statistics.median(r[key] for r in results["trimq"])
            theirs = statistics.median(r[key] for r in results["pykka"])
            ratio = f"{mine / theirs:.2f}x"
        print(f"{label:<18} " + " ".join(f"{c:<24}" for c in cells) + f" {ratio:<8} {target}")
    print("idle: trimq measured with the first repetition's --idle actors, later ones with 10k;")
    print("      Pykka with 1,000 (one thread each)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
