"""kubectl's imperative commands, whose typed clients send protobuf bodies, against a real server."""
from __future__ import annotations

import pytest

from tests.integration.apiserver_harness import kubectl_available

pytestmark = [pytest.mark.kubectl,
              pytest.mark.skipif(not kubectl_available(), reason="kubectl is not on PATH")]


def test_create_namespace_stores_the_namespace(apiserver):
    result = apiserver.kubectl("create", "namespace", "team-a")
    assert "namespace/team-a created" in result.stdout
    ns = apiserver.kubectl_json("get", "namespace", "team-a")
    assert ns["metadata"]["name"] == "team-a"
    assert ns["status"]["phase"] == "Active"


def test_create_deployment_then_expose_gives_the_seed_deployment_and_service(apiserver):
    created = apiserver.kubectl("create", "deployment", "web", "--image=k8s.gcr.io/serve_hostname",
                                "--replicas=3", "--port=9376")
    assert "deployment.apps/web created" in created.stdout
    deploy = apiserver.kubectl_json("get", "deployment", "web")
    assert deploy["metadata"]["labels"] == {"app": "web"}
    assert deploy["spec"]["replicas"] == 3
    assert deploy["spec"]["selector"] == {"matchLabels": {"app": "web"}}
    assert deploy["spec"]["template"]["metadata"]["labels"] == {"app": "web"}
    [container] = deploy["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "k8s.gcr.io/serve_hostname"
    assert container["ports"] == [{"containerPort": 9376, "protocol": "TCP"}]
    assert deploy["spec"]["strategy"]["type"] == "RollingUpdate"  # defaulted as for a JSON body

    exposed = apiserver.kubectl("expose", "deployment", "web", "--port=80", "--target-port=9376")
    assert "service/web exposed" in exposed.stdout
    svc = apiserver.kubectl_json("get", "service", "web")
    assert svc["spec"]["selector"] == {"app": "web"}
    assert [(p["port"], p["targetPort"], p["protocol"]) for p in svc["spec"]["ports"]] == [(80, 9376, "TCP")]


def test_create_deployment_keeps_an_explicit_zero_replicas_and_a_command(apiserver):
    apiserver.kubectl("create", "deployment", "idle", "--image=busybox", "--replicas=0", "--",
                      "sleep", "3600")
    deploy = apiserver.kubectl_json("get", "deployment", "idle")
    assert deploy["spec"]["replicas"] == 0
    [container] = deploy["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["sleep", "3600"]


def test_create_service_generators_store_each_service_type(apiserver):
    cases = [
        (["clusterip", "cip", "--tcp=80:9376"], "ClusterIP", [(80, 9376)], None),
        (["clusterip", "named", "--tcp=80:http"], "ClusterIP", [(80, "http")], None),
        (["clusterip", "headless", "--clusterip=None"], "ClusterIP", [], "None"),
        (["nodeport", "np", "--tcp=80:9376", "--node-port=30080"], "NodePort", [(80, 9376)], None),
        (["loadbalancer", "lb", "--tcp=80:9376,443:8443"], "LoadBalancer", [(80, 9376), (443, 8443)], None),
        (["externalname", "en", "--external-name=example.com"], "ExternalName", [], None),
    ]
    for args, svc_type, ports, cluster_ip in cases:
        name = args[1]
        result = apiserver.kubectl("create", "service", *args)
        assert f"service/{name} created" in result.stdout
        svc = apiserver.kubectl_json("get", "service", name)
        assert svc["spec"]["type"] == svc_type, name
        assert svc["spec"]["selector"] == {"app": name}, name
        assert [(p["port"], p["targetPort"]) for p in svc["spec"].get("ports", [])] == ports, name
        if cluster_ip is not None:
            assert svc["spec"]["clusterIP"] == cluster_ip
    np = apiserver.kubectl_json("get", "service", "np")
    assert np["spec"]["ports"][0]["nodePort"] == 30080
    assert apiserver.kubectl_json("get", "service", "en")["spec"]["externalName"] == "example.com"


def test_run_creates_the_pod_with_its_labels_and_port(apiserver):
    result = apiserver.kubectl("run", "p", "--image=busybox", "--port=80", "--labels=a=b")
    assert "pod/p created" in result.stdout
    pod = apiserver.kubectl_json("get", "pod", "p")
    assert pod["metadata"]["labels"] == {"a": "b"}
    [container] = pod["spec"]["containers"]
    assert (container["image"], container["ports"][0]["containerPort"]) == ("busybox", 80)


def test_server_dry_run_of_a_protobuf_create_stores_nothing(apiserver):
    result = apiserver.kubectl("create", "deployment", "dry", "--image=busybox", "--dry-run=server")
    assert "deployment.apps/dry created (server dry run)" in result.stdout
    missing = apiserver.kubectl("get", "deployment", "dry", check=False)
    assert missing.returncode != 0
    assert 'deployments.apps "dry" not found' in missing.stderr


def test_invalid_objects_sent_as_protobuf_get_the_same_422_as_json(apiserver):
    result = apiserver.kubectl("create", "deployment", "Bad_Name", "--image=busybox", check=False)
    assert result.returncode != 0
    assert 'Deployment.apps "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name"' in result.stderr
    again = apiserver.kubectl("create", "namespace", "default", check=False)
    assert 'namespaces "default" already exists' in again.stderr
