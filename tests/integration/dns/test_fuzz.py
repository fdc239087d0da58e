"""Robustness: 100,000 malformed and random packets over UDP and TCP (a seeded generator).

The server must stay up, never answer a response packet, answer header-level
errors as miekg/dns does (NOTIMP for other opcodes, FORMERR for wrong section
counts, nothing for packets shorter than a header), send only well-formed
replies carrying the query's ID, and keep answering a valid query throughout.
"""
from __future__ import annotations

import random
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import dns.message
import pytest

from tests.integration.dns.harness import DnsProcess, dig_available
from tests.unit.dns.cases import CLUSTER

pytestmark = pytest.mark.skipif(not dig_available(), reason="dig (dnsutils) is not installed")

UDP_PACKETS = 80_000
TCP_PACKETS = 20_000
BATCH = 200
SENTINEL_ID = 0xFFFF


def encode_name(name: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".") if p) + b"\x00"


def query(qid: int, name: str, qtype: int, *, edns: bytes | None = None, flags: int = 0x0100) -> bytes:
    body = encode_name(name) + struct.pack("!HH", qtype, 1)
    header = struct.pack("!HHHHHH", qid, flags, 1, 0, 0, 1 if edns is not None else 0)
    return header + body + (edns or b"")


def opt(size: int = 1232, version: int = 0, do: bool = False, options: bytes = b"") -> bytes:
    return b"\x00" + struct.pack("!HHIH", 41, size, (version << 16) | (0x8000 if do else 0), len(options)) + options


NAMES = ["kubernetes.default.svc.cluster.local", "web.default.svc.cluster.local", "big.default.svc.cluster.local",
         "nope.default.svc.cluster.local", "_http._tcp.web.default.svc.cluster.local", "cluster.local",
         "1.0.96.10.in-addr.arpa", "example.org", "1-2-3-4.default.pod.cluster.local", "a.b.c.d.e.f.g.h"]
SENTINEL = query(SENTINEL_ID, "kubernetes.default.svc.cluster.local", 1)


def mutate(rng: random.Random) -> bytes:
    base = query(rng.randrange(0x10000), rng.choice(NAMES), rng.choice([1, 28, 33, 12, 6, 2, 16, 255, 252, 65]),
                 edns=rng.choice([None, opt(), opt(do=True), opt(options=b"\x00\x0a\x00\x08" + bytes(8)),
                                  opt(version=rng.randrange(1, 256)), opt(size=rng.randrange(0, 600))]))
    data = bytearray(base)
    kind = rng.randrange(9)
    if kind == 0:  # bit flips
        for _ in range(rng.randrange(1, 6)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif kind == 1:  # truncated anywhere
        data = data[: rng.randrange(len(data))]
    elif kind == 2:  # section counts
        struct.pack_into("!HHHH", data, 4, *(rng.choice([0, 1, 2, 3, 0xFFFF]) for _ in range(4)))
    elif kind == 3:  # trailing junk
        data += rng.randbytes(rng.randrange(1, 64))
    elif kind == 4:  # label soup: compression pointers, long labels, zero bytes
        soup = bytearray()
        for _ in range(rng.randrange(1, 8)):
            choice = rng.randrange(4)
            if choice == 0:
                soup += bytes([0xC0 | rng.randrange(64), rng.randrange(256)])
            elif choice == 1:
                soup += bytes([rng.randrange(64, 256)]) + rng.randbytes(rng.randrange(8))
            else:
                label = rng.randbytes(rng.randrange(1, 64))
                soup += bytes([len(label)]) + label
        data = data[:12] + soup + b"\x00" + rng.randbytes(4)
    elif kind == 5:  # opcode / QR / Z
        data[2] = rng.randrange(256)
        data[3] = rng.randrange(256)
    elif kind == 6:  # random bytes
        data = bytearray(rng.randbytes(rng.randrange(0, 600)))
    elif kind == 7:  # an RR in the answer section with a bad rdata length
        struct.pack_into("!H", data, 6, 1)
        data += b"\x00" + struct.pack("!HHIH", 1, 1, 0, rng.randrange(0, 20)) + rng.randbytes(rng.randrange(0, 8))
    else:  # unchanged but for the ID
        pass
    return bytes(data)


def expectation(packet: bytes) -> str:
    """What miekg/dns does, from the header alone: 'drop', 'notimp', 'formerr' or 'reply'."""
    if len(packet) < 12:
        return "drop"
    flags, qd, an, ns, ar = struct.unpack_from("!HHHHH", packet, 2)
    if flags & 0x8000:
        return "drop"
    if (flags >> 11) & 0xF not in (0, 4):
        return "notimp"
    if qd != 1 or an > 1 or ns > 1 or ar > 2:
        return "formerr"
    return "reply"


def check_reply(packet: bytes, reply: bytes) -> None:
    assert reply[:2] == packet[:2], "the reply carries the query's ID"
    assert reply[2] & 0x80, "a reply has QR set"
    dns.message.from_wire(reply, ignore_trailing=False)  # well-formed
    want = expectation(packet)
    rcode = reply[3] & 0xF
    assert want != "drop", f"answered a packet it should drop: {packet!r}"
    if want == "notimp":
        assert rcode == 4
    elif want == "formerr":
        assert rcode == 1


def assert_sentinel(reply: bytes) -> None:
    msg = dns.message.from_wire(reply)
    assert msg.rcode() == 0 and msg.answer[0][0].to_text() == "10.96.0.1"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DnsProcess]:
    proc = DnsProcess(["--from", str(CLUSTER), "--upstream", "none", "--workers", "1"],
                      Path(tmp_path_factory.mktemp("fuzz") / "dns.log")).start()
    yield proc
    proc.stop()


