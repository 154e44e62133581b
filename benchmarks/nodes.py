"""Distributed actor nodes between two processes over tcp, next to raw trimq DEALER/ROUTER.

``python benchmarks/nodes.py [--reps 3] [--seconds 1.5] [--quick] [--only KINDS]
[--profile DIR]`` (or ``python -m benchmarks.nodes`` from the repository root).

Four kinds of case, on 127.0.0.1, NULL (``insecure=True``) and CURVE:

* ``node-null`` / ``node-curve``: a client node connects to a server node and
  spawns a ``Counter`` there (``spawn(Counter, on="server")``), then measures

  - ask: ``ref.ask("get")`` round trips (the ref's method, as users call
    it), each timed alone with ``time.perf_counter_ns`` after 2,000 untimed
    ones; median and p99 of a run of ``--seconds``;
  - tell: N ``ref.tell("add", 1)`` then one ask that checks all
    N were handled; msgs/s over the whole (N sized from a short trial run,
    which is also the warm-up, to last ``--seconds``). A remote tell does
    not wait when the link's send queue is full: it raises
    ``ActorStoppedError`` having queued nothing. The loop then waits
    ``RETRY_PAUSE`` and retries, and the report counts these refusals;
  - spawn (NULL only): ``spawn(cls, on="server")`` one after another, each
    awaited until the actor runs there, all kept alive; actors/s. Once with
    ``Counter``, which travels by reference (both processes import this file
    as ``benchmarks.nodes``: see the ``__main__`` block), and once with a
    subclass made inside a function, which cloudpickle ships by value.

* ``raw-null`` / ``raw-curve``: a trimq DEALER and ROUTER, no actors:

  - round trip: the DEALER sends one 16-byte frame, the ROUTER echoes it;
    timed exactly like ask;
  - send: the DEALER sends N one-frame messages (one awaited send each),
    then a round trip whose answer is how many the ROUTER counted; msgs/s.
    The one-way floor under tell.

Around each timed run the client reads its own ``time.process_time()`` and
the server's (through an ask, or the raw ROUTER's count reply), giving the
CPU each side spent per operation: where the time goes.

Every case is two fresh processes started by this one, each under a
deadline: the server (``--serve KIND``) binds ``tcp://127.0.0.1:*``, prints
its endpoint on one stdout line and serves until its stdin closes; the
client (``--client KIND``) connects, measures and prints its figures as one
JSON line. Repetitions are interleaved (node-null, node-curve, raw-null,
raw-curve, node-null, ...); cells are the median of the repetitions with
min-max. CURVE keys are made once here and handed to both processes in their
environment; the node server allows the client's key, the raw ROUTER has no
ZAP handler (it accepts any client key, like libzmq). Handshakes are over
before any clock starts. ``--profile DIR`` runs both sides under cProfile
(slow: for finding hot spots, not for figures).

Only processes started here are ever killed, through their own handles.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import select
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import trio

import trimq
from trimq import actors

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("node-null", "node-curve", "raw-null", "raw-curve")
KEYS_ENV = "TRIMQ_BENCH_NODE_KEYS"  # "server_public server_secret client_public client_secret"
PING = b"p" * 16  # raw round trip: echoed
ONE_WAY = b"t" * 16  # raw send: counted, not answered
COUNT = b"n"  # raw: answered with how many ONE_WAY messages arrived
WARMUP_ASKS = 2_000
MAX_SAMPLES = 200_000
RETRY_PAUSE = 0.001  # seconds a refused remote tell waits before it is retried
SERVE_DEADLINE = 900.0  # a server outliving this exits on its own (orphaned by a crash)


class Counter(actors.Actor):
    """The actor under test. Defined at module top level and imported by both
    processes as ``benchmarks.nodes.Counter``, so a spawn ships it by reference."""

    def __init__(self) -> None:
        self.count = 0

    def add(self, n: int) -> None:
        self.count += n

    def get(self) -> int:
        return self.count

    def cpu(self) -> float:
        """CPU seconds this (the server) process has used so far."""
        return time.process_time()


def _by_value_class() -> type[Counter]:
    # A class made in a function cannot be imported: cloudpickle sends its code.
    class ShippedCounter(Counter):
        pass

    return ShippedCounter


# ---------------------------------------------------------------------- keys


def _make_keys() -> str:
    server, client = trimq.curve_keypair(), trimq.curve_keypair()
    return " ".join(k.decode() for k in (*server, *client))


def _keys() -> tuple[bytes, bytes, bytes, bytes]:
    spub, ssec, cpub, csec = (k.encode() for k in os.environ[KEYS_ENV].split())
    return spub, ssec, cpub, csec


# ---------------------------------------------------------------------- timing


ServerCpu = Callable[[], Awaitable[float]]


async def _cpu_since(
    start: tuple[float, float], server_cpu: ServerCpu, ops: int
) -> dict[str, float]:
    """CPU µs per operation in the client and in the server since ``start``."""
    server = await server_cpu()
    client = time.process_time()
    return {
        "client_cpu_us": (client - start[0]) / ops * 1e6,
        "server_cpu_us": (server - start[1]) / ops * 1e6,
    }


async def _cpu_now(server_cpu: ServerCpu) -> tuple[float, float]:
    return time.process_time(), await server_cpu()


async def _round_trips(
    call: Callable[[], Awaitable[object]], seconds: float, server_cpu: ServerCpu
) -> dict[str, float]:
    """Warm up, then time each call alone for ``seconds``: median and p99 in µs,
    and the CPU each side spent per round trip."""
    for _ in range(WARMUP_ASKS):
        await call()
    start_cpu = await _cpu_now(server_cpu)
    clock = time.perf_counter_ns
    samples: list[int] = []
    deadline = clock() + int(seconds * 1e9)
    while len(samples) < MAX_SAMPLES:
        start = clock()
        await call()
        end = clock()
        samples.append(end - start)
        if end > deadline:
            break
    cpu = await _cpu_since(start_cpu, server_cpu, len(samples))
    samples.sort()
    return {
        "median_us": statistics.median(samples) / 1000,
        "p99_us": samples[int(len(samples) * 0.99)] / 1000,
        "samples": len(samples),
        **cpu,
    }


async def _rate(
    run: Callable[[int], Awaitable[None]], trial: int, seconds: float, server_cpu: ServerCpu
) -> dict[str, float]:
    """Run ``trial`` operations to size N for ``seconds``, then N timed: per second,
    and the CPU each side spent per operation."""
    start = time.perf_counter()
    await run(trial)
    guess = trial / max(time.perf_counter() - start, 1e-6)
    count = max(trial, min(int(guess * seconds), 5_000_000))
    start_cpu = await _cpu_now(server_cpu)
    start = time.perf_counter()
    await run(count)
    rate = count / (time.perf_counter() - start)
    return {"rate": rate, "n": count, **await _cpu_since(start_cpu, server_cpu, count)}


# ---------------------------------------------------------------------- servers


async def _until_stdin_closes() -> None:
    await trio.to_thread.run_sync(sys.stdin.buffer.read, abandon_on_cancel=True)


def _announce(endpoint: str) -> None:
    sys.stdout.write(endpoint + "\n")
    sys.stdout.flush()


async def _serve_node(kind: str) -> None:
    if kind == "node-curve":
        spub, ssec, cpub, _ = _keys()
        security: dict[str, Any] = {"keys": (spub, ssec), "allow": [cpub]}
    else:
        security = {"insecure": True}
    with trio.move_on_after(SERVE_DEADLINE):
        async with actors.open_node("server", listen="tcp://127.0.0.1:*", **security) as node:
            _announce(node.endpoints[0])
            await _until_stdin_closes()


async def _serve_raw(kind: str) -> None:
    options: dict[str, Any] = {"linger": 0}
    if kind == "raw-curve":
        spub, ssec, _, _ = _keys()
        options.update(curve_server=True, curve_publickey=spub, curve_secretkey=ssec)
    with trio.move_on_after(SERVE_DEADLINE):
        async with trimq.Context() as ctx, ctx.socket(trimq.ROUTER, **options) as router:
            _announce(await router.bind("tcp://127.0.0.1:*"))
            async with trio.open_nursery() as nursery:

                async def watch() -> None:
                    await _until_stdin_closes()
                    nursery.cancel_scope.cancel()

                nursery.start_soon(watch)
                recv, send = router.recv_multipart, router.send_multipart
                count = 0
                while True:
                    frames = await recv()
                    body = frames[1]
                    if body == ONE_WAY:
                        count += 1
                    elif body == COUNT:
                        await send([frames[0], f"{count} {time.process_time()}".encode()])
                    else:
                        await send(frames)


# ---------------------------------------------------------------------- clients


def _put(out: dict[str, float], prefix: str, figures: dict[str, float]) -> None:
    out.update({f"{prefix}_{key}": value for key, value in figures.items()})


async def _node_client(kind: str, endpoint: str, seconds: float) -> dict[str, float]:
    secure = kind == "node-curve"
    if secure:
        spub, _, cpub, csec = _keys()
        security: dict[str, Any] = {"keys": (cpub, csec)}
    else:
        security = {"insecure": True}
    out: dict[str, float] = {}
    async with actors.open_node("client", **security) as node:
        with trio.fail_after(30):
            await node.connect(endpoint, key=spub if secure else None)
        ref = await node.spawn(Counter, on="server")
        # What users call: the ref's methods, through the node of this task.
        ask, tell = ref.ask, ref.tell

        def get() -> Awaitable[object]:
            return ask("get")

        async def server_cpu() -> float:
            seconds: float = await ask("cpu")
            return seconds

        _put(out, "ask", await _round_trips(get, seconds, server_cpu))

        refusals = {"last run": 0}

        async def tells(n: int) -> None:
            before = await ask("get")
            refused = 0
            for _ in range(n):
                while True:
                    try:
                        await tell("add", 1)
                        break
                    except actors.ActorStoppedError:
                        # A remote tell does not wait for room: when the link's
                        # send queue is full it raises this, having queued
                        # nothing, so a retry cannot duplicate. Pause and retry.
                        refused += 1
                        await trio.sleep(RETRY_PAUSE)
            after = await ask("get")
            if after - before != n:
                raise AssertionError(f"{n} tells sent, {after - before} handled")
            refusals["last run"] = refused

        _put(out, "tell", await _rate(tells, 5_000, seconds, server_cpu))
        out["tell_refused"] = refusals["last run"]
        if not secure:
            for label, cls in (("spawn", Counter), ("spawn_by_value", _by_value_class())):
                out[f"{label}_bytes"] = len(node.codec.encode((cls, (), {}))[1])

                async def spawns(n: int, cls: type[Counter] = cls) -> None:
                    for _ in range(n):
                        await node.spawn(cls, on="server")

                _put(out, label, await _rate(spawns, 200, seconds, server_cpu))
    return out


async def _raw_client(kind: str, endpoint: str, seconds: float) -> dict[str, float]:
    options: dict[str, Any] = {"linger": 0}
    if kind == "raw-curve":
        spub, _, cpub, csec = _keys()
        options.update(curve_serverkey=spub, curve_publickey=cpub, curve_secretkey=csec)
    out: dict[str, float] = {}
    async with trimq.Context() as ctx, ctx.socket(trimq.DEALER, **options) as dealer:
        await dealer.connect(endpoint)
        send, recv = dealer.send_multipart, dealer.recv_multipart
        with trio.fail_after(30):  # the first round trip waits for the connection
            await send([PING])
            await recv()

        async def ping() -> object:
            await send([PING])
            return await recv()

        async def counters() -> tuple[int, float]:
            await send([COUNT])
            count, cpu = (await recv())[0].split()
            return int(count), float(cpu)

        async def server_cpu() -> float:
            return (await counters())[1]

        _put(out, "rt", await _round_trips(ping, seconds, server_cpu))

        async def sends(n: int) -> None:
            before = (await counters())[0]
            frames = [ONE_WAY]
            for _ in range(n):
                await send(frames)
            handled = (await counters())[0] - before
            if handled != n:
                raise AssertionError(f"{n} sent, {handled} received")

        _put(out, "send", await _rate(sends, 5_000, seconds, server_cpu))
    return out


def _child(role: str, kind: str, endpoint: str, seconds: float, profile: str | None) -> None:
    async def run() -> None:
        if role == "serve":
            await (_serve_node(kind) if kind.startswith("node") else _serve_raw(kind))
            return
        client = _node_client if kind.startswith("node") else _raw_client
        with trio.fail_after(60 + 40 * seconds):
            figures = await client(kind, endpoint, seconds)
        sys.stdout.write(json.dumps(figures) + "\n")

    if profile is None:
        trio.run(run)
        return
    profiler = cProfile.Profile()
    try:
        profiler.runcall(trio.run, run)
    finally:
        profiler.dump_stats(profile)


# ---------------------------------------------------------------------- processes


class _Process:
    """One child process, bounded by deadlines; killed (if still alive) on exit."""

    def __init__(self, args: list[str], env: dict[str, str], name: str) -> None:
        self.name = name
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self._buffer = b""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.nodes", *args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            bufsize=0,
        )

    def line(self, timeout: float, watch: _Process | None = None) -> str:
        """The next stdout line; fail after ``timeout`` s, or if ``watch`` dies."""
        assert self.proc.stdout is not None
        fd, deadline = self.proc.stdout.fileno(), time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._error(f"said nothing within {timeout:.0f} s")
            if watch is not None and watch.proc.poll() is not None:
                raise watch._error(f"exited (status {watch.proc.returncode}) early")
            if select.select([fd], [], [], min(remaining, 0.5))[0]:
                chunk = os.read(fd, 65536)
                if not chunk:
                    self.proc.wait(timeout=5)
                    raise self._error(f"exited (status {self.proc.returncode}) early")
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()

    def finish(self, timeout: float) -> None:
        """Close its stdin (a server's cue to stop) and wait for a clean exit."""
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise self._error(f"did not exit within {timeout:.0f} s") from None
        if code != 0:
            raise self._error(f"exited with status {code}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()
        self._stderr.close()

    def _error(self, what: str) -> RuntimeError:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._stderr.seek(0)
        tail = self._stderr.read().decode(errors="replace").strip().splitlines()[-15:]
        detail = "".join(f"\n    | {line}" for line in tail)
        return RuntimeError(f"{self.name} (pid {self.proc.pid}) {what}{detail}")


@contextmanager
def _started(args: list[str], env: dict[str, str], name: str) -> Iterator[_Process]:
    process = _Process(args, env, name)
    try:
        yield process
    finally:
        process.close()


def _run_case(
    kind: str, seconds: float, env: dict[str, str], profile: str | None
) -> dict[str, float]:
    def extra(role: str) -> list[str]:
        return [] if profile is None else ["--profile", f"{profile}/{kind}-{role}.prof"]

    with _started(["--serve", kind, *extra("server")], env, f"{kind} server") as server:
        endpoint = server.line(60)
        client_args = ["--client", kind, "--endpoint", endpoint, "--seconds", str(seconds)]
        with _started([*client_args, *extra("client")], env, f"{kind} client") as client:
            figures: dict[str, float] = json.loads(client.line(120 + 50 * seconds, server))
            client.finish(60)
        server.finish(120)
    return figures


# ---------------------------------------------------------------------- report


def _median(results: dict[str, list[dict[str, float]]], kind: str, key: str) -> float | None:
    values = [r[key] for r in results.get(kind, []) if key in r]
    return statistics.median(values) if values else None


def _cell(results: dict[str, list[dict[str, float]]], kind: str, key: str, fmt: str) -> str:
    values = [r[key] for r in results.get(kind, []) if key in r]
    if not values:
        return "-"
    med, low, high = statistics.median(values), min(values), max(values)
    if fmt == "k":
        return f"{_k(med)} ({_k(low)}-{_k(high)})"
    return f"{med:.0f} ({low:.0f}-{high:.0f})"


def _k(value: float) -> str:
    return f"{value / 1000:.1f}k" if value < 100_000 else f"{value / 1000:.0f}k"


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}x"


def _verdict(value: float | None, limit: float, at_most: bool) -> str:
    if value is None:
        return ""
    ok = value <= limit if at_most else value >= limit
    return "met" if ok else "NOT MET"


def _report(results: dict[str, list[dict[str, float]]], reps: int) -> None:
    rows = [  # label, side (NULL is side-null, CURVE side-curve), key, format, target
        ("node ask median (µs)", "node", "ask_median_us", "", ("≤ 150 µs (NULL)", 150.0, True)),
        ("node ask p99 (µs)", "node", "ask_p99_us", "", None),
        ("node tell (msgs/s)", "node", "tell_rate", "k", ("≥ 100k/s", 100_000.0, False)),
        ("node spawn, by ref (/s)", "node", "spawn_rate", "k", None),
        ("node spawn, by value (/s)", "node", "spawn_by_value_rate", "k", None),
        ("raw round trip median (µs)", "raw", "rt_median_us", "", None),
        ("raw round trip p99 (µs)", "raw", "rt_p99_us", "", None),
        ("raw send (msgs/s)", "raw", "send_rate", "k", None),
    ]
    width = 27
    print(f"\n{reps} repetition(s); cells: median (min-max) of the repetitions")
    print(f"{'measure':<{width}} {'NULL':<24} {'CURVE':<24} {'CURVE/NULL':<11} target")
    for label, side, key, fmt, target in rows:
        null, curve = f"{side}-null", f"{side}-curve"
        a, b = _median(results, null, key), _median(results, curve, key)
        goal = ""
        if target is not None:
            text, limit, at_most = target
            goal = f"{text}: {_verdict(a, limit, at_most)}"
        print(
            f"{label:<{width}} {_cell(results, null, key, fmt):<24} "
            f"{_cell(results, curve, key, fmt):<24} {_ratio(b, a):<11} {goal}"
        )

    print("\nwhat the actor layer adds: time per message, node ÷ raw (ratios of medians)")
    print(f"{'':<{width}} {'NULL':<24} {'CURVE':<24}")
    for label, node_key, raw_key, invert in (
        ("ask ÷ raw round trip", "ask_median_us", "rt_median_us", False),
        ("tell ÷ raw send", "tell_rate", "send_rate", True),
    ):
        cells = []
        for sec in ("null", "curve"):
            mine, raw = (
                _median(results, f"node-{sec}", node_key),
                _median(results, f"raw-{sec}", raw_key),
            )
            cells.append(_ratio(raw, mine) if invert else _ratio(mine, raw))
        print(f"{label:<{width}} {cells[0]:<24} {cells[1]:<24}")

    print("\nCPU per operation, µs: client + server (medians; wall time per op beside).")
    print("In the rate runs both sides are busy throughout, so there CPU/op ≈ wall/op.")
    print(f"{'':<{width}} {'NULL':<24} {'CURVE':<24}")
    for label, side, prefix in (
        ("node ask", "node", "ask"),
        ("node tell", "node", "tell"),
        ("node spawn, by ref", "node", "spawn"),
        ("node spawn, by value", "node", "spawn_by_value"),
        ("raw round trip", "raw", "rt"),
        ("raw send", "raw", "send"),
    ):
        cells = []
        for sec in ("null", "curve"):
            kind = f"{side}-{sec}"
            client = _median(results, kind, f"{prefix}_client_cpu_us")
            server = _median(results, kind, f"{prefix}_server_cpu_us")
            wall = _median(results, kind, f"{prefix}_median_us")
            rate = _median(results, kind, f"{prefix}_rate")
            if wall is None and rate is not None:
                wall = 1e6 / rate
            if client is None or server is None or wall is None:
                cells.append("-")
            else:
                cells.append(f"{client:.1f} + {server:.1f} ({wall:.1f})")
        print(f"{label:<{width}} {cells[0]:<24} {cells[1]:<24}")

    print("\nremote tells refused because the link's send queue was full (retried after")
    print(f"{RETRY_PAUSE * 1000:.0f} ms), in the timed run of each repetition:")
    for kind in ("node-null", "node-curve"):
        runs = [r for r in results.get(kind, []) if "tell_refused" in r]
        if runs:
            counts = ", ".join(f"{r['tell_refused']:.0f} of {r['tell_n']:.0f}" for r in runs)
            print(f"  {kind}: {counts}")
    sizes = [r for r in results.get("node-null", []) if "spawn_bytes" in r]
    if sizes:
        print(
            f"\nspawn payload: {sizes[0]['spawn_bytes']:.0f} B with Counter by reference, "
            f"{sizes[0]['spawn_by_value_bytes']:.0f} B with a class shipped by value"
        )


def main(argv: list[str] | None = None) -> int:
    """Run the cases, interleaved, and print a table (median and min-max)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=1.5, help="length of each timed run")
    parser.add_argument("--quick", action="store_true", help="1 rep, short runs: a smoke test")
    parser.add_argument("--only", default=",".join(KINDS), help="comma-separated kinds")
    parser.add_argument("--profile", metavar="DIR", help="cProfile both sides (skews figures)")
    parser.add_argument("--serve", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--client", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve or args.client:  # a child process
        role, kind = ("serve", args.serve) if args.serve else ("client", args.client)
        _child(role, kind, args.endpoint or "", args.seconds, args.profile)
        return 0
    kinds = [k for k in KINDS if k in args.only.split(",")]
    if not kinds:
        parser.error(f"--only: choose among {', '.join(KINDS)}")
    reps, seconds = (1, 0.3) if args.quick else (args.reps, args.seconds)
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
        args.profile = str(Path(args.profile).resolve())
    env = {**os.environ, KEYS_ENV: _make_keys()}
    results: dict[str, list[dict[str, float]]] = {kind: [] for kind in kinds}
    for rep in range(reps):
        for kind in kinds:
            figures = _run_case(kind, seconds, env, args.profile)
            results[kind].append(figures)
            shown = ", ".join(f"{k}={v:.1f}" for k, v in figures.items())
            print(f"rep {rep + 1} {kind}: {shown}", file=sys.stderr, flush=True)
    _report(results, reps)
    return 0


if __name__ == "__main__":
    # Run as benchmarks.nodes rather than __main__: Counter then has the same
    # importable name in both processes, so spawning it ships it by reference.
    from benchmarks.nodes import main as _main

    raise SystemExit(_main())
