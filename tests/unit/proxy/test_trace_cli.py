"""`svcnet proxy trace`: a packet through the rules kube-proxy would write for the seed."""
from __future__ import annotations

import textwrap

from svcnet.cli import main

SEED = textwrap.dedent("""
    apiVersion: v1
    kind: Service
    metadata: {name: hostnames, namespace: default}
    spec:
      clusterIP: 10.102.11.183
      selector: {app: hostnames}
      ports: [{name: default, protocol: TCP, port: 80, targetPort: 9376}]
    ---
    apiVersion: discovery.k8s.io/v1
    kind: EndpointSlice
    metadata:
      name: hostnames-abc
      namespace: default
      labels: {kubernetes.io/service-name: hostnames}
    addressType: IPv4
    ports: [{name: default, port: 9376, protocol: TCP}]
    endpoints:
    - {addresses: [10.244.1.8], conditions: {ready: true}}
    - {addresses: [10.244.1.9], conditions: {ready: true}}
    - {addresses: [10.244.1.10], conditions: {ready: true}}
""")


def run(tmp_path, capsys, *args: str) -> tuple[int, str, str]:
    path = tmp_path / "seed.yaml"
    path.write_text(SEED)
    code = main(["proxy", "trace", "-f", str(path), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_pod_reaches_each_endpoint_a_third_of_the_time_without_masquerade(tmp_path, capsys):
    code, out, _ = run(tmp_path, capsys, "--src", "10.244.2.5", "--dst", "10.102.11.183", "--dport", "80")
    assert code == 0
    for ip in ("10.244.1.8", "10.244.1.9", "10.244.1.10"):
        assert f" 33.33%  -> {ip}:9376  masquerade=no" in out


def test_traffic_from_outside_the_pod_network_is_masqueraded(tmp_path, capsys):
    code, out, _ = run(tmp_path, capsys, "--src", "192.168.0.200", "--dst", "10.102.11.183", "--dport", "80")
    assert code == 0 and out.count("masquerade=yes") == 3


def test_bad_input_is_a_clear_error(tmp_path, capsys):
    code, _, err = run(tmp_path, capsys, "--src", "not-an-ip", "--dst", "10.102.11.183", "--dport", "80")
    assert code == 2 and "--src: not an IP address" in err
