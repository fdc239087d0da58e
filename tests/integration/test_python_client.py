"""The official Kubernetes Python client (the `kubernetes` package) against svcnet's API server.

These are the scenarios of the client's own end-to-end suite (kubernetes-client/python,
kubernetes/e2e_test: test_client.py, test_apps.py, test_watch.py, test_informer.py,
test_utils.py) that need only the API and its controllers, written as our tests: a
user's operator or script built on that client must work against svcnet as against a
kubeadm cluster. The ones that need running pods (exec, port-forward) are in
one_node/test_python_client_pods.py. docs/clients.md lists each upstream test and where it runs here.
"""
from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config, utils, watch
from kubernetes.client.rest import ApiException
from kubernetes.informer import ADDED, DELETED, MODIFIED, SharedInformer

from tests.integration.apiserver_harness import ApiServerProcess, free_port, running_controllers
from tests.waiting import wait_for

EVENT_TIMEOUT = 30


def short_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServerProcess]:
    """One API server with all the controllers, shared by the module (each test uses its own names)."""
    base = tmp_path_factory.mktemp("python-client")
    home = base / "home"
    home.mkdir()
    server = ApiServerProcess(data_dir=base / "data", port=free_port(), home=home)
    server.start()
    try:
        with running_controllers(server):
            yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def api_client(control_plane: ApiServerProcess) -> Iterator[client.ApiClient]:
    """The client configured from svcnet's kubeconfig, exactly as a user's script does it."""
    with config.new_client_from_config(config_file=str(control_plane.kubeconfig)) as api:
        yield api


@pytest.fixture(scope="module")
def core(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.fixture(scope="module")
def apps(api_client: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(api_client)


def config_map(name: str, data: dict[str, str] | None = None, labels: dict[str, str] | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "labels": labels or {"e2e": "python-client"}},
            "data": data or {"k": "v"}}


def deployment(name: str, replicas: int = 2) -> dict:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": labels},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "main", "image": "busybox",
                                                           "command": ["sleep", "3600"]}]}}}}


# ---- test_client.py: ConfigMaps, Services, the default ServiceAccount


def test_configmap_apis(core: client.CoreV1Api) -> None:
    name = short_name("cm")
    created = core.create_namespaced_config_map(namespace="default", body=config_map(name, {"config.json": "{}"}))
    assert created.metadata.name == name and created.data == {"config.json": "{}"}

    # A list body is a JSON patch; a dict body a (strategic) merge patch.
    replaced = core.patch_namespaced_config_map(name=name, namespace="default", body=[
        {"op": "replace", "path": "/data", "value": {"new_value": "json_patch_name"}}])
    assert replaced.data == {"new_value": "json_patch_name"}
    patched = core.patch_namespaced_config_map(name=name, namespace="default",
                                               body={"data": {"new_value": "merge_patch_name"}})
    assert patched.data == {"new_value": "merge_patch_name"}
    assert int(patched.metadata.resource_version) > int(replaced.metadata.resource_version)

    listed = core.list_namespaced_config_map(namespace="default", label_selector="e2e=python-client")
    assert name in {item.metadata.name for item in listed.items}

    core.delete_namespaced_config_map(name=name, namespace="default", body={})
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_config_map(name=name, namespace="default")
    assert gone.value.status == 404


def test_configmaps_deleted_as_a_collection(core: client.CoreV1Api) -> None:
    label = short_name("batch")
    for i in range(3):
        core.create_namespaced_config_map(namespace="default",
                                          body=config_map(f"{label}-{i}", labels={"batch": label}))
    core.delete_collection_namespaced_config_map(namespace="default", label_selector=f"batch={label}")
    assert core.list_namespaced_config_map(namespace="default", label_selector=f"batch={label}").items == []


def test_service_apis(core: client.CoreV1Api) -> None:
    name = short_name("frontend")
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": {"name": name}},
               "spec": {"ports": [{"name": "port", "port": 80, "protocol": "TCP", "targetPort": 80}],
                        "selector": {"name": name}}}
    created = core.create_namespaced_service(namespace="default", body=service)
    assert created.metadata.name == name and created.spec.cluster_ip

    # A dict body is a strategic merge patch: Service ports merge by their port number.
    patched = core.patch_namespaced_service(name=name, namespace="default", body={"spec": {"ports": [
        {"name": "new", "port": 8080, "protocol": "TCP", "targetPort": 8080}]}})
    assert sorted((p.name, p.port) for p in patched.spec.ports) == [("new", 8080), ("port", 80)]
    assert patched.spec.cluster_ip == created.spec.cluster_ip

    core.delete_namespaced_service(name=name, namespace="default")
    wait_for(lambda: name not in {s.metadata.name for s in core.list_namespaced_service("default").items},
             timeout=10, what="the Service gone")


