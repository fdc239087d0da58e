"""apps/v1 Deployment, ReplicaSet and StatefulSet validation (pkg/apis/apps/validation)."""
from __future__ import annotations

import re
from typing import Any

from svcnet.api.errors import ApiError, Cause
from svcnet.api.selectors import (
    go_quote,
    label_selector_from_object,
    regex_error,
)

from .fields import (
    GoLiteral,
    Obj,
    as_dict,
    as_int,
    as_str,
    forbidden,
    go_int_or_string,
    go_label_selector,
    go_string_map,
    immutable,
    int_field,
    invalid,
    nonnegative,
    not_supported,
    required,
    semantic_equal,
)
from .meta import validate_label_selector
from .pods import validate_pod_template


def _intstr_percent(value: Any) -> int | None:
    if isinstance(value, str) and re.fullmatch(r"[0-9]+%", value):
        return int(value[:-1])
    return None


def _validate_int_or_percent(value: Any, path: str) -> list[Cause]:
    if isinstance(value, str):
        if _intstr_percent(value) is None:
            return [invalid(path, go_int_or_string(value),
                            regex_error("a valid percent string must be a numeric string followed by an ending '%'",
                                        "[0-9]+%", "1%", "93%"))]
        return []
    if as_int(value) is not None:
        return nonnegative(value, path)
    return [invalid(path, value, "must be an integer or percentage (e.g '5%')")]


def _int_or_percent_value(value: Any) -> int:
    percent = _intstr_percent(value)
    if percent is not None:
        return percent
    return as_int(value) or 0


def _not_more_than_100_percent(value: Any, path: str) -> list[Cause]:
    percent = _intstr_percent(value)
    if percent is not None and percent > 100:
        return [invalid(path, go_int_or_string(value), "must not be greater than 100%")]
    return []


def _selector_and_template(spec: Obj, what: str, invalid_detail: str) -> list[Cause]:
    """Selector required, valid and non-empty, and matching the template's labels."""
    errs: list[Cause] = []
    selector = spec.get("selector")
    if selector is None:
        errs.append(required("spec.selector"))
    else:
        errs.extend(validate_label_selector(selector, "spec.selector"))
        sel = as_dict(selector)
        if not sel.get("matchLabels") and not sel.get("matchExpressions"):
            errs.append(invalid("spec.selector", go_label_selector(sel), f"empty selector is invalid for {what}"))
    try:
        matcher = label_selector_from_object(selector if isinstance(selector, dict) or selector is None else {})
    except ApiError:
        errs.append(invalid("spec.selector", go_label_selector(as_dict(selector)), invalid_detail))
        return errs
    labels = as_dict(as_dict(spec.get("template")).get("metadata")).get("labels")
    if not matcher.empty and not matcher.matches(as_dict(labels)):
        errs.append(invalid("spec.template.metadata.labels", GoLiteral(go_string_map(labels)),
                            "`selector` does not match template `labels`"))
    return errs


def _template_restart_rules(spec: Obj, kind: str) -> list[Cause]:
    pod_spec = as_dict(as_dict(spec.get("template")).get("spec"))
    errs: list[Cause] = []
    restart = pod_spec.get("restartPolicy")
    if restart and restart != "Always":
        errs.append(not_supported("spec.template.spec.restartPolicy", restart, ("Always",)))
    if pod_spec.get("activeDeadlineSeconds") is not None:
        errs.append(forbidden("spec.template.spec.activeDeadlineSeconds",
                              f"activeDeadlineSeconds in {kind} is not Supported"))
    return errs


def _validate_replica_set_spec(spec: Obj, what: str) -> list[Cause]:
    errs: list[Cause] = []
    for key in ("replicas", "minReadySeconds"):
        errs.extend(nonnegative(int_field(spec, key, f"spec.{key}", errs), f"spec.{key}"))
    errs.extend(_selector_and_template(spec, what, "invalid label selector"))
    errs.extend(validate_pod_template(spec.get("template"), "spec.template"))
    errs.extend(_template_restart_rules(spec, "ReplicaSet"))
    return errs


