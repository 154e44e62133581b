"""Calls whose arguments do not bind to the handler: the caller's error, not a crash."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
import trio.testing

from trimq import actors
from trimq.actors import ChildSpec, Supervisor

from .conftest import runtime_of

TIMEOUT = 5


class Calc(actors.Actor):
    def __init__(self, log: list[str] | None = None) -> None:
        self.log = log if log is not None else []
        self.total = 0

    def on_start(self) -> None:
        self.log.append("start")

    def on_restart(self, reason: actors.ExitReason) -> None:
        self.log.append("restart")

    def add(self, n: int) -> int:
        self.total += n
        return self.total

    async def add_async(self, n: int, *, scale: int = 1) -> int:
        await trio.lowlevel.checkpoint()
        self.total += n * scale
        return self.total

    def inner_type_error(self) -> None:
        len(5)  # type: ignore[arg-type]  # a TypeError from the handler's body

    async def inner_type_error_async(self) -> None:
        await trio.lowlevel.checkpoint()
        len(5)  # type: ignore[arg-type]


def _generation(node: actors.Node, ref: actors.ActorRef) -> int:
    return runtime_of(node).cells[ref.name].generation


async def test_an_ask_with_too_many_arguments_fails_at_the_asker_only() -> None:
    log: list[str] = []
    async with actors.open_node("n") as node:
        ref = await node.spawn(Calc, log)
        with trio.fail_after(TIMEOUT):
            assert await ref.ask("add", 1) == 1
            with pytest.raises(TypeError, match=r"Calc\.add\(\).*do not match its signature"):
                await ref.ask("add", 1, 2)
            with pytest.raises(TypeError, match=r"add\(n: int\)"):
                await ref.ask("add")
            assert await ref.ask("add", 2) == 3  # the same instance, still serving
        assert log == ["start"]
        assert _generation(node, ref) == 1


async def test_an_ask_with_an_unknown_keyword_fails_at_the_asker() -> None:
    async with actors.open_node("n") as node:
        ref = await node.spawn(Calc)
        with trio.fail_after(TIMEOUT):
            with pytest.raises(TypeError, match=r"add\(\).*unexpected keyword argument 'm'"):
                await ref.ask("add", m=1)
            assert await ref.ask("add", n=4) == 4


async def test_an_async_handler_with_bad_arguments_is_the_same() -> None:
    log: list[str] = []
    async with actors.open_node("n") as node:
        ref = await node.spawn(Calc, log)
        with trio.fail_after(TIMEOUT):
            with pytest.raises(TypeError, match=r"add_async\(\).*do not match its signature"):
                await ref.ask("add_async", 1, 2)
            with pytest.raises(TypeError, match="unexpected keyword argument 'factor'"):
                await ref.ask("add_async", 1, factor=2)
            assert await ref.ask("add_async", 2, scale=3) == 6
        assert log == ["start"]
        assert _generation(node, ref) == 1


async def test_a_tell_with_bad_arguments_is_logged_and_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="trimq.actors")
    log: list[str] = []
    async with actors.open_node("n") as node:
        ref = await node.spawn(Calc, log)
        with trio.fail_after(TIMEOUT):
            await ref.tell("add", 1, 2)
            await ref.tell("add_async", nope=1)
            await ref.tell("add", 5)
            assert await ref.ask("add", 0) == 5
        assert log == ["start"]
        assert _generation(node, ref) == 1
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.name == "trimq.actors" and r.levelno == logging.WARNING
    ]
    assert any("Calc.add()" in w and "do not match its signature" in w for w in warnings)
    assert any("Calc.add_async()" in w and "nope" in w for w in warnings)
    assert not any("crashed" in w for w in warnings)


async def test_a_bad_ask_from_a_task_that_runs_the_handler_at_once() -> None:
    # An ask from another actor's handler is handled in the same way however
    # it is delivered (the mailbox, or handle_now).
    class Caller(actors.Actor):
        async def call(self, target: actors.ActorRef, *args: Any) -> str:
            try:
                await target.ask("add", *args)
            except TypeError as exc:
                return str(exc)
            return "no error"

    async with actors.open_node("n") as node:
        calc = await node.spawn(Calc)
        caller = await node.spawn(Caller)
        with trio.fail_after(TIMEOUT):
            message = await caller.ask("call", calc, 1, 2)
            assert "do not match its signature" in message
            assert await calc.ask("add", 1) == 1


@pytest.mark.parametrize("method", ["inner_type_error", "inner_type_error_async"])
async def test_a_type_error_from_the_handler_body_is_still_a_crash(method: str) -> None:
    async with actors.open_node("n") as node:
        ref = await node.spawn(Calc)
        with trio.fail_after(TIMEOUT):
            with pytest.raises(TypeError, match="has no len") as info:
                await ref.ask(method)
            assert any("raised by actor" in n for n in info.value.__notes__)
            with pytest.raises(actors.ActorNotFoundError):
                await ref.ask("add", 1)  # it crashed: unsupervised, it is gone


async def test_a_supervised_actor_is_restarted_only_for_a_real_crash() -> None:
    log: list[str] = []
    async with actors.open_node("n") as node:
        await node.spawn(Supervisor, [ChildSpec(Calc, (log,), name="calc")])
        with trio.fail_after(TIMEOUT):
            ref = await node.lookup("calc")
            assert ref is not None
            with pytest.raises(TypeError, match="do not match its signature"):
                await ref.ask("add", 1, 2)
            await ref.tell("add", 1, 2)
            assert await ref.ask("add", 1) == 1
            assert log == ["start"]
            with pytest.raises(TypeError, match="has no len"):
                await ref.ask("inner_type_error")
            while "restart" not in log:
                await trio.testing.wait_all_tasks_blocked()
            assert await ref.ask("add", 1) == 1  # a fresh instance
        assert log == ["start", "restart"]


async def test_unknown_methods_are_still_refused() -> None:
    async with actors.open_node("n") as node:
        ref = await node.spawn(Calc)
        with trio.fail_after(TIMEOUT):
            with pytest.raises(AttributeError, match="no handler 'nope'"):
                await ref.ask("nope")
            assert await ref.ask("add", 1) == 1


@contextlib.asynccontextmanager
async def pair() -> AsyncIterator[tuple[actors.Node, actors.Node]]:
    async with (
        actors.open_node("a", listen="tcp://127.0.0.1:*", insecure=True) as a,
        actors.open_node("b", insecure=True) as b,
    ):
        with trio.fail_after(TIMEOUT):
            await b.connect(a.endpoints[0])
        yield a, b


async def test_a_remote_ask_with_bad_arguments_gets_a_type_error() -> None:
    log: list[str] = []
    async with pair() as (a, b):
        ref = await a.spawn(Calc, log, name="calc")
        with trio.fail_after(TIMEOUT):
            remote = await b.lookup("calc")
            assert remote is not None
            with pytest.raises(TypeError, match=r"Calc\.add\(\).*do not match its signature"):
                await remote.ask("add", 1, 2)
            with pytest.raises(TypeError, match="unexpected keyword argument"):
                await remote.ask("add_async", 1, bad=2)
            await remote.tell("add", 1, 2)
            assert await remote.ask("add", 3) == 3
        assert log == ["start"]
        assert _generation(a, ref) == 1
