"""Benchmark `svcnet dns` against unbound with dnsperf, and measure the zone's memory.

    .venv/bin/python bench/bench_dns.py [--services 2000] [--seconds 8] [--rounds 2] [--skip-memory]

Both servers get the same records (svcnet from a generated manifest, unbound as
local-data in a static local-zone), one thread each (svcnet --workers 1,
unbound num-threads: 1), and dnsperf sends three query mixes:

- internal: A queries for existing Service names (cache-hot: every name was asked before);
- nxdomain: names under the zone that do not exist;
- search:   what a pod's resolver (ndots:5, search <ns>.svc.cluster.local svc.cluster.local
            cluster.local) sends for `svc-N.ns1` and for `host-N.example.com` before going out.

QPS comes from dnsperf at full speed (100 queries outstanding); p99 latency from
a second, rate-limited dnsperf run in verbose mode (per-query latencies). Per mix
the two servers take turns (--rounds runs each, the median kept), so a burst of
load from other jobs on the machine falls on both rather than on one; the server
process's CPU time per answered query (from /proc) is reported too, as it
depends less on such bursts than QPS does.
Memory: RSS growth of a process that builds the zone for 10,000 Services (each
with an EndpointSlice of 10 endpoints) and 100,000 Pods.
Needs the Debian packages dnsperf and unbound: run as root it installs them with
apt-get when they are missing; otherwise, without them, it says so and falls back
to a Python load generator for svcnet alone.
"""
from __future__ import annotations

import argparse
import gc
import os
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import memory_kib

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def free_port() -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            with socket.socket() as s:  # the same port must be free for TCP too
                s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue


# ------------------------------------------------------------------ the zone

def service_ip(i: int) -> str:
    return f"10.96.{(i >> 8) & 0xFF}.{i & 0xFF or 1}"


def manifest(services: int) -> str:
    docs = []
    for ns in ("default", "ns1"):
        for i in range(services // 2):
            ip = service_ip(i + (0 if ns == "default" else 30000))
            docs.append(f"""apiVersion: v1
kind: Service
metadata: {{name: svc-{i}, namespace: {ns}}}
spec: {{clusterIP: {ip}, clusterIPs: [{ip}], ports: [{{name: http, protocol: TCP, port: 80}}]}}""")
    docs.append("apiVersion: v1\nkind: Namespace\nmetadata: {name: ns1}")
    return "\n---\n".join(docs) + "\n"


def unbound_conf(port: int, services: int, directory: Path) -> str:
    lines = ["server:", "  interface: 127.0.0.1", f"  port: {port}", "  num-threads: 1",
             "  do-daemonize: no", '  username: ""', '  chroot: ""', f'  directory: "{directory}"',
             '  pidfile: ""', "  use-syslog: no", "  verbosity: 0", "  access-control: 127.0.0.0/8 allow",
             "  do-ip6: no", '  module-config: "iterator"', "  so-reuseport: no",
             '  local-zone: "cluster.local." static',
             '  local-data: "cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. '
             '1 7200 1800 86400 5"',
             "remote-control:", "  control-enable: no"]
    for ns in ("default", "ns1"):
        for i in range(services // 2):
            ip = service_ip(i + (0 if ns == "default" else 30000))
            lines.insert(-2, f'  local-data: "svc-{i}.{ns}.svc.cluster.local. 5 IN A {ip}"')
    return "\n".join(lines) + "\n"


def query_files(directory: Path, services: int) -> dict[str, Path]:
    half = services // 2
    mixes = {
        "internal": [f"svc-{i}.default.svc.cluster.local A" for i in range(half)],
        "nxdomain": [f"nope-{i}.default.svc.cluster.local A" for i in range(half)],
        "search": [line for i in range(half // 2) for line in (
            f"svc-{i}.ns1.default.svc.cluster.local A", f"svc-{i}.ns1.svc.cluster.local A",
            f"host-{i}.example.com.default.svc.cluster.local A",
            f"host-{i}.example.com.svc.cluster.local A", f"host-{i}.example.com.cluster.local A")],
    }
    out = {}
    for name, lines in mixes.items():
        path = directory / f"{name}.txt"
        path.write_text("\n".join(lines) + "\n")
        out[name] = path
    return out


# ------------------------------------------------------------------ dnsperf

def ensure_tools() -> bool:
    """dnsperf and unbound on PATH, installing the Debian packages when root and they are missing."""
    missing = [pkg for pkg, tool in (("dnsperf", "dnsperf"), ("unbound", "unbound")) if not shutil.which(tool)]
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"installing {' '.join(missing)} (apt-get)", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=False, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], env=env,
                       check=False, capture_output=True)
    return bool(shutil.which("dnsperf") and shutil.which("unbound"))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def dnsperf_qps(port: int, data: Path, seconds: int, pid: int | None = None) -> tuple[float, float]:
    """(QPS, the server's CPU microseconds per completed query, or NaN without a pid)."""
    before = cpu_seconds(pid) if pid else 0.0
    out = subprocess.run(["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(data), "-l", str(seconds),
                          "-c", "1", "-T", "1", "-q", "100"], capture_output=True, text=True).stdout
    used = cpu_seconds(pid) - before if pid else float("nan")
    qps = completed = None
    for line in out.splitlines():
        if "Queries per second:" in line:
            qps = float(line.split(":")[1])
        elif "Queries completed:" in line:
            completed = int(line.split(":")[1].split()[0])
    if qps is None or not completed:
        raise RuntimeError(out)
    return qps, used / completed * 1e6


