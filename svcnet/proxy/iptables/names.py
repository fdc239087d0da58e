"""iptables chain names, exactly as kube-proxy's iptables proxier spells them.

Per-service chains are a prefix plus the first 16 characters of
base32(sha256(servicePortName + protocol)), with protocol lower-cased; an
endpoint chain also hashes the endpoint's "IP:port". So the seed's Service
default/hostnames port "default" TCP is KUBE-SVC-ODX2UBAZM7RQWOIU on every
kube-proxy (and on svcnet) in the world.
"""
from __future__ import annotations

import base64
import functools
import hashlib

from svcnet.proxy.model import EndpointInfo, ServicePortName

# Tables.
TABLE_FILTER = "filter"
TABLE_NAT = "nat"

# Top-level chains.
KUBE_SERVICES = "KUBE-SERVICES"
KUBE_EXTERNAL_SERVICES = "KUBE-EXTERNAL-SERVICES"
KUBE_NODEPORTS = "KUBE-NODEPORTS"
KUBE_POSTROUTING = "KUBE-POSTROUTING"
KUBE_MARK_MASQ = "KUBE-MARK-MASQ"
KUBE_FORWARD = "KUBE-FORWARD"
KUBE_PROXY_FIREWALL = "KUBE-PROXY-FIREWALL"
# Created empty in mangle, nat and filter; if it disappears, someone flushed
# iptables and the next sync must be full (kube-proxy's iptables.Monitor).
KUBE_PROXY_CANARY = "KUBE-PROXY-CANARY"
# kubelet's chain with the anti-martian rule; kube-proxy keeps a copy of it.
KUBE_FIREWALL = "KUBE-FIREWALL"

# Per-service chain prefixes.
SVC_PREFIX = "KUBE-SVC-"
SVL_PREFIX = "KUBE-SVL-"
EXT_PREFIX = "KUBE-EXT-"
FW_PREFIX = "KUBE-FW-"
SEP_PREFIX = "KUBE-SEP-"
SERVICE_CHAIN_PREFIXES = (SVC_PREFIX, SVL_PREFIX, EXT_PREFIX, FW_PREFIX, SEP_PREFIX)


# Every sync names every chain again; hashing is the renderer's main cost, so remember recent names.
@functools.lru_cache(maxsize=1 << 18)
def _hash16(text: str) -> str:
    # 16 base32 characters encode exactly the first 10 bytes; encoding only those is 3x cheaper.
    return base64.b32encode(hashlib.sha256(text.encode()).digest()[:10]).decode()


def port_proto_hash(name: ServicePortName) -> str:
    return _hash16(str(name) + name.protocol.lower())


def cluster_policy_chain(name: ServicePortName) -> str:
    """KUBE-SVC-*: load-balances over the Cluster-policy endpoints."""
    return SVC_PREFIX + port_proto_hash(name)


def local_policy_chain(name: ServicePortName) -> str:
    """KUBE-SVL-*: load-balances over this node's endpoints (Local policy)."""
    return SVL_PREFIX + port_proto_hash(name)


def external_chain(name: ServicePortName) -> str:
    """KUBE-EXT-*: where NodePort, externalIP and LoadBalancer traffic enters."""
    return EXT_PREFIX + port_proto_hash(name)


def firewall_chain(name: ServicePortName) -> str:
    """KUBE-FW-*: loadBalancerSourceRanges filtering."""
    return FW_PREFIX + port_proto_hash(name)


def endpoint_chain(name: ServicePortName, endpoint: EndpointInfo | str) -> str:
    """KUBE-SEP-*: masquerades hairpin traffic and DNATs to one endpoint."""
    address = endpoint if isinstance(endpoint, str) else endpoint.address
    return SEP_PREFIX + _hash16(str(name) + name.protocol.lower() + address)


def is_service_chain(chain: str) -> bool:
    """A per-service chain svcnet owns (and may delete when stale)."""
    return chain.startswith(SERVICE_CHAIN_PREFIXES)
