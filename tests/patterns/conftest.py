"""Fixtures for the socket-pattern tests: one endpoint per transport."""

from __future__ import annotations

import pytest

from ._helpers import bind_endpoint


@pytest.fixture(params=["inproc", "tcp"])
def transport(request: pytest.FixtureRequest) -> str:
    """The transport under test (override with ``parametrize("transport", ...)``)."""
    value: str = request.param
    return value


@pytest.fixture
def endpoint(transport: str) -> str:
    """An endpoint to bind for ``transport`` (wildcard port / fresh name)."""
    return bind_endpoint(transport)
