"""Links: a crash or kill of one linked actor crashes the other; a graceful stop does not."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from trimq import actors

from .conftest import runtime_of


class Peer(actors.Actor):
    def __init__(self, log: list[str], label: str) -> None:
        self.log = log
        self.label = label

    def tie(self, ref: actors.ActorRef) -> None:
        self.link(ref)

    def untie(self, ref: actors.ActorRef) -> None:
        self.unlink(ref)

    def crash(self) -> None:
        raise RuntimeError(f"{self.label} failed")

    async def wait_forever(self) -> None:
        await trio.sleep_forever()

    def on_stop(self) -> None:
        self.log.append(f"stop {self.label}")


class Watcher(actors.Actor):
    def __init__(self) -> None:
        self.reasons: dict[str, actors.ExitReason] = {}

    def watch(self, ref: actors.ActorRef) -> None:
        self.monitor(ref)

    def on_down(self, ref: actors.ActorRef, reason: actors.ExitReason) -> None:
        self.reasons[ref.name] = reason

    def seen(self) -> dict[str, actors.ExitReason]:
        return dict(self.reasons)


async def _setup(node: actors.Node, log: list[str]) -> tuple[actors.ActorRef, ...]:
    a = await node.spawn(Peer, log, "a", name="a")
    b = await node.spawn(Peer, log, "b", name="b")
    watcher = await node.spawn(Watcher)
    await watcher.ask("watch", a)
    await watcher.ask("watch", b)
    await a.ask("tie", b)
    return a, b, watcher


@pytest.mark.parametrize("how", ["crash", "kill"])
async def test_an_abnormal_end_takes_the_linked_actor_down(how: str) -> None:
    log: list[str] = []
    async with actors.open_node() as node:
        a, _b, watcher = await _setup(node, log)
        if how == "crash":
            await a.tell("crash")
        else:
            await a.kill()
        await trio.testing.wait_all_tasks_blocked()
        seen = await watcher.ask("seen")
        assert seen["a"].kind == ("crashed" if how == "crash" else "killed")
        assert seen["b"].kind == "crashed"
        error = seen["b"].error
        assert isinstance(error, actors.LinkedActorError)
        assert error.ref == a
        assert "stop b" in log  # a linked crash still runs on_stop
        assert await node.lookup("a") is None
        assert await node.lookup("b") is None


async def test_a_busy_linked_actor_is_interrupted_and_its_asker_told_why() -> None:
    log: list[str] = []
    async with actors.open_node() as node, trio.open_nursery() as nursery:
        a, b, _ = await _setup(node, log)
        errors: list[BaseException] = []

        async def ask_b() -> None:
            try:
                await b.ask("wait_forever")
            except actors.LinkedActorError as exc:
                errors.append(exc)

        nursery.start_soon(ask_b)
        await trio.testing.wait_all_tasks_blocked()
        await a.tell("crash")
        await trio.testing.wait_all_tasks_blocked()
        assert len(errors) == 1


@pytest.mark.parametrize("how", ["stop", "untie"])
async def test_a_graceful_stop_or_an_unlink_leaves_the_other_running(how: str) -> None:
    log: list[str] = []
    async with actors.open_node() as node:
        a, b, _ = await _setup(node, log)
        if how == "stop":
            await a.stop()
        else:
            await b.ask("untie", a)
            await a.kill()
        await trio.testing.wait_all_tasks_blocked()
        assert await node.lookup("b") is not None
        assert runtime_of(node).cells["b"].links == set()


async def test_linking_to_an_actor_that_is_gone_fails_clearly() -> None:
    async with actors.open_node() as node:
        a = await node.spawn(Peer, [], "a")
        with pytest.raises(actors.ActorNotFoundError, match="ghost"):
            await a.ask("tie", actors.ActorRef(node.name, "ghost"))
