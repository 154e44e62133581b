"""trimq.pipelines against a hand-written pyzmq pipeline and multiprocessing.Pool.

``python benchmarks/pipelines.py [--reps 3] [--items N] [--quick]`` (or
``python -m benchmarks.pipelines`` from the repository root).

Every case pushes the same ``--items`` 64-byte ``bytes`` items through three
trivial functions, ``first`` (identity), ``middle`` (reverses the bytes) and
``last`` (reverses them back), so every output equals its input; each run
checks that every item came out exactly once. Items/s is over the whole run:
from the call that starts it to its last output.

* ``trimq 1 node``: ``Pipeline(Stage(first, workers=2), Stage(middle,
  workers=2), Stage(last, workers=2))``, all on the node that runs it
  (``actors.open_node()``), ``await pipeline.run(node, items)``.
* ``trimq 2 workers NULL`` / ``CURVE``: the same with the middle stage on two
  ``python -m trimq node --tag worker`` processes over tcp on 127.0.0.1
  (``Stage(middle, workers=2, on="worker")``); NULL with ``--insecure``,
  CURVE with keys made by ``trimq.auth.create_certificates`` (each worker
  allows only the hub's key). Pool start-up (spawning the remote workers) is
  inside the timed run. The worker processes run in the repository root with
  it on ``PYTHONPATH``, so they import ``benchmarks.pipelines`` and the stage
  functions travel by reference (cloudpickle pickles a function of an
  importable module by name). Without ``benchmarks`` on the workers' path
  that fails (``CodecError ... No module named 'benchmarks'``);
  ``cloudpickle.register_pickle_by_value(benchmarks.pipelines)`` in the hub
  ships them by value instead, and that works too (checked by hand, not run
  here).
* ``pyzmq ventilator``: the zguide's ventilator -> 2 workers -> sink,
  PUSH/PULL, no acknowledgements, four processes: the ventilator sends
  ``first(item)``, each worker sends back ``middle(item)``, the sink keeps
  ``last(item)``. The clock runs from the sink's "go" to the ventilator
  (both workers' connections handshaken) until the sink has every item.
* ``mp.Pool imap_unordered``: ``multiprocessing.Pool(2).imap_unordered(middle,
  items, chunksize=CHUNKSIZE)`` on a started, warmed pool.
* Ray's ActorPool, when ``import ray`` works (otherwise noted and skipped).
* ``recovery``: the NULL two-worker pipeline streamed with
  ``pipeline.open(...)``, every output timestamped; after 30 % of the outputs
  one worker process gets SIGKILL. Reported: (a) the longest gap between two
  outputs after the kill; (b) the time from the kill until throughput is back
  to 90 % of the rate before it (outputs from 10 % to 30 %): over 0.2 s
  windows from the kill in 10 ms steps, the start of the first window at 90 %
  after the slowest one (0 if none was slower, "not back" if none recovers
  before the last 5 % of the outputs); (c) that the outputs are exactly the
  inputs; (d) the time until every item taken from the source before the kill
  is out (the items the lost worker held included); the slowest window, the
  rate after (d) and how many item attempts were retried. Hub and workers run
  with ``heartbeat=0.2, timeout=1``.

CPU per item: ``time.process_time()`` of the process that runs the pipeline
(the hub, the sink or the Pool's parent) and, read from ``/proc/PID/stat``
(utime + stime), of the worker processes (and the ventilator), over the timed
run, divided by the items.

Each case of each repetition runs in a fresh child process (which starts its
own worker processes and kills them, through their handles, when done), all
under deadlines; repetitions are interleaved. Cells are the median (min-max)
of the repetitions; ratios compare medians of the same invocation.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import json
import math
import os
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import trio

from trimq import actors, pipelines

ROOT = Path(__file__).resolve().parent.parent
CASES = ("local", "journal", "resume", "null", "curve", "pyzmq", "mp", "ray", "recovery")
LABELS = {
    "local": "trimq 1 node, 3 stages",
    "journal": "the same, with a journal",
    "resume": "resume of 1M items, killed at 50%",
    "null": "trimq 2 workers NULL",
    "curve": "trimq 2 workers CURVE",
    "pyzmq": "pyzmq ventilator",
    "mp": "mp.Pool imap_unordered",
    "ray": "ray ActorPool",
    "recovery": "recovery (NULL)",
}
ITEMS = 200_000  # per run, by default
RECOVERY_ITEMS = 4.0  # the recovery run has this many times --items,
RECOVERY_MIN = 400_000  # and at least this many
WARMUP_ITEMS = 2_000  # an untimed run first, in the same process
CHUNKSIZE = 128  # mp.Pool chunksize: trimq's batch size
ITEM_SIZE = 64
KILL_AT = 0.3  # the recovery run kills a worker after this share of outputs
WINDOW = 0.2  # seconds: throughput windows of the recovery run
BACK_TO = 0.9  # recovered: a window at this share of the rate before the kill
HEARTBEAT, TIMEOUT = 0.2, 1.0  # hub and workers, every remote case
START_DEADLINE = 30.0  # seconds for a worker process to say where it listens
CHILD_DEADLINE = 300.0  # seconds for one case


# ---------------------------------------------------------------------- the work


def first(item: bytes) -> bytes:
    """Stage 1: identity."""
    return item


def middle(item: bytes) -> bytes:
    """Stage 2: the bytes reversed (a cheap transform)."""
    return item[::-1]


def last(item: bytes) -> bytes:
    """Stage 3: reversed back, so the output is the input."""
    return item[::-1]


def recovery_items(n: int) -> int:
    """Items of the recovery run: long enough to see the way back."""
    return max(int(n * RECOVERY_ITEMS), RECOVERY_MIN)


def make_items(n: int) -> list[bytes]:
    """``n`` distinct 64-byte items: the index, then padding."""
    pad = b"." * (ITEM_SIZE - 8)
    return [i.to_bytes(8, "big") + pad for i in range(n)]


def check(items: list[bytes], outputs: Sequence[bytes]) -> dict[str, float]:
    """How many outputs, and how many items were lost or duplicated."""
    seen: dict[bytes, int] = {}
    for out in outputs:
        seen[out] = seen.get(out, 0) + 1
    wanted = set(items)
    lost = sum(1 for item in items if item not in seen)
    extra = sum(n - 1 for n in seen.values() if n > 1) + sum(1 for out in seen if out not in wanted)
    return {"outputs": len(outputs), "lost": lost, "duplicated": extra}


# ---------------------------------------------------------------------- CPU


_TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used so far."""
    with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime (fields 14, 15)


