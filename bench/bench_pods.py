"""Pod start latency and pods per node, against the Kubernetes pod-startup SLO.

Brings up a real one-node cluster (`svcnet up --detach --nodes 1`, as root,
in a temporary data dir with its own cluster id) and then:

1. start latency: creates `--pods` pods (serve_hostname, scheduled by the
   scheduler, `--concurrency` creates in flight) and measures, per pod, the
   time from sending its create to seeing it Running with Ready=True on a
   watch; prints p50/p90/p99/max and compares p99 with the SLO (5 s for
   stateless pods, measured upstream from creation to all containers
   running). The pods are deleted afterwards.
2. pods per node: adds pods in batches of `--batch` until `--max-pods`
   (the /24 pod CIDR holds 253), and reports each batch's latency; it stops
   where the batch p50 is twice the first batch's, or pods fail to become
   Ready within `--ready-timeout`.
   With `--probe`, the all-at-once burst again with a tcpSocket readiness
   probe (kubelet's defaults) on each pod, against the plain one, and how
   many pods the agent probed because their port began to listen.
3. with `--density N`: pod start on an empty node vs on one holding N pods.
4. with `--two-nodes N` (default 200; 0 skips it): a second cluster
   (`svcnet up --nodes 2`) and N pods created at once across its two nodes.

After each burst the agents' memory is printed: VmRSS with the pods running,
against the same agent's VmRSS before the burst, per 100 pods on its node (the
agent's pid from the cluster's nodes/<node>/agent.pid). `svcnet down` runs at
the end of each cluster, pass or fail.

    sudo .venv/bin/python bench/bench_pods.py --pods 100 --max-pods 250
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from common import (  # noqa: E402
    cpu_by_role,
    cpu_seconds,
    free_port,
    living_threads_cpu_seconds,
    machine_cpu_seconds,
    memory_kib,
    process_tree_cpu,
)

from svcnet.api.objects import is_pod_ready, resource_version, status_of  # noqa: E402
from svcnet.client.config import unix_socket_config  # noqa: E402
from svcnet.client.rest import ApiClient  # noqa: E402
from svcnet.cluster.spec import agent_pid_path  # noqa: E402
from svcnet.controllers.base import PODS  # noqa: E402
from svcnet.kernel.process import read_pid  # noqa: E402

SLO_P99_SECONDS = 5.0


def pod(name: str, probe: bool = False) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "hostnames", "image": "k8s.gcr.io/serve_hostname",
                                 "ports": [{"containerPort": 9376, "protocol": "TCP"}]}
    if probe:  # kubelet's defaults: the first probe at start, then every 10 s
        container["readinessProbe"] = {"tcpSocket": {"port": 9376}}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "bench"}},
            "spec": {"terminationGracePeriodSeconds": 5, "containers": [container]}}


def is_ready(obj: dict[str, Any]) -> bool:
    return status_of(obj).get("phase") == "Running" and is_pod_ready(obj)


class ReadyWatch:
    """Records when each pod is first seen Running and Ready (client clock)."""

    def __init__(self, api: ApiClient) -> None:
        self.api = api
        self.ready_at: dict[str, float] = {}
        self.names: set[str] = set()
        self.node_of: dict[str, str] = {}
        self.changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        listed = await self.api.list(PODS, "default")
        self.names = {p["metadata"]["name"] for p in listed["items"]}
        self._task = asyncio.create_task(self._run(listed["metadata"]["resourceVersion"]))

    async def _run(self, rv: str) -> None:
        while True:
            async for kind, obj in self.api.watch(PODS, "default", resource_version=rv, timeout_seconds=600):
                rv = resource_version(obj) or rv
                name = obj["metadata"]["name"]
                if kind == "DELETED":
                    self.names.discard(name)
                else:
                    self.names.add(name)
                    self.node_of[name] = (obj.get("spec") or {}).get("nodeName") or ""
                    if is_ready(obj) and name not in self.ready_at:
                        self.ready_at[name] = time.monotonic()
                self.changed.set()

    async def wait(self, condition: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not condition():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(remaining, 1.0))
        return True

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def create_batch(api: ApiClient, names: list[str], concurrency: int, rate: float = 0.0,
                       probe: bool = False) -> dict[str, float]:
    """Create the pods, all at once (`concurrency` in flight) or paced at `rate` pods/s."""
    sent: dict[str, float] = {}
    gate = asyncio.Semaphore(concurrency)
    begin = time.monotonic()

    async def one(index: int, name: str) -> None:
        if rate:
            await asyncio.sleep(max(0.0, begin + index / rate - time.monotonic()))
        async with gate:
            sent[name] = time.monotonic()
            await api.create(PODS, "default", pod(name, probe))

    await asyncio.gather(*(one(i, n) for i, n in enumerate(names)))
    return sent


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, int(round(q * len(ordered))) - 1))]

    return {"p50": statistics.median(ordered), "p90": at(0.90), "p99": at(0.99), "max": ordered[-1]}


async def measure(api: ApiClient, watch: ReadyWatch, names: list[str], concurrency: int,
                  timeout: float, rate: float = 0.0, probe: bool = False) -> tuple[list[float], int, float]:
    started = time.monotonic()
    sent = await create_batch(api, names, concurrency, rate, probe)
    await watch.wait(lambda: all(n in watch.ready_at for n in names), timeout)
    latencies = [watch.ready_at[n] - sent[n] for n in names if n in watch.ready_at]
    return latencies, len(names) - len(latencies), time.monotonic() - started


async def delete_all(api: ApiClient, watch: ReadyWatch, names: list[str], timeout: float = 180) -> None:
    gate = asyncio.Semaphore(20)

    async def one(name: str) -> None:
        async with gate:
            with contextlib.suppress(Exception):
                await api.delete(PODS, "default", name)

    await asyncio.gather(*(one(n) for n in names))
    await watch.wait(lambda: not (set(names) & watch.names), timeout)
    for name in names:
        watch.ready_at.pop(name, None)


def row(label: str, latencies: list[float], failed: int, elapsed: float) -> str:
    if not latencies:
        return f"{label:>14}  no pod became Ready ({failed} failed)"
    p = percentiles(latencies)
    return (f"{label:>14}  p50 {p['p50']:6.2f}s  p90 {p['p90']:6.2f}s  p99 {p['p99']:6.2f}s  max {p['max']:6.2f}s  "
            f"failed {failed:3d}  ({len(latencies) / elapsed:5.1f} pods/s)")


async def burst(api: ApiClient, watch: ReadyWatch, data_dir: Path, args: argparse.Namespace, names: list[str],
                label: str, rate: float = 0.0, probe: bool = False) -> list[float]:
    """Create `names` (at once, or paced), report latency against the SLO and the agents' memory, delete them."""
    before = agent_usage(data_dir)
    tree_before, machine_before, own_before = cluster_cpu(data_dir), machine_cpu_seconds(), cpu_seconds()
    latencies, failed, elapsed = await measure(api, watch, names, args.concurrency, args.ready_timeout, rate, probe)
    machine = {key: value - machine_before[key] for key, value in machine_cpu_seconds().items()}
    print_cpu_breakdown(data_dir, tree_before, machine, cpu_seconds() - own_before, len(latencies))
    print(row(label, latencies, failed, elapsed))
    if latencies:
        p99 = percentiles(latencies)["p99"]
        verdict = "meets" if p99 <= SLO_P99_SECONDS and not failed else "misses"
        print(f"   SLO (p99 <= {SLO_P99_SECONDS:g}s): {verdict} it (p99 {p99:.2f}s)", flush=True)
    print_agent_usage(data_dir, before, watch, names)
    await delete_all(api, watch, names)
    return latencies


