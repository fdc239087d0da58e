"""Component identities against a real `svcnet apiserver`: client certificates from the cluster CA
authenticate (CN the user, O the groups), the Node authorizer and NodeRestriction keep a node's
credentials to its own pods and what they reference, kube-proxy's to what it watches, and
`kubectl auth can-i` answers for a node as kube-apiserver does."""
from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from svcnet.apiserver.credentials import ensure_component_kubeconfig
from svcnet.core import pki
from tests.integration.apiserver_harness import ApiServerProcess, kubectl_available
from tests.waiting import wait_for

NODE1 = ("system:node:node-1", ("system:nodes",))


class CertClient:
    """Requests to the API server with one client certificate (a component's kubeconfig's)."""

    def __init__(self, server: ApiServerProcess, kubeconfig: Path, tmp: Path) -> None:
        self.server = server
        self.kubeconfig = kubeconfig
        user = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]
        self.cert, self.key = tmp / f"{kubeconfig.stem}.crt", tmp / f"{kubeconfig.stem}.key"
        self.cert.write_bytes(base64.b64decode(user["client-certificate-data"]))
        self.key.write_bytes(base64.b64decode(user["client-key-data"]))
        self.key.chmod(0o600)

    def request(self, method: str, path: str, body: Any = None,
                content_type: str = "application/json") -> tuple[int, Any]:
        ctx = ssl.create_default_context(cafile=str(self.server.data_dir / "pki" / "ca.crt"))
        ctx.load_cert_chain(str(self.cert), str(self.key))
        req = urllib.request.Request(self.server.url + path, method=method,
                                     data=None if body is None else json.dumps(body).encode())
        if body is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"null")


def credentials(server: ApiServerProcess, tmp: Path, name: str, user: str, groups: tuple[str, ...]) -> CertClient:
    path = ensure_component_kubeconfig(tmp / f"{name}.conf", server.url, server.data_dir / "pki", user, groups)
    return CertClient(server, path, tmp)


def _pod(name: str, node: str, secret: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}],
                     "volumes": [{"name": "s", "secret": {"secretName": secret}}]}}


