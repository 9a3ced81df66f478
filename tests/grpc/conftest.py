"""Fixtures: a real DemoServer on an ephemeral 127.0.0.1 port and a client connected to it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from streamnb.demo import DemoServer
from streamnb.grpc import GrpcClient


@pytest.fixture
async def server() -> AsyncIterator[DemoServer]:
    async with DemoServer() as srv:
        yield srv


@pytest.fixture
async def client(server: DemoServer) -> AsyncIterator[GrpcClient]:
    # A generous default deadline keeps a broken test from hanging the suite.
    async with GrpcClient(server.address, timeout=60) as c:
        yield c
