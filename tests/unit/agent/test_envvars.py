from __future__ import annotations

from collections.abc import Mapping

import pytest

from svcnet.agent.envvars import container_env, process_env, service_env
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


def _svc(namespace: str, name: str, ip: str, *ports: dict) -> dict:
    return {"metadata": {"namespace": namespace, "name": name}, "spec": {"clusterIP": ip, "ports": list(ports)}}


KUBERNETES = _svc("default", "kubernetes", "10.96.0.1", {"name": "https", "port": 443, "protocol": "TCP"})
REDIS = _svc("shop", "redis-primary", "10.0.0.11", {"port": 6379, "protocol": "TCP"},
             {"name": "metrics", "port": 9121, "protocol": "TCP"})


def test_service_env_has_kubeletss_names_and_dockers_link_variables() -> None:
    env = service_env([KUBERNETES, REDIS], "shop", True)
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
    assert env["KUBERNETES_SERVICE_PORT"] == "443"
    assert env["KUBERNETES_SERVICE_PORT_HTTPS"] == "443"
    assert env["KUBERNETES_PORT"] == "tcp://10.96.0.1:443"
    assert env["KUBERNETES_PORT_443_TCP"] == "tcp://10.96.0.1:443"
    assert (env["KUBERNETES_PORT_443_TCP_PROTO"], env["KUBERNETES_PORT_443_TCP_PORT"],
            env["KUBERNETES_PORT_443_TCP_ADDR"]) == ("tcp", "443", "10.96.0.1")
    # "-" becomes "_"; the first port is the unnamed one; named ports get their own variable.
    assert env["REDIS_PRIMARY_SERVICE_PORT"] == "6379"
    assert env["REDIS_PRIMARY_SERVICE_PORT_METRICS"] == "9121"
    assert env["REDIS_PRIMARY_PORT"] == "tcp://10.0.0.11:6379"
    assert env["REDIS_PRIMARY_PORT_9121_TCP_ADDR"] == "10.0.0.11"


def test_only_the_pods_namespace_and_default_kubernetes_and_only_services_with_a_cluster_ip() -> None:
    headless = _svc("shop", "db", "None", {"port": 5432})
    external = {"metadata": {"namespace": "shop", "name": "ext"}, "spec": {"type": "ExternalName",
                                                                        "externalName": "example.com"}}
    other = _svc("other", "web", "10.0.0.12", {"port": 80})
    env = service_env([KUBERNETES, REDIS, headless, external, other], "shop", True)
    assert not any(name.startswith(("DB_", "EXT_", "WEB_")) for name in env)
    # enableServiceLinks: false keeps only the master service's variables.
    assert {name.split("_")[0] for name in service_env([KUBERNETES, REDIS], "shop", False)} == {"KUBERNETES"}


def test_ipv6_cluster_ips_are_bracketed_in_urls() -> None:
    env = service_env([_svc("default", "kubernetes", "fd00:10:96::1", {"name": "https", "port": 443})], "x", True)
    assert env["KUBERNETES_PORT"] == "tcp://[fd00:10:96::1]:443"
    assert env["KUBERNETES_SERVICE_HOST"] == "fd00:10:96::1"


def test_env_sources_name_every_config_map_and_secret_read() -> None:
    from svcnet.agent.envvars import env_sources

    container = {"envFrom": [{"configMapRef": {"name": "a"}}, {"secretRef": {"name": "b"}}],
                 "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}},
                         {"name": "Y", "valueFrom": {"secretKeyRef": {"name": "b", "key": "k"}}},
                         {"name": "Z", "value": "plain"}]}
    assert env_sources(container) == {("ConfigMap", "a"), ("Secret", "b"), ("ConfigMap", "c")}


def test_secret_data_is_decoded_config_map_data_is_as_stored() -> None:
    from svcnet.agent.envvars import source_data

    assert source_data("Secret", {"data": {"password": "czNjcjN0"}}) == {"password": "s3cr3t"}
    assert source_data("ConfigMap", {"data": {"color": "blue"}, "binaryData": {"b": "AA=="}}) == {"color": "blue"}
    assert source_data("Secret", {}) == {}