def _validate_deployment_strategy(strategy: Obj) -> list[Cause]:
    kind = strategy.get("type")
    rolling = strategy.get("rollingUpdate")
    if kind == "Recreate":
        if rolling is not None:
            return [forbidden("spec.strategy.rollingUpdate", "may not be specified when strategy `type` is 'Recreate'")]
        return []
    if kind == "RollingUpdate":
        if rolling is None:
            return [required("spec.strategy.rollingUpdate", "this should be defaulted and never be nil")]
        rolling = as_dict(rolling)
        path = "spec.strategy.rollingUpdate"
        unavailable, surge = rolling.get("maxUnavailable"), rolling.get("maxSurge")
        errs = _validate_int_or_percent(unavailable, f"{path}.maxUnavailable")
        errs.extend(_validate_int_or_percent(surge, f"{path}.maxSurge"))
        if _int_or_percent_value(unavailable) == 0 and _int_or_percent_value(surge) == 0:
            errs.append(invalid(f"{path}.maxUnavailable", go_int_or_string(unavailable),
                                "may not be 0 when `maxSurge` is 0"))
        errs.extend(_not_more_than_100_percent(unavailable, f"{path}.maxUnavailable"))
        return errs
    rolling_text = "(*apps.RollingUpdateDeployment)(nil)" if rolling is None else "&apps.RollingUpdateDeployment{...}"
    value = GoLiteral(f"apps.DeploymentStrategy{{Type:{go_quote(as_str(kind))}, RollingUpdate:{rolling_text}}}")
    return [not_supported("spec.strategy", value, ("Recreate", "RollingUpdate"))]


def validate_deployment(deployment: Obj, old: Obj | None) -> list[Cause]:
    spec = as_dict(deployment.get("spec"))
    errs: list[Cause] = []
    errs.extend(nonnegative(int_field(spec, "replicas", "spec.replicas", errs), "spec.replicas"))
    errs.extend(_selector_and_template(spec, "deployment", "invalid label selector"))
    errs.extend(validate_pod_template(spec.get("template"), "spec.template"))
    errs.extend(_template_restart_rules(spec, "ReplicaSet"))
    errs.extend(_validate_deployment_strategy(as_dict(spec.get("strategy"))))
    min_ready = int_field(spec, "minReadySeconds", "spec.minReadySeconds", errs) or 0
    errs.extend(nonnegative(min_ready, "spec.minReadySeconds"))
    history = int_field(spec, "revisionHistoryLimit", "spec.revisionHistoryLimit", errs)
    errs.extend(nonnegative(history, "spec.revisionHistoryLimit"))
    deadline = int_field(spec, "progressDeadlineSeconds", "spec.progressDeadlineSeconds", errs)
    if deadline is not None:
        errs.extend(nonnegative(deadline, "spec.progressDeadlineSeconds"))
        if deadline <= min_ready:
            errs.append(invalid("spec.progressDeadlineSeconds", deadline, "must be greater than minReadySeconds"))
    if old is not None:
        errs.extend(_selector_immutable(deployment, old))
    return errs


def _selector_immutable(new: Obj, old: Obj) -> list[Cause]:
    new_selector = as_dict(new.get("spec")).get("selector")
    if not semantic_equal(new_selector, as_dict(old.get("spec")).get("selector")):
        return [immutable("spec.selector", go_label_selector(as_dict(new_selector)))]
    return []


def validate_replica_set(replica_set: Obj, old: Obj | None) -> list[Cause]:
    # Upstream's ReplicaSet message says "deployment" too.
    errs = _validate_replica_set_spec(as_dict(replica_set.get("spec")), "deployment")
    if old is not None:
        errs.extend(_selector_immutable(replica_set, old))
    return errs


_STATEFUL_SET_MUTABLE = ("replicas", "ordinals", "template", "updateStrategy",
                         "persistentVolumeClaimRetentionPolicy", "minReadySeconds")


