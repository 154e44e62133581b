"""Fixtures shared by the transport tests."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

import trimq


@pytest.fixture
async def ctx() -> AsyncIterator[trimq.Context]:
    """A running Context, closed (without lingering on failure) after the test."""
    async with trimq.Context() as context:
        yield context


@pytest.fixture
def transport_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """caplog capturing WARNING and above from the "trimq.transport" logger."""
    caplog.set_level(logging.WARNING, logger="trimq.transport")
    return caplog
