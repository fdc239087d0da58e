"""Cluster DNS as `svcnet up` installs it: kubeadm's CoreDNS addon, run by `svcnet dns`.

As kubeadm's CoreDNS addon (cmd/kubeadm/app/phases/addons/dns): the `coredns`
ServiceAccount in kube-system, the ClusterRole `system:coredns` (list/watch of
what the kubernetes plugin reads) bound to it, the `coredns` ConfigMap holding
kubeadm's default Corefile, a Deployment of two replicas (labelled
k8s-app=kube-dns) running as that ServiceAccount, and the kube-dns Service in
front (53/UDP, 53/TCP, 9153/TCP metrics), so pods reach it through the proxy
exactly as in the seed. The pods run the `svcnet/dns` image, which is `svcnet
dns`, configured from the ConfigMap as kubeadm's pods are: mounted at
/etc/coredns (a configMap volume, which the kubelet rewrites when the ConfigMap
changes) and re-read at every `reload` check, so `kubectl edit cm coredns -n
kube-system` takes effect as it does with CoreDNS; they reach the API as the
coredns ServiceAccount, with the token mounted in them.

Objects that exist already are left as they are: a user's edited Corefile
survives a second `svcnet up` on the same data dir.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from svcnet.api.errors import ApiError
from svcnet.api.objects import status_of
from svcnet.api.resources import lookup

log = logging.getLogger("svcnet.cluster.addons")

Obj = dict[str, Any]
NAMESPACE = "kube-system"
LABELS = {"k8s-app": "kube-dns"}
METRICS_PORT = 9153
HEALTH_PORT = 8080  # the health plugin's default address, :8080, as kubeadm's liveness probe expects
READY_PORT = 8181  # the ready plugin's default, :8181
SERVICE_ACCOUNT = "coredns"
CONFIGMAP = "coredns"
ROLE = "system:coredns"


def kubeadm_corefile(cluster_domain: str = "cluster.local") -> str:
    """kubeadm's default Corefile (v1.32/v1.33) for cluster_domain: the same plugins, options and layout."""
    return (
        ".:53 {\n"
        "    errors\n"
        "    health {\n"
        "       lameduck 5s\n"
        "    }\n"
        "    ready\n"
        f"    kubernetes {cluster_domain} in-addr.arpa ip6.arpa {{\n"
        "       pods insecure\n"
        "       fallthrough in-addr.arpa ip6.arpa\n"
        "       ttl 30\n"
        "    }\n"
        "    prometheus :9153\n"
        "    forward . /etc/resolv.conf {\n"
        "       max_concurrent 1000\n"
        "    }\n"
        "    cache 30 {\n"
        f"       disable success {cluster_domain}\n"
        f"       disable denial {cluster_domain}\n"
        "    }\n"
        "    loop\n"
        "    reload\n"
        "    loadbalance\n"
        "}\n"
    )


def rbac_objects() -> list[Obj]:
    """The ServiceAccount, ClusterRole and ClusterRoleBinding kubeadm gives CoreDNS (pure)."""
    account = {"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": {"name": SERVICE_ACCOUNT, "namespace": NAMESPACE}}
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": ROLE},
        "rules": [
            {"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"],
             "verbs": ["list", "watch"]},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": ROLE},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": ROLE},
        "subjects": [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": NAMESPACE}],
    }
    return [account, role, binding]


def corefile_configmap(cluster_domain: str = "cluster.local") -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": CONFIGMAP, "namespace": NAMESPACE},
            "data": {"Corefile": kubeadm_corefile(cluster_domain)}}


def kube_dns_objects(cluster_ip: str = "10.96.0.10", replicas: int = 2,
                     cluster_domain: str = "cluster.local") -> list[Obj]:
    """Everything kubeadm's CoreDNS addon creates, in the order it is created (pure): the identity
    and its permissions, the Corefile, then the Deployment that reads it and the Service in front."""
    service = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kube-dns", "namespace": NAMESPACE,
                     "labels": {**LABELS, "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"},
                     "annotations": {"prometheus.io/port": str(METRICS_PORT), "prometheus.io/scrape": "true"}},
        "spec": {"clusterIP": cluster_ip, "selector": dict(LABELS), "ports": [
            {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
            {"name": "metrics", "port": METRICS_PORT, "protocol": "TCP", "targetPort": METRICS_PORT}]},
    }
    return [*rbac_objects(), corefile_configmap(cluster_domain), coredns_deployment(replicas), service]


COREFILE_DIR = "/etc/coredns"


