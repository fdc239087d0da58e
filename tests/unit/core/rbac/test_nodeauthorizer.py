"""The Node authorizer and its graph, with plain objects (after node_authorizer_test.go): every
rule a kubelet's request meets, allowed or left to RBAC with upstream's reason."""
from __future__ import annotations

import pytest

from svcnet.core.rbac import bootstrap
from svcnet.core.rbac.attributes import Attributes, field_equals, request_attributes
from svcnet.core.rbac.identity import User, node_identity, node_user
from svcnet.core.rbac.nodeauthorizer import NodeAuthorizer
from svcnet.core.rbac.nodegraph import NodeGraph, pod_configmap_names, pod_references, pod_secret_names

NODE1 = node_user("node-1")


def pod(name: str, node: str, namespace: str = "ns", **spec) -> dict:
    return {"metadata": {"name": name, "namespace": namespace}, "spec": {"nodeName": node, **spec}}


WITH_REFS = {
    "serviceAccountName": "sa1",
    "imagePullSecrets": [{"name": "pull"}],
    "containers": [{"name": "c", "envFrom": [{"secretRef": {"name": "env-secret"}},
                                               {"configMapRef": {"name": "env-cm"}}],
                    "env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "key-secret", "key": "k"}}},
                            {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "key-cm", "key": "k"}}}]}],
    "initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": "init-secret"}}]}],
    "volumes": [{"name": "s", "secret": {"secretName": "vol-secret"}},
                {"name": "c", "configMap": {"name": "vol-cm"}},
                {"name": "p", "projected": {"sources": [{"secret": {"name": "proj-secret"}},
                                                        {"configMap": {"name": "proj-cm"}}]}},
                {"name": "claim", "persistentVolumeClaim": {"claimName": "data"}},
                {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {}}},
                {"name": "csi", "csi": {"driver": "d", "nodePublishSecretRef": {"name": "csi-secret"}}}],
}


def graph_with(*pods: dict) -> NodeGraph:
    graph = NodeGraph()
    for p in pods:
        graph.set_pod(p)
    return graph


def authorizer(graph: NodeGraph) -> NodeAuthorizer:
    return NodeAuthorizer(graph, bootstrap.expected_rules("system:node"))


def ask(verb: str, resource: str, name: str = "", namespace: str = "ns", *, group: str = "",
        subresource: str = "", user: User = NODE1, field_selector: str = "") -> Attributes:
    return Attributes(user, verb, True, namespace=namespace, api_group=group, resource=resource,
                      subresource=subresource, name=name, field_selector=field_selector)


# ------------------------------------------------------------------ identity and graph
def test_a_node_is_the_prefix_and_the_group_together() -> None:
    assert node_identity(NODE1) == (True, "node-1")
    assert node_identity(User("system:node:node-1", ("system:authenticated",))) == (False, "")
    assert node_identity(User("node-1", ("system:nodes",))) == (False, "")
    assert node_identity(User("system:node:", ("system:nodes",))) == (True, "")


def test_every_reference_a_pod_can_make_is_found() -> None:
    p = pod("web", "node-1", **WITH_REFS)
    assert pod_secret_names(p) == {"pull", "env-secret", "key-secret", "init-secret", "vol-secret", "proj-secret",
                                   "csi-secret"}
    assert pod_configmap_names(p) == {"env-cm", "key-cm", "vol-cm", "proj-cm"}
    refs = pod_references(p)
    assert ("persistentvolumeclaims", "ns", "data") in refs
    assert ("persistentvolumeclaims", "ns", "web-scratch") in refs  # a generic ephemeral volume's claim
    assert ("serviceaccounts", "ns", "sa1") in refs


def test_the_graph_follows_pods_as_they_bind_change_and_go() -> None:
    graph = NodeGraph()
    unbound = pod("web", "", volumes=[{"name": "s", "secret": {"secretName": "s1"}}])
    graph.set_pod(unbound)
    assert not graph.has_path("node-1", ("secrets", "ns", "s1"))
    bound = pod("web", "node-1", volumes=[{"name": "s", "secret": {"secretName": "s1"}}])
    graph.set_pod(bound)
    assert graph.has_path("node-1", ("secrets", "ns", "s1"))
    assert graph.has_path("node-1", ("pods", "ns", "web"))
    assert not graph.has_path("node-2", ("secrets", "ns", "s1"))
    assert not graph.has_path("node-1", ("secrets", "other", "s1"))  # a namespace is part of the name
    graph.delete_pod(bound)
    assert not graph.has_path("node-1", ("secrets", "ns", "s1"))
    assert not graph.known(("secrets", "ns", "s1"))  # nothing is left behind


