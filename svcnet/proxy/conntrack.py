"""Stale UDP conntrack entries: find them (pure) and delete them through the node's conntrack table.

UDP has no connection to close: once a client's flow to a Service is in the
conntrack table, its packets keep going to the endpoint chosen first, even
after that endpoint is gone, until the entry times out (or forever, for a
client that keeps sending). kube-proxy therefore deletes, after a sync, every
UDP entry whose original destination is a Service frontend but whose reply
comes from an address that is not a serving endpoint of that Service
(pkg/proxy/conntrack/cleanup.go):

- by original destination IP and port (ClusterIP, external IPs, LoadBalancer
  IPs) and reply source: `conntrack -D -p udp --orig-dst VIP --orig-port-dst PORT --reply-src IP`;
- by original destination port (NodePorts, on any node address) and reply
  source: `conntrack -D -p udp --orig-port-dst NODEPORT --reply-src IP`.

An entry for a Service that had no endpoints (the packet was rejected, so the
reply source is the VIP itself) is cleared the same way once endpoints appear.
Services without serving endpoints are left alone, and TCP is never touched:
established TCP connections must survive a proxy restart.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from svcnet.kernel.conntrack import ConntrackTool
from svcnet.proxy.model import IPV6, EndpointInfo, ServicePortInfo, ServicePortName

log = logging.getLogger("svcnet.proxy.conntrack")


@dataclass(frozen=True)
class ConntrackEntry:
    """One flow as `conntrack -L` prints it: the original and the reply direction."""

    protocol: str
    orig_src: str
    orig_dst: str
    orig_sport: int
    orig_dport: int
    reply_src: str
    reply_dst: str
    reply_sport: int
    reply_dport: int


def parse_conntrack_list(text: str) -> list[ConntrackEntry]:
    """Entries from `conntrack -L` output; lines without two address tuples are skipped."""
    entries = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 2:
            continue
        protocol = fields[0] if fields[0] in ("udp", "tcp", "sctp", "icmp", "icmpv6") else ""
        if not protocol and len(fields) > 2:
            # `-o extended` prefixes "ipv4 2": the protocol name is the third field.
            protocol = fields[2]
        tuples: list[dict[str, str]] = []
        for field in fields:
            key, sep, value = field.partition("=")
            if not sep or key not in ("src", "dst", "sport", "dport"):
                continue
            if not tuples or key in tuples[-1]:
                tuples.append({})
            tuples[-1][key] = value
        if len(tuples) < 2 or not all({"src", "dst"} <= t.keys() for t in tuples[:2]):
            continue
        orig, reply = tuples[0], tuples[1]
        entries.append(ConntrackEntry(
            protocol=protocol,
            orig_src=orig["src"], orig_dst=orig["dst"],
            orig_sport=int(orig.get("sport", 0)), orig_dport=int(orig.get("dport", 0)),
            reply_src=reply["src"], reply_dst=reply["dst"],
            reply_sport=int(reply.get("sport", 0)), reply_dport=int(reply.get("dport", 0)),
        ))
    return entries


@dataclass(frozen=True, order=True)
class ConntrackFilter:
    """Which entries to delete: all given fields must match."""

    reply_src: str
    orig_dst: str | None = None
    orig_dport: int | None = None
    protocol: str = "udp"

    def args(self, family: str) -> list[str]:
        """The arguments that select this filter's entries (after `conntrack -D`)."""
        argv = [*_family_args(family), "-p", self.protocol]
        if self.orig_dst is not None:
            argv += ["--orig-dst", self.orig_dst]
        if self.orig_dport is not None:
            argv += ["--orig-port-dst", str(self.orig_dport)]
        return argv + ["--reply-src", self.reply_src]


def stale_udp_filters(
    entries: Iterable[ConntrackEntry],
    services: Iterable[ServicePortInfo],
    endpoints: Mapping[ServicePortName, Iterable[EndpointInfo]],
) -> list[ConntrackFilter]:
    """The filters that delete UDP flows to a Service frontend not answered by a serving endpoint."""
    by_frontend: dict[tuple[str, int], frozenset[str]] = {}
    by_node_port: dict[int, frozenset[str]] = {}
    for info in services:
        if info.protocol != "UDP":
            continue
        serving = frozenset(e.ip for e in endpoints.get(info.name, ()) if e.serving)
        if not serving:
            continue  # nothing to move flows to: leave them be
        for ip in (info.cluster_ip, *info.load_balancer_vips, *info.external_ips):
            by_frontend[(ip, info.port)] = serving
        if info.node_port:
            by_node_port[info.node_port] = serving
    filters: set[ConntrackFilter] = set()
    for entry in entries:
        if entry.protocol != "udp":
            continue
        serving = by_frontend.get((entry.orig_dst, entry.orig_dport))
        if serving is not None and entry.reply_src not in serving:
            filters.add(ConntrackFilter(entry.reply_src, entry.orig_dst, entry.orig_dport))
        serving = by_node_port.get(entry.orig_dport)
        if serving is not None and entry.reply_src not in serving:
            filters.add(ConntrackFilter(entry.reply_src, None, entry.orig_dport))
    return sorted(filters, key=lambda f: (f.reply_src, f.orig_dst or "", f.orig_dport or 0))


class Conntrack(Protocol):
    """The conntrack table of one node namespace: the seam between the proxy and the kernel.

    The proxy's side is `clean_stale_entries` (and the syncer that calls it);
    the other side is `ConntrackTable` over svcnet.kernel.conntrack.ConntrackTool
    in a node, svcnet.testing.conntrack.FakeConntrack in tests.
    """

    def list_entries(self, family: str, protocol: str = "udp") -> list[ConntrackEntry]: ...
    def delete(self, family: str, flt: ConntrackFilter) -> int: ...


class ConntrackTable:
    """The proxy's `Conntrack` over the kernel adapter: builds the tool's arguments, parses its listing."""

    def __init__(self, tool: ConntrackTool) -> None:
        self.tool = tool

    def list_entries(self, family: str, protocol: str = "udp") -> list[ConntrackEntry]:
        return parse_conntrack_list(self.tool.list([*_family_args(family), "-p", protocol]))

    def delete(self, family: str, flt: ConntrackFilter) -> int:
        return self.tool.delete(flt.args(family))


def _family_args(family: str) -> list[str]:
    return ["-f", "ipv6" if family == IPV6 else "ipv4"]


def clean_stale_entries(
    conntrack: Conntrack,
    family: str,
    services: Iterable[ServicePortInfo],
    endpoints: Mapping[ServicePortName, Iterable[EndpointInfo]],
) -> list[ConntrackFilter]:
    """Delete stale UDP flows in one family; returns the filters used (failures are logged, not raised)."""
    services = [s for s in services if s.protocol == "UDP"]
    if not services:
        return []
    try:
        entries = conntrack.list_entries(family)
    except OSError as exc:
        log.warning("cannot list conntrack entries: %s", exc)
        return []
    filters = stale_udp_filters(entries, services, endpoints)
    for flt in filters:
        try:
            conntrack.delete(family, flt)
        except OSError as exc:
            log.warning("cannot delete conntrack entries %s: %s", flt, exc)
    return filters
