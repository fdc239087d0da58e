"""Which API server a client-side load balancer sends a new connection to (k3s's agent
load balancer, pkg/agent/loadbalancer, in its decisions only).

The servers are kept in the order given. A new connection goes to the first one that is
healthy; if dialling it fails, it is marked failed and the next healthy one is tried, so
the order is a preference (the first listed is the default server), and a server that comes
back is used again for new connections once a health check passes. When none is known
healthy, every server is tried anyway, in order: a health check may simply not have run yet.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ServerPool:
    servers: list[str]  # host:port, the first the default
    healthy: dict[str, bool] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.servers:
            raise ValueError("a load balancer needs at least one server")
        if len(set(self.servers)) != len(self.servers):
            raise ValueError("a server is listed twice")
        for server in self.servers:
            self.healthy.setdefault(server, True)  # until a check or a dial says otherwise

    def dial_order(self) -> list[str]:
        """Where to try a new connection, in turn: the healthy ones by preference, then the rest."""
        up = [s for s in self.servers if self.healthy[s]]
        return up + [s for s in self.servers if not self.healthy[s]]

    def dial_failed(self, server: str) -> None:
        self.healthy[server] = False

    def dialled(self, server: str) -> None:
        self.healthy[server] = True

    def checked(self, server: str, ok: bool) -> bool:
        """A health check's result; True when the server just went from healthy to failed (its
        open connections should then be closed, so their clients reconnect elsewhere)."""
        went_down = self.healthy[server] and not ok
        self.healthy[server] = ok
        return went_down