def validate_stateful_set(stateful_set: Obj, old: Obj | None) -> list[Cause]:
    spec = as_dict(stateful_set.get("spec"))
    errs: list[Cause] = []
    policy = spec.get("podManagementPolicy")
    if not policy:
        errs.append(required("spec.podManagementPolicy"))
    elif policy not in ("OrderedReady", "Parallel"):
        errs.append(invalid("spec.podManagementPolicy", policy, "must be 'OrderedReady' or 'Parallel'"))
    errs.extend(_validate_stateful_set_strategy(as_dict(spec.get("updateStrategy"))))
    retention = spec.get("persistentVolumeClaimRetentionPolicy")
    if retention is not None:
        for key in ("whenDeleted", "whenScaled"):
            value = as_dict(retention).get(key)
            if value not in ("Retain", "Delete"):
                errs.append(not_supported(f"spec.persistentVolumeClaimRetentionPolicy.{key}", value or "",
                                          ("Retain", "Delete")))
    for key in ("replicas", "minReadySeconds"):
        errs.extend(nonnegative(int_field(spec, key, f"spec.{key}", errs), f"spec.{key}"))
    if spec.get("ordinals") is not None:
        errs.extend(nonnegative(as_dict(spec["ordinals"]).get("start"), "spec.ordinals.start"))
    errs.extend(_selector_and_template(spec, "statefulset", ""))
    errs.extend(validate_pod_template(spec.get("template"), "spec.template"))
    errs.extend(_template_restart_rules(spec, "StatefulSet"))
    # svcnet rule (the seed): a StatefulSet must name its governing Service.
    # Upstream's ValidateStatefulSetSpec does not check this (only the OpenAPI
    # schema lists serviceName as required), so real clusters accept it.
    if not spec.get("serviceName"):
        errs.append(required("spec.serviceName"))
    if old is not None:
        old_spec = as_dict(old.get("spec"))
        rest_new = {k: v for k, v in spec.items() if k not in _STATEFUL_SET_MUTABLE}
        rest_old = {k: v for k, v in old_spec.items() if k not in _STATEFUL_SET_MUTABLE}
        if not semantic_equal(rest_new, rest_old):
            errs.append(forbidden("spec", "updates to statefulset spec for fields other than 'replicas', "
                                  "'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' "
                                  "and 'minReadySeconds' are forbidden"))
    return errs


def _validate_stateful_set_strategy(strategy: Obj) -> list[Cause]:
    kind = strategy.get("type")
    rolling = strategy.get("rollingUpdate")
    path = "spec.updateStrategy"
    if not kind:
        return [required(path)]
    if kind == "OnDelete":
        if rolling is not None:
            partition = as_int(as_dict(rolling).get("partition")) or 0
            value = GoLiteral(f"apps.RollingUpdateStatefulSetStrategy{{Partition:{partition}, "
                              "MaxUnavailable:(*intstr.IntOrString)(nil)}")
            return [invalid(f"{path}.rollingUpdate", value, "only allowed for updateStrategy 'RollingUpdate'")]
        return []
    if kind == "RollingUpdate":
        if rolling is None:
            return []
        rolling = as_dict(rolling)
        errs = nonnegative(rolling.get("partition"), f"{path}.rollingUpdate.partition")
        if rolling.get("maxUnavailable") is not None:
            unavailable = rolling["maxUnavailable"]
            unavailable_path = f"{path}.rollingUpdate.maxUnavailable"
            errs.extend(_validate_int_or_percent(unavailable, unavailable_path))
            if _int_or_percent_value(unavailable) == 0:
                errs.append(invalid(unavailable_path, go_int_or_string(unavailable), "cannot be 0"))
            errs.extend(_not_more_than_100_percent(unavailable, unavailable_path))
        return errs
    rolling_text = ("(*apps.RollingUpdateStatefulSetStrategy)(nil)" if rolling is None
                    else "&apps.RollingUpdateStatefulSetStrategy{...}")
    value = GoLiteral(f"apps.StatefulSetUpdateStrategy{{Type:{go_quote(as_str(kind))}, RollingUpdate:{rolling_text}}}")
    return [invalid(path, value, "must be 'RollingUpdate' or 'OnDelete'")]


