"""Extended request-reply: REQ clients -> ROUTER | proxy | DEALER -> REP workers.

A broker lets any number of clients and workers find each other through one
well-known address, without the clients knowing about the workers::

    client REQ --ipc--> ROUTER  frontend   (bound: ipc://<tmpdir>/frontend.ipc)
                          |  trimq.proxy()
    worker REP <-inproc-- DEALER backend   (bound: inproc://workers)

How the envelope makes the round trip:

1. A REQ client sends ``[b"", request]``: it adds an empty delimiter frame.
2. The ROUTER prepends the client's routing id:
   ``[client_id, b"", request]``. The proxy forwards that to the DEALER, which
   load-balances it to the next worker.
3. The REP worker strips and remembers everything up to the delimiter, hands
   the application ``[request]``, and puts the envelope back on the reply:
   ``[client_id, b"", reply]``.
4. The proxy forwards the reply to the ROUTER, which pops ``client_id`` to
   pick the client; the REQ strips the delimiter and returns ``[reply]``.

The frontend uses ipc (clients would usually be other processes on the same
host); the backend uses inproc (workers as tasks inside the broker process:
no encoding, no system calls). inproc names belong to one Context.

Run it with ``python examples/broker.py``. Expected output (``...`` stands for
text that varies; which worker answers which request varies too)::

    broker: frontend ipc://.../frontend.ipc, backend inproc://workers
    client-1: b'job 1.1' -> b'JOB 1.1 (by worker-...)'
    client-1: b'job 1.2' -> b'JOB 1.2 (by worker-...)'
    client-2: b'job 2.1' -> b'JOB 2.1 (by worker-...)'
    client-2: b'job 2.2' -> b'JOB 2.2 (by worker-...)'
    client-3: b'job 3.1' -> b'JOB 3.1 (by worker-...)'
    client-3: b'job 3.2' -> b'JOB 3.2 (by worker-...)'
    broker: 6 requests answered by 2 workers
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter

import trio

import trimq

CLIENTS = 3
REQUESTS_PER_CLIENT = 2
WORKERS = 2


async def client(ctx: trimq.Context, name: str, frontend: str) -> None:
    """Send a few requests, strictly one at a time, as REQ requires."""
    async with ctx.socket(trimq.REQ) as req:
        await req.connect(frontend)
        for i in range(1, REQUESTS_PER_CLIENT + 1):
            request = f"job {name[-1]}.{i}".encode()
            await req.send(request)
            # A second send() before this recv() would raise trimq.SocketStateError.
            reply = await req.recv()
            print(f"{name}: {request!r} -> {reply!r}")


async def worker(ctx: trimq.Context, name: str, backend: str, answered: Counter[str]) -> None:
    """Answer requests forever; REP alternates recv and send by itself."""
    async with ctx.socket(trimq.REP) as rep:
        await rep.connect(backend)
        # Each iteration receives one request; the reply must be sent before the next.
        async for (request,) in rep:
            answered[name] += 1
            await rep.send(request.upper() + f" (by {name})".encode())


async def broker() -> None:
    with tempfile.TemporaryDirectory(prefix="trimq-broker-") as tmpdir:
        async with trimq.Context() as ctx:
            frontend = ctx.socket(trimq.ROUTER)
            backend = ctx.socket(trimq.DEALER)
            front_ep = await frontend.bind(f"ipc://{os.path.join(tmpdir, 'frontend.ipc')}")
            back_ep = await backend.bind("inproc://workers")
            print(f"broker: frontend {front_ep}, backend {back_ep}")

            answered: Counter[str] = Counter()
            async with trio.open_nursery() as services:
                # proxy() shuttles whole messages both ways until cancelled.
                services.start_soon(trimq.proxy, frontend, backend)
                for w in range(1, WORKERS + 1):
                    services.start_soon(worker, ctx, f"worker-{w}", back_ep, answered)

                async with trio.open_nursery() as clients:
                    for c in range(1, CLIENTS + 1):
                        clients.start_soon(client, ctx, f"client-{c}", front_ep)
                # Every client got all its replies: stop the proxy and the workers.
                services.cancel_scope.cancel()

            total = sum(answered.values())
            print(f"broker: {total} requests answered by {len(answered)} workers")


async def main() -> None:
    with trio.fail_after(10):  # a safety net: an example must never hang
        await broker()


if __name__ == "__main__":
    trio.run(main)
