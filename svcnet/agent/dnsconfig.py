"""A pod's /etc/resolv.conf, /etc/hosts and hostname, as kubelet computes them (pure).

Follows kubelet's pkg/kubelet/network/dns (GetPodDNS: the policy picks a base,
spec.dnsConfig is merged on top, then the result is cut to the API's limits) and
the runtime's rendering of the CRI DNSConfig (search, nameserver, options lines),
plus kubelet's managed hosts file and GeneratePodHostNameAndDomain.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from svcnet.api.objects import name_of, namespace_of, spec_of
from svcnet.runtime.sandbox import SandboxConfig

MAX_NAMESERVERS = 3
MAX_SEARCH_PATHS = 32
MAX_SEARCH_LINE_CHARS = 2048
MAX_SEARCH_PATH_CHARS = 253  # a DNS-1123 subdomain; longer paths make some resolvers abort
MAX_HOSTNAME_CHARS = 63
MAX_FQDN_HOSTNAME_CHARS = 64  # the kernel's hostname limit, for setHostnameAsFQDN
DEFAULT_CLUSTER_OPTIONS = ("ndots:5",)
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True)
class DnsConfig:
    """What a pod's resolver is told (the CRI DNSConfig)."""

    nameservers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class DnsResult:
    config: DnsConfig
    warnings: tuple[str, ...] = field(default=())  # kubelet's DNSConfigForming events


class PodDnsError(ValueError):
    """The pod's hostname or subdomain cannot be used (kubelet refuses to start the sandbox)."""


def parse_resolv_conf(text: str) -> DnsConfig:
    """The host's resolv.conf as kubelet reads it: nameservers add up, the last search and options lines win."""
    nameservers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    for line in text.split("\n"):
        trimmed = line.strip()
        if trimmed.startswith("#"):
            continue
        fields = trimmed.split()
        if not fields:
            continue
        if fields[0] == "nameserver" and len(fields) >= 2:
            nameservers.append(fields[1])
        elif fields[0] == "search":
            # "example.com." and "example.com" count once; "." is no search path at all.
            searches = [s.removesuffix(".") for s in fields[1:] if s != "."]
        elif fields[0] == "options":
            options = fields[1:]
    return DnsConfig(tuple(nameservers), tuple(searches), tuple(options))


