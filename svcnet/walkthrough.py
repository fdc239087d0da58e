"""`svcnet walkthrough`: the seed note's steps against a running cluster, printed as the seed shows them.

It applies examples/hostnames.yaml (the seed's Deployment and Service) and the
StatefulSet variant, waits for the pods, then runs what a user would type —
kubectl, curl from a node and from a pod, iptables in a node, nslookup in a
pod — and prints each command with its output.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from svcnet.agent.cluster import load_cluster_spec
from svcnet.config import DEFAULT_DATA_DIR

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


class Walkthrough:
    def __init__(self, data_dir: Path, examples: Path) -> None:
        self.data_dir = data_dir
        self.examples = examples
        spec = load_cluster_spec(data_dir)
        if spec is None:
            raise SystemExit(f"svcnet walkthrough: no cluster in {data_dir}: start one with svcnet up")
        self.plan = spec.plan()
        self.env = {**os.environ, "KUBECONFIG": str(data_dir / "kubeconfig")}

    # ---- running things as a user would
    def run(self, argv: list[str], show: str | None = None, check: bool = False) -> str:
        result = subprocess.run(argv, capture_output=True, text=True, env=self.env, timeout=60)
        if show is not None:
            print(f"$ {show}")
            print((result.stdout + result.stderr).rstrip())
            print()
        if check and result.returncode != 0:
            raise SystemExit(f"svcnet walkthrough: {' '.join(argv)} failed: {result.stderr.strip()}")
        return result.stdout

    def kubectl(self, *args: str, show: bool = True) -> str:
        return self.run(["kubectl", *args], f"kubectl {' '.join(args)}" if show else None, check=True)

    def kubectl_json(self, *args: str) -> dict:
        return json.loads(self.kubectl(*args, "-o", "json", show=False))

    def in_node(self, node: int, *argv: str, show: str) -> str:
        return self.run(["ip", "netns", "exec", self.plan.nodes[node].namespace, *argv],
                        f"{show}    # in {self.plan.nodes[node].name}'s namespace")

    def in_pod(self, pod: str, *argv: str, show: str) -> str:
        return self.run([sys.executable, "-m", "svcnet", "exec", "--data-dir", str(self.data_dir), pod,
                         "--", *argv], f"{show}    # inside pod {pod}")

    def wait_ready(self, selector: str, count: int, timeout: float = 180) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pods = self.kubectl_json("get", "pods", "-l", selector)["items"]
            ready = [p for p in pods if any(c.get("type") == "Ready" and c.get("status") == "True"
                                            for c in (p.get("status") or {}).get("conditions") or [])]
            if len(ready) == count and len(pods) == count:
                return sorted(pods, key=lambda p: p["metadata"]["name"])
            time.sleep(0.5)
        raise SystemExit(f"svcnet walkthrough: pods {selector} not Ready after {timeout:g}s")

    # ---- the seed's steps
    def main(self) -> None:
        print("== 1. the seed's Service and Deployment, and the StatefulSet variant\n")
        self.kubectl("apply", "-f", str(self.examples / "hostnames.yaml"))
        self.kubectl("apply", "-f", str(self.examples / "hostnames-statefulset.yaml"))
        pods = self.wait_ready("app=hostnames", 3)
        self.wait_ready("app=hostnames-sts", 3)
        print("== 2-4. pods, endpoints, the Service\n")
        self.kubectl("get", "pod", "-owide")
        self.kubectl("get", "ep", "hostnames")
        self.kubectl("get", "svc", "hostnames")
        ip = self.kubectl_json("get", "svc", "hostnames")["spec"]["clusterIP"]
        names = {p["metadata"]["name"] for p in pods}
        deadline = time.monotonic() + 30  # the endpoints and rules follow within a sync or two
        seen: set[str] = set()
        while seen != names and time.monotonic() < deadline:
            out = self.run(["ip", "netns", "exec", self.plan.nodes[0].namespace, "curl", "-s",
                            "--max-time", "2", f"{ip}:80"]).strip()
            seen.add(out)
        self.in_node(0, "curl", "-s", f"{ip}:80", show=f"curl {ip}:80")
        self.in_pod(pods[0]["metadata"]["name"], "curl", "-s", f"{ip}:80", show=f"curl {ip}:80")
        print("== 5. kube-proxy's rules in a node\n")
        self.in_node(0, "iptables", "-t", "nat", "-nvL", "PREROUTING", show="iptables -t nat -nvL PREROUTING")
        rules = self.run(["ip", "netns", "exec", self.plan.nodes[0].namespace, "iptables", "-t", "nat", "-S",
                          "KUBE-SERVICES"])
        chain = next((line.split()[-1] for line in rules.splitlines()
                      if "default/hostnames:default cluster IP" in line and "KUBE-SVC-" in line), None)
        if chain:
            self.in_node(0, "iptables", "-t", "nat", "-nvL", chain, show=f"iptables -t nat -nvL {chain}")
        self.in_node(0, "iptables", "-t", "nat", "-nvL", "KUBE-POSTROUTING",
                     show="iptables -t nat -nvL KUBE-POSTROUTING")
        print("== 8-9. cluster DNS from inside a pod\n")
        pod = pods[0]["metadata"]["name"]
        self.in_pod(pod, "cat", "/etc/resolv.conf", show="cat /etc/resolv.conf")
        for name in ("hostnames", "kubernetes.default.svc.cluster.local",
                     "hostnames-sts.default.svc.cluster.local",
                     "hostnames-0.hostnames-sts.default.svc.cluster.local",
                     f"{pod}.hostnames.default.svc.cluster.local"):
            self.in_pod(pod, "nslookup", name, show=f"nslookup {name}")
        print("Stop the cluster with: svcnet down" + ("" if self.data_dir == DEFAULT_DATA_DIR
                                                     else f" --data-dir {self.data_dir}"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="svcnet walkthrough", description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR))
    parser.add_argument("--examples", default=str(EXAMPLES), help="where hostnames*.yaml are")
    args = parser.parse_args(argv)
    Walkthrough(Path(args.data_dir), Path(args.examples)).main()
    return 0
