"""`svcnet up`'s cluster DNS stage against a real API server: installs kube-dns once, and again finds it."""
from __future__ import annotations

import asyncio

from svcnet.client.config import load_kubeconfig
from svcnet.client.rest import ApiClient
from svcnet.cluster.addons import ClusterDnsAddon
from tests.integration.apiserver_harness import ApiServerProcess


def run_addon(server: ApiServerProcess) -> list[str]:
    lines: list[str] = []
    addon = ClusterDnsAddon(lambda: ApiClient(load_kubeconfig(str(server.kubeconfig))), server.data_dir,
                            timeout=0.1, progress=lines.append)  # no nodes here: never ready, only a warning
    asyncio.run(addon.start())
    return lines


def test_kube_dns_is_created_once_and_found_again_on_the_next_up(apiserver: ApiServerProcess) -> None:
    first = run_addon(apiserver)
    assert "svcnet: created service kube-system/kube-dns" in first
    assert "svcnet: created deployment kube-system/coredns" in first
    svc = apiserver.kubectl_json("-n", "kube-system", "get", "svc", "kube-dns")
    assert svc["spec"]["clusterIP"] == "10.96.0.10"

    # A second `svcnet up` on the same data dir: the Service (and its taken ClusterIP) is there already.
    second = run_addon(apiserver)
    assert not any(line.startswith("svcnet: created") for line in second), second
    again = apiserver.kubectl_json("-n", "kube-system", "get", "svc", "kube-dns")
    assert again["metadata"]["uid"] == svc["metadata"]["uid"]
