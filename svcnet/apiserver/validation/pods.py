"""core/v1 Pod validation: containers, probes, tolerations, DNS config, pod templates and the
fields a pod update may change (pkg/apis/core/validation ValidatePod*)."""
from __future__ import annotations

import re
from typing import Any

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
    as_int,
    as_list,
    as_str,
    duplicate,
    each_error,
    forbidden,
    int_field,
    invalid,
    ip_errors,
    nonnegative,
    not_supported,
    port_name_errors,
    port_number_errors,
    required,
    semantic_equal,
    validate_dns1123_label,
    validate_dns1123_subdomain,
    validate_port_num_or_name,
)
from .meta import validate_annotations, validate_labels

PROTOCOLS = ("SCTP", "TCP", "UDP")
_RESTART_POLICIES = ("Always", "OnFailure", "Never")
_DNS_POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
_PULL_POLICIES = ("Always", "IfNotPresent", "Never")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
_MAX_INT32 = 2**31 - 1


def validate_protocol(value: Any, path: str) -> list[Cause]:
    if not value:
        return [required(path)]
    if value not in PROTOCOLS:
        return [not_supported(path, value, PROTOCOLS)]
    return []


def _validate_container_ports(ports: list[Any], path: str, host_network: bool) -> list[Cause]:
    errs: list[Cause] = []
    names: set[str] = set()
    for i, raw in enumerate(ports):
        port, port_path = as_dict(raw), f"{path}[{i}]"
        name = as_str(port.get("name"))
        if name:
            if msgs := port_name_errors(name):
                errs.extend(each_error(f"{port_path}.name", name, msgs))
            elif name in names:
                errs.append(duplicate(f"{port_path}.name", name))
            else:
                names.add(name)
        container_port = int_field(port, "containerPort", f"{port_path}.containerPort", errs)
        if not port.get("containerPort"):
            errs.append(required(f"{port_path}.containerPort"))
        elif container_port is not None:
            errs.extend(each_error(f"{port_path}.containerPort", container_port,  # type: ignore[arg-type]
                              port_number_errors(container_port)))
        host_port = int_field(port, "hostPort", f"{port_path}.hostPort", errs)
        if host_port:
            errs.extend(each_error(f"{port_path}.hostPort", host_port, port_number_errors(host_port)))  # type: ignore[arg-type]
            if host_network and container_port is not None and host_port != container_port:
                errs.append(invalid(f"{port_path}.hostPort", host_port,
                                    "must match `containerPort` when `hostNetwork` is true"))
        errs.extend(validate_protocol(port.get("protocol"), f"{port_path}.protocol"))
    return errs


_PROBE_HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")
_LIFECYCLE_HANDLERS = ("exec", "httpGet", "tcpSocket", "sleep")
_HTTP_HEADER_NAME = re.compile(r"[-A-Za-z0-9]+")
_HTTP_HEADER_NAME_ERROR = ("a valid HTTP header must consist of alphanumeric characters or '-' "
                           "(e.g. 'X-Header-Name', regex used for validation is '[-A-Za-z0-9]+')")
_INIT_ONLY_WITH_RESTART = "may not be set for init containers without restartPolicy=Always"


def _validate_sleep(action: Obj, path: str, grace: int) -> list[Cause]:
    # 1.32: PodLifecycleSleepAction is on (beta), PodLifecycleSleepActionAllowZero off (alpha):
    # a sleep of 0 s is refused, and one longer than the pod's grace period (equal is fine).
    seconds = as_int(action.get("seconds")) or 0
    if 0 < seconds <= grace:
        return []
    return [invalid(path, seconds, f"must be greater than 0 and less than terminationGracePeriodSeconds ({grace}). "
                                   "Enable AllowPodLifecycleSleepActionZeroValue feature gate for zero sleep.")]