async def probed_burst(api: ApiClient, watch: ReadyWatch, data_dir: Path, args: argparse.Namespace,
                       plain: list[float]) -> None:
    """The all-at-once burst again, each pod with a tcpSocket readiness probe at kubelet's defaults; against
    the plain burst. On a ticker alone, a pod whose server was not up at the first tick waits a period."""
    print(f"1b. start latency: {args.pods} pods on one node, all at once, each with a readiness probe "
          "(tcpSocket 9376, periodSeconds 10)")
    names = [f"probe-{i:04d}" for i in range(args.pods)]
    probed = await burst(api, watch, data_dir, args, names, f"{args.pods} pods", probe=True)
    lines = "".join(log.read_text(errors="replace") for log in data_dir.glob("nodes/*/agent.log"))
    early = sum(1 for n in names if f"default/{n}/hostnames readinessProbe: port 9376 listens" in lines)
    print(f"   {early} of {len(names)} pods probed when their port began to listen (the others: at the first tick)")
    if probed and plain:
        a, b = percentiles(probed), percentiles(plain)
        print(f"   with a probe / without: p50 {a['p50'] / b['p50']:.2f}x  p99 {a['p99'] / b['p99']:.2f}x", flush=True)


async def run_two_nodes(args: argparse.Namespace, data_dir: Path) -> None:
    async with ApiClient(unix_socket_config(data_dir / "apiserver.sock"), component="bench") as api:
        watch = ReadyWatch(api)
        await watch.start()
        try:
            print(f"4. start latency: {args.two_nodes} pods across 2 nodes, all at once, "
                  f"{args.concurrency} creates in flight")
            await burst(api, watch, data_dir, args, [f"two-{i:04d}" for i in range(args.two_nodes)],
                        f"{args.two_nodes} pods")
        finally:
            await watch.stop()


