"""``trimq demo``'s main part: actors, supervision, nodes in three processes, a pipeline.

1. Actors as classes on one node: spawn, tell, ask.
2. A supervised actor crashes and comes back under the same ref.
3. A hub (this process) and two worker nodes (``trimq node`` subprocesses,
   each allowing only the hub's CURVE key) join over tcp with CURVE; the
   hub spawns an actor on a worker whose class exists only here, so it
   travels by value.
4. A pipeline whose middle stage runs on the workers loses one of them to
   SIGKILL half way: every item still comes out exactly once.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import trio

from trimq import actors, pipelines
from trimq.auth import create_certificates, load_certificate

__all__ = ["Counter", "Flaky", "demo_actors", "square"]

ITEMS = 2000
KILL_AFTER = 500


class Counter(actors.Actor):
    """Counts what it is told to add."""

    def on_start(self) -> None:
        self.total = 0

    def add(self, n: int) -> None:
        """Add ``n`` (a tell: no answer)."""
        self.total += n

    def get(self) -> int:
        """The total (an ask)."""
        return self.total


class Flaky(actors.Actor):
    """Fails when asked to; its supervisor starts a fresh one."""

    def on_start(self) -> None:
        self.calls = 0

    def ping(self) -> str:
        """Answer, counting calls to this instance."""
        self.calls += 1
        return f"pong #{self.calls}"

    def fail(self) -> None:
        """Crash."""
        raise RuntimeError("on purpose")


def square(n: int) -> int:
    """The pipeline's middle stage, run on the worker nodes."""
    return n * n


async def _local() -> None:
    async with actors.open_node("demo") as node:
        counter = await node.spawn(Counter)
        for n in (1, 2, 3):
            await counter.tell("add", n)
        print(f"actors: spawned {counter.name}, told it add(1), add(2), add(3); "
              f"ask get() -> {await counter.ask('get')}")  # fmt: skip
        sup = await node.spawn(actors.Supervisor, [actors.ChildSpec(Flaky, name="flaky")])
        (flaky,) = await sup.ask("children")
        first = await flaky.ask("ping")
        try:
            await flaky.ask("fail")
        except RuntimeError as exc:
            crash = exc
        again = await flaky.ask("ping")  # queued after the crash: the fresh instance answers
        print(f"supervision: {flaky.name} answered {first!r}, crashed ({crash}), "
              f"and answers {again!r} under the same ref")  # fmt: skip


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


def _made_here() -> type[actors.Actor]:
    # A class no other process can import: it travels by value (cloudpickle).
    class Greeter(actors.Actor):
        def greet(self, who: str) -> str:
            return f"hello {who}, from {actors.current_node().name}"

    return Greeter


async def _cluster(keys: Path, workers: list[tuple[trio.Process, str]]) -> None:
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
        greeter = await hub.spawn(_made_here(), on=names[0])
        print(f"nodes: a class made in this process, spawned on {names[0]} by value: "
              f"{await greeter.ask('greet', 'hub')!r}")  # fmt: skip
        await _pipeline(hub, workers[0][0], names[0])


async def _pipeline(hub: actors.Node, victim: trio.Process, victim_name: str) -> None:
    pipeline = pipelines.Pipeline(
        pipelines.Stage(int, name="parse"),
        pipelines.Stage(square, workers=4, on="worker"),
        pipelines.Stage(str, name="format"),
        name="demo",
    )
    seen: list[Any] = []
    async with pipeline.open(hub, (str(i) for i in range(ITEMS))) as run:
        async for output in run:
            seen.append(output)
            if len(seen) == KILL_AFTER:
                victim.send_signal(signal.SIGKILL)
                print(f"pipelines: {KILL_AFTER} items out; killed {victim_name} (SIGKILL) "
                      "with items in flight")  # fmt: skip
        middle = run.statistics()[1]
    exact = sorted(seen, key=int) == [str(i * i) for i in range(ITEMS)]
    print(f"pipelines: {len(seen)} of {ITEMS} items out, each exactly once: {exact} "
          f"({middle.retried} attempts at {victim_name} went out again)")  # fmt: skip


async def demo_actors() -> None:
    """Run the actors demo (see the module docs); prints what happens."""
    logging.getLogger("trimq").setLevel(logging.CRITICAL)  # the crash and the loss are on purpose
    await _local()
    with tempfile.TemporaryDirectory() as tmp:
        keys = Path(tmp)
        for name in ("hub", "worker-1", "worker-2"):
            create_certificates(keys, name)
        workers = [await _start_worker(f"worker-{i}", keys) for i in (1, 2)]
        try:
            await _cluster(keys, workers)
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
