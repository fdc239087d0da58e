"""How much the SQLite store costs over the least a durable JSON store must do.

Creates N pod-sized objects through SqliteStore and, in the same run with the
same pragmas (WAL, synchronous=FULL), through raw sqlite3 (json.dumps, one
INSERT, one COMMIT per object); then lists them all both ways. The headline is
the ratio: absolute times depend on the disk's fsync.

Group commit: the same creates from --threads concurrent writers (16, as the
issue's API benchmark), for each batch limit in --batch-limits, as a ratio to
the raw single-row insert rate, with p99 create latency and the mean batch
(writes per transaction).

    .venv/bin/python bench/bench_storage.py --count 2000
"""
from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from svcnet.storage.base import Event  # noqa: E402
from svcnet.storage.sqlite import DEFAULT_BATCH_LIMIT, PRAGMAS, SqliteStore  # noqa: E402

PREFIX = "/registry/core/pods/default/"


def pod(index: int) -> dict[str, Any]:
    """A pod about the size of one a Deployment makes (no managedFields)."""
    name = f"hostnames-7d8f9c6b5-{index:05d}"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": f"3f1c2a4e-9b7d-4c1e-8f2a-{index:012d}",
            "generateName": "hostnames-7d8f9c6b5-",
            "creationTimestamp": "2025-01-01T00:00:00Z",
            "labels": {"app": "hostnames", "pod-template-hash": "7d8f9c6b5"},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": "hostnames-7d8f9c6b5",
                    "uid": "0a1b2c3d-4e5f-6789-abcd-ef0123456789",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "containers": [
                {
                    "name": "hostnames",
                    "image": "k8s.gcr.io/serve_hostname",
                    "ports": [{"containerPort": 9376, "protocol": "TCP"}],
                    "resources": {},
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                    "imagePullPolicy": "IfNotPresent",
                }
            ],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default",
            "nodeName": f"node-{index % 3 + 1}",
            "schedulerName": "default-scheduler",
            "enableServiceLinks": True,
            "preemptionPolicy": "PreemptLowerPriority",
            "priority": 0,
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            ],
        },
        "status": {
            "phase": "Running",
            "hostIP": "192.168.0.11",
            "podIP": f"10.244.1.{index % 250 + 2}",
            "podIPs": [{"ip": f"10.244.1.{index % 250 + 2}"}],
            "startTime": "2025-01-01T00:00:01Z",
            "qosClass": "BestEffort",
            "conditions": [
                {"type": kind, "status": "True", "lastProbeTime": None, "lastTransitionTime": "2025-01-01T00:00:02Z"}
                for kind in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
            ],
        },
    }


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def best_of(runs: int, action: Callable[[], object]) -> float:
    """Reads repeat cheaply: the best run filters out a garbage collection landing in one."""
    return min(timed(action) for _ in range(runs))


def file_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if not p.name.endswith(".lock"))


def bench_store(path: Path, objects: list[dict[str, Any]], watchers: int) -> tuple[float, float]:
    store = SqliteStore(str(path))
    received = [0]

    def count(event: Event) -> None:
        received[0] += 1  # a real watcher hands the event on and drops it; keeping them all would bench the GC

    for _ in range(watchers):
        store.watch(PREFIX, 0, count)

    def create_all() -> None:
        for obj in objects:
            store.create(PREFIX + obj["metadata"]["name"], obj)

    create_seconds = timed(create_all)
    list_seconds = best_of(3, lambda: store.list(PREFIX))
    assert len(store.list(PREFIX).records) == len(objects)
    assert received[0] == watchers * len(objects)
    store.close()
    return create_seconds, list_seconds


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def bench_concurrent(path: Path, objects: list[dict[str, Any]], threads: int,
                     batch_limit: int) -> tuple[float, float, float]:
    """Creates from `threads` writers at once: (seconds, p99 latency in s, writes per transaction)."""
    store = SqliteStore(str(path), batch_limit=batch_limit)
    latencies: list[float] = []
    shares = [objects[index::threads] for index in range(threads)]

    def writer(share: list[dict[str, Any]]) -> None:
        mine = []
        for obj in share:
            start = time.perf_counter()
            store.create(PREFIX + obj["metadata"]["name"], obj)
            mine.append(time.perf_counter() - start)
        latencies.extend(mine)

    workers = [threading.Thread(target=writer, args=(share,)) for share in shares]

    def create_all() -> None:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    seconds = timed(create_all)
    transactions, writes = store.group_commit_stats()
    assert writes == len(objects) == len(store.list(PREFIX).records)
    store.close()
    return seconds, percentile(latencies, 0.99), writes / transactions


