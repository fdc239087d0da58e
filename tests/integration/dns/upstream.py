"""A tiny upstream resolver for the forwarding tests (dnspython, UDP and TCP, one process).

    python -m tests.integration.dns.upstream PORT [ADDRESS [A_ADDRESS]]   (ADDRESS: default 127.0.0.1)

Answers: NAME.example.org and NAME.example.lan A -> A_ADDRESS (default 192.0.2.1; TTL 300), so two
instances tell which one answered; nx.example.org -> NXDOMAIN (SOA minimum 60);
big.example.org TXT -> 40 strings (too big for 512 bytes, so TC over UDP);
9.9.9.9.in-addr.arpa PTR -> dns9.quad9.net.; queries.test TXT NAME -> how many times NAME was asked.
"""
from __future__ import annotations

import socket
import socketserver
import struct
import sys
import threading
from collections import Counter

import dns.message
import dns.rcode
import dns.rrset

asked: Counter[str] = Counter()
a_address = "192.0.2.1"
lock = threading.Lock()


def answer(wire: bytes, tcp: bool) -> bytes | None:
    try:
        query = dns.message.from_wire(wire)
    except Exception:
        return None
    question = query.question[0]
    name = question.name.to_text().lower()
    qtype = dns.rdatatype.to_text(question.rdtype)
    response = dns.message.make_response(query)
    response.flags |= dns.flags.RA
    if name.endswith("queries.test."):
        asked_name = name[: -len("queries.test.")]
        with lock:
            count = asked[asked_name]
        response.answer.append(dns.rrset.from_text(name, 0, "IN", "TXT", f'"{count}"'))
        return response.to_wire()
    with lock:
        asked[name] += 1
    if name == "nx.example.org.":
        response.set_rcode(dns.rcode.NXDOMAIN)
        response.authority.append(dns.rrset.from_text(
            "example.org.", 3600, "IN", "SOA", "ns.example.org. admin.example.org. 1 7200 900 1209600 60"))
    elif name == "big.example.org." and qtype == "TXT":
        texts = [f'"{"x" * 40}-{i}"' for i in range(40)]
        response.answer.append(dns.rrset.from_text(name, 300, "IN", "TXT", *texts))
    elif name.endswith(("example.org.", "example.lan.")) and qtype == "A":
        response.answer.append(dns.rrset.from_text(name, 300, "IN", "A", a_address))
    elif name == "9.9.9.9.in-addr.arpa." and qtype == "PTR":
        response.answer.append(dns.rrset.from_text(name, 300, "IN", "PTR", "dns9.quad9.net."))
    elif name == "." and qtype == "NS":
        response.answer.append(dns.rrset.from_text(".", 300, "IN", "NS", "a.root-servers.net."))
    wire_out = response.to_wire(max_size=65535)
    if not tcp and len(wire_out) > 512:
        response.answer = []
        response.flags |= dns.flags.TC
        wire_out = response.to_wire()
    return wire_out


class Udp(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        data, sock = self.request
        reply = answer(data, tcp=False)
        if reply:
            sock.sendto(reply, self.client_address)


class Tcp(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        conn: socket.socket = self.request
        while True:
            head = conn.recv(2)
            if len(head) < 2:
                return
            length = struct.unpack("!H", head)[0]
            data = b""
            while len(data) < length:
                chunk = conn.recv(length - len(data))
                if not chunk:
                    return
                data += chunk
            reply = answer(data, tcp=True)
            if reply:
                conn.sendall(struct.pack("!H", len(reply)) + reply)


class ThreadedUdp(socketserver.ThreadingMixIn, socketserver.UDPServer):
    daemon_threads = True


class ThreadedTcp(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main() -> None:
    global a_address
    port = int(sys.argv[1])
    a_address = sys.argv[3] if len(sys.argv) > 3 else a_address
    address = sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1"
    udp = ThreadedUdp((address, port), Udp)
    tcp = ThreadedTcp((address, port), Tcp)
    threading.Thread(target=tcp.serve_forever, daemon=True).start()
    print("ready", flush=True)
    udp.serve_forever()


if __name__ == "__main__":
    main()
