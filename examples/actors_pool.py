"""A supervised worker pool: a crashing worker is restarted and the pool carries on.

::

    Supervisor "pool" (one_for_one, at most 3 restarts in 5 s)
      +-- worker-0   worker-1   worker-2     (permanent children)

The main task hands out jobs round-robin with ``ask``. Job 7 is poisoned: the
worker handling it raises, so ``ask`` raises that error for job 7, and the
worker crashes. The supervisor starts a fresh instance under the same name:
the ref the main task holds keeps working, and the later jobs go through.
A monitor (``on_down``) on that worker reports the crash to an auditor actor.

Run it with ``python examples/actors_pool.py``. Expected output (the worker
names cycle)::

    pool: started worker-0, worker-1, worker-2
    main: job 7 failed: ValueError: poisoned job 7
    auditor: worker-1 crashed: ValueError: poisoned job 7
    main: 11 of 12 jobs done, results sum to 457
    main: worker-1 handled jobs after its restart: [10]
"""

from __future__ import annotations

import logging

import trio

from trimq import actors


class Worker(actors.Actor):
    def __init__(self) -> None:
        self.handled: list[int] = []

    def square(self, job: int) -> int:
        if job == 7:
            raise ValueError(f"poisoned job {job}")
        self.handled.append(job)
        return job * job

    def history(self) -> list[int]:
        return list(self.handled)


class Auditor(actors.Actor):
    def watch(self, ref: actors.ActorRef) -> None:
        self.monitor(ref)

    def on_down(self, ref: actors.ActorRef, reason: actors.ExitReason) -> None:
        # Delivered through the auditor's mailbox, like any message.
        print(f"auditor: {ref.name} {reason}")


async def main() -> None:
    async with actors.open_node(name="pool-node") as node:
        specs = [actors.ChildSpec(Worker, name=f"worker-{i}") for i in range(3)]
        pool = await node.spawn(actors.Supervisor, specs, max_restarts=3, period=5, name="pool")
        workers = await pool.ask("children")
        print(f"pool: started {', '.join(w.name for w in workers)}")
        auditor = await node.spawn(Auditor)
        await auditor.ask("watch", workers[1])

        results = []
        for job in range(12):
            worker = workers[job % len(workers)]
            try:
                results.append(await worker.ask("square", job))
            except ValueError as exc:
                print(f"main: job {job} failed: {type(exc).__name__}: {exc}")
        print(f"main: {len(results)} of 12 jobs done, results sum to {sum(results)}")
        print(f"main: worker-1 handled jobs after its restart: {await workers[1].ask('history')}")


if __name__ == "__main__":
    logging.getLogger("trimq").setLevel(logging.ERROR)  # the crash is on purpose
    trio.run(main)