async def run(args: argparse.Namespace, data_dir: Path) -> None:
    async with ApiClient(unix_socket_config(data_dir / "apiserver.sock"), component="bench") as api:
        watch = ReadyWatch(api)
        await watch.start()
        try:
            plain: list[float] = []
            for rate in [0.0, *args.rates]:
                how = f"paced at {rate:g} pods/s" if rate else f"all at once, {args.concurrency} creates in flight"
                print(f"1. start latency: {args.pods} pods on one node, {how}")
                names = [f"lat-{int(rate * 10)}-{i:04d}" for i in range(args.pods)]
                latencies = await burst(api, watch, data_dir, args, names, f"{args.pods} pods", rate)
                plain = plain or latencies
            if args.probe:
                await probed_burst(api, watch, data_dir, args, plain)

            if args.density:
                await density(api, watch, data_dir, args)
            print(f"2. pods per node: batches of {args.batch} up to {args.max_pods}")
            baseline: float | None = None
            total = 0
            while total < args.max_pods:
                size = min(args.batch, args.max_pods - total)
                batch = [f"ramp-{total + i:04d}" for i in range(size)]
                latencies, failed, elapsed = await measure(api, watch, batch, args.concurrency, args.ready_timeout)
                total += size
                print(row(f"{total - size + 1}-{total}", latencies, failed, elapsed), flush=True)
                if failed:
                    print(f"   degraded at {total} pods: {failed} pod(s) not Ready within {args.ready_timeout:g}s")
                    break
                p50 = percentiles(latencies)["p50"]
                baseline = baseline or p50
                if p50 >= 2 * baseline:
                    print(f"   degraded at {total} pods: batch p50 {p50:.2f}s is twice the first batch's "
                          f"{baseline:.2f}s")
                    break
            else:
                print(f"   no degradation up to {total} pods")
        finally:
            await watch.stop()