def _validate_handler(handler: Obj, path: str, kinds: tuple[str, ...] = _PROBE_HANDLERS,
                      grace: int = 0) -> list[Cause]:
    """One handler type of `kinds`, each checked as validateHandler does (probes and lifecycle hooks alike)."""
    errs: list[Cause] = []
    count = 0
    for kind in kinds:
        action = handler.get(kind)
        if action is None:
            continue
        action_path = f"{path}.{kind}"
        if count > 0:
            errs.append(forbidden(action_path, "may not specify more than 1 handler type"))
            continue
        count += 1
        action = as_dict(action)
        if kind == "exec" and not as_list(action.get("command")):
            errs.append(required(f"{action_path}.command"))
        elif kind == "httpGet":
            if not action.get("path"):
                errs.append(required(f"{action_path}.path"))
            errs.extend(validate_port_num_or_name(action.get("port"), f"{action_path}.port"))
            scheme = action.get("scheme") or ""
            if scheme not in ("HTTP", "HTTPS"):
                errs.append(not_supported(f"{action_path}.scheme", scheme, ("HTTP", "HTTPS")))
            for header in as_list(action.get("httpHeaders")):
                name = as_str(as_dict(header).get("name"))
                if not _HTTP_HEADER_NAME.fullmatch(name):
                    errs.append(invalid(f"{action_path}.httpHeaders", name, _HTTP_HEADER_NAME_ERROR))
        elif kind == "tcpSocket":
            errs.extend(validate_port_num_or_name(action.get("port"), f"{action_path}.port"))
        elif kind == "sleep":
            errs.extend(_validate_sleep(action, action_path, grace))
        elif kind == "grpc":
            port = action.get("port")
            errs.extend(each_error(f"{action_path}.port", port, port_number_errors(port))  # type: ignore[arg-type]
                        if as_int(port) is not None else [invalid(f"{action_path}.port", port,
                                                                "must be an integer")])
    if count == 0:
        errs.append(required(path, "must specify a handler type"))
    return errs


def _validate_probe(probe: Any, path: str) -> list[Cause]:
    if probe is None:
        return []
    probe = as_dict(probe)
    errs = _validate_handler(probe, path)
    for key in ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold"):
        errs.extend(nonnegative(int_field(probe, key, f"{path}.{key}", errs), f"{path}.{key}"))
    grace = as_int(probe.get("terminationGracePeriodSeconds"))
    if grace is not None and grace <= 0:
        errs.append(invalid(f"{path}.terminationGracePeriodSeconds", grace, "must be greater than 0"))
    return errs


def _validate_lifecycle(container: Obj, path: str, grace: int, init: bool) -> list[Cause]:
    """postStart and preStop: allowed on app containers and restartable (sidecar) init containers."""
    lifecycle = container.get("lifecycle")
    if lifecycle is None:
        return []
    if init and container.get("restartPolicy") != "Always":
        return [forbidden(f"{path}.lifecycle", _INIT_ONLY_WITH_RESTART)]
    errs: list[Cause] = []
    for hook in ("postStart", "preStop"):
        handler = as_dict(lifecycle).get(hook)
        if handler is not None:
            errs.extend(_validate_handler(as_dict(handler), f"{path}.lifecycle.{hook}", _LIFECYCLE_HANDLERS, grace))
    return errs


def _validate_container(container: Obj, path: str, host_network: bool, grace: int = 0,
                        init: bool = False) -> list[Cause]:
    errs: list[Cause] = []
    name = as_str(container.get("name"))
    if not name:
        errs.append(required(f"{path}.name"))
    else:
        errs.extend(validate_dns1123_label(name, f"{path}.name"))
    image = as_str(container.get("image"))
    if not image:
        errs.append(required(f"{path}.image"))
    elif image.strip() != image:
        errs.append(invalid(f"{path}.image", image, "must not have leading or trailing whitespace"))
    errs.extend(_validate_container_ports(as_list(container.get("ports")), f"{path}.ports", host_network))
    for i, env in enumerate(as_list(container.get("env"))):
        if not as_str(as_dict(env).get("name")):
            errs.append(required(f"{path}.env[{i}].name"))
    errs.extend(_validate_lifecycle(container, path, grace, init))
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        errs.extend(_validate_probe(container.get(probe), f"{path}.{probe}"))
    for probe in ("livenessProbe", "startupProbe"):
        threshold = as_dict(container.get(probe)).get("successThreshold")
        if container.get(probe) is not None and threshold is not None and threshold != 1:
            errs.append(invalid(f"{path}.{probe}.successThreshold", threshold, "must be 1"))
    policy = container.get("imagePullPolicy")
    if not policy:
        errs.append(required(f"{path}.imagePullPolicy"))
    elif policy not in _PULL_POLICIES:
        errs.append(not_supported(f"{path}.imagePullPolicy", policy, _PULL_POLICIES))
    message_policy = container.get("terminationMessagePolicy")
    if not message_policy:
        errs.append(required(f"{path}.terminationMessagePolicy"))
    elif message_policy not in ("File", "FallbackToLogsOnError"):
        errs.append(invalid(f"{path}.terminationMessagePolicy", message_policy,
                            "must be 'File' or 'FallbackToLogsOnError'"))
    return errs


