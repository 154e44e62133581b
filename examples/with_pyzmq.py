"""Interop: a trimq REP server answers a pyzmq (libzmq) REQ client over tcp.

trimq speaks ZMTP 3.1 on the wire, so a libzmq peer (pyzmq, CZMQ, JeroMQ,
NetMQ...) cannot tell it from another libzmq socket. Either side may bind.

pyzmq's blocking calls would freeze trio's event loop, and ``zmq.asyncio``
needs an asyncio loop, so the pyzmq client runs in a worker thread with
``trio.to_thread.run_sync``. The trimq server itself needs no thread.
The pyzmq socket has receive/send timeouts and ``linger=0``, so the thread
can never hang (a trio cancel scope cannot interrupt a blocked thread).

pyzmq is only a test dependency of trimq: without it this script says so and
exits successfully.

Run it with ``python examples/with_pyzmq.py``. Expected output (``...`` stands
for text that varies)::

    server: trimq REP bound tcp://127.0.0.1:...
    client: pyzmq ... (libzmq ...) REQ, connecting
    server: got b'ping'
    client: b'ping' -> b'PING'
    server: got b'hello'
    client: b'hello' -> b'HELLO'
    server: got b'trio'
    client: b'trio' -> b'TRIO'
    server: answered 3 requests, done
"""

from __future__ import annotations

import trio

import trimq

try:
    import zmq
except ImportError:
    HAVE_PYZMQ = False
else:
    HAVE_PYZMQ = True

QUESTIONS = [b"ping", b"hello", b"trio"]
TIMEOUT_MS = 5000


def pyzmq_client(endpoint: str) -> None:
    """A plain blocking pyzmq REQ client. It runs in a worker thread."""
    zctx = zmq.Context()
    try:
        req = zctx.socket(zmq.REQ)
        # Bound every blocking call, and never wait for unsent messages at close.
        req.rcvtimeo = req.sndtimeo = TIMEOUT_MS
        req.linger = 0
        req.connect(endpoint)
        print(f"client: pyzmq {zmq.__version__} (libzmq {zmq.zmq_version()}) REQ, connecting")
        for question in QUESTIONS:
            req.send(question)
            answer = req.recv()
            print(f"client: {question!r} -> {answer!r}")
    finally:
        zctx.destroy(linger=0)


async def serve() -> None:
    async with trimq.Context() as ctx:
        rep = ctx.socket(trimq.REP)
        endpoint = await rep.bind("tcp://127.0.0.1:*")
        print(f"server: trimq REP bound {endpoint}")

        async def answer_all() -> None:
            for _ in QUESTIONS:
                question = await rep.recv()
                print(f"server: got {question!r}")
                await rep.send(question.upper())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(answer_all)
            # The thread runs while the trimq task keeps serving on the event loop.
            await trio.to_thread.run_sync(pyzmq_client, endpoint)
        print(f"server: answered {len(QUESTIONS)} requests, done")


async def main() -> None:
    with trio.fail_after(10):  # a safety net: an example must never hang
        await serve()


if __name__ == "__main__":
    if HAVE_PYZMQ:
        trio.run(main)
    else:
        print("with_pyzmq: pyzmq is not installed (pip install pyzmq); nothing to show")
