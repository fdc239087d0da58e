"""`svcnet status`: the cluster at a glance — components, nodes, pods, proxy sync age, DNS."""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import re
from pathlib import Path

from svcnet.api.errors import ApiError
from svcnet.api.objects import condition_of, name_of, spec_of, status_of
from svcnet.api.resources import lookup
from svcnet.client.config import unix_socket_config
from svcnet.client.rest import ApiClient
from svcnet.cluster.spec import agent_pid_path, load_cluster_spec, proxy_pid_path, role_log_path
from svcnet.config import DEFAULT_DATA_DIR
from svcnet.kernel import process

_SYNCED = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d+ .* synced ")


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def last_proxy_sync(log_path: Path, now: dt.datetime) -> str:
    """How long ago the proxy last applied rules, from its log ("never" if it has not)."""
    try:
        with open(log_path, "rb") as f:
            f.seek(max(0, log_path.stat().st_size - 65536))
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return "no log"
    for line in reversed(lines):
        match = _SYNCED.match(line)
        if match:
            when = dt.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S")
            return f"{max(0, int((now - when).total_seconds()))}s ago"
    return "never"


async def gather(data_dir: Path) -> list[str]:
    lines: list[str] = []
    pid = process.read_pid(data_dir / "svcnet.pid")
    running = process.is_locked(data_dir / "svcnet.pid")
    spec = load_cluster_spec(data_dir)
    state = f"running (pid {pid})" if running else "not running"
    lines.append(f"svcnet      {state}; data dir {data_dir}")
    if spec is not None:
        lines.append(f"cluster     {spec.cluster_id}, {spec.nodes} node(s)")
    if not running:
        return lines
    api = ApiClient(unix_socket_config(data_dir / "apiserver.sock"), component="status", timeout=5)
    await api.open()
    try:
        version = await api.request("GET", "/version")
        lines.append(f"apiserver   ready, Kubernetes {version.get('gitVersion')}")
        nodes = {name_of(n): n for n in (await api.list(lookup("", "v1", "nodes")))["items"]}
        pods = (await api.list(lookup("", "v1", "pods")))["items"]
        now = dt.datetime.now()
        for plan in spec.plan().nodes if spec else []:
            node = nodes.get(plan.name)
            ready = "NotRegistered"
            if node is not None:
                cond = condition_of(node, "Ready") or {}
                ready = {"True": "Ready", "False": "NotReady"}.get(cond.get("status"), "Unknown")
            on_node = [p for p in pods if spec_of(p).get("nodeName") == plan.name]
            running_pods = sum(1 for p in on_node if status_of(p).get("phase") == "Running")
            agent = process.read_pid(agent_pid_path(data_dir, plan.name))
            proxy = process.read_pid(proxy_pid_path(data_dir, plan.name))
            sync = last_proxy_sync(role_log_path(data_dir, plan.name, "proxy"), now)
            lines.append(
                f"{plan.name:<11} {ready:<9} {plan.ipv4:<15} pods {running_pods}/{len(on_node)} running; "
                f"agent {'up' if _alive(agent) else 'DOWN'}, proxy {'up' if _alive(proxy) else 'DOWN'} "
                f"(last sync {sync})")
        try:
            dns = await api.get(lookup("apps", "v1", "deployments"), "kube-system", "coredns")
            ready_replicas = status_of(dns).get("readyReplicas") or 0
            lines.append(f"dns         kube-system/kube-dns 10.96.0.10: {ready_replicas}/"
                         f"{spec_of(dns).get('replicas', 0)} ready")
        except ApiError as exc:
            lines.append(f"dns         not installed ({exc.reason})")
        unscheduled = sum(1 for p in pods if not spec_of(p).get("nodeName"))
        lines.append(f"pods        {len(pods)} in all, {unscheduled} not scheduled")
    except OSError as exc:
        lines.append(f"apiserver   unreachable: {exc}")
    finally:
        await api.close()
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="svcnet status", description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR))
    args = parser.parse_args(argv)
    for line in asyncio.run(gather(Path(args.data_dir))):
        print(line)
    return 0
