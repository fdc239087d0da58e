"""Proxy sync cost in both modes: full sync and a one-endpoint partial sync, plan+render+apply, in a real netns.

For each size N (Services x E endpoints, one TCP port each) this builds the
proxy's state through the ChangeTracker (as watch events would), then measures
with the real adapters inside a throwaway network namespace.

iptables mode (`--modes iptables`):

- full sync: checkout + plan + render + `iptables-save` + ensure jumps + one
  `iptables-restore --noflush` of the whole ruleset;
- partial sync after one endpoint of one Service goes away (KEP-3453): only the
  top-level chains and that Service's chains are written;
- the same full ruleset restored again in the same run, so the ratio
  partial / full compares like with like on this machine at this moment.

nftables mode (`--modes nftables`), through RuleSyncer + NftablesWriter + NetnsNft:

- full sync into an empty namespace (a cold start: in steps from 1,000
  anonymous vmaps on, see svcnet/kernel/nft.py, else one `nft -f`);
- the reference: the bare `nft -f` of the same full ruleset text into another
  empty namespace (`ratio` = full sync / reference);
- partial syncs after one endpoint of one Service goes away, applied as a
  netlink batch (`path`), and the last one's text again through plain `nft -f`
  (`via nft -f`), which is what the partial sync cost before the batch path.

Both iptables backends are measured when their binaries exist (`--iptables-mode`
picks one). With iptables-nft the adapter may add `-S` to a big restore so that
iptables-nft-restore fetches the whole table at once instead of chain by chain
(see svcnet/proxy/iptables/apply.py); the `cache` column says whether the full
sync did.

Needs root (it creates and deletes its own namespace `svcnet-bench<pid>`; the
host namespace is never touched). Example:

    .venv/bin/python bench/bench_proxy.py --services 1000,5000,10000 --endpoints 10 --partials 5
    .venv/bin/python bench/bench_proxy.py --services 1000 --modes nftables --partials 3   # quick

Anchor: the issue aims for a one-service change at 10,000 Services applied in
under 100 ms; upstream (KEP-3453) reports that partial syncs make a change cost
roughly proportional to the changed service plus the top-level chains.
"""
from __future__ import annotations

import argparse
import copy
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from svcnet.kernel.iptables import NetnsIptables  # noqa: E402
from svcnet.kernel.netns import create_netns, delete_netns  # noqa: E402
from svcnet.kernel.nft import FAMILY_IPV4, KUBE_PROXY_TABLE, NetnsNft  # noqa: E402
from svcnet.proxy.changes import ChangeTracker  # noqa: E402
from svcnet.proxy.iptables.apply import IptablesApplier  # noqa: E402
from svcnet.proxy.nftables.apply import NftablesWriter  # noqa: E402
from svcnet.proxy.syncer import ProxySettings, RuleSyncer  # noqa: E402

TARGET_PARTIAL_MS = 100.0


