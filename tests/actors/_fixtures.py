"""Actors and objects that several actor tests use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trimq import actors


class Holder(actors.Actor):
    """Keeps what it is given; ``put`` answers how many it holds."""

    def on_start(self) -> None:
        self.items: list[Any] = []

    def put(self, item: Any) -> int:
        self.items.append(item)
        return len(self.items)


class Touch:
    """Unpickling this creates ``path``: proof that a payload was decoded."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> Any:
        return (Path.touch, (Path(self.path),))
