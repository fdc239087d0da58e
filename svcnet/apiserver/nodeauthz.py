"""The Node authorizer's graph kept current from the store, and NodeRestriction on the write path.

kube-apiserver feeds the node authorizer's graph from informers on pods, persistent volumes
and volume attachments (graph_populator.go); here the same comes from the store directly: the
pods are listed once at start and every later change arrives through a store watch from that
revision, so no request lists anything. Watch callbacks come from the store's thread; the graph
is read and written under one lock.

NodeRestriction runs where kube-apiserver runs admission: creates and updates through the
registry's admission hooks (which see the object and its old version), and, for the requests
the registry does not admit (pod deletes, token requests), in `check_request` before the
handler, with the current pod read from the store as upstream's plugin reads it from its lister.
"""
from __future__ import annotations

import json
import logging
import threading
from typing import Any

from svcnet.api import errors
from svcnet.api.errors import ApiError
from svcnet.api.resources import Resource, lookup
from svcnet.apiserver.authz import CURRENT_ATTRIBUTES, CURRENT_USER
from svcnet.apiserver.registry import Registry
from svcnet.core.rbac import noderestriction
from svcnet.core.rbac.attributes import Attributes
from svcnet.core.rbac.identity import node_identity
from svcnet.core.rbac.nodegraph import NodeGraph, Vertex
from svcnet.storage.base import Event

log = logging.getLogger("svcnet.apiserver")

Obj = dict[str, Any]


def _resource(group: str, plural: str) -> Resource | None:
    return lookup(group, "v1", plural)


class LiveGraph:
    """A NodeGraph the store's watches keep current (the authorizer's Paths)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.graph = NodeGraph()
        self._lock = threading.Lock()
        self._watches: list[Any] = []

    def has_path(self, node: str, start: Vertex) -> bool:
        if any(watch.ended for watch in self._watches):  # the graph may miss changes from then on
            self._rebuild()
        with self._lock:
            return self.graph.has_path(node, start)

    def _rebuild(self) -> None:
        """List and watch again after the store ended a watch (etcd compacted the history it
        followed), as an informer relists: a graph that misses a pod's deletion would keep granting
        its node the pod's secrets."""
        self.stop()
        with self._lock:
            self.graph = NodeGraph()
        self.start()

    def start(self) -> None:
        """List pods (and persistent volumes, when served) and watch them from that revision."""
        for plural, setter, remover in (("pods", self.graph.set_pod, self.graph.delete_pod),
                                        ("persistentvolumes", self.graph.set_pv, self.graph.delete_pv)):
            res = _resource("", plural)
            if res is None:
                continue  # not served: nothing of that kind can exist
            page = self.registry.list(res, None)
            with self._lock:
                for obj in page.items:
                    setter(obj)
            self._watches.append(self.registry.store.watch(
                res.storage_prefix(None), int(page.resource_version), self._on_event(setter, remover)))

    def _on_event(self, setter, remover):
        def on_event(event: Event) -> None:
            with self._lock:
                if event.type == "DELETED":
                    remover(event.value)
                else:
                    setter(event.value)
        return on_event

    def stop(self) -> None:
        for watch in self._watches:
            watch.cancel()
        self._watches.clear()


def _refusal(res_plural: str, group: str, name: str, reason: str) -> ApiError:
    """admission.NewForbidden: `<resource>[.<group>] "<name>" is forbidden: <reason>`."""
    qualified = f"{res_plural}.{group}" if group else res_plural
    return errors.forbidden(res_plural, name, f'{qualified} "{name}" is forbidden: {reason}', group)


def _getter(registry: Registry, plural: str):
    res = _resource("", plural)
    assert res is not None

    def get(namespace: str | None, name: str) -> Obj:
        return registry.get(res, namespace, name)  # a 404 ApiError passes through, as upstream's
    return get


class NodeRestriction:
    """The registry admission hook: creates and updates by nodes, checked with their objects."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._get_pod = _getter(registry, "pods")
        self._get_node = _getter(registry, "nodes")

    def admit(self, op: str, resource: Resource, obj: Obj, old: Obj | None, dry_run: bool = False):
        user = CURRENT_USER.get()
        if user is None or not node_identity(user)[0]:
            return None
        attrs = CURRENT_ATTRIBUTES.get()
        md = obj.get("metadata") or {}
        request = noderestriction.Request(
            user, op, resource.group, resource.plural, attrs.subresource if attrs else "",
            str(md.get("namespace") or (attrs.namespace if attrs else "")),
            (attrs.name if attrs else "") or str(md.get("name") or ""), obj, old)
        reason = noderestriction.admit(request, self._get_pod, lambda name: self._get_node(None, name))
        if reason is not None:
            raise _refusal(resource.plural, resource.group, request.name, reason)
        return None

    def released(self, resource: Resource, obj: Obj) -> None:
        return None

    async def check_request(self, attrs: Attributes, read_body) -> None:
        """The node writes the registry does not admit: deleting a pod, and a TokenRequest (whose
        body is read here; the handler reads the same cached bytes)."""
        if not node_identity(attrs.user)[0] or attrs.api_group != "":
            return
        if attrs.resource == "pods" and attrs.verb == "delete" and not attrs.subresource:
            request = noderestriction.Request(attrs.user, "DELETE", "", "pods", "", attrs.namespace, attrs.name)
        elif attrs.resource == "serviceaccounts" and attrs.subresource == "token" and attrs.verb == "create":
            try:
                body = json.loads(await read_body() or b"{}")
            except ValueError:
                return  # the handler answers the malformed body
            request = noderestriction.Request(attrs.user, "CREATE", "", "serviceaccounts", "token",
                                              attrs.namespace, attrs.name,
                                              body if isinstance(body, dict) else {})
        else:
            return
        reason = noderestriction.admit(request, self._get_pod, lambda name: self._get_node(None, name))
        if reason is not None:
            raise _refusal(attrs.resource, "", attrs.name, reason)
