"""Supervision: strategies, restart policies, intensity and escalation, shutdown timeouts."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from trimq import actors
from trimq.actors import ActorRef, ChildSpec, Supervisor

TIMEOUT = 5


class Worker(actors.Actor):
    """Counts messages; crashes on demand; records its lifecycle in a shared log."""

    def __init__(self, log: list[str], label: str) -> None:
        self.log = log
        self.label = label
        self.count = 0

    def on_start(self) -> None:
        self.log.append(f"start {self.label}")

    def on_stop(self) -> None:
        self.log.append(f"stop {self.label}")

    def bump(self) -> int:
        self.count += 1
        return self.count

    def crash(self) -> None:
        raise RuntimeError(f"{self.label} crashed")


class Slow(actors.Actor):
    """An on_stop that takes longer than its shutdown time."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def on_stop(self) -> None:
        try:
            await trio.sleep(60)
        except trio.Cancelled:
            self.log.append("slow on_stop cancelled")
            raise


class Storm(actors.Actor):
    """Fails on every message."""

    def work(self) -> None:
        raise ValueError("always")


def spec(log: list[str], label: str, **kw: Any) -> ChildSpec:
    return ChildSpec(Worker, (log, label), name=label, **kw)


async def restarted(node: actors.Node, name: str, times: int, log: list[str]) -> None:
    """Wait until ``name`` has started ``times`` times in all."""
    with trio.fail_after(TIMEOUT):
        while log.count(f"start {name}") < times:
            await trio.testing.wait_all_tasks_blocked()


async def test_one_for_one_restarts_only_the_crashed_child_behind_the_same_ref() -> None:
    log: list[str] = []
    async with actors.open_node() as node:
        sup = await node.spawn(Supervisor, [spec(log, "a"), spec(log, "b")], name="sup")
        a, b = await sup.ask("children")
        assert (a.name, b.name) == ("a", "b")
        assert await a.ask("bump") == 1
        assert await b.ask("bump") == 1
        with pytest.raises(RuntimeError, match="a crashed"):
            await a.ask("crash")
        await restarted(node, "a", 2, log)
        assert await a.ask("bump") == 1  # a fresh instance behind the same ref
        assert await b.ask("bump") == 2  # untouched
        assert log == ["start a", "start b", "stop a", "start a"]


async def test_queued_messages_go_to_the_new_incarnation() -> None:
    log: list[str] = []
    async with actors.open_node() as node:
        sup = await node.spawn(Supervisor, [spec(log, "a")])
        (a,) = await sup.ask("children")
        await a.tell("crash")
        for _ in range(3):
            await a.tell("bump")  # queued behind the crash
        await restarted(node, "a", 2, log)
        assert await a.ask("bump") == 4


async def test_one_for_all_restarts_every_child() -> None:
    log: list[str] = []
    async with actors.open_node() as node:
        specs = [spec(log, "a"), spec(log, "b"), spec(log, "c")]
        sup = await node.spawn(Supervisor, specs, strategy="one_for_all")
        a, b, c = await sup.ask("children")
        for ref in (a, b, c):
            await ref.ask("bump")
        await b.tell("crash")
        await restarted(node, "a", 2, log)
        await restarted(node, "c", 2, log)
        await restarted(node, "b", 2, log)
        assert [await ref.ask("bump") for ref in (a, b, c)] == [1, 1, 1]
        # The others stop newest first; all restart in start order.
        assert log[3:] == ["stop b", "stop c", "stop a", "start a", "start b", "start c"]


async def test_rest_for_one_restarts_the_child_and_those_after_it() -> None:
    log: list[str] = []
    async with actors.open_node() as node:
        specs = [spec(log, "a"), spec(log, "b"), spec(log, "c")]
        sup = await node.spawn(Supervisor, specs, strategy="rest_for_one")
        a, b, c = await sup.ask("children")
        for ref in (a, b, c):
            await ref.ask("bump")
        await b.tell("crash")
        await restarted(node, "c", 2, log)
        assert [await ref.ask("bump") for ref in (a, b, c)] == [2, 1, 1]
        assert log[3:] == ["stop b", "stop c", "start b", "start c"]