def render_resolv_conf(config: DnsConfig) -> str:
    """The file the container runtime writes from a DNSConfig (containerd's order: search, nameserver, options)."""
    lines = []
    if config.searches:
        lines.append("search " + " ".join(config.searches))
    lines.extend(f"nameserver {server}" for server in config.nameservers)
    if config.options:
        lines.append("options " + " ".join(config.options))
    return "".join(line + "\n" for line in lines)


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _merge_options(existing: Sequence[str], extra: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    # By option name, the pod's dnsConfig wins; kubelet's map has no order, so keep first-seen order.
    merged: dict[str, str] = {}
    for option in existing:
        name, _, value = option.partition(":")
        merged[name] = value
    for option in extra:
        value = option.get("value")
        merged[str(option.get("name", ""))] = "" if value is None else str(value)
    return tuple(f"{name}:{value}" if value else name for name, value in merged.items())


def _fit_searches(searches: Sequence[str]) -> tuple[tuple[str, ...], bool]:
    exceeded = False
    kept = list(searches)
    if len(kept) > MAX_SEARCH_PATHS:
        kept, exceeded = kept[:MAX_SEARCH_PATHS], True
    short = [s for s in kept if len(s) <= MAX_SEARCH_PATH_CHARS]
    exceeded = exceeded or len(short) != len(kept)
    kept = short
    line_length = len(" ".join(kept))
    if line_length > MAX_SEARCH_LINE_CHARS:
        exceeded = True
        while kept and line_length > MAX_SEARCH_LINE_CHARS:  # drop from the end, as kubelet does
            line_length -= len(kept.pop()) + 1
    return tuple(kept), exceeded


def pod_dns_config(pod: Mapping[str, Any], host: DnsConfig, *, cluster_dns: Sequence[str] = ("10.96.0.10",),
                   cluster_domain: str = "cluster.local") -> DnsResult:
    """GetPodDNS: the DNS configuration for a pod, given the node's resolv.conf (already parsed)."""
    spec = spec_of(pod)
    namespace = namespace_of(pod) or "default"
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    host_network = bool(spec.get("hostNetwork"))
    if policy == "ClusterFirst" and host_network:
        policy = "Default"  # a host-network pod falls back to the node's resolver
    warnings: list[str] = []

    base = host
    if policy == "None":
        base = DnsConfig()
    elif policy != "Default":  # ClusterFirst, ClusterFirstWithHostNet, and (as kubelet) anything unknown
        if cluster_dns:
            searches = host.searches
            if cluster_domain:
                cluster_search = (f"{namespace}.svc.{cluster_domain}", f"svc.{cluster_domain}", cluster_domain)
                searches = _unique((*cluster_search, *host.searches))
            base = DnsConfig(tuple(cluster_dns), searches, DEFAULT_CLUSTER_OPTIONS)
        else:
            warnings.append(f'kubelet does not have ClusterDNS IP configured and cannot create Pod using '
                            f'"{policy}" policy. Falling back to "Default" policy.')

    extra = spec.get("dnsConfig")
    if extra:
        base = DnsConfig(_unique((*base.nameservers, *(extra.get("nameservers") or ()))),
                         _unique((*base.searches, *(extra.get("searches") or ()))),
                         _merge_options(base.options, extra.get("options") or ()))

    nameservers = base.nameservers
    if len(nameservers) > MAX_NAMESERVERS:
        nameservers = nameservers[:MAX_NAMESERVERS]
        warnings.append("Nameserver limits were exceeded, some nameservers have been omitted, "
                        f"the applied nameserver line is: {' '.join(nameservers)}")
    searches, exceeded = _fit_searches(base.searches)
    if exceeded:
        warnings.append("Search Line limits were exceeded, some search paths have been omitted, "
                        f"the applied search line is: {' '.join(searches)}")
    return DnsResult(DnsConfig(nameservers, searches, base.options), tuple(warnings))


@dataclass(frozen=True)
class PodHostname:
    hostname: str  # the short name in /etc/hosts
    domain: str  # "<subdomain>.<ns>.svc.<cluster domain>", or "" without spec.subdomain
    uts_hostname: str  # what `hostname` prints inside the pod

    @property
    def fqdn(self) -> str:
        return f"{self.hostname}.{self.domain}" if self.domain else self.hostname


def pod_hostname(pod: Mapping[str, Any], *, cluster_domain: str = "cluster.local") -> PodHostname:
    """GeneratePodHostNameAndDomain, plus setHostnameAsFQDN for the UTS hostname."""
    spec = spec_of(pod)
    name = name_of(pod)
    namespace = namespace_of(pod) or "default"
    hostname = name
    if spec.get("hostname"):
        if not DNS_LABEL.match(spec["hostname"]) or len(spec["hostname"]) > MAX_HOSTNAME_CHARS:
            raise PodDnsError(f'pod Hostname "{spec["hostname"]}" is not a valid DNS label')
        hostname = spec["hostname"]
    if len(hostname) > MAX_HOSTNAME_CHARS:
        # A long pod name (a generated one) is cut so it still makes a hostname.
        hostname = hostname[:MAX_HOSTNAME_CHARS].rstrip("-.")
        if not hostname:
            raise PodDnsError(f'hostname for pod "{name}" was invalid: ""')
    domain = ""
    if spec.get("subdomain"):
        if not DNS_LABEL.match(spec["subdomain"]) or len(spec["subdomain"]) > MAX_HOSTNAME_CHARS:
            raise PodDnsError(f'pod Subdomain "{spec["subdomain"]}" is not a valid DNS label')
        domain = f"{spec['subdomain']}.{namespace}.svc.{cluster_domain}"
    uts = hostname
    if spec.get("setHostnameAsFQDN") and domain:
        uts = f"{hostname}.{domain}"
        if len(uts) > MAX_FQDN_HOSTNAME_CHARS:
            raise PodDnsError(f"failed to construct FQDN from pod hostname and cluster domain, FQDN {uts} is too long "
                              f"({MAX_FQDN_HOSTNAME_CHARS} characters is the max, {len(uts)} characters requested)")
    return PodHostname(hostname, domain, uts)


HOSTS_HEADER = "# Kubernetes-managed hosts file.\n"
HOSTS_HEADER_HOST_NETWORK = "# Kubernetes-managed hosts file (host network).\n"


def _host_alias_lines(host_aliases: Sequence[Mapping[str, Any]]) -> str:
    if not host_aliases:
        return ""
    lines = ["", "# Entries added by HostAliases."]
    lines += [f"{alias.get('ip', '')}\t" + "\t".join(alias.get("hostnames") or ()) for alias in host_aliases]
    return "\n".join(lines) + "\n"


def render_hosts_file(pod: Mapping[str, Any], pod_ips: Sequence[str], name: PodHostname,
                      *, node_hosts_file: str = "") -> str:
    """The /etc/hosts kubelet writes for a pod; a host-network pod gets the node's file plus aliases."""
    spec = spec_of(pod)
    aliases = spec.get("hostAliases") or ()
    if spec.get("hostNetwork"):
        return HOSTS_HEADER_HOST_NETWORK + node_hosts_file + _host_alias_lines(aliases)
    text = (HOSTS_HEADER
            + "127.0.0.1\tlocalhost\n"
            + "::1\tlocalhost ip6-localhost ip6-loopback\n"
            + "fe00::0\tip6-localnet\n"
            + "fe00::0\tip6-mcastprefix\n"
            + "fe00::1\tip6-allnodes\n"
            + "fe00::2\tip6-allrouters\n")
    for ip in pod_ips:
        text += f"{ip}\t{name.fqdn}\t{name.hostname}\n" if name.domain else f"{ip}\t{name.hostname}\n"
    return text + _host_alias_lines(aliases)


def sandbox_config(pod: Mapping[str, Any], *, netns: str, pod_ips: Sequence[str], node_resolv_conf: str,
                   cluster_dns: Sequence[str] = ("10.96.0.10",), cluster_domain: str = "cluster.local",
                   node_hosts_file: str = "") -> SandboxConfig:
    """The sandbox a pod gets (pure; raises PodDnsError for a hostname kubelet would refuse)."""
    names = pod_hostname(pod, cluster_domain=cluster_domain)
    dns = pod_dns_config(pod, parse_resolv_conf(node_resolv_conf), cluster_dns=cluster_dns,
                         cluster_domain=cluster_domain)
    return SandboxConfig(netns, names.uts_hostname, render_resolv_conf(dns.config),
                         render_hosts_file(pod, pod_ips, names, node_hosts_file=node_hosts_file), dns.warnings)