def test_a_secret_two_pods_share_stays_reachable_until_the_last_goes() -> None:
    a = pod("a", "node-1", volumes=[{"name": "s", "secret": {"secretName": "shared"}}])
    b = pod("b", "node-2", volumes=[{"name": "s", "secret": {"secretName": "shared"}}])
    graph = graph_with(a, b)
    assert graph.has_path("node-1", ("secrets", "ns", "shared")) and graph.has_path("node-2", ("secrets", "ns", "shared"))
    graph.delete_pod(a)
    assert not graph.has_path("node-1", ("secrets", "ns", "shared"))
    assert graph.has_path("node-2", ("secrets", "ns", "shared"))


def test_a_bound_volume_leads_from_its_claim_and_secret_to_the_node() -> None:
    graph = graph_with(pod("db", "node-1", volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]))
    graph.set_pv({"metadata": {"name": "pv1"}, "spec": {"claimRef": {"namespace": "ns", "name": "data"},
                                                         "csi": {"nodePublishSecretRef": {"namespace": "sec",
                                                                                          "name": "pv-secret"}}}})
    assert graph.has_path("node-1", ("persistentvolumes", "", "pv1"))
    assert graph.has_path("node-1", ("secrets", "sec", "pv-secret"))
    graph.delete_pv({"metadata": {"name": "pv1"}})
    assert not graph.has_path("node-1", ("persistentvolumes", "", "pv1"))


# ------------------------------------------------------------------ secrets and configmaps
@pytest.mark.parametrize("resource,name", [("secrets", "vol-secret"), ("configmaps", "env-cm")])
def test_a_node_reads_what_its_pods_reference(resource: str, name: str) -> None:
    authz = authorizer(graph_with(pod("web", "node-1", **WITH_REFS)))
    assert authz.decide(ask("get", resource, name)).allowed
    # list/watch narrowed to that one name, as kubelet's Watch change-detection strategy asks
    assert authz.decide(ask("list", resource, name, field_selector=f"metadata.name={name}")).allowed
    assert authz.decide(ask("watch", resource, name, field_selector=f"metadata.name={name}")).allowed


def test_a_node_cannot_read_what_only_another_nodes_pods_reference() -> None:
    authz = authorizer(graph_with(pod("web", "node-2", **WITH_REFS)))
    decision = authz.decide(ask("get", "secrets", "vol-secret"))
    assert not decision.allowed
    assert decision.reason == "no relationship found between node 'node-1' and this object"


def test_secrets_are_read_only_by_name_and_never_written() -> None:
    authz = authorizer(graph_with(pod("web", "node-1", **WITH_REFS)))
    assert authz.decide(ask("list", "secrets")).reason == "No Object name found"
    assert authz.decide(ask("update", "secrets", "vol-secret")).reason == "can only read resources of this type"
    assert authz.decide(ask("get", "secrets", "vol-secret", subresource="x")).reason == "cannot read subresource"
    assert authz.decide(ask("list", "secrets", namespace="")).reason == "can only read namespaced object of this type"


def test_claims_and_volumes_only_by_get() -> None:
    authz = authorizer(graph_with(pod("web", "node-1", **WITH_REFS)))
    assert authz.decide(ask("get", "persistentvolumeclaims", "data")).allowed
    assert authz.decide(ask("list", "persistentvolumeclaims", "data")).reason == \
        "can only get individual resources of this type"
    assert authz.decide(ask("update", "persistentvolumeclaims", "data", subresource="status")).allowed
    assert authz.decide(ask("get", "persistentvolumeclaims", "data", subresource="status")).reason == \
        "can only get/update/patch this type"
    assert not authz.decide(ask("get", "persistentvolumes", "unknown", namespace="")).allowed


# ------------------------------------------------------------------ service account tokens
def test_tokens_only_for_the_accounts_of_its_pods() -> None:
    authz = authorizer(graph_with(pod("web", "node-1", **WITH_REFS), pod("other", "node-2", serviceAccountName="sa2")))
    assert authz.decide(ask("create", "serviceaccounts", "sa1", subresource="token")).allowed
    assert not authz.decide(ask("create", "serviceaccounts", "sa2", subresource="token")).allowed
    assert authz.decide(ask("get", "serviceaccounts", "sa1")).reason == \
        "can only create tokens for individual service accounts"
    assert authz.decide(ask("create", "serviceaccounts", "sa1")).reason == \
        "can only create token subresource of serviceaccount"


