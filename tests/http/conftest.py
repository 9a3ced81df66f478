"""Fixtures: the HTTP demo server on an ephemeral 127.0.0.1 port (a real aiohttp server)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from http_helpers import API_KEY

from streamnb.demo.http import HttpDemoServer


@pytest.fixture
async def server() -> AsyncIterator[HttpDemoServer]:
    async with HttpDemoServer(api_key=API_KEY) as srv:
        yield srv
