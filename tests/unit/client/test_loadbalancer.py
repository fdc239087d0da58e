"""`svcnet apiserver-lb` over plain TCP servers on loopback: it forwards to the first healthy
server, fails over when that one dies, and closes connections to a server whose health check
fails (so a client stuck on a server that stopped answering reconnects elsewhere)."""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from svcnet.client.loadbalancer import ApiServerLoadBalancer
from tests.waiting import until


class Upstream:
    """A server that answers each line with its name."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def start(self, port: int = 0) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        with contextlib.suppress(ConnectionError):
            while await reader.readline():
                writer.write(self.name.encode() + b"\n")
                await writer.drain()
        self.writers.discard(writer)
        writer.close()

    def stop_listening(self) -> None:
        """No new connections; the open ones stay (a server that hangs)."""
        assert self.server is not None
        self.server.close()

    def die(self) -> None:
        self.stop_listening()
        for writer in list(self.writers):
            writer.transport.abort()  # a reset, as a killed process's sockets


@pytest.fixture
async def upstreams():
    servers = [Upstream("a"), Upstream("b")]
    for server in servers:
        await server.start()
    yield servers
    for server in servers:
        with contextlib.suppress(Exception):
            server.die()


async def ask(port: int) -> tuple[str, asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"who\n")
    await writer.drain()
    return (await reader.readline()).decode().strip(), reader, writer


@contextlib.asynccontextmanager
async def balancer(upstreams: list[Upstream], **settings: float) -> AsyncIterator[ApiServerLoadBalancer]:
    """An apiserver-lb on a free loopback port in front of the upstreams, in their order; stopped afterwards."""
    lb = ApiServerLoadBalancer("127.0.0.1:0", [f"127.0.0.1:{upstream.port}" for upstream in upstreams], **settings)
    await lb.start()
    try:
        yield lb
    finally:
        await lb.stop()


async def test_new_connections_go_to_the_first_server_and_fail_over_when_it_dies(upstreams):
    a, b = upstreams
    async with balancer(upstreams, health_interval=3600) as lb:  # no checks: the failed dial alone fails over
        name, reader, writer = await ask(lb.bound_port)
        assert name == "a"
        a.die()
        assert await reader.readline() == b""  # the client's connection ends with the server's
        writer.close()
        name, _, writer = await ask(lb.bound_port)
        assert name == "b"
        writer.close()


async def test_a_server_that_stops_answering_has_its_connections_closed_by_the_health_check(upstreams):
    a, b = upstreams
    async with balancer(upstreams, health_interval=0.05) as lb:
        name, reader, writer = await ask(lb.bound_port)
        assert name == "a"
        a.stop_listening()  # hangs: its open connection stays, new dials are refused
        assert await asyncio.wait_for(reader.readline(), 10) == b""
        await until(lambda: lb.pool.healthy[f"127.0.0.1:{a.port}"] is False, timeout=10, what="a marked down")
        name, _, writer = await ask(lb.bound_port)
        assert name == "b"
        writer.close()


async def test_when_no_server_answers_the_client_connection_is_closed(upstreams):
    a, b = upstreams
    a.die()
    b.die()
    async with balancer(upstreams) as lb:
        reader, writer = await asyncio.open_connection("127.0.0.1", lb.bound_port)
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()


@pytest.mark.parametrize(("listen", "servers"), [("127.0.0.1", ["127.0.0.1:1"]), ("127.0.0.1:0", ["x:0"]),
                                                 ("127.0.0.1:0", [])])
def test_bad_addresses_are_refused(listen, servers):
    with pytest.raises(ValueError):
        ApiServerLoadBalancer(listen, servers)
