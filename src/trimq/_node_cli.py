"""``trimq node``: run a trimq.actors worker node from the command line."""

from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import trio

from .actors import open_node
from .actors._security import local_endpoint
from .auth import load_certificate, load_certificates

__all__ = ["add_node_parser", "node"]

log = logging.getLogger("trimq.node")


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


def _stays_local(endpoint: str) -> bool:
    try:
        return local_endpoint(endpoint)
    except ValueError:
        return True  # not an endpoint: open_node says so, with its reason


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
    if insecure:
        for endpoint in [*args.listen, *(endpoint for endpoint, _ in args.connect)]:
            if not _stays_local(endpoint):
                raise _CommandError(
                    f"--insecure works on loopback and ipc endpoints only, not {endpoint}: "
                    "use 127.0.0.1 (or ipc://), or give the node --key and --allow"
                )
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
    if args.log_level == "INFO":
        # The node's own news at INFO, but not every connection that comes
        # and goes before its handshake (health checks, scanners): DEBUG shows those.
        logging.getLogger("trimq.transport").setLevel(logging.WARNING)
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


def add_node_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``node`` subcommand and its options to the ``trimq`` parser."""
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
        help=(
            "what to log on stderr (default: INFO, the node's news; DEBUG adds "
            "every connection's handshake)"
        ),
    )
