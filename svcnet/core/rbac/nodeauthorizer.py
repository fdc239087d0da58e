"""The Node authorizer: what a kubelet (system:node:<name> in system:nodes) may do, before RBAC
is asked (kube-apiserver --authorization-mode=Node,RBAC; plugin/pkg/auth/authorizer/node).

- secrets, configmaps: get, and list/watch narrowed to one name (fieldSelector metadata.name=<n>,
  which is how kubelet's Watch change-detection reads one object), of objects a pod bound to
  the node references; persistentvolumeclaims, persistentvolumes, resourceclaims,
  volumeattachments: get of related ones (a claim's status: update/patch);
- serviceaccounts: create of the token subresource for accounts of pods bound to the node;
- leases: get/create/update/patch/delete in kube-node-lease, named as the node (create is
  left to NodeRestriction, which sees the name);
- nodes: get/list/watch of its own Node only; create/update/patch (and status) allowed here,
  NodeRestriction limits them to its own;
- pods: get of pods bound to it, list/watch only with fieldSelector spec.nodeName=<node>
  (AuthorizeNodeWithSelectors, on by default since 1.32), create/delete and status updates
  and evictions allowed here for NodeRestriction to limit;
- anything else: the static system:node rules.

A request this authorizer does not allow gets no opinion (RBAC decides next), with the reason
upstream gives, which the 403 carries.
"""
from __future__ import annotations

from typing import Protocol

from .attributes import Attributes, field_equals
from .authorizer import Decision
from .identity import node_identity
from .nodegraph import CONFIGMAPS, PODS, PVCS, PVS, RESOURCE_CLAIMS, SECRETS, SERVICE_ACCOUNTS, Vertex
from .rules import Rule, rule_allows

NODE_LEASE_NAMESPACE = "kube-node-lease"
_VOLUME_ATTACHMENTS = "volumeattachments"

NO_OPINION = Decision(False)
ALLOW = Decision(True)


class Paths(Protocol):
    """The graph as the authorizer asks it (NodeGraph, or the API server's locked view of one)."""

    def has_path(self, node: str, start: Vertex) -> bool: ...


def _deny(reason: str) -> Decision:
    return Decision(False, reason)


