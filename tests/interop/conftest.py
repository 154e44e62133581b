"""Fixtures for the interop suite: a pyzmq context, a trimq context, peers, endpoints."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

import trimq

from ._peers import Endpoints, PeerFactory


@pytest.fixture
def zctx() -> Iterator[Any]:
    """A pyzmq Context; every socket it made is closed with linger 0 at the end."""
    context = zmq.Context()
    try:
        yield context
    finally:
        context.destroy(linger=0)


@pytest.fixture
async def ctx() -> AsyncIterator[trimq.Context]:
    """A running trimq Context."""
    async with trimq.Context() as context:
        yield context


@pytest.fixture
async def peers(ctx: trimq.Context, zctx: Any) -> AsyncIterator[PeerFactory]:
    """Makes trimq and pyzmq peers behind one interface; closes them all at the end."""
    factory = PeerFactory(ctx, zctx)
    try:
        yield factory
    finally:
        await factory.aclose()


@pytest.fixture
def endpoints(tmp_path: Path) -> Endpoints:
    """Bind addresses for tcp (ephemeral port) and ipc (a path in ``tmp_path``)."""
    return Endpoints(tmp_path)
