"""ClusterIP and NodePort allocation: pure ranges with kube-apiserver's policy.

Upstream splits each range in two bands: a small lower band that dynamic
allocation avoids (so static picks such as kube-dns's 10.96.0.10 rarely
collide) and the rest, where random picks go first. The network address (and,
for IPv4, the broadcast address) are never handed out.
"""
from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field


class RangeFull(Exception):
    pass


class NotInRange(Exception):
    pass


class AlreadyAllocated(Exception):
    pass


def _band_size(total: int, lower: int, upper: int, divisor: int) -> int:
    """kube-apiserver's calculateRangeOffset: min(max(total/divisor, lower), upper), 0 if tiny."""
    if total < lower:
        return 0
    return min(max(total // divisor, lower), upper)


@dataclass
class OffsetRange:
    """Integers base..base+size-1 with a preferred-for-static lower band."""

    base: int
    size: int
    static_band: int
    rng: random.Random = field(default_factory=random.Random)
    used: set[int] = field(default_factory=set)

    def contains(self, value: int) -> bool:
        return self.base <= value < self.base + self.size

    def allocate(self, value: int) -> None:
        if not self.contains(value):
            raise NotInRange(value)
        if value in self.used:
            raise AlreadyAllocated(value)
        self.used.add(value)

    def allocate_next(self) -> int:
        """A random free value, from the upper band first (as upstream's bitmap allocator)."""
        for lo, hi in ((self.static_band, self.size), (0, self.static_band)):
            count = hi - lo
            if count <= 0:
                continue
            start = self.rng.randrange(count)
            for step in range(count):
                value = self.base + lo + (start + step) % count
                if value not in self.used:
                    self.used.add(value)
                    return value
        raise RangeFull()

    def release(self, value: int) -> None:
        self.used.discard(value)

    def free(self) -> int:
        # `used` may be shared with overlapping ranges: count only this range's values.
        return self.size - sum(1 for value in self.used if self.contains(value))


class IPRange:
    """A service CIDR: hands out host addresses (never the network or broadcast address)."""

    def __init__(self, cidr: str, rng: random.Random | None = None,
                 reserved: Iterable[str] = (), shared_with: IPRange | None = None) -> None:
        """shared_with: a range of the same family whose allocations this one shares, so
        overlapping ranges (ServiceCIDRs may overlap) never hand out one address twice."""
        self.network = ipaddress.ip_network(cidr, strict=True)
        self.family = "IPv4" if self.network.version == 4 else "IPv6"
        first = int(self.network.network_address) + 1
        total = self.network.num_addresses - (2 if self.network.version == 4 else 1)
        total = max(total, 0)
        # Upstream caps a range's usable size (a /64 has too many addresses to track).
        total = min(total, 1 << 16) if self.network.version == 6 else total
        band = _band_size(total, 16, 256, 16)
        used = shared_with._range.used if shared_with is not None else set()
        self._range = OffsetRange(first, total, band, rng or random.Random(), used)
        self._reserved = {int(ipaddress.ip_address(r)) for r in reserved}

    def __str__(self) -> str:
        return str(self.network)

    def contains(self, ip: str) -> bool:
        try:
            return self._range.contains(int(ipaddress.ip_address(ip))) and \
                ipaddress.ip_address(ip) in self.network
        except ValueError:
            return False

    def allocate(self, ip: str) -> None:
        addr = ipaddress.ip_address(ip)
        if addr not in self.network or not self._range.contains(int(addr)):
            raise NotInRange(ip)
        try:
            self._range.allocate(int(addr))
        except AlreadyAllocated:
            raise AlreadyAllocated(ip) from None

    def allocate_next(self) -> str:
        # Reserved addresses (kube-dns's) are never picked at random, only asked for by name.
        held = [r for r in self._reserved if r not in self._range.used]
        for r in held:
            self._range.used.add(r)
        try:
            return str(ipaddress.ip_address(self._range.allocate_next()))
        finally:
            for r in held:
                self._range.used.discard(r)

    def release(self, ip: str) -> None:
        try:
            self._range.release(int(ipaddress.ip_address(ip)))
        except ValueError:
            pass

    def hold(self, ip: str) -> None:
        """Mark an address taken, inside this range or not (the shared set of its family): another
        API server took it, its IPAddress object says so."""
        try:
            self._range.used.add(int(ipaddress.ip_address(ip)))
        except ValueError:
            pass

    def is_allocated(self, ip: str) -> bool:
        try:
            return int(ipaddress.ip_address(ip)) in self._range.used
        except ValueError:
            return False

    def allocated(self) -> set[str]:
        return {str(ipaddress.ip_address(v)) for v in self._range.used}

    def free(self) -> int:
        return self._range.free()


class PortRange:
    """The NodePort range (default 30000-32767)."""

    def __init__(self, spec: str = "30000-32767", rng: random.Random | None = None) -> None:
        lo, _, hi = spec.partition("-")
        self.low = int(lo)
        self.high = int(hi or lo)
        if not 0 < self.low <= self.high <= 65535:
            raise ValueError(f"invalid port range {spec!r}")
        size = self.high - self.low + 1
        self._range = OffsetRange(self.low, size, _band_size(size, 16, 128, 32), rng or random.Random())

    def __str__(self) -> str:
        return f"{self.low}-{self.high}"

    @property
    def size(self) -> int:
        return self.high - self.low + 1

    def contains(self, port: int) -> bool:
        return self._range.contains(port)

    def allocate(self, port: int) -> None:
        self._range.allocate(port)

    def allocate_next(self) -> int:
        return self._range.allocate_next()

    def release(self, port: int) -> None:
        self._range.release(port)

    def is_allocated(self, port: int) -> bool:
        return port in self._range.used

    def allocated(self) -> set[int]:
        return set(self._range.used)

    def hold(self, port: int) -> None:
        """Mark a port taken (another API server took it: the stored range says so)."""
        self._range.used.add(port)

    def replace(self, ports: Iterable[int]) -> None:
        """The taken set becomes exactly `ports` (the stored range snapshot, freshly read)."""
        self._range.used.clear()
        self._range.used.update(ports)


def bitmap_bytes(bits: int) -> bytes:
    """A RangeAllocation's data: the taken-bits as big-endian bytes with no leading zero byte
    (Go's big.Int.Bytes(), what kube-apiserver's allocator/bitmap.go Snapshot stores)."""
    return bits.to_bytes((bits.bit_length() + 7) // 8, "big")


def bitmap_int(data: bytes) -> int:
    return int.from_bytes(data, "big")


def mask_of(values: Iterable[int], base: int) -> int:
    bits = 0
    for value in values:
        bits |= 1 << (value - base)
    return bits


def offsets_in(bits: int) -> Iterator[int]:
    """The positions of the set bits, lowest first (a few, in a diff of two snapshots)."""
    while bits:
        low = bits & -bits
        yield low.bit_length() - 1
        bits ^= low
