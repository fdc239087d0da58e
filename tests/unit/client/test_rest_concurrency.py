"""ApiClient sends concurrent requests concurrently, up to MAX_REQUESTS_IN_FLIGHT: nothing (one connection, a
lock) serialises them, and a burst beyond the bound waits for a connection already open."""
from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web

from svcnet.client.config import unix_socket_config
from svcnet.client.rest import MAX_REQUESTS_IN_FLIGHT, ApiClient
from tests.unit.client.helpers import PODS, pod


class HoldingServer:
    """Answers each create only once `hold` of them are at the server at the same time."""

    def __init__(self, hold: int) -> None:
        self.hold = hold
        self.in_flight = 0
        self.peak = 0
        self.all_here = asyncio.Event()

    async def create(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        if self.in_flight >= self.hold:
            self.all_here.set()
        try:
            await asyncio.wait_for(self.all_here.wait(), 5)
        finally:
            self.in_flight -= 1
        return web.json_response(body, status=201)


async def run_creates(tmp_path: Path, count: int, hold: int) -> HoldingServer:
    server = HoldingServer(hold)
    app = web.Application()
    app.router.add_post("/api/v1/namespaces/default/pods", server.create)
    runner = web.AppRunner(app)
    await runner.setup()
    socket_path = tmp_path / "api.sock"
    await web.UnixSite(runner, str(socket_path)).start()
    try:
        async with ApiClient(unix_socket_config(socket_path)) as api:
            created = await asyncio.gather(*(api.create(PODS, "default", pod(f"p{i}")) for i in range(count)))
        assert sorted(c["metadata"]["name"] for c in created) == sorted(f"p{i}" for i in range(count))
    finally:
        await runner.cleanup()
    return server


async def test_concurrent_creates_reach_the_server_together(tmp_path: Path) -> None:
    server = await run_creates(tmp_path, MAX_REQUESTS_IN_FLIGHT, hold=MAX_REQUESTS_IN_FLIGHT)
    assert server.peak == MAX_REQUESTS_IN_FLIGHT


async def test_requests_beyond_the_in_flight_bound_wait_for_one_to_finish(tmp_path: Path) -> None:
    server = await run_creates(tmp_path, MAX_REQUESTS_IN_FLIGHT + 20, hold=MAX_REQUESTS_IN_FLIGHT)
    assert server.peak == MAX_REQUESTS_IN_FLIGHT
