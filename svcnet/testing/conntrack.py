"""The fake of a node's conntrack table: entries, and the filters deletions were asked with.

FakeConntrack implements the proxy's `Conntrack` seam (svcnet.proxy.conntrack),
where a node has `ConntrackTable` over svcnet.kernel.conntrack.ConntrackTool:
it lists the entries it holds and deletes those a filter matches.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from svcnet.proxy.conntrack import ConntrackEntry, ConntrackFilter
from svcnet.proxy.model import IPV6


@dataclass
class FakeConntrack:
    """A conntrack table: entries, and the filters deletions were asked with."""

    entries: list[ConntrackEntry] = field(default_factory=list)
    deleted_with: list[tuple[str, ConntrackFilter]] = field(default_factory=list)

    def list_entries(self, family: str, protocol: str = "udp") -> list[ConntrackEntry]:
        return [e for e in self.entries if e.protocol == protocol and ((":" in e.orig_dst) == (family == IPV6))]

    def delete(self, family: str, flt: ConntrackFilter) -> int:
        self.deleted_with.append((family, flt))

        def matches(entry: ConntrackEntry) -> bool:
            return (entry.protocol == flt.protocol and entry.reply_src == flt.reply_src
                    and (flt.orig_dst is None or entry.orig_dst == flt.orig_dst)
                    and (flt.orig_dport is None or entry.orig_dport == flt.orig_dport))

        before = len(self.entries)
        self.entries = [e for e in self.entries if not matches(e)]
        return before - len(self.entries)