async def density(api: ApiClient, watch: ReadyWatch, data_dir: Path, args: argparse.Namespace) -> None:
    """Start `--density-probe` pods on an empty node, then on one already holding `--density` minus that.

    Each level is measured `--density-rounds` times, each round once the cluster is quiet again (the
    pods created and deleted before, or the filler, no longer cost it CPU): a probe of 10 pods is small,
    and one measured in the aftermath of a 240-pod burst measures that burst. Compared: the median of
    the rounds' p50s, and the p99 over every probed pod of the level; with the CPU each level's pods
    cost the machine per pod, by role (what grows with the pods on the node)."""
    probe, full, rounds = args.density_probe, args.density, args.density_rounds
    print(f"3. pod start at {probe} vs {full} pods per node ({probe} pods created at once, {rounds} rounds each)")

    async def level(label: str) -> tuple[list[float], list[float]]:
        p50s: list[float] = []
        every: list[float] = []
        tree: dict[int, tuple[str, float]] = {}
        machine: dict[str, float] = {}
        own = 0.0
        for r in range(rounds):
            waited = await settle(data_dir)
            names = [f"den-{label}-{r}-{i:04d}" for i in range(probe)]
            tree_before, machine_before, own_before = cluster_cpu(data_dir), machine_cpu_seconds(), cpu_seconds()
            latencies, failed, elapsed = await measure(api, watch, names, args.concurrency, args.ready_timeout)
            # The CPU of the rounds' starts only (creation to Ready), not of the quiet waits or deletions;
            # this script's own before it scans /proc again (~750 processes at 250 pods).
            own += cpu_seconds() - own_before
            for key, value in machine_cpu_seconds().items():
                machine[key] = machine.get(key, 0.0) + value - machine_before[key]
            for role, seconds in cpu_by_role(tree_before, cluster_cpu(data_dir)).items():
                tree[role] = tree.get(role, 0.0) + seconds
            print(row(f"at {label} #{r + 1}", latencies, failed, elapsed) + f"  (quiet after {waited:.1f}s)",
                  flush=True)
            if latencies:
                p50s.append(percentiles(latencies)["p50"])
                every += latencies
            await delete_all(api, watch, names)
        print_cpu_breakdown(data_dir, {}, machine, own, len(every), spent=tree)
        return p50s, every

    low_p50s, low = await level(str(probe))
    filler = [f"den-f-{i:04d}" for i in range(full - probe)]
    _, failed, elapsed = await measure(api, watch, filler, args.concurrency, args.ready_timeout)
    print(f"   filled the node with {len(filler)} pods in {elapsed:.1f}s ({failed} not Ready)", flush=True)
    high_p50s, high = await level(str(full))
    if low and high:
        lo, hi = percentiles(low), percentiles(high)
        p50_ratio = statistics.median(high_p50s) / statistics.median(low_p50s)
        print(f"   ratio at {full} / at {probe}: p50 {p50_ratio:.2f}x (median of the rounds' p50s)  "
              f"p99 {hi['p99'] / lo['p99']:.2f}x (every probed pod) (target <= 1.5x)", flush=True)
    await delete_all(api, watch, filler)


async def settle(data_dir: Path, *, busy_below: float = 0.3, window: float = 1.0, deadline: float = 120.0) -> float:
    """Wait until the cluster's processes and the kernel's threads (namespace cleanup) together use less
    than `busy_below` of a core over two `window`s in a row, or `deadline` passes (then say so and go
    on). Returns the seconds waited."""
    began = time.monotonic()
    quiet = 0
    while quiet < 2:
        before, threads_before = cluster_cpu(data_dir), machine_cpu_seconds()["kernel threads"]
        await asyncio.sleep(window)
        used = (sum(cpu_by_role(before, cluster_cpu(data_dir)).values())
                + machine_cpu_seconds()["kernel threads"] - threads_before) / window
        quiet = quiet + 1 if used < busy_below else 0
        if time.monotonic() - began > deadline:
            print(f"   (the cluster still used {used:.2f} of a core after {deadline:g}s; measuring anyway)")
            break
    return time.monotonic() - began


@dataclass(frozen=True)
class AgentUsage:
    rss_kib: int
    cpu: float  # seconds, every thread
    living_threads: float  # seconds, the threads alive now (the event loop, the pools)