def service_objects(count: int, endpoints: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    services, slices = [], []
    for i in range(count):
        name = f"svc-{i:05d}"
        services.append({
            "kind": "Service", "metadata": {"namespace": "default", "name": name},
            "spec": {"clusterIP": f"10.{96 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}",
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]},
        })
        addresses = []
        for j in range(endpoints):
            n = i * endpoints + j
            addresses.append({"addresses": [f"10.{244 + (n >> 16)}.{(n >> 8) & 255}.{n & 255}"],
                              "conditions": {"ready": True}, "nodeName": f"node-{1 + n % 2}"})
        slices.append({
            "kind": "EndpointSlice",
            "metadata": {"namespace": "default", "name": f"{name}-abcde",
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "endpoints": addresses,
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        })
    return services, slices


def loaded_tracker(services: list[dict[str, Any]], slices: list[dict[str, Any]]) -> tuple[ChangeTracker, float]:
    tracker = ChangeTracker("node-1")
    started = time.perf_counter()
    for service in services:
        tracker.service_update(None, service)
    for endpoint_slice in slices:
        tracker.endpoint_slice_update(endpoint_slice)
    return tracker, time.perf_counter() - started


def one_endpoint_less(slices: list[dict[str, Any]], k: int, endpoints: int) -> tuple[dict[str, Any], int]:
    """The k-th change: a Service spread over the cluster loses one or two endpoints."""
    index = (k * 7919) % len(slices)
    shrunk = copy.deepcopy(slices[index])
    shrunk["endpoints"] = shrunk["endpoints"][: endpoints - 1 - (k % 2)]
    return shrunk, index


def run_size(netns: str, count: int, endpoints: int, partials: int, mode: str | None) -> dict[str, Any]:
    backend = IptablesApplier(NetnsIptables(netns, mode=mode))
    services, slices = service_objects(count, endpoints)
    tracker, events_s = loaded_tracker(services, slices)
    syncer = RuleSyncer(tracker, backend, ProxySettings("node-1", cluster_cidrs=("10.244.0.0/16",),
                                                        node_ips=("192.168.0.106",)))

    full = syncer.sync()
    assert full.ok and full.full, full.error
    full_restore = backend.history[-1]
    full_text = full_restore.text

    partial_totals, partial_restores, partial_bytes = [], [], []
    for k in range(partials):
        shrunk, index = one_endpoint_less(slices, k, endpoints)
        tracker.endpoint_slice_update(shrunk)
        result = syncer.sync()
        assert result.ok and not result.full and result.changed == {f"default/svc-{index:05d}"}, result
        partial_totals.append(result.seconds)
        partial_restores.append(backend.history[-1].seconds)
        partial_bytes.append(len(backend.history[-1].text))

    # The same full ruleset again (the kernel already holds it: same work as a real full resync's restore).
    started = time.perf_counter()
    backend.restore("IPv4", full_text)
    full_again_s = time.perf_counter() - started

    return {
        "mode": backend.mode, "whole_table_cache": bool(full_restore.whole_table_cache),
        "services": count, "endpoints": endpoints, "events_s": events_s,
        "full_sync_s": full.seconds, "full_restore_s": full_restore.seconds,
        "full_bytes": len(full_text), "full_rules": full.families[0].nat_rules_total + full.families[0].filter_rules,
        "full_restore_again_s": full_again_s,
        "partial_sync_ms": statistics.median(partial_totals) * 1000,
        "partial_sync_max_ms": max(partial_totals) * 1000,
        "partial_restore_ms": statistics.median(partial_restores) * 1000,
        "partial_bytes": statistics.median(partial_bytes),
    }


class TimedNft:
    """NetnsNft as the writer sees it, timing each transaction and noting how it went in."""

    def __init__(self, nft: NetnsNft) -> None:
        self.nft = nft
        self.history: list[tuple[str, float, str]] = []  # (text, seconds, "batch" or "nft -f")

    def run(self, text: str) -> None:
        direct_before = self.nft.direct_runs
        started = time.perf_counter()
        self.nft.run(text)
        # A big transaction that did not go through plain nft -f went as a cold start in steps.
        path = "nft -f" if self.nft.direct_runs == direct_before else "steps" if len(text) > 1e6 else "batch"
        self.history.append((text, time.perf_counter() - started, path))

    def list_names(self, kind: str, family: str = FAMILY_IPV4, table: str = KUBE_PROXY_TABLE) -> tuple[str, ...]:
        return self.nft.list_names(kind, family, table)

    def table_exists(self, family: str = FAMILY_IPV4, table: str = KUBE_PROXY_TABLE) -> bool:
        return self.nft.table_exists(family, table)


def bare_nft_f(text: str) -> float:
    """`nft -f` of `text` into a fresh namespace, as a person would load the ruleset (no time limit):
    the reference."""
    netns = f"svcnet-benchref{os.getpid()}"
    create_netns(netns)
    try:
        started = time.perf_counter()
        subprocess.run(["ip", "netns", "exec", netns, "nft", "-f", "-"], input=text, text=True, check=True)
        return time.perf_counter() - started
    finally:
        delete_netns(netns)


def run_nftables(netns: str, count: int, endpoints: int, partials: int) -> dict[str, Any]:
    nft = TimedNft(NetnsNft(netns))
    services, slices = service_objects(count, endpoints)
    tracker, events_s = loaded_tracker(services, slices)
    syncer = RuleSyncer(tracker, None, ProxySettings("node-1", cluster_cidrs=("10.244.0.0/16",),
                                                     node_ips=("192.168.0.106",), mode="nftables"),
                        writer=NftablesWriter(nft))
    full = syncer.sync()
    assert full.ok and full.full, full.error
    full_text, full_apply_s, full_path = nft.history[-1]

    totals, applies, sizes, paths = [], [], [], set()
    for k in range(partials):
        shrunk, index = one_endpoint_less(slices, k, endpoints)
        tracker.endpoint_slice_update(shrunk)
        mark = len(nft.history)
        result = syncer.sync()
        assert result.ok and not result.full and result.changed == {f"default/svc-{index:05d}"}, result
        written = nft.history[mark:]
        totals.append(result.seconds)
        applies.append(sum(seconds for _, seconds, _ in written))
        sizes.append(sum(len(text) for text, _, _ in written))
        paths.update(path for _, _, path in written)
    last_partial = nft.history[-1][0]
    # The same partial transaction through plain `nft -f` (what it cost before the batch path).
    plain = NetnsNft(netns, direct=False)
    started = time.perf_counter()
    plain.run(last_partial)
    partial_nft_f_s = time.perf_counter() - started

    return {
        "services": count, "events_s": events_s, "full_sync_s": full.seconds, "full_apply_s": full_apply_s,
        "full_bytes": len(full_text), "full_path": full_path, "bare_nft_f_s": bare_nft_f(full_text),
        "partial_sync_ms": statistics.median(totals) * 1000, "partial_max_ms": max(totals) * 1000,
        "partial_apply_ms": statistics.median(applies) * 1000, "partial_bytes": statistics.median(sizes),
        "partial_path": "+".join(sorted(paths)), "partial_nft_f_ms": partial_nft_f_s * 1000,
    }


def in_throwaway_netns(fn: Any, *args: Any) -> dict[str, Any]:
    netns = f"svcnet-bench{os.getpid()}"
    create_netns(netns)
    try:
        return fn(netns, *args)
    finally:
        delete_netns(netns)


def print_iptables(sizes: list[int], args: argparse.Namespace) -> None:
    modes = ["nft", "legacy"] if args.iptables_mode == "both" else [args.iptables_mode]
    modes = [m for m in modes if shutil.which(f"iptables-{m}-restore")]
    if not modes:
        print("bench_proxy: no iptables-nft-restore or iptables-legacy-restore found", file=sys.stderr)
        return
    print("iptables mode")
    print(f"{'backend':>7} {'services':>8} {'rules':>8} {'full MB':>8} {'full sync':>10} {'python':>8} {'restore':>9} "
          f"{'again':>9} {'cache':>6} {'partial':>9} {'p.restore':>9} {'p. KB':>7} {'ratio':>7}")
    for mode in modes:
        for count in sizes:
            r = in_throwaway_netns(run_size, count, args.endpoints, args.partials, mode)
            ratio = r["partial_sync_ms"] / 1000 / r["full_restore_again_s"]
            cache = "table" if r["whole_table_cache"] else "chains"
            print(f"{r['mode']:>7} {count:>8} {r['full_rules']:>8} {r['full_bytes'] / 1e6:>8.1f} "
                  f"{r['full_sync_s']:>9.2f}s {r['full_sync_s'] - r['full_restore_s']:>7.2f}s "
                  f"{r['full_restore_s']:>8.2f}s {r['full_restore_again_s']:>8.2f}s "
                  f"{cache:>6} {r['partial_sync_ms']:>7.1f}ms {r['partial_restore_ms']:>7.1f}ms "
                  f"{r['partial_bytes'] / 1e3:>7.0f} {ratio:>7.3f}")
            sys.stdout.flush()
    print(f"(python = the full sync less its restore: plan, render and reading iptables-save; partial = median of "
          f"{args.partials} one-endpoint changes, plan+render+restore; ratio = partial "
          f"sync / restore of the full ruleset again in the same run (the reference); cache = how "
          f"iptables-nft-restore built its cache for the full sync)")


def print_nftables(sizes: list[int], args: argparse.Namespace) -> None:
    if not shutil.which("nft"):
        print("bench_proxy: nft not found", file=sys.stderr)
        return
    print("nftables mode")
    print(f"{'services':>8} {'full MB':>8} {'full sync':>10} {'python':>8} {'apply':>9} {'path':>6} {'bare nft':>9} "
          f"{'ratio':>6} {'partial':>9} {'p.apply':>9} {'path':>6} {'p. KB':>6} {'via nft -f':>10}")
    for count in sizes:
        r = in_throwaway_netns(run_nftables, count, args.endpoints, args.partials)
        print(f"{count:>8} {r['full_bytes'] / 1e6:>8.1f} {r['full_sync_s']:>9.2f}s "
              f"{r['full_sync_s'] - r['full_apply_s']:>7.2f}s {r['full_apply_s']:>8.2f}s {r['full_path']:>6} "
              f"{r['bare_nft_f_s']:>8.2f}s {r['full_sync_s'] / r['bare_nft_f_s']:>6.2f} "
              f"{r['partial_sync_ms']:>7.1f}ms {r['partial_apply_ms']:>7.1f}ms {r['partial_path']:>6} "
              f"{r['partial_bytes'] / 1e3:>6.1f} {r['partial_nft_f_ms']:>8.1f}ms")
        sys.stdout.flush()
    print(f"(python = the full sync less its transaction: plan and render; apply = the transaction, path = how "
          f"(steps: a cold start in steps, see svcnet/kernel/nft.py); bare nft = `nft -f` of the same full "
          f"ruleset into an empty namespace, the reference; ratio = full sync / bare nft (aim <= 1.1); partial = "
          f"median of {args.partials} one-endpoint changes, plan+render+apply, p.apply its transactions, path how "
          f"they were applied; via nft -f = the last partial transaction again through plain `nft -f`; "
          f"aim: partial at 10,000 under {TARGET_PARTIAL_MS:.0f} ms and within 2x of 1,000's)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", default="1000,5000,10000", help="comma-separated sizes (default 1000,5000,10000)")
    parser.add_argument("--endpoints", type=int, default=10)
    parser.add_argument("--partials", type=int, default=5, help="partial syncs measured per size")
    parser.add_argument("--modes", default="iptables,nftables",
                        help="comma-separated proxy modes to measure (default iptables,nftables)")
    parser.add_argument("--iptables-mode", choices=["both", "nft", "legacy"], default="both",
                        help="iptables backend(s) to measure in iptables mode (default: both, where installed)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench_proxy: needs root to create a network namespace", file=sys.stderr)
        return 1
    sizes = [int(s) for s in args.services.split(",") if s.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = set(modes) - {"iptables", "nftables"}
    if unknown:
        print(f"bench_proxy: unknown mode(s) {', '.join(sorted(unknown))}: iptables, nftables", file=sys.stderr)
        return 2
    if "iptables" in modes:
        print_iptables(sizes, args)
    if "nftables" in modes:
        print_nftables(sizes, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
