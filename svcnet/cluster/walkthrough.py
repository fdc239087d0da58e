"""`svcnet walkthrough`: the seed note's nine steps against a running cluster, printed as the seed shows them.

It applies examples/hostnames.yaml (the seed's Deployment and Service), waits
for the pods, then runs what a user would type — kubectl, curl from a node and
from a pod, iptables in a node, ping, curl from the client outside the cluster —
and prints each command with its output. For the DNS steps it does what the
seed's author did: the `hostnames` Service becomes headless and a StatefulSet
`hostnames` names it (examples/hostnames-statefulset.yaml), so that
hostnames-0.hostnames.default.svc.cluster.local resolves. It can run again on
the same cluster: it puts the seed's ClusterIP Service back first.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from svcnet.api.objects import is_being_deleted, is_headless, is_pod_ready, name_of
from svcnet.cluster.spec import load_cluster_spec
from svcnet.config import DEFAULT_DATA_DIR

# kube-proxy's metrics address inside a node; /proxyMode there names the mode it runs in.
PROXY_METRICS = "127.0.0.1:10249"

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"  # the repository's examples/
DEPLOYMENT_PODS = "app=hostnames,workload!=statefulset"
STATEFULSET_PODS = "app=hostnames,workload=statefulset"
NODE_PORT_SERVICE = "hostnames-nodeport"
# Step 8's last point: the seed says a StatefulSet must name its Service in spec.serviceName.
STATEFULSET_WITHOUT_SERVICE_NAME = """\
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: no-service-name}
spec:
  selector: {matchLabels: {app: no-service-name}}
  template:
    metadata: {labels: {app: no-service-name}}
    spec: {containers: [{name: hostnames, image: k8s.gcr.io/serve_hostname}]}
