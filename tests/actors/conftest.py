"""Helpers the actor tests share: they look inside a node, which only tests may do."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, TypeVar, overload

from trimq import actors
from trimq.actors._ref import reset_current_runtime, set_current_runtime
from trimq.actors._runtime import NodeRuntime


def runtime_of(node: actors.Node) -> NodeRuntime:
    """The runtime behind ``node``: its cells, monitors and bus."""
    return node._runtime


T = TypeVar("T")


@overload
def actor_of(node: actors.Node, ref: actors.ActorRef) -> Any: ...
@overload
def actor_of(node: actors.Node, ref: actors.ActorRef, cls: type[T]) -> T: ...
def actor_of(node: actors.Node, ref: actors.ActorRef, cls: type[Any] | None = None) -> Any:
    """The current instance of the actor ``ref`` names on ``node`` (an
    instance of ``cls``, if given)."""
    actor = runtime_of(node).cells[ref.name].actor
    assert cls is None or isinstance(actor, cls)
    return actor


@contextlib.contextmanager
def current(node: actors.Node) -> Iterator[None]:
    """Make ``node`` the calling task's node for the block: refs used in it go
    through ``node`` (``open_node`` makes the innermost node current)."""
    token = set_current_runtime(runtime_of(node))
    try:
        yield
    finally:
        reset_current_runtime(token)
