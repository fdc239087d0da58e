"""nfacct counters (the kernel's nfnetlink_acct) in one network namespace, over netlink.

kube-proxy's iptables mode counts two kinds of packets with `-m nfacct --nfacct-name NAME` rules and
serves the counts as metrics (pkg/proxy/util/nfacct, pkg/proxy/metrics). As there:
- support is detected by asking for a counter that may not exist: an answer, or "no such object"
  (ENOENT), means the kernel has nfacct; anything else (no nfnetlink, no nfnetlink_acct) means not;
- a counter is ensured by GET, then NEW when GET says ENOENT (NEW on an existing one is EBUSY);
- reading one is a GET by name: packets and bytes.

The netlink socket is made inside the namespace and kept (a netlink socket stays in the namespace it
was made in), so a metrics scrape costs one request and its answer, on the caller's thread.

The protocol is bytes in, bytes out (`request`, `parse_reply`); the socket lives only in
`NetlinkNfacct`. The fake is svcnet.testing.nfacct.FakeNfacct.

Wire format: linux/netlink.h (nlmsghdr, nlmsgerr, nlattr), linux/netfilter/nfnetlink.h (nfgenmsg),
linux/netfilter/nfnetlink_acct.h (NFNL_MSG_ACCT_NEW = 0, _GET = 1; NFACCT_NAME = 1, _PKTS = 2,
_BYTES = 3, the counts big-endian u64; names at most 31 bytes).
"""
from __future__ import annotations

import errno
import itertools
import logging
import os
import socket
import struct
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from svcnet.kernel import KernelError
from svcnet.kernel.netns import run_in_netns

log = logging.getLogger("svcnet.kernel.nfacct")

NETLINK_NETFILTER = 12
NFNL_SUBSYS_ACCT = 7
NFNL_MSG_ACCT_NEW = 0
NFNL_MSG_ACCT_GET = 1
NFACCT_NAME = 1
NFACCT_PKTS = 2
NFACCT_BYTES = 3
NFNETLINK_V0 = 0
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_CREATE = 0x400
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLA_TYPE_MASK = 0x3FFF  # without NLA_F_NESTED / NLA_F_NET_BYTEORDER
MAX_NAME_LENGTH = 31  # NFACCT_NAME_MAX less the NUL
RECV_TIMEOUT = 1.0  # the kernel answers at once; this only bounds a wedged socket
PROBE_NAME = "IMayExist"  # kube-proxy's probe: a name no one creates

_NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_NFGENMSG = struct.Struct("=BBH")  # family, version, res_id (big-endian, 0 here)
_NLATTR = struct.Struct("=HH")  # len, type
_ERROR = struct.Struct("=i")


@dataclass(frozen=True)
class Counter:
    name: str
    packets: int
    bytes: int