def agent_usage(data_dir: Path) -> dict[str, AgentUsage]:
    """Each node agent's VmRSS and CPU time (by node name), from the pid in nodes/<node>/agent.pid."""
    usage = {}
    for node in sorted(d.name for d in data_dir.glob("nodes/*") if d.is_dir()):
        pid = read_pid(agent_pid_path(data_dir, node))
        if pid:
            with contextlib.suppress(OSError):  # the agent is gone: nothing to report for it
                usage[node] = AgentUsage(memory_kib(pid), cpu_seconds(pid), living_threads_cpu_seconds(pid))
    return usage


def print_agent_usage(data_dir: Path, before: dict[str, AgentUsage], watch: ReadyWatch, names: list[str]) -> None:
    """Agents' RSS with `names` running (its growth over `before` per 100 pods on that node), and the CPU
    the agent spent starting them, per pod."""
    for node, now in agent_usage(data_dir).items():
        pods = sum(1 for n in names if watch.node_of.get(n) == node and n in watch.ready_at)
        then = before.get(node, now)
        per_100 = f"{(now.rss_kib - then.rss_kib) / pods * 100 / 1024:5.1f} MiB per 100 pods" if pods else "no pods"
        print(f"   agent {node}: RSS {now.rss_kib / 1024:6.1f} MiB with {pods} pods running "
              f"(before {then.rss_kib / 1024:6.1f} MiB: {per_100})", flush=True)
        if pods:
            print(f"   agent {node}: CPU {(now.cpu - then.cpu) * 1000 / pods:5.0f} ms per pod "
                  f"({(now.living_threads - then.living_threads) * 1000 / pods:.0f} of it on threads alive after "
                  "the burst: the event loop and the pools; the rest on threads that ended)", flush=True)


def cluster_cpu(data_dir: Path) -> dict[int, tuple[str, float]]:
    """process_tree_cpu of the `svcnet up` process (its pid is in cluster.ready) and everything under it,
    and of the pods' shims (they name their spec file under the data dir) and their programs."""
    pid = read_pid(data_dir / "cluster.ready")
    return process_tree_cpu(pid, marker=str(data_dir)) if pid else {}


def print_cpu_breakdown(data_dir: Path, before: dict[int, tuple[str, float]], machine: dict[str, float],
                        own: float, pods: int, spent: dict[str, float] | None = None) -> None:
    """Where the machine's CPU went while the burst started its pods, per pod: each role of the cluster's
    process tree (the API server with the controllers, agents, proxies, pods' programs...), this benchmark
    client, the kernel's own threads and interrupts, and the rest: other load on the machine, and the
    system time of processes that ended unreaped by the tree). `spent`: the roles' CPU already summed
    (over several rounds) instead of the tree's since `before`."""
    if not pods:
        return
    spent = dict(spent) if spent is not None else cpu_by_role(before, cluster_cpu(data_dir))
    spent["bench client"] = own
    spent["kernel threads"] = machine["kernel threads"]
    spent["irq+softirq"] = machine["interrupts"]
    busy = machine["busy"]
    spent["other load"] = busy - sum(spent.values())
    parts = "  ".join(f"{role} {seconds * 1000 / pods:.0f}" for role, seconds in
                      sorted(spent.items(), key=lambda item: -item[1]) if abs(seconds) * 1000 / pods >= 0.5)
    print(f"   CPU per pod, ms (machine busy {busy * 1000 / pods:.0f} ms a pod, {busy:.1f} s on "
          f"{os.cpu_count()} cores): {parts}", flush=True)


