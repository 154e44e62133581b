"""A worker pool spread over several hosts, run as a pipeline from one: work survives a dead node.

::

    hub (this program)                 worker-1 (trimq node)   worker-2 (trimq node)
      Pipeline "squares" ----- CURVE ---> 2 Square workers        2 Square workers
        Stage(Square, workers=4, on="worker")

The hub connects to the worker nodes (each started with ``trimq node``, tagged
``worker``, allowing only the hub's key) and runs a one-stage pipeline over 40
jobs with ``Pipeline.run``. The stage is an Actor class, ``Square``, whose
``process`` squares a job; its four workers are supervised actors placed on
nodes tagged ``worker``, two on each. Jobs arrive every 5 ms and take 20 ms
each. After 10, worker-1 is killed (``kill -9``).

The hub owns every job until a worker answers for it. A job at worker-1 fails
its attempt once the hub finds worker-1 gone (at the latest after a second
without heartbeats), and goes out again, after a short back-off, to a worker
on worker-2. The stage's supervisor starts worker-1's two workers again on
worker-2. No job is lost, and ``run`` returns each result once, in job order.
There is no retry loop here: the pipeline does it.

On several hosts, step by step::

    # on every host: make a key pair (NAME.key is public, NAME.key_secret is not)
    trimq keygen hub            # on the hub host
    trimq keygen worker-1       # on worker host 1 (and worker-2 on host 2)
    # copy hub.key to the workers, and each worker-N.key to the hub host

    # on worker host N
    trimq node --listen tcp://0.0.0.0:7000 --name worker-N --tag worker \\
        --key worker-N.key_secret --allow hub.key

    # on the hub host
    python examples/cluster_pool.py --key hub.key_secret \\
        --worker tcp://HOST1:7000=worker-1.key --worker tcp://HOST2:7000=worker-2.key

Run without arguments, it makes the keys in a temporary directory and starts
two ``trimq node`` workers itself, on loopback. Expected output (``...``
stands for what varies from run to run: jobs 0 to 9 usually ran on both
workers)::

    hub: connected to worker-1, worker-2
    hub: 10 jobs handed out; killed worker-1
    hub: 40 of 40 jobs done, results sum to 20540
    hub: jobs 0 to 9 ran on ...
    hub: jobs 10 to 39 ran on worker-2
"""

from __future__ import annotations

import argparse
import logging
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import trio

from trimq import actors
from trimq.auth import create_certificates, load_certificate
from trimq.pipelines import Pipeline, Stage

JOBS = 40
KILL_AT = 10


class Square(actors.Actor):
    """A stage's worker: an actor, on whichever node its supervisor placed it."""

    async def process(self, n: int) -> tuple[int, str]:
        """``n`` squared, and the node that squared it (after 20 ms, as for real work)."""
        await trio.sleep(0.02)
        return n * n, self.node.name


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


async def jobs(kill: subprocess.Popen[str] | None, victim: str) -> AsyncIterator[int]:
    """The jobs, one every 5 ms; worker-1 is killed after the first ``KILL_AT``."""
    for n in range(JOBS):
        if n == KILL_AT and kill is not None:
            kill.send_signal(signal.SIGKILL)
            print(f"hub: {KILL_AT} jobs handed out; killed {victim}")
        yield n
        await trio.sleep(0.005)


def ran_on(results: list[tuple[int, str]], first: int, last: int) -> str:
    """Which nodes did jobs ``first`` to ``last``."""
    return " and ".join(sorted({node for _, node in results[first : last + 1]}))


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
        pipeline = Pipeline(Stage(Square, workers=4, on="worker"), name="squares")
        results = await pipeline.run(hub, jobs(kill, names[0]), progress=False)
        total = sum(square for square, _ in results)
        print(f"hub: {len(results)} of {JOBS} jobs done, results sum to {total}")
        print(f"hub: jobs 0 to {KILL_AT - 1} ran on {ran_on(results, 0, KILL_AT - 1)}")
        print(f"hub: jobs {KILL_AT} to {JOBS - 1} ran on {ran_on(results, KILL_AT, JOBS - 1)}")


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
