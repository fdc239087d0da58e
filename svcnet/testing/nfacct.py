"""The fake of svcnet.kernel.nfacct: a namespace's nfacct counters, counted by the test."""
from __future__ import annotations

import errno

from svcnet.kernel.nfacct import Counter, NfacctError, check_name


class FakeNfacct:
    """nfacct counters as the kernel keeps them: `add` creates one at zero (EBUSY if it exists), `get`
    reads one (None if absent); `count(name, packets)` is a rule matching packets. `fail_with` makes
    every request fail with that errno (a kernel that refuses)."""

    def __init__(self) -> None:
        self.counters: dict[str, Counter] = {}
        self.requests: list[tuple[str, str]] = []
        self.fail_with: int | None = None
        self.closed = False

    def _request(self, command: str, name: str) -> None:
        if self.closed:
            raise NfacctError("the netlink socket is closed", errno.EBADF)
        check_name(name)
        self.requests.append((command, name))
        if self.fail_with is not None:
            raise NfacctError(f"nfacct {command} {name}: refused", self.fail_with)

    def get(self, name: str) -> Counter | None:
        self._request("get", name)
        return self.counters.get(name)

    def add(self, name: str) -> None:
        self._request("add", name)
        if name in self.counters:
            raise NfacctError(f"nfacct counter {name} exists", errno.EBUSY)
        self.counters[name] = Counter(name, 0, 0)

    def count(self, name: str, packets: int, size: int = 60) -> None:
        old = self.counters[name]  # as in the kernel, a rule can only name a counter that exists
        self.counters[name] = Counter(name, old.packets + packets, old.bytes + packets * size)

    def close(self) -> None:
        self.closed = True


__all__ = ["FakeNfacct"]
