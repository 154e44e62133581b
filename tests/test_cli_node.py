"""``trimq node``: a real worker process that in-process nodes connect to and use.

Each test starts ``python -m trimq node`` and waits (with a timeout) for its
readiness line on stdout, never sleeping to synchronise.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest
import trio

import trimq
from trimq import actors
from trimq.auth import create_certificates, load_certificate

pytestmark = pytest.mark.skipif(
    sys.platform == "win32", reason="POSIX signals (SIGINT/SIGTERM to a child)"
)

TIMEOUT = 10
# Quick loss detection, so that nodes leaving do not slow the tests down.
FAST = ["--heartbeat", "0.2", "--timeout", "1"]


class StopMarker(actors.Actor):
    """Defined here, so it travels to the CLI node by value (cloudpickle)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def pid(self) -> int:
        return os.getpid()

    def echo(self, value: object) -> object:
        return value

    def on_stop(self) -> None:
        Path(self.path).write_text(f"stopped in {os.getpid()}")


class HangingStop(actors.Actor):
    """An on_stop that never returns; it says so on the CLI node's stdout."""

    async def on_stop(self) -> None:
        print("on_stop hangs", flush=True)
        await trio.sleep_forever()


class CliNode:
    """A running ``trimq node`` process and what its readiness line said."""

    def __init__(self, proc: subprocess.Popen[str], stderr: Path, name: str, endpoint: str) -> None:
        self.proc = proc
        self.stderr_path = stderr
        self.name = name
        self.endpoint = endpoint

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def stop(self, signum: int = signal.SIGTERM) -> int:
        """Send ``signum`` and return the exit status."""
        self.proc.send_signal(signum)
        return self.proc.wait(timeout=TIMEOUT)


def _read_line(stream: IO[str], timeout: float) -> str:
    # readline() has no timeout: read in a thread, wait on a queue. If the
    # process hangs, the fixture kills it, which ends the thread's readline.
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError(f"no readiness line within {timeout} s") from None


def _argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "trimq", "node", *args]


