"""The journal: round trips across close and reopen, a signature of another pipeline
refused, a changed source detected, crashes (an abandoned object, SIGKILL) losing only
what was not flushed, maybe_flush's thresholds, finish()."""

from __future__ import annotations

import os
import pickle
import signal
import sqlite3
import subprocess
import sys
import textwrap
from array import array
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from trimq._errors import TrimqError
from trimq.pipelines import Failure
from trimq.pipelines._journal import ADMITTED, DONE, FAILED, Journal, JournalError, dumps

SIGNATURE = "etl: parse(function) enrich(function) store(batch)"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def rows(path: Path) -> dict[int, int]:
    """Each item's state, read from the tables with a connection of its own: done or
    failed as it was last (done chunks and failures share one sequence), else admitted."""
    conn = sqlite3.connect(path)
    try:
        admitted = "SELECT first_index, last_index, ids FROM admitted_chunks"
        states = {i: ADMITTED for row in conn.execute(admitted) for i in unpack(*row)}
        done = "SELECT id, first_index, last_index, ids FROM done_chunks"
        events = [(seq, i, DONE) for seq, *row in conn.execute(done) for i in unpack(*row)]
        events += [(seq, i, FAILED) for seq, i in conn.execute("SELECT id, idx FROM failures")]
        for _, index, state in sorted(events):
            states[index] = state
        return states
    finally:
        conn.close()


def unpack(first: int, last: int, blob: bytes | None) -> Sequence[int]:
    """A chunk's indexes: packed, or (no blob) all of first..last."""
    if blob is None:
        return range(first, last + 1)
    ids = array("q")
    ids.frombytes(blob)
    return ids


def test_round_trip_across_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "run.journal"
    with Journal.open(path, SIGNATURE) as journal:
        journal.admitted([0, 1, 2, 3, 4], ["a", "b", "c", "d", "e"])
        journal.done_many([0, 2], ["A", "C"])
        journal.done(1, [((0,), "b0"), ((1,), "b1")])
        journal.failed(3, Failure("d", "enrich", ValueError("bad d"), 3, 3))
        journal.flush()
        journal.done(4, "E")  # written by close()
    journal = Journal.open(path, SIGNATURE)
    state = journal.state()
    assert dict(state.completed) == {0: "A", 1: [((0,), "b0"), ((1,), "b1")], 2: "C", 4: "E"}
    assert list(state.completed) == [0, 1, 2, 4]
    assert 3 not in state.completed
    assert state.admitted == set()
    assert not state.finished
    [failure] = state.failed.values()
    assert (failure.item, failure.stage, failure.attempts, failure.index) == ("d", "enrich", 3, 3)
    assert isinstance(failure.error, ValueError)
    assert str(failure.error) == "bad d"
    journal.close()
    assert rows(path) == {0: DONE, 1: DONE, 2: DONE, 3: FAILED, 4: DONE}


def test_in_flight_items_come_back_admitted(tmp_path: Path) -> None:
    path = tmp_path / "run.journal"
    with Journal.open(path, SIGNATURE) as journal:
        journal.admitted(range(10), [f"v{i}" for i in range(10)])
        journal.flush()
        journal.done_many(range(5), range(5))  # 5..9 still in flight
    with Journal.open(path, SIGNATURE) as journal:
        state = journal.state()
        assert state.admitted == {5, 6, 7, 8, 9}
        assert dict(state.completed) == {i: i for i in range(5)}
        # The rerun does them again; this time they finish.
        journal.admitted([5, 6, 7, 8, 9], [f"v{i}" for i in range(5, 10)])
        journal.done_many([5, 6, 7, 8, 9], [5, 6, 7, 8, 9])
    with Journal.open(path, SIGNATURE) as journal:
        state = journal.state()
        assert state.admitted == set()
        assert dict(state.completed) == {i: i for i in range(10)}


