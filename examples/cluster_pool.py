"""A worker pool spread over several hosts, supervised from one: work survives a dead node.

::

    hub (this program)                 worker-1 (trimq node)   worker-2 (trimq node)
      Supervisor "pool" ------ CURVE ---> square-0, square-2      square-1, square-3
        children placed on="worker"

The hub connects to the worker nodes (each started with ``trimq node``, tagged
``worker``, allowing only the hub's key) and starts a supervised pool whose
children are placed on nodes tagged ``worker``. It hands out 40 jobs with
``ask``. After 10, worker-1 is killed (``kill -9``): the hub notices within
its heartbeat timeout, the supervisor starts worker-1's children again on
worker-2, and the jobs that failed with "node lost" are handed out again. No
acknowledged job is lost.

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
two ``trimq node`` workers itself, on loopback. Expected output::

    hub: connected to worker-1, worker-2
    hub: pool children on worker-1, worker-1, worker-2, worker-2
    hub: killed worker-1
    hub: pool children on worker-2, worker-2, worker-2, worker-2
    hub: 40 of 40 jobs acknowledged, results sum to 20540
"""

from __future__ import annotations

import argparse
import logging
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import trio

from trimq import actors
from trimq.actors import ChildSpec, Supervisor
from trimq.auth import create_certificates, load_certificate

JOBS = 40


class Square(actors.Actor):
    def square(self, n: int) -> int:
        return n * n


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


async def placement(hub: actors.Node, pool: actors.ActorRef, wanted: list[str]) -> list[str]:
    """The nodes of the pool's children, once they are ``wanted``."""
    with trio.fail_after(10):
        while True:
            children = await pool.ask("children")
            nodes = sorted(child.node for child in children)
            if nodes == wanted:
                return nodes
            await trio.sleep(0.05)  # the supervisor moves them as it learns of the loss


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
        specs = [ChildSpec(Square, name=f"square-{i}", on="worker") for i in range(4)]
        pool = await hub.spawn(Supervisor, specs, max_restarts=10, name="pool")
        nodes = await placement(hub, pool, sorted(names * 2))
        print(f"hub: pool children on {', '.join(nodes)}")
        done: dict[int, int] = {}
        todo = list(range(JOBS))
        while todo:
            children = await pool.ask("children")
            failed = []
            for i, job in enumerate(todo):
                if job == 10 and kill is not None and kill.poll() is None:
                    kill.send_signal(signal.SIGKILL)
                    print(f"hub: killed {names[0]}")
                try:
                    done[job] = await children[i % len(children)].ask("square", job, timeout=5)
                except (actors.ActorStoppedError, actors.ActorNotFoundError, TimeoutError):
                    failed.append(job)  # not acknowledged: hand it out again
            todo = failed
        if kill is not None:
            nodes = await placement(hub, pool, [names[1]] * 4)
            print(f"hub: pool children on {', '.join(nodes)}")
        print(f"hub: {len(done)} of {JOBS} jobs acknowledged, results sum to {sum(done.values())}")


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