@pytest.fixture
def start_node(tmp_path: Path) -> Iterator[Callable[..., CliNode]]:
    """Start ``trimq node ARGS...`` and wait for it to listen; kill leftovers at the end."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str) -> CliNode:
        stderr = tmp_path / f"node-{len(started)}.stderr"
        with stderr.open("w") as err:
            proc = subprocess.Popen(_argv(*args), stdout=subprocess.PIPE, stderr=err, text=True)
        started.append(proc)
        assert proc.stdout is not None
        line = _read_line(proc.stdout, TIMEOUT)
        assert line.startswith("trimq node "), f"got {line!r}; stderr:\n{stderr.read_text()}"
        name, _, endpoints = (
            line.removeprefix("trimq node ").rstrip("\n").partition(" listening on ")
        )
        return CliNode(proc, stderr, name, endpoints.split(", ")[0])

    try:
        yield start
    finally:
        for proc in started:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=TIMEOUT)
            if proc.stdout is not None:
                proc.stdout.close()


def run_to_exit(*args: str) -> subprocess.CompletedProcess[str]:
    """Run a ``trimq node`` expected to exit by itself."""
    return subprocess.run(
        _argv(*args), capture_output=True, text=True, timeout=TIMEOUT, check=False
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> str:
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    last = result.stderr.splitlines()[-1]
    assert last.startswith("trimq node: error: "), result.stderr
    for word in words:
        assert word in last
    return last


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
async def test_insecure_node_serves_and_stops_its_actors_on_a_signal(
    start_node: Callable[..., CliNode], tmp_path: Path, signum: int
) -> None:
    node = await trio.to_thread.run_sync(
        start_node,
        "--listen",
        "tcp://127.0.0.1:*",
        "--insecure",
        "--name",
        "worker",
        "--tag",
        "gpu",
        *FAST,
    )
    assert node.name == "worker"
    host, _, port = node.endpoint.removeprefix("tcp://").rpartition(":")
    assert host == "127.0.0.1"
    assert int(port) > 0  # the wildcard, resolved
    stderr = node.stderr()
    assert "WARNING: --insecure" in stderr
    assert f"node 'worker' listening on {node.endpoint}; tags: gpu; INSECURE" in stderr

    marker = tmp_path / "on_stop-ran"
    with trio.fail_after(TIMEOUT):
        async with actors.open_node("tester", insecure=True) as me:
            peer = await me.connect(node.endpoint)
            assert (peer.name, peer.tags) == ("worker", frozenset({"gpu"}))
            ref = await me.spawn(StopMarker, str(marker), on="gpu")
            assert ref.node == "worker"
            assert await ref.ask("pid") == node.proc.pid  # it runs in the CLI process
            assert not marker.exists()
            status = await trio.to_thread.run_sync(node.stop, signum)
    assert status == 0, node.stderr()
    assert marker.read_text() == f"stopped in {node.proc.pid}"
    stderr = node.stderr()
    assert f"{signal.Signals(signum).name} received" in stderr
    assert "node 'worker' stopped" in stderr
    assert "Traceback" not in stderr


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
async def test_connections_that_leave_before_their_handshake_show_at_debug_only(
    start_node: Callable[..., CliNode], level: str
) -> None:
    node = await trio.to_thread.run_sync(
        start_node, "--listen", "tcp://127.0.0.1:*", "--insecure", "--log-level", level, *FAST
    )
    host, _, port = node.endpoint.removeprefix("tcp://").rpartition(":")
    with trio.fail_after(TIMEOUT):
        for _ in range(3):  # a health check: connect, then leave at once
            stream = await trio.open_tcp_stream(host, int(port))
            await stream.aclose()
        async with actors.open_node("tester", insecure=True) as me:
            await me.connect(node.endpoint)  # served after those three
            assert await trio.to_thread.run_sync(node.stop) == 0
    handshakes = node.stderr().count("handshake with")
    if level == "DEBUG":
        assert handshakes >= 3
    else:
        assert handshakes == 0, node.stderr()


async def test_a_second_signal_exits_at_once(start_node: Callable[..., CliNode]) -> None:
    node = await trio.to_thread.run_sync(
        start_node, "--listen", "tcp://127.0.0.1:*", "--insecure", "--name", "worker", *FAST
    )
    with trio.fail_after(TIMEOUT):
        async with actors.open_node("tester", insecure=True) as me:
            await me.connect(node.endpoint)
            await me.spawn(HangingStop, on="worker")
        node.proc.send_signal(signal.SIGTERM)
        assert node.proc.stdout is not None
        line = await trio.to_thread.run_sync(_read_line, node.proc.stdout, TIMEOUT)
        assert line == "on_stop hangs\n"
        status = await trio.to_thread.run_sync(node.stop, signal.SIGINT)
    assert status == 1
    assert "SIGINT received again: exiting without waiting for the actors" in node.stderr()


async def test_curve_node_with_key_and_allow(
    start_node: Callable[..., CliNode], tmp_path: Path
) -> None:
    server_public_path, server_secret_path = create_certificates(tmp_path / "server", "worker")
    client_public_path, client_secret_path = create_certificates(tmp_path / "client", "client")
    # The directory --allow reads holds public certificates only.
    (tmp_path / "allowed").mkdir()
    (tmp_path / "allowed" / "client.key").write_bytes(client_public_path.read_bytes())
    server_public, _ = load_certificate(server_public_path)
    client_public, client_secret = load_certificate(client_secret_path)
    assert client_secret is not None
    node = await trio.to_thread.run_sync(
        start_node,
        "--listen",
        "tcp://127.0.0.1:*",
        "--name",
        "worker",
        "--key",
        str(server_secret_path),
        "--allow",
        str(tmp_path / "allowed"),  # a directory of .key files
        *FAST,
    )
    assert f"CURVE public key {server_public.decode()}, 1 allowed keys" in node.stderr()
    assert "INSECURE" not in node.stderr()

    marker = tmp_path / "on_stop-ran"
    with trio.fail_after(TIMEOUT):
        async with actors.open_node(
            "tester", keys=(client_public, client_secret), allow=[server_public]
        ) as me:
            await me.connect(node.endpoint, key=server_public)
            ref = await me.spawn(StopMarker, str(marker), on="worker")
            assert await ref.ask("echo", {"over": "CURVE"}) == {"over": "CURVE"}
            assert await ref.ask("pid") == node.proc.pid

        # A key missing from --allow is refused during the handshake.
        async with actors.open_node("stranger", keys=trimq.curve_keypair()) as stranger:
            with pytest.raises(ConnectionRefusedError, match="refused this node's key"):
                await stranger.connect(node.endpoint, key=server_public)
        assert await trio.to_thread.run_sync(node.stop) == 0
    assert marker.exists()


async def test_connect_at_start(start_node: Callable[..., CliNode], tmp_path: Path) -> None:
    # The CLI node joins an in-process node, checking its certificate.
    hub_public_path, _ = create_certificates(tmp_path, "hub")
    _, worker_secret_path = create_certificates(tmp_path, "worker")
    hub_public, hub_secret = load_certificate(tmp_path / "hub.key_secret")
    worker_public, _ = load_certificate(worker_secret_path)
    assert hub_secret is not None
    with trio.fail_after(TIMEOUT):
        async with actors.open_node(
            "hub",
            listen="tcp://127.0.0.1:*",
            keys=(hub_public, hub_secret),
            allow=[worker_public],
            heartbeat=0.2,
            timeout=1,
        ) as hub:
            node = await trio.to_thread.run_sync(
                start_node,
                "--listen",
                "tcp://127.0.0.1:*",
                "--name",
                "worker",
                "--key",
                str(worker_secret_path),
                "--connect",
                f"{hub.endpoints[0]}={hub_public_path}",
                *FAST,
            )
            assert f"connected to node 'hub' at {hub.endpoints[0]}" in node.stderr()
            while "worker" not in [peer.name for peer in hub.peers]:
                await hub.membership_changed()
            ref = await hub.spawn(StopMarker, str(tmp_path / "marker"), on="worker")
            assert await ref.ask("pid") == node.proc.pid
            assert await trio.to_thread.run_sync(node.stop) == 0
    assert (tmp_path / "marker").exists()


def test_listening_off_loopback_needs_curve_keys() -> None:
    result = run_to_exit("--listen", "tcp://0.0.0.0:*")
    assert_one_line_error(result, "CURVE keys", "--key", "--allow")


@pytest.mark.parametrize(
    "args",
    [
        ["--listen", "tcp://0.0.0.0:*"],
        ["--listen", "tcp://127.0.0.1:*", "--connect", "tcp://10.1.2.3:7000"],
    ],
    ids=["listen", "connect"],
)
def test_insecure_is_for_loopback_only_and_says_so_in_options(args: list[str]) -> None:
    result = run_to_exit(*args, "--insecure")
    line = assert_one_line_error(result, "--insecure works on loopback", "--key", "--allow")
    assert "keys=" not in line  # options, not open_node's arguments
    assert "insecure=True" not in line


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda d: d / "missing.key_secret", ["--key", "missing.key_secret", "cannot read"]),
        (lambda d: create_certificates(d, "pub")[0], ["pub.key", "no secret key"]),
        (lambda d: d, ["--key", "cannot read"]),  # a directory
    ],
    ids=["missing", "public-only", "directory"],
)
def test_a_bad_key_file_is_one_clear_line(
    tmp_path: Path, make: Callable[[Path], Path], words: list[str]
) -> None:
    result = run_to_exit("--listen", "tcp://127.0.0.1:*", "--key", str(make(tmp_path)))
    assert_one_line_error(result, *words)
    assert result.stderr.count("\n") == 1


def test_a_bad_key_file_content(tmp_path: Path) -> None:
    bad = tmp_path / "bad.key_secret"
    bad.write_text('curve\n    public-key = "short"\n')
    result = run_to_exit("--listen", "tcp://127.0.0.1:*", "--key", str(bad))
    assert_one_line_error(result, str(bad), "40 characters")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--insecure", "--allow", "x.key"], ["--allow needs --key"]),
        (["--insecure", "--connect", "tcp://127.0.0.1:1=x.key"], ["needs --key"]),
        (["--key", "{secret}", "--connect", "tcp://127.0.0.1:1"], ["=PEER.key"]),
        (["--key", "{secret}", "--allow", "{tmp}/nothing.key"], ["--allow", "cannot read"]),
    ],
)
def test_inconsistent_options(tmp_path: Path, args: list[str], words: list[str]) -> None:
    _, secret = create_certificates(tmp_path, "me")
    argv = [a.format(secret=secret, tmp=tmp_path) for a in args]
    assert_one_line_error(run_to_exit("--listen", "tcp://127.0.0.1:*", *argv), *words)


def test_key_and_insecure_together_is_a_usage_error(tmp_path: Path) -> None:
    _, secret = create_certificates(tmp_path, "me")
    result = run_to_exit("--listen", "tcp://127.0.0.1:*", "--key", str(secret), "--insecure")
    assert result.returncode == 2
    assert "not allowed with argument" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_peer_that_does_not_answer(tmp_path: Path) -> None:
    # Nothing listens on port 1: connect retries until its deadline, which is
    # 2 * --timeout (2 s here), then the CLI exits 2.
    result = subprocess.run(
        _argv(
            "--listen", "tcp://127.0.0.1:*", "--insecure", "--connect", "tcp://127.0.0.1:1", *FAST
        ),
        capture_output=True,
        text=True,
        timeout=TIMEOUT + 5,
        check=False,
    )
    assert_one_line_error(result, "no trimq node answered at tcp://127.0.0.1:1")
