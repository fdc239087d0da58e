"""core/v1 Service validation: ports, cluster IPs, types, session affinity, traffic policies
and what an update may change (pkg/apis/core/validation ValidateService*)."""
from __future__ import annotations

from typing import Any

from svcnet.api.errors import Cause
from svcnet.api.selectors import (
    go_quote,
    label_key_errors,
)

from .fields import (
    GoLiteral,
    Obj,
    as_dict,
    as_int,
    as_list,
    as_str,
    duplicate,
    each_error,
    forbidden,
    int_field,
    invalid,
    ip_errors,
    non_special_ip_errors,
    not_supported,
    parse_ip,
    port_number_errors,
    required,
    validate_dns1123_label,
    validate_dns1123_subdomain,
    validate_port_num_or_name,
)
from .meta import validate_labels
from .pods import validate_protocol

_SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")
_SESSION_AFFINITIES = ("ClientIP", "None")
_TRAFFIC_POLICIES = ("Cluster", "Local")
_IP_FAMILIES = ("IPv4", "IPv6")
_IP_FAMILY_POLICIES = ("PreferDualStack", "RequireDualStack", "SingleStack")
_MAX_CLIENT_IP_AFFINITY_SECONDS = 86400


def service_cluster_ips(spec: Obj) -> list[str]:
    """spec.clusterIPs, or [clusterIP] when only that is given (the strategy syncs them)."""
    ips = [as_str(ip) for ip in as_list(spec.get("clusterIPs"))]
    if not ips and spec.get("clusterIP"):
        ips = [as_str(spec["clusterIP"])]
    return ips


def _is_headless(spec: Obj) -> bool:
    return service_cluster_ips(spec) == ["None"]


def _service_port_key(port: Obj) -> GoLiteral:
    return GoLiteral(f'core.ServicePort{{Name:"", Protocol:{go_quote(as_str(port.get("protocol")))}, '
                     f'AppProtocol:(*string)(nil), Port:{as_int(port.get("port")) or 0}, '
                     f'TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:""}}, NodePort:0}}')


def _validate_service_port(port: Obj, path: str, require_name: bool, names: set[str]) -> list[Cause]:
    errs: list[Cause] = []
    name = as_str(port.get("name"))
    if require_name and not name:
        errs.append(required(f"{path}.name"))
    elif name:
        errs.extend(validate_dns1123_label(name, f"{path}.name"))
        if name in names:
            errs.append(duplicate(f"{path}.name", name))
        names.add(name)
    number = int_field(port, "port", f"{path}.port", errs)
    if number is not None or port.get("port") is None:
        errs.extend(each_error(f"{path}.port", number or 0, port_number_errors(number or 0)))  # type: ignore[arg-type]
    errs.extend(validate_protocol(port.get("protocol"), f"{path}.protocol"))
    errs.extend(validate_port_num_or_name(port.get("targetPort"), f"{path}.targetPort"))
    node_port = int_field(port, "nodePort", f"{path}.nodePort", errs)
    if node_port:
        # The allocator checks the configured range; here only that it is a port.
        errs.extend(each_error(f"{path}.nodePort", node_port, port_number_errors(node_port)))  # type: ignore[arg-type]
    if port.get("appProtocol") is not None:
        app = as_str(port.get("appProtocol"))
        errs.extend(each_error(f"{path}.appProtocol", app, label_key_errors(app)))
    return errs


def _validate_cluster_ips(spec: Obj) -> list[Cause]:
    errs: list[Cause] = []
    cluster_ip = as_str(spec.get("clusterIP"))
    ips = [as_str(ip) for ip in as_list(spec.get("clusterIPs"))]
    if cluster_ip and ips and ips[0] != cluster_ip:
        errs.append(invalid("spec.clusterIPs", ips, "first value must match `clusterIP`"))
    elif not cluster_ip and ips:
        errs.append(invalid("spec.clusterIPs", ips, "must be empty when `clusterIP` is not specified"))
    families = [as_str(f) for f in as_list(spec.get("ipFamilies"))]
    seen: set[str] = set()
    for i, family in enumerate(families):
        if family not in _IP_FAMILIES:
            errs.append(not_supported(f"spec.ipFamilies[{i}]", family, _IP_FAMILIES))
        if family in seen:
            errs.append(duplicate(f"spec.ipFamilies[{i}]", family))
        seen.add(family)
    policy = spec.get("ipFamilyPolicy")
    if policy is not None and policy not in _IP_FAMILY_POLICIES:
        errs.append(not_supported("spec.ipFamilyPolicy", policy, _IP_FAMILY_POLICIES))
    ips = service_cluster_ips(spec)
    bad = False
    for i, ip in enumerate(ips):
        if i == 0 and ip == "None":
            if len(ips) > 1:
                bad = True
                errs.append(invalid("spec.clusterIPs", ips, "'None' must be the first and only value"))
            continue
        ip_errs = ip_errors(f"spec.clusterIPs[{i}]", ip)
        bad = bad or bool(ip_errs)
        errs.extend(ip_errs)
    if len(ips) > 2:
        errs.append(invalid("spec.clusterIPs", ips, "may only hold up to 2 values"))
    if bad:
        return errs
    if len(ips) == 2 and {parse_ip(ip).version for ip in ips} != {4, 6}:  # type: ignore[union-attr]
        errs.append(invalid("spec.clusterIPs", ips, "may specify no more than one IP for each IP family"))
    if ips and ips != ["None"]:
        for i, (ip, family) in enumerate(zip(ips, families, strict=False)):
            is_v6 = parse_ip(ip).version == 6  # type: ignore[union-attr]
            if family == "IPv4" and is_v6:
                errs.append(invalid(f"spec.clusterIPs[{i}]", ip, f"expected an IPv4 value as indicated by `ipFamilies[{i}]`"))
            if family == "IPv6" and not is_v6:
                errs.append(invalid(f"spec.clusterIPs[{i}]", ip, f"expected an IPv6 value as indicated by `ipFamilies[{i}]`"))
    return errs


