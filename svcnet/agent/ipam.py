"""Pod IP leases from a node's pod CIDRs, persisted so an agent restart never hands out an address twice.

Like the host-local IPAM plugin: the first address (.1) is the bridge gateway;
addresses are handed out from .2 upward, continuing after the last one handed
out and wrapping round, so a just-released address is not reused at once
(stale conntrack entries and endpoints would otherwise reach the new pod).
The IPv6 address of a dual-stack pod uses the same host number as its IPv4
one (10.244.1.8 ↔ fd00:10:244:1::8), which keeps it unique and readable.

`LeaseTable` and its functions are pure; `LeaseStore` is the JSON file
(written atomically, read-modify-written under an flock so two agent
processes for one node cannot both take an address).
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import ipaddress
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson

T = TypeVar("T")
FORMAT_VERSION = 1


class IpamError(Exception):
    """No address can be given (range exhausted, CIDR changed, unreadable file); the message says which."""


@dataclass(frozen=True)
class PodLease:
    pod_uid: str
    netns: str
    ipv4: str
    ipv6: str | None = None

    @property
    def ips(self) -> tuple[str, ...]:
        """As Pod.status.podIPs: primary family first."""
        return (self.ipv4,) + ((self.ipv6,) if self.ipv6 else ())


@dataclass(frozen=True)
class LeaseTable:
    pod_cidr_v4: str
    pod_cidr_v6: str | None = None
    leases: tuple[PodLease, ...] = ()
    last_offset: int = 1  # host number handed out last; .1 is the gateway

    def lease_for(self, pod_uid: str) -> PodLease | None:
        return next((lease for lease in self.leases if lease.pod_uid == pod_uid), None)

    @property
    def gateway_v4(self) -> str:
        return str(ipaddress.IPv4Network(self.pod_cidr_v4)[1])

    @property
    def gateway_v6(self) -> str | None:
        return str(ipaddress.IPv6Network(self.pod_cidr_v6)[1]) if self.pod_cidr_v6 else None


def new_table(pod_cidr_v4: str, pod_cidr_v6: str | None = None) -> LeaseTable:
    net4 = ipaddress.IPv4Network(pod_cidr_v4)
    if net4.num_addresses < 4:
        raise IpamError(f"pod CIDR {net4} is too small: it needs a gateway and at least one pod")
    if pod_cidr_v6 is not None:
        net6 = ipaddress.IPv6Network(pod_cidr_v6)
        if net6.num_addresses < net4.num_addresses:
            raise IpamError(f"IPv6 pod CIDR {net6} is smaller than {net4}: host numbers are shared")
    return LeaseTable(pod_cidr_v4=str(net4), pod_cidr_v6=str(ipaddress.IPv6Network(pod_cidr_v6))
                      if pod_cidr_v6 else None)


def allocate(table: LeaseTable, pod_uid: str, netns: str) -> tuple[LeaseTable, PodLease]:
    """The pod's lease: its existing one (same uid) or the next free address after the last handed out."""
    existing = table.lease_for(pod_uid)
    if existing is not None:
        if existing.netns == netns:
            return table, existing
        moved = dataclasses.replace(existing, netns=netns)
        return _with_leases(table, [moved if lease is existing else lease for lease in table.leases]), moved
    holder = next((lease for lease in table.leases if lease.netns == netns), None)
    if holder is not None:
        raise IpamError(f"namespace {netns} is already leased to pod {holder.pod_uid}, not {pod_uid}")
    net4 = ipaddress.IPv4Network(table.pod_cidr_v4)
    usable = range(2, net4.num_addresses - 1)  # not the network, the gateway or the broadcast address
    base = int(net4.network_address)
    taken = {_ipv4_int(lease.ipv4) - base for lease in table.leases}
    start = table.last_offset + 1
    for step in range(len(usable)):
        offset = usable.start + (start - usable.start + step) % len(usable)
        if offset not in taken:
            lease = PodLease(
                pod_uid=pod_uid,
                netns=netns,
                ipv4=str(net4[offset]),
                ipv6=str(ipaddress.IPv6Network(table.pod_cidr_v6)[offset]) if table.pod_cidr_v6 else None,
            )
            updated = dataclasses.replace(table, leases=table.leases + (lease,), last_offset=offset)
            return updated, lease
    raise IpamError(f"no free address in {net4}: all {len(usable)} are leased")


def _ipv4_int(address: str) -> int:
    """A dotted quad as an integer; the leases' own addresses, which allocate wrote (ipaddress's
    parser took 0.6 ms of an allocation at 250 leases)."""
    a, b, c, d = address.split(".")
    return int(a) << 24 | int(b) << 16 | int(c) << 8 | int(d)


def release(table: LeaseTable, pod_uid: str) -> tuple[LeaseTable, PodLease | None]:
    """Drop the pod's lease; releasing an unknown pod is not an error (teardown is idempotent)."""
    lease = table.lease_for(pod_uid)
    if lease is None:
        return table, None
    return _with_leases(table, [x for x in table.leases if x is not lease]), lease


