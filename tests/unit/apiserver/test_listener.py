"""The API port's connection bounds (apiserver/listener.py), in-process over 127.0.0.1.

A small aiohttp app stands in for the API; the listener, the TLS layer and aiohttp's own knobs are
the real ones. The header deadline is short here (a setting), and every wait is on a condition: a
connection the server closed, a handler that ran. That the deadline has passed is shown by a
sentinel connection that says nothing and that the server closes.
"""
from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
from aiohttp import WSMsgType, web

from svcnet.apiserver import listener
from svcnet.apiserver.credentials import ensure_credentials
from tests.waiting import until

HEADER_TIMEOUT = 0.5
WAIT = 20.0  # deadline for a wait on a condition, far above every short timeout configured here
# The idle timeout is beyond every wait, so only the header deadline can close a connection.
LIMITS = listener.ConnectionLimits(read_header_timeout=HEADER_TIMEOUT, idle_timeout=3 * WAIT,
                                   max_connections=64)


class Stand:
    """What the stand-in app saw, and the events its streaming handler waits on."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.chunks: asyncio.Queue[bytes] = asyncio.Queue()


def make_app(stand: Stand) -> web.Application:
    async def hello(request: web.Request) -> web.Response:
        stand.requests.append(request.path)
        return web.Response(text="hello\n")

    async def echo_length(request: web.Request) -> web.Response:
        stand.requests.append(request.path)
        body = await request.read()
        return web.Response(text=f"{len(body)}\n")

    async def stream(request: web.Request) -> web.StreamResponse:
        stand.requests.append(request.path)
        resp = web.StreamResponse()
        await resp.prepare(request)
        while (chunk := await stand.chunks.get()) != b"":
            await resp.write(chunk)
        return resp

    async def ws(request: web.Request) -> web.WebSocketResponse:
        stand.requests.append(request.path)
        sock = web.WebSocketResponse()
        await sock.prepare(request)
        async for msg in sock:
            if msg.type == WSMsgType.TEXT:
                await sock.send_str(msg.data.upper())
        return sock

    app = web.Application()
    app.router.add_get("/hello", hello)
    app.router.add_post("/echo", echo_length)
    app.router.add_get("/stream", stream)
    app.router.add_get("/ws", ws)
    return app


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context) from svcnet's own credentials code."""
    creds = ensure_credentials(tmp_path_factory.mktemp("listener-pki"))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(str(creds.server_cert), str(creds.server_key))
    client = ssl.create_default_context(cafile=str(Path(creds.server_cert).parent / "ca.crt"))
    return server, client


class Served:
    def __init__(self, site: listener.ApiSite, runner: web.AppRunner, stand: Stand,
                 client_tls: ssl.SSLContext | None) -> None:
        self.site, self.runner, self.stand, self.client_tls = site, runner, stand, client_tls

    @property
    def port(self) -> int:
        return self.site.bound_port

    async def raw(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)

    async def tls(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port, ssl=self.client_tls,
                                             server_hostname="127.0.0.1")


async def serve(stand: Stand, server_tls: ssl.SSLContext | None, client_tls: ssl.SSLContext | None,
                limits: listener.ConnectionLimits = LIMITS) -> Served:
    runner = await listener.serving_runner(make_app(stand), limits)
    site = listener.ApiSite(runner, "127.0.0.1", 0, server_tls, limits)
    await site.start()
    return Served(site, runner, stand, client_tls)


@pytest.fixture
async def served(pki):
    stand = Stand()
    s = await serve(stand, pki[0], pki[1])
    yield s
    stand.chunks.put_nowait(b"")
    await s.runner.cleanup()


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    """Read until the server ends the connection (EOF or reset); True when it has."""
    try:
        while await reader.read(4096):
            pass
    except (ConnectionError, ssl.SSLError):
        pass
    return True


async def header_deadline_passed(s: Served) -> None:
    """Open a connection that says nothing and wait for the server to close it."""
    reader, writer = await s.raw()
    await asyncio.wait_for(closed_by_server(reader), WAIT)
    writer.close()


async def read_response(reader: asyncio.StreamReader) -> tuple[str, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].decode()
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    return status, await reader.readexactly(length)


def test_go_plain_http_starts_are_recognised():
    for start in (b"GET /api", b"HEAD / HTTP/1.1", b"POST /x", b"PUT /y", b"OPTIONS * HTTP/1.1"):
        assert listener.looks_like_plain_http(start)
    for start in (b"DELETE /x", b"\x16\x03\x01\x02\x00", b"GET", b"get /x", b"PATCH /x"):
        assert not listener.looks_like_plain_http(start)


def test_connection_cap_leaves_the_server_its_own_files():
    assert listener.connection_cap(0, 20_000) == 20_000 - listener.RESERVED_FILES
    assert listener.connection_cap(500, 20_000) == 500
    assert listener.connection_cap(50_000, 1024) == 1024 - listener.RESERVED_FILES


