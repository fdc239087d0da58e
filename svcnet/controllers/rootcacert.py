"""The root-ca-cert-publisher (kube-controller-manager's rootcacertpublisher): every namespace has the
ConfigMap `kube-root-ca.crt` whose `ca.crt` is the CA that signs the API server's serving certificate,
so pods can verify https://kubernetes.default.svc (the ServiceAccount admission plugin projects it
into every pod's /var/run/secrets/kubernetes.io/serviceaccount/ca.crt).

A namespace is looked at when it is added or updated, and when its ConfigMap is changed or deleted
(an edit is put back). The CA is the one this controller's own client trusts (upstream: the
controller manager's --root-ca-file, the same cluster CA): `svcnet up` names the cluster's
pki/ca.crt, read when needed (the API server writes it as it starts); a controller manager
run against another cluster uses the CA of its kubeconfig.
"""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from svcnet.api.errors import ApiError
from svcnet.api.objects import metadata_of, namespace_of
from svcnet.client.informer import split_key
from svcnet.controllers.base import NAMESPACES, Api, Controller, InformerFactory, Obj, resource
from svcnet.controllers.serviceaccounts import _namespace_terminating
from svcnet.core.volumes import ROOT_CA_CONFIGMAP, ROOT_CA_KEY

log = logging.getLogger("svcnet.controllers.rootcacert")

CONFIGMAPS = resource("", "configmaps")
DESCRIPTION = ("Contains a CA bundle that can be used to verify the kube-apiserver when using internal "
               "endpoints such as the internal service IP or kubernetes.default.svc. No other usage is "
               "guaranteed across distributions of Kubernetes clusters.")


def wanted_configmap(ca_pem: str) -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": ROOT_CA_CONFIGMAP, "annotations": {"kubernetes.io/description": DESCRIPTION}},
            "data": {ROOT_CA_KEY: ca_pem}}


class RootCACertPublisher(Controller):
    name = "root-ca-cert-publisher"
    workers = 1

    def __init__(self, api: Api, informers: InformerFactory, *, root_ca: bytes | None = None,
                 root_ca_file: Path | None = None, clock: Callable[[], dt.datetime] | None = None) -> None:
        super().__init__(api, informers, clock=clock)
        self.root_ca = root_ca
        self.root_ca_file = root_ca_file

    def setup(self) -> None:
        self.namespaces = self.informers.informer(NAMESPACES)
        self.configmaps = self.informers.informer(CONFIGMAPS)
        self.namespaces.add_handler(on_add=self._namespace_changed,
                                    on_update=lambda old, new: self._namespace_changed(new))
        self.configmaps.add_handler(on_update=lambda old, new: self._configmap_changed(new),
                                    on_delete=self._configmap_changed)

    def _ca_pem(self) -> str | None:
        data = self.root_ca
        if data is None and self.root_ca_file is not None:
            try:
                data = self.root_ca_file.read_bytes()
            except OSError as exc:
                log.warning("cannot read the root CA %s: %s", self.root_ca_file, exc.strerror)
        if data is None:
            config: Any = getattr(self.api, "config", None)
            data = getattr(config, "ca_data", None)
        return data.decode() if data else None

    def _namespace_changed(self, namespace: Obj) -> None:
        self.queue.add(str(metadata_of(namespace).get("name") or ""))

    def _configmap_changed(self, configmap: Obj) -> None:
        if metadata_of(configmap).get("name") == ROOT_CA_CONFIGMAP:
            self.queue.add(namespace_of(configmap) or "default")

    async def reconcile(self, key: str) -> float | None:
        _, name = split_key(key)
        namespace = self.namespaces.get(None, name)
        ca_pem = self._ca_pem()
        if namespace is None or (namespace.get("status") or {}).get("phase") == "Terminating":
            return None
        if ca_pem is None:
            log.warning("no cluster CA known to this client: %s gets no %s", name, ROOT_CA_CONFIGMAP)
            return None
        body = wanted_configmap(ca_pem)
        current = self.configmaps.get(name, ROOT_CA_CONFIGMAP)
        try:
            if current is None:
                await self.api.create(CONFIGMAPS, name, body)
            elif (current.get("data") or {}) != body["data"] or current.get("binaryData"):
                updated = {**current, "data": body["data"]}
                updated.pop("binaryData", None)
                annotations = dict(metadata_of(current).get("annotations") or {})
                annotations.update(body["metadata"]["annotations"])
                updated["metadata"] = {**metadata_of(current), "annotations": annotations}
                await self.api.update(CONFIGMAPS, name, updated)
        except ApiError as exc:
            if exc.code == 409:
                return 0.1  # the cache was behind: look again once it caught up
            if not (exc.code == 404 or _namespace_terminating(exc)):
                raise
        return None
