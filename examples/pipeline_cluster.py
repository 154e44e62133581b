"""A pipeline whose middle stage runs on two other hosts: a killed worker loses no item.

::

    hub (this program)                                 worker-1, worker-2 (trimq node)
      parse (2 workers) --> transform (4 workers, on="worker") --> store (1 worker)
        the hub owns every item until a stage answers for it

The hub connects to two worker nodes (each started with ``trimq node``, tagged
``worker``, allowing only the hub's key over CURVE). It runs a three-stage
pipeline over 2000 lines with ``Pipeline.open``: ``parse`` and ``store`` run
on the hub, ``transform`` runs on the workers, two on each. After 500
outputs, worker-1 is killed (``kill -9``). Its batches in flight fail once
the hub declares worker-1 lost (here after 1 second of silence), and go out
again to the workers on worker-2; the supervisor of the stage starts the
two lost workers again on worker-2. Every item comes out exactly once.

``store`` keys what it writes by ``current_item()``: a retried item would
write the same row again, not a second row.

On several hosts, start the workers as in ``examples/cluster_pool.py`` and
pass ``--key hub.key_secret --worker tcp://HOST1:7000=worker-1.key --worker
tcp://HOST2:7000=worker-2.key`` (nothing is killed then).

Run without arguments, it makes the keys in a temporary directory and starts
two ``trimq node`` workers itself, on loopback. Expected output (``...``
stands for a count that varies from run to run)::

    hub: connected to worker-1, worker-2
    hub: transform workers on worker-1, worker-1, worker-2, worker-2
    hub: 500 outputs; killed worker-1
    hub: transform workers on worker-2, worker-2, worker-2, worker-2
    hub: 2000 of 2000 items came out, each exactly once
    hub: store wrote 2000 rows, one per item
    stats: parse: completed 2000, failed 0, retried 0, workers on hub x2
    stats: transform: completed 2000, failed 0, retried ..., workers on worker-2 x4
    stats: store: completed 2000, failed 0, retried 0, workers on hub x1
"""

from __future__ import annotations

import argparse
import collections
import logging
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import trio

from trimq import actors, pipelines
from trimq.auth import create_certificates, load_certificate
from trimq.pipelines import Pipeline, Stage

ITEMS = 2000
KILL_AFTER = 500

#: What ``store`` wrote, keyed by the item it came from.
ROWS: dict[tuple[str, int, tuple[int, ...]], tuple[int, int]] = {}


def parse(line: str) -> int:
    """``"item 17"`` -> 17 (on the hub)."""
    return int(line.split()[1])


async def transform(n: int) -> tuple[int, int]:
    """``n`` and its square (on the workers: 2 ms of waiting, as for a service call)."""
    await trio.sleep(0.002)
    return n, n * n


def store(pair: tuple[int, int]) -> int:
    """Write a row once per item, however often it is tried; output the item's number."""
    item = pipelines.current_item()
    ROWS[(item.run, item.index, item.path)] = pair
    return pair[0]


def start_worker(name: str, keys: Path) -> tuple[subprocess.Popen[str], str]:
    """A ``trimq node`` on loopback, as on a worker host; returns it and its endpoint."""
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "trimq", "node",
            "--listen", "tcp://127.0.0.1:*",
            "--name", name,
            "--tag", "worker",
            "--key", str(keys / f"{name}.key_secret"),
            "--allow", str(keys / "hub.key"),
            "--heartbeat", "0.2", "--timeout", "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # its log
        text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    ready = proc.stdout.readline()  # "trimq node NAME listening on ENDPOINT"
    return proc, ready.split(" listening on ")[1].split(",")[0].strip()


def nodes_of(stats: pipelines.StageStatistics) -> list[str]:
    """The nodes a stage's workers run on, sorted."""
    return sorted(node for _, node in stats.workers)


async def placement(run: pipelines.Run, stage: int, wanted: list[str]) -> list[str]:
    """The nodes of a stage's workers, once they are ``wanted``."""
    with trio.fail_after(15):
        while True:
            nodes = nodes_of(run.statistics()[stage])
            if nodes == wanted:
                return nodes
            await trio.sleep(0.05)  # the supervisor moves them as it learns of the loss


def describe(stats: pipelines.StageStatistics) -> str:
    """One stage's figures, on one line."""
    nodes = collections.Counter(nodes_of(stats))
    where = ", ".join(f"{node} x{count}" for node, count in sorted(nodes.items()))
    return (
        f"stats: {stats.name}: completed {stats.completed}, failed {stats.failed}, "
        f"retried {stats.retried}, workers on {where}"
    )


async def run(
    key_file: Path, workers: list[tuple[str, Path]], kill: subprocess.Popen[str] | None
) -> None:
    hub_public, hub_secret = load_certificate(key_file)
    assert hub_secret is not None
    worker_keys = [load_certificate(cert)[0] for _, cert in workers]
    async with actors.open_node(
        "hub", keys=(hub_public, hub_secret), allow=worker_keys, heartbeat=0.2, timeout=1
    ) as hub:
        names = [
            (await hub.connect(endpoint, key=key)).name
            for (endpoint, _), key in zip(workers, worker_keys, strict=True)
        ]
        print(f"hub: connected to {', '.join(names)}")
        pipeline = Pipeline(
            Stage(parse, workers=2),
            Stage(transform, workers=4, on="worker"),
            Stage(store),
            name="cluster",
        )
        lines = (f"item {i}" for i in range(ITEMS))
        seen: collections.Counter[int] = collections.Counter()
        async with pipeline.open(hub, lines, progress=False) as running:
            nodes = await placement(running, 1, sorted(names * 2))
            print(f"hub: transform workers on {', '.join(nodes)}")
            async for n in running:
                seen[n] += 1
                if sum(seen.values()) == KILL_AFTER and kill is not None:
                    kill.send_signal(signal.SIGKILL)
                    print(f"hub: {KILL_AFTER} outputs; killed {names[0]}")
            if kill is not None:
                nodes = await placement(running, 1, [names[1]] * 4)
                print(f"hub: transform workers on {', '.join(nodes)}")
            once = sorted(seen) == list(range(ITEMS)) and set(seen.values()) == {1}
            print(
                f"hub: {len(seen)} of {ITEMS} items came out, "
                + ("each exactly once" if once else "NOT each exactly once")
            )
            print(f"hub: store wrote {len(ROWS)} rows, one per item")
            for stats in running.statistics():
                print(describe(stats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--key", type=Path, help="the hub's .key_secret certificate")
    parser.add_argument(
        "--worker", action="append", default=[], help="ENDPOINT=WORKER.key (repeatable)"
    )
    args = parser.parse_args()
    logging.getLogger("trimq").setLevel(logging.ERROR)  # the lost node is on purpose
    if args.worker:
        workers = [(w.split("=", 1)[0], Path(w.split("=", 1)[1])) for w in args.worker]
        trio.run(run, args.key, workers, None)
        return
    with tempfile.TemporaryDirectory() as tmp:
        keys = Path(tmp)
        for name in ("hub", "worker-1", "worker-2"):
            create_certificates(keys, name)
        procs = [start_worker(name, keys) for name in ("worker-1", "worker-2")]
        try:
            workers = [
                (endpoint, keys / f"worker-{i}.key") for i, (_, endpoint) in enumerate(procs, 1)
            ]
            trio.run(run, keys / "hub.key_secret", workers, procs[0][0])
        finally:
            for proc, _ in procs:
                proc.terminate()
                proc.wait(timeout=10)
                if proc.stdout is not None:
                    proc.stdout.close()


if __name__ == "__main__":
    main()
