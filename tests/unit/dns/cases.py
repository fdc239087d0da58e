"""The answer table: (qname, qtype) -> (rcode, answer, authority, additional), CoreDNS's way.

Shared by the pure answer-builder tests, the resolver's bytes-in/bytes-out tests and
the dig tests (UDP and TCP against `svcnet dns --from cluster.yaml`). Records are
zone-file lines; SERIAL stands for the SOA serial (a timestamp). Records are compared
exactly, names' letter case included (CoreDNS echoes the query's spelling in owners
and in the zone part of the names it builds, and writes object names as stored);
sections are compared as sets, as CoreDNS's own test.SortAndCheck does. Cases with a
class other than IN are decided by the server before the zone (the pure builder never
sees them). The server runs with --pod-ip 10.244.0.5 (a kube-dns
endpoint), which decides the NS answer.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

CLUSTER = Path(__file__).with_name("cluster.yaml")
LOCAL_IP = "10.244.0.5"

NOERROR, SERVFAIL, NXDOMAIN, REFUSED = "NOERROR", "SERVFAIL", "NXDOMAIN", "REFUSED"
SOA = "cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. SERIAL 7200 1800 86400 5"
Z = "default.svc.cluster.local."


@dataclass(frozen=True)
class Case:
    qname: str
    qtype: str
    rcode: str
    answer: tuple[str, ...] = ()
    authority: tuple[str, ...] = ()
    additional: tuple[str, ...] = ()
    pods: str = "insecure"
    why: str = ""
    dig: bool = True  # also run over the wire with dig
    tags: tuple[str, ...] = field(default=())
    qclass: str = "IN"

    @property
    def id(self) -> str:
        suffix = "" if self.qclass == "IN" else f"/{self.qclass}"
        return f"{self.qname}/{self.qtype}/{self.pods}{suffix}"


def ok(qname: str, qtype: str, *answer: str, extra: tuple[str, ...] = (), why: str = "",
       pods: str = "insecure") -> Case:
    return Case(qname, qtype, NOERROR, tuple(answer), (), extra, pods, why)


def nodata(qname: str, qtype: str, why: str = "", pods: str = "insecure") -> Case:
    return Case(qname, qtype, NOERROR, (), (SOA,), (), pods, why)


def nx(qname: str, qtype: str = "A", why: str = "", pods: str = "insecure") -> Case:
    return Case(qname, qtype, NXDOMAIN, (), (SOA,), (), pods, why)


def a(name: str, ip: str, ttl: int = 5) -> str:
    return f"{name} {ttl} IN A {ip}"


def aaaa(name: str, ip: str) -> str:
    return f"{name} 5 IN AAAA {ip}"


def srv(name: str, weight: int, port: int, target: str) -> str:
    return f"{name} 5 IN SRV 0 {weight} {port} {target}"


def ptr(name: str, target: str) -> str:
    return f"{name} 5 IN PTR {target}"


HN = "hostnames." + Z
WEB = "web." + Z
DUAL = "dual." + Z
DHL = "dual-hl." + Z

CASES: tuple[Case, ...] = (
    # --- ClusterIP Services (the seed)
    ok("kubernetes.default.svc.cluster.local.", "A", a("kubernetes.default.svc.cluster.local.", "10.96.0.1"),
       why="the seed: kubernetes -> 10.96.0.1"),
    nodata("kubernetes.default.svc.cluster.local.", "AAAA", why="single-stack: NODATA for the other family"),
    ok(HN, "A", a(HN, "10.102.11.183"), why="a ClusterIP Service resolves to its ClusterIP"),
    nodata(HN, "AAAA"),
    ok(HN, "SRV", srv(HN, 100, 80, HN), extra=(a(HN, "10.102.11.183"),), why="bare-name SRV: every port"),
    ok("_default._tcp." + HN, "SRV", srv("_default._tcp." + HN, 100, 80, HN), extra=(a(HN, "10.102.11.183"),)),
    nx("_default._udp." + HN, "SRV", why="no port with that protocol: NXDOMAIN"),
    nx("_http._tcp." + HN, "SRV", why="no port with that name: NXDOMAIN"),
    nx("_default._udp." + HN, "A", why="a port/protocol name that matches nothing is a name error for any type"),
    nodata(HN, "TXT", why="TXT only answers dns-version"),
    nodata(HN, "MX"),
    nodata(HN, "CNAME", why="a ClusterIP is not a CNAME"),
    nodata(HN, "SOA", why="SOA below the apex: NODATA"),
    nodata(HN, "NS", why="NS below the apex takes the fake-A path"),
    nodata(HN, "PTR", why="PTR of a forward name: NODATA when the name exists"),
    nodata(HN, "HINFO", why="other types: existence decided by a fake A lookup"),
    # --- endpoint names under a ClusterIP Service
    ok("hostnames-0." + HN, "A", a("hostnames-0." + HN, "10.244.1.23"),
       why="StatefulSet pod: the endpoint's hostname resolves"),
    nodata("hostnames-0." + HN, "AAAA"),
    nx("hostnames-1." + HN, why="a not-ready endpoint is not published"),
    nx("hostnames-7c89f997cf-pdg7p." + HN, why="a Deployment pod's name under the Service is NXDOMAIN"),
    ok("10-244-1-8." + HN, "A", a("10-244-1-8." + HN, "10.244.1.8"),
       why="an endpoint without hostname answers to its dashed address"),
    nx("10-244-1-7." + HN, why="dashed address of no endpoint"),
    # --- headless
    ok(WEB, "A", a(WEB, "10.244.2.10"), a(WEB, "10.244.2.11"), a(WEB, "10.244.2.13"),
       why="headless: every ready endpoint (unset ready counts as ready)"),
    nodata(WEB, "AAAA"),
    ok("web-0." + WEB, "A", a("web-0." + WEB, "10.244.2.10")),
    nx("web-2." + WEB, why="not ready"),
    ok(WEB, "SRV",
       srv(WEB, 16, 8080, "web-0." + WEB), srv(WEB, 16, 5353, "web-0." + WEB),
       srv(WEB, 16, 8080, "web-1." + WEB), srv(WEB, 16, 5353, "web-1." + WEB),
       srv(WEB, 16, 8080, "10-244-2-13." + WEB), srv(WEB, 16, 5353, "10-244-2-13." + WEB),
       extra=(a("web-0." + WEB, "10.244.2.10"), a("web-1." + WEB, "10.244.2.11"),
              a("10-244-2-13." + WEB, "10.244.2.13")),
       why="6 entries share weight 100: floor(100/6) = 16; endpoint ports, not Service ports"),
    ok("_http._tcp." + WEB, "SRV",
       srv("_http._tcp." + WEB, 33, 8080, "web-0." + WEB), srv("_http._tcp." + WEB, 33, 8080, "web-1." + WEB),
       srv("_http._tcp." + WEB, 33, 8080, "10-244-2-13." + WEB),
       extra=(a("web-0." + WEB, "10.244.2.10"), a("web-1." + WEB, "10.244.2.11"),
              a("10-244-2-13." + WEB, "10.244.2.13"))),
    ok("_dns._udp." + WEB, "SRV",
       srv("_dns._udp." + WEB, 33, 5353, "web-0." + WEB), srv("_dns._udp." + WEB, 33, 5353, "web-1." + WEB),
       srv("_dns._udp." + WEB, 33, 5353, "10-244-2-13." + WEB),
       extra=(a("web-0." + WEB, "10.244.2.10"), a("web-1." + WEB, "10.244.2.11"),
              a("10-244-2-13." + WEB, "10.244.2.13"))),
    nx("_dns._tcp." + WEB, "SRV"),
    ok("web-0." + WEB, "SRV", srv("web-0." + WEB, 50, 8080, "web-0." + WEB),
       srv("web-0." + WEB, 50, 5353, "web-0." + WEB), extra=(a("web-0." + WEB, "10.244.2.10"),),
       why="SRV of one endpoint: its ports"),
    nx("_http._tcp.web-0." + WEB, "SRV", why="too many labels"),
    nx("starting." + Z, why="headless with no ready endpoint: NXDOMAIN"),
    nx("starting." + Z, "SRV"),
    nx("nothing." + Z, why="headless with no EndpointSlice at all"),
    nx("nothing." + Z, "AAAA"),
    ok("portless." + Z, "A", a("portless." + Z, "10.244.2.30"), why="a portless headless Service resolves"),
    nodata("portless." + Z, "SRV", why="no ports: no SRV (CoreDNS's port -1 sentinel)"),
    ok("10-244-2-30.portless." + Z, "A", a("10-244-2-30.portless." + Z, "10.244.2.30")),
    # --- dual-stack
    ok(DUAL, "A", a(DUAL, "10.96.100.5"), why="dual-stack: A from the IPv4 ClusterIP"),
    ok(DUAL, "AAAA", aaaa(DUAL, "fd00:10:96::5"), why="dual-stack: AAAA from the IPv6 ClusterIP"),
    ok(DUAL, "SRV", srv(DUAL, 25, 80, DUAL), srv(DUAL, 25, 9000, DUAL),
       extra=(a(DUAL, "10.96.100.5"), aaaa(DUAL, "fd00:10:96::5")),
       why="2 ports x 2 families = 4 entries: weight 25"),
    ok("_grpc._tcp." + DUAL, "SRV", srv("_grpc._tcp." + DUAL, 50, 9000, DUAL),
       extra=(a(DUAL, "10.96.100.5"), aaaa(DUAL, "fd00:10:96::5"))),
    ok("six." + Z, "AAAA", aaaa("six." + Z, "fd00:10:96::6"), why="IPv6-only Service"),
    nodata("six." + Z, "A"),
    ok(DHL, "A", a(DHL, "10.244.4.4")),
    ok(DHL, "AAAA", aaaa(DHL, "fd00:10:244::4"), aaaa(DHL, "fd00:10:244::5"),
       why="dual-stack headless: AAAA from the IPv6 slice"),
    ok("db-0." + DHL, "A", a("db-0." + DHL, "10.244.4.4")),
    ok("db-0." + DHL, "AAAA", aaaa("db-0." + DHL, "fd00:10:244::4")),
    ok("fd00-10-244--5." + DHL, "AAAA", aaaa("fd00-10-244--5." + DHL, "fd00:10:244::5"),
       why="an IPv6 endpoint without hostname: colons become dashes"),
    ok(DHL, "SRV", srv(DHL, 33, 80, "db-0." + DHL), srv(DHL, 33, 80, "fd00-10-244--5." + DHL),
       extra=(a("db-0." + DHL, "10.244.4.4"), aaaa("db-0." + DHL, "fd00:10:244::4"),
              aaaa("fd00-10-244--5." + DHL, "fd00:10:244::5")),
       why="3 entries (weight 33); one SRV per target and port, one address record per address"),
    # --- ExternalName
    ok("ext-internal." + Z, "A", f"ext-internal.{Z} 5 IN CNAME {HN}", a(HN, "10.102.11.183"),
       why="an in-zone target is chased"),
    nodata("ext-internal." + Z, "AAAA", why="chased target has no AAAA: the CNAME is dropped too"),
    ok("ext-internal." + Z, "CNAME", f"ext-internal.{Z} 5 IN CNAME {HN}"),
    ok("ext." + Z, "CNAME", f"ext.{Z} 5 IN CNAME example.org."),
    nodata("ext." + Z, "SRV", why="SRV for ExternalName is not implemented in CoreDNS"),
    nodata("ext." + Z, "TXT", why="TXT: NODATA for a name that has records of another type"),
    nx("_http._tcp.ext." + Z, "SRV",
       why="kubernetes.go findServices skips an ExternalName under _port._protocol labels: NXDOMAIN"),
    nx("_http._tcp.ext." + Z, "A", why="the same name error for any type"),
    nx("_http._tcp.ext-internal." + Z, "SRV"),
    nodata("ext-self." + Z, "A", why="x CNAME x is skipped"),
    nx("endpoint.ext." + Z, why="no endpoint names under an ExternalName"),
    nx("endpoint.ext." + Z, "CNAME"),
    # --- namespaces
    ok("lonely.testns.svc.cluster.local.", "A", a("lonely.testns.svc.cluster.local.", "10.96.7.7"),
       why="a ClusterIP Service without endpoints still resolves"),
    ok("_syslog._udp.lonely.testns.svc.cluster.local.", "SRV",
       srv("_syslog._udp.lonely.testns.svc.cluster.local.", 100, 514, "lonely.testns.svc.cluster.local."),
       extra=(a("lonely.testns.svc.cluster.local.", "10.96.7.7"),)),
    nx("lonely." + Z, why="another namespace"),
    nx("hostnames.testns.svc.cluster.local."),
    nx("hostnames.nonexistent.svc.cluster.local.", why="namespace does not exist"),
    nodata(Z, "A", why="an existing namespace: NODATA"),
    nx("nonexistent.svc.cluster.local.", why="a missing namespace: NXDOMAIN"),
    nodata("svc.cluster.local.", "A"),
    nodata("pod.cluster.local.", "A"),
    nodata(Z, "NS"),
    nx("foo.svc.cluster.local.", "NS"),
    # --- apex and special names
    nodata("cluster.local.", "A", why="apex: NODATA for address types"),
    nodata("cluster.local.", "AAAA"),
    nx("cluster.local.", "TXT", why="TXT at the apex: no records there, so a name error (kubernetes.go Services)"),
    nx(Z, "TXT", why="TXT at a namespace node: NODATA for A, but no records, so NXDOMAIN"),
    nx("svc.cluster.local.", "TXT"),
    nx("pod.cluster.local.", "TXT"),
    nx("default.pod.cluster.local.", "TXT"),
    nodata("1-2-3-4.default.pod.cluster.local.", "TXT", why="an insecure pod name has an A record"),
    ok("cluster.local.", "SOA", SOA.replace(" 5 IN SOA", " 5 IN SOA"), why="SOA at the apex"),
    ok("cluster.local.", "NS", "cluster.local. 5 IN NS kube-dns.kube-system.svc.cluster.local.",
       extra=(a("kube-dns.kube-system.svc.cluster.local.", "10.96.0.10"),),
       why="NS: the kube-dns Service whose endpoint is this server"),
    ok("ns.dns.cluster.local.", "A", a("ns.dns.cluster.local.", "10.96.0.10")),
    nodata("ns.dns.cluster.local.", "AAAA"),
    ok("dns-version.cluster.local.", "TXT", 'dns-version.cluster.local. 28800 IN TXT "1.1.0"',
       why="schema version TXT"),
    nx("dns-version.cluster.local.", "A", why="dns-version only exists for TXT"),
    nx("foo.cluster.local."),
    nx("foo.cluster.local.", "NS"),
    nx("a.b.c.d.default.svc.cluster.local.", why="too many labels"),
    nx("hostnames.default.cluster.local.", why="neither svc nor pod"),
    nx("nonexistent." + Z, "TXT", why="TXT looks the name up: a missing Service is NXDOMAIN"),
    nodata("nonexistent." + Z, "SOA", why="CoreDNS answers SOA below the apex without a lookup"),
    # --- PTR
    ok("1.0.96.10.in-addr.arpa.", "PTR", ptr("1.0.96.10.in-addr.arpa.", "kubernetes.default.svc.cluster.local.")),
    ok("10.0.96.10.in-addr.arpa.", "PTR", ptr("10.0.96.10.in-addr.arpa.", "kube-dns.kube-system.svc.cluster.local.")),
    ok("183.11.102.10.in-addr.arpa.", "PTR", ptr("183.11.102.10.in-addr.arpa.", HN)),
    ok("8.1.244.10.in-addr.arpa.", "PTR", ptr("8.1.244.10.in-addr.arpa.", "10-244-1-8." + HN),
       why="an endpoint address: its dashed name under the Service"),
    ok("23.1.244.10.in-addr.arpa.", "PTR", ptr("23.1.244.10.in-addr.arpa.", "hostnames-0." + HN)),
    ok("10.2.244.10.in-addr.arpa.", "PTR", ptr("10.2.244.10.in-addr.arpa.", "web-0." + WEB)),
    ok("5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa.", "PTR",
       ptr("5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa.", DUAL),
       why="PTR in ip6.arpa for a dual-stack ClusterIP"),
    ok("5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.4.4.2.0.0.1.0.0.0.0.d.f.ip6.arpa.", "PTR",
       ptr("5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.4.4.2.0.0.1.0.0.0.0.d.f.ip6.arpa.", "fd00-10-244--5." + DHL)),
    # --- pod records, insecure (the kubeadm Corefile's mode)
    ok("1-2-3-4.default.pod.cluster.local.", "A", a("1-2-3-4.default.pod.cluster.local.", "1.2.3.4"),
       why="insecure: any address spelled in the name"),
    nodata("1-2-3-4.default.pod.cluster.local.", "AAAA"),
    ok("fd00-10-244--8.default.pod.cluster.local.", "AAAA",
       aaaa("fd00-10-244--8.default.pod.cluster.local.", "fd00:10:244::8")),
    nx("1-2-3-4.nonexistent.pod.cluster.local.", why="pod records need an existing namespace"),
    nx("not-an-ip.default.pod.cluster.local.", why="insecure: not an address"),
    nodata("default.pod.cluster.local.", "A"),
    ok("1-2-3-4.default.pod.cluster.local.", "SRV",
       "1-2-3-4.default.pod.cluster.local. 5 IN SRV 0 100 0 1-2-3-4.default.pod.cluster.local.",
       extra=(a("1-2-3-4.default.pod.cluster.local.", "1.2.3.4"),), why="CoreDNS gives pods an SRV of port 0"),
    # --- pod records, verified
    ok("10-244-1-8.default.pod.cluster.local.", "A", a("10-244-1-8.default.pod.cluster.local.", "10.244.1.8"),
       pods="verified", why="verified: a pod with that IP exists in the namespace"),
    nx("10-244-1-9.default.pod.cluster.local.", pods="verified", why="verified: no pod has that IP"),
    nx("10-244-3-3.default.pod.cluster.local.", pods="verified", why="verified: the pod is in another namespace"),
    ok("10-244-3-3.testns.pod.cluster.local.", "A", a("10-244-3-3.testns.pod.cluster.local.", "10.244.3.3"),
       pods="verified"),
    ok("fd00-10-244--8.default.pod.cluster.local.", "AAAA",
       aaaa("fd00-10-244--8.default.pod.cluster.local.", "fd00:10:244::8"), pods="verified"),
    ok(HN, "A", a(HN, "10.102.11.183"), pods="verified", why="Services are unaffected by the pod mode"),
    # --- pod records, disabled (CoreDNS's own default)
    nx("1-2-3-4.default.pod.cluster.local.", pods="disabled", why="disabled: no pod records"),
    nx("default.pod.cluster.local.", pods="disabled", why="disabled: even the namespace is a name error"),
    nodata("pod.cluster.local.", "A", pods="disabled"),
    ok(HN, "A", a(HN, "10.102.11.183"), pods="disabled"),
    # --- case: matched case-insensitively, the query's spelling echoed
    ok("HostNames.Default.SVC.cluster.local.", "A", a("HostNames.Default.SVC.cluster.local.", "10.102.11.183"),
       why="case-insensitive match, owner echoes the query"),
    ok("KUBERNETES.DEFAULT.SVC.CLUSTER.LOCAL.", "A", a("KUBERNETES.DEFAULT.SVC.CLUSTER.LOCAL.", "10.96.0.1")),
    Case("NoSuch.default.svc.Cluster.Local.", "A", NXDOMAIN, (),
         ("Cluster.Local. 5 IN SOA ns.dns.Cluster.Local. hostmaster.Cluster.Local. SERIAL 7200 1800 86400 5",),
         why="the SOA's zone keeps the query's case, as CoreDNS"),
    ok("Web-0.WEB.default.svc.cluster.local.", "A", a("Web-0.WEB.default.svc.cluster.local.", "10.244.2.10")),
    # names CoreDNS builds under the zone end in the zone as queried, the labels before it as stored
    # (plugin/kubernetes/handler_case_test.go TestPreserveCase)
    ok("HostNames.Default.svc.Cluster.Local.", "SRV",
       srv("HostNames.Default.svc.Cluster.Local.", 100, 80, "hostnames.default.svc.Cluster.Local."),
       extra=(a("hostnames.default.svc.Cluster.Local.", "10.102.11.183"),),
       why="SRV target and additional owner: object name lowercase, zone as queried"),
    ok("_HtTp._TcP.Web.Default.svc.Cluster.Local.", "SRV",
       srv("_HtTp._TcP.Web.Default.svc.Cluster.Local.", 33, 8080, "web-0.web.default.svc.Cluster.Local."),
       srv("_HtTp._TcP.Web.Default.svc.Cluster.Local.", 33, 8080, "web-1.web.default.svc.Cluster.Local."),
       srv("_HtTp._TcP.Web.Default.svc.Cluster.Local.", 33, 8080, "10-244-2-13.web.default.svc.Cluster.Local."),
       extra=(a("web-0.web.default.svc.Cluster.Local.", "10.244.2.10"),
              a("web-1.web.default.svc.Cluster.Local.", "10.244.2.11"),
              a("10-244-2-13.web.default.svc.Cluster.Local.", "10.244.2.13")),
       why="headless SRV: every target keeps the query's zone spelling"),
    ok("1-2-3-4.Default.POD.Cluster.Local.", "SRV",
       "1-2-3-4.Default.POD.Cluster.Local. 5 IN SRV 0 100 0 1-2-3-4.default.pod.Cluster.Local.",
       extra=(a("1-2-3-4.default.pod.Cluster.Local.", "1.2.3.4"),)),
    ok("Cluster.Local.", "NS", "Cluster.Local. 5 IN NS kube-dns.kube-system.svc.Cluster.Local.",
       extra=(a("kube-dns.kube-system.svc.Cluster.Local.", "10.96.0.10"),)),
    ok("Cluster.local.", "SOA",
       "Cluster.local. 5 IN SOA ns.dns.Cluster.local. hostmaster.Cluster.local. SERIAL 7200 1800 86400 5"),
    ok("NS.DNS.Cluster.Local.", "A", a("NS.DNS.Cluster.Local.", "10.96.0.10")),
    ok("Ext-Internal.Default.svc.Cluster.Local.", "A",
       "Ext-Internal.Default.svc.Cluster.Local. 5 IN CNAME hostnames.default.svc.cluster.local.",
       a("hostnames.default.svc.cluster.local.", "10.102.11.183"),
       why="an ExternalName's target is written as the Service spells it, and so is the chased owner"),
    ok("1.0.96.10.IN-ADDR.ARPA.", "PTR", ptr("1.0.96.10.IN-ADDR.ARPA.", "kubernetes.default.svc.cluster.local."),
       why="PTR targets are named under the configured primary zone"),
    # --- classes other than IN: REFUSED by the server before any plugin (core/dnsserver/server.go;
    # this server runs without a forwarder, which would open them as CoreDNS's forward plugin does)
    Case("kubernetes.default.svc.cluster.local.", "A", REFUSED, qclass="CH",
         why="a CH-class query gets no cluster data"),
    Case("version.bind.", "TXT", REFUSED, qclass="CH"),
    Case("kubernetes.default.svc.cluster.local.", "A", REFUSED, qclass="HS"),
    # --- zone transfer is refused
    Case("cluster.local.", "AXFR", REFUSED, dig=False, why="no transfers"),
)

# Names the cluster zone hands on (a reverse name nobody owns); checked in the forwarding tests.
FALLTHROUGH = (("9.9.9.9.in-addr.arpa.", "PTR"), ("24.1.244.10.in-addr.arpa.", "PTR"),
               ("1.0.96.10.in-addr.arpa.", "A"), ("example.org.", "A"))