def test_udp_fuzz_never_crashes_and_answers_as_miekg(server: DnsProcess) -> None:
    rng = random.Random(20240601)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", server.port))
    sent = 0
    answered = 0
    while sent < UDP_PACKETS:
        batch: dict[int, bytes] = {}
        for index in range(BATCH):
            packet = mutate(rng)
            if len(packet) >= 2:  # a unique ID per packet, so replies can be matched
                packet = struct.pack("!H", index) + packet[2:]
            batch[index] = packet
            sock.send(packet)
        sent += BATCH
        sock.send(SENTINEL)
        while True:  # one socket, one worker, in order: the sentinel's reply comes last
            reply = sock.recv(65535)
            qid = struct.unpack_from("!H", reply)[0]
            if qid == SENTINEL_ID:
                assert_sentinel(reply)
                break
            check_reply(batch[qid], reply)
            answered += 1
        assert server.alive()
    sock.close()
    assert answered > UDP_PACKETS // 4


def test_tcp_fuzz_never_crashes_and_answers_as_miekg(server: DnsProcess) -> None:
    rng = random.Random(77)
    sent = 0
    while sent < TCP_PACKETS:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as conn:
            batch: dict[int, bytes] = {}
            out = bytearray()
            for index in range(BATCH):
                packet = mutate(rng)
                if len(packet) < 2:
                    continue  # zero or one byte: on TCP that is a framing error, tested below
                packet = struct.pack("!H", index) + packet[2:]
                batch[index] = packet
                out += struct.pack("!H", len(packet)) + packet
            out += struct.pack("!H", len(SENTINEL)) + SENTINEL
            conn.sendall(out)
            sent += BATCH
            reader = conn.makefile("rb")
            while True:
                head = reader.read(2)
                assert len(head) == 2, "the server closed the connection early"
                reply = reader.read(struct.unpack("!H", head)[0])
                qid = struct.unpack_from("!H", reply)[0]
                if qid == SENTINEL_ID:
                    assert_sentinel(reply)
                    break
                check_reply(batch[qid], reply)
        assert server.alive()


def test_broken_tcp_framing_closes_only_that_connection(server: DnsProcess) -> None:
    rng = random.Random(5)
    for _ in range(200):
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as conn:
            conn.sendall(rng.randbytes(rng.randrange(1, 40)))
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as conn:
        conn.sendall(struct.pack("!H", len(SENTINEL)) + SENTINEL)
        reader = conn.makefile("rb")
        length = struct.unpack("!H", reader.read(2))[0]
        assert_sentinel(reader.read(length))
    assert server.alive()