def dnsperf_p99(port: int, data: Path, rate: int, seconds: int = 3) -> float:
    out = subprocess.run(["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(data), "-l", str(seconds),
                          "-c", "1", "-T", "1", "-Q", str(rate), "-v"], capture_output=True, text=True).stdout
    latencies = []
    for line in out.splitlines():
        if line.startswith(">"):
            try:
                latencies.append(float(line.split()[-1]))
            except ValueError:
                continue
    if not latencies:
        return float("nan")
    latencies.sort()
    return latencies[int(len(latencies) * 0.99) - 1]


def warm(port: int, data: Path) -> None:
    subprocess.run(["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(data), "-n", "1", "-q", "50"],
                   capture_output=True, text=True)


def wait_udp(port: int, timeout: float = 30) -> None:
    query = struct.pack("!HHHHHH", 1, 0x0100, 1, 0, 0, 0) + b"\x07cluster\x05local\x00\x00\x06\x00\x01"
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.3)
        while time.monotonic() < deadline:
            s.sendto(query, ("127.0.0.1", port))
            try:
                s.recv(512)
                return
            except OSError:
                continue
    raise RuntimeError(f"nothing answers on {port}")


# ----------------------------------------------------------- python fallback

def python_load(port: int, data: Path, seconds: float) -> float:
    """A single-socket pipelined UDP load generator: ~ a weaker dnsperf, for when it is missing."""
    names = [line.split()[0] for line in data.read_text().splitlines() if line]
    packets = [struct.pack("!HHHHHH", i & 0xFFFF, 0x0100, 1, 0, 0, 0)
               + b"".join(bytes([len(p)]) + p.encode() for p in n.split(".")) + b"\x00\x00\x01\x00\x01"
               for i, n in enumerate(names)]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(("127.0.0.1", port))
    sock.settimeout(1)
    done = 0
    start = time.monotonic()
    index = 0
    while time.monotonic() - start < seconds:
        for _ in range(50):
            sock.send(packets[index % len(packets)])
            index += 1
        for _ in range(50):
            try:
                sock.recv(4096)
                done += 1
            except OSError:
                break
    return done / (time.monotonic() - start)


# ------------------------------------------------------------------- memory

