"""A whole svcnet cluster for integration tests: `svcnet up --detach --nodes N`, then `svcnet down`.

Each cluster has its own data dir, API port and cluster id (written to
DATA_DIR/cluster-id before `up`, so the test knows it even if `up` fails).
Teardown runs `svcnet down`, then a safety net that removes whatever is
left: namespaces with the cluster's prefix, and processes whose command line
names the data dir (agents, `up`, container shims), ended by pid.
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from svcnet.cluster.topology import plan_topology
from tests.integration.apiserver_harness import KUBECTL, REPO, free_port
from tests.waiting import wait_for

RUN_TOKEN = secrets.token_hex(2)  # one per test session: ids of this run share it


def new_cluster_id() -> str:
    return f"a{RUN_TOKEN}{secrets.token_hex(2)}"


@dataclass
class SvcnetCluster:
    data_dir: Path
    port: int
    home: Path
    cluster_id: str

    # ---- commands
    def svcnet(self, *args: str, timeout: float = 120, input: str | None = None,
               check: bool = False) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, "-m", "svcnet", *args], capture_output=True, text=True,
                                cwd=REPO, timeout=timeout, input=input,
                                stdin=None if input is not None else subprocess.DEVNULL)
        if check and result.returncode != 0:
            raise AssertionError(f"svcnet {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n"
                                 f"{result.stderr}\n{self.logs()}")
        return result

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
        env.update(HOME=str(self.home), KUBECONFIG=str(self.data_dir / "kubeconfig"))
        result = subprocess.run([KUBECTL, *args], input=input, capture_output=True, text=True, env=env,
                                timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def kubectl_json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    def exec(self, pod: str, *command: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.svcnet("exec", "--data-dir", str(self.data_dir), pod, "--", *command, input=input, timeout=60)

    def in_namespace(self, ns: str, *command: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", ns, *command], capture_output=True, text=True,
                              timeout=timeout)

    # ---- names and state
    def node_namespace(self, node: str) -> str:
        return f"svcnet-{self.cluster_id}-{node}"

    @property
    def client_namespace(self) -> str:
        return f"svcnet-{self.cluster_id}-client"

    def namespaces(self) -> list[str]:
        out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        prefix = f"svcnet-{self.cluster_id}-"
        return [line.split()[0] for line in out.splitlines() if line.startswith(prefix)]

    def agent_pid(self, node: str) -> int | None:
        try:
            return int((self.data_dir / "nodes" / node / "agent.pid").read_text().strip() or 0) or None
        except (FileNotFoundError, ValueError):
            return None

    def pod(self, name: str) -> dict[str, Any]:
        return self.kubectl_json("get", "pod", name)

    def pods(self, selector: str) -> list[dict[str, Any]]:
        return self.kubectl_json("get", "pods", "-l", selector)["items"]

    def wait_pod(self, name: str, predicate: Any, timeout: float = 60, what: str = "") -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            pod = self.pod(name)
            return pod if predicate(pod) else None
        return wait_for(check, timeout=timeout, interval=0.2, what=what or f"pod {name}")

    def logs(self) -> str:
        parts = []
        for path in [self.data_dir / "svcnet.log", *sorted(self.data_dir.glob("nodes/*/agent.log"))]:
            with contextlib.suppress(OSError):
                parts.append(f"--- {path}\n{path.read_text()[-3000:]}")
        return "\n".join(parts)

    # ---- lifecycle
    def up(self, nodes: int = 2, *extra: str) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "cluster-id").write_text(self.cluster_id + "\n")
        self.svcnet("up", "--detach", "--nodes", str(nodes), "--data-dir", str(self.data_dir), "--port",
                    str(self.port), *extra, check=True, timeout=180)

    def down(self) -> subprocess.CompletedProcess[str]:
        return self.svcnet("down", "--data-dir", str(self.data_dir), timeout=120)

    def processes(self) -> list[int]:
        """Live processes whose command line names this cluster's data dir (or its pods' pause title)."""
        marker = str(self.data_dir).encode()
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if stat[stat.rindex(")") + 2] == "Z":
                continue
            if marker in cmdline:
                found.append(int(entry))
        return found

    def safety_net(self) -> None:
        """Whatever `down` left: kill the cluster's processes by pid, delete its namespaces."""
        for pid in self.processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if (self.data_dir / "cluster.json").exists():
            import asyncio

            from svcnet.cluster.lifecycle import teardown
            with contextlib.suppress(Exception):
                asyncio.run(teardown(self.data_dir))
        for ns in self.namespaces():
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True)


@contextlib.contextmanager
def running_cluster(base: Path, nodes: int = 2, up_args: tuple[str, ...] = ()) -> Iterator[SvcnetCluster]:
    """A cluster that is always brought down (and swept) afterwards, pass or fail."""
    home = base / "home"
    home.mkdir(parents=True, exist_ok=True)
    cluster = SvcnetCluster(base / "data", free_port(), home, new_cluster_id())
    try:
        cluster.up(nodes, *up_args)
        yield cluster
    finally:
        try:
            cluster.down()
        finally:
            cluster.safety_net()


@contextlib.contextmanager
def upstream_resolver(cluster: SvcnetCluster, port: int = 53, answer: str | None = None) -> Iterator[None]:
    """The test upstream resolver (tests/integration/dns/upstream.py) in the client namespace, on port of all its
    addresses, answering with `answer` when given, ready while the block runs: a machine outside the cluster."""
    argv = ["ip", "netns", "exec", cluster.client_namespace, sys.executable, "-m", "tests.integration.dns.upstream",
            str(port), "0.0.0.0", *([answer] if answer else [])]
    upstream = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)
    try:
        assert upstream.stdout is not None and upstream.stdout.readline().strip() == "ready"
        yield
    finally:
        upstream.terminate()
        upstream.wait(timeout=10)


@contextlib.contextmanager
def cluster_with_upstream_resolver(base: Path, up_args: tuple[str, ...] = ()) -> Iterator[SvcnetCluster]:
    """A two-node running_cluster whose nodes' resolv.conf names the upstream resolver in the client namespace
    (which answers NAME.example.org with 192.0.2.1), running as long as the cluster."""
    resolv_conf = base / "node-resolv.conf"
    resolv_conf.write_text(f"nameserver {plan_topology('x', 2).client.ipv4}\n")  # the client's, whatever the id
    with running_cluster(base, up_args=(*up_args, "--resolv-conf", str(resolv_conf))) as cluster, \
            upstream_resolver(cluster):
        yield cluster


def is_running_ready(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    return status.get("phase") == "Running" and bool(statuses) and all(s.get("ready") for s in statuses)


def waiting_reason(pod: dict[str, Any], container: int = 0) -> str:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    if len(statuses) <= container:
        return ""
    return ((statuses[container].get("state") or {}).get("waiting") or {}).get("reason", "")


def restart_count(pod: dict[str, Any]) -> int:
    return sum(s.get("restartCount", 0) for s in (pod.get("status") or {}).get("containerStatuses") or [])

