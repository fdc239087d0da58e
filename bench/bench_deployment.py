"""Deployment scale-up benchmark: pods created/s and binds/s by the controllers vs the raw API, in one run.

Starts a real `svcnet apiserver` (HTTPS, token, SQLite), registers `--nodes`
Node objects (Ready, room for every pod; no kubelet runs: readiness is not
needed to create or bind pods), then:
1. raw create: this process creates N pods straight through the API
   (`--concurrency` clients in flight) -> pods/s, the ceiling for creates;
2. raw bind: it binds those N pods (POST pods/NAME/binding, same concurrency)
   -> binds/s, the ceiling for binds. The raw pods name another scheduler, so
   the scheduler leaves them alone, but they do occupy the nodes afterwards;
3. controllers: `svcnet controllers --controllers replicaset,deployment,scheduler`;
   a Deployment at `--from` replicas, once those pods are bound, is scaled to N
   with one PATCH. A watch notes when each new pod is first seen and when it is
   first seen bound: created/s and bound/s over the new pods, each also as a
   ratio to the raw rates above, and how long each pod waited from created to
   bound (p50, p99): a scheduler that keeps up binds a pod moments after it appears.

    .venv/bin/python bench/bench_deployment.py --from 3 --pods 200 --nodes 2
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from common import percentile, start_apiserver, start_svcnet, stop_process  # noqa: E402

from svcnet.client.config import load_kubeconfig  # noqa: E402
from svcnet.client.rest import ApiClient, TransportError, resource_path  # noqa: E402
from svcnet.controllers.base import DEPLOYMENTS, NAMESPACES, NODES, PODS  # noqa: E402

RAW_NAMESPACE = "raw"
RAW_SCHEDULER = "bench-raw"  # not default-scheduler: the raw phase binds these pods itself
CONTAINER = {"name": "hostnames", "image": "k8s.gcr.io/serve_hostname",
             "ports": [{"containerPort": 9376, "protocol": "TCP"}]}


def raw_pod(i: int) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"raw-{i:06d}", "labels": {"app": "raw"}},
            "spec": {"schedulerName": RAW_SCHEDULER, "containers": [CONTAINER]}}


def node(name: str, capacity: int) -> dict:
    room = {"cpu": "64", "memory": "256Gi", "pods": str(capacity)}
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
            "status": {"capacity": room, "allocatable": room,
                       "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}}


def deployment(replicas: int) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "bench"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "bench"}},
                     "template": {"metadata": {"labels": {"app": "bench"}},
                                  "spec": {"containers": [CONTAINER]}}}}


async def wait_ready(api: ApiClient, deadline: float) -> None:
    while True:
        try:
            await api.request("GET", "/readyz")
            return
        except (TransportError, Exception):
            if time.monotonic() > deadline:
                raise SystemExit("apiserver did not become ready") from None
            await asyncio.sleep(0.05)


async def in_parallel(count: int, concurrency: int, one: object) -> float:
    """Run one(i) for i in range(count), `concurrency` at a time; items per second."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            await one(queue.get_nowait())  # type: ignore[operator]

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count / (time.perf_counter() - start)


async def raw_rates(api: ApiClient, count: int, concurrency: int, nodes: list[str]) -> tuple[float, float]:
    """(creates/s, binds/s) of `count` pods sent straight to the API."""
    await api.create(NAMESPACES, None, {"apiVersion": "v1", "kind": "Namespace",
                                        "metadata": {"name": RAW_NAMESPACE}})

    async def create(i: int) -> None:
        await api.create(PODS, RAW_NAMESPACE, raw_pod(i))

    async def bind(i: int) -> None:
        name = f"raw-{i:06d}"
        await api.request("POST", resource_path(PODS, RAW_NAMESPACE, name, "binding"), body={
            "apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
            "target": {"apiVersion": "v1", "kind": "Node", "name": nodes[i % len(nodes)]}})

    return await in_parallel(count, concurrency, create), await in_parallel(count, concurrency, bind)