async def test_plain_http_on_the_tls_port_gets_gos_400_and_is_closed(served):
    reader, writer = await served.raw()
    writer.write(b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    reply = await asyncio.wait_for(reader.read(), WAIT)
    assert reply == b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
    assert served.stand.requests == []
    writer.close()


async def test_other_non_tls_starts_are_closed_without_a_reply(served):
    reader, writer = await served.raw()
    writer.write(b"DELETE /hello HTTP/1.1\r\n\r\n")
    assert await asyncio.wait_for(reader.read(), WAIT) == b""
    writer.close()


async def test_a_connection_that_sends_nothing_is_closed_at_the_header_deadline(served):
    reader, writer = await served.raw()
    assert await asyncio.wait_for(closed_by_server(reader), WAIT)
    await until(lambda: not served.site.connections, WAIT, what="the slot to be freed")
    writer.close()


async def test_a_tls_client_that_never_sends_a_request_is_closed(served):
    reader, writer = await served.tls()
    assert await asyncio.wait_for(closed_by_server(reader), WAIT)
    assert served.stand.requests == []
    writer.close()


async def test_trickled_headers_are_cut_off_before_they_complete(served):
    reader, writer = await served.tls()
    header = b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + b"a" * 4000 + b"\r\n\r\n"
    sent = 0

    async def trickle() -> None:
        nonlocal sent
        for byte in header:
            writer.write(bytes([byte]))
            await writer.drain()
            sent += 1
            await asyncio.sleep(HEADER_TIMEOUT / 20)  # the client's pace: 20 bytes per deadline

    trickler = asyncio.create_task(trickle())
    assert await asyncio.wait_for(closed_by_server(reader), WAIT)
    trickler.cancel()
    assert sent < len(header)
    assert served.stand.requests == []
    writer.close()


async def test_each_kept_alive_request_gets_its_own_header_deadline(served):
    reader, writer = await served.tls()
    writer.write(b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert await read_response(reader) == ("HTTP/1.1 200 OK", b"hello\n")
    writer.write(b"GET /hello HTTP/1.1\r\nHost: 127.")  # the next request never finishes its headers
    assert await asyncio.wait_for(closed_by_server(reader), WAIT)
    assert served.stand.requests == ["/hello"]
    writer.close()


async def test_an_idle_kept_alive_connection_is_closed_after_the_idle_timeout(pki):
    limits = listener.ConnectionLimits(read_header_timeout=3 * WAIT, idle_timeout=HEADER_TIMEOUT,
                                       max_connections=64)
    s = await serve(Stand(), pki[0], pki[1], limits)  # only the idle timeout is short
    try:
        reader, writer = await s.tls()
        writer.write(b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert await read_response(reader) == ("HTTP/1.1 200 OK", b"hello\n")
        assert await asyncio.wait_for(closed_by_server(reader), WAIT)
        writer.close()
    finally:
        await s.runner.cleanup()


async def test_a_stream_outlives_the_header_deadline(served):
    reader, writer = await served.tls()
    writer.write(b"GET /stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    await reader.readuntil(b"\r\n\r\n")
    await header_deadline_passed(served)
    served.stand.chunks.put_nowait(b"event-1\n")
    assert b"event-1" in await asyncio.wait_for(reader.readuntil(b"event-1\n"), WAIT)
    writer.close()


async def test_a_slow_body_outlives_the_header_deadline(served):
    reader, writer = await served.tls()
    writer.write(b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n\r\nhello")
    await writer.drain()
    await header_deadline_passed(served)
    writer.write(b"world")
    assert await asyncio.wait_for(read_response(reader), WAIT) == ("HTTP/1.1 200 OK", b"10\n")
    writer.close()


async def test_a_websocket_upgrade_works_through_the_listener(served, pki):
    import aiohttp

    async with aiohttp.ClientSession() as session, \
            session.ws_connect(f"https://127.0.0.1:{served.port}/ws", ssl=pki[1]) as sock:
        await header_deadline_passed(served)
        await sock.send_str("ping")
        msg = await asyncio.wait_for(sock.receive(), WAIT)
        assert msg.data == "PING"


async def test_at_the_cap_new_connections_wait_in_the_backlog_until_a_slot_frees():
    stand = Stand()
    limits = listener.ConnectionLimits(read_header_timeout=WAIT, idle_timeout=WAIT, max_connections=2)
    s = await serve(stand, None, None, limits)  # plain HTTP: the cap is the same with or without TLS
    writers = []
    try:
        r1, w1 = await s.raw()
        _, w2 = await s.raw()
        writers += [w1, w2]
        await until(lambda: len(s.site.connections) == 2, WAIT, what="two accepted connections")
        r3, w3 = await s.raw()  # the kernel completes the handshake; the server does not accept
        writers.append(w3)
        w3.write(b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        w1.write(b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert await asyncio.wait_for(read_response(r1), WAIT) == ("HTTP/1.1 200 OK", b"hello\n")
        assert len(s.site.connections) == 2
        assert stand.requests == ["/hello"]  # the third connection's request is still unread
        w1.close()
        assert await asyncio.wait_for(read_response(r3), WAIT) == ("HTTP/1.1 200 OK", b"hello\n")
        assert stand.requests == ["/hello", "/hello"]
    finally:
        for w in writers:
            w.close()
        await s.runner.cleanup()


async def test_stopping_the_site_drops_connections_that_never_reached_aiohttp(pki):
    s = await serve(Stand(), pki[0], pki[1])
    reader, writer = await s.raw()
    await until(lambda: len(s.site.connections) == 1, WAIT, what="the accepted connection")
    await s.runner.cleanup()
    assert await asyncio.wait_for(closed_by_server(reader), WAIT)
    assert not s.site.connections
    writer.close()