def test_an_item_done_twice_in_two_chunks_is_what_it_was_last(tmp_path: Path) -> None:
    path = tmp_path / "run.journal"
    with Journal.open(path, SIGNATURE) as journal:
        journal.admitted(range(8), [f"v{i}" for i in range(8)])
        journal.done_many([4, 5, 6, 7], ["e", "f", "g", "h"])  # done out of order
        journal.done_many([0, 1, 2, 3], ["a", "b", "c", "d"])
    with Journal.open(path, SIGNATURE) as journal:  # a rerun does 2..5 again
        journal.admitted([2, 3, 4, 5], ["v2", "v3", "v4", "v5"])
        journal.done_many([2, 3, 4, 5], ["C", "D", "E", "F"])
        journal.done(3, "D again")  # and 3 once more, one by one
    with Journal.open(path, SIGNATURE) as journal:
        state = journal.state()
        assert list(state.completed) == list(range(8))
        assert dict(state.completed) == {
            0: "a", 1: "b", 2: "C", 3: "D again", 4: "E", 5: "F", 6: "g", 7: "h",
        }  # fmt: skip
        assert len(state.completed) == 8
        assert state.admitted == set()
        assert state.failed == {}


def test_done_and_failed_again_in_the_order_written(tmp_path: Path) -> None:
    path = tmp_path / "run.journal"
    with Journal.open(path, SIGNATURE) as journal:
        journal.admitted([0, 1, 2], ["a", "b", "c"])
        journal.failed(0, Failure("a", "parse", ValueError("a"), 1, 0))
        journal.done_many([1, 2], ["B", "C"])
    with Journal.open(path, SIGNATURE) as journal:  # a rerun retries 0, redoes 1 and 2
        journal.done(0, "A")
        journal.failed(1, Failure("b", "parse", ValueError("b"), 1, 1))
        journal.flush()
        journal.done(1, "B at last")  # in another flush
        journal.done_many([2], ["C2"])
        journal.failed(2, Failure("c", "parse", ValueError("c"), 1, 2))  # the same flush
    with Journal.open(path, SIGNATURE) as journal:
        state = journal.state()
        assert dict(state.completed) == {0: "A", 1: "B at last"}
        assert list(state.failed) == [2]
        assert state.admitted == set()


def test_outputs_are_decoded_by_chunk(tmp_path: Path) -> None:
    path = tmp_path / "run.journal"
    calls: list[bytes] = []

    def decode(blob: bytes) -> Any:
        calls.append(blob)
        return pickle.loads(blob)

    with Journal.open(path, SIGNATURE, decode=decode) as journal:
        journal.admitted(range(1000), range(1000))
        journal.done_many(range(500), [i * 2 for i in range(500)])
        journal.done_many(range(500, 1000), [i * 2 for i in range(500, 1000)])
        state = journal.state()
        assert calls == []  # nothing decoded yet
        assert sum(state.completed.values()) == sum(i * 2 for i in range(1000))
        assert len(calls) == 2


def test_outputs_that_cannot_be_decoded(tmp_path: Path) -> None:
    path = tmp_path / "run.journal"
    with Journal.open(path, SIGNATURE, encode=lambda obj: b"garbage") as journal:
        journal.done_many([0, 1], ["a", "b"])
        journal.done(2, "c")
        state = journal.state()
    for index in range(3):
        with pytest.raises(JournalError, match=f"outputs of item {index} cannot be decoded"):
            state.completed[index]


def test_a_journal_of_another_layout_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "old.journal"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute("CREATE TABLE items (idx INTEGER PRIMARY KEY, state INTEGER)")
    conn.executemany("INSERT INTO meta VALUES (?, ?)", [("schema", "1"), ("signature", SIGNATURE)])
    conn.commit()
    conn.close()
    with pytest.raises(JournalError, match=r"has layout '1'.*delete the file"):
        Journal.open(path, SIGNATURE)