def group_commit_rounds(root: Path, objects: list[dict[str, Any]], threads: int, limits: list[int],
                        rounds: int) -> dict[int, tuple[float, float, float, float]]:
    """Per limit, the medians over rounds of (objects/s, ratio to raw, p99 s, writes per transaction).

    Each round measures its own raw reference just before its group commit runs: fsync time on a
    shared machine drifts by several times within a minute, so only ratios taken close together mean
    anything.
    """
    samples: dict[int, list[tuple[float, float, float, float]]] = {limit: [] for limit in limits}
    for round_ in range(rounds):
        raw_seconds, _ = bench_raw(root / f"raw-{round_}.db", objects)
        for limit in limits:
            seconds, p99, per_transaction = bench_concurrent(root / f"group-{round_}-{limit}.db", objects,
                                                             threads, limit)
            samples[limit].append((len(objects) / seconds, raw_seconds / seconds, p99, per_transaction))
    return {limit: tuple(statistics.median(column) for column in zip(*runs, strict=True))  # type: ignore[misc]
            for limit, runs in samples.items()}


def bench_raw(path: Path, objects: list[dict[str, Any]]) -> tuple[float, float]:
    db = sqlite3.connect(str(path), isolation_level=None)
    for pragma in PRAGMAS:
        db.execute(pragma)
    db.execute("CREATE TABLE objects (key TEXT PRIMARY KEY, value TEXT NOT NULL)")

    def create_all() -> None:
        for obj in objects:
            db.execute("BEGIN IMMEDIATE")
            db.execute(
                "INSERT INTO objects (key, value) VALUES (?, ?)",
                (PREFIX + obj["metadata"]["name"], json.dumps(obj, separators=(",", ":"))),
            )
            db.execute("COMMIT")

    def list_all() -> None:
        rows = db.execute("SELECT key, value FROM objects WHERE key >= ? ORDER BY key", (PREFIX,)).fetchall()
        [json.loads(value) for _, value in rows]

    create_seconds = timed(create_all)
    list_seconds = best_of(3, list_all)
    db.close()
    return create_seconds, list_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=2000, help="objects to create (default 2000)")
    parser.add_argument("--dir", help="where to put the database files (default: a temporary directory)")
    parser.add_argument("--threads", type=int, default=16, help="concurrent writers for group commit (default 16)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="group commit rounds, each with its own raw reference; medians are printed (default 3)")
    parser.add_argument("--batch-limits", default=f"1,4,16,{DEFAULT_BATCH_LIMIT},10000",
                        help="batch limits to compare (default: 1,4,16,the default,etcd's 10000)")
    args = parser.parse_args()
    limits = [int(limit) for limit in args.batch_limits.split(",")]
    count: int = args.count
    objects = [pod(index) for index in range(count)]
    json_bytes = sum(len(json.dumps(obj, separators=(",", ":"))) for obj in objects) / count

    with tempfile.TemporaryDirectory(dir=args.dir) as directory:
        root = Path(directory)
        raw_create, raw_list = bench_raw(root / "raw.db", objects)
        store_create, store_list = bench_store(root / "store.db", objects, watchers=0)
        watched_create, _ = bench_store(root / "watched.db", objects, watchers=3)
        grouped = group_commit_rounds(root, objects, args.threads, limits, args.rounds)
        raw_size = file_bytes(root / "raw.db") / count
        store_size = file_bytes(root / "store.db") / count

    print(f"storage benchmark: {count} pod objects of {json_bytes:.0f} B JSON each, WAL + synchronous=FULL")
    print(f"  disk: {os.path.realpath(root.parent)}")
    print(f"  create, store / raw throughput:      {raw_create / store_create:6.2f}   (1.00 = no overhead over raw)")
    print(f"  create with 3 watchers / raw:        {raw_create / watched_create:6.2f}")
    print(f"  list all, store time / raw time:      {store_list / raw_list:6.2f}   (raw = SELECT + json.loads; best of 3)")
    print(f"  file size, store / raw per object:   {store_size / raw_size:6.2f}")
    print("figures:")
    print(f"  store create:          {count / store_create:9.0f} objects/s")
    print(f"  store create, 3 watch: {count / watched_create:9.0f} objects/s")
    print(f"  raw INSERT+COMMIT:     {count / raw_create:9.0f} objects/s")
    print(f"  store list all:        {store_list * 1000:9.1f} ms")
    print(f"  raw SELECT all:        {raw_list * 1000:9.1f} ms")
    print(f"  store file:            {store_size:9.0f} B/object  (raw {raw_size:.0f} B/object)")
    print(f"group commit, {args.threads} concurrent writers, median of {args.rounds} rounds"
          " (raw = one writer, one row per transaction, measured in each round):")
    print("  batch limit   objects/s   store / raw   p99 create   writes/transaction")
    for limit, (per_second, ratio, p99, per_transaction) in grouped.items():
        default = "  (default)" if limit == DEFAULT_BATCH_LIMIT else ""
        print(f"  {limit:11d}   {per_second:9.0f}   {ratio:11.2f}   {p99 * 1000:7.1f} ms"
              f"   {per_transaction:18.1f}{default}")


if __name__ == "__main__":
    main()
