"""`svcnet up`'s cluster DNS stage against a real API server: installs kubeadm's CoreDNS addon once, and
again finds it, leaving a user's edited Corefile as it is."""
from __future__ import annotations

import asyncio
import json

from svcnet.client.config import load_kubeconfig
from svcnet.client.rest import ApiClient
from svcnet.cluster.addons import ClusterDnsAddon, kubeadm_corefile
from tests.integration.apiserver_harness import ApiServerProcess


def run_addon(server: ApiServerProcess) -> list[str]:
    lines: list[str] = []
    addon = ClusterDnsAddon(lambda: ApiClient(load_kubeconfig(str(server.kubeconfig))),
                            timeout=0.1, progress=lines.append)  # no nodes here: never ready, only a warning
    asyncio.run(addon.start())
    return lines


def test_kube_dns_is_created_once_and_found_again_on_the_next_up(apiserver: ApiServerProcess) -> None:
    first = run_addon(apiserver)
    assert "svcnet: created service kube-system/kube-dns" in first
    assert "svcnet: created deployment kube-system/coredns" in first
    svc = apiserver.kubectl_json("-n", "kube-system", "get", "svc", "kube-dns")
    assert svc["spec"]["clusterIP"] == "10.96.0.10"
    for created in ("serviceaccount kube-system/coredns", "clusterrole system:coredns",
                    "clusterrolebinding system:coredns", "configmap kube-system/coredns"):
        assert f"svcnet: created {created}" in first
    cm = apiserver.kubectl_json("-n", "kube-system", "get", "cm", "coredns")
    assert cm["data"]["Corefile"] == kubeadm_corefile()
    edited = kubeadm_corefile().replace("    loadbalance\n", "    loadbalance\n    log\n")
    cm["data"]["Corefile"] = edited  # a user's edit
    apiserver.kubectl("replace", "-f", "-", input=json.dumps(cm))

    # A second `svcnet up` on the same data dir: the Service (and its taken ClusterIP) is there already.
    second = run_addon(apiserver)
    assert not any(line.startswith("svcnet: created") for line in second), second
    again = apiserver.kubectl_json("-n", "kube-system", "get", "svc", "kube-dns")
    assert again["metadata"]["uid"] == svc["metadata"]["uid"]
    assert apiserver.kubectl_json("-n", "kube-system", "get", "cm", "coredns")["data"]["Corefile"] == edited
