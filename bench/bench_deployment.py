"""Deployment scale-up benchmark: pods/s made by the controllers vs raw API creates, in one run.

Starts a real `svcnet apiserver` (HTTPS, token, SQLite) and `svcnet controllers
--controllers replicaset,deployment` as child processes, then:
1. raw: this process creates N pods straight through the API (the same client
   library, `--concurrency` requests in flight) -> pods/s, the ceiling;
2. controller: a Deployment at 1 replica is scaled to N with one PATCH; the time
   until the N-th pod of the Deployment is seen on a watch -> pods/s.
Prints both and their ratio. No kubelet runs: pod readiness is not needed to create them.

    .venv/bin/python bench/bench_deployment.py --pods 1000
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from common import start_apiserver, start_svcnet, stop_process  # noqa: E402

from svcnet.client.config import load_kubeconfig  # noqa: E402
from svcnet.client.rest import ApiClient, TransportError  # noqa: E402
from svcnet.controllers.base import DEPLOYMENTS, PODS  # noqa: E402


def raw_pod(i: int) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"raw-{i:06d}", "labels": {"app": "raw"}},
            "spec": {"containers": [{"name": "hostnames", "image": "k8s.gcr.io/serve_hostname",
                                     "ports": [{"containerPort": 9376, "protocol": "TCP"}]}]}}


def deployment(replicas: int) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "bench"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "bench"}},
                     "template": {"metadata": {"labels": {"app": "bench"}},
                                  "spec": {"containers": [{
                                      "name": "hostnames", "image": "k8s.gcr.io/serve_hostname",
                                      "ports": [{"containerPort": 9376, "protocol": "TCP"}]}]}}}}


async def wait_ready(api: ApiClient, deadline: float) -> None:
    while True:
        try:
            await api.request("GET", "/readyz")
            return
        except (TransportError, Exception):
            if time.monotonic() > deadline:
                raise SystemExit("apiserver did not become ready") from None
            await asyncio.sleep(0.05)


async def raw_creates(api: ApiClient, count: int, concurrency: int) -> float:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            await api.create(PODS, "default", raw_pod(queue.get_nowait()))

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count / (time.perf_counter() - start)


async def count_pods(api: ApiClient, selector: str) -> tuple[int, str]:
    listing = await api.list(PODS, "default", label_selector=selector)
    return len(listing["items"]), listing["metadata"]["resourceVersion"]


async def controller_scale_up(api: ApiClient, count: int, timeout: float) -> tuple[float, float]:
    """(pods/s, seconds) from the scale PATCH to the count-th pod seen on a watch."""
    await api.create(DEPLOYMENTS, "default", deployment(1))
    deadline = time.monotonic() + timeout
    while (await count_pods(api, "app=bench"))[0] < 1:  # warm: the first RS and pod exist
        if time.monotonic() > deadline:
            raise SystemExit("the controllers made no pod; is `svcnet controllers` running?")
        await asyncio.sleep(0.05)
    seen, rv = await count_pods(api, "app=bench")
    start = time.perf_counter()
    await api.patch(DEPLOYMENTS, "default", "bench", {"spec": {"replicas": count}}, patch_type="merge")
    while seen < count:
        stream = api.watch(PODS, "default", resource_version=rv, label_selector="app=bench",
                           timeout_seconds=max(1, int(deadline - time.monotonic())))
        async with contextlib.aclosing(stream) as events:  # type: ignore[type-var]
            async for event_type, obj in events:
                rv = obj["metadata"]["resourceVersion"]
                if event_type == "ADDED":
                    seen += 1
                    if seen >= count:
                        break
        if time.monotonic() > deadline:
            raise SystemExit(f"only {seen} of {count} pods after {timeout}s")
    elapsed = time.perf_counter() - start
    return (count - 1) / elapsed, elapsed


async def run(args: argparse.Namespace, work: Path) -> dict:
    data_dir = work / "data"
    apiserver, _ = await start_apiserver(data_dir, work / "apiserver.log")
    deadline = time.monotonic() + 30
    controllers: subprocess.Popen | None = None
    try:
        async with ApiClient(load_kubeconfig(data_dir / "kubeconfig"), component="bench") as api:
            await wait_ready(api, deadline)
            raw_rate = await raw_creates(api, args.pods, args.concurrency)
            controllers = start_svcnet(["controllers", "--data-dir", str(data_dir),
                                 "--controllers", "replicaset,deployment"], work / "controllers.log")
            rate, elapsed = await controller_scale_up(api, args.pods, args.timeout)
        return {"pods": args.pods, "raw_create_per_s": round(raw_rate, 1),
                "raw_concurrency": args.concurrency,
                "controller_pods_per_s": round(rate, 1), "controller_seconds": round(elapsed, 2),
                "ratio_controller_to_raw": round(rate / raw_rate, 3)}
    finally:
        if controllers is not None:
            stop_process(controllers)
        stop_process(apiserver)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=64, help="raw create requests in flight")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--keep", action="store_true", help="keep the work directory and logs")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="svcnet-bench-deploy-"))
    result = asyncio.run(run(args, work))
    print(json.dumps(result, indent=2))
    print(f"controller: {result['controller_pods_per_s']} pods/s ({result['pods']} pods in "
          f"{result['controller_seconds']} s); raw API: {result['raw_create_per_s']} pods/s; "
          f"ratio {result['ratio_controller_to_raw']}")
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"logs in {work}")


if __name__ == "__main__":
    main()
