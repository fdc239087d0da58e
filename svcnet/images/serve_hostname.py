"""serve_hostname: answers with the pod's hostname, as Kubernetes' serve-hostname test image does.

HTTP on TCP 9376 by default (the body is the hostname, no newline); --udp
answers each datagram with the hostname; --tcp writes the hostname to each TCP
connection and closes it (instead of HTTP: both need the TCP port). Unlike
upstream, which idles for 60 s after SIGTERM so the pod is killed at the end of
its grace period, this one exits at once, so deleting a pod does not take 30 s.
"""
from __future__ import annotations

import argparse
import http.server
import signal
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Sequence


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


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

    def __init__(self, sock: socket.socket, handler: type) -> None:
        super().__init__(sock.getsockname()[:2], handler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock
        self.address_family = sock.family
        self.server_activate()


def make_handler(hostname: str, close: bool) -> type[http.server.BaseHTTPRequestHandler]:
    body = hostname.encode()

    class HostnameHandler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self, with_body: bool) -> None:
            log(f"HTTP request from {_peer(self.client_address)}")
            self.send_response_only(200)
            self.send_header("Date", self.date_time_string())
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if with_body:
                self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - the http.server protocol
            self._answer(True)

        do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_GET  # noqa: N815 - any method, as Go's mux

        def do_HEAD(self) -> None:  # noqa: N802
            self._answer(False)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
            pass

    return HostnameHandler


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
            server = _Server(_dual_stack_socket(socket.SOCK_STREAM, args.port), make_handler(hostname, args.close))
            threading.Thread(target=server.serve_forever, daemon=True).start()
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