def _validate_containers(spec: Obj, path: str) -> list[Cause]:
    errs: list[Cause] = []
    host_network = bool(spec.get("hostNetwork"))
    # As ValidatePodSpec: the grace period a sleep hook is held to, 0 when unset (defaulting sets it).
    grace = as_int(spec.get("terminationGracePeriodSeconds")) or 0
    seen: set[str] = set()
    containers = as_list(spec.get("containers"))
    if not containers:
        errs.append(required(f"{path}.containers"))
    for key in ("initContainers", "containers"):
        for i, raw in enumerate(as_list(spec.get(key))):
            container, container_path = as_dict(raw), f"{path}.{key}[{i}]"
            errs.extend(_validate_container(container, container_path, host_network, grace,
                                            init=key == "initContainers"))
            name = as_str(container.get("name"))
            if name and name in seen:
                errs.append(duplicate(f"{container_path}.name", name))
            seen.add(name)
    return errs


def validate_tolerations(tolerations: list[Any], path: str) -> list[Cause]:
    errs: list[Cause] = []
    for i, raw in enumerate(tolerations):
        toleration, t_path = as_dict(raw), f"{path}[{i}]"
        key, operator = as_str(toleration.get("key")), as_str(toleration.get("operator"))
        value, effect = as_str(toleration.get("value")), as_str(toleration.get("effect"))
        if key:
            errs.extend(each_error(f"{t_path}.key", key, label_key_errors(key)))
        if not key and operator != "Exists":
            errs.append(invalid(f"{t_path}.operator", operator,
                                'operator must be Exists when `key` is empty, which means "match all values and all keys"'))
        if toleration.get("tolerationSeconds") is not None and effect != "NoExecute":
            errs.append(invalid(f"{t_path}.effect", effect, "effect must be 'NoExecute' when `tolerationSeconds` is set"))
        if operator in ("Equal", ""):
            if msgs := label_value_errors(value):
                errs.append(invalid(f"{t_path}.operator", value, ";".join(msgs)))
        elif operator == "Exists":
            if value:
                errs.append(invalid(f"{t_path}.operator", GoLiteral(f"core.Toleration{{Key:{go_quote(key)}, "
                                    f"Operator:{go_quote(operator)}, Value:{go_quote(value)}, "
                                    f"Effect:{go_quote(effect)}}}"), "value must be empty when `operator` is 'Exists'"))
        else:
            errs.append(not_supported(f"{t_path}.operator", operator, ("Equal", "Exists")))
        if effect and effect not in TAINT_EFFECTS:
            errs.append(not_supported(f"{t_path}.effect", effect, TAINT_EFFECTS))
    return errs


def _validate_dns(spec: Obj, path: str) -> list[Cause]:
    errs: list[Cause] = []
    policy = spec.get("dnsPolicy")
    if not policy:
        errs.append(required(f"{path}.dnsPolicy"))
    elif policy not in _DNS_POLICIES:
        errs.append(not_supported(f"{path}.dnsPolicy", policy, _DNS_POLICIES))
    config = spec.get("dnsConfig")
    config_path = f"{path}.dnsConfig"
    if policy == "None":
        if config is None:
            return errs + [required(config_path, "must provide `dnsConfig` when `dnsPolicy` is None")]
        if not as_list(as_dict(config).get("nameservers")):
            errs.append(required(f"{config_path}.nameservers",
                                 "must provide at least one DNS nameserver when `dnsPolicy` is None"))
    if config is not None:
        config = as_dict(config)
        nameservers = [as_str(n) for n in as_list(config.get("nameservers"))]
        if len(nameservers) > 3:
            errs.append(invalid(f"{config_path}.nameservers", nameservers, "must not have more than 3 nameservers"))
        for i, server in enumerate(nameservers):
            errs.extend(ip_errors(f"{config_path}.nameservers[{i}]", server))
        searches = [as_str(s) for s in as_list(config.get("searches"))]
        if len(searches) > 32:
            errs.append(invalid(f"{config_path}.searches", searches, "must not have more than 32 search paths"))
        for i, search in enumerate(searches):
            if search != ".":
                errs.extend(validate_dns1123_subdomain(search.removesuffix("."), f"{config_path}.searches[{i}]"))
        for i, option in enumerate(as_list(config.get("options"))):
            if not as_str(as_dict(option).get("name")):
                errs.append(required(f"{config_path}.options[{i}]", "Option.Name must not be empty"))
    return errs