def where_time_goes(data_dir: Path) -> None:
    """Medians of the agent's per-pod step times (its `waited .. ms, volumes .. ms, network .. ms, sandbox
    .. ms` and container lines; waited: for a sync worker, from the agent's first sight of the pod)."""
    import re

    steps: dict[str, list[float]] = {"waited": [], "volumes": [], "network": [], "sandbox": [], "container": []}
    for log in data_dir.glob("nodes/*/agent.log"):
        for line in log.read_text(errors="replace").splitlines():
            if m := re.search(r": (?:waited (\d+) ms, )?volumes (\d+) ms, network (\d+) ms, sandbox (\d+) ms", line):
                if m.group(1) is not None:
                    steps["waited"].append(float(m.group(1)))
                steps["volumes"].append(float(m.group(2)))
                steps["network"].append(float(m.group(3)))
                steps["sandbox"].append(float(m.group(4)))
            elif m := re.search(r"container \S+ started in (\d+) ms", line):
                steps["container"].append(float(m.group(1)))
    if any(steps.values()):
        print("where a pod's start goes in the agent (median / p90 over every pod of the run):")
        for step, values in steps.items():
            if values:
                ordered = sorted(values)
                print(f"   {step:>9}: {statistics.median(ordered):6.0f} ms / {ordered[int(0.9 * (len(ordered) - 1))]:6.0f} ms"
                      f"  ({len(values)} pods)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=100)
    parser.add_argument("--max-pods", type=int, default=250)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--rates", type=float, nargs="*", default=[1.0],
                        help="also measure with creates paced at these pods/s (default: 1)")
    parser.add_argument("--ready-timeout", type=float, default=180.0)
    parser.add_argument("--density", type=int, default=0,
                        help="also compare pod start at --density-probe pods per node with this many (e.g. 250)")
    parser.add_argument("--density-probe", type=int, default=10)
    parser.add_argument("--density-rounds", type=int, default=3,
                        help="probes of --density-probe pods at each level, each once the cluster is quiet")
    parser.add_argument("--keep-logs", default="", help="copy the cluster's logs here before it goes")
    parser.add_argument("--probe", action="store_true",
                        help="also run the all-at-once burst with a readiness probe on each pod")
    parser.add_argument("--two-nodes", type=int, default=200,
                        help="then, in a 2-node cluster, this many pods created at once (0: skip)")
    parser.add_argument("--skip-one-node", action="store_true", help="only the 2-node burst")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench_pods needs root (it creates network namespaces)", file=sys.stderr)
        return 1
    if not args.skip_one_node and not with_cluster(1, args, run):
        return 1
    if args.two_nodes and not with_cluster(2, args, run_two_nodes):
        return 1
    return 0


def with_cluster(nodes: int, args: argparse.Namespace, body: Any) -> bool:
    """`svcnet up --nodes N` in a temporary data dir, asyncio.run(body(args, data_dir)), then `svcnet down`."""
    with tempfile.TemporaryDirectory(prefix="svcnet-bench-pods-") as tmp:
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        (data_dir / "cluster-id").write_text("bp" + secrets.token_hex(3) + "\n")

        def svcnet(*argv: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "svcnet", *argv], cwd=REPO, capture_output=True,
                                  text=True, timeout=300)

        up = svcnet("up", "--detach", "--nodes", str(nodes), "--data-dir", str(data_dir), "--port", str(free_port()))
        try:
            if up.returncode != 0:
                print(up.stdout, up.stderr, file=sys.stderr)
                return False
            print(f"cluster up ({nodes} node{'s' if nodes > 1 else ''}, {os.cpu_count()} CPUs)")
            asyncio.run(body(args, data_dir))
            where_time_goes(data_dir)
        finally:
            # The cluster goes down first, whatever happens to the log copy after.
            down = svcnet("down", "--data-dir", str(data_dir))
            print(down.stdout.strip().splitlines()[-1] if down.stdout.strip() else down.stderr)
            if args.keep_logs:
                keep = Path(args.keep_logs)
                keep.mkdir(parents=True, exist_ok=True)
                for log in [data_dir / "svcnet.log", *data_dir.glob("nodes/*/agent.log")]:
                    if log.exists():
                        shutil.copy(log, keep / f"{nodes}-{log.parent.name}-{log.name}")
    return True


if __name__ == "__main__":
    sys.exit(main())
