"""Question -> answer for the cluster zones, exactly as CoreDNS's kubernetes plugin decides.

Three steps, as in CoreDNS: names.parse_request reads the qname; `_services`
looks the request up in ZoneData and returns neutral entries (CoreDNS's
msg.Service: a domain, a host that is an address or a name, a port); the
per-type builders turn entries into records (plugin/backend_lookup.go); `answer`
only picks the rcode (handler.go): NXDOMAIN for name errors, SERVFAIL instead
while the cache has not synced, NODATA (NOERROR and the SOA) when the name
exists but has no record of the type.

Pure: records are plain `RR` values in presentation format; svcnet.dns.wire
turns them into bytes. A name outside the zones, or a reverse name the cluster
does not know (CoreDNS's `fallthrough in-addr.arpa ip6.arpa`), comes back with
`fallthrough=True` for the forwarder. An ExternalName whose target is outside
the zones comes back with `chase` set: the server resolves the target upstream
and calls `complete_chase`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

from svcnet.dns import names
from svcnet.dns.names import InvalidRequest, RecordRequest
from svcnet.dns.zone import ZoneData

NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5

# Query types by number, as they arrive on the wire.
A, NS, CNAME, SOA, PTR, MX, TXT, AAAA, SRV, IXFR, AXFR = 1, 2, 5, 6, 12, 15, 16, 28, 33, 251, 252

DNS_VERSION_TTL = 28800
MAX_CNAME_CHAIN = 7  # CoreDNS stops following in-zone CNAMEs after this many


@dataclass(frozen=True)
class Settings:
    zones: tuple[str, ...] = ("cluster.local.",)  # normalized, the first is the primary zone
    reverse_zones: tuple[str, ...] = names.REVERSE_ZONES
    ttl: int = 5
    pods: str = "insecure"  # "insecure" | "verified" | "disabled"
    local_ips: tuple[str, ...] = ()  # this server's own addresses: they decide the NS answer
    # Name errors in these zones go to the next plugin (forward): `fallthrough ZONES...`; kubeadm's
    # Corefile falls through the reverse zones ("." stands for every zone).
    fallthrough: tuple[str, ...] = names.REVERSE_ZONES
    endpoint_pod_names: bool = False  # an endpoint without hostname is named after its pod
    ignore_empty_service: bool = False  # a ClusterIP Service without ready endpoints is NXDOMAIN

    def endpoint_label(self, ip: str, hostname: str, target_name: str) -> str:
        """CoreDNS endpointHostname: hostname, else (endpoint_pod_names) the pod's name, else the address."""
        if not hostname and self.endpoint_pod_names:
            hostname = target_name
        return names.endpoint_label(ip, hostname)

    @property
    def all_zones(self) -> tuple[str, ...]:
        return self.zones + self.reverse_zones


@dataclass(frozen=True)
class RR:
    name: str
    ttl: int
    type: str  # "A", "SRV", ...
    rdata: str  # presentation format

    def __str__(self) -> str:
        return f"{self.name}\t{self.ttl}\tIN\t{self.type}\t{self.rdata}"


@dataclass(frozen=True)
class Chase:
    """Resolve target/qtype upstream; its answer follows the CNAME already in the answer."""

    target: str
    qtype: int


@dataclass(frozen=True)
class Result:
    rcode: int = NOERROR
    answer: tuple[RR, ...] = ()
    authority: tuple[RR, ...] = ()
    additional: tuple[RR, ...] = ()
    authoritative: bool = True
    fallthrough: bool = False  # not ours to answer: forward it
    chase: Chase | None = None
    tags: frozenset[str] = frozenset()  # what the answer depends on (see zone.py)
    zone: str = ""


@dataclass(frozen=True)
class Entry:
    """CoreDNS's msg.Service, the neutral record a lookup returns."""

    domain: str  # the name this entry stands for (SRV target, NS name)
    host: str  # an address, or a name (ExternalName)
    port: int = 0
    ttl: int = 5
    text: str = ""


class NameError_(Exception):
    """errNoItems / errNsNotExposed / errInvalidRequest: the name does not exist."""


# --------------------------------------------------------------- the lookup

