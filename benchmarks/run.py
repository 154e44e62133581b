"""Run the trimq benchmark suite: ``python benchmarks/run.py [--quick] [--only ...]``.

Method (see ``benchmarks/README.md``):

* Every figure is a ratio against pyzmq and zmq.asyncio measured in the same
  invocation. Repetitions are interleaved (trimq, pyzmq, zmq.asyncio, trimq,
  …, at least 3 each); cells show the median with min-max.
* tcp/ipc PUSH→PULL: the receiver binds (``tcp://127.0.0.1:*`` or a fresh
  ipc path) in its own process and prints the endpoint; only then is the
  sender process started and connected, so nothing sleeps. The sender sends
  W warm-up messages then N timed ones (the last one marked); the receiver
  starts its clock at the first timed message and stops it at the last,
  checks the mark, and prints ``(N - 1) / elapsed`` as msgs/s.
* One call per message: plain blocking ``send``/``recv`` for pyzmq, one
  awaited ``send``/``recv`` for trimq and zmq.asyncio.
* N is calibrated per implementation and case with a ~0.4 s run, so that
  each timed run lasts about 2 s (1-3 s with drift); a repetition that strays
  far from that re-sizes the later ones (msgs/s is normalised by N anyway).
* inproc: both ends in one process (two trio tasks, two asyncio tasks, or two
  pyzmq threads), with default placement and pinned by ``taskset -c 0``.
* REQ/REP latency: REP and REQ in separate processes; each round trip after
  a warm-up is timed alone with ``time.perf_counter_ns``; median and p99.
* CURVE (``--only curve``): tcp PUSH→PULL and REQ/REP with CURVE, each
  beside the same case with NULL; every repetition runs one implementation's
  NULL and CURVE back to back. The keys are generated once here and handed to
  the workers in their jobs; the handshake is over before the warm-up ends.
  The report gives trimq÷pyzmq under CURVE and CURVE÷NULL per implementation.
* Every worker process runs under a deadline and only our own workers are
  killed, through their process handles.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._main import main

if __name__ == "__main__":
    raise SystemExit(main())
