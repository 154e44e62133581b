"""The ``trimq`` command line: ``trimq demo`` shows the patterns at work."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import trio

import trimq


async def _demo_pushpull(ctx: trimq.Context) -> None:
    pull = ctx.socket(trimq.PULL)
    endpoint = await pull.bind("tcp://127.0.0.1:*")
    push = ctx.socket(trimq.PUSH)
    await push.connect(endpoint)
    for i in range(3):
        await push.send_multipart([b"job", str(i).encode()])
    got = [await pull.recv_multipart() for _ in range(3)]
    print(f"PUSH -> PULL over {endpoint}: {got}")
    await push.aclose()
    await pull.aclose()


async def _demo_reqrep(ctx: trimq.Context) -> None:
    path = os.path.join(tempfile.mkdtemp(prefix="trimq-demo-"), "reqrep.ipc")
    rep = ctx.socket(trimq.REP)
    endpoint = await rep.bind(f"ipc://{path}")
    req = ctx.socket(trimq.REQ)
    await req.connect(endpoint)

    async def serve() -> None:
        for _ in range(2):
            question = await rep.recv()
            await rep.send(question.upper())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve)
        for word in (b"ping", b"hello"):
            await req.send(word)
            print(f"REQ -> REP over {endpoint}: {word!r} -> {await req.recv()!r}")
    await req.aclose()
    await rep.aclose()


async def _demo_pubsub(ctx: trimq.Context) -> None:
    pub = ctx.socket(trimq.XPUB)
    await pub.bind("inproc://news")
    sub = ctx.socket(trimq.SUB)
    await sub.connect("inproc://news")
    sub.subscribe(b"weather")
    # The XPUB sees the subscription arrive: no sleeping for the slow joiner.
    print(f"XPUB saw subscription {await pub.recv()!r}")
    await pub.send_multipart([b"sports", b"2-1"])
    await pub.send_multipart([b"weather", b"sunny"])
    print(f"SUB over inproc://news received only: {await sub.recv_multipart()}")
    await sub.aclose()
    await pub.aclose()


async def demo() -> None:
    """Run each pattern once over each transport and print what happened."""
    print(f"trimq {trimq.__version__}: ZeroMQ on trio")
    async with trimq.Context() as ctx:
        with trio.fail_after(10):
            await _demo_pushpull(ctx)
            await _demo_reqrep(ctx)
            await _demo_pubsub(ctx)
    print("demo finished")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``trimq`` command."""
    parser = argparse.ArgumentParser(prog="trimq", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="run a short demo of PUSH/PULL, REQ/REP and PUB/SUB")
    args = parser.parse_args(argv)
    if args.command == "demo":
        trio.run(demo)
    return 0


if __name__ == "__main__":
    sys.exit(main())
