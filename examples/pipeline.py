"""Pipeline: a ventilator PUSHes tasks to workers, which PUSH results to a sink.

ZeroMQ's divide-and-conquer pattern (the zguide's taskvent / taskwork / tasksink)::

    ventilator PUSH --tcp--> worker PULL | worker PUSH --tcp--> sink PULL
                             (4 workers, each with both sockets)

- PUSH load-balances: each task goes to the next connected worker in turn that
  still has room below its high-water mark; when every worker is full, ``send``
  waits (it never drops).
- PULL fair-queues: the sink takes results from every worker in turn.
- The stable ends (ventilator and sink) bind; the workers connect, so workers
  can be added or removed without reconfiguring anything.

The classic pitfall is the "slow joiner": a PUSH that starts sending while only
one worker has connected hands that worker every task. Instead of sleeping and
hoping, the ventilator watches its monitor until every worker's handshake has
succeeded. Everything runs in one process here; each part could equally be a
separate program.

Run it with ``python examples/pipeline.py``. Expected output (``...`` stands for
text that varies from run to run)::

    ventilator: bound tcp://127.0.0.1:..., waiting for 4 workers
    ventilator: all 4 workers connected, sending 20 tasks (191 ms of work)
    sink: 20 results in ... ms with 4 workers (191 ms of work)
    sink: worker-1 did 5 tasks
    sink: worker-2 did 5 tasks
    sink: worker-3 did 5 tasks
    sink: worker-4 did 5 tasks
"""

from __future__ import annotations

from collections import Counter

import trio

import trimq

WORKERS = 4
TASKS = 20


def task_cost_ms(task: int) -> int:
    """A made-up but repeatable cost for each task: 1 to 19 ms."""
    return task * 7 % 19 + 1


async def worker(ctx: trimq.Context, name: str, tasks_from: str, results_to: str) -> None:
    """Take tasks from the ventilator, "work" on each, send the result to the sink."""
    # ``async with`` closes the sockets when the worker is cancelled at the end.
    async with ctx.socket(trimq.PULL) as tasks, ctx.socket(trimq.PUSH) as results:
        # connect() returns at once; trimq connects (and reconnects) in the background.
        await tasks.connect(tasks_from)
        await results.connect(results_to)
        # Iterating a socket yields whole messages (lists of frames).
        async for task_id, cost in tasks:
            await trio.sleep(int(cost) / 1000)  # stand-in for real work
            await results.send_multipart([name.encode(), task_id, cost])


async def pipeline() -> None:
    async with trimq.Context() as ctx:
        ventilator = ctx.socket(trimq.PUSH)
        sink = ctx.socket(trimq.PULL)
        # Port "*" picks a free port; bind() returns the endpoint really bound.
        tasks_ep = await ventilator.bind("tcp://127.0.0.1:*")
        results_ep = await sink.bind("tcp://127.0.0.1:*")
        print(f"ventilator: bound {tasks_ep}, waiting for {WORKERS} workers")

        async with trio.open_nursery() as workers:
            # Start monitoring before the workers connect, so no event is missed.
            async with ventilator.monitor() as events:
                for i in range(1, WORKERS + 1):
                    workers.start_soon(worker, ctx, f"worker-{i}", tasks_ep, results_ep)
                for _ in range(WORKERS):
                    await events.wait_for(trimq.EventType.HANDSHAKE_SUCCEEDED)

            total_ms = sum(task_cost_ms(t) for t in range(TASKS))
            print(
                f"ventilator: all {WORKERS} workers connected, "
                f"sending {TASKS} tasks ({total_ms} ms of work)"
            )
            start = trio.current_time()
            for t in range(TASKS):
                await ventilator.send_multipart([b"%d" % t, b"%d" % task_cost_ms(t)])

            done_by: Counter[str] = Counter()
            work_ms = 0
            for _ in range(TASKS):
                who, _task_id, cost = await sink.recv_multipart()
                done_by[who.decode()] += 1
                work_ms += int(cost)
            elapsed_ms = (trio.current_time() - start) * 1000
            print(
                f"sink: {TASKS} results in {elapsed_ms:.0f} ms with {len(done_by)} workers "
                f"({work_ms} ms of work)"
            )
            for name, count in sorted(done_by.items()):
                print(f"sink: {name} did {count} tasks")

            # The workers loop forever; stopping them is the nursery's job.
            workers.cancel_scope.cancel()


async def main() -> None:
    with trio.fail_after(10):  # a safety net: an example must never hang
        await pipeline()


if __name__ == "__main__":
    trio.run(main)
