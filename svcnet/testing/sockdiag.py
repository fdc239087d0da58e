"""The fake of svcnet.kernel.sockdiag: a namespace's listening TCP ports, set by the test."""
from __future__ import annotations


class FakeListeningPorts:
    """`listen(port)` / `unlisten(port)` as the container's server would; `checks` counts the agent's looks."""

    def __init__(self, *ports: int) -> None:
        self.ports = set(ports)
        self.checks = 0
        self.closed = False

    def listen(self, port: int) -> None:
        self.ports.add(port)

    def unlisten(self, port: int) -> None:
        self.ports.discard(port)

    def listening_ports(self) -> frozenset[int]:
        if self.closed:
            raise OSError("the sock_diag socket is closed")
        self.checks += 1
        return frozenset(self.ports)

    def close(self) -> None:
        self.closed = True


__all__ = ["FakeListeningPorts"]
