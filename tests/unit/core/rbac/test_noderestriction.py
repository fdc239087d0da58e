"""NodeRestriction with plain objects (after plugin/pkg/admission/noderestriction's tests): a node
writes only its own Node, Lease, pods' status, mirror pods and tokens; others pass untouched."""
from __future__ import annotations

import pytest

from svcnet.core.rbac.identity import User, node_user
from svcnet.core.rbac.noderestriction import NotFound, Request, admit, forbidden_labels

NODE1 = node_user("node-1")
PODS = {("ns", "mine"): {"metadata": {"name": "mine", "namespace": "ns", "uid": "u1"}, "spec": {"nodeName": "node-1"}},
        ("ns", "theirs"): {"metadata": {"name": "theirs", "namespace": "ns", "uid": "u2"},
                           "spec": {"nodeName": "node-2"}}}
NODES = {"node-1": {"metadata": {"name": "node-1", "uid": "node-uid"}}}


def get_pod(namespace: str, name: str) -> dict:
    try:
        return PODS[namespace, name]
    except KeyError:
        raise NotFound(name) from None


def check(op: str, resource: str, name: str = "", *, obj=None, old=None, group: str = "", sub: str = "",
          namespace: str = "ns", user: User = NODE1) -> str | None:
    return admit(Request(user, op, group, resource, sub, namespace, name, obj, old), get_pod, NODES.__getitem__)


def status_update(pod: dict, **changes) -> tuple[dict, dict]:
    new = {**pod, "metadata": {**pod["metadata"], **changes}, "status": {"phase": "Running"}}
    return new, pod


def test_only_nodes_are_restricted() -> None:
    alice = User("alice", ("system:authenticated",))
    assert check("DELETE", "pods", "theirs", user=alice) is None
    assert check("UPDATE", "nodes", "node-2", obj={}, old={}, namespace="", user=alice) is None
    assert check("DELETE", "pods", "theirs", user=User("system:node:", ("system:nodes",))) == \
        'could not determine node from user "system:node:"'


def test_status_of_its_own_pods_only() -> None:
    new, old = status_update(PODS["ns", "mine"])
    assert check("UPDATE", "pods", "mine", obj=new, old=old, sub="status") is None
    new, old = status_update(PODS["ns", "theirs"])
    assert check("UPDATE", "pods", "theirs", obj=new, old=old, sub="status") == \
        'node "node-1" can only update pod status for pods with spec.nodeName set to itself'


def test_no_label_or_claim_status_changes_through_pod_status() -> None:
    new, old = status_update(PODS["ns", "mine"], labels={"steal": "traffic"})
    assert check("UPDATE", "pods", "mine", obj=new, old=old, sub="status") == \
        'node "node-1" cannot update labels through pod status'
    new = {**PODS["ns", "mine"], "status": {"resourceClaimStatuses": [{"name": "c"}]}}
    assert check("UPDATE", "pods", "mine", obj=new, old=PODS["ns", "mine"], sub="status") == \
        'node "node-1" cannot update resource claim statues'


def test_delete_and_evict_only_its_own_pods() -> None:
    assert check("DELETE", "pods", "mine") is None
    assert check("DELETE", "pods", "theirs") == 'node "node-1" can only delete pods with spec.nodeName set to itself'
    assert check("CREATE", "pods", "mine", sub="eviction", obj={}) is None
    assert check("CREATE", "pods", "theirs", sub="eviction", obj={}) == \
        "node node-1 can only evict pods with spec.nodeName set to itself"
    with pytest.raises(NotFound):
        check("DELETE", "pods", "gone")
    assert check("UPDATE", "pods", "mine", sub="exec", obj={}, old={}) == \
        "unexpected pod subresource \"exec\", only 'status' and 'eviction' are allowed"
    assert check("UPDATE", "pods", "mine", obj={}, old={}) == \
        'unexpected operation "UPDATE", node "node-1" can only create and delete mirror pods'


def mirror(**overrides) -> dict:
    owner = {"apiVersion": "v1", "kind": "Node", "name": "node-1", "uid": "node-uid", "controller": True}
    pod = {"metadata": {"name": "static-node-1", "annotations": {"kubernetes.io/config.mirror": "x"},
                        "ownerReferences": [owner]},
           "spec": {"nodeName": "node-1", "containers": [{"name": "c"}]}}
    for key, value in overrides.items():
        section, _, field = key.partition("__")
        pod[section][field] = value
    return pod


def test_mirror_pods_bound_and_owned_by_itself_only() -> None:
    assert check("CREATE", "pods", obj=mirror()) is None
    assert check("CREATE", "pods", obj=mirror(metadata__annotations={})) == (
        'pod does not have "kubernetes.io/config.mirror" annotation, node "node-1" can only create mirror pods')
    assert check("CREATE", "pods", obj=mirror(spec__nodeName="node-2")) == \
        'node "node-1" can only create pods with spec.nodeName set to itself'
    assert check("CREATE", "pods", obj=mirror(metadata__ownerReferences=[])) == \
        'node "node-1" can only create pods with an owner reference set to itself'
    other_uid = [{"apiVersion": "v1", "kind": "Node", "name": "node-1", "uid": "stale", "controller": True}]
    assert check("CREATE", "pods", obj=mirror(metadata__ownerReferences=other_uid)) == \
        "node node-1 UID mismatch: expected stale got node-uid"
    not_controller = [{"apiVersion": "v1", "kind": "Node", "name": "node-1", "uid": "node-uid"}]
    assert check("CREATE", "pods", obj=mirror(metadata__ownerReferences=not_controller)) == \
        'node "node-1" can only create pods with a controller owner reference set to itself'