def test_the_default_service_account_exists(core: client.CoreV1Api) -> None:
    wait_for(lambda: _exists(lambda: core.read_namespaced_service_account(name="default", namespace="default")),
             timeout=30, what="the default ServiceAccount")


def _exists(read) -> bool:
    try:
        read()
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


# ---- test_apps.py: Deployments


def test_create_and_delete_a_deployment(apps: client.AppsV1Api) -> None:
    name = short_name("nginx")
    created = apps.create_namespaced_deployment(namespace="default", body=deployment(name))
    assert created.metadata.name == name and created.spec.replicas == 2
    wait_for(lambda: apps.list_namespaced_replica_set("default", label_selector=f"app={name}").items,
             timeout=30, what="the Deployment's ReplicaSet")

    apps.delete_namespaced_deployment(name=name, namespace="default",
                                      body=client.V1DeleteOptions(propagation_policy="Foreground"))
    wait_for(lambda: not _exists(lambda: apps.read_namespaced_deployment(name=name, namespace="default")),
             timeout=30, what="the Deployment deleted in the foreground")
    assert apps.list_namespaced_replica_set("default", label_selector=f"app={name}").items == []


def test_scale_a_deployment_through_its_scale_subresource(apps: client.AppsV1Api) -> None:
    name = short_name("scaled")
    apps.create_namespaced_deployment(namespace="default", body=deployment(name, replicas=1))
    scale = apps.patch_namespaced_deployment_scale(name=name, namespace="default", body={"spec": {"replicas": 3}})
    assert scale.spec.replicas == 3
    assert apps.read_namespaced_deployment(name=name, namespace="default").spec.replicas == 3
    apps.delete_namespaced_deployment(name=name, namespace="default")


# ---- test_watch.py


def test_watch_streams_added_modified_and_deleted(core: client.CoreV1Api) -> None:
    name = short_name("watched")
    start = core.list_namespaced_config_map("default").metadata.resource_version
    core.create_namespaced_config_map(namespace="default", body=config_map(name))
    core.patch_namespaced_config_map(name=name, namespace="default", body={"data": {"k": "changed"}})
    core.delete_namespaced_config_map(name=name, namespace="default")

    seen: list[tuple[str, str]] = []
    w = watch.Watch()
    for event in w.stream(core.list_namespaced_config_map, namespace="default", resource_version=start,
                          field_selector=f"metadata.name={name}", timeout_seconds=EVENT_TIMEOUT):
        seen.append((event["type"], (event["object"].data or {}).get("k", "")))
        if event["type"] == "DELETED":
            w.stop()
    assert seen == [("ADDED", "v"), ("MODIFIED", "changed"), ("DELETED", "changed")]


def test_watch_ends_when_the_server_side_timeout_passes(core: client.CoreV1Api) -> None:
    events = list(watch.Watch().stream(core.list_namespaced_config_map, namespace="default",
                                       field_selector="metadata.name=never-created", timeout_seconds=1))
    assert events == []


# ---- test_informer.py: kubernetes.informer.SharedInformer


@pytest.fixture
def informer(core: client.CoreV1Api, request: pytest.FixtureRequest) -> Iterator[SharedInformer]:
    label = short_name("inf")
    request.node.informer_label = label
    inf = SharedInformer(list_func=core.list_namespaced_config_map, namespace="default",
                         label_selector=f"informer={label}", resync_period=getattr(request, "param", 0))
    yield inf
    inf.stop()
    core.delete_collection_namespaced_config_map(namespace="default", label_selector=f"informer={label}")


def _labelled(request: pytest.FixtureRequest, name: str, data: dict[str, str] | None = None) -> dict:
    return config_map(name, data, labels={"informer": request.node.informer_label})


def _on(inf: SharedInformer, event_type: str, name: str) -> threading.Event:
    seen = threading.Event()
    inf.add_event_handler(event_type, lambda obj: seen.set() if obj.metadata.name == name else None)
    return seen


def _listed(inf: SharedInformer) -> bool:
    return inf._resource_version is not None  # the client's own e2e test reads it the same way


def test_informer_cache_holds_objects_that_existed_before_it_started(
        core: client.CoreV1Api, informer: SharedInformer, request: pytest.FixtureRequest) -> None:
    name = short_name("pre")
    core.create_namespaced_config_map(namespace="default", body=_labelled(request, name))
    informer.start()
    wait_for(lambda: informer.cache.get_by_key(f"default/{name}") is not None, timeout=EVENT_TIMEOUT,
             what="the existing ConfigMap in the informer's cache")
    assert informer.cache.get_by_key(f"default/{name}").data == {"k": "v"}


