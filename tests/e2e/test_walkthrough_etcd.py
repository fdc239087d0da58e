"""`svcnet up --storage etcd`: the seed walkthrough, unchanged, on a cluster whose store is a local etcd.

One two-node cluster for the module (iptables mode, as the seed's), its nodes' resolv.conf naming
the test upstream resolver in the client namespace as tests/e2e/test_walkthrough.py does. `up` runs
etcd as a supervised component (DATA_DIR/etcd; the member in its own namespace on the LAN); etcdctl
reads the Service where kube-apiserver would have written it; a killed etcd is restarted and the API
carries on; `down` stops it.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator

import pytest

from svcnet.cluster.etcd import etcd_dir, pid_path
from svcnet.kernel.process import process_id
from tests.integration.cluster_fixture import SvcnetCluster, cluster_with_upstream_resolver
from tests.waiting import wait_for

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("ip", "nsenter", "kubectl", "curl", "nslookup",
                                                           "dig", "conntrack", "ping")),
    reason="needs root (network namespaces), ip, nsenter, kubectl, curl, nslookup, dig, conntrack and ping")



@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SvcnetCluster]:
    assert shutil.which("etcd") and shutil.which("etcdctl"), \
        "etcd and etcdctl missing: install Debian's etcd-server and etcd-client (scripts/bootstrap.sh)"
    etcd_pids: list[int] = []
    with cluster_with_upstream_resolver(tmp_path_factory.mktemp("walkthrough-etcd"), ("--storage", "etcd")) as c:
        yield c
        etcd_pids.append(int(pid_path(c.data_dir).read_text()))
    # `svcnet down` (running_cluster's) stopped the etcd it ran, and removed its pid file.
    assert etcd_pids and process_id(etcd_pids[0]) is None
    assert not pid_path(c.data_dir).exists()


def etcdctl(cluster: SvcnetCluster, *args: str) -> str:
    socket = etcd_dir(cluster.data_dir).absolute() / "svcnet.client:0"
    return subprocess.run(["etcdctl", f"--endpoints=unix://{socket}", *args], capture_output=True, text=True,
                          env={**os.environ, "ETCDCTL_API": "3"}, timeout=30, check=True).stdout


def test_etcd_runs_under_the_data_dir_in_its_namespace_with_clients_on_unix_sockets_only(
    cluster: SvcnetCluster
) -> None:
    assert etcd_dir(cluster.data_dir).stat().st_mode & 0o777 == 0o700
    pid = int(pid_path(cluster.data_dir).read_text())
    assert process_id(pid) is not None
    # No TCP listener here: a loopback port would let any local user at the cluster's state.
    listening = subprocess.run(["ss", "-Htlnp"], capture_output=True, text=True, check=True).stdout
    assert f"pid={pid}," not in listening
    # In its own namespace on the LAN, only the peer port (mutual TLS), no client port.
    member_ns = f"svcnet-{cluster.cluster_id}-etcd-1"
    assert os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(f"/run/netns/{member_ns}").st_ino
    inside = cluster.in_namespace(member_ns, "ss", "-Htlnp").stdout
    assert [line.split()[3] for line in inside.splitlines() if f"pid={pid}," in line] == ["192.168.0.91:2380"]


def test_the_seed_walkthrough_passes_unchanged(cluster: SvcnetCluster) -> None:
    result = cluster.svcnet("walkthrough", "--data-dir", str(cluster.data_dir), timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    for expected in ("$ kubectl get pod -owide", "$ kubectl get ep hostnames", "$ kubectl get svc hostnames",
                     "Chain KUBE-SVC-ODX2UBAZM7RQWOIU", "statistic mode random probability 0.33333333349",
                     "service/hostnames-nodeport exposed", "statefulset.apps/hostnames",
                     "nameserver 10.96.0.10", "Address: 10.96.0.1", "NXDOMAIN"):
        assert expected in result.stdout, expected


def test_etcdctl_shows_the_service_under_kube_apiservers_key(cluster: SvcnetCluster) -> None:
    out = etcdctl(cluster, "get", "/registry/services/specs/default/hostnames")
    key, value = out.splitlines()[:2]
    assert key == "/registry/services/specs/default/hostnames"
    service = json.loads(value)
    assert (service["kind"], service["metadata"]["name"]) == ("Service", "hostnames")
    assert service["spec"]["selector"] == {"app": "hostnames"}


def test_a_killed_etcd_is_restarted_and_the_api_carries_on(cluster: SvcnetCluster) -> None:
    before = int(pid_path(cluster.data_dir).read_text())
    os.kill(before, signal.SIGKILL)
    wait_for(lambda: int(pid_path(cluster.data_dir).read_text()) != before, timeout=60, what="etcd restarted")
    wait_for(lambda: cluster.kubectl("get", "svc", "hostnames", check=False).returncode == 0, timeout=60,
             what="the API reading from the restarted etcd")
    cluster.kubectl("create", "configmap", "after-etcd-restart", "--from-literal=k=v")
    assert "after-etcd-restart" in etcdctl(cluster, "get", "--prefix", "--keys-only", "/registry/configmaps/default/")
