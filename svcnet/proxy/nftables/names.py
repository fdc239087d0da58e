"""nftables object names, exactly as kube-proxy's nftables proxier spells them.

Everything lives in one table, `kube-proxy`, of family `ip` or `ip6`, so names
need no "KUBE-" prefix. Per-service chains are a prefix ("service-", "local-",
"external-", "firewall-", "endpoint-"; "affinity-" for session-affinity sets)
plus a base that is readable and still unique: the first 8 characters of
base32(sha256(text)), a hyphen, then the text itself, where the text is
"namespace/name/protocol/portname" and, for an endpoint, "__IP/port" appended
(colons of an IPv6 address become dots, since nft names may not hold colons).
So the seed Service default/hostnames port "default" TCP has the chain
`service-PM2QQW4D-default/hostnames/tcp/default` wherever kube-proxy runs.

A base longer than 240 characters (nft allows 256, the longest prefix takes 16)
is cut to 237 and ends in "...": the hash in front keeps it unique.
"""
from __future__ import annotations

import functools
import hashlib

from svcnet.proxy.model import EndpointInfo, ServicePortName

TABLE = "kube-proxy"
TABLE_COMMENT = "rules for kube-proxy"

# Base chains ("type-hook"), hooked into netfilter.
FILTER_PREROUTING = "filter-prerouting"
FILTER_INPUT = "filter-input"
FILTER_FORWARD = "filter-forward"
FILTER_OUTPUT = "filter-output"
FILTER_OUTPUT_POST_DNAT = "filter-output-post-dnat"
NAT_PREROUTING = "nat-prerouting"
NAT_OUTPUT = "nat-output"
NAT_POSTROUTING = "nat-postrouting"

# Regular top-level chains.
SERVICES = "services"
SERVICE_ENDPOINTS_CHECK = "service-endpoints-check"
NODEPORT_ENDPOINTS_CHECK = "nodeport-endpoints-check"
REJECT_CHAIN = "reject-chain"
CLUSTER_IPS_CHECK = "cluster-ips-check"
FIREWALL_CHECK = "firewall-check"
MARK_FOR_MASQUERADE = "mark-for-masquerade"
MASQUERADING = "masquerading"

# Sets and verdict maps.
CLUSTER_IPS = "cluster-ips"
NODEPORT_IPS = "nodeport-ips"
SERVICE_IPS = "service-ips"
SERVICE_NODEPORTS = "service-nodeports"
FIREWALL_IPS = "firewall-ips"
NO_ENDPOINT_SERVICES = "no-endpoint-services"
NO_ENDPOINT_NODEPORTS = "no-endpoint-nodeports"

# Per-service prefixes.
CLUSTER_POLICY_PREFIX = "service-"
LOCAL_POLICY_PREFIX = "local-"
EXTERNAL_PREFIX = "external-"
FIREWALL_PREFIX = "firewall-"
ENDPOINT_PREFIX = "endpoint-"
AFFINITY_PREFIX = "affinity-"

_B32_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"  # RFC 4648, as Go's base32.StdEncoding

NAME_LENGTH_MAX = 256  # nft's limit on a chain, set or map name
PREFIX_LENGTH_MAX = 16
BASE_LENGTH_MAX = NAME_LENGTH_MAX - PREFIX_LENGTH_MAX


# base32 of 10 bits at a time: 8 characters encode the first 5 bytes of the digest exactly, and
# four table lookups are much cheaper than base64.b32encode (pure Python) at 100,000 endpoints.
_B32_PAIRS = tuple(a + b for a in _B32_ALPHABET for b in _B32_ALPHABET)


@functools.lru_cache(maxsize=1 << 18)
def hash_and_truncate(text: str) -> str:
    """"HASH8-text", cut to BASE_LENGTH_MAX with "..." when too long."""
    n = int.from_bytes(hashlib.sha256(text.encode()).digest()[:5], "big")
    pairs = _B32_PAIRS
    name = f"{pairs[n >> 30]}{pairs[(n >> 20) & 1023]}{pairs[(n >> 10) & 1023]}{pairs[n & 1023]}-{text}"
    if len(name) > BASE_LENGTH_MAX:
        name = name[:BASE_LENGTH_MAX - 3] + "..."
    return name


def _service_text(name: ServicePortName) -> str:
    # Namespace, Service and port names hold only [a-z0-9-], so "/" separates them unambiguously.
    return f"{name.namespace}/{name.name}/{name.protocol.lower()}/{name.port}"


def service_base(name: ServicePortName) -> str:
    return hash_and_truncate(_service_text(name))


def endpoint_base(name: ServicePortName, endpoint: EndpointInfo) -> str:
    return hash_and_truncate(f"{_service_text(name)}__{endpoint.ip.replace(':', '.')}/{endpoint.port}")


def cluster_policy_chain(name: ServicePortName) -> str:
    """service-*: load-balances over the Cluster-policy endpoints."""
    return CLUSTER_POLICY_PREFIX + service_base(name)


def local_policy_chain(name: ServicePortName) -> str:
    """local-*: load-balances over this node's endpoints (Local policy)."""
    return LOCAL_POLICY_PREFIX + service_base(name)


def external_chain(name: ServicePortName) -> str:
    """external-*: where NodePort, externalIP and LoadBalancer traffic goes."""
    return EXTERNAL_PREFIX + service_base(name)


def firewall_chain(name: ServicePortName) -> str:
    """firewall-*: loadBalancerSourceRanges filtering."""
    return FIREWALL_PREFIX + service_base(name)


def endpoint_chain(name: ServicePortName, endpoint: EndpointInfo) -> str:
    """endpoint-*: masquerades hairpin traffic and DNATs to one endpoint."""
    return ENDPOINT_PREFIX + endpoint_base(name, endpoint)


def affinity_set(name: ServicePortName, endpoint: EndpointInfo) -> str:
    """affinity-*: clients recently sent to this endpoint (sessionAffinity ClientIP)."""
    return AFFINITY_PREFIX + endpoint_base(name, endpoint)


def is_service_chain(chain: str) -> bool:
    """Per-service and per-endpoint chains hold a "/"; kube-proxy's fixed chains never do."""
    return "/" in chain


def is_affinity_set(name: str) -> bool:
    return name.startswith(AFFINITY_PREFIX)