def test_informer_sees_added_modified_and_deleted(
        core: client.CoreV1Api, informer: SharedInformer, request: pytest.FixtureRequest) -> None:
    name = short_name("cm")
    added, modified, deleted = (_on(informer, kind, name) for kind in (ADDED, MODIFIED, DELETED))
    informer.start()
    wait_for(lambda: _listed(informer), timeout=EVENT_TIMEOUT, what="the informer's first list")
    listed_at = int(informer._resource_version)

    core.create_namespaced_config_map(namespace="default", body=_labelled(request, name))
    assert added.wait(EVENT_TIMEOUT), "ADDED"
    assert int(informer._resource_version) > listed_at

    core.patch_namespaced_config_map(name=name, namespace="default", body={"data": {"k": "updated"}})
    assert modified.wait(EVENT_TIMEOUT), "MODIFIED"
    wait_for(lambda: informer.cache.get_by_key(f"default/{name}").data == {"k": "updated"}, timeout=EVENT_TIMEOUT,
             what="the cache to hold the patched data")

    core.delete_namespaced_config_map(name=name, namespace="default")
    assert deleted.wait(EVENT_TIMEOUT), "DELETED"
    assert informer.cache.get_by_key(f"default/{name}") is None


@pytest.mark.parametrize("informer", [2], indirect=True)
def test_informer_resync_lists_again_and_reports_existing_objects(
        core: client.CoreV1Api, informer: SharedInformer, request: pytest.FixtureRequest) -> None:
    name = short_name("rsync")
    core.create_namespaced_config_map(namespace="default", body=_labelled(request, name))
    added, resynced = _on(informer, ADDED, name), _on(informer, MODIFIED, name)
    informer.start()
    assert added.wait(EVENT_TIMEOUT), "ADDED"
    assert resynced.wait(EVENT_TIMEOUT), "MODIFIED from the resync"


# ---- test_utils.py: utils.create_from_yaml / create_from_dict


MULTI_RESOURCE = """\
apiVersion: v1
kind: Namespace
metadata: {name: NS}
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: settings, namespace: NS}
  data: {mode: fast}
- apiVersion: v1
  kind: Service
  metadata: {name: frontend, namespace: NS}
  spec:
    selector: {app: frontend}
    ports: [{port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: frontend, namespace: NS}
spec:
  replicas: 1
  selector: {matchLabels: {app: frontend}}
  template:
    metadata: {labels: {app: frontend}}
    spec:
      containers: [{name: main, image: busybox, command: [sleep, "3600"]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: pod-reader, namespace: NS}
rules:
- {apiGroups: [""], resources: [pods], verbs: [get, watch, list]}
"""


def test_create_from_yaml_creates_every_document_and_list_item(
        api_client: client.ApiClient, core: client.CoreV1Api, apps: client.AppsV1Api, tmp_path: Path) -> None:
    ns = short_name("yaml")
    manifest = tmp_path / "multi.yaml"
    manifest.write_text(MULTI_RESOURCE.replace("NS", ns))
    created = utils.create_from_yaml(api_client, str(manifest))
    kinds = sorted(obj.kind for group in created for obj in group)
    assert kinds == ["ConfigMap", "Deployment", "Namespace", "Role", "Service"]
    assert core.read_namespaced_config_map(name="settings", namespace=ns).data == {"mode": "fast"}
    assert core.read_namespaced_service(name="frontend", namespace=ns).spec.ports[0].target_port == 8080
    assert apps.read_namespaced_deployment(name="frontend", namespace=ns).spec.replicas == 1
    rules = client.RbacAuthorizationV1Api(api_client).read_namespaced_role(name="pod-reader", namespace=ns).rules
    assert rules[0].verbs == ["get", "watch", "list"]
    core.delete_namespace(name=ns)


def test_create_from_yaml_reports_what_already_exists(api_client: client.ApiClient, core: client.CoreV1Api) -> None:
    name = short_name("dup")
    doc = config_map(name)
    utils.create_from_dict(api_client, doc, namespace="default")
    with pytest.raises(utils.FailToCreateError) as failure:
        utils.create_from_yaml(api_client, yaml_objects=[doc, config_map(short_name("other"))],
                               namespace="default")
    statuses = [exc.status for exc in failure.value.api_exceptions]
    assert statuses == [409]
    core.delete_namespaced_config_map(name=name, namespace="default")


def test_create_from_yaml_in_a_missing_namespace_is_a_not_found(api_client: client.ApiClient) -> None:
    with pytest.raises(utils.FailToCreateError) as failure:
        utils.create_from_dict(api_client, config_map(short_name("lost")), namespace=short_name("no-such-ns"))
    assert [exc.status for exc in failure.value.api_exceptions] == [404]


