"""networking.k8s.io/v1 ServiceCIDR validation, worded as pkg/apis/networking/validation
(ValidateServiceCIDR, ValidateServiceCIDRUpdate) with apimachinery's strict IsValidCIDR.

A ServiceCIDR holds one CIDR, or two of different families. Its CIDRs never change, with one
exception upstream added for upgrades (kubernetes#131261): a single-stack object may gain a
second CIDR of the other family, its first one unchanged.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from svcnet.api.errors import Cause
from svcnet.api.selectors import go_quote

from .fields import GoLiteral, Obj, as_dict, as_list, as_str, immutable, invalid, required

CIDRS = "spec.cidrs"
_NOT_A_CIDR = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"
_ONE_PER_FAMILY = "may specify no more than one IP for each IP family, i.e 192.168.0.0/24 and 2001:db8::/64"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class _Parsed:
    """A CIDR as Go's sloppy parser reads it, and what the strict parser would object to."""

    network: Network  # the masked network (Go's *net.IPNet)
    leading_zeros: bool  # in an IPv4 octet or the prefix length: netip.ParsePrefix refuses them
    mapped: bool  # an IPv4-mapped IPv6 address (::ffff:a.b.c.d)
    host_bits: bool  # bits set beyond the prefix length


def _sloppy_ipv4(text: str) -> ipaddress.IPv4Address | None:
    """Go's ParseIPSloppy reads IPv4 octets with leading zeros as decimal; Python refuses them."""
    parts = text.split(".")
    if len(parts) != 4 or not all(p.isdigit() and p.isascii() and len(p) <= 3 for p in parts):
        return None
    octets = [int(p) for p in parts]
    return ipaddress.IPv4Address(".".join(map(str, octets))) if max(octets) <= 255 else None


def parse_cidr_sloppy(value: str) -> _Parsed | None:
    """netutils.ParseCIDRSloppy's reading of value, or None where it returns an error."""
    addr_text, slash, bits_text = value.partition("/")
    if not slash or not bits_text.isdigit() or not bits_text.isascii() or "%" in addr_text:
        return None
    try:
        addr: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(addr_text)
        zeros_in_ip = False
    except ValueError:
        sloppy = _sloppy_ipv4(addr_text)
        if sloppy is None:
            return None
        addr, zeros_in_ip = sloppy, True
    bits = int(bits_text)
    if bits > addr.max_prefixlen:
        return None
    network = ipaddress.ip_network(f"{addr}/{bits}", strict=False)
    mapped = isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None
    return _Parsed(network, zeros_in_ip or (len(bits_text) > 1 and bits_text[0] == "0"), mapped,
                   network.network_address != addr)


def family_of(value: str) -> int | None:
    """4 or 6, as netutils.IPFamilyOfCIDRString (an IPv4-mapped address counts as IPv4); None if unparseable."""
    parsed = parse_cidr_sloppy(value)
    if parsed is None:
        return None
    return 4 if parsed.mapped else parsed.network.version


def strict_cidr_errors(path: str, value: str) -> list[Cause]:
    """apimachinery's IsValidCIDR for new fields: strictly parsed, and in canonical form."""
    parsed = parse_cidr_sloppy(value)
    if parsed is None:
        return [invalid(path, value, _NOT_A_CIDR)]
    if parsed.leading_zeros:
        return [invalid(path, value, "must not have leading 0s in IP or prefix length")]
    if parsed.mapped:
        return [invalid(path, value, "must not have an IPv4-mapped IPv6 address")]
    if parsed.host_bits:
        return [invalid(path, value, "must not have bits set beyond the prefix length")]
    canonical = str(parsed.network)
    if value != canonical:
        return [invalid(path, value, f"must be in canonical form ({go_quote(canonical)})")]
    return []


def _spec_literal(cidrs: list[str]) -> GoLiteral:
    """How field.Error prints the internal ServiceCIDRSpec upstream passes as the bad value."""
    return GoLiteral("networking.ServiceCIDRSpec{CIDRs:[]string{" + ", ".join(go_quote(c) for c in cidrs) + "}}")


def _validate_cidrs(cidrs: list[str]) -> list[Cause]:
    if not cidrs:
        return [required(CIDRS, "at least one CIDR required")]
    if len(cidrs) > 2:
        return [invalid(CIDRS, _spec_literal(cidrs), "may only hold up to 2 values")]
    errs = [e for i, cidr in enumerate(cidrs) for e in strict_cidr_errors(f"{CIDRS}[{i}]", cidr)]
    if len(cidrs) == 2 and family_of(cidrs[0]) is not None and family_of(cidrs[0]) == family_of(cidrs[1]):
        errs.append(invalid(CIDRS, cidrs, _ONE_PER_FAMILY))
    return errs


def _cidrs(obj: Obj) -> list[str]:
    return [as_str(c) for c in as_list(as_dict(obj.get("spec")).get("cidrs"))]


def _validate_update(new: list[str], old: list[str]) -> list[Cause]:
    if len(new) == len(old):
        return [immutable(f"{CIDRS}[{i}]", n) for i, (n, o) in enumerate(zip(new, old, strict=True)) if n != o]
    if len(old) == 1 and len(new) == 2:  # single-stack to dual-stack
        errs = [immutable(f"{CIDRS}[0]", new[0])] if new[0] != old[0] else []
        return errs + _validate_cidrs(new)
    return [immutable(CIDRS, new)]


def validate_service_cidr(obj: Obj, old: Obj | None) -> list[Cause]:
    """spec.cidrs on create; on update (and status update) only the changes allowed to them."""
    if old is None:
        return _validate_cidrs(_cidrs(obj))
    return _validate_update(_cidrs(obj), _cidrs(old))