class _Lookup:
    """One question against one ZoneData; collects dependency tags as it reads.

    `zone` is the matched zone (lowercase), `spelled` the same zone as the question spells
    it: names the plugin builds under the zone (SRV targets, NS names, the additional
    records' owners) end in it, as CoreDNS's keys are built from state.Zone, which
    handler.go keeps in the query's case; the labels before it are the objects' own.
    """

    def __init__(self, data: ZoneData, settings: Settings, zone: str, spelled: str) -> None:
        self.data = data
        self.settings = settings
        self.zone = zone
        self.spelled = spelled
        self.tags: set[str] = set()

    # CoreDNS Kubernetes.Services
    def services(self, name: str, qtype: int) -> list[Entry]:
        ttl = self.settings.ttl
        if qtype == TXT:
            if names.trim_zone(name, self.zone) == "dns-version":
                return [Entry(domain=name, host="", ttl=DNS_VERSION_TTL, text=names.DNS_SCHEMA_VERSION)]
            # kubernetes.go Services, TXT: NODATA when the name has records of another type, else a
            # name error; so the apex, svc.<zone> and a namespace node (no records) are NXDOMAIN.
            try:
                found = self.records(name)
            except NameError_:
                found = []
            if found:
                return []
            raise NameError_(name)
        if qtype == NS:
            return [Entry(domain=n, host=ip, ttl=ttl) for n, ip in self.ns_addresses()]
        if name == names.ns_name(self.zone):
            fam = "A" if qtype == A else "AAAA" if qtype == AAAA else ""
            return [Entry(domain=name, host=ip, ttl=ttl) for _, ip in self.ns_addresses()
                    if names.host_family(ip) == fam]
        entries = self.records(name)
        if qtype == SRV:
            entries = [e for e in entries if names.host_family(e.host) != "CNAME"]
        return entries

    # CoreDNS Kubernetes.Records
    def records(self, name: str) -> list[Entry]:
        try:
            r = names.parse_request(name, self.zone)
        except InvalidRequest:
            raise NameError_(name) from None
        if not r.pod_or_svc:
            return []
        if self.zone in self.settings.reverse_zones:
            raise NameError_(name)
        self.tags.add(f"ns:{r.namespace}")
        if not self.data.namespace_exists(r.namespace):
            raise NameError_(name)
        if r.pod_or_svc == names.POD:
            return self.find_pods(r)
        return self.find_services(r)

    def find_pods(self, r: RecordRequest) -> list[Entry]:
        mode = self.settings.pods
        if mode == "disabled":
            raise NameError_(r.service)
        if not r.service:
            return []
        ip = names.pod_label_to_ip(r.service)
        domain = names.pod_domain(r.service, r.namespace, self.spelled)
        if mode == "insecure":
            if names.parse_ip(ip) is None:
                raise NameError_(r.service)
            return [Entry(domain=domain, host=ip, ttl=self.settings.ttl)]
        self.tags.add(f"pods:{r.namespace}")
        found = [Entry(domain=domain, host=ip, ttl=self.settings.ttl)
                 for pod in (self.data.pods_by_ip.get(ip) or {}).values()
                 if pod.ip == ip and pod.namespace == r.namespace]
        if not found:
            raise NameError_(r.service)
        return found

    def find_services(self, r: RecordRequest) -> list[Entry]:
        if not r.service:
            return []
        key = f"{r.service}.{r.namespace}"
        self.tags.add(f"svc:{key}")
        svc = self.data.services.get(key)
        if svc is None:
            raise NameError_(key)
        ttl = self.settings.ttl
        svc_domain = names.service_domain(svc.name, svc.namespace, self.spelled)
        found = False
        out: list[Entry] = []
        if svc.type == "ExternalName":
            # kubernetes.go findServices: no endpoints and no _port._protocol names under an ExternalName.
            if not (r.endpoint or r.port or r.protocol):
                host = svc.external_name
                if host and names.host_family(host) == "CNAME":
                    out.append(Entry(domain=svc_domain, host=host, ttl=ttl))
                    found = True
        elif svc.headless or r.endpoint:
            for eps in sorted(self.data.endpoints_of(key), key=lambda e: e.name):
                for addr in eps.addresses:
                    label = self.settings.endpoint_label(addr.ip, addr.hostname, addr.target_name)
                    if r.endpoint and r.endpoint != label.lower():
                        continue
                    for port in eps.ports:
                        if not _port_matches(r, port.name, port.protocol):
                            continue
                        out.append(Entry(domain=f"{label}.{svc_domain}", host=addr.ip, port=port.port,
                                         ttl=ttl))
                        found = True
        elif self.settings.ignore_empty_service and not any(e.addresses for e in self.data.endpoints_of(key)):
            raise NameError_(key)  # kubernetes.go findServices: `ignore empty_service`
        else:
            for port in svc.ports:
                if not _port_matches(r, port.name, port.protocol):
                    continue
                found = True
                for ip in svc.cluster_ips:
                    out.append(Entry(domain=svc_domain, host=ip, port=port.port, ttl=ttl))
        if not found:
            raise NameError_(key)
        return out

    # CoreDNS nsAddrs: the kube-dns Service in front of this server, or its own address.
    def ns_addresses(self) -> list[tuple[str, str]]:
        self.tags.add("apex")
        out: list[tuple[str, str]] = []
        for local_ip in self.settings.local_ips:
            for key in sorted(self.data.endpoint_ips.get(local_ip, ())):
                svc = self.data.services.get(key)
                if svc is None:
                    continue
                svc_name = names.service_domain(svc.name, svc.namespace, self.spelled)
                if svc.headless:
                    for eps in self.data.endpoints_of(key):
                        for addr in eps.addresses:
                            label = self.settings.endpoint_label(addr.ip, addr.hostname, addr.target_name)
                            out.append((f"{label}.{svc_name}", addr.ip))
                else:
                    out.extend((svc_name, ip) for ip in svc.cluster_ips if names.parse_ip(ip))
        if not out:
            out = [(names.ns_name(self.spelled), ip) for ip in self.settings.local_ips]
        return out

    # CoreDNS Kubernetes.Reverse / serviceRecordForIP
    def reverse(self, name: str) -> list[Entry]:
        ip = names.address_from_reverse(name)
        if ip is None:
            self.records(name)
            return []
        self.tags.add(f"ip:{ip}")
        primary = self.settings.zones[0]
        ttl = self.settings.ttl
        for key in sorted(self.data.service_ips.get(ip, ())):
            svc = self.data.services.get(key)
            if svc is not None:
                host = names.service_domain(svc.name, svc.namespace, primary)
                return [Entry(domain=name, host=host, ttl=ttl)]
        out: list[Entry] = []
        for key in sorted(self.data.endpoint_ips.get(ip, ())):
            for eps in sorted(self.data.endpoints_of(key), key=lambda e: e.name):
                for addr in eps.addresses:
                    if addr.ip == ip:
                        label = self.settings.endpoint_label(addr.ip, addr.hostname, addr.target_name)
                        host = f"{label}.{names.service_domain(eps.service, eps.namespace, primary)}"
                        out.append(Entry(domain=name, host=host, ttl=ttl))
        if not out:
            raise NameError_(name)
        return out


