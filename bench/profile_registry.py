"""In-process profile of the API server's hot paths, without HTTP or disk.

Creates pods through the real registry (defaulting, strict fields, validation,
managedFields) over MemoryStore, lists them and builds their Table, then
merge-patches one pod that N watches follow (each event encoded per watcher,
as the HTTP layer does), and prints per-phase timings; --profile PHASE adds
that phase's top cProfile entries. Times are this process's CPU time, so other
load on a shared machine barely moves them.

    .venv/bin/python bench/profile_registry.py --pods 2000 [--profile create|list|table|watch]
    .venv/bin/python bench/profile_registry.py --pods 3000 --stages

--stages instead times each stage of a pod create as the API server serves it, over
SqliteStore in a temporary directory (fsync included in wall time, not in CPU): the body's
decode, each registry stage, the store's write, and the response's encoding, in CPU
microseconds per create.
"""
from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import datetime as dt  # noqa: E402

from bench_apiserver import pod  # noqa: E402

from svcnet.api.resources import lookup  # noqa: E402
from svcnet.apiserver.daemon import build_registry  # noqa: E402
from svcnet.apiserver.http import ResponseFormat, decode_body  # noqa: E402
from svcnet.apiserver.patch import json_merge_patch  # noqa: E402
from svcnet.apiserver.printers import to_table  # noqa: E402
from svcnet.apiserver.registry import ListPage, WriteOptions  # noqa: E402
from svcnet.apiserver.responses import object_response  # noqa: E402
from svcnet.apiserver.watch import WatchEncoder  # noqa: E402
from svcnet.storage.memory import MemoryStore  # noqa: E402
from svcnet.storage.sqlite import SqliteStore  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pods", type=int, default=2000)
    parser.add_argument("--watchers", type=int, default=100)
    parser.add_argument("--writes", type=int, default=50)
    parser.add_argument("--profile", choices=("create", "list", "table", "watch"),
                        help="print this phase's top functions")
    parser.add_argument("--stages", action="store_true", help="CPU per stage of a create over SQLite")
    args = parser.parse_args()
    if args.stages:
        with tempfile.TemporaryDirectory(prefix="svcnet-profile-") as tmp:
            create_stages(args.pods, Path(tmp))
        return
    profiler = cProfile.Profile()

    def phase(name: str, run: Callable[[], object]) -> float:
        if args.profile == name:
            profiler.enable()
        start = time.process_time()
        run()
        elapsed = time.process_time() - start
        if args.profile == name:
            profiler.disable()
        return elapsed

    registry = build_registry(MemoryStore())
    registry.ensure_system_namespaces()
    pods = lookup("", "v1", "pods")
    assert pods is not None
    bodies = [pod(i) for i in range(args.pods)]

    def create_all() -> None:
        for body in bodies:
            registry.create(pods, "default", body, WriteOptions(field_manager="bench", field_validation="Strict"))

    create_s = phase("create", create_all)
    listed: list[ListPage] = []
    list_s = phase("list", lambda: listed.append(registry.list(pods, None)))
    items = listed[0].items
    table_s = phase("table", lambda: to_table(pods, items, include_object="Metadata", now=dt.datetime.now(dt.UTC),
                                              list_meta={"resourceVersion": listed[0].resource_version}))

    # Watch fan-out: what one write costs with N watches open, each getting its event encoded.
    encoders = [WatchEncoder(pods, ResponseFormat(None, "application/json"), lambda: dt.datetime.now(dt.UTC))
                for _ in range(args.watchers)]
    delivered: list[bytes] = []
    watches = [registry.store.watch(pods.storage_prefix("default"), registry.store.current_revision(),
                                    lambda event, encoder=encoder: delivered.append(
                                        encoder.line(event.type, event.value)),
                                    predicate=lambda obj: obj["metadata"]["name"] == "bench-000000")
               for encoder in encoders]

    def write_all() -> None:
        for w in range(args.writes):
            registry.patch_apply(pods, "default", "bench-000000",
                                 lambda current, w=w: json_merge_patch(current, {"metadata": {"labels": {"write": str(w)}}}),
                                 WriteOptions(field_manager="bench"))

    watch_s = phase("watch", write_all)
    assert len(delivered) == args.writes * args.watchers, len(delivered)
    for watch in watches:
        watch.cancel()

    print(f"create: {args.pods / create_s:8.0f} objects/s  ({create_s * 1000 / args.pods:.3f} ms each)")
    print(f"list:   {list_s * 1000:8.1f} ms for {len(items)} pods (storage decode)")
    print(f"table:  {table_s * 1000:8.1f} ms for {len(items)} pods")
    print(f"watch:  {watch_s * 1000 / args.writes:8.2f} ms per patch delivered to {args.watchers} watchers")
    if args.profile:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(45)


def create_stages(count: int, tmp: Path) -> None:
    """CPU microseconds per pod create, stage by stage, as the API server serves a POST."""
    store = SqliteStore(str(tmp / "state.db"))
    registry = build_registry(store)
    registry.ensure_system_namespaces()
    pods = lookup("", "v1", "pods")
    assert pods is not None
    spent: dict[str, float] = {}

    def timed(name: str, owner: object, attr: str) -> None:
        call = getattr(owner, attr)

        def wrapper(*a, **kw):
            start = time.process_time()
            try:
                return call(*a, **kw)
            finally:
                spent[name] = spent.get(name, 0.0) + time.process_time() - start
        setattr(owner, attr, wrapper)

    timed("field check (unknown fields, types)", registry, "_check_fields")
    timed("pruning unknown fields", registry, "_prune_fields")
    timed("defaulting", registry, "_default")
    timed("validation", registry, "_validate")
    timed("managedFields", registry, "_managed_fields")
    timed("size check (encode)", registry, "_check_size")
    timed("store: namespace read", store, "get")
    timed("store: write (encode, SQL, commit, decode)", store, "create")
    raws = [json.dumps(pod(i)).encode() for i in range(count)]
    fmt = ResponseFormat(None, "application/json")
    decode = encode = total = 0.0
    for raw in raws:
        start = time.process_time()
        body = decode_body("application/json", raw).value
        middle = time.process_time()
        obj = registry.create(pods, "default", body, WriteOptions(field_manager="bench"))
        end = time.process_time()
        object_response(obj, pods, fmt, dt.datetime.now(dt.UTC), status=201)
        done = time.process_time()
        decode += middle - start
        total += end - middle
        encode += done - end
    store.close()
    rows = [("request body decode (JSON, duplicate keys)", decode), *spent.items(),
            ("registry, the rest (metadata, admission, steps)", total - sum(spent.values())),
            ("response (encode, aiohttp Response)", encode)]
    for name, seconds in rows:
        print(f"{name:50s} {seconds * 1e6 / count:7.1f} us")
    print(f"{'total in the process (no HTTP parsing, no TLS)':50s} {(decode + total + encode) * 1e6 / count:7.1f} us")


if __name__ == "__main__":
    main()
