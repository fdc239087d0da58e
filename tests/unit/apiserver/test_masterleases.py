"""Which API servers are live, for default/kubernetes's endpoints (the lease endpoint reconciler)."""
from __future__ import annotations

from svcnet.apiserver.masterleases import MasterLeases
from svcnet.storage.memory import MemoryStore


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_every_renewing_server_is_live_and_one_that_stops_renewing_drops_out_after_the_ttl():
    store, clock = MemoryStore(), Clock()
    a = MasterLeases(store, "192.168.0.101", monotonic=clock)
    b = MasterLeases(store, "192.168.0.100", monotonic=clock)
    a.renew()
    b.renew()
    assert a.live() == b.live() == ["192.168.0.100", "192.168.0.101"]
    clock.now = 10.0
    a.renew()  # b does not: it died
    assert a.live() == ["192.168.0.100", "192.168.0.101"]  # seen changing at 0, still within 15 s
    clock.now = 15.5
    assert a.live() == ["192.168.0.101"]
    b.renew()  # back
    assert a.live() == ["192.168.0.100", "192.168.0.101"]


def test_a_server_is_always_live_to_itself_and_a_clean_stop_removes_its_record():
    store, clock = MemoryStore(), Clock()
    a = MasterLeases(store, "10.0.0.1", monotonic=clock)
    assert a.live() == ["10.0.0.1"]
    b = MasterLeases(store, "10.0.0.2", monotonic=clock)
    b.renew()
    assert a.live() == ["10.0.0.1", "10.0.0.2"]
    b.remove()
    assert a.live() == ["10.0.0.1"]