def cpu_now(pids: Sequence[int]) -> tuple[float, float]:
    """(this process's CPU, the others' CPU), in seconds."""
    return time.process_time(), sum(proc_cpu(pid) for pid in pids)


def cpu_since(start: tuple[float, float], pids: Sequence[int], n: int) -> dict[str, float]:
    """CPU µs per item in this process and in ``pids`` since ``start``."""
    here, there = cpu_now(pids)
    return {
        "hub_cpu_us": (here - start[0]) / n * 1e6,
        "workers_cpu_us": (there - start[1]) / n * 1e6,
    }


# ---------------------------------------------------------------------- processes


class Child:
    """A process started here, read line by line under deadlines, killed on close."""

    def __init__(self, command: list[str], name: str, stdin: bool = False) -> None:
        self.name = name
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self._buffer = b""
        path = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
        self.proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            bufsize=0,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def line(self, timeout: float) -> str:
        """The next stdout line; raise if none comes within ``timeout`` seconds."""
        assert self.proc.stdout is not None
        fd, deadline = self.proc.stdout.fileno(), time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self.error(f"said nothing within {timeout:.0f} s")
            if select.select([fd], [], [], min(remaining, 0.5))[0]:
                chunk = os.read(fd, 65536)
                if not chunk:
                    self.proc.wait(timeout=5)
                    raise self.error(f"exited (status {self.proc.returncode}) early")
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()

    def say(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode() + b"\n")
        self.proc.stdin.flush()

    def kill(self) -> None:
        """SIGKILL, if it still runs (not reaped: see :meth:`close`)."""
        if self.proc.poll() is None:
            self.proc.kill()

    def close(self) -> None:
        """Stop it (SIGTERM, then SIGKILL after 5 s) and release its pipes."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()
        self._stderr.close()

    def error(self, what: str) -> RuntimeError:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._stderr.seek(0)
        tail = self._stderr.read().decode(errors="replace").strip().splitlines()[-15:]
        detail = "".join(f"\n    | {line}" for line in tail)
        return RuntimeError(f"{self.name} (pid {self.proc.pid}) {what}{detail}")


@contextmanager
def started(children: list[Child]) -> Iterator[list[Child]]:
    """Close every child on the way out, whatever happened."""
    try:
        yield children
    finally:
        for child in children:
            child.close()


def python(*args: str) -> list[str]:
    return [sys.executable, *args]


# ---------------------------------------------------------------------- trimq cases


def trimq_workers(secure: bool, keys: Path) -> list[Child]:
    """Two ``trimq node`` processes tagged ``worker`` on loopback tcp."""
    children = []
    for i in (1, 2):
        name = f"worker-{i}"
        security = (
            ["--key", str(keys / f"{name}.key_secret"), "--allow", str(keys / "hub.key")]
            if secure
            else ["--insecure"]
        )
        command = python(
            "-m", "trimq", "node",
            "--listen", "tcp://127.0.0.1:*",
            "--name", name,
            "--tag", "worker",
            *security,
            "--heartbeat", str(HEARTBEAT), "--timeout", str(TIMEOUT),
            "--log-level", "ERROR",
        )  # fmt: skip
        children.append(Child(command, name))
    return children


def endpoint_of(child: Child) -> str:
    # "trimq node NAME listening on ENDPOINT[, ...]"
    return child.line(START_DEADLINE).split(" listening on ")[1].split(",")[0].strip()


def three_stages(on: str | None) -> pipelines.Pipeline:
    return pipelines.Pipeline(
        pipelines.Stage(first, workers=2),
        pipelines.Stage(middle, workers=2, on=on),
        pipelines.Stage(last, workers=2),
        name="bench",
    )


@contextmanager
def hub_setup(case: str, keys: Path) -> Iterator[tuple[list[Child], dict[str, Any]]]:
    """The worker processes of ``case`` (none for ``local``) and the hub's node options."""
    if case in ("local", "journal"):
        yield [], {}
        return
    secure = case == "curve"
    with started(trimq_workers(secure, keys)) as workers:
        if secure:
            from trimq.auth import load_certificate

            public, secret = load_certificate(keys / "hub.key_secret")
            assert secret is not None
            options: dict[str, Any] = {
                "keys": (public, secret),
                "allow": [load_certificate(keys / f"{w.name}.key")[0] for w in workers],
            }
        else:
            options = {"insecure": True}
        options.update(heartbeat=HEARTBEAT, timeout=TIMEOUT)
        yield workers, options


