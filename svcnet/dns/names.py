"""Every DNS name helper: query names -> what they ask for, as CoreDNS's kubernetes plugin
reads them (parse.go), zones and labels, the names the cluster zone is made of, and names
as labels on the wire.

No records, no I/O. Names are absolute, lowercase, with the trailing dot
(`normalize` makes them so); the caller keeps the query's own spelling for
echoing (`zone_as_spelled`). Reading a name out of a message (offsets, compression
pointers) is message decoding and lives in svcnet.dns.wire.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import dns.name

SVC = "svc"
POD = "pod"
DNS_SCHEMA_VERSION = "1.1.0"  # kubernetes/dns specification version CoreDNS reports
REVERSE_ZONES = ("in-addr.arpa.", "ip6.arpa.")


class InvalidRequest(Exception):
    """The name cannot exist in the cluster zone (CoreDNS answers NXDOMAIN)."""


@dataclass(frozen=True)
class RecordRequest:
    """The pieces of a cluster name; "" where the name does not say (CoreDNS's wildcard)."""

    port: str = ""
    protocol: str = ""
    endpoint: str = ""
    service: str = ""
    namespace: str = ""
    pod_or_svc: str = ""  # "" for the apex, `svc.<zone>` and `pod.<zone>` themselves


def absolute(name: str) -> str:
    """name with the trailing dot, its case kept."""
    return name if name.endswith(".") else name + "."


def normalize(name: str) -> str:
    """Lowercase, absolute (trailing dot)."""
    return absolute(name.lower())


def zone_as_spelled(qname: str, zone: str) -> str:
    """The zone's part of an absolute qname in the query's case (CoreDNS keeps it for the SOA)."""
    return qname[len(qname) - len(zone):]


def labels(name: str) -> list[str]:
    """Labels of a name without the root: "a.b." -> ["a", "b"]; "." -> []."""
    stripped = name.rstrip(".")
    return stripped.split(".") if stripped else []


def is_subdomain(name: str, zone: str) -> bool:
    """name is zone or below it (both normalized)."""
    return zone == "." or name == zone or name.endswith("." + zone)


def match_zone(name: str, zones: tuple[str, ...]) -> str | None:
    """The longest of zones that name is in (CoreDNS's plugin.Zones.Matches)."""
    best: str | None = None
    for zone in zones:
        if is_subdomain(name, zone) and (best is None or len(zone) > len(best)):
            best = zone
    return best


def trim_zone(name: str, zone: str) -> str:
    """The part of name before zone, without the joining dot ("" at the apex)."""
    if name == zone:
        return ""
    return name[: -len(zone) - 1] if zone != "." else name.rstrip(".")


def service_domain(service: str, namespace: str, zone: str) -> str:
    """<service>.<namespace>.svc.<zone>"""
    return f"{service}.{namespace}.{SVC}.{zone}"


def pod_domain(label: str, namespace: str, zone: str) -> str:
    """<label>.<namespace>.pod.<zone>"""
    return f"{label}.{namespace}.{POD}.{zone}"


def ns_name(zone: str) -> str:
    """The name of the zone's own name server (CoreDNS's ns.dns.<zone>)."""
    return "ns.dns." + zone


def _strip_underscore(label: str) -> str:
    return label[1:] if label.startswith("_") else label


def parse_request(name: str, zone: str) -> RecordRequest:
    """qname -> RecordRequest, the four shapes CoreDNS accepts (no multicluster, no zonal names):

    _port._protocol.service.namespace.svc.zone, endpoint.service.namespace.svc.zone,
    service.namespace.(svc|pod).zone, namespace.(svc|pod).zone. Raises InvalidRequest
    for anything else below the zone.
    """
    base = trim_zone(name, zone)
    if base in ("", SVC, POD):
        return RecordRequest()  # the apex and its two fixed children: NODATA, never NXDOMAIN
    segs = base.split(".")
    last = len(segs) - 1
    kind = segs[last]
    if kind not in (SVC, POD):
        raise InvalidRequest(name)
    last -= 1
    if last < 0:
        return RecordRequest(pod_or_svc=kind)
    namespace = segs[last]
    last -= 1
    if last < 0:
        return RecordRequest(namespace=namespace, pod_or_svc=kind)
    service = segs[last]
    last -= 1
    if last < 0:
        return RecordRequest(service=service, namespace=namespace, pod_or_svc=kind)
    if last == 0:
        return RecordRequest(endpoint=segs[0], service=service, namespace=namespace, pod_or_svc=kind)
    if last == 1:
        return RecordRequest(port=_strip_underscore(segs[0]), protocol=_strip_underscore(segs[1]),
                             service=service, namespace=namespace, pod_or_svc=kind)
    raise InvalidRequest(name)  # too many labels to be anything


def address_from_reverse(name: str) -> str | None:
    """1.0.96.10.in-addr.arpa. -> "10.96.0.1"; a full ip6.arpa name -> the IPv6 address; else None."""
    if name.endswith(".in-addr.arpa."):
        parts = labels(name[: -len(".in-addr.arpa.")])
        if len(parts) != 4:
            return None
        try:
            return str(ipaddress.IPv4Address(".".join(reversed(parts))))
        except ValueError:
            return None
    if name.endswith(".ip6.arpa."):
        nibbles = labels(name[: -len(".ip6.arpa.")])
        if len(nibbles) != 32 or any(len(n) != 1 for n in nibbles):
            return None
        digits = "".join(reversed(nibbles))
        try:
            return str(ipaddress.IPv6Address(int(digits, 16)))
        except ValueError:
            return None
    return None


def reverse_name(ip: str) -> str:
    """The PTR owner name of an address (lowercase, absolute)."""
    return ipaddress.ip_address(ip).reverse_pointer + "."


def endpoint_label(ip: str, hostname: str) -> str:
    """CoreDNS's endpointHostname: the endpoint's hostname, else its address with dashes."""
    if hostname:
        return hostname
    if "." in ip:
        return ip.replace(".", "-")
    return ip.replace(":", "-")


def pod_label_to_ip(label: str) -> str:
    """The address a pod-record label spells (1-2-3-4 or 1234-abcd--1); not validated here."""
    if label.count("-") == 3 and "--" not in label:
        return label.replace("-", ".")
    return label.replace("-", ":")


def parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def host_family(host: str) -> str:
    """CoreDNS's msg.Service.HostType: "A", "AAAA" or "CNAME" (host is not an address)."""
    ip = parse_ip(host)
    if ip is None:
        return "CNAME"
    if ip.version == 4 or (ip.version == 6 and ip.ipv4_mapped is not None):
        return "A"
    return "AAAA"


# ------------------------------------------------------------ names as labels

def from_labels(wire_labels: list[bytes]) -> str:
    """Text of a name given as its wire labels (without the root), escaped as dnspython does."""
    if not wire_labels:
        return "."
    return dns.name.Name([*wire_labels, b""]).to_text()


def to_wire(name: str) -> bytes:
    """A text name as uncompressed wire labels ending in the root label."""
    parts = [part for part in name.rstrip(".").split(".") if part]
    return b"".join(bytes([len(part)]) + part.encode() for part in parts) + b"\x00"