def _validate_service_spec(service: Obj) -> list[Cause]:
    spec = as_dict(service.get("spec"))
    kind = spec.get("type")
    ports = [as_dict(p) for p in as_list(spec.get("ports"))]
    headless = _is_headless(spec)
    ips = service_cluster_ips(spec)
    errs: list[Cause] = []
    if not ports and not headless and kind != "ExternalName":
        errs.append(required("spec.ports"))
    if kind in ("LoadBalancer", "NodePort") and headless:
        errs.append(invalid("spec.clusterIPs[0]", ips[0], f"may not be set to 'None' for {kind} services"))
    elif kind == "ExternalName":
        if ips:
            errs.append(forbidden("spec.clusterIPs", "may not be set for ExternalName services"))
        if spec.get("ipFamilies"):
            errs.append(forbidden("spec.ipFamilies", "may not be set for ExternalName services"))
        if spec.get("ipFamilyPolicy") is not None:
            errs.append(forbidden("spec.ipFamilyPolicy", "may not be set for ExternalName services"))
        cname = as_str(spec.get("externalName")).removesuffix(".")
        if cname:
            errs.extend(validate_dns1123_subdomain(cname, "spec.externalName"))
        else:
            errs.append(required("spec.externalName"))
    names: set[str] = set()
    for i, port in enumerate(ports):
        errs.extend(_validate_service_port(port, f"spec.ports[{i}]", len(ports) > 1, names))
    if spec.get("selector") is not None:
        errs.extend(validate_labels(spec.get("selector"), "spec.selector"))
    affinity = spec.get("sessionAffinity")
    if not affinity:
        errs.append(required("spec.sessionAffinity"))
    elif affinity not in _SESSION_AFFINITIES:
        errs.append(not_supported("spec.sessionAffinity", affinity, _SESSION_AFFINITIES))
    if affinity == "ClientIP":
        errs.extend(_validate_client_ip_affinity(spec.get("sessionAffinityConfig")))
    elif affinity == "None" and spec.get("sessionAffinityConfig") is not None:
        errs.append(forbidden("spec.sessionAffinityConfig", "must not be set when session affinity is None"))
    if kind != "ExternalName":
        errs.extend(_validate_cluster_ips(spec))
    for i, ip in enumerate(as_list(spec.get("externalIPs"))):
        ip_errs = ip_errors(f"spec.externalIPs[{i}]", as_str(ip))
        errs.extend(ip_errs or non_special_ip_errors(f"spec.externalIPs[{i}]", as_str(ip)))
    if not kind:
        errs.append(required("spec.type"))
    elif kind not in _SERVICE_TYPES:
        errs.append(not_supported("spec.type", kind, _SERVICE_TYPES))
    if kind == "ClusterIP":
        for i, port in enumerate(ports):
            if port.get("nodePort"):
                errs.append(forbidden(f"spec.ports[{i}].nodePort", "may not be used when `type` is 'ClusterIP'"))
    seen_node_ports: set[tuple[str, Any]] = set()
    seen_ports: set[tuple[str, Any]] = set()
    for i, port in enumerate(ports):
        if port.get("nodePort"):
            node_key = (as_str(port.get("protocol")), port.get("nodePort"))
            if node_key in seen_node_ports:
                errs.append(duplicate(f"spec.ports[{i}].nodePort", port.get("nodePort")))
            seen_node_ports.add(node_key)
        key = (as_str(port.get("protocol")), port.get("port"))
        if key in seen_ports:
            errs.append(duplicate(f"spec.ports[{i}]", _service_port_key(port)))
        seen_ports.add(key)
    if spec.get("allocateLoadBalancerNodePorts") is not None and kind != "LoadBalancer":
        errs.append(forbidden("spec.allocateLoadBalancerNodePorts", "may only be used when `type` is 'LoadBalancer'"))
    if kind == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is None:
        # Upstream reports this one without the `spec.` prefix.
        errs.append(required("allocateLoadBalancerNodePorts"))
    errs.extend(_validate_traffic_policies(service))
    return errs


