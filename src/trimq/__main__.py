"""The ``trimq`` command line: ``trimq demo`` shows the patterns at work,
``trimq keygen NAME`` writes a CURVE certificate pair, ``trimq node`` runs a
worker node for trimq.actors."""

from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import socket
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import trio

import trimq
import trimq.auth
from trimq.actors import open_node
from trimq.auth import create_certificates, load_certificate, load_certificates

log = logging.getLogger("trimq.node")


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
    """Run each pattern once over each transport and print what happened."""
    print(f"trimq {trimq.__version__}: ZeroMQ on trio")
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


class _CommandError(Exception):
    """A bad option or file: reported as one line on stderr, exit status 2."""


@dataclass(frozen=True)
class _NodeConfig:
    """``trimq node``'s options, checked, with the certificate files read."""

    name: str
    listen: list[str]
    keys: tuple[bytes, bytes] | None
    allow: list[bytes]
    peers: list[tuple[str, bytes | None]]  # (endpoint, its public key)
    tags: list[str]
    heartbeat: float
    timeout: float
    insecure: bool


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _peer_item(text: str) -> tuple[str, str | None]:
    # Split at the first "=": endpoints (tcp://host:port, ipc://path) have none.
    endpoint, sep, key_file = text.partition("=")
    if not endpoint or (sep and not key_file):
        raise argparse.ArgumentTypeError(f"expected ENDPOINT or ENDPOINT=PEER.key, got {text!r}")
    return endpoint, key_file if sep else None


def _read_certificate(path: str, option: str) -> tuple[bytes, bytes | None]:
    try:
        return load_certificate(path)
    except OSError as exc:
        raise _CommandError(f"{option} {path}: cannot read it: {exc.strerror or exc}") from None
    except ValueError as exc:  # its message names the file
        raise _CommandError(f"{option}: {exc}") from None


def _allowed_keys(paths: list[str]) -> list[bytes]:
    keys: list[bytes] = []
    for path in paths:
        if not Path(path).is_dir():
            keys.append(_read_certificate(path, "--allow")[0])
            continue
        try:
            found = load_certificates(path)
        except (OSError, ValueError) as exc:
            raise _CommandError(f"--allow {path}: {exc}") from None
        if not found:
            # Not an error (the directory may be filled later for a restart),
            # but an empty allow-list is usually a wrong path.
            log.warning("--allow %s: no *.key certificate in this directory", path)
        keys.extend(found)
    return keys


def _node_config(args: argparse.Namespace) -> _NodeConfig:
    """Check ``trimq node``'s options and read its certificate files.

    Raises:
        _CommandError: What is wrong, in terms of the command line.
    """
    insecure: bool = args.insecure
    # open_node enforces the same rules, but its messages speak of its
    # keyword arguments; these speak of the options.
    if args.key is None and not insecure:
        raise _CommandError(
            "no CURVE keys: give the node its key pair with --key NAME.key_secret (make one "
            "with 'trimq keygen NAME') and its peers' public keys with --allow, or pass "
            "--insecure for development on loopback"
        )
    keys: tuple[bytes, bytes] | None = None
    if args.key is not None:
        public, secret = _read_certificate(args.key, "--key")
        if secret is None:
            raise _CommandError(
                f"--key {args.key}: this certificate has no secret key; give the "
                "NAME.key_secret file that 'trimq keygen NAME' wrote (NAME.key is the public half)"
            )
        keys = (public, secret)
    if args.allow and insecure:
        raise _CommandError("--allow needs --key: an insecure node cannot check its peers' keys")
    peers: list[tuple[str, bytes | None]] = []
    for endpoint, key_file in args.connect:
        if key_file is None and not insecure:
            raise _CommandError(
                f"--connect {endpoint}: give the peer's certificate, as --connect "
                f"{endpoint}=PEER.key: CURVE proves the peer is who we think only if we "
                "know its key"
            )
        if key_file is not None and insecure:
            raise _CommandError(
                f"--connect {endpoint}={key_file} needs --key: an insecure node cannot check "
                "the peer's key"
            )
        peer_key = None if key_file is None else _read_certificate(key_file, "--connect")[0]
        peers.append((endpoint, peer_key))
    return _NodeConfig(
        name=args.name or socket.gethostname(),
        listen=args.listen,
        keys=keys,
        allow=_allowed_keys(args.allow),
        peers=peers,
        tags=args.tag,
        heartbeat=args.heartbeat,
        timeout=args.timeout,
        insecure=insecure,
    )