def coredns_deployment(replicas: int = 2) -> Obj:
    """kubeadm's: the Corefile from the coredns ConfigMap mounted at /etc/coredns (the reload plugin
    re-reads it; kubelet's volume sync brings an edit there), the API reached as the coredns
    ServiceAccount through its mounted token (in-cluster config)."""
    args = ["--corefile", f"{COREFILE_DIR}/Corefile", "--workers", "1"]
    container = {
        "name": "coredns",
        "image": "svcnet/dns",
        "args": args,
        "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
        "ports": [{"name": "dns", "containerPort": 53, "protocol": "UDP"},
                  {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
                  {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
                  {"name": "liveness-probe", "containerPort": HEALTH_PORT, "protocol": "TCP"},
                  {"name": "readiness-probe", "containerPort": READY_PORT, "protocol": "TCP"}],
        # kubeadm's probes; readiness is checked every 2 s (kubeadm: the default 10 s) so that
        # `svcnet up` returns as soon as DNS answers.
        "volumeMounts": [{"name": "config-volume", "mountPath": COREFILE_DIR, "readOnly": True}],
        "readinessProbe": {"httpGet": {"path": "/ready", "port": "readiness-probe", "scheme": "HTTP"},
                           "periodSeconds": 2},
        "livenessProbe": {"httpGet": {"path": "/health", "port": "liveness-probe", "scheme": "HTTP"},
                          "initialDelaySeconds": 60, "timeoutSeconds": 5, "successThreshold": 1,
                          "failureThreshold": 5},
    }
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "coredns", "namespace": NAMESPACE, "labels": dict(LABELS)},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": dict(LABELS)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": dict(LABELS)},
                "spec": {
                    "serviceAccountName": SERVICE_ACCOUNT,
                    # As CoreDNS: the node's resolvers, not itself, are its upstreams.
                    "dnsPolicy": "Default",
                    "containers": [container],
                    "volumes": [{"name": "config-volume", "configMap": {
                        "name": CONFIGMAP, "items": [{"key": "Corefile", "path": "Corefile"}]}}],
                },
            },
        },
    }


class ClusterDnsAddon:
    """A `svcnet up` stage: install kube-dns if missing, then wait (with progress) until it serves."""

    def __init__(self, api_factory: Callable[[], Any], timeout: float = 90.0,
                 progress: Callable[[str], None] = print, cluster_domain: str = "cluster.local") -> None:
        self.api_factory = api_factory
        self.cluster_domain = cluster_domain
        self.timeout = timeout
        self.progress = progress

    async def start(self) -> None:
        api = self.api_factory()
        await api.open()
        try:
            for obj in kube_dns_objects(cluster_domain=self.cluster_domain):
                await self._create_if_missing(api, obj)
            await self._wait_ready(api)
        finally:
            await api.close()

    async def _create_if_missing(self, api: Any, obj: Obj) -> None:
        """Create obj unless an object of that name exists (never overwritten: a user's edit stays)."""
        res = lookup(*_group_version(obj["apiVersion"]), obj["kind"].lower() + "s")
        assert res is not None
        name = obj["metadata"]["name"]
        namespace = NAMESPACE if res.namespaced else None
        shown = f"{NAMESPACE}/{name}" if res.namespaced else name
        # Look first: creating the Service again would fail on its taken ClusterIP (as
        # upstream's does) before the name conflict could say it already exists.
        try:
            await api.get(res, namespace, name)
            return
        except ApiError as exc:
            if exc.code != 404:
                raise
        try:
            await api.create(res, namespace, obj, field_manager="svcnet-up")
            self.progress(f"svcnet: created {obj['kind'].lower()} {shown}")
        except ApiError as exc:
            if exc.code != 409:
                raise

    async def _wait_ready(self, api: Any) -> None:
        self.progress("svcnet: waiting for cluster DNS (kube-system/kube-dns at 10.96.0.10)")
        deployments = lookup("apps", "v1", "deployments")
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            dep = await api.get(deployments, NAMESPACE, "coredns")
            ready = status_of(dep).get("readyReplicas") or 0
            if ready >= 1:
                self.progress(f"svcnet:   cluster DNS is ready ({ready} pod(s))")
                return
            await asyncio.sleep(0.5)
        self.progress(f"svcnet: WARNING: cluster DNS not ready after {self.timeout:g}s; see "
                      f"kubectl -n kube-system get pods -l k8s-app=kube-dns")

    async def stop(self) -> None:
        return None


def _group_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version