@pytest.mark.parametrize("field,value,what", [
    ("serviceAccountName", "default", "a service account"),
    ("volumes", [{"name": "s", "secret": {"secretName": "s"}}], "secrets"),
    ("volumes", [{"name": "c", "configMap": {"name": "c"}}], "configmaps"),
    ("volumes", [{"name": "p", "persistentVolumeClaim": {"claimName": "p"}}], "persistentvolumeclaims"),
])
def test_mirror_pods_reference_nothing(field: str, value, what: str) -> None:
    pod = mirror()
    pod["spec"][field] = value
    assert check("CREATE", "pods", obj=pod) == f'node "node-1" can not create pods that reference {what}'


def test_its_own_node_only_and_not_its_restricted_labels_or_taints() -> None:
    node = {"metadata": {"name": "node-1", "labels": {"kubernetes.io/hostname": "node-1"}}, "spec": {}}
    assert check("CREATE", "nodes", obj=node, namespace="") is None
    assert check("UPDATE", "nodes", "node-2", obj=node, old=node, namespace="") == \
        'node "node-1" is not allowed to modify node "node-2"'
    labelled = {**node, "metadata": {"name": "node-1", "labels": {"node-restriction.kubernetes.io/pci": "true",
                                                                  "node-role.kubernetes.io/control-plane": ""}}}
    assert check("CREATE", "nodes", obj=labelled, namespace="") == (
        'node "node-1" is not allowed to set the following labels: node-restriction.kubernetes.io/pci, '
        'node-role.kubernetes.io/control-plane')
    assert check("UPDATE", "nodes", "node-1", obj=labelled, old=node, namespace="") == (
        "is not allowed to modify labels: node-restriction.kubernetes.io/pci, node-role.kubernetes.io/control-plane")
    tainted = {**node, "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}}
    assert check("UPDATE", "nodes", "node-1", obj=node, old=tainted, namespace="") == \
        'node "node-1" is not allowed to modify taints'
    assert check("UPDATE", "nodes", "node-1", obj=node, old=node, namespace="", sub="status") is None


def test_kubelets_own_labels_and_other_prefixes_are_free() -> None:
    assert forbidden_labels({"kubernetes.io/arch": "amd64", "node.kubernetes.io/exclude": "", "example.com/x": "y",
                             "kubelet.kubernetes.io/a": "b", "topology.kubernetes.io/zone": "z"}, {}) == []
    assert forbidden_labels({}, {"example.k8s.io/gone": "x"}) == ["example.k8s.io/gone"]  # removal is a change too


def test_its_own_lease_only() -> None:
    lease = {"metadata": {"name": "node-1"}}
    assert check("CREATE", "leases", obj=lease, group="coordination.k8s.io", namespace="kube-node-lease") is None
    assert check("CREATE", "leases", obj={"metadata": {"name": "node-2"}}, group="coordination.k8s.io",
                 namespace="kube-node-lease") == "can only access node lease with the same name as the requesting node"
    assert check("UPDATE", "leases", "node-2", obj=lease, old=lease, group="coordination.k8s.io",
                 namespace="kube-node-lease") == "can only access node lease with the same name as the requesting node"
    assert check("UPDATE", "leases", "node-1", obj=lease, old=lease, group="coordination.k8s.io",
                 namespace="default") == 'can only access leases in the "kube-node-lease" system namespace'


def test_tokens_bound_to_its_own_pods_only() -> None:
    def token(name: str, uid: str) -> dict:
        return {"spec": {"boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": name, "uid": uid}}}
    assert check("CREATE", "serviceaccounts", "default", sub="token", obj=token("mine", "u1")) is None
    assert check("CREATE", "serviceaccounts", "default", sub="token", obj=token("theirs", "u2")) == \
        "node requested token bound to a pod scheduled on a different node"
    assert check("CREATE", "serviceaccounts", "default", sub="token", obj={"spec": {}}) == \
        "node requested token not bound to a pod"
    assert check("CREATE", "serviceaccounts", "default", sub="token", obj=token("mine", "")) == \
        "node requested token with a pod binding without a uid"
    assert check("CREATE", "serviceaccounts", "default", sub="token", obj=token("mine", "old")).startswith(
        "the UID in the bound object reference (old) does not match")


def test_claims_only_through_status_and_only_capacity_and_conditions() -> None:
    old = {"metadata": {"name": "c", "resourceVersion": "1"}, "spec": {"x": 1}, "status": {"phase": "Bound"}}
    new = {"metadata": {"name": "c"}, "spec": {"x": 1}, "status": {"phase": "Bound", "capacity": {"storage": "2Gi"}}}
    assert check("UPDATE", "persistentvolumeclaims", "c", obj=new, old=old, sub="status") is None
    changed = {**new, "spec": {"x": 2}}
    assert check("UPDATE", "persistentvolumeclaims", "c", obj=changed, old=old, sub="status") == \
        'node "node-1" is not allowed to update fields other than status.capacity and status.conditions'
    assert check("UPDATE", "persistentvolumeclaims", "c", obj=new, old=old) == "may only update PVC status"
