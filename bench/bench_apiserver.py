"""API server benchmark: creates, lists, watch fan-out, against references in the same run.

Starts a real `svcnet apiserver` (HTTPS, token, SQLite) in a child process and
drives it with aiohttp from this one. Prints figures and ratios:
- create throughput through the API vs raw SQLite inserts (same durability) measured here;
- list latency for all pods as JSON and as Table, against json.dumps of the same response body
  in this process (a ratio) and kube-apiserver's SLO (30 s);
- watch fan-out latency from one write to N watchers (p50/p99), against the 1 s SLO
  for mutating calls (the nearest published one);
- SQLite file size per object.

With --storage etcd the API server's store is a local etcd (Debian's etcd-server, started here on
loopback, its data in the run's temporary directory); --storage both runs the API part on SQLite
and then on etcd, in the same run, and prints the two side by side (docs/benchmarks.md).

    .venv/bin/python bench/bench_apiserver.py --pods 10000 --watchers 100
    .venv/bin/python bench/bench_apiserver.py --pods 10000 --watchers 100 --storage both

--creates-only runs the creates alone, --rounds times, each between two raw SQLite references.
Server CPU is the whole process tree's.

The create client is a minimal HTTP/1.1 client on asyncio's TLS transport (requests encoded
before the clock starts, responses read by Content-Length), one connection per concurrent
client, so the script's own CPU per create stays small beside the server's on a 2-core machine.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sqlite3
import ssl
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from common import memory_kib, percentile, start_apiserver, stop_process, wait_readyz


def pod(i: int) -> dict:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"bench-{i:06d}", "labels": {"app": "bench", "shard": str(i % 10)}},
        "spec": {"containers": [{"name": "hostnames", "image": "k8s.gcr.io/serve_hostname",
                                 "ports": [{"containerPort": 9376, "protocol": "TCP"}]}]},
    }


def service(i: int) -> dict:
    """Every other one a NodePort Service: a ClusterIP each, a NodePort for half."""
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": f"bench-{i:06d}"},
        "spec": {"selector": {"app": "bench"}, "ports": [{"port": 80, "targetPort": 9376}],
                 **({"type": "NodePort"} if i % 2 else {})},
    }


@dataclass(frozen=True)
class Target:
    """Where and as whom the create client connects."""

    port: int
    token: str
    ssl: ssl.SSLContext


class _Responses(asyncio.Protocol):
    """One keep-alive connection's responses, one at a time: status and body by Content-Length."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None:
            return
        head = bytes(self.buffer[:end]).lower()
        at = head.find(b"\r\ncontent-length:")
        assert at >= 0, f"no Content-Length in {head!r}"
        length = int(head[at + 17:head.find(b"\r\n", at + 2) if head.find(b"\r\n", at + 2) > 0 else None])
        total = end + 4 + length
        if len(self.buffer) < total:
            return
        status, body = int(head[9:12]), bytes(self.buffer[end + 4:total])
        del self.buffer[:total]
        waiter, self.waiter = self.waiter, None
        waiter.set_result((status, body))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc or ConnectionError("connection closed"))

    async def send(self, request: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.waiter


def post_request(path: str, token: str, body: dict) -> bytes:
    data = json.dumps(body, separators=(",", ":")).encode()
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n").encode() + data


async def create_all(target: Target, path: str, bodies: list[dict], concurrency: int, pid: int) -> dict:
    """POST every body with `concurrency` clients, each on its own connection: objects/s, p99, CPU per create."""
    requests = [post_request(path, target.token, body) for body in bodies]
    loop = asyncio.get_running_loop()
    connections = []
    for _ in range(concurrency):
        _, protocol = await loop.create_connection(_Responses, "127.0.0.1", target.port, ssl=target.ssl)
        connections.append(protocol)
    latencies: list[float] = []
    pending = iter(requests)

    async def creator(connection: _Responses) -> None:
        for request in pending:
            t0 = time.perf_counter()
            status, body = await connection.send(request)
            assert status == 201, (status, body[:500])
            latencies.append(time.perf_counter() - t0)

    cpu_before, client_cpu_before = tree_cpu_seconds(pid), time.process_time()
    start = time.perf_counter()
    await asyncio.gather(*(creator(c) for c in connections))
    elapsed = time.perf_counter() - start
    results = {"server_cpu_us": (tree_cpu_seconds(pid) - cpu_before) / len(bodies) * 1e6,
               "client_cpu_us": (time.process_time() - client_cpu_before) / len(bodies) * 1e6,
               "per_s": len(bodies) / elapsed, "p99_ms": percentile(latencies, 0.99) * 1000}
    for connection in connections:
        assert connection.transport is not None
        connection.transport.close()
    return results


def process_tree(pid: int) -> list[int]:
    """pid and its descendants."""
    tree, frontier = [pid], [pid]
    while frontier:
        parent = frontier.pop()
        for task in Path(f"/proc/{parent}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                children = [int(c) for c in task.read_text().split()]
                tree += children
                frontier += children
    return tree


def tree_cpu_seconds(pid: int) -> float:
    total = 0.0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            total += cpu_seconds(member)
    return total


def encode_reference_ms(doc: dict, repeats: int) -> float:
    """The reference for a list: json.dumps of the same response, already decoded, in this process
    (the least a server that re-encoded its objects for every list would spend)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        json.dumps(doc, separators=(",", ":"))
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def cpu_seconds(pid: int) -> float:
    """A process's CPU time so far (user + system, all its threads), from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def raw_sqlite_inserts(path: Path, objects: list[bytes]) -> float:
    """Inserts per second with one transaction per row, WAL, synchronous=FULL."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE kv (key TEXT PRIMARY KEY, value BLOB)")
    start = time.perf_counter()
    for i, value in enumerate(objects):
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO kv VALUES (?, ?)", (f"/registry/core/pods/default/bench-{i:06d}", value))
        db.execute("COMMIT")
    elapsed = time.perf_counter() - start
    db.close()
    return len(objects) / elapsed


async def run(args: argparse.Namespace, data_dir: Path, flags: tuple[str, ...] = (),
              creates_only: bool = False) -> dict:
    proc, port = await start_apiserver(data_dir, data_dir.parent / f"apiserver-{data_dir.name}.log", flags=flags)
    try:
        base = f"https://127.0.0.1:{port}"
        token = (data_dir / "pki" / "token").read_text().strip()
        ctx = ssl.create_default_context(cafile=str(data_dir / "pki" / "ca.crt"))
        headers = {"Authorization": f"Bearer {token}"}
        connector = aiohttp.TCPConnector(ssl=ctx, limit=args.concurrency + args.watchers + 4)
        async with aiohttp.ClientSession(base, headers=headers, connector=connector) as http:
            await wait_readyz(http)
            results: dict = {}

            target = Target(port, token, ctx)

            # --- creates
            pods = await create_all(target, "/api/v1/namespaces/default/pods",
                                    [pod(i) for i in range(args.pods)], args.concurrency, proc.pid)
            results.update({f"create_{key}": value for key, value in pods.items()})
            if creates_only:
                return results
            if args.services:
                # Services take a ClusterIP (an IPAddress object) and half a NodePort (the
                # RangeAllocation snapshot) on their write path: what that costs beside a pod.
                services = await create_all(target, "/api/v1/namespaces/default/services",
                                            [service(i) for i in range(args.services)], args.concurrency,
                                            proc.pid)
                results.update({f"service_{key}": value for key, value in services.items()})

            # --- lists
            for label, accept in (("json", "application/json"),
                                  ("table", "application/json;as=Table;v=v1;g=meta.k8s.io")):
                times = []
                for _ in range(args.list_repeats):
                    t0 = time.perf_counter()
                    async with http.get("/api/v1/pods", headers={"Accept": accept}) as r:
                        body = await r.read()
                    times.append(time.perf_counter() - t0)
                doc = json.loads(body)
                count = len(doc.get("items", doc.get("rows", [])))
                assert count == args.pods, (label, count)
                # The first list of a form builds what later ones reuse (a Table's rows): reported
                # apart, and the median is of the lists after it.
                results[f"list_{label}_first_ms"] = times[0] * 1000
                results[f"list_{label}_ms"] = statistics.median(times[1:] or times) * 1000
                results[f"list_{label}_ref_ms"] = encode_reference_ms(doc, args.list_repeats)

            # --- a paged list (kubectl --chunk-size=500), every page read at the first page's revision
            t0 = time.perf_counter()
            query, paged = "limit=500", 0
            while True:
                async with http.get(f"/api/v1/pods?{query}") as r:
                    page = await r.json()
                paged += len(page["items"])
                token = page["metadata"].get("continue")
                if not token:
                    break
                query = f"limit=500&continue={token}"
            assert paged == args.pods, paged
            results["list_paged_ms"] = (time.perf_counter() - t0) * 1000

            # --- memory, with every pod stored and listed once in each form
            results["apiserver_rss_mb"] = sum(memory_kib(p) for p in process_tree(proc.pid)) / 1024
            results["apiserver_peak_rss_mb"] = sum(memory_kib(p, "VmHWM") for p in process_tree(proc.pid)) / 1024

            # --- watch fan-out
            received: list[list[float]] = [[] for _ in range(args.watchers)]
            ready = asyncio.Event()
            opened = 0
            rv_resp = await http.get("/api/v1/namespaces/default/pods?limit=1")
            rv = (await rv_resp.json())["metadata"]["resourceVersion"]

            async def watcher(idx: int) -> None:
                nonlocal opened
                url = (f"/api/v1/namespaces/default/pods?watch=true&resourceVersion={rv}"
                       f"&fieldSelector=metadata.name%3Dwatched&timeoutSeconds=600")
                async with http.get(url, timeout=aiohttp.ClientTimeout(total=None)) as r:
                    opened += 1
                    if opened == args.watchers:
                        ready.set()
                    async for line in r.content:
                        if line.strip():
                            received[idx].append(time.perf_counter())
                            if len(received[idx]) >= args.writes:
                                return

            tasks = [asyncio.create_task(watcher(i)) for i in range(args.watchers)]
            await asyncio.wait_for(ready.wait(), 60)
            await asyncio.sleep(0.5)  # let every watch register with the store after headers
            send_times = []
            target = pod(0)
            target["metadata"]["name"] = "watched"
            for w in range(args.writes):
                target["metadata"]["labels"]["write"] = str(w)
                t0 = time.perf_counter()
                if w == 0:
                    r = await http.post("/api/v1/namespaces/default/pods", json=target)
                else:
                    r = await http.patch("/api/v1/namespaces/default/pods/watched",
                                         data=json.dumps({"metadata": {"labels": {"write": str(w)}}}),
                                         headers={"Content-Type": "application/merge-patch+json"})
                await r.read()
                send_times.append(t0)
                while min(len(x) for x in received) <= w:
                    await asyncio.sleep(0.001)
            await asyncio.gather(*tasks)
            fanout = [(received[i][w] - send_times[w]) * 1000
                      for i in range(args.watchers) for w in range(args.writes)]
            results["watch_p50_ms"] = percentile(fanout, 0.5)
            results["watch_p99_ms"] = percentile(fanout, 0.99)
        db_size = sum(f.stat().st_size for f in data_dir.glob("state.db*"))
        results["bytes_per_object"] = db_size / (args.pods + 1)
        return results
    finally:
        stop_process(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--watchers", type=int, default=100)
    parser.add_argument("--writes", type=int, default=20)
    parser.add_argument("--list-repeats", type=int, default=5)
    parser.add_argument("--storage", choices=["sqlite", "etcd", "both"], default="sqlite",
                        help="the API server's store: SQLite (default), a local etcd, or both one after the other")
    parser.add_argument("--services", type=int, default=2000,
                        help="Services to create after the pods (half of them NodePort); 0: none")
    parser.add_argument("--creates-only", action="store_true", help="measure the pod creates alone")
    parser.add_argument("--rounds", type=int, default=1, help="with --creates-only: this many runs, one row each")
    args = parser.parse_args()
    if args.creates_only:
        creates_alone(args)
        return
    if args.storage != "sqlite":
        compare_stores(args)
        return
    with tempfile.TemporaryDirectory(prefix="svcnet-bench-") as tmp:
        tmp_path = Path(tmp)
        # The reference just before and just after the API run (the mean): on a shared machine
        # the raw rate itself moves with other load.
        blobs = [json.dumps(pod(i), separators=(",", ":")).encode() for i in range(args.pods)]
        raw_before = raw_sqlite_inserts(tmp_path / "raw-before.db", blobs)
        results = asyncio.run(run(args, tmp_path / "data"))
        raw_after = raw_sqlite_inserts(tmp_path / "raw-after.db", blobs)
        raw = (raw_before + raw_after) / 2
    print(f"pods: {args.pods}, create concurrency: {args.concurrency}, watchers: {args.watchers}, "
          f"cores: {os.cpu_count()}")
    print(f"create through API:  {results['create_per_s']:9.0f} objects/s "
          f"(p99 {results['create_p99_ms']:.1f} ms; SLO 1000 ms -> {1000 / results['create_p99_ms']:.0f}x "
          f"under)")
    print(f"server CPU per create: {results['create_server_cpu_us']:7.0f} us (all threads, HTTP and TLS included)")
    print(f"client CPU per create: {results['create_client_cpu_us']:7.0f} us (this script: its HTTP/1.1 client over TLS; "
          f"it shares the cores)")
    if args.services:
        print(f"create Services:     {results['service_per_s']:9.0f} objects/s (p99 "
              f"{results['service_p99_ms']:.1f} ms; server CPU {results['service_server_cpu_us']:.0f} us "
              f"a create; {args.services}, half NodePort)")
    print(f"raw SQLite insert:   {raw:9.0f} rows/s (WAL, synchronous=FULL, one txn per row; "
          f"{raw_before:.0f} before, {raw_after:.0f} after the API run)")
    print(f"API / raw SQLite:    {results['create_per_s'] / raw:9.2f}")
    for label in ("json", "table"):
        ms, ref = results[f"list_{label}_ms"], results[f"list_{label}_ref_ms"]
        print(f"list {args.pods} pods ({label}): {ms:9.1f} ms (json.dumps of the same body here: {ref:.1f} ms, "
              f"ratio {ms / ref:.2f}; SLO 30000 ms -> {30000 / ms:.0f}x under; "
              f"first list {results[f'list_{label}_first_ms']:.1f} ms)")
    print(f"list {args.pods} pods (json, pages of 500): {results['list_paged_ms']:9.1f} ms "
          f"(ratio to one list: {results['list_paged_ms'] / results['list_json_ms']:.2f})")
    print(f"watch fan-out to {args.watchers}: p50 {results['watch_p50_ms']:.1f} ms, "
          f"p99 {results['watch_p99_ms']:.1f} ms (vs 1000 ms: {1000 / results['watch_p99_ms']:.0f}x under)")
    print(f"SQLite bytes/object: {results['bytes_per_object']:9.0f}")
    print(f"API server memory at {args.pods} pods: RSS {results['apiserver_rss_mb']:.0f} MiB, "
          f"peak {results['apiserver_peak_rss_mb']:.0f} MiB "
          f"({results['apiserver_rss_mb'] * 1024 / args.pods:.1f} KiB a pod)")


def creates_alone(args: argparse.Namespace) -> None:
    """The pod creates alone, --rounds times, each between two raw SQLite references."""
    blobs = [json.dumps(pod(i), separators=(",", ":")).encode() for i in range(args.pods)]
    print(f"pods: {args.pods}, create concurrency: {args.concurrency}, cores: {os.cpu_count()}")
    print("| round | creates/s | raw SQLite rows/s | API / raw | server CPU/create (us) | "
          "client CPU/create (us) | p99 (ms) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="svcnet-bench-") as tmp:
        tmp_path = Path(tmp)
        for run_index in range(args.rounds):
            raw_before = raw_sqlite_inserts(tmp_path / f"raw-{run_index}-before.db", blobs)
            r = asyncio.run(run(args, tmp_path / f"data-{run_index}", creates_only=True))
            raw_after = raw_sqlite_inserts(tmp_path / f"raw-{run_index}-after.db", blobs)
            raw = (raw_before + raw_after) / 2
            print(f"| {run_index + 1} | {r['create_per_s']:.0f} | {raw:.0f} | {r['create_per_s'] / raw:.2f} | "
                  f"{r['create_server_cpu_us']:.0f} | {r['create_client_cpu_us']:.0f} | {r['create_p99_ms']:.1f} |",
                  flush=True)


def run_on_etcd(args: argparse.Namespace, tmp_path: Path) -> dict:
    """The API part with a local etcd (one member on loopback, data in tmp_path) as the store."""
    from svcnet.kernel.etcdserver import LocalEtcd, new_member

    etcd = LocalEtcd(new_member("bench", tmp_path / "etcd"), tmp_path / "etcd.log")
    try:
        etcd.wait_ready()
        return asyncio.run(run(args, tmp_path / "data-etcd", ("--storage", etcd.dsn)))
    finally:
        etcd.stop()


def compare_stores(args: argparse.Namespace) -> None:
    """--storage etcd|both: the API figures per store, side by side (SQLite first when both)."""
    stores = ["sqlite", "etcd"] if args.storage == "both" else ["etcd"]
    figures: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="svcnet-bench-") as tmp:
        tmp_path = Path(tmp)
        for store in stores:
            figures[store] = (asyncio.run(run(args, tmp_path / "data-sqlite")) if store == "sqlite"
                              else run_on_etcd(args, tmp_path))
    print(f"pods: {args.pods}, create concurrency: {args.concurrency}, watchers: {args.watchers}, "
          f"cores: {os.cpu_count()}")
    rows = (("create through API (objects/s)", "create_per_s", "{:.0f}"),
            ("create p99 (ms)", "create_p99_ms", "{:.1f}"),
            ("server CPU per create (us)", "create_server_cpu_us", "{:.0f}"),
            (f"list {args.pods} pods, JSON (ms)", "list_json_ms", "{:.1f}"),
            (f"list {args.pods} pods, Table (ms)", "list_table_ms", "{:.1f}"),
            (f"list {args.pods} pods, pages of 500 (ms)", "list_paged_ms", "{:.1f}"),
            (f"watch fan-out to {args.watchers}, p50 (ms)", "watch_p50_ms", "{:.1f}"),
            (f"watch fan-out to {args.watchers}, p99 (ms)", "watch_p99_ms", "{:.1f}"),
            ("API server RSS (MiB)", "apiserver_rss_mb", "{:.0f}"))
    print("| | " + " | ".join(stores) + (" | etcd / SQLite |" if len(stores) == 2 else " |"))
    print("|---|" + "---:|" * (len(stores) + (len(stores) == 2)))
    for label, key, form in rows:
        cells = [form.format(figures[store][key]) for store in stores]
        ratio = [f"{figures['etcd'][key] / figures['sqlite'][key]:.2f}"] if len(stores) == 2 else []
        print(f"| {label} | " + " | ".join(cells + ratio) + " |")


if __name__ == "__main__":
    main()