def _validate_client_ip_affinity(config: Any) -> list[Cause]:
    detail = "when session affinity type is ClientIP"
    if config is None:
        return [required("spec.sessionAffinityConfig", detail)]
    client_ip = as_dict(config).get("clientIP")
    if client_ip is None:
        return [required("spec.sessionAffinityConfig.clientIP", detail)]
    timeout = as_dict(client_ip).get("timeoutSeconds")
    path = "spec.sessionAffinityConfig.clientIP.timeoutSeconds"
    if timeout is None:
        return [required(path, detail)]
    if as_int(timeout) is None or not 0 < timeout <= _MAX_CLIENT_IP_AFFINITY_SECONDS:
        return [invalid(path, timeout, f"must be greater than 0 and less than {_MAX_CLIENT_IP_AFFINITY_SECONDS}")]
    return []


def _externally_accessible(spec: Obj) -> bool:
    kind = spec.get("type")
    return kind in ("NodePort", "LoadBalancer") or (kind == "ClusterIP" and bool(spec.get("externalIPs")))


def _validate_traffic_policies(service: Obj) -> list[Cause]:
    spec = as_dict(service.get("spec"))
    errs: list[Cause] = []
    external = spec.get("externalTrafficPolicy")
    if not _externally_accessible(spec):
        if external:
            errs.append(invalid("spec.externalTrafficPolicy", external, "may only be set for externally-accessible services"))
    elif not external:
        errs.append(required("spec.externalTrafficPolicy"))
    elif external not in _TRAFFIC_POLICIES:
        errs.append(not_supported("spec.externalTrafficPolicy", external, _TRAFFIC_POLICIES))
    health = as_int(spec.get("healthCheckNodePort")) or 0
    needs_health_check = spec.get("type") == "LoadBalancer" and external == "Local"
    if not needs_health_check and health:
        errs.append(invalid("spec.healthCheckNodePort", health,
                            "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"))
    internal = spec.get("internalTrafficPolicy")
    if internal is None and spec.get("type") in ("NodePort", "LoadBalancer", "ClusterIP"):
        errs.append(required("spec.internalTrafficPolicy"))
    elif internal is not None and internal not in _TRAFFIC_POLICIES:
        errs.append(not_supported("spec.internalTrafficPolicy", internal, _TRAFFIC_POLICIES))
    distribution = spec.get("trafficDistribution")
    if distribution is not None and distribution != "PreferClose":
        errs.append(not_supported("spec.trafficDistribution", distribution, ("PreferClose",)))
    return errs


def _service_update(new: Obj, old: Obj) -> list[Cause]:
    """ClusterIPs may be added (dual-stack upgrade) or the secondary released, never changed."""
    new_spec, old_spec = as_dict(new.get("spec")), as_dict(old.get("spec"))
    if "ExternalName" in (new_spec.get("type"), old_spec.get("type")):
        return []
    if _is_headless(new_spec) and _is_headless(old_spec):
        return []
    new_ips, old_ips = service_cluster_ips(new_spec), service_cluster_ips(old_spec)
    errs: list[Cause] = []
    if len(new_ips) == len(old_ips):
        for i, ip in enumerate(old_ips):
            if ip != new_ips[i]:
                errs.append(invalid(f"spec.clusterIPs[{i}]", new_ips, "may not change once set"))
    elif len(old_ips) > len(new_ips):
        if not new_ips:
            errs.append(invalid("spec.clusterIPs[0]", new_ips, "primary clusterIP can not be unset"))
        elif new_ips[0] != old_ips[0]:
            errs.append(invalid("spec.clusterIPs[0]", new_ips, "may not change once set"))
        if len(new_ips) == 1 and new_spec.get("ipFamilyPolicy") != "SingleStack":
            errs.append(invalid("spec.ipFamilyPolicy", new_spec.get("ipFamilyPolicy"),
                                "must be set to 'SingleStack' when releasing the secondary clusterIP"))
    elif old_ips and new_ips[0] != old_ips[0]:
        errs.append(invalid("spec.clusterIPs[0]", new_ips, "may not change once set"))
    return errs


def validate_service(service: Obj, old: Obj | None) -> list[Cause]:
    errs = _service_update(service, old) if old is not None else []
    return errs + _validate_service_spec(service)


