"""The ``trimq`` command line: ``trimq demo`` shows the patterns and the actors at work,
``trimq keygen NAME`` writes a CURVE certificate pair, ``trimq node`` runs a
worker node for trimq.actors."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import trio

import trimq
import trimq.auth
from trimq._demo_actors import demo_actors
from trimq._node_cli import add_node_parser, node
from trimq.auth import create_certificates, load_certificate


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


async def _demo_curve(ctx: trimq.Context) -> None:
    server_public, server_secret = trimq.curve_keypair()
    client_public, client_secret = trimq.curve_keypair()
    async with trimq.auth.Authenticator(ctx) as auth:
        auth.configure_curve(location=[client_public])  # only this client may connect
        rep = ctx.socket(trimq.REP, curve_server=True, curve_secretkey=server_secret)
        endpoint = await rep.bind("tcp://127.0.0.1:*")
        req = ctx.socket(
            trimq.REQ,
            curve_serverkey=server_public,
            curve_publickey=client_public,
            curve_secretkey=client_secret,
        )
        await req.connect(endpoint)
        await req.send(b"secret plans")
        request = await rep.recv_message()
        assert request.peer is not None
        await rep.send(b"understood")
        print(
            f"CURVE REQ -> REP over {endpoint}: {request.frames[0]!r} -> {await req.recv()!r}, "
            f"encrypted; client key {request.peer.user_id.decode()} allowed"
        )
        await req.aclose()
        await rep.aclose()


async def demo() -> None:
    """Show actors, supervision, nodes and a pipeline that loses a worker node,
    then each socket pattern once; print what happened."""
    print(f"trimq {trimq.__version__}: ZeroMQ on trio, actors and pipelines on top")
    with trio.fail_after(60):
        await demo_actors()
    async with trimq.Context() as ctx:
        with trio.fail_after(10):
            await _demo_pushpull(ctx)
            await _demo_reqrep(ctx)
            await _demo_pubsub(ctx)
            await _demo_curve(ctx)
    print("demo finished")


def _meta_item(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def keygen(name: str, directory: str, metadata: list[tuple[str, str]], force: bool) -> int:
    """Write ``DIRECTORY/NAME.key`` and ``NAME.key_secret``; print where and the public key.

    Args:
        name: Base name of the files.
        directory: Where to write them (created if missing).
        metadata: ``(key, value)`` lines for the files' metadata section.
        force: Overwrite existing files.

    Returns:
        The exit status: 0, or 1 (with a one-line message on stderr) if the
        files exist and ``force`` is false, or the name or metadata is invalid.
    """
    try:
        public_path, secret_path = create_certificates(
            directory, name, dict(metadata), overwrite=force
        )
    except (OSError, ValueError) as exc:
        print(f"trimq keygen: error: {exc}", file=sys.stderr)
        return 1
    public, _ = load_certificate(public_path)
    print(f"public key:  {public.decode()}")
    print(f"public file: {public_path}")
    print(f"secret file: {secret_path}  (keep it private)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``trimq`` command."""
    parser = argparse.ArgumentParser(prog="trimq", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "demo",
        help="run a short demo of the patterns, and of a supervised actor pool on worker nodes",
    )
    gen = sub.add_parser(
        "keygen",
        help="write a CURVE certificate pair NAME.key and NAME.key_secret",
        description="Write a new CURVE key pair as certificate files readable by "
        "trimq.auth, pyzmq's zmq.auth and CZMQ.",
    )
    gen.add_argument("name", metavar="NAME", help="base name of the two files")
    gen.add_argument(
        "--dir", default=".", metavar="DIR", help="directory to write to (default: current)"
    )
    gen.add_argument("--force", action="store_true", help="overwrite existing files")
    gen.add_argument(
        "--meta",
        action="append",
        default=[],
        type=_meta_item,
        metavar="KEY=VALUE",
        help="add a metadata line to both files (repeatable)",
    )
    add_node_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "keygen":
        return keygen(args.name, args.dir, args.meta, args.force)
    if args.command == "node":
        return node(args)
    if args.command == "demo":
        trio.run(demo)
    return 0


if __name__ == "__main__":
    sys.exit(main())