def test_a_journal_of_another_pipeline_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "run.journal"
    Journal.open(path, SIGNATURE).close()
    other = "etl: parse(function) store(batch)"
    with pytest.raises(JournalError) as info:
        Journal.open(path, other)
    message = str(info.value)
    assert SIGNATURE in message  # which pipeline it belongs to
    assert other in message
    assert "delete the file or pass another path" in message
    assert isinstance(info.value, TrimqError)
    Journal.open(path, SIGNATURE).close()  # still the pipeline's own


def test_a_file_that_is_not_a_journal_is_refused(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"not a database, not at all" * 100)
    with pytest.raises(JournalError, match="cannot open the journal"):
        Journal.open(garbage, SIGNATURE)
    foreign = tmp_path / "foreign.sqlite"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    with pytest.raises(JournalError, match="not a pipeline's journal"):
        Journal.open(foreign, SIGNATURE)


def test_check_detects_a_changed_source_value(tmp_path: Path) -> None:
    path = tmp_path / "run.journal"
    source = [{"n": i, "line": f"row {i}"} for i in range(20)]
    with Journal.open(path, SIGNATURE) as journal:
        journal.admitted(range(10), source[:10])
        journal.admitted(range(10, 20), source[10:])
        journal.done_many(range(20), range(20))
    with Journal.open(path, SIGNATURE) as journal:
        # The same values (equal, not the same objects) pass.
        journal.check_many(range(20), [{"n": i, "line": f"row {i}"} for i in range(20)])
        journal.check(3, {"n": 3, "line": "row 3"})
        journal.check(25, "an index the journal never saw")
        changed = [dict(value) for value in source]
        changed[7]["line"] = "row 7, edited"
        changed[12]["line"] = "row 12, edited"
        # One fingerprint per admitted chunk: the chunk is named, the lowest first.
        with pytest.raises(
            JournalError, match=r"indexes 0\.\.9: one of items 0\.\.9 differs.*delete"
        ):
            journal.check_many(range(20), changed)
        with pytest.raises(JournalError, match=r"one of items 10\.\.19 differs"):
            journal.check_many(range(10, 20), changed[10:])
        journal.check_many(range(10), source[:10])
        journal.check_many(list(range(10)), tuple(source[:10]))  # a list and a tuple alike


def test_check_puts_together_checks_in_other_chunks(tmp_path: Path) -> None:
    path = tmp_path / "run.journal"
    source: list[Any] = [f"line {i}" for i in range(30)]
    source[20] = ["mutable", 20]
    with Journal.open(path, SIGNATURE) as journal:
        for start in range(0, 30, 10):
            journal.admitted(range(start, start + 10), source[start : start + 10])
    with Journal.open(path, SIGNATURE) as journal:
        # Chunks of 4 on the rerun: each admitted chunk is compared once complete.
        for start in range(0, 30, 4):
            journal.check_many(range(start, min(start + 4, 30)), source[start : start + 4])
        assert journal._partial == {}
        changed = list(source)
        changed[15] = "line 15, edited"
        journal.check_many(range(12, 16), changed[12:16])  # 10..19 is not complete yet
        journal.check_many(range(16), changed[:16])  # the first chunk passes
        with pytest.raises(JournalError, match=r"one of items 10\.\.19 differs"):
            journal.check_many(range(16, 20), changed[16:20])
        # A value mutated after its check: what was checked was a copy of it.
        value = ["mutable", 20]
        journal.check(20, value)
        value.append("changed in place")
        journal.check_many(range(21, 30), source[21:30])
        assert journal._partial == {}


def test_check_sees_rows_not_flushed_yet(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "run.journal", SIGNATURE) as journal:
        journal.admitted([0], ["zero"])
        journal.check(0, "zero")
        with pytest.raises(JournalError, match="at index 0"):
            journal.check(0, "one")


def test_no_fingerprints_no_check(tmp_path: Path) -> None:
    path = tmp_path / "run.journal"
    with Journal.open(path, SIGNATURE, fingerprints=False) as journal:
        journal.admitted([0, 1], ["a", "b"])
        journal.check(0, "changed")
    with Journal.open(path, SIGNATURE) as journal:
        journal.check(0, "changed")  # no fingerprint recorded: nothing to compare
        assert journal.state().admitted == {0, 1}


