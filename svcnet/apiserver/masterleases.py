"""Which API servers are live, for default/kubernetes's endpoints: kube-apiserver's lease
endpoint reconciler (pkg/controlplane/reconcilers/lease.go, the default
--endpoint-reconciler-type).

Each server renews a record of its own address under /registry/masterleases/ every
reconcile interval, and lists everyone's: the endpoints are the addresses whose records are
live, so several servers agree on one list instead of each writing its own address over the
others'. Upstream's records expire with an etcd TTL; the store here has none, so a record is
live while it changed within TTL of when *this* server last saw it change (each renewal is a
new revision): the same rule as a Lease's standby uses, and no two machines' clocks are
compared. A server that stops cleanly deletes its record.
"""
from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable

from svcnet.storage.base import KeyNotFound, Store

PREFIX = "/registry/masterleases/"
# kube-apiserver's --endpoint-reconciler ttl (masterEndpointReconcileTTL) and how often its
# controller reconciles (DefaultEndpointReconcilerInterval).
TTL = 15.0


class MasterLeases:
    def __init__(self, store: Store, ip: str, *, ttl: float = TTL,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.ip = str(ipaddress.ip_address(ip))
        self.ttl = ttl
        self._monotonic = monotonic
        self._seen: dict[str, tuple[int, float]] = {}  # key -> (revision, when we first saw it)
        self._renewals = 0

    def renew(self) -> None:
        """Write our record anew (a new revision is what the others watch for)."""
        self._renewals += 1
        value = {"ip": self.ip, "renewals": self._renewals}
        key = PREFIX + self.ip
        try:
            self.store.update(key, value)
        except KeyNotFound:
            self.store.create(key, value)

    def live(self) -> list[str]:
        """The live servers' addresses, ours always among them, sorted as upstream sorts them."""
        now = self._monotonic()
        addresses = {self.ip}
        current = set()
        for rec in self.store.list(PREFIX).records:
            current.add(rec.key)
            seen = self._seen.get(rec.key)
            if seen is None or seen[0] != rec.revision:
                seen = self._seen[rec.key] = (rec.revision, now)
            if now - seen[1] < self.ttl:
                addresses.add(str(rec.value.get("ip") or ""))
        self._seen = {key: seen for key, seen in self._seen.items() if key in current}
        return sorted((a for a in addresses if _valid(a)), key=lambda a: ipaddress.ip_address(a).packed)

    def remove(self) -> None:
        try:
            self.store.delete(PREFIX + self.ip)
        except KeyNotFound:
            pass


def _valid(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
