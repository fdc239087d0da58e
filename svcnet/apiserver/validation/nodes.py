"""core/v1 Node validation (taints, pod CIDRs, provider ID) and coordination.k8s.io/v1 Lease
validation, the node heartbeat (pkg/apis/coordination/validation)."""
from __future__ import annotations

import ipaddress

from svcnet.api.errors import Cause
from svcnet.api.selectors import (
    go_quote,
    label_key_errors,
    label_value_errors,
)

from .fields import (
    GoLiteral,
    Obj,
    as_dict,
    as_list,
    as_str,
    cidr_errors,
    duplicate,
    each_error,
    forbidden,
    int_field,
    invalid,
    not_supported,
    required,
)
from .pods import TAINT_EFFECTS

_NODE_CIDR_CHANGE = 'node updates may not change podCIDR except from "" to valid'


def _node_pod_cidrs(spec: Obj) -> list[str]:
    cidrs = [as_str(c) for c in as_list(spec.get("podCIDRs"))]
    return cidrs or ([as_str(spec["podCIDR"])] if spec.get("podCIDR") else [])


def validate_node(node: Obj, old: Obj | None) -> list[Cause]:
    spec = as_dict(node.get("spec"))
    errs: list[Cause] = []
    seen: set[tuple[str, str]] = set()
    for i, raw in enumerate(as_list(spec.get("taints"))):
        taint, path = as_dict(raw), f"spec.taints[{i}]"
        key, value, effect = as_str(taint.get("key")), as_str(taint.get("value")), as_str(taint.get("effect"))
        errs.extend(each_error(f"{path}.key", key, label_key_errors(key)))
        if msgs := label_value_errors(value):
            errs.append(invalid(f"{path}.value", value, ";".join(msgs)))
        if not effect:
            errs.append(required(f"{path}.effect"))
        elif effect not in TAINT_EFFECTS:
            errs.append(not_supported(f"{path}.effect", effect, TAINT_EFFECTS))
        if (key, effect) in seen:
            errs.append(duplicate(path, GoLiteral(f"core.Taint{{Key:{go_quote(key)}, Value:{go_quote(value)}, "
                                                  f"Effect:{go_quote(effect)}, TimeAdded:<nil>}}"),
                                  "taints must be unique by key and effect pair"))
        seen.add((key, effect))
    cidrs = _node_pod_cidrs(spec)
    bad_cidr = False
    for i, cidr in enumerate(cidrs):
        cidr_errs = cidr_errors(f"spec.podCIDRs[{i}]", cidr)
        bad_cidr = bad_cidr or bool(cidr_errs)
        errs.extend(cidr_errs)
    if len(cidrs) > 1 and not bad_cidr:
        versions = [ipaddress.ip_network(c, strict=False).version for c in cidrs]
        if len(cidrs) > 2 or set(versions) != {4, 6}:
            errs.append(invalid("spec.podCIDRs", cidrs, "may specify no more than one CIDR for each IP family"))
    if old is not None:
        old_spec = as_dict(old.get("spec"))
        old_cidrs = _node_pod_cidrs(old_spec)
        if old_cidrs and old_cidrs != cidrs:
            errs.append(forbidden("spec.podCIDRs", _NODE_CIDR_CHANGE))
        old_provider = as_str(old_spec.get("providerID"))
        if old_provider and old_provider != as_str(spec.get("providerID")):
            errs.append(forbidden("spec.providerID", 'node updates may not change providerID except from "" to valid'))
    return errs



def validate_lease(lease: Obj, old: Obj | None) -> list[Cause]:
    spec = as_dict(lease.get("spec"))
    errs: list[Cause] = []
    duration = int_field(spec, "leaseDurationSeconds", "spec.leaseDurationSeconds", errs)
    if duration is not None and duration <= 0:
        errs.append(invalid("spec.leaseDurationSeconds", duration, "must be greater than 0"))
    transitions = int_field(spec, "leaseTransitions", "spec.leaseTransitions", errs)
    if transitions is not None and transitions < 0:
        errs.append(invalid("spec.leaseTransitions", transitions, "must be greater than or equal to 0"))
    if spec.get("preferredHolder") and not spec.get("strategy"):
        errs.append(forbidden("spec.preferredHolder", "may only be specified if `strategy` is defined"))
    return errs