def test_a_manifest_that_is_not_an_object_is_refused(api_client: client.ApiClient) -> None:
    bad = yaml.safe_load("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Bad_Name}\n")
    with pytest.raises(utils.FailToCreateError) as failure:
        utils.create_from_dict(api_client, bad, namespace="default")
    error = failure.value.api_exceptions[0]
    assert error.status == 422 and "Bad_Name" in error.body


def test_create_from_yaml_with_apply_is_idempotent(api_client: client.ApiClient, apps: client.AppsV1Api) -> None:
    """apply=True goes through the dynamic client's discovery and server-side apply."""
    name = short_name("applied")
    doc = deployment(name, replicas=3)
    utils.create_from_yaml(api_client, yaml_objects=[doc], apply=True)
    utils.create_from_yaml(api_client, yaml_objects=[doc], apply=True)
    applied = apps.read_namespaced_deployment(name=name, namespace="default")
    assert applied.spec.replicas == 3 and applied.metadata.generation == 1
    assert [entry.manager for entry in applied.metadata.managed_fields if entry.operation == "Apply"] == ["python-client"]
    apps.delete_namespaced_deployment(name=name, namespace="default")


def test_a_conflict_reads_as_kube_apiservers_status(api_client: client.ApiClient, core: client.CoreV1Api) -> None:
    name = short_name("twice")
    utils.create_from_dict(api_client, config_map(name), namespace="default")
    with pytest.raises(utils.FailToCreateError) as failure:
        utils.create_from_dict(api_client, config_map(name), namespace="default")
    status = json.loads(failure.value.api_exceptions[0].body)
    assert status == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                      "message": f'configmaps "{name}" already exists', "reason": "AlreadyExists",
                      "details": {"name": name, "kind": "configmaps"}, "code": 409}
    core.delete_namespaced_config_map(name=name, namespace="default")


# ---- test_client.py's ReplicationController, test_apps.py's DaemonSet, test_batch.py's Job


def test_replication_controller_apis(core: client.CoreV1Api) -> None:
    name = short_name("frontend")
    rc = {"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": name, "labels": {"name": name}},
          "spec": {"replicas": 2, "selector": {"name": name},
                   "template": {"metadata": {"labels": {"name": name}},
                                "spec": {"containers": [{"name": "main", "image": "busybox",
                                                         "command": ["sleep", "3600"],
                                                         "ports": [{"containerPort": 80, "protocol": "TCP"}]}]}}}}
    created = core.create_namespaced_replication_controller(namespace="default", body=rc)
    assert created.metadata.name == name and created.spec.replicas == 2
    assert core.read_namespaced_replication_controller(name=name, namespace="default").spec.replicas == 2
    core.delete_namespaced_replication_controller(name=name, namespace="default", propagation_policy="Background")
    wait_for(lambda: not _exists(lambda: core.read_namespaced_replication_controller(name=name,
                                                                                       namespace="default")),
             timeout=30, what="the ReplicationController gone")


def test_create_and_delete_a_daemonset(apps: client.AppsV1Api) -> None:
    name = short_name("node-agent")
    labels = {"app": name}
    ds = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name, "labels": labels},
          "spec": {"selector": {"matchLabels": labels}, "updateStrategy": {"type": "RollingUpdate"},
                   "template": {"metadata": {"labels": labels, "name": name},
                                "spec": {"containers": [{"name": "agent", "image": "busybox",
                                                         "command": ["sleep", "3600"]}]}}}}
    apps.create_namespaced_daemon_set("default", body=ds)
    read = apps.read_namespaced_daemon_set(name, "default")
    assert read.spec.selector.match_labels == labels
    assert read.spec.template.spec.containers[0].name == "agent"
    assert read.spec.update_strategy.rolling_update.max_unavailable == 1  # defaulted as upstream
    apps.delete_namespaced_daemon_set(name, "default", body=client.V1DeleteOptions())


def test_job_apis(api_client: client.ApiClient) -> None:
    batch = client.BatchV1Api(api_client)
    name = short_name("job")
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
           "spec": {"template": {"metadata": {"name": name},
                                 "spec": {"restartPolicy": "Never",
                                          "containers": [{"name": "main", "image": "busybox",
                                                          "command": ["sh", "-c", "sleep 5"]}]}}}}
    created = batch.create_namespaced_job(namespace="default", body=job)
    assert created.metadata.name == name
    assert created.spec.backoff_limit == 6 and created.spec.completions == 1  # upstream's defaults
    assert batch.read_namespaced_job(name=name, namespace="default").metadata.name == name
    batch.delete_namespaced_job(name=name, namespace="default", body={})
