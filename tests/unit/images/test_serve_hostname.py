"""serve_hostname's HTTP answers, over a socketpair (no network): what Go's net/http gives the upstream image."""
from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from svcnet.images import serve_hostname


@pytest.fixture
def connect() -> Iterator:
    threads: list[threading.Thread] = []
    clients: list[socket.socket] = []

    def start(close: bool = False) -> socket.socket:
        client, server = socket.socketpair()
        client.settimeout(10)
        thread = threading.Thread(target=serve_hostname.serve_http_connection,
                                  args=(server, ("10.244.1.5", 40000), b"pod-a", close), daemon=True)
        thread.start()
        threads.append(thread)
        clients.append(client)
        return client

    yield start
    for client in clients:
        client.close()
    for thread in threads:
        thread.join(10)
        assert not thread.is_alive()


def read_response(client: socket.socket) -> tuple[str, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = client.recv(4096)
        assert chunk, f"connection closed mid-head: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return lines[0], headers, rest


def read_to_close(client: socket.socket) -> bytes:
    data = b""
    while chunk := client.recv(4096):
        data += chunk
    return data


def test_a_get_is_answered_with_the_hostname_and_gos_headers(connect) -> None:
    client = connect()
    client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n")
    status, headers, rest = read_response(client)
    assert status == "HTTP/1.1 200 OK"
    assert list(headers) == ["Date", "Content-Length", "Content-Type"]
    assert headers["Content-Length"] == "5" and headers["Content-Type"] == "text/plain; charset=utf-8"
    assert headers["Date"].endswith(" GMT")
    while len(rest) < 5:
        rest += client.recv(4096)
    assert rest == b"pod-a"


def test_a_kept_alive_connection_answers_each_request_skipping_request_bodies(connect) -> None:
    client = connect()
    client.sendall(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world"
                   b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    client.sendall(b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = read_to_close(client)
    responses = data.split(b"HTTP/1.1 ")[1:]
    assert len(responses) == 3
    assert responses[0].startswith(b"200 OK") and responses[0].endswith(b"pod-a")
    assert responses[1].endswith(b"pod-a")
    assert b"Connection: close" in responses[2] and responses[2].endswith(b"\r\n\r\n")  # HEAD: no body


def test_an_http_1_0_request_without_keep_alive_is_answered_then_closed(connect) -> None:
    client = connect()
    client.sendall(b"GET / HTTP/1.0\r\n\r\n")
    assert read_to_close(client).endswith(b"\r\n\r\npod-a")


def test_close_mode_says_connection_close_and_closes(connect) -> None:
    client = connect(close=True)
    client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    data = read_to_close(client)
    assert b"Connection: close\r\n" in data and data.endswith(b"pod-a")


@pytest.mark.parametrize("request_bytes", [b"garbage\r\n\r\n", b"GET / SPDY/3\r\n\r\n", b"GET / HTTP/1.1\r\nno colon\r\n\r\n",
                                           b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"])
def test_a_malformed_request_gets_400_and_the_connection_closes(connect, request_bytes: bytes) -> None:
    client = connect()
    client.sendall(request_bytes)
    assert read_to_close(client).startswith(b"HTTP/1.1 400 Bad Request\r\n")


def test_a_header_past_gos_limit_gets_431(connect) -> None:
    client = connect()
    client.sendall(b"GET / HTTP/1.1\r\nX-Big: " + b"a" * serve_hostname.MAX_HEADER_BYTES)
    assert read_to_close(client).startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
