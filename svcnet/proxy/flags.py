"""The rule-shaping flags' values, checked once for `svcnet proxy run`, `render` and `trace`.

Each function takes what argparse collected and returns the normalised value, or raises FlagError
naming the flag and the bad entry, as kube-proxy's flag validation does.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence


class FlagError(Exception):
    """A flag's value is not valid; the message names the flag."""


def cluster_cidrs(values: Sequence[str] | None, default: Sequence[str]) -> tuple[str, ...]:
    """--cluster-cidr, repeatable and comma-separated; the default when not given."""
    raw = default if values is None else [c for value in values for c in value.split(",")]
    cidrs = tuple(c.strip() for c in raw if c.strip())
    for cidr in cidrs:
        _check_cidr("--cluster-cidr", cidr)
    return cidrs


def node_ips(values: Iterable[str]) -> tuple[str, ...]:
    """--node-ip, repeatable: each an IPv4 or IPv6 address."""
    ips = tuple(values)
    for ip in ips:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise FlagError(f"--node-ip: invalid IP address {ip!r}") from None
    return ips


def nodeport_addresses(text: str) -> tuple[str, ...]:
    """--nodeport-addresses: comma-separated CIDRs, or `primary` (the node's primary IPs)."""
    entries = tuple(a.strip() for a in text.split(",") if a.strip())
    for entry in entries:
        if entry != "primary":
            _check_cidr("--nodeport-addresses", entry)
    return entries


def _check_cidr(flag: str, cidr: str) -> None:
    try:
        ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        raise FlagError(f"{flag}: invalid CIDR {cidr!r}") from None
