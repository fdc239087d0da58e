"""Where the Service allocators' truth is kept when several API servers share one store.

kube-apiserver keeps it in etcd, in two forms, and svcnet keeps both as it does:

- ClusterIPs as one IPAddress object per address (networking.k8s.io, named by the address,
  parentRef naming the Service: pkg/registry/core/service/ipallocator/ipallocator.go, the
  MultiCIDRServiceAllocator's). Taking an address is creating its object: a create that finds
  the key already there means another server (or request) holds it, so the allocator marks it
  taken and tries the next. Releasing is deleting it. One write per address, no contention
  between servers on one shared record, and a watch on the objects tells every server what the
  others took and gave back.
- NodePorts as one RangeAllocation snapshot, a bitmap of the range, under
  /registry/ranges/servicenodeports (pkg/registry/core/service/allocator/storage/storage.go):
  read, change, written back naming the revision read (compare-and-swap); a conflict means
  another server wrote first, so the snapshot is read again and the change re-checked.

This module holds the store's side of both (keys, objects, the snapshot's compare-and-swap);
the choice of what to take stays in service_alloc.py and core/allocator.py.
"""
from __future__ import annotations

import base64
import collections
import functools
import ipaddress
import uuid
from collections.abc import Callable
from typing import Any

from svcnet.core.allocator import bitmap_bytes, bitmap_int
from svcnet.storage.base import Event, KeyExists, KeyNotFound, Record, RevisionConflict, Store

Obj = dict[str, Any]

IP_ADDRESS_PREFIX = "/registry/networking.k8s.io/ipaddresses/"
NODE_PORT_RANGE_KEY = "/registry/ranges/servicenodeports"
# networking.k8s.io/v1 LabelManagedBy / LabelIPAddressFamily and ipallocator.ControllerName.
MANAGED_BY_LABEL = "ipaddress.kubernetes.io/managed-by"
FAMILY_LABEL = "ipaddress.kubernetes.io/ip-family"
MANAGED_BY = "ipallocator.k8s.io"
# How many times a snapshot write is tried again after losing to another server's write.
CAS_ATTEMPTS = 32


@functools.lru_cache(maxsize=4096)
def canonical(ip: str) -> str:
    """An IPAddress object's name: the address in its canonical text (upstream refuses others)."""
    return str(ipaddress.ip_address(ip))


def ip_key(ip: str) -> str:
    return IP_ADDRESS_PREFIX + canonical(ip)


def ip_address_object(ip: str, namespace: str, name: str, now: str) -> Obj:
    family = "IPv6" if ":" in canonical(ip) else "IPv4"
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "IPAddress",
        "metadata": {"name": canonical(ip), "uid": str(uuid.uuid4()), "creationTimestamp": now,
                     "labels": {FAMILY_LABEL: family, MANAGED_BY_LABEL: MANAGED_BY}},
        "spec": {"parentRef": {"group": "", "resource": "services", "namespace": namespace, "name": name}},
    }


def parent_of(ip_object: Obj) -> tuple[str, str] | None:
    """(namespace, name) of the Service an IPAddress object names, None if it names no Service."""
    ref = (ip_object.get("spec") or {}).get("parentRef") or {}
    if ref.get("group", "") != "" or ref.get("resource") != "services":
        return None
    return str(ref.get("namespace") or ""), str(ref.get("name") or "")


class IPAddressFeed:
    """What the other servers did to IPAddress objects, queued by a store watch.

    The watch callback runs in the writing thread, possibly holding the store's lock, so it
    only appends (a deque's append is atomic); the allocator drains the queue under its own
    lock before each allocation. Taking the allocator's lock in the callback could deadlock
    against an allocation that holds it while writing to the store.
    """

    def __init__(self) -> None:
        self._events: collections.deque[tuple[str, str, int]] = collections.deque()
        self._watch = None

    def start(self, store: Store, since_revision: int) -> None:
        self.stop()
        self._watch = store.watch(IP_ADDRESS_PREFIX, since_revision, self._on_event)

    @property
    def ended(self) -> bool:
        """The store ended the watch (etcd lost the history it followed): events may be missing
        from here on, and the table should be read again from a list."""
        return self._watch is not None and self._watch.ended

    def _on_event(self, event: Event) -> None:
        self._events.append((event.type, event.key[len(IP_ADDRESS_PREFIX):], event.revision))

    def drain(self, hold: Callable[[str], None], release: Callable[[str], None], after: int = 0) -> None:
        """Apply the queued events; those at or before revision `after` (a list already
        covered them) are dropped."""
        while self._events:
            kind, ip, revision = self._events.popleft()
            if revision > after:
                (release if kind == "DELETED" else hold)(ip)

    def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None


def create_ip(store: Store, ip: str, namespace: str, name: str, now: str) -> bool:
    """Take an address in the store; False when its IPAddress object already exists."""
    try:
        store.create(ip_key(ip), ip_address_object(ip, namespace, name, now))
    except KeyExists:
        return False
    return True


def ip_taken(store: Store, ip: str) -> bool:
    return store.get(ip_key(ip)) is not None


def delete_ip(store: Store, ip: str) -> None:
    try:
        store.delete(ip_key(ip))
    except KeyNotFound:
        pass


# ------------------------------------------------------------------ NodePorts
# The snapshot is handled as an integer, bit (port - low) set for each port taken: a change is a
# mask or two, not a walk over the range.
def range_object(spec: str, bits: int, now: str) -> Obj:
    return {"apiVersion": "v1", "kind": "RangeAllocation",
            "metadata": {"creationTimestamp": now}, "range": spec,
            "data": base64.b64encode(bitmap_bytes(bits)).decode()}


def bits_of(rec: Record | None, spec: str, size: int) -> int:
    """The taken-bits a stored snapshot holds; 0 when there is none, or it is of another range
    (the repair then writes it anew from the Services)."""
    if rec is None or rec.value.get("range") != spec:
        return 0
    try:
        data = base64.b64decode(rec.value.get("data") or "", validate=True)
    except ValueError:
        return 0
    return bitmap_int(data) & ((1 << size) - 1)


class PortsTaken(Exception):
    """A port this write chose is held in the snapshot another server (or request) just wrote."""


def read_ports(store: Store, spec: str, size: int) -> tuple[int, int]:
    """(the stored snapshot's bits, its revision); (0, 0) when none is stored."""
    rec = store.get(NODE_PORT_RANGE_KEY)
    return (bits_of(rec, spec, size), rec.revision) if rec is not None else (0, 0)


def write_ports(store: Store, spec: str, size: int, known: tuple[int, int],
                change: Callable[[int], int], now: str) -> tuple[int, int]:
    """Apply change to the stored snapshot with compare-and-swap; (bits now stored, revision).

    known: the snapshot as last read (read_ports). After a lost race the snapshot is read
    again and change applied to it again; change raises PortsTaken when the fresh snapshot
    makes it impossible.
    """
    held, revision = known
    for _ in range(CAS_ATTEMPTS):
        wanted = change(held)
        try:
            if revision == 0:
                rec = store.create(NODE_PORT_RANGE_KEY, range_object(spec, wanted, now))
            else:
                rec = store.update(NODE_PORT_RANGE_KEY, range_object(spec, wanted, now),
                                   expected_revision=revision)
            return wanted, rec.revision
        except (RevisionConflict, KeyExists, KeyNotFound):
            held, revision = read_ports(store, spec, size)
    raise RevisionConflict(NODE_PORT_RANGE_KEY, revision, -1)