@pytest.fixture
def two_nodes_pods(apiserver: ApiServerProcess) -> ApiServerProcess:
    """Secrets s1 and s2, pod p1 on node-1 mounting s1, pod p2 on node-2 mounting s2."""
    for name in ("s1", "s2"):
        status, body = apiserver.request("POST", "/api/v1/namespaces/default/secrets", {
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": {"k": name}})
        assert status == 201, body
    for name, node, secret in (("p1", "node-1", "s1"), ("p2", "node-2", "s2")):
        status, body = apiserver.request("POST", "/api/v1/namespaces/default/pods", _pod(name, node, secret))
        assert status == 201, body
    return apiserver


def test_a_client_certificate_is_its_subjects_user_and_groups(apiserver: ApiServerProcess, tmp_path: Path) -> None:
    node = credentials(apiserver, tmp_path, "kubelet", *NODE1)
    status, review = node.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                                  {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    assert status == 201, review
    assert review["status"]["userInfo"]["username"] == "system:node:node-1"
    assert review["status"]["userInfo"]["groups"] == ["system:nodes", "system:authenticated"]
    # bearer tokens keep working beside certificates
    assert apiserver.request("GET", "/api/v1/namespaces/default/pods")[0] == 200


def test_a_certificate_from_another_ca_is_not_accepted(apiserver: ApiServerProcess, tmp_path: Path) -> None:
    other_key = pki.new_key()
    other = pki.Authority(pki.issue_ca("someone-else", other_key), other_key)
    key = pki.new_key()
    (tmp_path / "x.crt").write_bytes(pki.cert_pem(pki.issue_client(other, "mallory", ("system:masters",),
                                                                   key.public_key())))
    (tmp_path / "x.key").write_bytes(pki.key_pem(key))
    ctx = ssl.create_default_context(cafile=str(apiserver.data_dir / "pki" / "ca.crt"))
    ctx.load_cert_chain(str(tmp_path / "x.crt"), str(tmp_path / "x.key"))
    req = urllib.request.Request(apiserver.url + "/api/v1/namespaces/default/secrets")
    # Python's ssl cannot ask for a certificate without checking it during the handshake, so an
    # untrusted one ends the connection there (kube-apiserver answers 401); either way, no access.
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(req, context=ctx, timeout=10).read()


def test_a_node_writes_only_its_own_pods_status(two_nodes_pods: ApiServerProcess, tmp_path: Path) -> None:
    node = credentials(two_nodes_pods, tmp_path, "kubelet", *NODE1)
    patch = {"status": {"conditions": [{"type": "Ready", "status": "False"}]}}
    status, body = node.request("PATCH", "/api/v1/namespaces/default/pods/p1/status", patch,
                                "application/merge-patch+json")
    assert status == 200, body
    status, body = node.request("PATCH", "/api/v1/namespaces/default/pods/p2/status", patch,
                                "application/merge-patch+json")
    assert status == 403, body
    assert body["reason"] == "Forbidden"
    assert body["message"] == ('pods "p2" is forbidden: node "node-1" can only update pod status for pods with '
                               'spec.nodeName set to itself')
    status, body = node.request("DELETE", "/api/v1/namespaces/default/pods/p2")
    assert status == 403 and "can only delete pods with spec.nodeName set to itself" in body["message"]


def test_a_node_reads_only_the_secrets_of_its_own_pods(two_nodes_pods: ApiServerProcess, tmp_path: Path) -> None:
    node = credentials(two_nodes_pods, tmp_path, "kubelet", *NODE1)
    # the graph follows the store's watch: wait for it to have seen p1
    wait_for(lambda: node.request("GET", "/api/v1/namespaces/default/secrets/s1")[0] == 200, timeout=30,
             what="node-1 may read s1")
    status, body = node.request("GET", "/api/v1/namespaces/default/secrets/s2")
    assert status == 403
    assert body["message"] == (
        'secrets "s2" is forbidden: User "system:node:node-1" cannot get resource "secrets" in API group "" in the '
        "namespace \"default\": no relationship found between node 'node-1' and this object")
    status, body = node.request("GET", "/api/v1/namespaces/default/secrets")
    assert status == 403 and "cannot list resource \"secrets\"" in body["message"]
    status, _ = node.request("GET", "/api/v1/namespaces/default/secrets?fieldSelector=metadata.name%3Ds1")
    assert status == 200
    # pods: only those bound to it, listed by its node name
    assert node.request("GET", "/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-1")[0] == 200
    assert node.request("GET", "/api/v1/pods")[0] == 403
    # once p1 is gone, so is node-1's way to s1
    assert two_nodes_pods.request("DELETE", "/api/v1/namespaces/default/pods/p1?gracePeriodSeconds=0")[0] == 200
    wait_for(lambda: node.request("GET", "/api/v1/namespaces/default/secrets/s1")[0] == 403, timeout=30,
             what="node-1 loses s1 with p1")


def test_a_node_keeps_to_its_own_node_object_and_lease(apiserver: ApiServerProcess, tmp_path: Path) -> None:
    node = credentials(apiserver, tmp_path, "kubelet", *NODE1)
    for name in ("node-1", "node-2"):
        status, body = node.request("POST", "/api/v1/nodes", {"apiVersion": "v1", "kind": "Node",
                                                              "metadata": {"name": name}})
        assert status == (201 if name == "node-1" else 403), body
    status, body = node.request("PATCH", "/api/v1/nodes/node-1", {"metadata": {"labels": {
        "node-restriction.kubernetes.io/secure": "true"}}}, "application/merge-patch+json")
    assert status == 403
    assert body["message"] == ('nodes "node-1" is forbidden: is not allowed to modify labels: '
                               'node-restriction.kubernetes.io/secure')
    lease = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
    assert node.request("POST", lease, {"metadata": {"name": "node-1"}, "spec": {}})[0] == 201
    status, body = node.request("POST", lease, {"metadata": {"name": "node-2"}, "spec": {}})
    assert status == 403
    assert body["message"].endswith("can only access node lease with the same name as the requesting node")


def test_kube_proxy_reads_services_and_slices_but_creates_no_pods(apiserver: ApiServerProcess, tmp_path: Path) -> None:
    proxy = credentials(apiserver, tmp_path, "kube-proxy", "system:kube-proxy", ())
    assert proxy.request("GET", "/api/v1/services")[0] == 200
    assert proxy.request("GET", "/apis/discovery.k8s.io/v1/endpointslices?watch=1&timeoutSeconds=1")[0] == 200
    assert proxy.request("GET", "/api/v1/nodes?fieldSelector=metadata.name%3Dnode-1")[0] == 200
    status, body = proxy.request("POST", "/api/v1/namespaces/default/pods", _pod("x", "node-1", "s1"))
    assert status == 403
    assert 'User "system:kube-proxy" cannot create resource "pods"' in body["message"]


@pytest.mark.kubectl
@pytest.mark.skipif(not kubectl_available(), reason="kubectl is not on PATH")
def test_kubectl_can_i_answers_for_a_node_as_upstream(two_nodes_pods: ApiServerProcess) -> None:
    def can_i(*args: str) -> str:
        return two_nodes_pods.kubectl("auth", "can-i", *args, "--as=system:node:node-1", "--as-group=system:nodes",
                                      check=False).stdout.strip()

    # kubectl prints a denial's reason after "no - ", as the review carries the Node authorizer's
    wait_for(lambda: can_i("get", "secret/s1") == "yes", timeout=30, what="can-i get secret/s1")
    assert can_i("get", "secret/s2") == "no - no relationship found between node 'node-1' and this object"
    assert can_i("list", "secrets") == "no - No Object name found"
    assert can_i("get", "pod/p1") == "yes"
    assert can_i("get", "pod/p2") == "no - no relationship found between node 'node-1' and this object"
    # only with spec.nodeName=node-1, which can-i cannot send
    assert can_i("list", "pods") == "no - can only list/watch pods with spec.nodeName field selector"
    assert can_i("get", "node/node-1") == "yes"
    assert can_i("get", "node/node-2") == "no - node 'node-1' cannot read 'node-2', only its own Node object"
    assert can_i("list", "services") == "yes"
    assert can_i("update", "leases/node-1", "-n", "kube-node-lease") == "yes"
    assert can_i("update", "leases/node-2", "-n", "kube-node-lease") == (
        "no - can only access node lease with the same name as the requesting node")
    assert can_i("create", "deployments") == "no"
