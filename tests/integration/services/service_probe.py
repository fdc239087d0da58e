"""A small datagram/SCTP client the live Service tests run inside a pod (no project imports: a pod runs it
with the host's Python from this file's path).

    service_probe.py udp HOST PORT --count N                 one datagram from each of N fresh source ports
    service_probe.py udp HOST PORT --sport P                 one datagram from source port P
    service_probe.py udp HOST PORT --sport P --until-not NAME --deadline S
                                                             from port P every 0.2 s until a reply is not NAME
    service_probe.py sctp HOST PORT --count N                N SCTP associations, each reads one reply

Each reply (the serving pod's hostname) is printed on its own line, `<timeout>` for a datagram left
unanswered for a second. The --until-not loop keeps the same flow (same 5-tuple) alive, so only the
proxy deleting its conntrack entry can move it to another endpoint before the entry would time out.
"""
from __future__ import annotations

import argparse
import socket
import time

IPPROTO_SCTP = 132


def udp_once(host: str, port: int, sport: int) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0", sport))
        sock.settimeout(1.0)
        sock.sendto(b"hostname?", (host, port))
        try:
            return sock.recv(512).decode()
        except TimeoutError:
            return "<timeout>"


def sctp_once(host: str, port: int) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_SCTP) as sock:
        sock.settimeout(2.0)
        sock.connect((host, port))
        return sock.recv(512).decode()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("protocol", choices=("udp", "sctp"))
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--sport", type=int, default=0)
    parser.add_argument("--until-not", default=None)
    parser.add_argument("--deadline", type=float, default=30.0)
    args = parser.parse_args()
    if args.protocol == "sctp":
        for _ in range(args.count):
            print(sctp_once(args.host, args.port), flush=True)
        return
    if args.until_not is None:
        for _ in range(args.count):
            print(udp_once(args.host, args.port, args.sport), flush=True)
        return
    deadline = time.monotonic() + args.deadline
    while time.monotonic() < deadline:
        reply = udp_once(args.host, args.port, args.sport)
        print(reply, flush=True)
        if reply not in (args.until_not, "<timeout>"):
            return
        time.sleep(0.2)


if __name__ == "__main__":
    main()