def _falls_through(name: str, zones: tuple[str, ...]) -> bool:
    """CoreDNS fall.F.Through: name is in one of zones ("." is every name)."""
    return names.match_zone(name, zones) is not None


def _port_matches(r: RecordRequest, port_name: str, protocol: str) -> bool:
    return ((not r.port or r.port == port_name.lower())
            and (not r.protocol or r.protocol == protocol.lower()))


# ---------------------------------------------------------- record builders

def _address_rr(owner: str, entry: Entry, family: str) -> RR:
    return RR(owner, entry.ttl, family, str(names.parse_ip(entry.host)))


def _addresses(look: _Lookup, qname: str, qtype: int, previous: tuple[RR, ...],
               chases: list[Chase]) -> list[RR]:
    """CoreDNS plugin.A / plugin.AAAA, CNAME chasing included."""
    name = names.normalize(qname)
    want = "A" if qtype == A else "AAAA"
    records: list[RR] = []
    seen: set[str] = set()
    for entry in look.services(name, qtype):
        family = names.host_family(entry.host)
        if family == "CNAME":
            target = names.normalize(entry.host)
            if target == name:
                continue  # x CNAME x
            cname = RR(qname, entry.ttl, "CNAME", target)
            if len(previous) > MAX_CNAME_CHAIN or cname in previous:
                continue
            if names.is_subdomain(target, look.zone):
                try:
                    following = _addresses(look, target, qtype, previous + (cname,), chases)
                except NameError_:
                    following = []
                if following:
                    records.append(cname)
                    records.extend(following)
                continue
            records.append(cname)
            chases.append(Chase(target, qtype))
            continue
        if family == want and entry.host not in seen:
            seen.add(entry.host)
            records.append(_address_rr(qname, entry, want))
    return records


def _srv(look: _Lookup, qname: str) -> tuple[list[RR], list[RR]]:
    """CoreDNS plugin.SRV: weights share 100 within a priority (all 0 here), floor, at least 1."""
    entries = look.services(names.normalize(qname), SRV)
    total = len(entries) * 100  # every kubernetes entry has weight 0, counted as 100
    records: list[RR] = []
    extra: list[RR] = []
    dup: set[tuple[str, str, int]] = set()
    for entry in entries:
        if entry.port == -1:
            continue
        weight = max(1, math.floor(100.0 / total * 100))
        family = names.host_family(entry.host)
        target = entry.domain
        if ("srv", target, entry.port) not in dup:
            dup.add(("srv", target, entry.port))
            records.append(RR(qname, entry.ttl, "SRV", f"0 {weight} {entry.port} {target}"))
        if ("addr", target + "|" + entry.host, 0) not in dup:
            dup.add(("addr", target + "|" + entry.host, 0))
            extra.append(_address_rr(target, entry, family))
    return records, extra