# ------------------------------------------------------------------ leases and nodes
def test_its_own_lease_in_kube_node_lease_only() -> None:
    authz = authorizer(NodeGraph())
    lease = {"group": "coordination.k8s.io", "namespace": "kube-node-lease"}
    for verb in ("get", "update", "patch", "delete"):
        assert authz.decide(ask(verb, "leases", "node-1", **lease)).allowed
    assert authz.decide(ask("create", "leases", **lease)).allowed  # the name is NodeRestriction's to check
    assert authz.decide(ask("update", "leases", "node-2", **lease)).reason == \
        "can only access node lease with the same name as the requesting node"
    assert authz.decide(ask("get", "leases", "node-1", group="coordination.k8s.io", namespace="default")).reason == \
        'can only access leases in the "kube-node-lease" system namespace'
    assert authz.decide(ask("list", "leases", **lease)).reason == \
        "can only get, create, update, patch, or delete a node lease"


def test_its_own_node_to_read_any_node_to_write_for_node_restriction() -> None:
    authz = authorizer(NodeGraph())
    assert authz.decide(ask("get", "nodes", "node-1", namespace="")).allowed
    assert authz.decide(ask("get", "nodes", "node-2", namespace="")).reason == \
        "node 'node-1' cannot read 'node-2', only its own Node object"
    assert authz.decide(ask("list", "nodes", namespace="")).reason == \
        "node 'node-1' cannot read all nodes, only its own Node object"
    assert authz.decide(ask("watch", "nodes", "node-1", namespace="", field_selector="metadata.name=node-1")).allowed
    for verb, sub in (("create", ""), ("update", ""), ("patch", ""), ("update", "status"), ("patch", "status")):
        assert authz.decide(ask(verb, "nodes", "node-2", namespace="", subresource=sub)).allowed
    assert not authz.decide(ask("delete", "nodes", "node-1", namespace="")).allowed


# ------------------------------------------------------------------ pods
def test_pods_listed_only_by_its_node_name_and_read_when_bound_to_it() -> None:
    authz = authorizer(graph_with(pod("mine", "node-1"), pod("theirs", "node-2")))
    assert authz.decide(ask("list", "pods", namespace="", field_selector="spec.nodeName=node-1")).allowed
    assert authz.decide(ask("watch", "pods", namespace="", field_selector="spec.nodeName=node-1")).allowed
    for selector in ("", "spec.nodeName=node-2", "spec.nodeName==node-1", "spec.nodeName!=node-1"):
        decision = authz.decide(ask("list", "pods", namespace="", field_selector=selector))
        assert decision.reason == "can only list/watch pods with spec.nodeName field selector", selector
    assert authz.decide(ask("get", "pods", "mine")).allowed
    assert not authz.decide(ask("get", "pods", "theirs")).allowed
    assert authz.decide(ask("watch", "pods", "mine", field_selector="metadata.name=mine")).allowed


def test_pod_writes_are_left_to_node_restriction() -> None:
    authz = authorizer(NodeGraph())
    for verb, sub in (("create", ""), ("delete", ""), ("update", "status"), ("patch", "status"),
                      ("create", "eviction")):
        assert authz.decide(ask(verb, "pods", "x", subresource=sub)).allowed
    assert not authz.decide(ask("update", "pods", "x")).allowed
    assert not authz.decide(ask("create", "pods", "x", subresource="exec")).allowed


# ------------------------------------------------------------------ everything else
def test_other_resources_follow_the_system_node_rules() -> None:
    authz = authorizer(NodeGraph())
    assert authz.decide(ask("watch", "services", namespace="")).allowed
    assert authz.decide(ask("create", "events")).allowed
    assert authz.decide(ask("create", "tokenreviews", namespace="", group="authentication.k8s.io")).allowed
    assert not authz.decide(ask("create", "deployments", group="apps")).allowed
    assert not authz.decide(ask("list", "services", user=User("alice", ("system:authenticated",)))).allowed


def test_not_a_node_means_no_opinion_and_an_unnamed_node_is_refused() -> None:
    authz = authorizer(graph_with(pod("web", "node-1", **WITH_REFS)))
    someone = User("system:node:node-1", ("system:authenticated",))  # the name without the group
    assert authz.decide(ask("get", "secrets", "vol-secret", user=someone)).reason == ""
    nameless = User("system:node:", ("system:nodes",))
    assert authz.decide(ask("get", "services", user=nameless)).reason == 'unknown node for user "system:node:"'


def test_request_attributes_carry_the_field_selector_of_lists_and_watches() -> None:
    attrs = request_attributes(NODE1, "GET", "/api/v1/pods", {"fieldSelector": "spec.nodeName=node-1", "watch": "1"})
    assert attrs.verb == "watch" and attrs.field_selector == "spec.nodeName=node-1"
    assert field_equals("a=b,spec.nodeName=node-1", "spec.nodeName", "node-1")
    assert not field_equals("spec.nodeName=node-10", "spec.nodeName", "node-1")