async def connect_all(node: actors.Node, workers: list[Child], keys: Path, secure: bool) -> None:
    from trimq.auth import load_certificate

    for worker in workers:
        endpoint = endpoint_of(worker)
        key = load_certificate(keys / f"{worker.name}.key")[0] if secure else None
        with trio.fail_after(START_DEADLINE):
            await node.connect(endpoint, key=key)


def run_trimq(case: str, n: int, keys: Path) -> dict[str, float]:
    """Cases ``local``, ``null`` and ``curve``: one warm-up run, one timed."""
    items = make_items(n)
    with hub_setup(case, keys) as (workers, options):

        async def main() -> dict[str, float]:
            async with actors.open_node("hub", **options) as node:
                await connect_all(node, workers, keys, case == "curve")
                pipeline = three_stages(None if case in ("local", "journal") else "worker")
                journal = (lambda name: str(keys / f"{name}.sqlite")) if case == "journal" else None
                await pipeline.run(
                    node,
                    make_items(WARMUP_ITEMS),
                    progress=False,
                    journal=None if journal is None else journal("warmup"),
                )
                pids = [w.pid for w in workers]
                cpu = cpu_now(pids)
                start = time.perf_counter()
                outputs = await pipeline.run(
                    node, items, progress=False, journal=None if journal is None else journal("run")
                )
                elapsed = time.perf_counter() - start
                figures = {"rate": n / elapsed, **cpu_since(cpu, pids, n)}
            if outputs != items:
                figures["out_of_order"] = 1
            return {**figures, **check(items, outputs)}

        return trio.run(main)


