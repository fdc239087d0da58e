"""serve_port_forward behind an aiohttp server on 127.0.0.1, forwarding to a local echo
server, driven over plain SPDY, SPDY tunnelled in WebSocket messages, and the WebSocket
channel protocol the official Python client speaks."""
from __future__ import annotations

import asyncio
import base64
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web

from svcnet.agent import portforward
from svcnet.core import spdy
from tests.spdy_client import PortForwardClient, control, data, spdy_upgrade
from tests.waiting import until

POD_PORT = 9376  # the port the client asks for; the dial maps it to the echo server
REFUSED_PORT = 9377  # the dial maps it to a port nothing listens on
CLOSING_PORT = 9378  # the dial maps it to a server that hangs up at once
NO_SANDBOX_PORT = 9379  # the dial fails in its own words, as a node without the pod's sandbox


@dataclass
class Harness:
    url: str
    host: str
    port: int
    dialled: list[int]


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Echo until the client half-closes, then say goodbye and close (a request/response
    server): proves data flows after the client's FIN."""
    while chunk := await reader.read(65536):
        writer.write(chunk)
        await writer.drain()
    writer.write(b"bye")
    await writer.drain()
    writer.close()


async def _hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    echo = await asyncio.start_server(_echo, "127.0.0.1", 0)
    echo_port = echo.sockets[0].getsockname()[1]
    closing = await asyncio.start_server(_hang_up, "127.0.0.1", 0)
    targets = {POD_PORT: echo_port, REFUSED_PORT: _closed_port(), CLOSING_PORT: closing.sockets[0].getsockname()[1]}
    dialled: list[int] = []

    async def dial(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        dialled.append(port)
        if port == NO_SANDBOX_PORT:
            raise OSError("pod x has no running sandbox on this node")
        return await asyncio.open_connection("127.0.0.1", targets.get(port, 1))

    async def route(request: web.Request) -> web.StreamResponse:
        return await portforward.serve_port_forward(request, dial)

    app = web.Application()
    app.router.add_route("*", "/portForward/{namespace}/{pod}", route)
    app.router.add_route("*", "/portForward/{namespace}/{pod}/{uid}", route)
    app.router.add_route("*", "/api/v1/namespaces/{namespace}/pods/{pod}/portforward", route)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield Harness(f"http://127.0.0.1:{port}", "127.0.0.1", port, dialled)
    finally:
        await runner.cleanup()
        for server in (echo, closing):
            server.close()
            await server.wait_closed()


# ------------------------------------------------------------------ plain SPDY


async def _spdy_client(h: Harness, path: str = "/portForward/default/x") -> tuple[PortForwardClient, asyncio.Task]:
    head, reader, writer = await spdy_upgrade(h.host, h.port, path)
    assert head.startswith("HTTP/1.1 101"), head
    assert "upgrade: spdy/3.1" in head.lower()
    assert "x-stream-protocol-version: portforward.k8s.io" in head.lower()

    async def send(data: bytes) -> None:
        writer.write(data)
        await writer.drain()

    async def recv() -> bytes:
        return await reader.read(65536)

    client = PortForwardClient(send, recv, spdy.DICTIONARY, close=writer.close)
    return client, asyncio.create_task(client.pump())


async def test_spdy_forwards_a_connection_both_ways_with_half_close(harness: Harness) -> None:
    client, pump = await _spdy_client(harness)
    error_id, data_id = await client.open_pair(POD_PORT, "0")
    await until(lambda: len(client.of_kind(spdy.SYN_REPLY)) == 2, what="both streams replied")
    await client.send(data(data_id, b"hello "))
    await until(lambda: client.received(data_id) == b"hello ", what="echo")
    await client.send(data(data_id, b"world", fin=True))
    await until(lambda: client.finished(data_id) and client.finished(error_id), what="both streams finished")
    assert client.received(data_id) == b"hello worldbye"
    assert client.received(error_id) == b""
    client.close()
    await pump


async def test_spdy_carries_megabytes_in_order(harness: Harness) -> None:
    client, pump = await _spdy_client(harness)
    error_id, data_id = await client.open_pair(POD_PORT, "0")
    payload = bytes(range(256)) * 8192  # 2 MiB, more than one frame and one socket buffer
    for start in range(0, len(payload), 100_000):
        await client.send(data(data_id, payload[start:start + 100_000]))
    await client.send(data(data_id, b"", fin=True))
    await until(lambda: client.finished(error_id), timeout=60, what="pair finished")
    assert client.received(data_id) == payload + b"bye"
    client.close()
    await pump


async def test_spdy_data_for_a_pair_that_ended_is_dropped_without_stalling_the_session(harness: Harness) -> None:
    client, pump = await _spdy_client(harness)
    error_id, data_id = await client.open_pair(CLOSING_PORT, "0")
    await until(lambda: client.finished(error_id), what="pair ended by the pod")
    for _ in range(portforward.STREAM_QUEUE * 3):
        await client.send(data(data_id, b"x" * 1000))
    await client.send(control(spdy.PING, 0, (1).to_bytes(4, "big")))
    await until(lambda: client.of_kind(spdy.PING), what="PING answered after the flood")
    client.close()
    await pump


async def test_spdy_refused_port_is_reported_on_the_error_stream_as_kubelet_words_it(harness: Harness) -> None:
    client, pump = await _spdy_client(harness, "/portForward/default/x/uid-1")
    error_id, data_id = await client.open_pair(REFUSED_PORT, "7")
    await until(lambda: client.finished(error_id), what="error stream finished")
    message = client.received(error_id).decode()
    assert message.startswith(f"error forwarding port {REFUSED_PORT} to pod x_default, uid uid-1: ")
    assert "refused" in message.lower()
    assert client.finished(data_id)
    client.close()
    await pump


async def test_spdy_dial_failure_without_errno_is_reported_in_the_dials_words(harness: Harness) -> None:
    client, pump = await _spdy_client(harness)
    error_id, _ = await client.open_pair(NO_SANDBOX_PORT, "0")
    await until(lambda: client.finished(error_id), what="error stream finished")
    assert client.received(error_id) == (f"error forwarding port {NO_SANDBOX_PORT} to pod x_default, uid : "
                                         "pod x has no running sandbox on this node").encode()
    client.close()
    await pump


async def test_spdy_several_pairs_on_one_connection_are_independent(harness: Harness) -> None:
    client, pump = await _spdy_client(harness)
    pairs = [await client.open_pair(POD_PORT, str(i)) for i in range(3)]
    for index, (_, data_id) in enumerate(pairs):
        await client.send(data(data_id, f"n{index}".encode(), fin=True))
    for index, (error_id, data_id) in enumerate(pairs):
        await until(lambda e=error_id: client.finished(e), what=f"pair {index} finished")
        assert client.received(data_id) == f"n{index}bye".encode()
    client.close()
    await pump


async def test_spdy_stream_without_port_header_is_reset_with_cancel(harness: Harness) -> None:
    client, pump = await _spdy_client(harness)
    await client.send(client.codec.syn_stream(1, {"streamtype": "data", "requestid": "0"}))
    await until(lambda: client.of_kind(spdy.RST_STREAM, 1), what="RST_STREAM")
    status = int.from_bytes(client.of_kind(spdy.RST_STREAM, 1)[0].payload[4:8], "big")
    assert status == spdy.CANCEL
    assert harness.dialled == []
    client.close()
    await pump


async def test_spdy_second_error_stream_for_a_request_is_reported_on_the_first(harness: Harness) -> None:
    client, pump = await _spdy_client(harness)
    common = {"port": str(POD_PORT), "requestid": "5"}
    await client.send(client.codec.syn_stream(1, {"streamtype": "error", **common}))
    await client.send(client.codec.syn_stream(3, {"streamtype": "error", **common}))
    await client.send(client.codec.syn_stream(5, {"streamtype": "data", **common}))
    await client.send(data(5, b"", fin=True))
    await until(lambda: client.finished(1), what="pair forwarded and finished")
    assert client.received(1) == b"error processing stream for request 5: error stream already assigned"
    assert client.received(5) == b"bye"
    client.close()
    await pump


async def test_spdy_ping_from_the_client_is_echoed(harness: Harness) -> None:
    client, pump = await _spdy_client(harness)
    await client.send(control(spdy.PING, 0, (7).to_bytes(4, "big")))
    await until(lambda: client.of_kind(spdy.PING), what="PING echo")
    assert client.of_kind(spdy.PING)[0].payload == (7).to_bytes(4, "big")
    client.close()
    await pump


async def test_spdy_goaway_from_the_client_lets_open_pairs_finish_then_closes(harness: Harness) -> None:
    client, pump = await _spdy_client(harness)
    error_id, data_id = await client.open_pair(POD_PORT, "0")
    await client.send(data(data_id, b"before "))
    await until(lambda: client.received(data_id) == b"before ", what="echo before GOAWAY")
    await client.send(control(spdy.GOAWAY, 0, (0).to_bytes(8, "big")))
    await client.send(data(data_id, b"after", fin=True))
    await asyncio.wait_for(pump, 60)  # the server closes once the pair is done
    assert client.received(data_id) == b"before afterbye"
    assert client.finished(error_id)


async def test_spdy_garbage_gets_goaway_protocol_error_and_the_connection_closes(harness: Harness) -> None:
    client, pump = await _spdy_client(harness)
    await client.send(control(42, 0, b"\x00" * 4))
    await pump
    goaway = client.of_kind(spdy.GOAWAY)
    assert goaway and int.from_bytes(goaway[0].payload[4:8], "big") == spdy.GOAWAY_PROTOCOL_ERROR


async def test_spdy_pair_missing_its_second_stream_times_out_with_kubelets_message(
        harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(portforward, "STREAM_CREATION_TIMEOUT", 0.05)
    client, pump = await _spdy_client(harness)
    await client.send(client.codec.syn_stream(1, {"streamtype": "error", "port": str(POD_PORT), "requestid": "9"}))
    await until(lambda: client.finished(1), what="lone error stream finished")
    assert client.received(1).decode().endswith("request=9) timed out waiting for streams")
    assert harness.dialled == []
    client.close()
    await pump


async def test_spdy_idle_connection_is_closed_after_the_idle_timeout(
        harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(portforward, "IDLE_TIMEOUT", 0.2)
    client, pump = await _spdy_client(harness)
    await asyncio.wait_for(pump, 30)
    assert client.closed


async def test_spdy_upgrade_without_protocol_header_is_refused(harness: Harness) -> None:
    head, _, writer = await spdy_upgrade(harness.host, harness.port, "/portForward/default/x", protocols=())
    writer.close()
    assert head.startswith("HTTP/1.1 400")


async def test_spdy_upgrade_with_unknown_protocol_is_forbidden_and_names_the_accepted_one(harness: Harness) -> None:
    head, _, writer = await spdy_upgrade(harness.host, harness.port, "/portForward/default/x", protocols=("v9.example",))
    writer.close()
    assert head.startswith("HTTP/1.1 403")
    assert "x-accepted-stream-protocol-versions: portforward.k8s.io" in head.lower()


# ---------------------------------------------------------- SPDY over WebSocket


async def test_spdy_tunnelled_in_websocket_messages_forwards_like_plain_spdy(harness: Harness) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(
            harness.url + "/portForward/default/x", protocols=["SPDY/3.1+portforward.k8s.io"]) as ws:
        assert ws.protocol == "SPDY/3.1+portforward.k8s.io"

        async def recv() -> bytes:
            message = await ws.receive()
            return message.data if message.type == aiohttp.WSMsgType.BINARY else b""

        client = PortForwardClient(ws.send_bytes, recv, spdy.DICTIONARY)
        pump = asyncio.create_task(client.pump())
        error_id, data_id = await client.open_pair(POD_PORT, "0")
        await client.send(data(data_id, b"tunnel", fin=True))
        await until(lambda: client.finished(error_id), what="pair finished")
        assert client.received(data_id) == b"tunnelbye"
        await ws.close()
        await pump


# ------------------------------------------------- WebSocket channel protocol


async def test_channel_protocol_prefixes_ports_and_forwards_as_the_python_client_expects(harness: Harness) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(
            harness.url + f"/portForward/default/x?ports={POD_PORT}",
            protocols=["v5.channel.k8s.io", "v4.channel.k8s.io"]) as ws:
        assert ws.protocol == "v4.channel.k8s.io"
        first = [await ws.receive_bytes(), await ws.receive_bytes()]
        prefix = POD_PORT.to_bytes(2, "little")
        assert sorted(first) == [b"\x00" + prefix, b"\x01" + prefix]
        await ws.send_bytes(b"\x00ping")
        assert await ws.receive_bytes() == b"\x00ping"


async def test_channel_protocol_refused_port_writes_the_error_channel_and_closes(harness: Harness) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(
            harness.url + f"/portForward/default/x?ports={REFUSED_PORT}",
            protocols=["v4.channel.k8s.io"]) as ws:
        frames = []
        async for message in ws:
            frames.append(message.data)
        errors = [f[1:] for f in frames if f[0] == 1 and len(f) > 3]
        assert errors and errors[0].decode().startswith(f"error forwarding port {REFUSED_PORT} to pod x_default")


async def test_channel_protocol_base64_variant_uses_text_frames(harness: Harness) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(
            harness.url + f"/portForward/default/x?ports={POD_PORT}", protocols=["v4.base64.channel.k8s.io"]) as ws:
        first = [await ws.receive_str(), await ws.receive_str()]
        prefix = base64.b64encode(POD_PORT.to_bytes(2, "little")).decode()
        assert sorted(first) == ["0" + prefix, "1" + prefix]
        await ws.send_str("0" + base64.b64encode(b"text").decode())
        assert await ws.receive_str() == "0" + base64.b64encode(b"text").decode()


async def test_channel_protocol_idle_connection_is_closed_after_the_idle_timeout(
        harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(portforward, "IDLE_TIMEOUT", 0.2)
    async with aiohttp.ClientSession() as http, http.ws_connect(
            harness.url + f"/portForward/default/x?ports={POD_PORT}", protocols=["v4.channel.k8s.io"]) as ws:
        messages = [m async for m in ws]
        assert len(messages) == 2  # the two port prefixes, then the close
        assert ws.closed


@pytest.mark.parametrize("query, message", [
    ("", 'query parameter "ports" is required'),
    ("?ports=", 'query parameter "ports" cannot be empty'),
    ("?ports=http", "unable to parse 'http' as a port"),
    ("?ports=0", "port '0' must be > 0"),
])
async def test_channel_protocol_bad_ports_are_refused_before_upgrading(harness: Harness, query: str, message: str) -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
            await http.ws_connect(harness.url + "/portForward/default/x" + query, protocols=["v4.channel.k8s.io"])
        assert caught.value.status == 400
        async with http.get(harness.url + "/portForward/default/x" + query, headers={
                "Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": base64.b64encode(b"0123456789abcdef").decode()}) as response:
            assert message in await response.text()
    assert harness.dialled == []


async def test_official_python_client_portforward_round_trip(harness: Harness) -> None:
    """kubernetes.stream.portforward against the handler, through its own websocket code."""
    kubernetes = pytest.importorskip("kubernetes")
    from kubernetes.stream import portforward as k8s_portforward

    def run() -> bytes:
        configuration = kubernetes.client.Configuration()
        configuration.host = harness.url
        api = kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(configuration))
        pf = k8s_portforward(api.connect_get_namespaced_pod_portforward, "x", "default", ports=str(POD_PORT))
        sock = pf.socket(POD_PORT)
        sock.settimeout(30)
        sock.sendall(b"from python")
        received = b""
        while len(received) < len(b"from python"):
            received += sock.recv(1024)
        sock.close()
        pf.close()
        return received

    assert await asyncio.to_thread(run) == b"from python"


async def test_official_python_client_gets_the_error_of_a_refused_port_beside_a_working_one(harness: Harness) -> None:
    kubernetes = pytest.importorskip("kubernetes")
    from kubernetes.stream import portforward as k8s_portforward

    def run() -> tuple[bytes, str | None, str | None]:
        configuration = kubernetes.client.Configuration()
        configuration.host = harness.url
        api = kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(configuration))
        pf = k8s_portforward(api.connect_get_namespaced_pod_portforward, "x", "default",
                             ports=f"{POD_PORT},{REFUSED_PORT}")
        refused = pf.socket(REFUSED_PORT)
        refused.settimeout(30)
        assert refused.recv(1024) == b""  # the client closes it when the error arrives
        sock = pf.socket(POD_PORT)
        sock.settimeout(30)
        sock.sendall(b"still works")
        received = b""
        while len(received) < len(b"still works"):
            received += sock.recv(1024)
        pf.close()
        return received, pf.error(REFUSED_PORT), pf.error(POD_PORT)

    received, refused_error, working_error = await asyncio.to_thread(run)
    assert received == b"still works"
    assert refused_error is not None
    assert refused_error.startswith(f"error forwarding port {REFUSED_PORT} to pod x_default, uid : ")
    assert working_error is None


class _Transport:
    def __init__(self) -> None:
        self.reading = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True


class _Protocol:
    def __init__(self) -> None:
        self.transport = _Transport()
        self.parser = None

    def set_parser(self, parser: object) -> None:
        self.parser = parser


async def test_upgraded_connection_stops_reading_the_socket_while_chunks_pile_up() -> None:
    request = type("Request", (), {"protocol": _Protocol()})()
    wire = portforward._UpgradedWire(request)  # type: ignore[arg-type]
    transport = request.protocol.transport
    assert request.protocol.parser is wire  # aiohttp hands it the bytes after the 101
    for n in range(wire.HIGH_WATER):
        wire.feed_data(b"%d" % n)
    assert not transport.reading
    while transport.reading is False:
        await wire.read()
    assert wire._queue.qsize() < wire.HIGH_WATER // 4
