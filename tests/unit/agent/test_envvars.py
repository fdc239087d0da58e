from __future__ import annotations

from collections.abc import Mapping

import pytest

from svcnet.agent.envvars import container_env, process_env
from svcnet.runtime.images import ContainerConfigError

POD = {"metadata": {"name": "web-0", "namespace": "prod", "uid": "u-1", "labels": {"app": "web"}},
       "spec": {"nodeName": "node-1"},
       "status": {"podIP": "10.244.1.8", "podIPs": [{"ip": "10.244.1.8"}], "hostIP": "192.168.0.2"}}


def lookup(kind: str, namespace: str, name: str) -> Mapping[str, str] | None:
    return {"user": "admin"} if (kind, namespace, name) == ("Secret", "prod", "creds") else None


def test_values_expand_earlier_variables_and_service_variables() -> None:
    container = {"env": [{"name": "A", "value": "x"}, {"name": "B", "value": "$(A)-$(WEB_SERVICE_HOST)-$(C)"},
                         {"name": "C", "value": "late"}]}
    env = dict(container_env(POD, container, service_env={"WEB_SERVICE_HOST": "10.96.0.5", "OTHER": "o"}))
    assert env == {"A": "x", "B": "x-10.96.0.5-$(C)", "C": "late", "WEB_SERVICE_HOST": "10.96.0.5", "OTHER": "o"}


@pytest.mark.parametrize("path, value", [
    ("metadata.name", "web-0"), ("metadata.namespace", "prod"), ("metadata.uid", "u-1"),
    ("spec.nodeName", "node-1"), ("status.podIP", "10.244.1.8"), ("status.hostIP", "192.168.0.2"),
    ("status.podIPs", "10.244.1.8"), ("metadata.labels['app']", "web"),
])
def test_field_refs_read_the_pod(path: str, value: str) -> None:
    container = {"env": [{"name": "V", "valueFrom": {"fieldRef": {"fieldPath": path}}}]}
    assert dict(container_env(POD, container))["V"] == value


def test_secret_key_refs_use_the_lookup_and_missing_ones_are_config_errors() -> None:
    ok = {"env": [{"name": "U", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "user"}}}]}
    assert dict(container_env(POD, ok, lookup=lookup))["U"] == "admin"
    optional = {"env": [{"name": "U", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k", "optional": True}}}]}
    assert dict(container_env(POD, optional, lookup=lookup)) == {}
    missing = {"env": [{"name": "U", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}]}
    with pytest.raises(ContainerConfigError, match='secret "nope" not found'):
        container_env(POD, missing, lookup=lookup)


def test_process_env_puts_container_variables_over_defaults() -> None:
    env = process_env((("PATH", "/opt/bin"), ("X", "1")), (("PYTHONPATH", "/src"),), "web-0")
    assert env == {"PATH": "/opt/bin", "HOSTNAME": "web-0", "HOME": "/root", "PYTHONPATH": "/src", "X": "1"}