def _ptr(look: _Lookup, qname: str) -> list[RR]:
    records: list[RR] = []
    seen: set[str] = set()
    for entry in look.reverse(names.normalize(qname)):
        host = names.normalize(entry.host)
        if names.parse_ip(entry.host) is None and host not in seen:
            seen.add(host)
            records.append(RR(qname, entry.ttl, "PTR", host))
    return records


def _ns(look: _Lookup, qname: str) -> tuple[list[RR], list[RR]]:
    records: list[RR] = []
    extra: list[RR] = []
    seen: set[str] = set()
    for entry in look.services(names.normalize(qname), NS):
        family = names.host_family(entry.host)
        if family == "CNAME":
            continue
        extra.append(_address_rr(entry.domain, entry, family))
        if entry.domain not in seen:
            seen.add(entry.domain)
            records.append(RR(qname, entry.ttl, "NS", entry.domain))
    return records, extra


def soa_record(zone_spelled: str, settings: Settings, serial: int) -> RR:
    zone = names.absolute(zone_spelled)
    ttl = min(settings.ttl, 300)
    return RR(zone, ttl, "SOA", f"{names.ns_name(zone)} hostmaster.{zone} {serial} 7200 1800 86400 {settings.ttl}")


# ------------------------------------------------------------------ handler

def answer(data: ZoneData, settings: Settings, qname: str, qtype: int) -> Result:
    """The kubernetes plugin's answer to (qname, qtype); qname as the client spelled it."""
    qname = names.absolute(qname)
    name = names.normalize(qname)
    zone = names.match_zone(name, settings.all_zones)
    if zone is None:
        return Result(fallthrough=True, authoritative=False)
    zone_spelled = names.zone_as_spelled(qname, zone)
    look = _Lookup(data, settings, zone, zone_spelled)
    if qtype in (AXFR, IXFR):
        return Result(rcode=REFUSED, authoritative=False, zone=zone)
    records: list[RR] = []
    extra: list[RR] = []
    chases: list[Chase] = []
    try:
        if qtype in (A, AAAA):
            records = _addresses(look, qname, qtype, (), chases)
        elif qtype == TXT:
            records = [RR(qname, e.ttl, "TXT", f'"{e.text}"') for e in look.services(name, TXT) if e.text]
        elif qtype == CNAME:
            entries = look.services(name, CNAME)
            if entries and names.host_family(entries[0].host) == "CNAME":
                records = [RR(qname, entries[0].ttl, "CNAME", names.normalize(entries[0].host))]
        elif qtype == PTR:
            records = _ptr(look, qname)
        elif qtype == MX:
            look.services(name, MX)  # kubernetes entries are never mail hosts: existence only
        elif qtype == SRV:
            records, extra = _srv(look, qname)
        elif qtype == SOA:
            if name == zone:
                records = [soa_record(zone_spelled, settings, data.serial)]
        elif qtype == NS and name == zone:
            records, extra = _ns(look, qname)
        else:
            _addresses(look, qname, A, (), [])  # a fake A lookup tells NODATA from NXDOMAIN
    except NameError_:
        if _falls_through(name, settings.fallthrough):
            return Result(fallthrough=True, authoritative=False, zone=zone)
        rcode = NXDOMAIN if data.synced else SERVFAIL
        return Result(rcode=rcode, authority=(soa_record(zone_spelled, settings, data.serial),),
                      tags=frozenset(look.tags), zone=zone)
    if not records:
        return Result(rcode=NOERROR, authority=(soa_record(zone_spelled, settings, data.serial),),
                      tags=frozenset(look.tags), zone=zone)
    return Result(rcode=NOERROR, answer=tuple(records), additional=tuple(extra),
                  chase=chases[0] if chases else None, tags=frozenset(look.tags), zone=zone)


def complete_chase(result: Result, upstream_answer: tuple[RR, ...] | None, settings: Settings,
                   serial: int, qname: str) -> Result:
    """Finish an ExternalName answer once its target was looked up upstream.

    upstream_answer None means the lookup failed: CoreDNS then leaves the CNAME
    out, and with nothing left the answer is NODATA.
    """
    assert result.chase is not None
    if upstream_answer is not None:
        return replace(result, answer=result.answer + upstream_answer, chase=None)
    target = result.chase.target
    kept = tuple(rr for rr in result.answer if not (rr.type == "CNAME" and rr.rdata == target))
    if kept:
        return replace(result, answer=kept, chase=None)
    zone_spelled = names.zone_as_spelled(qname, result.zone) if qname.endswith(".") else qname
    return replace(result, answer=(), chase=None,
                   authority=(soa_record(zone_spelled or result.zone, settings, serial),))


__all__ = ["RR", "Result", "Settings", "Chase", "Entry", "answer", "complete_chase", "soa_record"]