"""


class WalkthroughError(SystemExit):
    pass


class Walkthrough:
    def __init__(self, data_dir: Path, examples: Path) -> None:
        self.data_dir = data_dir
        self.examples = examples
        spec = load_cluster_spec(data_dir)
        if spec is None:
            raise WalkthroughError(f"svcnet walkthrough: no cluster in {data_dir}: start one with svcnet up")
        self.plan = spec.plan()
        self.env = {**os.environ, "KUBECONFIG": str(data_dir / "kubeconfig")}

    # ---- running things as a user would
    def run(self, argv: list[str], show: str | None = None, check: bool = False, input: str | None = None) -> str:
        result = subprocess.run(argv, capture_output=True, text=True, env=self.env, timeout=60, input=input)
        if show is not None:
            print(f"$ {show}")
            print((result.stdout + result.stderr).rstrip())
            print()
        if check and result.returncode != 0:
            raise WalkthroughError(f"svcnet walkthrough: {' '.join(argv)} failed: {result.stderr.strip()}")
        return result.stdout

    def kubectl(self, *args: str, show: bool = True, check: bool = True) -> str:
        return self.run(["kubectl", *args], f"kubectl {' '.join(args)}" if show else None, check=check)

    def kubectl_json(self, *args: str) -> dict:
        return json.loads(self.kubectl(*args, "-o", "json", show=False))

    def in_namespace(self, netns: str, where: str, *argv: str, show: str | None) -> str:
        return self.run(["ip", "netns", "exec", netns, *argv],
                        f"{show}    # in {where}" if show is not None else None)

    def iptables_rules(self) -> None:
        """Step 5 in iptables mode: the nat chains a packet to the seed's ClusterIP goes through."""
        self.in_node(0, "iptables", "-t", "nat", "-nvL", "PREROUTING", show="iptables -t nat -nvL PREROUTING")
        rules = self.in_node(0, "iptables", "-t", "nat", "-S", "KUBE-SERVICES", show=None)
        chain = next((line.split()[-1] for line in rules.splitlines()
                      if "default/hostnames:default cluster IP" in line and "KUBE-SVC-" in line), None)
        if chain:
            self.in_node(0, "iptables", "-t", "nat", "-nvL", chain, show=f"iptables -t nat -nvL {chain}")
        self.in_node(0, "iptables", "-t", "nat", "-nvL", "KUBE-MARK-MASQ", show="iptables -t nat -nvL KUBE-MARK-MASQ")
        self.in_node(0, "iptables", "-t", "nat", "-nvL", "KUBE-POSTROUTING",
                     show="iptables -t nat -nvL KUBE-POSTROUTING")

    def nftables_rules(self) -> None:
        """Step 5 in nftables mode: the same path through the `ip kube-proxy` table's chains and maps."""
        table = ("ip", "kube-proxy")
        self.in_node(0, "nft", "list", "chain", *table, "nat-prerouting", show="nft list chain ip kube-proxy "
                                                                               "nat-prerouting")
        self.in_node(0, "nft", "list", "chain", *table, "services", show="nft list chain ip kube-proxy services")
        elements = self.in_node(0, "nft", "list", "map", *table, "service-ips",
                                show="nft list map ip kube-proxy service-ips")
        # The seed Service's chain: service-<hash>-default/hostnames/tcp/default (its map element's target).
        chain = next((word.rstrip(",") for word in elements.split() if word.startswith("service-")
                      and "-default/hostnames/tcp/" in word), None)
        if chain:
            self.in_node(0, "nft", "list", "chain", *table, chain, show=f"nft list chain ip kube-proxy {chain}")
        self.in_node(0, "nft", "list", "chain", *table, "mark-for-masquerade",
                     show="nft list chain ip kube-proxy mark-for-masquerade")
        self.in_node(0, "nft", "list", "chain", *table, "masquerading",
                     show="nft list chain ip kube-proxy masquerading")

    def in_node(self, node: int, *argv: str, show: str | None) -> str:
        n = self.plan.nodes[node]
        return self.in_namespace(n.namespace, f"{n.name}'s namespace", *argv, show=show)

    def in_pod(self, pod: str, *argv: str, show: str) -> str:
        return self.run([sys.executable, "-m", "svcnet", "exec", "--data-dir", str(self.data_dir), pod,
                         "--", *argv], f"{show}    # inside pod {pod}")

    def wait_for(self, what: str, check, timeout: float = 180):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = check()
            if got:
                return got
            time.sleep(0.3)
        raise WalkthroughError(f"svcnet walkthrough: {what}: not after {timeout:g}s")

    def ready_pods(self, selector: str, count: int) -> list[dict]:
        def ready() -> list[dict] | None:
            pods = self.kubectl_json("get", "pods", "-l", selector)["items"]
            ok = [p for p in pods if not is_being_deleted(p) and is_pod_ready(p)]
            return sorted(ok, key=name_of) if len(ok) == count == len(pods) else None
        return self.wait_for(f"{count} Ready pods {selector}", ready)

    def service(self, name: str) -> dict | None:
        out = self.run(["kubectl", "get", "svc", name, "-o", "json", "--ignore-not-found"], check=True)
        return json.loads(out) if out.strip() else None

    def curl_until_all(self, ip: str, names: set[str]) -> None:
        """curl from node-1 until every pod answered (the endpoints and rules follow within a sync or two)."""
        seen: set[str] = set()

        def all_seen() -> bool:
            seen.add(self.in_node(0, "curl", "-s", "--max-time", "2", f"{ip}:80", show=None).strip())
            return names <= seen
        self.wait_for("curl to reach every pod", all_seen, timeout=60)

    # ---- the seed's steps
    def main(self) -> None:
        existing = self.service("hostnames")
        if existing and is_headless(existing):
            print("== 0. back to the seed's start: step 8's headless Service and StatefulSet go\n")
            self.kubectl("delete", "-f", str(self.examples / "hostnames-statefulset.yaml"))
            self.wait_for("the StatefulSet's pods to go", lambda: not self.kubectl_json(
                "get", "pods", "-l", STATEFULSET_PODS)["items"], timeout=120)

        print("== 1. the seed's Service and Deployment\n")
        self.kubectl("apply", "-f", str(self.examples / "hostnames.yaml"))
        pods = self.ready_pods(DEPLOYMENT_PODS, 3)
        names = {name_of(p) for p in pods}

        print("== 2. three Running pods, IPs from their node's pod CIDR\n")
        self.kubectl("get", "pod", "-owide", "-l", DEPLOYMENT_PODS)
        print("== 3. the endpoints: the ready pods' IP:9376\n")
        self.wait_for("three endpoints", lambda: len(self.kubectl_json("get", "ep", "hostnames").get(
            "subsets", [{}])[0].get("addresses") or []) == 3, timeout=30)
        self.kubectl("get", "ep", "hostnames")

        print("== 4. the Service's ClusterIP answers from a node and from a pod\n")
        self.kubectl("get", "svc", "hostnames")
        ip = self.kubectl_json("get", "svc", "hostnames")["spec"]["clusterIP"]
        self.curl_until_all(ip, names)
        for _ in range(3):
            self.in_node(0, "curl", "-s", f"{ip}:80", show=f"curl {ip}:80")
        for pod in sorted(names)[:2]:
            self.in_pod(pod, "curl", "-s", f"{ip}:80", show=f"curl {ip}:80")

        print("== 5. kube-proxy's rules in a node\n")
        # kube-proxy says which mode it runs in on its metrics port (/proxyMode), inside the node.
        mode = self.in_node(0, "curl", "-s", "--max-time", "2", f"{PROXY_METRICS}/proxyMode",
                            show=f"curl {PROXY_METRICS}/proxyMode").strip()
        if mode == "nftables":
            self.nftables_rules()
        else:
            self.iptables_rules()

        print("== 6. the ClusterIP is only a rule: no ping reply\n")
        self.in_node(0, "ping", "-c", "1", "-W", "1", ip, show=f"ping -c 1 -W 1 {ip}")

        print("== 7. NodePort: from outside the cluster, through node-2, answered by any pod (SNAT)\n")
        if self.service(NODE_PORT_SERVICE) is None:
            self.kubectl("expose", "deployment", "hostnames", f"--name={NODE_PORT_SERVICE}", "--type=NodePort",
                         "--port=80", "--target-port=9376")
        self.kubectl("get", "svc", NODE_PORT_SERVICE)
        node_port = self.kubectl_json("get", "svc", NODE_PORT_SERVICE)["spec"]["ports"][0]["nodePort"]
        client = self.plan.client.namespace
        target = f"{self.plan.nodes[-1].ipv4}:{node_port}"
        self.wait_for("the NodePort to answer", lambda: self.in_namespace(
            client, "client", "curl", "-s", "--max-time", "2", target, show=None).strip(), timeout=30)
        for _ in range(3):
            self.in_namespace(client, "the client namespace, outside the cluster", "curl", "-s", target,
                              show=f"curl {target}")

        print("== 8. cluster DNS: the Service made headless, and a StatefulSet behind it\n")
        self.kubectl("delete", "svc", "hostnames")
        self.kubectl("apply", "-f", str(self.examples / "hostnames-statefulset.yaml"))
        self.ready_pods(STATEFULSET_PODS, 2)
        self.wait_for("five endpoints", lambda: len(self.kubectl_json("get", "ep", "hostnames").get(
            "subsets", [{}])[0].get("addresses") or []) == 5, timeout=30)
        self.kubectl("get", "pod", "-owide", "-l", "app=hostnames")
        pod = sorted(names)[0]
        for name in ("kubernetes.default.svc.cluster.local", "hostnames.default.svc.cluster.local",
                     f"{pod}.hostnames.default.svc.cluster.local",
                     "hostnames-0.hostnames.default.svc.cluster.local"):
            self.in_pod(pod, "nslookup", name, show=f"nslookup {name}")
        self.run(["kubectl", "apply", "-f", "-"], show="kubectl apply -f statefulset-without-serviceName.yaml",
                 input=STATEFULSET_WITHOUT_SERVICE_NAME)

        print("== 9. a pod's resolv.conf, and short names through its search list\n")
        self.in_pod(pod, "cat", "/etc/resolv.conf", show="cat /etc/resolv.conf")
        self.in_pod(pod, "nslookup", "hostnames-0.hostnames", show="nslookup hostnames-0.hostnames")
        print("Stop the cluster with: svcnet down" + ("" if self.data_dir == DEFAULT_DATA_DIR
                                                     else f" --data-dir {self.data_dir}"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="svcnet walkthrough", description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR))
    parser.add_argument("--examples", default=str(EXAMPLES), help="where hostnames*.yaml are")
    parser.add_argument("--extended", action="store_true",
                        help="instead of the seed's nine steps, tour every other kind of Service: traffic policies, "
                             "session affinity, topology hints, named and multiple ports, UDP, ExternalName, "
                             "selector-less Services, publishNotReadyAddresses, a rolling update")
    args = parser.parse_args(argv)
    if args.extended:
        # Imported here: the tour module builds on this one's Walkthrough.
        from svcnet.cluster.tour_services import ServicesTour
        ServicesTour(Path(args.data_dir), Path(args.examples)).main()
        return 0
    Walkthrough(Path(args.data_dir), Path(args.examples)).main()
    return 0
