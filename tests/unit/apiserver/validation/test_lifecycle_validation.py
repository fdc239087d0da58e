"""Lifecycle hooks (postStart, preStop) validated as kube-apiserver 1.32 does (validateLifecycle)."""
from __future__ import annotations

import copy
from typing import Any

import pytest

from svcnet.apiserver.defaults import apply_defaults
from svcnet.apiserver.validation import validate

POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default"},
       "spec": {"containers": [{"name": "web", "image": "k8s.gcr.io/serve_hostname",
                                "ports": [{"name": "http", "containerPort": 9376}]}]}}
SLEEP_ERROR = ("must be greater than 0 and less than terminationGracePeriodSeconds ({}). "
               "Enable AllowPodLifecycleSleepActionZeroValue feature gate for zero sleep.")


def pod(lifecycle: Any, grace: int | None = None, **container: Any) -> dict:
    obj = copy.deepcopy(POD)
    if grace is not None:
        obj["spec"]["terminationGracePeriodSeconds"] = grace
    obj["spec"]["containers"][0].update(lifecycle=lifecycle, **container)
    apply_defaults("Pod", obj)
    return obj


def causes(obj: dict) -> list[tuple[str, str, str]]:
    return [(c.field, c.reason, c.message) for c in validate("Pod", obj, None)]


HOOK = "spec.containers[0].lifecycle.preStop"


@pytest.mark.parametrize("handler", [
    {"sleep": {"seconds": 5}},
    {"sleep": {"seconds": 30}},  # equal to the grace period: allowed (only longer is refused)
    {"exec": {"command": ["sh", "-c", "sleep 1"]}},
    {"httpGet": {"path": "/drain", "port": "http", "httpHeaders": [{"name": "X-Drain", "value": "1"}]}},
    {"tcpSocket": {"port": 9376}},
])
def test_each_handler_type_alone_is_valid(handler: dict) -> None:
    assert causes(pod({"preStop": handler, "postStart": handler})) == []


@pytest.mark.parametrize(("seconds", "grace"), [(0, None), (-1, None), (31, None), (11, 10)])
def test_a_sleep_must_be_positive_and_within_the_grace_period(seconds: int, grace: int | None) -> None:
    assert causes(pod({"preStop": {"sleep": {"seconds": seconds}}}, grace)) == [
        (f"{HOOK}.sleep", "FieldValueInvalid",
         f"Invalid value: {seconds}: " + SLEEP_ERROR.format(30 if grace is None else grace))]


def test_two_handler_types_are_forbidden_the_later_one_named() -> None:
    assert causes(pod({"preStop": {"exec": {"command": ["true"]}, "sleep": {"seconds": 1}}})) == [
        (f"{HOOK}.sleep", "FieldValueForbidden", "Forbidden: may not specify more than 1 handler type")]


def test_a_hook_without_a_handler_type_is_required_one() -> None:
    assert causes(pod({"postStart": {}})) == [
        ("spec.containers[0].lifecycle.postStart", "FieldValueRequired", "Required value: must specify a handler type")]


def test_grpc_is_no_lifecycle_handler() -> None:
    # LifecycleHandler has no grpc field: a hook with only that has no handler type.
    assert causes(pod({"preStop": {"grpc": {"port": 9376}}})) == [
        (HOOK, "FieldValueRequired", "Required value: must specify a handler type")]


@pytest.mark.parametrize(("handler", "field", "reason"), [
    ({"exec": {}}, f"{HOOK}.exec.command", "FieldValueRequired"),
    ({"exec": {"command": []}}, f"{HOOK}.exec.command", "FieldValueRequired"),
    ({"httpGet": {"path": "/", "port": 0}}, f"{HOOK}.httpGet.port", "FieldValueInvalid"),
    ({"httpGet": {"path": "/", "port": 80, "scheme": "FTP"}}, f"{HOOK}.httpGet.scheme", "FieldValueNotSupported"),
    ({"httpGet": {"path": "/", "port": 80, "httpHeaders": [{"name": "bad header", "value": "x"}]}},
     f"{HOOK}.httpGet.httpHeaders", "FieldValueInvalid"),
    ({"tcpSocket": {"port": "no_such"}}, f"{HOOK}.tcpSocket.port", "FieldValueInvalid"),
])
def test_handler_fields_are_checked_as_probes_are(handler: dict, field: str, reason: str) -> None:
    found = causes(pod({"preStop": handler}))
    assert [c[:2] for c in found] == [(field, reason)], found


def test_a_hooks_http_get_is_defaulted_as_a_probes() -> None:
    obj = pod({"preStop": {"httpGet": {"port": 80}}})
    assert obj["spec"]["containers"][0]["lifecycle"]["preStop"]["httpGet"] == {"port": 80, "path": "/", "scheme": "HTTP"}
    assert causes(obj) == []


def test_an_init_container_takes_hooks_only_as_a_sidecar() -> None:
    obj = copy.deepcopy(POD)
    init = {"name": "init", "image": "busybox", "lifecycle": {"preStop": {"sleep": {"seconds": 1}}}}
    obj["spec"]["initContainers"] = [init]
    apply_defaults("Pod", obj)
    assert causes(obj) == [("spec.initContainers[0].lifecycle", "FieldValueForbidden",
                            "Forbidden: may not be set for init containers without restartPolicy=Always")]
    obj["spec"]["initContainers"][0]["restartPolicy"] = "Always"
    assert causes(obj) == []


def test_a_deployment_template_is_held_to_the_same_rules() -> None:
    template = pod({"preStop": {"sleep": {"seconds": 0}}})
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
                  "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                           "template": {"metadata": {"labels": {"app": "web"}}, "spec": template["spec"]}}}
    apply_defaults("Deployment", deployment)
    assert [(c.field, c.reason) for c in validate("Deployment", deployment, None)] == [
        ("spec.template.spec.containers[0].lifecycle.preStop.sleep", "FieldValueInvalid")]