class NodeAuthorizer:
    def __init__(self, paths: Paths, node_rules: list[Rule]) -> None:
        """node_rules: the system:node ClusterRole's rules (bootstrappolicy.NodeRules)."""
        self.paths = paths
        self.node_rules = node_rules

    def decide(self, attrs: Attributes) -> Decision:
        is_node, node = node_identity(attrs.user)
        if not is_node:
            return NO_OPINION
        if not node:
            return _deny(f'unknown node for user "{attrs.user.name}"')
        if attrs.resource_request:
            special = self._subdivided(node, attrs)
            if special is not None:
                return special
        if any(rule_allows(attrs, rule) for rule in self.node_rules):
            return ALLOW
        return NO_OPINION

    def _subdivided(self, node: str, attrs: Attributes) -> Decision | None:
        """The decision for a resource whose access depends on the node; None for the rest."""
        group, resource = attrs.api_group, attrs.resource
        if group == "" and resource in (SECRETS, CONFIGMAPS):
            return self._read_namespaced(node, resource, attrs)
        if group == "" and resource == PVCS:
            return self._status_update(node, attrs) if attrs.subresource == "status" else self._get(node, PVCS, attrs)
        if group == "" and resource == PVS:
            return self._get(node, PVS, attrs)
        if group == "resource.k8s.io" and resource == RESOURCE_CLAIMS:
            return self._get(node, RESOURCE_CLAIMS, attrs)
        if group == "storage.k8s.io" and resource == _VOLUME_ATTACHMENTS:
            return self._get(node, _VOLUME_ATTACHMENTS, attrs)
        if group == "" and resource == SERVICE_ACCOUNTS:
            return self._create_token(node, attrs)
        if group == "coordination.k8s.io" and resource == "leases":
            return self._lease(node, attrs)
        if group == "storage.k8s.io" and resource == "csinodes":
            return self._csi_node(node, attrs)
        if group == "" and resource == "nodes":
            return self._node(node, attrs)
        if group == "" and resource == PODS:
            return self._pod(node, attrs)
        return None

    def _related(self, node: str, kind: str, attrs: Attributes) -> Decision:
        if not attrs.name:
            return _deny("No Object name found")
        if self.paths.has_path(node, (kind, attrs.namespace, attrs.name)):
            return ALLOW
        return _deny(f"no relationship found between node '{node}' and this object")

    def _status_update(self, node: str, attrs: Attributes) -> Decision:
        if attrs.verb not in ("update", "patch"):
            return _deny("can only get/update/patch this type")
        return self._related(node, PVCS, attrs)

    def _get(self, node: str, kind: str, attrs: Attributes) -> Decision:
        if attrs.verb != "get":
            return _deny("can only get individual resources of this type")
        if attrs.subresource:
            return _deny("cannot get subresource")
        return self._related(node, kind, attrs)

    def _read_namespaced(self, node: str, kind: str, attrs: Attributes) -> Decision:
        if attrs.verb not in ("get", "list", "watch"):
            return _deny("can only read resources of this type")
        if attrs.subresource:
            return _deny("cannot read subresource")
        if not attrs.namespace:
            return _deny("can only read namespaced object of this type")
        return self._related(node, kind, attrs)

    def _create_token(self, node: str, attrs: Attributes) -> Decision:
        if attrs.verb != "create" or not attrs.name:
            return _deny("can only create tokens for individual service accounts")
        if attrs.subresource != "token":
            return _deny("can only create token subresource of serviceaccount")
        if self.paths.has_path(node, (SERVICE_ACCOUNTS, attrs.namespace, attrs.name)):
            return ALLOW
        return _deny(f"no relationship found between node '{node}' and this object")

    def _lease(self, node: str, attrs: Attributes) -> Decision:
        if attrs.verb not in ("get", "create", "update", "patch", "delete"):
            return _deny("can only get, create, update, patch, or delete a node lease")
        if attrs.namespace != NODE_LEASE_NAMESPACE:
            return _deny(f'can only access leases in the "{NODE_LEASE_NAMESPACE}" system namespace')
        if attrs.verb != "create" and attrs.name != node:
            return _deny("can only access node lease with the same name as the requesting node")
        return ALLOW

    def _csi_node(self, node: str, attrs: Attributes) -> Decision:
        if attrs.verb not in ("get", "create", "update", "patch", "delete"):
            return _deny("can only get, create, update, patch, or delete a CSINode")
        if attrs.subresource:
            return _deny("cannot authorize CSINode subresources")
        if attrs.verb != "create" and attrs.name != node:
            return _deny("can only access CSINode with the same name as the requesting node")
        return ALLOW

    def _node(self, node: str, attrs: Attributes) -> Decision:
        if attrs.subresource == "" and attrs.verb in ("create", "update", "patch"):
            return ALLOW  # NodeRestriction limits a node to its own Node object
        if attrs.subresource == "" and attrs.verb in ("get", "list", "watch"):
            # by name, not through the graph: a kubelet reads its Node before creating it
            if attrs.name == node:
                return ALLOW
            if not attrs.name:
                return _deny(f"node '{node}' cannot read all nodes, only its own Node object")
            return _deny(f"node '{node}' cannot read '{attrs.name}', only its own Node object")
        if attrs.subresource == "status" and attrs.verb in ("update", "patch"):
            return ALLOW
        return NO_OPINION

    def _pod(self, node: str, attrs: Attributes) -> Decision:
        verb, sub = attrs.verb, attrs.subresource
        if sub == "" and verb == "get":
            return self._get(node, PODS, attrs)
        if sub == "" and verb in ("list", "watch"):
            if field_equals(attrs.field_selector, "spec.nodeName", node):
                return ALLOW
            if attrs.name:
                return self._related(node, PODS, attrs)
            return _deny("can only list/watch pods with spec.nodeName field selector")
        if (sub == "" and verb in ("create", "delete")) or (sub == "status" and verb in ("update", "patch")) \
                or (sub == "eviction" and verb == "create"):
            return ALLOW  # NodeRestriction limits these to mirror pods / pods bound to the node
        return NO_OPINION
