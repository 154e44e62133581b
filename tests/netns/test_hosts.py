"""Nodes on separate hosts: a killed node, a cut link, an intruder.

Each scenario runs twice (see conftest): on network namespaces with their own
addresses (root only), and on loopback, where a frozen process stands in for
a cut link.

Worker nodes are ``trimq node`` processes, each in its own namespace with its
own address; the hub is an in-process node in the test's namespace. Every
connection is CURVE; the hub and the workers allow each other's keys only.
"""

from __future__ import annotations

import json
import signal
import subprocess
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from trimq import actors
from trimq.actors import ChildSpec, Supervisor
from trimq.auth import create_certificates, load_certificate

from .conftest import Hosts

TIMEOUT = 20
FAST: dict[str, Any] = {"heartbeat": 0.25, "timeout": 1.5}  # loose: CI machines are slow


class Squarer(actors.Actor):
    def square(self, n: int) -> int:
        return n * n

    def where(self) -> str:
        return self.node.name


def keys(tmp_path: Path, *names: str) -> dict[str, tuple[bytes, bytes]]:
    out = {}
    for name in names:
        _, secret_file = create_certificates(tmp_path, name)
        public, secret = load_certificate(secret_file)
        assert secret is not None
        out[name] = (public, secret)
    return out


def start_worker(hosts: Hosts, host: int, name: str, tmp_path: Path) -> subprocess.Popen[str]:
    """``trimq node`` in ``host``, allowing the hub; returns once it listens."""
    proc = hosts.run(
        host,
        [
            "-m", "trimq", "node",
            "--listen", hosts.endpoint(host),
            "--name", name,
            "--key", str(tmp_path / f"{name}.key_secret"),
            "--allow", str(tmp_path / "hub.key"),
            "--tag", "worker",
            "--heartbeat", str(FAST["heartbeat"]),
            "--timeout", str(FAST["timeout"]),
        ],
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()  # the readiness line
    assert f"trimq node {name} listening on" in line, line
    return proc


Reports = trio.MemoryReceiveChannel[tuple[str, Any]]


@asynccontextmanager
async def hub_node(
    all_keys: dict[str, tuple[bytes, bytes]],
) -> AsyncIterator[tuple[actors.Node, Reports]]:
    """The hub node, and its supervisors' reports (see ``children_on``)."""
    workers = [all_keys[name][0] for name in ("w1", "w2")]
    async with (
        actors.open_node("hub", keys=all_keys["hub"], allow=workers, **FAST) as hub,
        hub.events(actors.REPORTS) as reports,
    ):
        yield hub, reports


async def pool_on_workers(
    hub: actors.Node, hosts: Hosts, all_keys: dict[str, tuple[bytes, bytes]]
) -> actors.ActorRef:
    """Connect the hub to w1 and w2 and start a supervised pool of four
    squarers on the nodes tagged "worker"; returns the supervisor."""
    for host, name in ((1, "w1"), (2, "w2")):
        await hub.connect(hosts.endpoint(host), key=all_keys[name][0])
    specs = [ChildSpec(Squarer, name=f"sq-{i}", on="worker") for i in range(4)]
    return await hub.spawn(Supervisor, specs, max_restarts=10)


async def children_on(
    hub: actors.Node, sup: actors.ActorRef, wanted: list[str], reports: Reports
) -> list[actors.ActorRef]:
    """The supervisor's children, once they sit on the ``wanted`` nodes:
    looked at again after each report of the supervisor (see ``hub_node``)."""
    with trio.fail_after(TIMEOUT):
        while True:
            refs: list[actors.ActorRef] = await sup.ask("children")
            if sorted(ref.node for ref in refs) == sorted(wanted):
                return refs
            await reports.receive()


async def test_a_killed_node_loses_no_acknowledged_work(hosts: Hosts, tmp_path: Path) -> None:
    all_keys = keys(tmp_path, "hub", "w1", "w2")
    w1 = start_worker(hosts, 1, "w1", tmp_path)
    start_worker(hosts, 2, "w2", tmp_path)
    async with hub_node(all_keys) as (hub, reports):
        sup = await pool_on_workers(hub, hosts, all_keys)
        acknowledged: dict[int, int] = {}
        todo = list(range(200))
        with trio.fail_after(TIMEOUT * 2):
            while todo:
                children = await sup.ask("children")
                failed = []
                for i, n in enumerate(todo):
                    if n == 50 and w1.poll() is None:
                        w1.send_signal(signal.SIGKILL)  # in the middle of the work
                    ref = children[i % len(children)] if children else None
                    try:
                        if ref is None:
                            raise actors.ActorNotFoundError("no child yet")
                        acknowledged[n] = await ref.ask("square", n, timeout=2.0)
                    except (actors.ActorStoppedError, actors.ActorNotFoundError, TimeoutError):
                        failed.append(n)  # not acknowledged: do it again
                todo = failed
        assert acknowledged == {n: n * n for n in range(200)}
        moved = await children_on(hub, sup, ["w2"] * 4, reports)
        for ref in moved:
            assert await ref.ask("where") == "w2"


async def test_a_cut_link_moves_the_work_and_the_node_rejoins(hosts: Hosts, tmp_path: Path) -> None:
    all_keys = keys(tmp_path, "hub", "w1", "w2")
    start_worker(hosts, 1, "w1", tmp_path)
    start_worker(hosts, 2, "w2", tmp_path)
    async with hub_node(all_keys) as (hub, reports):
        sup = await pool_on_workers(hub, hosts, all_keys)
        before = await children_on(hub, sup, ["w1", "w1", "w2", "w2"], reports)
        on_w1 = [ref for ref in before if ref.node == "w1"]
        hosts.cut(1)
        await children_on(hub, sup, ["w2"] * 4, reports)
        hosts.restore(1)
        with trio.fail_after(TIMEOUT):
            while "w1" not in [peer.name for peer in hub.peers]:
                await hub.membership_changed()
        # The children w1 held were replaced: w1 ends them itself if it noticed
        # the cut (a cut link), or when the hub tells it on its return (a
        # paused process notices nothing). Soon there is one copy of each, on w2.
        for ref in on_w1:
            await gone(hub, ref)
        assert await hub.lookup("sq-0") is not None
        fresh = await hub.spawn(Squarer, on="w1")  # and w1 works again
        assert await fresh.ask("square", 9) == 81


class Watcher(actors.Actor):
    def __init__(self, ended: trio.Event) -> None:
        self.ended = ended

    def watch(self, ref: actors.ActorRef) -> None:
        self.monitor(ref)

    def on_down(self, ref: actors.ActorRef, reason: actors.ExitReason) -> None:
        self.ended.set()


async def gone(hub: actors.Node, ref: actors.ActorRef) -> None:
    """Wait until ``ref`` has ended (a monitor reports "not running" at once
    if it already has)."""
    ended = trio.Event()
    watcher = await hub.spawn(Watcher, ended)
    await watcher.ask("watch", ref)
    with trio.fail_after(TIMEOUT):
        await ended.wait()
    await watcher.kill()


INTRUDER = textwrap.dedent(
    """
    import json, sys, trio, zmq
    from trimq import actors, curve_keypair

    target, target_key, events = sys.argv[1], sys.argv[2].encode(), sys.argv[3]

    async def main():
        result = {}
        async with actors.open_node("intruder", keys=curve_keypair()) as node:
            try:
                await node.connect(target, key=target_key)
                result["connect"] = "joined"
            except ConnectionError as exc:
                result["connect"] = type(exc).__name__
            try:
                await node.spawn(actors.Actor, on="w1")
                result["spawn"] = "spawned"
            except actors.ActorNotFoundError:
                result["spawn"] = "no such node"
        ctx = zmq.Context()
        sub = ctx.socket(zmq.SUB)
        pub, sec = zmq.curve_keypair()
        sub.curve_publickey, sub.curve_secretkey, sub.curve_serverkey = pub, sec, target_key
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.connect(events)
        print(json.dumps(result), flush=True)
        sys.stdin.readline()  # the test publishes meanwhile, then tells us to look
        result["events"] = sub.poll(500)
        print(json.dumps(result), flush=True)
        ctx.destroy(linger=0)

    trio.run(main)
    """
)


class Publisher(actors.Actor):
    async def shout(self, n: int) -> None:
        await self.publish("news", n)


async def test_an_unauthorized_node_gets_nothing(hosts: Hosts, tmp_path: Path) -> None:
    all_keys = keys(tmp_path, "hub", "w1", "w2")
    start_worker(hosts, 1, "w1", tmp_path)
    async with hub_node(all_keys) as (hub, _):
        target = hosts.endpoint(1)
        await hub.connect(target, key=all_keys["w1"][0])
        publisher = await hub.spawn(Publisher, on="w1")
        cluster = hub._runtime.cluster  # the events endpoint w1 announced
        assert cluster is not None
        w1_events = cluster.events.subscription("w1")
        assert w1_events is not None
        events_port = int(w1_events.rsplit(":", 1)[1])
        script = tmp_path / "intruder.py"
        script.write_text(INTRUDER)
        w1_key = all_keys["w1"][0].decode()
        events = f"tcp://{hosts.address(1)}:{events_port}"
        proc = hosts.run(3, [str(script), target, w1_key, events], stdin=True)
        assert proc.stdout is not None
        assert proc.stdin is not None
        with trio.fail_after(TIMEOUT):
            first = json.loads(await trio.to_thread.run_sync(proc.stdout.readline))
        assert first == {"connect": "ConnectionRefusedError", "spawn": "no such node"}
        for n in range(20):
            await publisher.ask("shout", n)
        proc.stdin.write("look\n")
        proc.stdin.flush()
        with trio.fail_after(TIMEOUT):
            last = json.loads(await trio.to_thread.run_sync(proc.stdout.readline))
        assert last["events"] == 0  # the events PUB refused its handshake
        assert [peer.name for peer in hub.peers] == ["w1"]
