"""core/v1 Endpoints and discovery.k8s.io/v1 EndpointSlice validation
(pkg/apis/core/validation ValidateEndpoints, pkg/apis/discovery/validation)."""
from __future__ import annotations

from typing import Any

from svcnet.api.errors import Cause
from svcnet.api.selectors import (
    dns1123_subdomain_errors,
    label_key_errors,
)

from .fields import (
    Obj,
    as_dict,
    as_int,
    as_list,
    as_str,
    duplicate,
    each_error,
    immutable,
    invalid,
    ip_errors,
    non_special_ip_errors,
    not_supported,
    parse_ip,
    port_number_errors,
    required,
    too_many,
    validate_dns1123_label,
    validate_dns1123_subdomain,
)
from .pods import PROTOCOLS, validate_protocol


def validate_endpoints(endpoints: Obj, old: Obj | None) -> list[Cause]:
    errs: list[Cause] = []
    for i, raw in enumerate(as_list(endpoints.get("subsets"))):
        subset, path = as_dict(raw), f"subsets[{i}]"
        if not as_list(subset.get("addresses")) and not as_list(subset.get("notReadyAddresses")):
            errs.append(required(path, "must specify `addresses` or `notReadyAddresses`"))
        for key in ("addresses", "notReadyAddresses"):
            for j, address in enumerate(as_list(subset.get(key))):
                errs.extend(_validate_endpoint_address(as_dict(address), f"{path}.{key}[{j}]"))
        ports = [as_dict(p) for p in as_list(subset.get("ports"))]
        for j, port in enumerate(ports):
            port_path = f"{path}.ports[{j}]"
            name = as_str(port.get("name"))
            if len(ports) > 1 and not name:
                errs.append(required(f"{port_path}.name"))
            elif name:
                errs.extend(validate_dns1123_label(name, f"{port_path}.name"))
            number = as_int(port.get("port")) or 0
            errs.extend(each_error(f"{port_path}.port", number, port_number_errors(number)))  # type: ignore[arg-type]
            errs.extend(validate_protocol(port.get("protocol"), f"{port_path}.protocol"))
    return errs


def _validate_endpoint_address(address: Obj, path: str) -> list[Cause]:
    ip = as_str(address.get("ip"))
    errs = ip_errors(f"{path}.ip", ip)
    if address.get("hostname"):
        errs.extend(validate_dns1123_label(as_str(address["hostname"]), f"{path}.hostname"))
    if address.get("nodeName") is not None:
        errs.extend(validate_dns1123_subdomain(as_str(address["nodeName"]), f"{path}.nodeName"))
    errs.extend(non_special_ip_errors(f"{path}.ip", ip))
    return errs


_ADDRESS_TYPES = ("FQDN", "IPv4", "IPv6")
_MAX_SLICE_ENDPOINTS, _MAX_SLICE_ADDRESSES, _MAX_SLICE_PORTS = 1000, 100, 100


def validate_endpoint_slice(slice_: Obj, old: Obj | None) -> list[Cause]:
    errs: list[Cause] = []
    address_type = slice_.get("addressType")
    if not address_type:
        errs.append(required("addressType"))
    elif address_type not in _ADDRESS_TYPES:
        errs.append(not_supported("addressType", address_type, _ADDRESS_TYPES))
    endpoints = as_list(slice_.get("endpoints"))
    if len(endpoints) > _MAX_SLICE_ENDPOINTS:
        errs.append(too_many("endpoints", len(endpoints), _MAX_SLICE_ENDPOINTS))
    else:
        for i, raw in enumerate(endpoints):
            errs.extend(_validate_slice_endpoint(as_dict(raw), f"endpoints[{i}]", address_type))
    ports = as_list(slice_.get("ports"))
    if len(ports) > _MAX_SLICE_PORTS:
        errs.append(too_many("ports", len(ports), _MAX_SLICE_PORTS))
    else:
        names: set[str] = set()
        for i, raw in enumerate(ports):
            port, path = as_dict(raw), f"ports[{i}]"
            name = as_str(port.get("name"))
            if name:
                errs.extend(validate_dns1123_label(name, f"{path}.name"))
            if name in names:
                errs.append(duplicate(f"{path}.name", name))
            names.add(name)
            protocol = port.get("protocol")
            if protocol is None:
                errs.append(required(f"{path}.protocol"))
            elif protocol not in PROTOCOLS:
                errs.append(not_supported(f"{path}.protocol", protocol, PROTOCOLS))
            if port.get("appProtocol") is not None:
                app = as_str(port.get("appProtocol"))
                errs.extend(each_error(f"{path}.appProtocol", app, label_key_errors(app)))
    if old is not None and old.get("addressType") != address_type:
        errs.append(immutable("addressType", address_type))
    return errs


def _validate_slice_endpoint(endpoint: Obj, path: str, address_type: Any) -> list[Cause]:
    errs: list[Cause] = []
    addresses = [as_str(a) for a in as_list(endpoint.get("addresses"))]
    address_path = f"{path}.addresses"
    if not addresses:
        errs.append(required(address_path, "must contain at least 1 address"))
    elif len(addresses) > _MAX_SLICE_ADDRESSES:
        errs.append(too_many(address_path, len(addresses), _MAX_SLICE_ADDRESSES))
    for i, address in enumerate(addresses):
        item_path = f"{address_path}[{i}]"
        ip = parse_ip(address)
        if address_type == "IPv4":
            if ip is None or ip.version != 4:
                errs.append(invalid(item_path, address, "must be a valid IPv4 address"))
            errs.extend(non_special_ip_errors(item_path, address))
        elif address_type == "IPv6":
            if ip is None or ip.version != 6:
                errs.append(invalid(item_path, address, "must be a valid IPv6 address"))
            errs.extend(non_special_ip_errors(item_path, address))
        elif address_type == "FQDN":
            errs.extend(_fqdn_errors(item_path, address))
    if endpoint.get("hostname") is not None:
        errs.extend(validate_dns1123_label(as_str(endpoint["hostname"]), f"{path}.hostname"))
    return errs


def _fqdn_errors(path: str, name: str) -> list[Cause]:
    if not name:
        return [required(path)]
    name = name.removesuffix(".")
    if msgs := dns1123_subdomain_errors(name):
        return [invalid(path, name, ",".join(msgs))]
    if len(name.split(".")) < 2:
        return [invalid(path, name, "should be a domain with at least two segments separated by dots")]
    return []


