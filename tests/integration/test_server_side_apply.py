"""Server-side apply of the seed's manifest, again and again, with the real kubectl and the
official Python client against `svcnet apiserver` + `svcnet controllers`.

Ports that omit `protocol` are keyed by its default (TCP), as structured-merge-diff does, so
repeating an apply keeps one port entry and starts no rollout; client-side `kubectl apply` in
between (and kubectl 1.32's migration of its managed fields) keeps one entry too.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.apiserver_harness import REPO, ApiServerProcess, kubectl_available
from tests.integration.kubelet_double import FakeKubelet
from tests.waiting import wait_for

pytestmark = [pytest.mark.kubectl,
              pytest.mark.skipif(not kubectl_available(), reason="kubectl is not installed")]

SEED = REPO / "examples" / "hostnames.yaml"
# Five server-side applies, client-side ones before, between and after them.
SEQUENCE = ("server", "server", "client", "server", "client", "client", "server", "server")


def seed_documents(with_protocol: bool) -> list[dict[str, Any]]:
    """The seed's Service and Deployment; without_protocol drops every port's `protocol: TCP`."""
    docs = [d for d in yaml.safe_load_all(SEED.read_text()) if d]
    if not with_protocol:
        for doc in docs:
            spec = doc["spec"]
            pod_spec = (spec.get("template") or {}).get("spec") or {}
            for port in [*spec.get("ports", []),
                         *(p for c in pod_spec.get("containers", []) for p in c.get("ports", []))]:
                del port["protocol"]
    return docs


@pytest.fixture(params=[True, False], ids=["seed", "ports-without-protocol"])
def manifest(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, list[dict[str, Any]]]:
    docs = seed_documents(with_protocol=request.param)
    path = tmp_path / "hostnames.yaml"
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path, docs


@pytest.fixture
def cluster(control_plane: ApiServerProcess) -> Iterator[ApiServerProcess]:
    with FakeKubelet(control_plane):
        yield control_plane


def get(server: ApiServerProcess, path: str) -> dict[str, Any]:
    status, body = server.request("GET", path)
    assert status == 200, body
    return body


def service(server: ApiServerProcess) -> dict[str, Any]:
    return get(server, "/api/v1/namespaces/default/services/hostnames")


def deployment(server: ApiServerProcess) -> dict[str, Any]:
    return get(server, "/apis/apps/v1/namespaces/default/deployments/hostnames")


def replica_sets(server: ApiServerProcess) -> list[str]:
    return [rs["metadata"]["name"] for rs in get(server, "/apis/apps/v1/namespaces/default/replicasets")["items"]]


def settled(server: ApiServerProcess) -> dict[str, Any] | None:
    """The Deployment once its rollout is complete and its status says so: from then on the
    controllers have nothing to write, so its resourceVersion moves only with a write by us."""
    d = deployment(server)
    status = d.get("status") or {}
    conditions = {c["type"]: c for c in status.get("conditions") or []}
    done = (status.get("observedGeneration") == d["metadata"]["generation"]
            and all(status.get(k) == 3 for k in ("replicas", "updatedReplicas", "readyReplicas",
                                                  "availableReplicas"))
            and conditions.get("Progressing", {}).get("reason") == "NewReplicaSetAvailable"
            and conditions.get("Available", {}).get("status") == "True")
    return d if done else None


def wait_settled(server: ApiServerProcess) -> dict[str, Any]:
    return wait_for(lambda: settled(server), timeout=60, what="the hostnames rollout to complete")


def assert_one_port_each(server: ApiServerProcess) -> None:
    assert service(server)["spec"]["ports"] == [
        {"name": "default", "protocol": "TCP", "port": 80, "targetPort": 9376}]
    containers = deployment(server)["spec"]["template"]["spec"]["containers"]
    assert [c["ports"] for c in containers] == [[{"containerPort": 9376, "protocol": "TCP"}]]


def run_sequence(server: ApiServerProcess, apply_server_side: Callable[[], None],
                 apply_client_side: Callable[[], None]) -> None:
    """Each apply in SEQUENCE; after each, one port entry in the Service and the container and one
    ReplicaSet; an apply that repeats the one before it (same way, same manifest) writes nothing."""
    previous = None
    for step, how in enumerate(SEQUENCE):
        if previous is not None:  # the first apply creates both objects
            before_svc = service(server)["metadata"]["resourceVersion"]
            before_deploy = wait_settled(server)["metadata"]["resourceVersion"]
        (apply_server_side if how == "server" else apply_client_side)()
        assert_one_port_each(server)
        after = wait_settled(server)
        assert len(replica_sets(server)) == 1, (step, how, replica_sets(server))
        if how == previous:
            assert service(server)["metadata"]["resourceVersion"] == before_svc, (step, how)
            assert after["metadata"]["resourceVersion"] == before_deploy, (step, how)
        previous = how


def test_seed_applied_server_side_five_times_between_client_side_applies_keeps_one_port_and_one_rollout(
        cluster: ApiServerProcess, manifest: tuple[Path, list[dict[str, Any]]]) -> None:
    path, _ = manifest

    def server_side() -> None:
        cluster.kubectl("apply", "--server-side", "-f", str(path))

    def client_side() -> None:
        cluster.kubectl("apply", "-f", str(path))

    run_sequence(cluster, server_side, client_side)
    rs = get(cluster, f"/apis/apps/v1/namespaces/default/replicasets/{replica_sets(cluster)[0]}")
    assert rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"


def test_seed_created_client_side_then_applied_server_side_repeatedly_keeps_one_port(
        cluster: ApiServerProcess, manifest: tuple[Path, list[dict[str, Any]]]) -> None:
    """The other order: the objects exist from a client-side apply before the first
    server-side one, so kubectl migrates its client-side ownership on that first one."""
    path, _ = manifest
    cluster.kubectl("apply", "-f", str(path))
    wait_settled(cluster)
    for _ in range(3):
        cluster.kubectl("apply", "--server-side", "-f", str(path))
        assert_one_port_each(cluster)
    first = {"svc": service(cluster)["metadata"]["resourceVersion"],
             "deploy": wait_settled(cluster)["metadata"]["resourceVersion"]}
    cluster.kubectl("apply", "--server-side", "-f", str(path))
    assert {"svc": service(cluster)["metadata"]["resourceVersion"],
            "deploy": wait_settled(cluster)["metadata"]["resourceVersion"]} == first
    assert len(replica_sets(cluster)) == 1
    managers = {e["manager"] for e in service(cluster)["metadata"]["managedFields"]}
    assert "kubectl-client-side-apply" not in managers  # kubectl moved its fields to its apply entry


def test_an_applied_configuration_with_one_port_twice_is_refused_and_changes_nothing(
        cluster: ApiServerProcess, tmp_path: Path) -> None:
    """{port: 80} and {port: 80, protocol: TCP} are the same key once defaulted: kubectl prints
    the reason in one line, and the Service stays as it was."""
    docs = seed_documents(with_protocol=False)
    svc = docs[0]
    path = tmp_path / "svc.yaml"
    path.write_text(yaml.safe_dump(svc))
    cluster.kubectl("apply", "--server-side", "-f", str(path))
    before = service(cluster)
    svc["spec"]["ports"].append({"name": "again", "port": 80, "protocol": "TCP", "targetPort": 8080})
    path.write_text(yaml.safe_dump(svc))
    result = cluster.kubectl("apply", "--server-side", "-f", str(path), check=False)
    assert result.returncode != 0
    assert "duplicate entries for key [port=80,protocol=\"TCP\"]" in result.stderr
    assert "(BadRequest)" in result.stderr
    assert service(cluster) == before


# -- the official Python client --------------------------------------------------------------

def test_python_client_server_side_apply_five_times_between_client_side_applies_keeps_one_port(
        cluster: ApiServerProcess, manifest: tuple[Path, list[dict[str, Any]]], tmp_path: Path) -> None:
    kubernetes = pytest.importorskip(
        "kubernetes", reason="the official Python client (pyproject's test extra) is not installed")
    from kubernetes import dynamic

    path, docs = manifest
    api_client = kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig))
    try:
        # discovery cached under tmp_path, not the shared temp dir
        client = dynamic.DynamicClient(api_client, cache_file=str(tmp_path / "discovery.json"))

        def server_side() -> None:
            for doc in docs:
                resource = client.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
                resource.server_side_apply(body=doc, namespace="default", field_manager="python-client")

        def client_side() -> None:
            cluster.kubectl("apply", "-f", str(path))

        run_sequence(cluster, server_side, client_side)
        managers = {e["manager"] for e in service(cluster)["metadata"]["managedFields"]}
        assert "python-client" in managers
    finally:
        api_client.close()
