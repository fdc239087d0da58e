"""What a `svcnet up` cluster is (`ClusterSpec`, kept in DATA_DIR/cluster.json) and where its files live.

Data dir layout (next to the API server's files):

    cluster.json                     cluster id, node count, CIDRs (agents read their node's plan here)
    cluster.ready                    written once every `up` stage is done
    nodes/<node>/agent.pid, agent.log, proxy.pid, proxy.log
    nodes/<node>/pods/...            the node's runtime state and container logs
    nodes/<node>/ipam/leases.json    the node's pod IP leases
"""
from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from svcnet.agent.nodeplan import check_cluster_id
from svcnet.cluster.topology import TopologyPlan, plan_topology

CLUSTER_FILE = "cluster.json"
READY_FILE = "cluster.ready"


@dataclass(frozen=True)
class ClusterSpec:
    cluster_id: str
    nodes: int
    node_cidr: str = "192.168.0.0/24"
    pod_cidr: str = "10.244.0.0/16"
    node_cidr_v6: str | None = "fd00:192:168::/64"
    pod_cidr_v6: str | None = "fd00:10:244::/56"
    resolv_conf: str | None = None  # kubelet's --resolv-conf for every node; None: the host's
    proxy_mode: str = "iptables"  # every node's kube-proxy --proxy-mode: iptables or nftables
    lb_pool: str | None = None  # LoadBalancer addresses (`svcnet up --lb-pool`); None: no LoadBalancer support
    zones: tuple[str, ...] = ()  # `svcnet up --zones`: the nodes' topology.kubernetes.io/zone, round-robin
    hosts: int = 1  # `svcnet up --hosts`: simulated hosts (L2 segments), nodes round-robin, VXLAN between them
    # (node index, host) of nodes not placed round-robin: a node joined onto a chosen host (`node join --host`)
    placements: tuple[tuple[int, int], ...] = ()
    etcd_members: int = 0  # `svcnet up --storage etcd`: the local etcd's members, each in a namespace on the LAN
    apiservers: int = 1  # `svcnet up --apiservers`: API servers 2..N each in a namespace on the LAN too

    def __post_init__(self) -> None:
        object.__setattr__(self, "zones", tuple(self.zones))  # a list when read back from cluster.json
        object.__setattr__(self, "placements", tuple((int(i), int(h)) for i, h in self.placements))

    def plan(self) -> TopologyPlan:
        return plan_topology(self.cluster_id, self.nodes, self.node_cidr, self.pod_cidr,
                             node_cidr_v6=self.node_cidr_v6, pod_cidr_v6=self.pod_cidr_v6, zones=self.zones,
                             hosts=self.hosts, placements=self.placements,
                             etcd_members=self.etcd_members, apiservers=self.apiservers)


# ---- the data dir


def node_dir(data_dir: Path, node: str) -> Path:
    return data_dir / "nodes" / node


def runtime_root(data_dir: Path, node: str) -> Path:
    return node_dir(data_dir, node)


def lease_path(data_dir: Path, node: str) -> Path:
    return node_dir(data_dir, node) / "ipam" / "leases.json"


def agent_pid_path(data_dir: Path, node: str) -> Path:
    return node_dir(data_dir, node) / "agent.pid"


def agent_log_path(data_dir: Path, node: str) -> Path:
    return node_dir(data_dir, node) / "agent.log"


def role_log_path(data_dir: Path, node: str, role: str) -> Path:
    return node_dir(data_dir, node) / f"{role}.log"


def proxy_pid_path(data_dir: Path, node: str) -> Path:
    """Written by `up` when it starts a node's proxy, so `down` finds it even after a dead `up`."""
    return node_dir(data_dir, node) / "proxy.pid"


def new_cluster_id() -> str:
    """8 characters, a letter first: short enough for interface names, unlikely to clash."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return secrets.choice(alphabet[:26]) + "".join(secrets.choice(alphabet) for _ in range(7))


def cluster_id_for(data_dir: Path) -> str:
    """The data dir's cluster id: from cluster.json, else the `cluster-id` file a caller may have written, else new."""
    spec = load_cluster_spec(data_dir)
    if spec is not None:
        return spec.cluster_id
    try:
        return check_cluster_id((data_dir / "cluster-id").read_text().strip())
    except FileNotFoundError:
        return new_cluster_id()


def save_cluster_spec(data_dir: Path, spec: ClusterSpec) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = data_dir / (CLUSTER_FILE + ".tmp")
    tmp.write_text(json.dumps(asdict(spec), indent=2) + "\n")
    os.replace(tmp, data_dir / CLUSTER_FILE)


def load_cluster_spec(data_dir: Path) -> ClusterSpec | None:
    try:
        data = json.loads((data_dir / CLUSTER_FILE).read_text())
    except FileNotFoundError:
        return None
    spec = ClusterSpec(**data)
    check_cluster_id(spec.cluster_id)
    return spec