def test_values_pickle_cannot_fingerprint_are_not_checked(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "run.journal", SIGNATURE) as journal:
        journal.admitted([0, 1], [lambda: 1, "plain"])  # a lambda: no fingerprint
        journal.flush()
        journal.check(0, "anything")
        with pytest.raises(JournalError, match="at index 1"):
            journal.check(1, "not plain")


def test_abandoned_journal_loses_only_what_was_not_flushed(tmp_path: Path) -> None:
    path = tmp_path / "run.journal"
    crashed = Journal.open(path, SIGNATURE)
    crashed.admitted(range(100), range(100))
    crashed.done_many(range(60), [i * 10 for i in range(60)])
    crashed.flush()
    crashed.done_many(range(60, 90), [i * 10 for i in range(60, 90)])  # never flushed
    crashed.failed(95, Failure(95, "parse", KeyError(95), 1, 95))  # nor this
    try:
        # The process "dies" here: no close(), another connection reads the file.
        assert rows(path) == {i: DONE if i < 60 else ADMITTED for i in range(100)}
        with Journal.open(path, SIGNATURE) as journal:
            state = journal.state()
            assert dict(state.completed) == {i: i * 10 for i in range(60)}
            assert state.admitted == set(range(60, 100))
            assert state.failed == {}
    finally:
        crashed._conn.close()  # without flushing, as a dead process would


def test_maybe_flush_thresholds(tmp_path: Path) -> None:
    path = tmp_path / "run.journal"
    clock = FakeClock()
    journal = Journal.open(path, SIGNATURE, clock=clock, flush_rows=10, flush_seconds=2.0)
    assert not journal.maybe_flush()  # nothing pending, however long ago
    clock.now += 100
    assert not journal.maybe_flush()
    # Since the last commit (at the open) 100 s passed: the first rows go at once.
    journal.done_many([0], ["a"])
    assert journal.maybe_flush()
    assert journal.pending == 0
    assert rows(path) == {0: DONE}
    # Rows: 9 pending is below 10.
    journal.done_many(range(1, 10), "bcdefghij")
    assert journal.pending == 9
    assert not journal.maybe_flush()
    journal.done(10, "k")
    assert journal.maybe_flush()
    assert len(rows(path)) == 11
    # Time: 1.9 s is below 2 s, 2 s is not.
    journal.done(11, "l")
    clock.now += 1.9
    assert not journal.maybe_flush()
    clock.now += 0.1
    assert journal.maybe_flush()
    assert len(rows(path)) == 12
    # The time counts from the last commit, not from the first pending row.
    clock.now += 1.5
    journal.done(12, "m")
    clock.now += 0.5
    assert journal.maybe_flush()
    journal.close()
    assert len(rows(path)) == 13


def test_an_item_admitted_and_done_between_flushes_keeps_its_fingerprint(
    tmp_path: Path,
) -> None:
    path = tmp_path / "run.journal"
    with Journal.open(path, SIGNATURE) as journal:
        journal.admitted([0, 1], ["a", "b"])
        journal.done(0, "A")
        assert journal.flush() == 3  # the admitted chunk of 2, 0 done
        journal.done(1, "B")
        assert journal.flush() == 1
        journal.check_many([0, 1], ["a", "b"])  # the chunk's fingerprint kept
        with pytest.raises(JournalError, match=r"one of items 0\.\.1 differs"):
            journal.check_many([0, 1], ["a", "c"])


