"""Watch latency across two API servers over one etcd (issue 17), against one server's, in one run.

Starts a local etcd (Debian's etcd-server, one member on loopback, data in a temporary directory)
and two `svcnet apiserver` processes over it (the second with a copy of the first's pki/, as
`svcnet up --apiservers 2` gives its peers). Watchers on server A and on server B watch one
ConfigMap; each write goes through A; every event's arrival is timed from just before the write
was sent. Prints p50/p99 for the same-server watch (A) and the cross-server one (B), and their
ratio: what a watch through the other server costs (etcd's watch to B, then B's fan-out).

    .venv/bin/python bench/bench_watch_across.py --writes 300 --watchers 10
"""
from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import ssl
import tempfile
import time
from pathlib import Path

import aiohttp
from common import percentile, start_apiserver, stop_process, wait_readyz

PATH = "/api/v1/namespaces/default/configmaps"


def session(data_dir: Path, port: int, connections: int) -> aiohttp.ClientSession:
    token = (data_dir / "pki" / "token").read_text().strip()
    ctx = ssl.create_default_context(cafile=str(data_dir / "pki" / "ca.crt"))
    return aiohttp.ClientSession(f"https://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"},
                                 connector=aiohttp.TCPConnector(ssl=ctx, limit=connections))


async def watch(http: aiohttp.ClientSession, rv: str, arrivals: list[float], writes: int,
                opened: asyncio.Event) -> None:
    url = f"{PATH}?watch=true&resourceVersion={rv}&fieldSelector=metadata.name%3Dwatched&timeoutSeconds=600"
    async with http.get(url, timeout=aiohttp.ClientTimeout(total=None)) as r:
        opened.set()
        async for line in r.content:
            if line.strip():
                arrivals.append(time.perf_counter())
                if len(arrivals) >= writes:
                    return


async def measure(args: argparse.Namespace, dirs: list[Path], ports: list[int]) -> dict[str, list[float]]:
    https = [session(d, p, args.watchers + 4) for d, p in zip(dirs, ports, strict=True)]
    try:
        for http in https:
            await wait_readyz(http)
        writer = https[0]
        async with writer.get(f"{PATH}?limit=1") as r:
            rv = (await r.json())["metadata"]["resourceVersion"]
        arrivals: dict[str, list[list[float]]] = {"same": [], "across": []}
        tasks, opened = [], []
        for label, http in (("same", https[0]), ("across", https[1])):
            for _ in range(args.watchers):
                arrivals[label].append([])
                opened.append(asyncio.Event())
                tasks.append(asyncio.create_task(watch(http, rv, arrivals[label][-1], args.writes, opened[-1])))
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in opened)), 60)
        await asyncio.sleep(0.5)  # every watch registered with its server's store after the headers
        sent = []
        for w in range(args.writes):
            t0 = time.perf_counter()
            if w == 0:
                r = await writer.post(PATH, json={"apiVersion": "v1", "kind": "ConfigMap",
                                                  "metadata": {"name": "watched"}, "data": {"w": "0"}})
            else:
                r = await writer.patch(f"{PATH}/watched", data=json.dumps({"data": {"w": str(w)}}),
                                       headers={"Content-Type": "application/merge-patch+json"})
            await r.read()
            assert r.status in (200, 201), (r.status, await r.text())
            sent.append(t0)
            # one write in flight at a time: each event's latency is its own, not a queue's
            while min(len(a) for lists in arrivals.values() for a in lists) <= w:
                await asyncio.sleep(0.0005)
        await asyncio.gather(*tasks)
        return {label: [(a[w] - sent[w]) * 1000 for a in lists for w in range(args.writes)]
                for label, lists in arrivals.items()}
    finally:
        for http in https:
            await http.close()


async def run(args: argparse.Namespace, tmp: Path, dsn: str) -> dict[str, list[float]]:
    dirs = [tmp / "apiserver-a", tmp / "apiserver-b"]
    procs = []
    try:
        proc, port_a = await start_apiserver(dirs[0], tmp / "a.log", flags=("--storage", dsn))
        procs.append(proc)
        shutil.copytree(dirs[0] / "pki", dirs[1] / "pki")  # one CA, token and service-account key
        proc, port_b = await start_apiserver(dirs[1], tmp / "b.log", flags=("--storage", dsn))
        procs.append(proc)
        return await measure(args, dirs, [port_a, port_b])
    finally:
        for proc in procs:
            stop_process(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--writes", type=int, default=300)
    parser.add_argument("--watchers", type=int, default=10, help="watchers on each server")
    args = parser.parse_args()
    from svcnet.kernel.etcdserver import LocalEtcd, new_member

    with tempfile.TemporaryDirectory(prefix="svcnet-bench-watch-") as name:
        tmp = Path(name)
        etcd = LocalEtcd(new_member("bench", tmp / "etcd"), tmp / "etcd.log")
        try:
            etcd.wait_ready()
            latencies = asyncio.run(run(args, tmp, etcd.dsn))
        finally:
            etcd.stop()
    same, across = latencies["same"], latencies["across"]
    print(f"{args.writes} writes through server A, {args.watchers} watchers on each server, one etcd")
    print("| watch on | p50 ms | p99 ms |")
    print("| --- | --- | --- |")
    for label, values in (("server A (the writer's)", same), ("server B (the other)", across)):
        print(f"| {label} | {percentile(values, 0.5):.2f} | {percentile(values, 0.99):.2f} |")
    print(f"| B / A | {percentile(across, 0.5) / percentile(same, 0.5):.2f} | "
          f"{percentile(across, 0.99) / percentile(same, 0.99):.2f} |")


if __name__ == "__main__":
    main()
