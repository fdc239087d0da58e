"""Cluster DNS as `svcnet up` installs it: the kube-dns Service at 10.96.0.10 and its pods.

As kubeadm installs CoreDNS: a Deployment of two replicas in kube-system
(labelled k8s-app=kube-dns) behind the kube-dns Service, ports 53/UDP, 53/TCP
and 9153/TCP (metrics), so pods reach it through the proxy exactly as in the
seed. The pods run the `svcnet/dns` image, which is `svcnet dns`.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from svcnet.api.errors import ApiError
from svcnet.api.objects import status_of
from svcnet.api.resources import lookup

log = logging.getLogger("svcnet.cluster.addons")

Obj = dict[str, Any]
NAMESPACE = "kube-system"
LABELS = {"k8s-app": "kube-dns"}
METRICS_PORT = 9153


def kube_dns_objects(data_dir: Path, cluster_ip: str = "10.96.0.10", replicas: int = 2) -> list[Obj]:
    """The Service and Deployment, as plain manifests (pure)."""
    service = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kube-dns", "namespace": NAMESPACE,
                     "labels": {**LABELS, "kubernetes.io/name": "CoreDNS"}},
        "spec": {"clusterIP": cluster_ip, "selector": dict(LABELS), "ports": [
            {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
            {"name": "metrics", "port": METRICS_PORT, "protocol": "TCP", "targetPort": METRICS_PORT}]},
    }
    probe_port = {"port": METRICS_PORT, "scheme": "HTTP"}
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "coredns", "namespace": NAMESPACE, "labels": dict(LABELS)},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": dict(LABELS)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": dict(LABELS)},
                "spec": {
                    # As CoreDNS: the node's resolvers, not itself, are its upstreams.
                    "dnsPolicy": "Default",
                    "containers": [{
                        "name": "coredns",
                        "image": "svcnet/dns",
                        "args": ["--listen", "0.0.0.0:53", "--metrics", f"0.0.0.0:{METRICS_PORT}",
                                 "--data-dir", str(data_dir), "--workers", "1"],
                        "env": [{"name": "POD_IP",
                                 "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
                        "ports": [{"name": "dns", "containerPort": 53, "protocol": "UDP"},
                                  {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
                                  {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}],
                        "readinessProbe": {"httpGet": {"path": "/ready", **probe_port},
                                           "periodSeconds": 2},
                        "livenessProbe": {"httpGet": {"path": "/health", **probe_port},
                                          "initialDelaySeconds": 10, "periodSeconds": 10,
                                          "failureThreshold": 5},
                    }],
                },
            },
        },
    }
    return [service, deployment]


class ClusterDnsAddon:
    """A `svcnet up` stage: install kube-dns if missing, then wait (with progress) until it serves."""

    def __init__(self, api_factory: Callable[[], Any], data_dir: Path, timeout: float = 90.0,
                 progress: Callable[[str], None] = print) -> None:
        self.api_factory = api_factory
        self.data_dir = data_dir
        self.timeout = timeout
        self.progress = progress

    async def start(self) -> None:
        api = self.api_factory()
        await api.open()
        try:
            for obj in kube_dns_objects(self.data_dir):
                res = lookup(*_group_version(obj["apiVersion"]), obj["kind"].lower() + "s")
                assert res is not None
                name = obj["metadata"]["name"]
                # Look first: creating the Service again would fail on its taken ClusterIP (as
                # upstream's does) before the name conflict could say it already exists.
                try:
                    await api.get(res, NAMESPACE, name)
                    continue
                except ApiError as exc:
                    if exc.code != 404:
                        raise
                try:
                    await api.create(res, NAMESPACE, obj, field_manager="svcnet-up")
                    self.progress(f"svcnet: created {obj['kind'].lower()} {NAMESPACE}/{name}")
                except ApiError as exc:
                    if exc.code != 409:
                        raise
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
        finally:
            await api.close()

    async def stop(self) -> None:
        return None


def _group_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version