def release_missing(table: LeaseTable, live_netns: Iterable[str]) -> tuple[LeaseTable, tuple[PodLease, ...]]:
    """Free leases whose pod namespace no longer exists (a crash between setup and teardown leaks them)."""
    live = set(live_netns)
    leaked = tuple(lease for lease in table.leases if lease.netns not in live)
    if not leaked:
        return table, ()
    return _with_leases(table, [lease for lease in table.leases if lease.netns in live]), leaked


def _with_leases(table: LeaseTable, leases: Iterable[PodLease]) -> LeaseTable:
    return dataclasses.replace(table, leases=tuple(leases))


# ---- JSON form


def table_to_json(table: LeaseTable) -> dict[str, Any]:
    return {
        "version": FORMAT_VERSION,
        "podCIDRs": [c for c in (table.pod_cidr_v4, table.pod_cidr_v6) if c],
        "lastOffset": table.last_offset,
        "leases": [{"podUID": x.pod_uid, "netns": x.netns, "ips": list(x.ips)} for x in table.leases],
    }


def table_from_json(data: dict[str, Any]) -> LeaseTable:
    try:
        if data.get("version") != FORMAT_VERSION:
            raise IpamError(f"lease file version {data.get('version')!r} is not {FORMAT_VERSION}")
        cidrs = list(data["podCIDRs"])
        leases = []
        for item in data["leases"]:
            ips = list(item["ips"])
            leases.append(PodLease(pod_uid=str(item["podUID"]), netns=str(item["netns"]), ipv4=ips[0],
                                   ipv6=ips[1] if len(ips) > 1 else None))
        return LeaseTable(pod_cidr_v4=cidrs[0], pod_cidr_v6=cidrs[1] if len(cidrs) > 1 else None,
                          leases=tuple(leases), last_offset=int(data["lastOffset"]))
    except (KeyError, IndexError, TypeError, ValueError) as e:
        raise IpamError(f"malformed lease file: {e!r}") from e


# ---- the file


def _identity(st: os.stat_result) -> tuple[int, int, int]:
    return st.st_ino, st.st_mtime_ns, st.st_size


class LeaseStore:
    """One node's leases in `path` (JSON). Every operation reads the file, changes it and writes it back."""

    def __init__(self, path: Path | str, pod_cidr_v4: str, pod_cidr_v6: str | None = None) -> None:
        self.path = Path(path)
        self._empty = new_table(pod_cidr_v4, pod_cidr_v6)
        # The table as last read or written, with the file's identity then (inode, mtime, size): a
        # read of an unchanged file takes it from here. Every write replaces the file (a new inode),
        # so another process's write is never mistaken for ours. Parsing and rebuilding ~250 leases
        # on every allocation was 3.4 ms a pod more at 250 pods than at 10, under the node's lock.
        self._cached: tuple[tuple[int, int, int], LeaseTable] | None = None

    def load(self) -> LeaseTable:
        with self._locked():
            return self._read()

    def allocate(self, pod_uid: str, netns: str) -> PodLease:
        return self._update(lambda t: allocate(t, pod_uid, netns))

    def release(self, pod_uid: str) -> PodLease | None:
        return self._update(lambda t: release(t, pod_uid))

    def release_missing(self, live_netns: Iterable[str]) -> tuple[PodLease, ...]:
        live = tuple(live_netns)
        return self._update(lambda t: release_missing(t, live))

    def _update(self, change: Callable[[LeaseTable], tuple[LeaseTable, T]]) -> T:
        with self._locked():
            table = self._read()
            updated, result = change(table)
            if updated != table:
                self._write(updated)
            return result

    def _read(self) -> LeaseTable:
        try:
            identity = _identity(os.stat(self.path))
        except FileNotFoundError:
            return self._empty
        if self._cached is not None and self._cached[0] == identity:
            return self._cached[1]
        try:
            raw = self.path.read_text()
        except FileNotFoundError:
            return self._empty
        try:
            table = table_from_json(json.loads(raw))
        except json.JSONDecodeError as e:
            raise IpamError(f"lease file {self.path} is not JSON: {e}") from e
        if (table.pod_cidr_v4, table.pod_cidr_v6) != (self._empty.pod_cidr_v4, self._empty.pod_cidr_v6):
            raise IpamError(
                f"lease file {self.path} is for pod CIDRs {table.pod_cidr_v4}, {table.pod_cidr_v6} but this node "
                f"has {self._empty.pod_cidr_v4}, {self._empty.pod_cidr_v6}; remove its pods (or the file) first")
        self._cached = (identity, table)
        return table

    def _write(self, table: LeaseTable) -> None:
        """Write to a temporary file and rename it over: an agent that dies mid-write leaves the old
        table or the new one, never half of one.

        Not fsynced, as CNI's host-local plugin does not sync its lease files: a lease matters only
        while its pod's processes and namespace exist, and none of them outlives a crash of the
        machine, while what the page cache holds outlives a crash of the agent. An fsync per pod (two
        of them, with the directory's) serialized every sync worker of a burst behind the disk (17%
        of the agent's samples in a 200-pod burst, docs/benchmarks.md, issue 13)."""
        # orjson: the same indented, key-sorted text as json.dumps(indent=2, sort_keys=True), ~10x faster.
        data = orjson.dumps(table_to_json(table), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                identity = _identity(os.fstat(f.fileno()))
            os.replace(tmp, self.path)
            self._cached = (identity, table)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
