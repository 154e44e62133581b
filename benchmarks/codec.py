"""The actor codec's cost per payload, next to pickle and cloudpickle in the same run.

``python benchmarks/codec.py [--reps 5]``: encode+decode round trips of a few
payloads, each timed in a loop of ~0.3 s; the median of the repetitions in µs
per round trip, with min-max. Columns: the node codec decoding for a peer
with the ``code`` right, and for one without (the plain-data budgets'
scan, and no code at all: "-"), raw msgspec MessagePack (where the payload
is MessagePack's own: the floor), pickle and cloudpickle. The anchors
measured on these machines for a small dict: msgspec ~0.27, pickle ~0.87,
cloudpickle ~2.3 µs.
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import time
from collections.abc import Callable

import cloudpickle
import msgspec

from trimq import actors


class Job:
    def __init__(self, n: int) -> None:
        self.n = n


PAYLOADS: dict[str, object] = {
    "small dict": {"id": 7, "name": "sensor-3", "values": [1.5, 2.5, 3.5], "ok": True},
    "call args": (("hello", 42), {}),
    "nested call": (([1, 2], {"k": (1, 2)}), {"timeout": 1.5}),
    "64 KiB bytes": b"x" * 65536,
    "instance": actors.ExitReason("stopped"),  # an importable class: by reference
    "__main__ obj": Job(3),  # a class defined in __main__ travels by value
    "10k dicts": [{"id": i, "v": 0.5} for i in range(10_000)],
}


def _untrusted_round_trip(obj: object) -> Callable[[], object] | None:
    codec = actors.DefaultCodec()
    if codec.encode(obj)[0] == b"c":
        return None  # refused from such a peer

    def run() -> object:
        tag, data = codec.encode(obj)
        return codec.decode(tag, data)

    return run


def _msgspec_round_trip(obj: object) -> Callable[[], object] | None:
    encode, decode = msgspec.msgpack.encode, msgspec.msgpack.decode
    try:
        if decode(encode(obj)) != obj:
            return None  # not MessagePack's own types (a tuple comes back a list)
    except TypeError:
        return None
    return lambda: decode(encode(obj))


def _codec_round_trip(obj: object) -> Callable[[], object] | None:
    codec = actors.DefaultCodec()

    def run() -> object:
        tag, data = codec.encode(obj)
        return codec.decode(tag, data, allow_code=True)

    return run


def _pickle_round_trip(obj: object) -> Callable[[], object] | None:
    return lambda: pickle.loads(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


def _cloudpickle_round_trip(obj: object) -> Callable[[], object] | None:
    return lambda: pickle.loads(cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


def _time(fn: Callable[[], object]) -> float:
    n = 1000
    while True:  # grow the loop until it lasts ~0.3 s
        start = time.perf_counter()
        for _ in range(n):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed > 0.3:
            return elapsed / n * 1e6
        n *= 2


def main(argv: list[str] | None = None) -> int:
    """Print a table: µs per encode+decode, median (min-max) of the repetitions."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args(argv)
    makers = {
        "trimq (code right)": _codec_round_trip,
        "trimq (no code)": _untrusted_round_trip,
        "msgspec": _msgspec_round_trip,
        "pickle": _pickle_round_trip,
        "cloudpickle": _cloudpickle_round_trip,
    }
    print(f"{'payload':<14} " + " ".join(f"{name:<22}" for name in makers))
    for label, obj in PAYLOADS.items():
        cells = []
        for make in makers.values():
            fn = make(obj)
            if fn is None:
                cells.append("-")
                continue
            figures = [_time(fn) for _ in range(args.reps)]
            med = statistics.median(figures)
            cells.append(f"{med:.2f} ({min(figures):.2f}-{max(figures):.2f})")
        print(f"{label:<14} " + " ".join(f"{cell:<22}" for cell in cells))
    print("µs per encode+decode round trip")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
