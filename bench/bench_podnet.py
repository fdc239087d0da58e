"""Pod network setup alone (namespace, veth, addresses, routes, sysctls) as a node fills up.

Real kernel, no cluster: one node namespace with its bridge (the cluster
topology's), then `--pods` pod networks set up one after another with the
agent's kernel (`LinuxNetworkKernel(reuse_sockets=True)`); prints the setup
time of the first `--window` pods and of the last `--window` (median) and
their ratio, so a cost that grows with pods per node shows as a ratio above 1.
`--compare REF` runs the same against another checkout (e.g. a worktree of
r13-base) in a subprocess, for a before/after in one run. Everything it made
is deleted at the end, pass or fail.

    sudo .venv/bin/python bench/bench_podnet.py --pods 250 --compare /path/to/base/checkout
"""
from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_here(pods: int, window: int) -> tuple[float, float]:
    sys.path.insert(0, os.environ.get("SVCNET_BENCH_TREE", str(REPO)))
    from svcnet.agent.ipam import LeaseStore
    from svcnet.agent.network import setup_pod_network, teardown_pod_network
    from svcnet.cluster.topology import apply_topology, destroy_topology, plan_topology
    from svcnet.kernel.links import LinuxNetworkKernel

    print(f"svcnet from {Path(sys.modules['svcnet'].__file__ or '').parent}", file=sys.stderr)
    try:
        kernel = LinuxNetworkKernel(reuse_sockets=True)
    except TypeError:  # a checkout from before socket reuse
        kernel = LinuxNetworkKernel()
    cluster_id = "pn" + secrets.token_hex(3)
    plan = plan_topology(cluster_id, 1)
    node = plan.nodes[0]
    uids = [f"{i:08x}-0000-4000-8000-{secrets.token_hex(6)}" for i in range(pods)]
    times: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        leases = LeaseStore(Path(tmp) / "leases.json", node.pod_cidr_v4, node.pod_cidr_v6)
        try:
            apply_topology(kernel, plan)
            for uid in uids:
                began = time.perf_counter()
                setup_pod_network(kernel, node, uid, leases)
                times.append(time.perf_counter() - began)
        finally:
            for uid in uids:
                try:
                    teardown_pod_network(kernel, node, uid, leases)
                except Exception as exc:  # keep sweeping
                    print(f"teardown {uid}: {exc}", file=sys.stderr)
            if hasattr(kernel, "close"):
                kernel.close()
            destroy_topology(kernel, cluster_id)
    return statistics.median(times[:window]), statistics.median(times[-window:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=250)
    parser.add_argument("--window", type=int, default=10)
    parser.add_argument("--compare", default="", help="another checkout to run the same against, first")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench_podnet needs root (it creates network namespaces)", file=sys.stderr)
        return 1
    if args.child:
        first, last = run_here(args.pods, args.window)
        print(f"{first} {last}")
        return 0
    rows = []
    checkouts = [("reference", Path(args.compare))] if args.compare else []
    for label, checkout in [*checkouts, ("this tree", REPO)]:
        out = subprocess.run([sys.executable, __file__, "--child", "--pods", str(args.pods),
                              "--window", str(args.window)],
                             cwd=checkout, capture_output=True, text=True, timeout=1800,
                             env={**os.environ, "SVCNET_BENCH_TREE": str(checkout)})
        if out.returncode != 0:
            print(out.stderr, file=sys.stderr)
            return 1
        print(f"   ({out.stderr.strip().splitlines()[0]})")
        first, last = map(float, out.stdout.split()[-2:])
        rows.append((label, first, last))
        print(f"{label:>10}: pods 1-{args.window} {first * 1000:7.1f} ms each, pods "
              f"{args.pods - args.window + 1}-{args.pods} {last * 1000:7.1f} ms each: {last / first:5.2f}x", flush=True)
    if len(rows) == 2:
        print(f"at {args.pods} pods per node, this tree / reference: {rows[1][2] / rows[0][2]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