def memory_child(services: int, pods: int) -> None:
    from svcnet.dns.zone import ZoneData
    gc.collect()
    before = memory_kib()
    data = ZoneData()
    per_service = max(1, pods // services)
    pod_index = 0
    started = time.perf_counter()
    for i in range(services):
        ns = f"ns{i % 100}"
        data.apply("Service", {"metadata": {"name": f"svc-{i}", "namespace": ns},
                               "spec": {"clusterIP": service_ip(i), "clusterIPs": [service_ip(i)],
                                        "ports": [{"name": "http", "protocol": "TCP", "port": 80}]}})
        endpoints = []
        for _ in range(per_service):
            ip = f"10.{128 + (pod_index >> 16)}.{(pod_index >> 8) & 0xFF}.{pod_index & 0xFF}"
            endpoints.append({"addresses": [ip], "conditions": {"ready": True},
                              "targetRef": {"kind": "Pod", "name": f"pod-{pod_index}", "namespace": ns}})
            data.apply("Pod", {"metadata": {"name": f"pod-{pod_index}", "namespace": ns},
                               "status": {"podIP": ip}})
            pod_index += 1
        data.apply("EndpointSlice", {"metadata": {"name": f"svc-{i}-abcde", "namespace": ns,
                                                  "labels": {"kubernetes.io/service-name": f"svc-{i}"}},
                                     "ports": [{"name": "http", "protocol": "TCP", "port": 8080}],
                                     "endpoints": endpoints})
    for n in range(100):
        data.apply("Namespace", {"metadata": {"name": f"ns{n}"}})
    elapsed = time.perf_counter() - started
    gc.collect()
    after = memory_kib()
    print(f"{after - before} {elapsed:.2f} {len(data.services)} {pod_index}")


def measure_memory(services: int, pods: int) -> tuple[float, float]:
    out = subprocess.run([sys.executable, __file__, "--memory-child", str(services), str(pods)],
                         capture_output=True, text=True, check=True, cwd=REPO).stdout.split()
    return int(out[0]) / 1024, float(out[1])


# --------------------------------------------------------------------- main

def start_svcnet(manifest_path: Path, port: int, workers: int, log: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "svcnet.dns", "--listen", f"127.0.0.1:{port}", "--from",
                             str(manifest_path), "--upstream", "none", "--workers", str(workers)],
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT, cwd=REPO)
    wait_udp(port)
    return proc


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, default=2000)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2, help="full-speed runs per server and mix (median kept)")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--memory-child", nargs=2, type=int)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(*args.memory_child)
        return 0
    print(f"machine: {os.cpu_count()} cores; {args.services} Services; {args.seconds} s per run, "
          f"{args.rounds} round(s)")
    tmp = Path(tempfile.mkdtemp(prefix="svcnet-bench-dns-"))
    try:
        files = query_files(tmp, args.services)
        zone_file = tmp / "zone.yaml"
        zone_file.write_text(manifest(args.services))
        have_tools = ensure_tools()
        svc_port = free_port()
        svcnet = start_svcnet(zone_file, svc_port, 1, tmp / "svcnet.log")
        servers = {"svcnet (1 worker)": (svc_port, svcnet.pid)}
        unbound = None
        # label -> mix -> (QPS, p99 seconds, CPU microseconds per query)
        results: dict[str, dict[str, tuple[float, float, float]]] = {}
        try:
            if have_tools:
                ub_port = free_port()
                (tmp / "unbound.conf").write_text(unbound_conf(ub_port, args.services, tmp))
                unbound = subprocess.Popen(["unbound", "-d", "-c", str(tmp / "unbound.conf")],
                                           stdout=open(tmp / "unbound.log", "ab"), stderr=subprocess.STDOUT)
                wait_udp(ub_port)
                servers["unbound (1 thread)"] = (ub_port, unbound.pid)
            else:
                print("dnsperf/unbound not installed (apt-get install dnsperf unbound): "
                      "Python load generator, svcnet only")
            for label in servers:
                results[label] = {}
            for mix, path in files.items():
                if not have_tools:
                    qps = python_load(svc_port, path, args.seconds)
                    results["svcnet (1 worker)"][mix] = (qps, float("nan"), float("nan"))
                    continue
                for port, _ in servers.values():
                    warm(port, path)
                runs: dict[str, list[tuple[float, float]]] = {label: [] for label in servers}
                for _ in range(args.rounds):  # the servers take turns
                    for label, (port, pid) in servers.items():
                        runs[label].append(dnsperf_qps(port, path, args.seconds, pid))
                for label, (port, _) in servers.items():
                    qps = statistics.median(q for q, _ in runs[label])
                    cpu = statistics.median(c for _, c in runs[label])
                    p99 = dnsperf_p99(port, path, rate=max(1000, int(qps * 0.5)))
                    results[label][mix] = (qps, p99, cpu)
                    print(f"  {mix:9s} {label:20s} QPS {', '.join(f'{q:,.0f}' for q, _ in runs[label])}",
                          flush=True)
        finally:
            stop(svcnet)
            if unbound is not None:
                stop(unbound)
        if have_tools and (os.cpu_count() or 1) > 1:
            port = free_port()
            proc = start_svcnet(zone_file, port, os.cpu_count() or 2, tmp / "svcnet-n.log")
            try:
                label = f"svcnet ({os.cpu_count()} workers)"
                results[label] = {}
                for mix, path in files.items():
                    warm(port, path)
                    out = subprocess.run(["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(path), "-l",
                                          str(args.seconds), "-c", "8", "-T", "1", "-q", "200"],
                                         capture_output=True, text=True).stdout
                    qps = next(float(line.split(":")[1]) for line in out.splitlines()
                               if "Queries per second:" in line)
                    results[label][mix] = (qps, float("nan"), float("nan"))
            finally:
                stop(proc)
        print()
        print(f"| server | {' | '.join(f'{m} QPS | {m} p99 ms | {m} CPU µs/q' for m in files)} |")
        print(f"|---|{'---|---|---|' * len(files)}")
        for label, by_mix in results.items():
            cells = " | ".join(f"{q:,.0f} | {p * 1000:.2f} | {c:.1f}" for q, p, c in by_mix.values())
            print(f"| {label} | {cells} |")
        if "unbound (1 thread)" in results:
            ratios = [results["svcnet (1 worker)"][m][0] / results["unbound (1 thread)"][m][0] for m in files]
            print(f"\nsvcnet / unbound QPS: {', '.join(f'{m} {r:.2f}' for m, r in zip(files, ratios, strict=True))}"
                  f" (mean {statistics.mean(ratios):.2f})")
        if not args.skip_memory:
            mib, seconds = measure_memory(10_000, 100_000)
            print(f"\nzone build: 10,000 Services (+ a 10-endpoint EndpointSlice each) and 100,000 Pods: "
                  f"RSS +{mib:.0f} MiB, {seconds:.1f} s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