RESUME_ITEMS = 1_000_000
RESUME_PROGRAM = """
import os, signal, sys, time
import trio
from trimq import actors
from trimq.pipelines import Pipeline, Stage, current_item

journal, kill_at, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def first(x):
    if current_item().index == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    return x

def same(x):
    return x

async def main():
    pipeline = Pipeline(Stage(first, workers=2), Stage(same, workers=2),
                        Stage(same, name="last", workers=2), name="resume")
    async with actors.open_node() as node:
        start = time.perf_counter()
        out = await pipeline.run(node, range(n), journal=journal, progress=False)
        print(time.perf_counter() - start, len(out), out == list(range(n)))

trio.run(main)
"""


def run_resume(keys: Path) -> dict[str, float]:
    """A journaled run of RESUME_ITEMS killed (SIGKILL) at half; then the rerun, timed."""
    import subprocess

    script = keys / f"resume-{os.getpid()}.py"
    script.write_text(RESUME_PROGRAM)
    journal = str(keys / f"resume-{os.getpid()}.sqlite")
    n = RESUME_ITEMS
    command = [sys.executable, str(script), journal]
    first = subprocess.run([*command, str(n // 2), str(n)], capture_output=True, timeout=600)
    assert first.returncode == -9, first.stderr[-2000:]
    second = subprocess.run(
        [*command, "-1", str(n)], capture_output=True, text=True, timeout=600, check=True
    )
    seconds, count, exact = second.stdout.split()
    ok = int(count) == n and exact == "True"
    return {
        "rate": n / float(seconds),
        "resume_s": float(seconds),
        "lost": 0.0 if ok else 1.0,
        "duplicated": 0.0,
    }


def run_recovery(n: int, keys: Path) -> dict[str, float]:
    """Case ``recovery``: stream, kill a worker after KILL_AT of the outputs, watch."""
    items = make_items(n)
    pulled = [0]

    def source() -> Iterator[bytes]:
        for item in items:
            pulled[0] += 1
            yield item

    with hub_setup("null", keys) as (workers, options):

        async def main() -> dict[str, float]:
            async with actors.open_node("hub", **options) as node:
                await connect_all(node, workers, keys, False)
                pipeline = three_stages("worker")
                await pipeline.run(node, make_items(WARMUP_ITEMS), progress=False)
                outputs: list[bytes] = []
                stamps: list[float] = []
                kill_after = int(n * KILL_AT)
                clock = time.perf_counter
                start = clock()
                killed_at, pulled_at_kill = 0.0, 0
                async with pipeline.open(node, source(), progress=False) as run:
                    async for out in run:
                        outputs.append(out)
                        stamps.append(clock())
                        if len(outputs) == kill_after:
                            workers[0].kill()
                            killed_at, pulled_at_kill = clock(), pulled[0]
                    retried = sum(s.retried for s in run.statistics())
                end = clock()
            return {
                "rate": n / (end - start),
                "retried": retried,
                **recovery_figures(outputs, stamps, killed_at, pulled_at_kill, kill_after),
                **check(items, outputs),
            }

        return trio.run(main)


def recovery_figures(
    outputs: list[bytes], stamps: list[float], killed: float, pulled: int, kill_after: int
) -> dict[str, float]:
    """Gap, time back to speed and time until the pre-kill items are out (seconds)."""
    after = [killed, *stamps[kill_after:]]
    gap = max(b - a for a, b in itertools.pairwise(after))
    # The rate before: from 10 % of the outputs to the kill (start-up left out).
    begin = kill_after // 3
    before = (kill_after - begin) / max(killed - stamps[begin], 1e-9)
    # Back to speed: 0.2 s windows starting at the kill, in 10 ms steps, up
    # to the last 5 % of the outputs (the run's tail). After the slowest one,
    # the start of the first at BACK_TO of that rate or more, from the kill;
    # 0 if none was below, nan if none came back (not within the run).
    tail = stamps[int(len(stamps) * 0.95) - 1]
    rates = [(t, r) for t, r in window_rates(stamps, kill_after, killed) if t + WINDOW <= tail]
    need = BACK_TO * before
    slowest = min(range(len(rates)), key=lambda i: rates[i][1], default=None)
    back = math.nan
    if slowest is None or rates[slowest][1] >= need:
        back = 0.0
    else:
        back = next((t - killed for t, r in rates[slowest:] if r >= need), math.nan)
    # Every item taken from the source before the kill: out by when?
    last_old = max(
        (s for out, s in zip(outputs, stamps, strict=True) if int.from_bytes(out[:8]) < pulled),
        default=killed,
    )
    # The rate once those are out, with one worker process left (to 95 %: no
    # tail); nan if they were among the last 5 %.
    first_new = bisect.bisect_right(stamps, last_old)
    end = int(len(stamps) * 0.95)
    rate_after = math.nan
    if end - first_new >= 2:
        rate_after = (end - first_new) / max(stamps[end - 1] - last_old, 1e-9)
    return {
        "gap_s": gap,
        "back_s": back,
        "old_out_s": last_old - killed,
        "rate_before": before,
        "lowest_share": min((rate for _, rate in rates), default=before) / before,
        "rate_after": rate_after,
    }


def window_rates(stamps: list[float], begin: int, t: float) -> list[tuple[float, float]]:
    """(start, items/s) of WINDOW-long windows from ``t`` on, in 10 ms steps."""
    rates = []
    lo = hi = begin
    while t + WINDOW <= stamps[-1]:
        while lo < len(stamps) and stamps[lo] < t:
            lo += 1
        while hi < len(stamps) and stamps[hi] < t + WINDOW:
            hi += 1
        rates.append((t, (hi - lo) / WINDOW))
        t += 0.01
    return rates


# ---------------------------------------------------------------------- pyzmq


def zmq_worker(vent: str, sink: str) -> None:
    """The zguide's task worker: PULL from the ventilator, PUSH to the sink."""
    import zmq

    ctx = zmq.Context()
    pull, push = ctx.socket(zmq.PULL), ctx.socket(zmq.PUSH)
    pull.connect(vent)
    push.connect(sink)
    recv, send = pull.recv, push.send
    while True:
        send(middle(recv()))


def zmq_ventilator(n: int) -> None:
    """The zguide's ventilator: bind, wait for both workers and for "go", send."""
    import zmq
    from zmq.utils.monitor import recv_monitor_message

    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    monitor = push.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
    port = push.bind_to_random_port("tcp://127.0.0.1")
    print(f"tcp://127.0.0.1:{port}", flush=True)
    joined = 0
    while joined < 2:  # otherwise the first to connect gets everything
        if recv_monitor_message(monitor)["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            joined += 1
    print("ready", flush=True)
    sys.stdin.readline()
    items, send = make_items(n), push.send
    for item in items:
        send(first(item))
    sys.stdin.read()  # keep the socket until the sink has everything


def run_pyzmq(n: int) -> dict[str, float]:
    """Case ``pyzmq``: this process is the sink."""
    import zmq

    items = make_items(n)
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    sink = f"tcp://127.0.0.1:{pull.bind_to_random_port('tcp://127.0.0.1')}"
    me = ["-m", "benchmarks.pipelines"]
    vent = Child(python(*me, "--zmq-vent", str(n)), "ventilator", stdin=True)
    with started([vent]):
        endpoint = vent.line(START_DEADLINE)
        workers = [
            Child(python(*me, "--zmq-worker", endpoint, sink), f"pyzmq worker {i}") for i in (1, 2)
        ]
        with started(workers):
            if vent.line(START_DEADLINE) != "ready":
                raise vent.error("did not say ready")
            pids = [vent.pid] + [w.pid for w in workers]
            cpu = cpu_now(pids)
            start = time.perf_counter()
            vent.say("go")
            recv = pull.recv
            outputs = [last(recv()) for _ in range(n)]
            elapsed = time.perf_counter() - start
            figures = {"rate": n / elapsed, **cpu_since(cpu, pids, n)}
    pull.close(linger=0)
    ctx.term()
    return {**figures, **check(items, outputs)}


# ---------------------------------------------------------------------- multiprocessing, ray


def run_mp(n: int) -> dict[str, float]:
    """Case ``mp``: ``Pool(2).imap_unordered(middle, items, chunksize=CHUNKSIZE)``."""
    import multiprocessing

    items = make_items(n)
    with multiprocessing.Pool(2) as pool:
        list(pool.imap_unordered(middle, make_items(WARMUP_ITEMS), chunksize=CHUNKSIZE))
        pids = [p.pid for p in multiprocessing.active_children() if p.pid is not None]
        cpu = cpu_now(pids)
        start = time.perf_counter()
        outputs = list(pool.imap_unordered(middle, items, chunksize=CHUNKSIZE))
        elapsed = time.perf_counter() - start
        figures = {"rate": n / elapsed, **cpu_since(cpu, pids, n)}
    return {**figures, **check(items, [last(out) for out in outputs])}


def run_ray(n: int) -> dict[str, float]:
    """Case ``ray``: an ActorPool of two actors mapping ``middle`` (unordered)."""
    import ray  # type: ignore[import-not-found, unused-ignore]
    from ray.util import ActorPool  # type: ignore[import-not-found, unused-ignore]

    @ray.remote
    class Middle:
        def run(self, batch: list[bytes]) -> list[bytes]:
            return [middle(item) for item in batch]

    items = make_items(n)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        pool = ActorPool([Middle.remote() for _ in range(2)])  # type: ignore[attr-defined]
        batches = [items[i : i + CHUNKSIZE] for i in range(0, n, CHUNKSIZE)]
        list(pool.map_unordered(lambda a, b: a.run.remote(b), batches[:10]))
        start = time.perf_counter()
        outputs = [
            last(out)
            for batch in pool.map_unordered(lambda a, b: a.run.remote(b), batches)
            for out in batch
        ]
        figures = {"rate": n / (time.perf_counter() - start)}
    finally:
        ray.shutdown()
    return {**figures, **check(items, outputs)}


def ray_missing() -> str | None:
    """Why Ray cannot be used here, or ``None``."""
    try:
        import ray  # type: ignore[import-not-found, unused-ignore]  # noqa: F401
    except ImportError:
        return "not installed"
    return None


# ---------------------------------------------------------------------- one case, in a child


def child(case: str, n: int, keys: Path) -> dict[str, float]:
    if case in ("local", "journal", "null", "curve"):
        return run_trimq(case, n, keys)
    if case == "recovery":
        return run_recovery(n, keys)
    if case == "resume":
        return run_resume(keys)
    if case == "pyzmq":
        return run_pyzmq(n)
    if case == "mp":
        return run_mp(n)
    return run_ray(n)


def run_case(case: str, n: int, keys: Path) -> dict[str, float]:
    command = python("-m", "benchmarks.pipelines", "--child", case, "--items", str(n))
    with started([Child([*command, "--keys", str(keys)], case)]) as (proc,):
        figures: dict[str, float] = json.loads(proc.line(CHILD_DEADLINE))
        proc.proc.wait(timeout=30)
    return figures


# ---------------------------------------------------------------------- report


Results = dict[str, list[dict[str, float]]]


def values(results: Results, case: str, key: str) -> list[float]:
    return [r[key] for r in results.get(case, []) if key in r]


def median(results: Results, case: str, key: str) -> float | None:
    found = values(results, case, key)
    return statistics.median(found) if found else None


def k(value: float) -> str:
    return f"{value / 1000:.1f}k" if value < 100_000 else f"{value / 1000:.0f}k"


def cell(results: Results, case: str, key: str, fmt: str = "k") -> str:
    found = values(results, case, key)
    finite = [v for v in found if v == v]
    if not found:
        return "-"
    if not finite:
        return f"none ({len(found)} runs)"
    med, low, high = statistics.median(finite), min(finite), max(finite)
    none = f" + {len(found) - len(finite)} none" if len(finite) < len(found) else ""
    if fmt == "k":
        return f"{k(med)} ({k(low)}-{k(high)}){none}"
    return f"{med:{fmt}} ({low:{fmt}}-{high:{fmt}}){none}"


def verdict(ok: bool | None) -> str:
    return "" if ok is None else "met" if ok else "NOT MET"


def report(results: Results, reps: int, n: int, notes: dict[str, str]) -> None:
    recovery_n = recovery_items(n)
    print(
        f"\n{reps} repetition(s) of {n:,} items of {ITEM_SIZE} B (recovery: {recovery_n:,});"
        " cells: median (min-max) of the repetitions"
    )
    width = 26
    print(
        f"{'case':<{width}} {'items/s':<22} {'hub CPU µs/item':<20} "
        f"{'workers CPU µs/item':<20} lost/dup"
    )
    for case in CASES:
        if case in notes:
            print(f"{LABELS[case]:<{width}} {notes[case]}")
            continue
        if not results.get(case):
            continue
        lost = sum(r["lost"] for r in results[case])
        dup = sum(r["duplicated"] for r in results[case])
        print(
            f"{LABELS[case]:<{width}} {cell(results, case, 'rate'):<22} "
            f"{cell(results, case, 'hub_cpu_us', '.1f'):<20} "
            f"{cell(results, case, 'workers_cpu_us', '.1f'):<20} {lost:.0f}/{dup:.0f}"
        )
    pyzmq = median(results, "pyzmq", "rate")
    print("\nratios of medians, this run:")
    local, journaled = median(results, "local", "rate"), median(results, "journal", "rate")
    if local and journaled:
        print(f"  journal on / off (1 node, goal >= 0.8x): {journaled / local:.2f}x")
    if results.get("resume"):
        print(
            f"  resume of {RESUME_ITEMS:,} items killed at 50%: the rerun takes "
            f"{cell(results, 'resume', 'resume_s', '.2f')} s (half replayed, half redone)"
        )
    for case in ("local", "null", "curve", "mp"):
        rate = median(results, case, "rate")
        if rate is not None and pyzmq:
            print(f"  {LABELS[case]} / pyzmq ventilator: {rate / pyzmq:.2f}x")
    null, curve = median(results, "null", "rate"), median(results, "curve", "rate")
    if null and curve:
        print(f"  CURVE / NULL (2 workers): {curve / null:.2f}x")
    if results.get("recovery"):
        report_recovery(results["recovery"])
    report_acceptance(results, pyzmq, curve)


def report_recovery(runs: list[dict[str, float]]) -> None:
    print(
        f"\nrecovery: SIGKILL to one of two worker processes after {KILL_AT:.0%} of the"
        f" outputs; heartbeat {HEARTBEAT} s, timeout {TIMEOUT} s"
    )
    found = {"recovery": runs}
    rows = (
        ("(a) longest gap between outputs after the kill (s)", "gap_s", ".2f"),
        (f"(b) kill -> {WINDOW} s windows at {BACK_TO:.0%} of the prior rate (s)", "back_s", ".2f"),
        ("(d) kill -> every item taken before the kill is out (s)", "old_out_s", ".2f"),
        ("    rate before the kill (items/s)", "rate_before", "k"),
        ("    lowest 0.2 s window after the kill (share of that)", "lowest_share", ".2f"),
        ("    rate after (d), one worker process left (items/s)", "rate_after", "k"),
        ("    whole run (items/s)", "rate", "k"),
        ("    item attempts retried", "retried", ".0f"),
    )
    for label, key, fmt in rows:
        print(f"  {label:<60} {cell(found, 'recovery', key, fmt)}")
    counts = ", ".join(f"{r['lost']:.0f} lost/{r['duplicated']:.0f} dup" for r in runs)
    exact = sum(1 for r in runs if r["lost"] == 0 and r["duplicated"] == 0)
    print(f"  (c) every item out exactly once: {exact} of {len(runs)} runs ({counts})")


def report_acceptance(results: Results, pyzmq: float | None, curve: float | None) -> None:
    print("\nacceptance (from the issue), on these figures:")
    local = median(results, "local", "rate")
    shown = "-" if local is None else f"{k(local)}/s"
    ok = None if local is None else local >= 300_000
    print(f"  one node, 3 stages >= 300k items/s (goal 1M): {shown} {verdict(ok)}")
    ratio = None if curve is None or not pyzmq else curve / pyzmq
    shown = "-" if ratio is None else f"{ratio:.2f}x"
    ok = None if ratio is None else ratio >= 0.25
    print(
        f"  2 worker processes, CURVE >= 0.25x pyzmq ventilator (goal 1.0x): {shown} {verdict(ok)}"
    )
    limit = TIMEOUT + 1
    for key, what in (("back_s", "(b), back to speed"), ("old_out_s", "(d), items redone")):
        found = values(results, "recovery", key)
        # The worst run; nan (never back to speed) counts as worst.
        worst = None if not found else max(found) if all(v == v for v in found) else math.nan
        nans = sum(1 for v in found if v != v)
        shown = "-" if worst is None else f"{worst:.2f} s (worst run)"
        if nans:
            shown = f"not back within the run in {nans} of {len(found)} runs"
        ok = None if worst is None else worst <= limit
        print(f"  recovery <= node timeout + 1 s = {limit:.0f} s {what}: {shown} {verdict(ok)}")
    bad = sum(r["lost"] + r["duplicated"] for runs in results.values() for r in runs)
    print(
        f"  zero lost or duplicated outputs (every case, every run): {bad:.0f} {verdict(bad == 0)}"
    )


# ---------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    """Run the cases, interleaved, and print a table (median and min-max)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--items", type=int, default=ITEMS, help="items per run")
    parser.add_argument("--quick", action="store_true", help="1 rep, 30,000 items: a smoke test")
    parser.add_argument("--only", default=",".join(CASES), help="comma-separated cases")
    parser.add_argument("--child", choices=CASES, help=argparse.SUPPRESS)
    parser.add_argument("--keys", help=argparse.SUPPRESS)
    parser.add_argument("--zmq-vent", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--zmq-worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.zmq_vent is not None:
        zmq_ventilator(args.zmq_vent)
        return 0
    if args.zmq_worker is not None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        zmq_worker(*args.zmq_worker)
        return 0
    if args.child:
        figures = child(args.child, args.items, Path(args.keys or "."))  # parent: deadline
        sys.stdout.write(json.dumps(figures) + "\n")
        return 0
    cases = [c for c in CASES if c in args.only.split(",")]
    if not cases:
        parser.error(f"--only: choose among {', '.join(CASES)}")
    reps, n = (1, 30_000) if args.quick else (args.reps, args.items)
    notes: dict[str, str] = {}
    if "ray" in cases and (why := ray_missing()) is not None:
        print(f"ray: {why}", file=sys.stderr)
        notes["ray"] = f"ray: {why}"
        cases.remove("ray")
    results: Results = {case: [] for case in cases}
    with tempfile.TemporaryDirectory() as tmp:
        keys = Path(tmp)
        from trimq.auth import create_certificates

        for name in ("hub", "worker-1", "worker-2"):
            create_certificates(keys, name)
        for rep in range(reps):
            for case in cases:
                items = recovery_items(n) if case == "recovery" else n
                figures = run_case(case, items, keys)
                results[case].append(figures)
                shown = ", ".join(f"{key}={v:.4g}" for key, v in figures.items())
                print(f"rep {rep + 1} {case}: {shown}", file=sys.stderr, flush=True)
    report(results, reps, n, notes)
    return 0


if __name__ == "__main__":
    # Run as benchmarks.pipelines rather than __main__: the stage functions then
    # have the same importable name here and in the worker processes.
    from benchmarks.pipelines import main as _main

    raise SystemExit(_main())
