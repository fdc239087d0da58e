"""serve_hostname: answers with the pod's hostname, as Kubernetes' serve-hostname test image does.

HTTP on TCP 9376 by default (the body is the hostname, no newline); --udp
answers each datagram with the hostname; --tcp writes the hostname to each TCP
connection and closes it (instead of HTTP: both need the TCP port). Unlike
upstream, which idles for 60 s after SIGTERM so the pod is killed at the end of
its grace period, this one exits at once, so deleting a pod does not take 30 s.

HTTP is answered by a few lines here rather than the standard library's
http.server: that import (email, http.client, ssl) was 60% of this program's
start-up, paid again by every pod (docs/benchmarks.md, "Pod start"). What the
answer looks like follows Go's net/http, which the upstream image uses: keep-alive
by default for HTTP/1.1, the Date/Content-Length/Content-Type header lines, 400
for a malformed request and 431 past Go's 1 MiB header limit.
"""
from __future__ import annotations

import argparse
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence

# Go's net/http limits a request's header to DefaultMaxHeaderBytes (1 MiB) plus 4 KiB of slack
# (server.go, initialReadLimitSize) and answers 431 past it.
MAX_HEADER_BYTES = (1 << 20) + 4096
_BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request"
_TOO_LARGE = (b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; charset=utf-8\r\n"
              b"Connection: close\r\n\r\n431 Request Header Fields Too Large")


def log(message: str) -> None:
    # Go's log package format: "2006/01/02 15:04:05 message".
    print(time.strftime("%Y/%m/%d %H:%M:%S ") + message, file=sys.stderr, flush=True)


def _dual_stack_socket(kind: int, port: int) -> socket.socket:
    """Listen on every address, IPv4 and IPv6, as Go's ":port" does; IPv4 only where IPv6 is off."""
    try:
        sock = socket.socket(socket.AF_INET6, kind)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        address: tuple[str, int] = ("::", port)
    except OSError:
        sock = socket.socket(socket.AF_INET, kind)
        address = ("0.0.0.0", port)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    return sock


def _peer(address: tuple) -> str:
    host, port = address[0], address[1]
    host = host.removeprefix("::ffff:")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _Request:
    """What answering needs from one request's head: the method, and whether the connection stays open."""

    def __init__(self, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[0].isalpha() or not parts[2].startswith("HTTP/1."):
            raise ValueError("malformed request line")
        self.method, version = parts[0], parts[2]
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon or not name or name != name.strip():
                raise ValueError("malformed header line")
            headers[name.lower()] = value.strip()
        connection = headers.get("connection", "").lower()
        self.keep_alive = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
        self.chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length = headers.get("content-length", "0")
        if not length.isdigit():
            raise ValueError("bad Content-Length")
        self.content_length = int(length)


def _response(body: bytes, request: _Request, close: bool) -> bytes:
    # The header lines Go's net/http writes for a handler that only writes a short body.
    lines = ["HTTP/1.1 200 OK", time.strftime("Date: %a, %d %b %Y %H:%M:%S GMT", time.gmtime()),
             f"Content-Length: {len(body)}", "Content-Type: text/plain; charset=utf-8"]
    if close:
        lines.append("Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    return head if request.method == "HEAD" else head + body


def serve_http_connection(conn: socket.socket, address: tuple, body: bytes, close: bool) -> None:
    """Answer every request on one connection with the hostname (any method, any path, as Go's mux)."""
    buffer = b""
    with conn:
        while True:
            while b"\r\n\r\n" not in buffer:
                if len(buffer) > MAX_HEADER_BYTES:
                    conn.sendall(_TOO_LARGE)
                    return
                data = conn.recv(65536)
                if not data:
                    return
                buffer += data
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            try:
                request = _Request(head)
            except (ValueError, UnicodeDecodeError):
                conn.sendall(_BAD_REQUEST)
                return
            log(f"HTTP request from {_peer(address)}")
            closing = close or not request.keep_alive or request.chunked
            conn.sendall(_response(body, request, closing))
            if closing:
                return
            # Skip the request's body so the next request's head is read from where it starts.
            while len(buffer) < request.content_length:
                data = conn.recv(65536)
                if not data:
                    return
                buffer += data
            buffer = buffer[request.content_length:]


def serve_http(sock: socket.socket, hostname: str, close: bool) -> None:
    sock.listen(128)
    body = hostname.encode()
    while True:
        conn, address = sock.accept()
        threading.Thread(target=serve_http_connection, args=(conn, address, body, close), daemon=True).start()


def serve_tcp(sock: socket.socket, hostname: str) -> None:
    sock.listen(128)
    while True:
        conn, address = sock.accept()
        log(f"TCP request from {_peer(address)}")
        with conn:
            conn.sendall(hostname.encode())


def serve_udp(sock: socket.socket, hostname: str) -> None:
    while True:
        _, address = sock.recvfrom(16)
        log(f"UDP request from {_peer(address)}")
        sock.sendto(hostname.encode(), address)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="serve_hostname", description="Serves the hostname over HTTP/TCP/UDP.")
    parser.add_argument("--tcp", action=argparse.BooleanOptionalAction, default=False, help="serve raw over TCP")
    parser.add_argument("--udp", action=argparse.BooleanOptionalAction, default=False, help="serve raw over UDP")
    parser.add_argument("--http", action=argparse.BooleanOptionalAction, default=True, help="serve HTTP")
    parser.add_argument("--close", action="store_true", help="close the connection after each HTTP request")
    parser.add_argument("--port", type=int, default=9376)
    # Go flag syntax (-tcp, -port=9376) as upstream's manifests pass it.
    args = parser.parse_args([("-" + a if a.startswith("-") and not a.startswith("--") else a) for a in
                              (sys.argv[1:] if argv is None else argv)])
    if args.http and args.tcp:
        log("Can't serve TCP mode and HTTP mode at the same time")
        return 1
    hostname = socket.gethostname()
    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        received.append(signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        if args.tcp:
            threading.Thread(target=serve_tcp, args=(_dual_stack_socket(socket.SOCK_STREAM, args.port), hostname),
                             daemon=True).start()
        if args.udp:
            threading.Thread(target=serve_udp, args=(_dual_stack_socket(socket.SOCK_DGRAM, args.port), hostname),
                             daemon=True).start()
        if args.http:
            threading.Thread(target=serve_http, args=(_dual_stack_socket(socket.SOCK_STREAM, args.port), hostname,
                                                      args.close), daemon=True).start()
    except OSError as error:
        log(f"Error listening on port {args.port}: {error}")
        return 1
    log(f"Serving on port {args.port}.")
    while not stop.wait(3600):
        pass
    log(f"Shutting down after receiving signal: {(signal.strsignal(received[0]) or str(received[0])).lower()}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
