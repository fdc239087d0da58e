"""apps/v1 DaemonSet and core/v1 ReplicationController validation
(pkg/apis/apps/validation ValidateDaemonSet, pkg/apis/core/validation ValidateReplicationController)."""
from __future__ import annotations

from svcnet.api.errors import Cause
from svcnet.api.selectors import go_quote

from .apps import (
    _int_or_percent_value,
    _not_more_than_100_percent,
    _selector_and_template,
    _selector_immutable,
    _template_restart_rules,
    _validate_int_or_percent,
)
from .fields import (
    GoLiteral,
    Obj,
    as_dict,
    as_str,
    go_string_map,
    int_field,
    invalid,
    nonnegative,
    not_supported,
    required,
)
from .meta import validate_labels
from .pods import validate_pod_template


def _validate_rolling_update_daemon_set(rolling: Obj, path: str) -> list[Cause]:
    unavailable, surge = rolling.get("maxUnavailable"), rolling.get("maxSurge")
    errs = _validate_int_or_percent(unavailable, f"{path}.maxUnavailable")
    errs.extend(_validate_int_or_percent(surge, f"{path}.maxSurge"))
    errs.extend(_not_more_than_100_percent(unavailable, f"{path}.maxUnavailable"))
    errs.extend(_not_more_than_100_percent(surge, f"{path}.maxSurge"))
    has_unavailable = _int_or_percent_value(unavailable) != 0
    has_surge = _int_or_percent_value(surge) != 0
    if has_unavailable and has_surge:
        errs.append(invalid(f"{path}.maxSurge", surge, "may not be set when maxUnavailable is non-zero"))
    elif not has_unavailable and not has_surge:
        errs.append(required(f"{path}.maxUnavailable", "cannot be 0 when maxSurge is 0"))
    return errs


def _validate_daemon_set_strategy(strategy: Obj) -> list[Cause]:
    kind = strategy.get("type")
    if kind == "OnDelete":
        return []
    if kind == "RollingUpdate":
        rolling = strategy.get("rollingUpdate")
        if rolling is None:
            return [required("spec.updateStrategy.rollingUpdate")]
        return _validate_rolling_update_daemon_set(as_dict(rolling), "spec.updateStrategy.rollingUpdate")
    return [not_supported("spec.updateStrategy", GoLiteral(go_quote(as_str(kind))), ("OnDelete", "RollingUpdate"))]


def validate_daemon_set(daemon_set: Obj, old: Obj | None) -> list[Cause]:
    spec = as_dict(daemon_set.get("spec"))
    errs: list[Cause] = []
    errs.extend(_selector_and_template(spec, "daemonset", "invalid label selector"))
    errs.extend(validate_pod_template(spec.get("template"), "spec.template"))
    errs.extend(_template_restart_rules(spec, "DaemonSet"))
    for key in ("minReadySeconds", "revisionHistoryLimit"):
        errs.extend(nonnegative(int_field(spec, key, f"spec.{key}", errs), f"spec.{key}"))
    errs.extend(_validate_daemon_set_strategy(as_dict(spec.get("updateStrategy"))))
    if old is not None:
        errs.extend(_selector_immutable(daemon_set, old))
    return errs


def validate_replication_controller(rc: Obj, old: Obj | None) -> list[Cause]:
    """ValidateReplicationControllerSpec: an equality selector that the template's labels match."""
    del old  # every field of an RC's spec may change (the selector too, unlike a ReplicaSet's)
    spec = as_dict(rc.get("spec"))
    errs: list[Cause] = []
    for key in ("minReadySeconds", "replicas"):
        errs.extend(nonnegative(int_field(spec, key, f"spec.{key}", errs), f"spec.{key}"))
    selector = spec.get("selector")
    if not selector:
        errs.append(required("spec.selector"))
    else:
        errs.extend(validate_labels(selector, "spec.selector"))
    template = spec.get("template")
    if template is None:
        errs.append(required("spec.template"))
        return errs
    labels = as_dict(as_dict(as_dict(template).get("metadata")).get("labels"))
    selector_map = as_dict(selector)
    if selector_map and any(labels.get(k) != v for k, v in selector_map.items()):
        errs.append(invalid("spec.template.metadata.labels", GoLiteral(go_string_map(labels)),
                            "selector does not match template labels"))
    errs.extend(validate_pod_template(template, "spec.template"))
    errs.extend(_template_restart_rules(spec, "ReplicationController"))
    return errs