class _NodeRunner:
    """Runs ``trimq node``'s node until SIGINT or SIGTERM.

    The first signal stops the node gracefully: every actor finishes its
    current message and runs its ``on_stop``, each within its ``shutdown``
    time, after which it is killed. A second one exits at once, for whoever
    will not wait that long.
    """

    def __init__(self, config: _NodeConfig) -> None:
        self.config = config
        self.stopping = trio.Event()
        self.startup = trio.CancelScope()  # around the connects

    async def serve(self) -> int:
        """Run the node until a signal; return the exit status (see :func:`node`)."""
        error: Exception | None = None
        # Handle the signals from the very start: without the receiver, SIGINT
        # would raise KeyboardInterrupt (a traceback), SIGTERM kill us outright.
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._watch_signals, signals)
                try:
                    await self._run()
                # ConnectionError is an OSError; ValueError: open_node's security
                # rules, a malformed key or endpoint. Caught here, inside the
                # nursery, so that they do not come out wrapped in a group.
                except (OSError, ValueError) as exc:
                    error = exc
                finally:
                    nursery.cancel_scope.cancel()
        if error is not None:
            print(f"trimq node: error: {error}", file=sys.stderr)
            return 2
        log.info("node %r stopped", self.config.name)
        return 0

    async def _run(self) -> None:
        config = self.config
        async with open_node(
            config.name,
            listen=config.listen,
            keys=config.keys,
            allow=config.allow,
            insecure=config.insecure,
            tags=config.tags,
            heartbeat=config.heartbeat,
            timeout=config.timeout,
        ) as node:
            # Only the connects are cancellable by a signal (binding takes no
            # time), and a signal leaves this block normally: a peer may
            # already have spawned actors here, and they get their on_stop.
            with self.startup:
                for endpoint, key in config.peers:
                    peer = await node.connect(endpoint, key=key)
                    log.info("connected to node %r at %s", peer.name, endpoint)
            if self.stopping.is_set():
                return
            security = (
                "INSECURE"
                if config.keys is None
                else f"CURVE public key {config.keys[0].decode()}, {len(config.allow)} allowed keys"
            )
            log.info(
                "node %r listening on %s; tags: %s; %s",
                node.name,
                ", ".join(node.endpoints),
                ", ".join(config.tags) or "none",
                security,
            )
            print(f"trimq node {node.name} listening on {', '.join(node.endpoints)}", flush=True)
            await self.stopping.wait()
            log.info("node %r stopping its %d actors", node.name, len(node.actors))

    async def _watch_signals(self, signals: AsyncIterator[int]) -> None:
        async for number in signals:
            name = signal.Signals(number).name
            if not self.stopping.is_set():
                log.info("%s received: stopping the node (again: exit at once)", name)
                self.stopping.set()
                self.startup.cancel()  # a connect can take seconds: do not wait for it
                continue
            log.warning("%s received again: exiting without waiting for the actors", name)
            logging.shutdown()  # flush the handlers: os._exit would not
            sys.stdout.flush()
            os._exit(1)


def node(args: argparse.Namespace) -> int:
    """Run ``trimq node``: a worker node until SIGINT or SIGTERM.

    Logs to stderr; prints one line to stdout once it listens (and has
    connected to its ``--connect`` peers): ``trimq node NAME listening on
    ENDPOINT[, ...]``.

    Args:
        args: The parsed options of the ``node`` subcommand.

    Returns:
        The exit status: 0 once the node stopped its actors after a signal;
        2 (with a one-line message on stderr) for a bad option or
        certificate, settings the node refuses, or a peer that did not
        answer. A second signal ends the process at once with status 1,
        whatever its actors are doing.
    """
    logging.basicConfig(
        stream=sys.stderr,
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = _node_config(args)
    except _CommandError as exc:
        print(f"trimq node: error: {exc}", file=sys.stderr)
        return 2
    if config.insecure:
        # Printed, not logged: it must show whatever --log-level says.
        print(
            "trimq node: WARNING: --insecure: no CURVE, no authentication, no encryption; "
            "any process that reaches this node can run code in it. Development on "
            "loopback only.",
            file=sys.stderr,
            flush=True,
        )
    return trio.run(_NodeRunner(config).serve)


def _add_node_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = sub.add_parser(
        "node",
        help="run a trimq.actors worker node until SIGINT or SIGTERM",
        description="Run a trimq.actors node that other nodes connect to and spawn actors "
        "on, until SIGINT or SIGTERM, which stop its actors (running their on_stop); a "
        "second signal exits at once. Once it listens, it prints 'trimq node NAME listening "
        "on ENDPOINT[, ...]' on stdout; it logs to stderr.",
    )
    run.add_argument(
        "--listen",
        action="append",
        required=True,
        metavar="ENDPOINT",
        help="where other nodes reach it, e.g. tcp://0.0.0.0:7000, or tcp://127.0.0.1:* "
        "for any free port (repeatable)",
    )
    run.add_argument(
        "--name",
        metavar="NAME",
        help="the node's name, unique among its peers (default: host name)",
    )
    security = run.add_mutually_exclusive_group()
    security.add_argument(
        "--key",
        metavar="FILE.key_secret",
        help="the node's CURVE key pair, as written by 'trimq keygen'",
    )
    security.add_argument(
        "--insecure",
        action="store_true",
        help="no CURVE: for development on loopback or ipc only",
    )
    run.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="DIR_OR_FILE.key",
        help="public certificates of the nodes allowed to connect: a .key file, or a "
        "directory of them (repeatable; needs --key)",
    )
    run.add_argument(
        "--connect",
        action="append",
        default=[],
        type=_peer_item,
        metavar="ENDPOINT[=PEER.key]",
        help="connect to the node at ENDPOINT at start, checking it holds the key in "
        "PEER.key (without it: --insecure only) (repeatable)",
    )
    run.add_argument(
        "--tag",
        action="append",
        default=[],
        metavar="TAG",
        help="what the node offers, for spawn(on=TAG): gpu, region=eu... (repeatable)",
    )
    run.add_argument(
        "--heartbeat",
        type=_seconds,
        default=1.0,
        metavar="S",
        help="seconds between liveness messages to each peer (default: 1)",
    )
    run.add_argument(
        "--timeout",
        type=_seconds,
        default=3.0,
        metavar="S",
        help="seconds of silence after which a peer counts as lost (default: 3)",
    )
    run.add_argument(
        "--log-level",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        default="INFO",
        help="what to log on stderr (default: INFO)",
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``trimq`` command."""
    parser = argparse.ArgumentParser(prog="trimq", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="run a short demo of PUSH/PULL, REQ/REP and PUB/SUB")
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
    _add_node_parser(sub)
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
