"""The node components `svcnet up` runs as child processes: per node, one `svcnet agent` and one
`svcnet proxy run`, each restarted after a back-off when it dies; and ending them, even when
the `up` that started them is gone (`svcnet down` after a crash).
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from pathlib import Path

from svcnet.agent.daemon import read_node_resolv_conf
from svcnet.agent.kubelet import AgentConfig
from svcnet.agent.nodeplan import NodePlan
from svcnet.cluster.identities import LB_SPEAKER, OVERLAY, kubeconfig_path, kubelet_kubeconfig
from svcnet.cluster.spec import (
    ClusterSpec,
    agent_pid_path,
    lease_path,
    load_cluster_spec,
    node_dir,
    proxy_pid_path,
    role_log_path,
    runtime_root,
)
from svcnet.cluster.supervised import Backoff, SupervisedProcess, progress, stop_all
from svcnet.kernel import process

# 1 s, doubling to 30 s; an agent that ran 60 s starts its back-off over.
AGENT_BACKOFF = Backoff(initial=1.0, maximum=30.0, healthy_after=60.0)
PROXY_MIN_SYNC_PERIOD = "100ms"


class AgentSupervisor:
    """Per node, one `svcnet agent` and one `svcnet proxy run` process, each restarted after a
    back-off when it dies (a restarted agent adopts its pods; a restarted proxy resyncs)."""

    ROLES = ("agent", "proxy")

    def __init__(self, data_dir: Path, spec: ClusterSpec, *, python: str = sys.executable,
                 only: tuple[str, ...] = ()) -> None:
        """only: run these nodes of the spec and no other (a node joined to a cluster elsewhere)."""
        self.data_dir = data_dir
        self.spec = spec
        self.only = only
        self.python = python
        self.children: dict[tuple[str, str], SupervisedProcess] = {}

    def argv(self, role: str, node: str) -> list[str]:
        base = [self.python, "-m", "svcnet"]
        if role == "agent":
            # Each agent authenticates as its node (kubelet.conf: system:node:<name> in system:nodes).
            argv = [*base, "agent", "--node", node, "--data-dir", str(self.data_dir),
                    "--kubeconfig", str(kubelet_kubeconfig(self.data_dir, node))]
            # The LoadBalancer speaker runs in the agent, as its own identity, on the nodes that share the
            # pool's LAN (host 1's): an ARP answer from another host's LAN would reach no client.
            if self.spec.lb_pool and self.spec.plan().node(node).host == 1:
                argv += ["--lb-speaker-kubeconfig", str(kubeconfig_path(self.data_dir, LB_SPEAKER))]
            if self.spec.hosts > 1:  # the VXLAN overlay runs in the agent too, as its own identity
                argv += ["--overlay-kubeconfig", str(kubeconfig_path(self.data_dir, OVERLAY))]
            return argv
        plan = self.spec.plan().node(node)
        # kube-proxy's default minimum sync period is 1 s, for big clusters; a small one can afford
        # less, so that a change lands in the rules within a second even right after another sync.
        # Every proxy authenticates as system:kube-proxy (the kubeconfig lies under the data dir).
        return [*base, "proxy", "run", "--node", node, "--netns", plan.namespace,
                "--kubeconfig", str(kubeconfig_path(self.data_dir, "kube-proxy")),
                "--cluster-cidr", plan_cluster_cidrs(self.spec),
                "--min-sync-period", PROXY_MIN_SYNC_PERIOD, "--proxy-mode", self.spec.proxy_mode]

    async def start(self) -> None:
        for node in self.spec.plan().nodes:
            if self.only and node.name not in self.only:
                continue
            node_dir(self.data_dir, node.name).mkdir(parents=True, exist_ok=True)
            for role in self.ROLES:
                child = self.children[role, node.name] = self._child(role, node.name)
                await child.spawn()
                progress(f"started the {role} for {node.name} (pid {child.process.pid}, log {child.log_path})")
                child.supervise()

    def _child(self, role: str, node: str) -> SupervisedProcess:
        # An agent keeps its own (locked) pid file; a proxy's is written for it.
        return SupervisedProcess(f"the {role} for {node}", self.argv(role, node),
                                 role_log_path(self.data_dir, node, role), backoff=AGENT_BACKOFF,
                                 pid_path=proxy_pid_path(self.data_dir, node) if role == "proxy" else None)

    async def stop(self) -> None:
        await stop_all(list(self.children.values()))
        progress("stopped the agents and proxies")


class NodeNotFound(LookupError):
    """`svcnet agent --node N` names no node of the data dir's cluster (or there is no cluster)."""


def agent_settings(data_dir: Path, node_name: str, *, cluster_dns: tuple[str, ...], cluster_domain: str,
                   resolv_conf: str = "") -> tuple[NodePlan, AgentConfig, Path]:
    """What `svcnet agent --node N --data-dir D` runs as (the node's plan, its config, its pid file):
    the other end of `AgentSupervisor.argv`."""
    spec = load_cluster_spec(data_dir)
    if spec is None:
        raise NodeNotFound(f"no cluster in {data_dir} ({data_dir / 'cluster.json'} is missing): "
                           f"create it with svcnet up")
    try:
        node = spec.plan().node(node_name)
    except KeyError as exc:
        raise NodeNotFound(exc.args[0]) from None
    config = AgentConfig(node_name=node.name, runtime_root=runtime_root(data_dir, node.name),
                         lease_path=lease_path(data_dir, node.name), cluster_dns=cluster_dns,
                         cluster_domain=cluster_domain,
                         node_resolv_conf=read_node_resolv_conf(resolv_conf or spec.resolv_conf))
    return node, config, agent_pid_path(data_dir, node.name)


def plan_cluster_cidrs(spec: ClusterSpec) -> str:
    plan = spec.plan()
    return ",".join(c for c in (plan.pod_cidr_v4, plan.pod_cidr_v6) if c)


def _is_agent_process(pid: int, data_dir: Path, role: bytes = b"agent") -> bool:
    """Whether pid runs `svcnet <role>` for this data dir: an argument is the data dir or a file
    under it (a proxy names only its kubeconfig there)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    directory = str(data_dir).encode()
    return role in cmdline and any(arg == directory or arg.startswith(directory + b"/") for arg in cmdline)


def stop_agent_processes(data_dir: Path, timeout: float = 15.0) -> list[int]:
    """End agents that pid files name (checked to be this data dir's agents); SIGKILL after timeout."""
    found: list[tuple[int, bytes]] = []
    nodes = data_dir / "nodes"
    for pid_file in sorted(nodes.glob("*/agent.pid")) if nodes.is_dir() else []:
        pid = process.read_pid(pid_file)
        if pid and process.is_locked(pid_file) and _is_agent_process(pid, data_dir):
            found.append((pid, b"agent"))
    for pid_file in sorted(nodes.glob("*/proxy.pid")) if nodes.is_dir() else []:
        pid = process.read_pid(pid_file)
        if pid and _is_agent_process(pid, data_dir, b"proxy"):  # the cmdline names this data dir
            found.append((pid, b"proxy"))
        pid_file.unlink(missing_ok=True)
    for pid, _ in found:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for pid, role in found:
        while _is_agent_process(pid, data_dir, role) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _is_agent_process(pid, data_dir, role):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return [pid for pid, _ in found]