class PodTimes:
    """A watch on the Deployment's pods: when each was first seen, and first seen bound."""

    def __init__(self, api: ApiClient) -> None:
        self.api = api
        self.created: dict[str, float] = {}
        self.bound: dict[str, float] = {}
        self.changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        listing = await self.api.list(PODS, "default", label_selector="app=bench")
        now = time.perf_counter()
        for pod in listing["items"]:
            self._note(pod, now)
        self._task = asyncio.create_task(self._run(listing["metadata"]["resourceVersion"]))

    def _note(self, pod: dict, now: float) -> None:
        name = pod["metadata"]["name"]
        self.created.setdefault(name, now)
        if pod["spec"].get("nodeName"):
            self.bound.setdefault(name, now)
        self.changed.set()

    async def _run(self, rv: str) -> None:
        while True:
            stream = self.api.watch(PODS, "default", resource_version=rv, label_selector="app=bench",
                                    timeout_seconds=300)
            async with contextlib.aclosing(stream) as events:  # type: ignore[type-var]
                async for event_type, obj in events:
                    rv = obj["metadata"]["resourceVersion"]
                    if event_type in ("ADDED", "MODIFIED"):
                        self._note(obj, time.perf_counter())

    async def until(self, condition: object, deadline: float, what: str) -> None:
        while not condition():  # type: ignore[operator]
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise SystemExit(f"timed out waiting for {what}: {len(self.created)} pods seen, "
                                 f"{len(self.bound)} bound") from None

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, TransportError):
                await self._task


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (from /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def controller_scale_up(api: ApiClient, start_replicas: int, count: int,
                              timeout: float, pids: dict[str, int]) -> dict[str, float]:
    """Seconds from the scale PATCH to the last new pod created, and to the last one bound."""
    deadline = time.monotonic() + timeout
    await api.create(DEPLOYMENTS, "default", deployment(start_replicas))
    times = PodTimes(api)
    await times.start()
    try:
        await times.until(lambda: len(times.bound) >= start_replicas, deadline,
                          f"the first {start_replicas} pods bound (are the controllers running?)")
        before = set(times.created)
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        start = time.perf_counter()
        await api.patch(DEPLOYMENTS, "default", "bench", {"spec": {"replicas": count}}, patch_type="merge")
        await times.until(lambda: len(times.bound) >= count, deadline, f"{count} pods bound")
        cpu = {f"cpu_s_{name}": cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
        new = [name for name in times.created if name not in before]
        lags = sorted(times.bound[n] - times.created[n] for n in new)
        return {"created_seconds": max(times.created[n] for n in new) - start,
                "bound_seconds": max(times.bound[n] for n in new) - start, "new_pods": len(new),
                "bind_lag_p50": percentile(lags, 0.5), "bind_lag_p99": percentile(lags, 0.99), **cpu}
    finally:
        await times.stop()


async def run(args: argparse.Namespace, work: Path) -> dict:
    data_dir = work / "data"
    apiserver, _ = await start_apiserver(data_dir, work / "apiserver.log")
    deadline = time.monotonic() + 30
    controllers: subprocess.Popen | None = None
    try:
        async with ApiClient(load_kubeconfig(data_dir / "kubeconfig"), component="bench") as api:
            await wait_ready(api, deadline)
            nodes = [f"bench-node-{i}" for i in range(args.nodes)]
            for name in nodes:
                await api.create(NODES, None, node(name, 2 * (args.pods + args.raw_pods)))
            raw_create, raw_bind = await raw_rates(api, args.raw_pods, args.concurrency, nodes)
            controllers = start_svcnet(["controllers", "--data-dir", str(data_dir), "--controllers",
                                        "replicaset,deployment,scheduler"], work / "controllers.log")
            scale = await controller_scale_up(api, args.start_replicas, args.pods, args.timeout,
                                              {"apiserver": apiserver.pid, "controllers": controllers.pid})
        new = scale["new_pods"]
        created_rate, bound_rate = new / scale["created_seconds"], new / scale["bound_seconds"]
        return {"scale": f"{args.start_replicas} -> {args.pods}", "nodes": args.nodes,
                "raw_pods": args.raw_pods, "raw_concurrency": args.concurrency,
                "raw_create_per_s": round(raw_create, 1), "raw_bind_per_s": round(raw_bind, 1),
                "controller_created_per_s": round(created_rate, 1),
                "controller_created_seconds": round(scale["created_seconds"], 2),
                "scheduler_bound_per_s": round(bound_rate, 1),
                "scheduler_bound_seconds": round(scale["bound_seconds"], 2),
                "created_to_bound_p50_ms": round(scale["bind_lag_p50"] * 1000, 1),
                "created_to_bound_p99_ms": round(scale["bind_lag_p99"] * 1000, 1),
                "ratio_created_to_raw_create": round(created_rate / raw_create, 3),
                "ratio_bound_to_raw_create": round(bound_rate / raw_create, 3),
                "ratio_bound_to_raw_bind": round(bound_rate / raw_bind, 3),
                "scale_up_cpu_seconds": {"apiserver": round(scale["cpu_s_apiserver"], 2),
                                         "controllers": round(scale["cpu_s_controllers"], 2)}}
    finally:
        if controllers is not None:
            stop_process(controllers)
        stop_process(apiserver)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=200, help="replicas to scale the Deployment to")
    parser.add_argument("--from", dest="start_replicas", type=int, default=3, help="replicas before")
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--raw-pods", type=int, default=0, help="pods for the raw rates (default: --pods)")
    parser.add_argument("--concurrency", type=int, default=16, help="raw requests in flight")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--keep", action="store_true", help="keep the work directory and logs")
    args = parser.parse_args()
    args.raw_pods = args.raw_pods or args.pods
    work = Path(tempfile.mkdtemp(prefix="svcnet-bench-deploy-"))
    try:
        result = asyncio.run(run(args, work))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2))
    print(f"scale {result['scale']}: created {result['controller_created_per_s']} pods/s "
          f"({result['ratio_created_to_raw_create']} x raw create {result['raw_create_per_s']}/s), "
          f"bound {result['scheduler_bound_per_s']} pods/s ({result['ratio_bound_to_raw_create']} x raw "
          f"create, {result['ratio_bound_to_raw_bind']} x raw bind {result['raw_bind_per_s']}/s); "
          f"created -> bound p50 {result['created_to_bound_p50_ms']} ms, "
          f"p99 {result['created_to_bound_p99_ms']} ms")
    if args.keep:
        print(f"logs in {work}")


if __name__ == "__main__":
    main()