def validate_pod_spec(spec: Obj, path: str) -> list[Cause]:
    errs = _validate_containers(spec, path)
    restart = spec.get("restartPolicy")
    if not restart:
        errs.append(required(f"{path}.restartPolicy"))
    elif restart not in _RESTART_POLICIES:
        errs.append(not_supported(f"{path}.restartPolicy", restart, _RESTART_POLICIES))
    errs.extend(_validate_dns(spec, path))
    for key in ("hostname", "subdomain"):
        if spec.get(key):
            errs.extend(validate_dns1123_label(as_str(spec[key]), f"{path}.{key}"))
    for key in ("nodeName", "serviceAccountName"):
        if spec.get(key):
            errs.extend(validate_dns1123_subdomain(as_str(spec[key]), f"{path}.{key}"))
    deadline = int_field(spec, "activeDeadlineSeconds", f"{path}.activeDeadlineSeconds", errs)
    if deadline is not None and not 1 <= deadline <= _MAX_INT32:
        errs.append(invalid(f"{path}.activeDeadlineSeconds", deadline, f"must be between 1 and {_MAX_INT32}, inclusive"))
    int_field(spec, "terminationGracePeriodSeconds", f"{path}.terminationGracePeriodSeconds", errs)
    errs.extend(validate_tolerations(as_list(spec.get("tolerations")), f"{path}.tolerations"))
    return errs


def validate_pod_template(template: Any, path: str) -> list[Cause]:
    template = as_dict(template)
    meta = as_dict(template.get("metadata"))
    # Upstream reports template labels at `<path>.labels` (not `.metadata.labels`).
    errs = validate_labels(meta.get("labels"), f"{path}.labels")
    errs.extend(validate_annotations(meta.get("annotations"), f"{path}.annotations"))
    errs.extend(validate_pod_spec(as_dict(template.get("spec")), f"{path}.spec"))
    return errs


_POD_UPDATABLE = ("`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
                  "`spec.tolerations` (only additions to existing tolerations),"
                  "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)")


def _pod_update(new: Obj, old: Obj) -> list[Cause]:
    new_spec, old_spec = as_dict(new.get("spec")), as_dict(old.get("spec"))
    errs: list[Cause] = []
    munged = dict(new_spec)
    for key in ("containers", "initContainers"):
        new_list, old_list = as_list(new_spec.get(key)), as_list(old_spec.get(key))
        if len(new_list) != len(old_list):
            return errs + [forbidden(f"spec.{key}", "pod updates may not add or remove containers")]
        merged = []
        for i, (n, o) in enumerate(zip(new_list, old_list, strict=True)):
            image = as_str(as_dict(n).get("image"))
            if not image:
                errs.append(required(f"spec.{key}[{i}].image"))
            elif image.strip() != image:
                errs.append(invalid(f"spec.{key}[{i}].image", image, "must not have leading or trailing whitespace"))
            merged.append({**as_dict(n), "image": as_dict(o).get("image")})
        if key in new_spec:
            munged[key] = merged
    new_deadline, old_deadline = new_spec.get("activeDeadlineSeconds"), old_spec.get("activeDeadlineSeconds")
    deadline_path = "spec.activeDeadlineSeconds"
    if as_int(new_deadline) is not None:
        if not 0 <= new_deadline <= _MAX_INT32:
            return errs + [invalid(deadline_path, new_deadline, f"must be between 0 and {_MAX_INT32}, inclusive")]
        if as_int(old_deadline) is not None and old_deadline < new_deadline:
            return errs + [invalid(deadline_path, new_deadline, "must be less than or equal to previous value")]
    elif old_deadline is not None:
        errs.append(invalid(deadline_path, None, "must not update from a positive integer to nil value"))
    munged["activeDeadlineSeconds"] = old_deadline
    new_tolerations, old_tolerations = as_list(new_spec.get("tolerations")), as_list(old_spec.get("tolerations"))
    for toleration in old_tolerations:
        if not any(_same_toleration(toleration, t) for t in new_tolerations):
            errs.append(forbidden("spec.tolerations",
                                  "existing toleration can not be modified except its tolerationSeconds"))
            break
    errs.extend(validate_tolerations(new_tolerations, "spec.tolerations"))
    munged["tolerations"] = old_spec.get("tolerations")
    new_grace, old_grace = new_spec.get("terminationGracePeriodSeconds"), old_spec.get("terminationGracePeriodSeconds")
    if as_int(old_grace) is not None and old_grace < 0 and new_grace == 1:
        munged["terminationGracePeriodSeconds"] = old_grace
    if not semantic_equal(munged, old_spec):
        errs.append(forbidden("spec", f"pod updates may not change fields other than {_POD_UPDATABLE}"))
    return errs


def _same_toleration(old: Any, new: Any) -> bool:
    strip = ("tolerationSeconds",)
    return semantic_equal({k: v for k, v in as_dict(old).items() if k not in strip},
                          {k: v for k, v in as_dict(new).items() if k not in strip})


def validate_pod(pod: Obj, old: Obj | None) -> list[Cause]:
    errs = validate_pod_spec(as_dict(pod.get("spec")), "spec")
    if old is not None:
        errs.extend(_pod_update(pod, old))
    return errs