class NfacctError(KernelError):
    """The kernel refused an nfacct request; `errno` says why."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.errno = code


class Nfacct(Protocol):
    """The nfacct counters of one namespace."""

    def get(self, name: str) -> Counter | None: ...  # None: no such counter
    def add(self, name: str) -> None: ...
    def close(self) -> None: ...


# --- bytes in, bytes out -----------------------------------------------------------------------------------------

def check_name(name: str) -> bytes:
    encoded = name.encode()
    if not encoded:
        raise NfacctError("nfacct counter name cannot be empty", errno.EINVAL)
    if len(encoded) > MAX_NAME_LENGTH:
        raise NfacctError(f"nfacct counter name {name!r} exceeds {MAX_NAME_LENGTH} bytes", errno.EINVAL)
    return encoded


def request(command: int, name: str, seq: int) -> bytes:
    """A NEW (create) or GET request for one counter by name, asking for an acknowledgement."""
    payload = check_name(name) + b"\0"
    attr = _NLATTR.pack(_NLATTR.size + len(payload), NFACCT_NAME) + payload
    attr += b"\0" * (-len(attr) % 4)
    body = _NFGENMSG.pack(socket.AF_UNSPEC, NFNETLINK_V0, 0) + attr
    flags = NLM_F_REQUEST | NLM_F_ACK | (NLM_F_CREATE if command == NFNL_MSG_ACCT_NEW else 0)
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), (NFNL_SUBSYS_ACCT << 8) | command, flags, seq, 0) + body


def parse_reply(data: bytes, seq: int) -> tuple[list[Counter], bool]:
    """(counters in `data`, whether the acknowledgement ended the answer). Messages of other sequence
    numbers are skipped; an error acknowledgement is raised as NfacctError with its errno."""
    counters: list[Counter] = []
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, kind, _flags, msg_seq, _pid = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size or offset + length > len(data):
            raise NfacctError(f"truncated netlink message ({length} bytes at {offset} of {len(data)})", errno.EIO)
        if msg_seq == seq:
            if kind == NLMSG_ERROR:
                (code,) = _ERROR.unpack_from(data, offset + _NLMSGHDR.size)
                if code:
                    raise NfacctError(os.strerror(-code), -code)
                return counters, True
            if kind == NLMSG_DONE:
                return counters, True
            if kind == (NFNL_SUBSYS_ACCT << 8) | NFNL_MSG_ACCT_NEW:
                counters.append(_counter(data[offset + _NLMSGHDR.size + _NFGENMSG.size:offset + length]))
        offset += (length + 3) & ~3
    return counters, False


def _counter(attrs: bytes) -> Counter:
    name, packets, count_bytes = None, None, None
    offset = 0
    while offset + _NLATTR.size <= len(attrs):
        length, kind = _NLATTR.unpack_from(attrs, offset)
        if length < _NLATTR.size:
            break
        value = attrs[offset + _NLATTR.size:offset + length]
        kind &= NLA_TYPE_MASK
        if kind == NFACCT_NAME:
            name = value.split(b"\0", 1)[0].decode(errors="replace")
        elif kind == NFACCT_PKTS and len(value) == 8:
            packets = int.from_bytes(value, "big")
        elif kind == NFACCT_BYTES and len(value) == 8:
            count_bytes = int.from_bytes(value, "big")
        offset += (length + 3) & ~3
    if name is None or packets is None or count_bytes is None:
        raise NfacctError("nfacct answer without name, packets and bytes", errno.EIO)  # as upstream's strict decode
    return Counter(name, packets, count_bytes)


# --- the socket --------------------------------------------------------------------------------------------------

class NetlinkNfacct:
    """nfacct requests over one NETLINK_NETFILTER socket made inside a namespace. Thread-safe."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._sock.settimeout(RECV_TIMEOUT)
        self._seq = itertools.count(1)
        self._lock = threading.Lock()

    @classmethod
    def in_netns(cls, netns: str) -> NetlinkNfacct:
        """Raises KernelError when the namespace or netfilter's netlink family is not there."""
        try:
            sock = run_in_netns(netns, socket.socket, socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        except OSError as exc:
            raise NfacctError(f"netfilter netlink socket in {netns}: {exc.strerror or exc}", exc.errno or 0) from exc
        return cls(sock)

    def _call(self, command: int, name: str) -> list[Counter]:
        with self._lock:
            seq = next(self._seq)
            try:
                self._sock.send(request(command, name, seq))
                counters: list[Counter] = []
                done = False
                while not done:
                    found, done = parse_reply(self._sock.recv(65536), seq)
                    counters.extend(found)
            except OSError as exc:
                if isinstance(exc, NfacctError):
                    raise
                raise NfacctError(f"nfacct request: {exc.strerror or exc}", exc.errno or errno.EIO) from exc
            return counters

    def get(self, name: str) -> Counter | None:
        try:
            counters = self._call(NFNL_MSG_ACCT_GET, name)
        except NfacctError as exc:
            if exc.errno == errno.ENOENT:
                return None
            raise
        return next((c for c in counters if c.name == name), None)

    def add(self, name: str) -> None:
        self._call(NFNL_MSG_ACCT_NEW, name)

    def close(self) -> None:
        self._sock.close()


def open_nfacct(netns: str) -> NetlinkNfacct | None:
    """The namespace's nfacct counters, or None when the kernel has no nfacct (as kube-proxy decides)."""
    try:
        nfacct = NetlinkNfacct.in_netns(netns)
    except NfacctError as exc:
        log.info("nfacct is not available in %s (%s): no nfacct counters or their metrics", netns, exc)
        return None
    try:
        nfacct.get(PROBE_NAME)
    except NfacctError as exc:
        nfacct.close()
        log.info("nfacct is not available in %s (%s): no nfacct counters or their metrics", netns, exc)
        return None
    return nfacct


def ensure(nfacct: Nfacct, name: str) -> None:
    """The counter exists afterwards (created at zero if it did not); NfacctError if it cannot be."""
    if nfacct.get(name) is not None:
        return
    try:
        nfacct.add(name)
    except NfacctError as exc:
        if exc.errno != errno.EBUSY:  # someone else created it meanwhile: the goal is met
            raise


def read_packets(nfacct: Nfacct, names: Iterable[str]) -> Mapping[str, int]:
    """Packets counted so far by each named counter that exists; a failed read is logged and left out."""
    packets: dict[str, int] = {}
    for name in names:
        try:
            counter = nfacct.get(name)
        except NfacctError as exc:
            log.error("cannot read nfacct counter %s: %s", name, exc)
            continue
        if counter is not None:
            packets[name] = counter.packets
    return packets
