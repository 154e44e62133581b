"""Hosts for multi-host tests: Linux network namespaces on one bridge, or loopback.

``hosts`` is parametrized:

* ``netns``: three namespaces, each with its own address on a bridge in the
  test's own namespace (which gets 10.77.<n>.1, so the test process can talk
  to every host). ``cut``/``restore`` take a host's link down and up again.
  Needs root and iproute2 (CI runs as root); skipped elsewhere.
* ``loopback``: the same three "hosts" as processes on 127.0.0.1, each with
  its own port, which runs anywhere. ``cut`` freezes the host's processes
  (SIGSTOP: they neither send nor answer, as behind a cut link) and
  ``restore`` thaws them.

``run`` starts a command inside a host. Everything is removed afterwards, and
only what the fixture made is touched.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_runs = itertools.count(1)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)


class Hosts:
    """Three hosts (``h1``, ``h2``, ``h3``) on a private bridge."""

    def __init__(self, tag: str, subnet: int) -> None:
        self.tag = tag
        self.subnet = subnet
        self.bridge = f"tqbr{tag}"
        self.names = [f"tq{tag}h{i}" for i in (1, 2, 3)]
        self.gateway = f"10.77.{subnet}.1"
        self.procs: list[subprocess.Popen[str]] = []

    def address(self, host: int) -> str:
        """The IP address of host 1, 2 or 3."""
        return f"10.77.{self.subnet}.{host + 1}"

    def endpoint(self, host: int) -> str:
        """Where a node on host 1, 2 or 3 listens."""
        return f"tcp://{self.address(host)}:7000"

    def _veth(self, host: int) -> str:
        return f"tq{self.tag}v{host}"

    def up(self) -> None:
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for host, ns in enumerate(self.names, start=1):
            _ip("netns", "add", ns)
            _ip(
                "link", "add", self._veth(host), "type", "veth", "peer", "name", "eth0", "netns", ns
            )
            _ip("link", "set", self._veth(host), "master", self.bridge, "up")
            _ip("-n", ns, "addr", "add", f"{self.address(host)}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "link", "set", "lo", "up")

    def down(self) -> None:
        self._reap()
        for host, ns in enumerate(self.names, start=1):
            subprocess.run(["ip", "link", "del", self._veth(host)], capture_output=True, timeout=20)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, timeout=20)

    def _reap(self) -> None:
        # Kill what we started, and close its pipes (or the GC warns).
        procs, self.procs = self.procs, []
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    pipe.close()

    def cut(self, host: int) -> None:
        """Take host's link to the bridge down: its packets go nowhere."""
        _ip("link", "set", self._veth(host), "down")

    def restore(self, host: int) -> None:
        """Bring host's link back up."""
        _ip("link", "set", self._veth(host), "up")

    def run(self, host: int, args: Sequence[str], *, stdin: bool = False) -> subprocess.Popen[str]:
        """Start ``python args...`` inside host 1, 2 or 3 (stdout piped, stdin too
        if asked, stderr inherited)."""
        command = ["ip", "netns", "exec", self.names[host - 1], sys.executable, *args]
        proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE if stdin else None,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={**os.environ},
        )
        self.procs.append(proc)
        return proc


class LoopbackHosts(Hosts):
    """The same interface on 127.0.0.1: a port per host, SIGSTOP for a cut link."""

    def __init__(self) -> None:
        super().__init__("lo", subnet=0)
        self.by_host: dict[int, list[subprocess.Popen[str]]] = {1: [], 2: [], 3: []}
        self.ports = {host: _free_port() for host in (1, 2, 3)}

    def address(self, host: int) -> str:
        return "127.0.0.1"

    def endpoint(self, host: int) -> str:
        return f"tcp://127.0.0.1:{self.ports[host]}"

    def up(self) -> None:
        return

    def down(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)  # a frozen one cannot die otherwise
        self._reap()

    def cut(self, host: int) -> None:
        for proc in self.by_host[host]:
            proc.send_signal(signal.SIGSTOP)

    def restore(self, host: int) -> None:
        for proc in self.by_host[host]:
            proc.send_signal(signal.SIGCONT)

    def run(self, host: int, args: Sequence[str], *, stdin: bool = False) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, *args],
            stdin=subprocess.PIPE if stdin else None,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        self.procs.append(proc)
        self.by_host[host].append(proc)
        return proc


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def netns_available() -> str:
    """Why the namespace tests cannot run here, or ``""``."""
    if os.geteuid() != 0:
        return "needs root for ip netns (CI runs as root)"
    if shutil.which("ip") is None:
        return "needs iproute2's ip command"
    return ""


@pytest.fixture(params=["netns", "loopback"])
def hosts(request: pytest.FixtureRequest) -> Iterator[Hosts]:
    """Three hosts (see the module docs), removed after the test."""
    made: Hosts
    if request.param == "loopback":
        made = LoopbackHosts()
    else:
        why = netns_available()
        if why:
            pytest.skip(why)
        run = next(_runs)
        made = Hosts(f"{os.getpid() % 10000}{run}", subnet=(os.getpid() + run) % 200 + 20)
    try:
        made.up()
        yield made
    finally:
        made.down()