@pytest.mark.parametrize(
    ("restart", "how", "restarted_"),
    [
        ("permanent", "stop", True),
        ("permanent", "crash", True),
        ("transient", "stop", False),
        ("transient", "crash", True),
        ("transient", "kill", True),
        ("temporary", "crash", False),
        ("temporary", "stop", False),
    ],
)
async def test_restart_policies(restart: str, how: str, restarted_: bool) -> None:
    log: list[str] = []
    async with actors.open_node() as node:
        sup = await node.spawn(Supervisor, [spec(log, "a", restart=restart)])
        (a,) = await sup.ask("children")
        if how == "crash":
            await a.tell("crash")
        else:
            await getattr(a, how)()
        await trio.testing.wait_all_tasks_blocked()
        if restarted_:
            await restarted(node, "a", 2, log)
            assert await a.ask("bump") == 1
            assert await sup.ask("children") == [a]
        else:
            assert await node.lookup("a") is None
            assert await sup.ask("children") == []
            with pytest.raises(actors.ActorNotFoundError):
                await a.ask("bump")


async def test_a_crash_storm_trips_the_intensity_and_escalates_up_a_three_level_tree(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    async with actors.open_node() as node:
        leaf = ChildSpec(Storm, name="storm")
        middle = ChildSpec(Supervisor, ([leaf],), {"max_restarts": 2, "period": 10}, name="mid")
        watcher_log: list[str] = []
        top = await node.spawn(
            Supervisor, [middle, spec(log, "sibling")], max_restarts=1, period=10, name="top"
        )
        root_watch = await node.spawn(Watcher, watcher_log)
        await root_watch.ask("watch", top)
        storm = actors.ActorRef(node.name, "storm")
        # Each message crashes the leaf. mid allows 2 restarts in 10 s, so the
        # 3rd crash makes mid crash; top restarts mid (1 allowed) with a fresh
        # leaf; the next storm trips mid again, and top gives up too.
        crashes = 0
        with trio.fail_after(TIMEOUT):
            while await node.lookup("top") is not None:
                try:
                    await storm.tell("work")
                    crashes += 1
                except (actors.ActorNotFoundError, actors.ActorStoppedError):
                    pass
                await trio.testing.wait_all_tasks_blocked()
        assert crashes >= 6
        assert await node.lookup("mid") is None
        assert await node.lookup("sibling") is None  # top's other child ended with it
        assert log == ["start sibling", "stop sibling"]
        await trio.testing.wait_all_tasks_blocked()
        assert watcher_log == ["top crashed: RestartIntensityError"]


async def test_restarts_spread_beyond_the_period_do_not_trip_the_intensity(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    async with actors.open_node() as node:
        sup = await node.spawn(Supervisor, [spec(log, "a")], max_restarts=1, period=5, name="s")
        (a,) = await sup.ask("children")
        for n in range(4):
            await a.tell("crash")
            await restarted(node, "a", n + 2, log)
            await trio.sleep(6)
        assert await node.lookup("s") is not None


async def test_a_child_that_overruns_its_shutdown_time_is_killed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    async with actors.open_node() as node:
        sup = await node.spawn(Supervisor, [ChildSpec(Slow, (log,), name="slow", shutdown=2.0)])
        (slow,) = await sup.ask("children")
        start = trio.current_time()
        assert await sup.ask("terminate_child", slow) is True
        assert trio.current_time() - start == pytest.approx(2.0, abs=0.1)
        assert log == ["slow on_stop cancelled"]
        assert await node.lookup("slow") is None


async def test_children_added_and_removed_at_run_time() -> None:
    log: list[str] = []
    async with actors.open_node() as node:
        sup = await node.spawn(Supervisor)
        a = await sup.ask("start_child", spec(log, "a"))
        b = await sup.ask("start_child", spec(log, "b"))
        assert await sup.ask("children") == [a, b]
        assert await sup.ask("terminate_child", a) is True
        assert await sup.ask("children") == [b]
        assert await node.lookup("a") is None
        assert await sup.ask("terminate_child", a) is False
        await b.tell("crash")
        await restarted(node, "b", 2, log)
        assert log == ["start a", "start b", "stop a", "stop b", "start b"]


async def test_stopping_a_supervisor_stops_its_children_newest_first() -> None:
    log: list[str] = []
    async with actors.open_node() as node:
        sup = await node.spawn(Supervisor, [spec(log, "a"), spec(log, "b")])
        await sup.stop()
        assert log == ["start a", "start b", "stop b", "stop a"]
        assert node.actors == []


async def test_killing_a_supervisor_still_ends_its_children() -> None:
    log: list[str] = []
    async with actors.open_node() as node:
        sup = await node.spawn(Supervisor, [spec(log, "a"), spec(log, "b")])
        await sup.kill()
        await trio.testing.wait_all_tasks_blocked()
        assert node.actors == []
        assert log == ["start a", "start b", "stop b", "stop a"]


class Watcher(actors.Actor):
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def watch(self, ref: actors.ActorRef) -> None:
        self.monitor(ref)

    def on_down(self, ref: actors.ActorRef, reason: actors.ExitReason) -> None:
        error = type(reason.error).__name__ if reason.error else ""
        self.log.append(f"{ref.name} {reason.kind}: {error}".rstrip(": "))


class Recovering(Worker):
    """Recovers differently after a restart, with the reason its predecessor ended."""

    def on_restart(self, reason: actors.ExitReason) -> None:
        self.log.append(f"restart {self.label} after {reason.kind}: {reason.error}")


async def test_on_restart_gets_the_previous_incarnations_exit_reason() -> None:
    log: list[str] = []
    async with actors.open_node() as node:
        sup = await node.spawn(
            Supervisor, [ChildSpec(Recovering, (log, "r"), name="r")], name="sup"
        )
        (r,) = await sup.ask("children")
        with pytest.raises(RuntimeError):
            await r.ask("crash")
        with trio.fail_after(TIMEOUT):
            while not any(line.startswith("restart") for line in log):
                await trio.testing.wait_all_tasks_blocked()
        assert await r.ask("bump") == 1
        await r.kill()
        with trio.fail_after(TIMEOUT):
            while sum(line.startswith("restart") for line in log) < 2:
                await trio.testing.wait_all_tasks_blocked()
    # on_start ran once, for the first incarnation; on_restart replaced it after.
    assert log[:3] == ["start r", "stop r", "restart r after crashed: r crashed"]
    assert log[3] == "restart r after killed: None"


async def test_a_supervisor_reports_what_it_does_with_its_children() -> None:
    log: list[str] = []
    async with actors.open_node() as node, node.events(actors.REPORTS) as reports:

        async def report() -> tuple[str, ActorRef | None, str | None]:
            with trio.fail_after(TIMEOUT):
                topic, r = await reports.receive()
            assert topic == "trimq.supervisor.sup"
            assert isinstance(r, actors.SupervisorReport)
            assert r.supervisor == sup
            return r.what, r.child, r.reason.kind if r.reason else None

        sup = await node.spawn(
            Supervisor, [spec(log, "a"), spec(log, "b", restart="transient")], name="sup"
        )
        a, b = await sup.ask("children")
        assert [await report(), await report()] == [("started", a, None), ("started", b, None)]
        with pytest.raises(RuntimeError):
            await a.ask("crash")
        assert await report() == ("restarted", a, "crashed")
        await b.stop()  # transient, stopped normally: not restarted
        assert await report() == ("ended", b, "stopped")
        c = await sup.ask("start_child", spec(log, "c"))
        assert await report() == ("started", c, None)
        assert await sup.ask("terminate_child", c) is True
        assert await report() == ("ended", c, None)


async def test_reports_never_make_a_supervisor_wait_for_a_slow_reader() -> None:
    log: list[str] = []
    async with actors.open_node() as node, node.events(actors.REPORTS, buffer=1) as reports:
        sup = await node.spawn(Supervisor, name="sup")
        # Nobody reads the reports: the buffer, the tap's mailbox, then the
        # node's event bus (2,000 events) fill up. Reports beyond are dropped.
        with trio.fail_after(TIMEOUT):
            for _ in range(1_100):
                child = await sup.ask("start_child", spec(log, "c"))
                assert await sup.ask("terminate_child", child) is True
        assert await sup.ask("children") == []  # the supervisor still answers
        _, first = await reports.receive()
        assert first.what == "started"


class Starting(actors.Actor):
    """An on_start that waits until it is killed."""

    def __init__(self, started: trio.Event) -> None:
        self.started = started

    async def on_start(self) -> None:
        self.started.set()
        await trio.sleep_forever()


async def test_a_child_killed_while_it_starts_fails_its_supervisors_start() -> None:
    # The supervisor waits in spawn() for the child's on_start, so it cannot
    # take the child's exit notice: the spawn must fail rather than wait for a
    # verdict the supervisor cannot give.
    started = trio.Event()
    async with actors.open_node() as node:
        with trio.fail_after(TIMEOUT):
            async with trio.open_nursery() as nursery:

                async def start_supervisor() -> None:
                    specs = [ChildSpec(Starting, (started,), name="child")]
                    with pytest.raises(actors.ActorStoppedError, match="stopped while starting"):
                        await node.spawn(Supervisor, specs, name="sup")

                nursery.start_soon(start_supervisor)
                await started.wait()
                child = node.lookup_local("child")
                assert child is not None
                await child.kill()
        assert node.actors == []  # neither is left behind
