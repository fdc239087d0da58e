"""networking.k8s.io/v1 types: ServiceCIDR (the Service IP ranges kube-proxy's nftables mode watches),
Ingress and IngressClass (served; svcnet runs no ingress controller)."""
from __future__ import annotations

from .dsl import NETWORKING, define, define_kind

define_kind(NETWORKING, "ServiceCIDR", "networking.k8s.io", "v1", """
    spec ServiceCIDRSpec
    status ServiceCIDRStatus
""")
define(NETWORKING, "ServiceCIDRSpec", "cidrs []string list=atomic")
define(NETWORKING, "ServiceCIDRStatus",
       "conditions []meta.Condition patch=merge key=type list=map keys=type")

define_kind(NETWORKING, "Ingress", "networking.k8s.io", "v1", """
    spec IngressSpec
    status IngressStatus
""")
define(NETWORKING, "IngressSpec", """
    defaultBackend IngressBackend
    ingressClassName string
    rules []IngressRule list=atomic
    tls []IngressTLS list=atomic
""")
define(NETWORKING, "IngressBackend", """
    resource core.TypedLocalObjectReference
    service IngressServiceBackend
""")
define(NETWORKING, "IngressServiceBackend", """
    name string
    port ServiceBackendPort
""", required="name")
define(NETWORKING, "ServiceBackendPort", """
    name string
    number int32
""", map_type="atomic")
define(NETWORKING, "IngressRule", """
    host string
    http HTTPIngressRuleValue
""")
define(NETWORKING, "HTTPIngressRuleValue", "paths []HTTPIngressPath list=atomic", required="paths")
define(NETWORKING, "HTTPIngressPath", """
    backend IngressBackend
    path string
    pathType string go=v1.PathType
""", required="pathType backend")
define(NETWORKING, "IngressTLS", """
    hosts []string list=atomic
    secretName string
""")
define(NETWORKING, "IngressStatus", "loadBalancer IngressLoadBalancerStatus")
define(NETWORKING, "IngressLoadBalancerStatus", "ingress []IngressLoadBalancerIngress list=atomic")
define(NETWORKING, "IngressLoadBalancerIngress", """
    hostname string
    ip string
    ports []IngressPortStatus list=atomic
""")
define(NETWORKING, "IngressPortStatus", """
    error string
    port int32
    protocol string go=v1.Protocol
""", required="port protocol")
define_kind(NETWORKING, "IngressClass", "networking.k8s.io", "v1", "spec IngressClassSpec")
define(NETWORKING, "IngressClassSpec", """
    controller string
    parameters IngressClassParametersReference
""")
define(NETWORKING, "IngressClassParametersReference", """
    apiGroup string
    kind string
    name string
    namespace string
    scope string
""", required="kind name")
