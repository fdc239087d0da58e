"""Shared bits for client tests: objects, waiting on a condition, recording handlers."""
from __future__ import annotations

from typing import Any

from svcnet.api.resources import lookup

PODS = lookup("", "v1", "pods")
SERVICES = lookup("", "v1", "services")
NODES = lookup("", "v1", "nodes")
NAMESPACES = lookup("", "v1", "namespaces")
DEPLOYMENTS = lookup("apps", "v1", "deployments")


def pod(name: str, namespace: str = "default", labels: dict[str, str] | None = None,
        node: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "serve_hostname"}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {}}, "spec": spec}



class Recorder:
    """Handlers that write down what they saw as ("add", key) / ("update", key) / ("delete", key)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    @staticmethod
    def _key(obj: dict[str, Any]) -> str:
        md = obj["metadata"]
        return f"{md.get('namespace')}/{md['name']}" if md.get("namespace") else md["name"]

    def on_add(self, obj: dict[str, Any]) -> None:
        self.events.append(("add", self._key(obj)))

    def on_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        self.events.append(("update", self._key(new)))

    def on_delete(self, obj: dict[str, Any]) -> None:
        self.events.append(("delete", self._key(obj)))

    def handlers(self) -> dict[str, Any]:
        return {"on_add": self.on_add, "on_update": self.on_update, "on_delete": self.on_delete}
