"""Issue 3's acceptance with the whole control plane: the seed's objects, end to end.

The Deployment controller makes the pods, the scheduler binds them, the test
plays kubelet (status with the seed's IPs), and the endpoint controllers must
produce exactly what the seed's `kubectl get ep hostnames` shows.
"""
from __future__ import annotations

import ipaddress
import re

from tests.integration.apiserver_harness import REPO, ApiServerProcess
from tests.integration.kubelet_double import FakeKubelet, register_node, set_pod_status
from tests.waiting import wait_for

SEED = REPO / "examples" / "hostnames.yaml"
STATEFUL = REPO / "tests" / "integration" / "manifests" / "hostnames-sts.yaml"
# <deployment>-<pod-template-hash>-<5 random>, from kube's safe alphabet (no vowels, no 0/1/3).
POD_NAME = re.compile(r"^hostnames-[bcdfghjklmnpqrstvwxz2456789]{6,10}-[bcdfghjklmnpqrstvwxz2456789]{5}$")


def pods(server: ApiServerProcess, selector: str) -> list[dict]:
    return server.kubectl_json("get", "pods", "-l", selector)["items"]


def slice_endpoints(server: ApiServerProcess, service: str) -> list[dict]:
    status, body = server.request(
        "GET", f"/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"
               f"?labelSelector=kubernetes.io/service-name%3D{service}")
    assert status == 200, body
    return [e for s in body["items"] for e in s.get("endpoints") or []]


def ep_column(server: ApiServerProcess) -> str:
    return server.kubectl("get", "ep", "hostnames", "--no-headers").stdout.split()[1]


def test_seed_deployment_and_service_give_the_seeds_endpoints(control_plane):
    register_node(control_plane, "192.168.0.106", "10.244.1.0/24", "192.168.0.106")
    control_plane.kubectl("apply", "-f", str(SEED))

    three = wait_for(lambda: (p := pods(control_plane, "app=hostnames")) and len(p) == 3 and
                     all(x["spec"].get("nodeName") for x in p) and p, timeout=30,
                     what="three scheduled hostnames pods")
    names = sorted(p["metadata"]["name"] for p in three)
    assert all(POD_NAME.match(n) for n in names), names
    cluster_ip = control_plane.kubectl_json("get", "svc", "hostnames")["spec"]["clusterIP"]
    assert ipaddress.ip_address(cluster_ip) in ipaddress.ip_network("10.96.0.0/12")

    for name, ip in zip(names, ("10.244.1.8", "10.244.1.9", "10.244.1.10"), strict=True):
        set_pod_status(control_plane, "default", name, ip=ip, ready=True)
    wait_for(lambda: ep_column(control_plane) == "10.244.1.10:9376,10.244.1.8:9376,10.244.1.9:9376",
             timeout=10, what="the seed's endpoints")
    endpoints = slice_endpoints(control_plane, "hostnames")
    assert sorted(e["addresses"][0] for e in endpoints) == ["10.244.1.10", "10.244.1.8", "10.244.1.9"]
    assert all(e["conditions"]["ready"] for e in endpoints)

    # One pod turns unready: out of the addresses, into notReadyAddresses, not ready in the slice.
    set_pod_status(control_plane, "default", names[1], ip="10.244.1.9", ready=False)

    def left_out() -> bool:
        ep = control_plane.kubectl_json("get", "ep", "hostnames")
        subset = ep["subsets"][0]
        ready = {a["ip"] for a in subset.get("addresses") or []}
        not_ready = {a["ip"] for a in subset.get("notReadyAddresses") or []}
        sliced = {e["addresses"][0]: e["conditions"]["ready"] for e in slice_endpoints(control_plane,
                                                                                        "hostnames")}
        return ready == {"10.244.1.8", "10.244.1.10"} and not_ready == {"10.244.1.9"} and \
            sliced.get("10.244.1.9") is False

    wait_for(left_out, timeout=1.0, interval=0.02, what="the unready pod to leave the endpoints")

    # Scale to 5 and back to 2: the pods follow.
    control_plane.kubectl("scale", "deploy", "hostnames", "--replicas=5")
    wait_for(lambda: len(pods(control_plane, "app=hostnames")) == 5, timeout=20, what="5 pods")
    control_plane.kubectl("scale", "deploy", "hostnames", "--replicas=2")
    with FakeKubelet(control_plane):  # finishes the graceful deletes, as the nodes' agents would
        wait_for(lambda: len(pods(control_plane, "app=hostnames")) == 2, timeout=30, what="2 pods")


def test_a_second_service_asking_for_a_taken_cluster_ip_or_node_port_is_refused(apiserver, tmp_path):
    first = tmp_path / "a.yaml"
    first.write_text("""
apiVersion: v1
kind: Service
metadata: {name: a}
spec:
  type: NodePort
  clusterIP: 10.96.5.5
  selector: {app: a}
  ports: [{port: 80, nodePort: 30080}]
""")
    apiserver.kubectl("apply", "-f", str(first))
    same_ip = tmp_path / "b.yaml"
    same_ip.write_text(first.read_text().replace("name: a", "name: b").replace("nodePort: 30080",
                                                                                "nodePort: 30081"))
    result = apiserver.kubectl("apply", "-f", str(same_ip), check=False)
    assert result.returncode != 0
    assert 'spec.clusterIPs[0]: Invalid value: "10.96.5.5": provided IP is already allocated' in result.stderr
    same_port = tmp_path / "c.yaml"
    same_port.write_text(first.read_text().replace("name: a", "name: c").replace(
        "  clusterIP: 10.96.5.5\n", ""))
    result = apiserver.kubectl("apply", "-f", str(same_port), check=False)
    assert result.returncode != 0
    assert "spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated" in result.stderr

    # After a restart (the repair pass rebuilds the tables) the held IP and port stay held,
    # and a deleted Service's IP is free again.
    apiserver.kubectl("delete", "svc", "a")
    apiserver.stop()
    apiserver.start()
    apiserver.kubectl("apply", "-f", str(same_ip))  # b takes 10.96.5.5 now that a is gone
    result = apiserver.kubectl("apply", "-f", str(first), check=False)
    assert result.returncode != 0 and "provided IP is already allocated" in result.stderr


def test_statefulset_pods_get_their_hostnames_in_the_headless_services_slices(control_plane):
    register_node(control_plane, "node-1", "10.244.1.0/24", "192.168.0.106")
    with FakeKubelet(control_plane, ip_prefix="10.244.1.", first_ip=20):
        control_plane.kubectl("apply", "-f", str(STATEFUL))

        def hostnames() -> set[str]:
            return {e.get("hostname") for e in slice_endpoints(control_plane, "hostnames-sts")
                    if e["conditions"].get("ready")}

        wait_for(lambda: hostnames() == {"hostnames-0", "hostnames-1", "hostnames-2"}, timeout=30,
                 what="three StatefulSet hostnames in the headless Service's slice")
    pod = control_plane.kubectl_json("get", "pod", "hostnames-0")
    assert pod["spec"]["hostname"] == "hostnames-0" and pod["spec"]["subdomain"] == "hostnames-sts"