def test_outputs_and_failures_that_cannot_be_encoded(tmp_path: Path) -> None:
    path = tmp_path / "run.journal"

    def strict(obj: Any) -> bytes:  # refuses what holds a set, as a codec may
        if isinstance(obj, list):  # done_many's outputs, encoded as one list
            for item in obj:
                strict(item)
        if isinstance(obj, set) or (isinstance(obj, Failure) and isinstance(obj.item, set)):
            raise TypeError("no sets")
        return pickle.dumps(obj)

    with Journal.open(path, SIGNATURE, encode=strict) as journal:
        journal.admitted([0, 1, 2], ["a", "b", "c"])
        journal.done_many([0, 1], ["A", {"a set"}])
        journal.failed(2, Failure({"c"}, "store", OSError("disk"), 2, 2))
    with Journal.open(path, SIGNATURE) as journal:
        state = journal.state()
    assert dict(state.completed) == {0: "A"}
    assert state.admitted == {1}  # not journaled as done: done again on a rerun
    failure = state.failed[2]
    assert failure.item == repr({"c"})
    assert isinstance(failure.error, RuntimeError)
    assert str(failure.error) == "OSError: disk"


def test_dumps_falls_back_to_cloudpickle() -> None:
    assert pickle.loads(dumps({"n": 1})) == {"n": 1}
    assert pickle.loads(dumps(lambda x: x + 1))(1) == 2


def test_finish(tmp_path: Path) -> None:
    path = tmp_path / "run.journal"
    with Journal.open(path, SIGNATURE) as journal:
        journal.admitted([0, 1], ["a", "b"])
        journal.done_many([0, 1], ["A", "B"])
        assert not journal.state().finished
        journal.finish()
        journal.finish()  # again: nothing
        assert journal.finished
        assert journal.state().finished
        with pytest.raises(JournalError, match="finished"):
            journal.done(2, "C")
    with Journal.open(path, SIGNATURE) as journal:
        assert journal.finished
        state = journal.state()
        assert state.finished
        assert dict(state.completed) == {0: "A", 1: "B"}


def test_closed_journal(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / "run.journal", SIGNATURE)
    journal.close()
    journal.close()
    with pytest.raises(JournalError, match="closed"):
        journal.admitted([0], ["a"])
    with pytest.raises(JournalError, match="closed"):
        journal.state()
    assert "closed" in repr(journal)


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="flush_rows"):
        Journal.open(tmp_path / "a", SIGNATURE, flush_rows=0)
    with pytest.raises(ValueError, match="flush_seconds"):
        Journal.open(tmp_path / "b", SIGNATURE, flush_seconds=-1)
    with Journal.open(tmp_path / "c", SIGNATURE) as journal:
        with pytest.raises(ValueError, match="2 ids but 1"):
            journal.done_many([0, 1], ["A"])
        with pytest.raises(ValueError):
            journal.admitted([0, 1], ["a"])


CHILD = textwrap.dedent(
    """
    import sys
    from trimq.pipelines._journal import Journal

    journal = Journal.open(sys.argv[1], sys.argv[2], flush_rows=10**9)
    index = 0
    while True:
        ids = list(range(index, index + 2000))
        journal.admitted(ids, [{"n": i, "line": "x" * 50} for i in ids])
        journal.done_many(ids, [{"n": i, "out": "y" * 50} for i in ids])
        index += 2000
        if index % 10_000 == 0:
            journal.flush()
            print("flushed", index, flush=True)
    """
)


def test_sigkill_while_writing_loses_nothing_committed(tmp_path: Path) -> None:
    path = tmp_path / "run.journal"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), SIGNATURE],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    last = 0
    try:
        assert child.stdout is not None
        for _ in range(5):
            line = child.stdout.readline()
            assert line.startswith("flushed "), (line, child.stderr and child.stderr.read())
            last = int(line.split()[1])
    finally:
        child.send_signal(signal.SIGKILL)  # most likely in the middle of the next batch
        child.communicate()
    assert child.returncode == -signal.SIGKILL
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        conn.close()
    done = sum(state == DONE for state in rows(path).values())
    assert done >= last
    with Journal.open(path, SIGNATURE) as journal:
        state = journal.state()
        assert len(state.completed) == done
        assert state.completed[last - 1] == {"n": last - 1, "out": "y" * 50}
        journal.check(last - 1, {"n": last - 1, "line": "x" * 50})
