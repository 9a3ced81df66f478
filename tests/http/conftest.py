"""Fixtures: the HTTP demo server on an ephemeral 127.0.0.1 port (a real aiohttp server)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from streamnb.demo.http import HttpDemoServer

API_KEY = "sk-test-0123456789abcdef"


@pytest.fixture
async def server() -> AsyncIterator[HttpDemoServer]:
    async with HttpDemoServer(api_key=API_KEY) as srv:
        yield srv
