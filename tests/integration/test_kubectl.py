"""The real kubectl against a running `svcnet apiserver`: the foundation's acceptance."""
from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml

from tests.integration.apiserver_harness import KUBECTL, REPO, ApiServerProcess, LineReader
from tests.waiting import wait_for

SEED = (REPO / "examples" / "hostnames.yaml").read_text()
STATEFUL = (REPO / "tests" / "integration" / "manifests" / "hostnames-sts.yaml").read_text()


def write_manifest(tmp_path: Path, text: str, name: str = "app.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def user_objects(server: ApiServerProcess, kind: str) -> list[str]:
    """Names of a kind in default, less the `kubernetes` Service the API server keeps."""
    return [i["metadata"]["name"] for i in server.kubectl_json("get", kind)["items"]
            if i["metadata"]["name"] != "kubernetes"]


def namespace_manifest(name: str) -> str:
    # The manifest path (`kubectl create -f -`), not the protobuf generator `kubectl create namespace`.
    return f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n"


def resource_versions(server: ApiServerProcess) -> dict[str, str]:
    out = {}
    for kind in ("deploy", "svc", "sts"):
        for item in server.kubectl_json("get", kind)["items"]:
            out[f"{kind}/{item['metadata']['name']}"] = item["metadata"]["resourceVersion"]
    return out


def test_apply_creates_then_is_a_noop_then_changes_only_what_changed(apiserver, tmp_path):
    manifest = write_manifest(tmp_path, SEED + "---\n" + STATEFUL)
    first = apiserver.kubectl("apply", "-f", str(manifest))
    assert "service/hostnames created" in first.stdout
    assert "deployment.apps/hostnames created" in first.stdout
    assert "service/hostnames-sts created" in first.stdout
    assert "statefulset.apps/hostnames created" in first.stdout
    before = resource_versions(apiserver)

    again = apiserver.kubectl("apply", "-f", str(manifest))
    assert again.stdout.count("unchanged") == 4, again.stdout
    assert resource_versions(apiserver) == before

    edited = SEED.replace("replicas: 3", "replicas: 4").replace(
        "        - containerPort: 9376\n",
        "        - containerPort: 9376\n          name: http\n") + "---\n" + STATEFUL
    write_manifest(tmp_path, edited)
    third = apiserver.kubectl("apply", "-f", str(manifest))
    assert "deployment.apps/hostnames configured" in third.stdout
    assert "service/hostnames unchanged" in third.stdout
    after = resource_versions(apiserver)
    assert after["svc/hostnames"] == before["svc/hostnames"]
    assert after["sts/hostnames"] == before["sts/hostnames"]
    assert int(after["deploy/hostnames"]) > int(before["deploy/hostnames"])
    deploy = apiserver.kubectl_json("get", "deploy", "hostnames")
    assert deploy["spec"]["replicas"] == 4
    assert deploy["metadata"]["generation"] == 2
    ports = deploy["spec"]["template"]["spec"]["containers"][0]["ports"]
    assert ports == [{"containerPort": 9376, "name": "http", "protocol": "TCP"}]


def test_get_in_every_output_format(apiserver, tmp_path):
    apiserver.kubectl("apply", "-f", str(write_manifest(tmp_path, SEED + "---\n" + STATEFUL)))

    svc = apiserver.kubectl("get", "svc", "hostnames").stdout.splitlines()
    assert svc[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert svc[1].split()[:2] == ["hostnames", "ClusterIP"]
    assert svc[1].split()[4] == "80/TCP"

    wide = apiserver.kubectl("get", "svc", "-o", "wide").stdout.splitlines()
    assert wide[0].split()[-1] == "SELECTOR"
    assert any(line.split()[0] == "hostnames" and line.split()[-1] == "app=hostnames" for line in wide)

    deploy = apiserver.kubectl("get", "deploy").stdout.splitlines()
    assert deploy[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert deploy[1].split()[:2] == ["hostnames", "0/3"]

    sts = apiserver.kubectl("get", "sts", "-o", "wide").stdout.splitlines()
    assert sts[0].split() == ["NAME", "READY", "AGE", "CONTAINERS", "IMAGES"]
    assert sts[1].split()[-1] == "k8s.gcr.io/serve_hostname"

    as_yaml = yaml.safe_load(apiserver.kubectl("get", "svc", "hostnames", "-o", "yaml").stdout)
    assert as_yaml["spec"]["ports"][0]["targetPort"] == 9376
    as_json = apiserver.kubectl_json("get", "deploy", "hostnames")
    assert as_json["spec"]["template"]["spec"]["containers"][0]["image"] == "k8s.gcr.io/serve_hostname"

    names = apiserver.kubectl("get", "svc", "-o", "name").stdout.split()
    assert sorted(names) == ["service/hostnames", "service/hostnames-sts", "service/kubernetes"]

    every_ns = apiserver.kubectl("get", "deploy", "-A").stdout.splitlines()
    assert every_ns[0].split()[0] == "NAMESPACE"
    assert every_ns[1].split()[:2] == ["default", "hostnames"]

    namespaces = apiserver.kubectl("get", "ns", "-o", "name").stdout.split()
    assert {"namespace/default", "namespace/kube-system", "namespace/kube-public"} <= set(namespaces)

    labels = apiserver.kubectl("get", "deploy", "--show-labels").stdout.splitlines()
    assert labels[0].split()[-1] == "LABELS"

    selected = apiserver.kubectl("get", "svc", "-l", "app=hostnames", "-o", "name").stdout.split()
    assert selected == []  # the Services themselves carry no labels
    apiserver.kubectl("label", "svc", "hostnames", "app=hostnames")
    selected = apiserver.kubectl("get", "svc", "-l", "app=hostnames", "-o", "name").stdout.split()
    assert selected == ["service/hostnames"]

    everything = apiserver.kubectl("get", "all").stdout
    assert "service/hostnames" in everything
    assert "deployment.apps/hostnames" in everything
    assert "statefulset.apps/hostnames" in everything


def test_describe_scale_label_patch_edit(apiserver, tmp_path):
    apiserver.kubectl("apply", "-f", str(write_manifest(tmp_path, SEED)))

    described = apiserver.kubectl("describe", "svc", "hostnames").stdout
    assert "Name:" in described and "hostnames" in described
    assert "Selector:" in described and "app=hostnames" in described
    assert "TargetPort:" in described and "9376/TCP" in described

    assert "scaled" in apiserver.kubectl("scale", "deploy", "hostnames", "--replicas=5").stdout
    assert apiserver.kubectl_json("get", "deploy", "hostnames")["spec"]["replicas"] == 5

    apiserver.kubectl("label", "deploy", "hostnames", "tier=web")
    assert apiserver.kubectl_json("get", "deploy", "hostnames")["metadata"]["labels"] == {"tier": "web"}
    apiserver.kubectl("label", "deploy", "hostnames", "tier-")
    assert not apiserver.kubectl_json("get", "deploy", "hostnames")["metadata"].get("labels")

    apiserver.kubectl("patch", "deploy", "hostnames", "-p",
                      '{"spec":{"template":{"spec":{"containers":[{"name":"hostnames",'
                      '"env":[{"name":"A","value":"1"}]}]}}}}')
    container = apiserver.kubectl_json("get", "deploy", "hostnames")["spec"]["template"]["spec"][
        "containers"][0]
    assert container["env"] == [{"name": "A", "value": "1"}]
    assert container["ports"][0]["containerPort"] == 9376  # strategic merge kept the port

    apiserver.kubectl("patch", "svc", "hostnames", "--type=merge", "-p",
                      '{"metadata":{"annotations":{"team":"net"}}}')
    assert apiserver.kubectl_json("get", "svc", "hostnames")["metadata"]["annotations"]["team"] == "net"

    apiserver.kubectl("patch", "deploy", "hostnames", "--type=json", "-p",
                      '[{"op":"replace","path":"/spec/replicas","value":2}]')
    assert apiserver.kubectl_json("get", "deploy", "hostnames")["spec"]["replicas"] == 2

    editor = tmp_path / "editor.py"
    editor.write_text(textwrap.dedent("""
        import sys
        path = sys.argv[1]
        text = open(path).read()
        assert "replicas: 2" in text, text
        open(path, "w").write(text.replace("replicas: 2", "replicas: 7", 1))
    """))
    edited = apiserver.kubectl("edit", "deploy", "hostnames",
                               env={"KUBE_EDITOR": f"{sys.executable} {editor}"})
    assert "edited" in edited.stdout
    deploy = apiserver.kubectl_json("get", "deploy", "hostnames")
    assert deploy["spec"]["replicas"] == 7
    assert deploy["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] == 9376


def test_delete_f_removes_everything(apiserver, tmp_path):
    manifest = write_manifest(tmp_path, SEED + "---\n" + STATEFUL)
    apiserver.kubectl("apply", "-f", str(manifest))
    out = apiserver.kubectl("delete", "-f", str(manifest)).stdout
    assert 'service "hostnames" deleted' in out
    assert 'deployment.apps "hostnames" deleted' in out
    assert 'statefulset.apps "hostnames" deleted' in out
    for kind in ("svc", "deploy", "sts"):
        assert user_objects(apiserver, kind) == []


def test_get_watch_sees_added_modified_deleted(apiserver, tmp_path):
    manifest = write_manifest(tmp_path, SEED)
    proc = subprocess.Popen([KUBECTL, "get", "deploy", "-w", "--output-watch-events"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=apiserver.kubectl_env())
    try:
        reader = LineReader(proc)
        wait_for(lambda: proc.poll() is None and reader.snapshot() is not None, what="kubectl watch")
        # kubectl prints nothing until the first event; create until it has seen it.
        apiserver.kubectl("apply", "-f", str(manifest))
        wait_for(lambda: any(line.split()[:2] == ["ADDED", "hostnames"] for line in reader.snapshot()),
                 what="ADDED event")
        apiserver.kubectl("scale", "deploy", "hostnames", "--replicas=1")
        wait_for(lambda: any(line.split()[:2] == ["MODIFIED", "hostnames"]
                             for line in reader.snapshot()), what="MODIFIED event")
        apiserver.kubectl("delete", "deploy", "hostnames")
        wait_for(lambda: any(line.split()[:2] == ["DELETED", "hostnames"]
                             for line in reader.snapshot()), what="DELETED event")
    finally:
        proc.kill()
        proc.wait(timeout=10)


BAD_CASES = {
    "unknown field": ("""
apiVersion: v1
kind: Service
metadata: {name: bad}
spec:
  selector: {app: x}
  portz: []
  ports: [{port: 80}]
""", "portz"),
    "bad port": ("""
apiVersion: v1
kind: Service
metadata: {name: bad}
spec:
  selector: {app: x}
  ports: [{port: 70000, targetPort: 9376}]
""", "spec.ports[0].port"),
    "statefulset without serviceName": ("""
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: bad}
spec:
  selector: {matchLabels: {app: x}}
  template:
    metadata: {labels: {app: x}}
    spec:
      containers: [{name: c, image: k8s.gcr.io/serve_hostname}]
""", "spec.serviceName"),
}


def test_bad_manifests_are_refused_with_the_field_named_and_nothing_stored(apiserver, tmp_path):
    for label, (text, field) in BAD_CASES.items():
        for verb in ("apply", "create"):
            path = write_manifest(tmp_path, text, "bad.yaml")
            result = apiserver.kubectl(verb, "-f", str(path), check=False)
            assert result.returncode != 0, f"{label}: {verb} succeeded"
            assert field in result.stderr, f"{label}: {result.stderr}"
    assert user_objects(apiserver, "svc") == []
    assert user_objects(apiserver, "sts") == []


def test_changing_a_service_cluster_ip_is_refused(apiserver, tmp_path):
    svc = SEED.split("---")[0].replace("spec:\n", "spec:\n  clusterIP: 10.96.100.100\n", 1)
    path = write_manifest(tmp_path, svc)
    apiserver.kubectl("apply", "-f", str(path))
    rv = apiserver.kubectl_json("get", "svc", "hostnames")["metadata"]["resourceVersion"]
    write_manifest(tmp_path, svc.replace("10.96.100.100", "10.96.100.101"))
    result = apiserver.kubectl("apply", "-f", str(path), check=False)
    assert result.returncode != 0
    # kube-apiserver words it so too: clusterIPs[0] follows clusterIP, and may not change.
    assert "spec.clusterIPs[0]" in result.stderr and "may not change once set" in result.stderr
    after = apiserver.kubectl_json("get", "svc", "hostnames")
    assert after["spec"]["clusterIP"] == "10.96.100.100"
    assert after["metadata"]["resourceVersion"] == rv


def test_requests_without_the_token_get_401_and_secrets_are_0600(apiserver):
    status, body = apiserver.request("GET", "/api/v1/namespaces", token=None)
    assert status == 401
    assert body["kind"] == "Status" and body["reason"] == "Unauthorized"
    status, _ = apiserver.request("GET", "/api/v1/namespaces", token="not-the-token")
    assert status == 401
    status, _ = apiserver.request("GET", "/api/v1/namespaces")
    assert status == 200
    for secret in (apiserver.kubeconfig, apiserver.data_dir / "pki" / "token",
                   apiserver.data_dir / "pki" / "apiserver.key", apiserver.data_dir / "pki" / "ca.key",
                   apiserver.data_dir / "apiserver.sock"):
        assert secret.stat().st_mode & 0o777 == 0o600, secret


def test_acknowledged_writes_survive_kill_9(apiserver, tmp_path):
    manifest = write_manifest(tmp_path, SEED + "---\n" + STATEFUL)
    apiserver.kubectl("apply", "-f", str(manifest))
    before = resource_versions(apiserver)
    apiserver.kill9()
    apiserver.start()
    assert resource_versions(apiserver) == before

    apiserver.kubectl("create", "-f", "-", input=namespace_manifest("after-crash"))
    newest = int(apiserver.kubectl_json("get", "ns", "after-crash")["metadata"]["resourceVersion"])
    assert newest > max(int(rv) for rv in before.values())

    oldest = min(int(rv) for rv in before.values())
    events = apiserver.watch_lines(
        f"/apis/apps/v1/namespaces/default/deployments?watch=true&resourceVersion={oldest - 1}"
        f"&timeoutSeconds=1")
    replayed = [e for e in events if e["type"] in ("ADDED", "MODIFIED")]
    gone = [e for e in events if e["type"] == "ERROR" and e["object"]["code"] == 410]
    assert replayed or gone
    if replayed:
        assert replayed[0]["object"]["metadata"]["name"] == "hostnames"


def test_garbage_protobuf_bodies_get_a_clear_400_and_store_nothing(apiserver):
    # The magic prefix, then a field that claims more bytes than the body holds.
    status, body = apiserver.request("POST", "/apis/apps/v1/namespaces/default/deployments",
                                     b"k8s\x00\x0a\x40\x0a", content_type="application/vnd.kubernetes.protobuf")
    assert status == 400
    assert body["reason"] == "BadRequest"
    assert body["message"].startswith("unable to decode the protobuf body: ")
    assert "claims 64 bytes" in body["message"]
    assert apiserver.kubectl_json("get", "deployments")["items"] == []


def test_status_errors_are_kubernetes_status_objects(apiserver):
    status, body = apiserver.request("GET", "/api/v1/namespaces/default/services/missing")
    assert status == 404
    assert body == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": 'services "missing" not found', "reason": "NotFound",
                    "details": {"name": "missing", "kind": "services"}, "code": 404}
    result = apiserver.kubectl("get", "svc", "missing", check=False)
    assert result.returncode != 0
    assert 'services "missing" not found' in result.stderr


def test_namespace_deletion_empties_it(apiserver, tmp_path):
    apiserver.kubectl("create", "-f", "-", input=namespace_manifest("scratch"))
    apiserver.kubectl("apply", "-n", "scratch", "-f", str(write_manifest(tmp_path, SEED)))
    apiserver.kubectl("delete", "namespace", "scratch", "--wait=false")
    wait_for(lambda: apiserver.request("GET", "/api/v1/namespaces/scratch")[0] == 404,
             what="namespace scratch to be removed")
    status, body = apiserver.request("GET", "/apis/apps/v1/namespaces/scratch/deployments")
    assert status == 200 and body["items"] == []


def test_list_paging_with_limit_and_continue(apiserver):
    for i in range(5):
        status, _ = apiserver.request("POST", "/api/v1/namespaces/default/services", {
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": f"s{i}"},
            "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}]}})
        assert status == 201
    status, page = apiserver.request("GET", "/api/v1/namespaces/default/services?limit=2")
    assert [i["metadata"]["name"] for i in page["items"]] == ["kubernetes", "s0"]
    assert page["metadata"]["remainingItemCount"] == 4
    names = [i["metadata"]["name"] for i in page["items"]]
    while page["metadata"].get("continue"):
        status, page = apiserver.request(
            "GET", f"/api/v1/namespaces/default/services?limit=2&continue={page['metadata']['continue']}")
        names += [i["metadata"]["name"] for i in page["items"]]
    assert names == ["kubernetes"] + [f"s{i}" for i in range(5)]


def test_sigterm_ends_open_watches_and_the_server_exits(apiserver):
    watcher = subprocess.Popen([KUBECTL, "get", "svc", "-w"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=apiserver.kubectl_env())
    try:
        reader = LineReader(watcher)
        wait_for(lambda: any("kubernetes" in line for line in reader.snapshot()), what="watch open")
        assert apiserver.proc is not None
        apiserver.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: apiserver.proc.poll() is not None, timeout=10,
                 what="the server to exit with a watch open")
        assert apiserver.proc.returncode == 0
    finally:
        watcher.kill()
        watcher.wait(timeout=10)
