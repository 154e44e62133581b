"""``trimq demo``'s second half: actors on nodes in three processes, supervised from one.

A hub (this process) and two worker nodes (``trimq node`` subprocesses, each
allowing only the hub's CURVE key) join over tcp with CURVE. The hub starts
a supervised pool whose children are placed on the nodes tagged
``worker``, hands out jobs with ``ask``, kills one worker with SIGKILL half
way, and hands the jobs that failed out again while the supervisor starts
the lost children on the other worker. Every job is acknowledged once.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import trio

from trimq import actors
from trimq.auth import create_certificates, load_certificate

__all__ = ["Square", "demo_actors"]

JOBS = 20
KILL_AT = 8


class Square(actors.Actor):
    """The pool's worker: squares what it is given (importable by the workers)."""

    def square(self, n: int) -> int:
        """``n`` squared."""
        return n * n


async def _start_worker(name: str, keys: Path) -> tuple[trio.Process, str]:
    # A ``trimq node`` on loopback, as on a worker host: it prints its endpoint.
    command = [
        sys.executable, "-m", "trimq", "node",
        "--listen", "tcp://127.0.0.1:*",
        "--name", name,
        "--tag", "worker",
        "--key", str(keys / f"{name}.key_secret"),
        "--allow", str(keys / "hub.key"),
        "--heartbeat", "0.2", "--timeout", "1",
    ]  # fmt: skip
    proc = await trio.lowlevel.open_process(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert proc.stdout is not None
    line = b""
    with trio.fail_after(20):
        while not line.endswith(b"\n"):
            chunk = await proc.stdout.receive_some(1)
            if not chunk:
                raise RuntimeError(f"worker {name} exited before it listened")
            line += chunk
    # "trimq node NAME listening on ENDPOINT[, ...]"
    return proc, line.decode().split(" listening on ")[1].split(",")[0].strip()


async def _placement(pool: actors.ActorRef, wanted: list[str]) -> list[str]:
    # The nodes of the pool's children, once they are ``wanted``.
    with trio.fail_after(15):
        while True:
            nodes = sorted(child.node for child in await pool.ask("children"))
            if nodes == wanted:
                return nodes
            await trio.sleep(0.05)  # the supervisor moves them as it learns of the loss


async def _run(keys: Path, workers: list[tuple[trio.Process, str]]) -> None:
    hub_public, hub_secret = load_certificate(keys / "hub.key_secret")
    assert hub_secret is not None
    worker_keys = [load_certificate(keys / f"worker-{i}.key")[0] for i in (1, 2)]
    async with actors.open_node(
        "hub", keys=(hub_public, hub_secret), allow=worker_keys, heartbeat=0.2, timeout=1
    ) as hub:
        names = [
            (await hub.connect(endpoint, key=key)).name
            for (_, endpoint), key in zip(workers, worker_keys, strict=True)
        ]
        print(f"nodes: hub joined {' and '.join(names)} over tcp, CURVE on every connection")
        specs = [actors.ChildSpec(Square, name=f"square-{i}", on="worker") for i in range(4)]
        pool = await hub.spawn(actors.Supervisor, specs, max_restarts=10, name="pool")
        nodes = await _placement(pool, sorted(names * 2))
        print(f"supervision: pool's children on {', '.join(nodes)}")
        done: dict[int, int] = {}
        todo = list(range(JOBS))
        handed_again = 0
        while todo:
            children = await pool.ask("children")
            failed = []
            for i, job in enumerate(todo):
                if job == KILL_AT and workers[0][0].returncode is None:
                    workers[0][0].send_signal(signal.SIGKILL)
                    await workers[0][0].wait()
                    print(f"actors: {KILL_AT} jobs done; killed {names[0]} (SIGKILL)")
                try:
                    done[job] = await children[i % len(children)].ask("square", job, timeout=5)
                except (actors.ActorStoppedError, actors.ActorNotFoundError, TimeoutError):
                    failed.append(job)  # not acknowledged: hand it out again
            handed_again += len(failed)
            todo = failed
        nodes = await _placement(pool, [names[1]] * 4)
        print(f"supervision: {names[0]} lost; pool's children now on {', '.join(nodes)}")
        print(
            f"actors: {len(done)} of {JOBS} jobs acknowledged once each "
            f"({handed_again} handed out again), squares sum to {sum(done.values())}"
        )


async def demo_actors() -> None:
    """Run the actors demo (see the module docs); prints what happens."""
    logging.getLogger("trimq").setLevel(logging.ERROR)  # the lost node is on purpose
    with tempfile.TemporaryDirectory() as tmp:
        keys = Path(tmp)
        for name in ("hub", "worker-1", "worker-2"):
            create_certificates(keys, name)
        workers = [await _start_worker(f"worker-{i}", keys) for i in (1, 2)]
        try:
            await _run(keys, workers)
        finally:
            for proc, _ in workers:
                if proc.returncode is None:
                    proc.terminate()
                with trio.move_on_after(10):
                    await proc.wait()
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
                if proc.stdout is not None:
                    await proc.stdout.aclose()
