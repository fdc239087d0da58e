"""`svcnet proxy render` on the seed manifests, and its errors."""
from __future__ import annotations

import textwrap

import pytest

from svcnet.proxy.render_cli import main

SEED = textwrap.dedent("""\
    apiVersion: v1
    kind: Service
    metadata:
      name: hostnames
    spec:
      clusterIP: 10.102.11.183
      selector:
        app: hostnames
      ports:
      - name: default
        protocol: TCP
        port: 80
        targetPort: 9376
    ---
    apiVersion: discovery.k8s.io/v1
    kind: EndpointSlice
    metadata:
      name: hostnames-x7k2p
      namespace: default
      labels:
        kubernetes.io/service-name: hostnames
    addressType: IPv4
    ports:
    - name: default
      protocol: TCP
      port: 9376
    endpoints:
    - addresses: ["10.244.1.8"]
      nodeName: node-1
    - addresses: ["10.244.1.10"]
      nodeName: node-1
    - addresses: ["10.244.1.9"]
      nodeName: node-1
    ---
    apiVersion: v1
    kind: Node
    metadata:
      name: node-1
    status:
      addresses:
      - type: InternalIP
        address: 192.168.0.106
    """)


@pytest.fixture
def seed_file(tmp_path):
    path = tmp_path / "seed.yaml"
    path.write_text(SEED)
    return path


def test_render_prints_the_seed_rules(seed_file, capsys):
    assert main(["-f", str(seed_file), "--node", "node-1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("*filter\n") and out.endswith("COMMIT\n")
    assert ('-A KUBE-SVC-ODX2UBAZM7RQWOIU -m comment --comment "default/hostnames:default -> 10.244.1.10:9376" '
            "-m statistic --mode random --probability 0.3333333333 -j KUBE-SEP-N6BO7JPFL3IPM3GK") in out
    assert "! -s 10.244.0.0/16 -j KUBE-MARK-MASQ" in out
    assert "-A KUBE-SEP-ZDT36JFL743NS3VU -m comment --comment default/hostnames:default -m tcp -p tcp -j DNAT " \
           "--to-destination 10.244.1.9:9376" in out


def test_render_reads_stdin_and_honours_cluster_cidr(monkeypatch, capsys):
    import io
    monkeypatch.setattr("sys.stdin", io.StringIO(SEED))
    assert main(["-f", "-", "--cluster-cidr", "10.0.0.0/8"]) == 0
    assert "! -s 10.0.0.0/8 -j KUBE-MARK-MASQ" in capsys.readouterr().out


def test_endpoints_objects_are_ignored_with_a_note(tmp_path, capsys):
    path = tmp_path / "ep.yaml"
    path.write_text("apiVersion: v1\nkind: Endpoints\nmetadata: {name: hostnames}\nsubsets: []\n")
    assert main(["-f", str(path)]) == 0
    assert "kube-proxy reads EndpointSlices only" in capsys.readouterr().err


@pytest.mark.parametrize("content, argv, message", [
    ("kind: Service\nmetadata: {name: x}\nspec: {clusterIP: 10.0.0.999, ports: [{port: 80}]}\n", [],
     "spec.clusterIP: invalid IP address"),
    ("kind: Service\nmetadata: {name: x}\nspec: {clusterIP: 10.0.0.9, ports: [{port: 0}]}\n", [],
     "spec.ports[0].port"),
    ("kind: EndpointSlice\nmetadata: {name: x}\naddressType: IPv5\n", [], "addressType"),
    ("kind: Service\nspec: {}\n", [], "metadata.name is required"),
    ("key: [unclosed\n", [], "not valid YAML"),
    ("- just\n- a list\n", [], "expected an object"),
    ("kind: Service\nmetadata: {name: x}\nspec: {clusterIP: 10.0.0.9}\n", ["--cluster-cidr", "nope"],
     "--cluster-cidr: invalid CIDR"),
])
def test_bad_input_is_a_clear_error_with_status_2(tmp_path, capsys, content, argv, message):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    assert main(["-f", str(path), *argv]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""


def test_missing_file_and_unknown_mode_exit_2(tmp_path, capsys):
    assert main(["-f", str(tmp_path / "absent.yaml")]) == 2
    assert "absent.yaml" in capsys.readouterr().err
    assert main(["-f", str(tmp_path / "absent.yaml"), "--mode", "ipvs"]) == 2
