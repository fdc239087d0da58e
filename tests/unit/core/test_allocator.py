"""IP and port ranges: bands, exclusions, exhaustion."""
from __future__ import annotations

import ipaddress
import random

import pytest

from svcnet.core.allocator import AlreadyAllocated, IPRange, NotInRange, PortRange, RangeFull


def test_network_and_broadcast_addresses_are_never_handed_out():
    rng = IPRange("10.0.0.0/29", rng=random.Random(1))
    got = {rng.allocate_next() for _ in range(6)}
    assert got == {f"10.0.0.{i}" for i in range(1, 7)}
    with pytest.raises(RangeFull):
        rng.allocate_next()
    with pytest.raises(NotInRange):
        rng.allocate("10.0.0.7")
    with pytest.raises(NotInRange):
        rng.allocate("10.0.0.0")


def test_dynamic_allocation_prefers_the_upper_band():
    rng = IPRange("10.96.0.0/12", rng=random.Random(7))
    lowest_dynamic = min(int(ipaddress.ip_address(rng.allocate_next())) for _ in range(200))
    assert lowest_dynamic >= int(ipaddress.ip_address("10.96.1.1"))  # the first 256 stay for static picks


def test_static_picks_and_double_allocation():
    rng = IPRange("10.96.0.0/12")
    rng.allocate("10.96.0.10")
    with pytest.raises(AlreadyAllocated):
        rng.allocate("10.96.0.10")
    rng.release("10.96.0.10")
    rng.allocate("10.96.0.10")
    assert rng.is_allocated("10.96.0.10")


def test_reserved_addresses_are_only_given_when_asked_for():
    rng = IPRange("10.0.0.0/28", rng=random.Random(3), reserved=["10.0.0.10"])
    got = {rng.allocate_next() for _ in range(13)}
    assert "10.0.0.10" not in got
    with pytest.raises(RangeFull):
        rng.allocate_next()
    rng.allocate("10.0.0.10")


def test_ipv6_range():
    rng = IPRange("fd00:10:96::/112", rng=random.Random(2))
    ip = ipaddress.ip_address(rng.allocate_next())
    assert ip in ipaddress.ip_network("fd00:10:96::/112")
    assert rng.family == "IPv6"


def test_node_port_range():
    ports = PortRange("30000-30009", rng=random.Random(5))
    got = {ports.allocate_next() for _ in range(10)}
    assert got == set(range(30000, 30010))
    with pytest.raises(RangeFull):
        ports.allocate_next()
    with pytest.raises(NotInRange):
        ports.allocate(80)
    with pytest.raises(ValueError):
        PortRange("9-1")
