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


# --- kube-proxy's flags and its KubeProxyConfiguration file -----------------------------------------------------

KUBE_PROXY_CONFIG = textwrap.dedent("""\
    apiVersion: kubeproxy.config.k8s.io/v1alpha1
    kind: KubeProxyConfiguration
    mode: iptables
    clusterCIDR: 10.200.0.0/16
    detectLocalMode: ClusterCIDR
    nodePortAddresses: ["192.168.0.0/24"]
    iptables:
      masqueradeBit: 13
    """)
EQUIVALENT_FLAGS = ["--proxy-mode", "iptables", "--cluster-cidr", "10.200.0.0/16", "--detect-local-mode",
                    "ClusterCIDR", "--nodeport-addresses", "192.168.0.0/24", "--iptables-masquerade-bit", "13"]
NODEPORT_SEED = SEED.replace("  clusterIP: 10.102.11.183\n", "  type: NodePort\n  clusterIP: 10.102.11.183\n").replace(
    "    targetPort: 9376\n", "    targetPort: 9376\n    nodePort: 30080\n")


def test_a_kube_proxy_config_file_renders_exactly_as_the_equivalent_flags(tmp_path, capsys):
    (tmp_path / "seed.yaml").write_text(NODEPORT_SEED)
    (tmp_path / "kube-proxy.yaml").write_text(KUBE_PROXY_CONFIG)
    assert main(["-f", str(tmp_path / "seed.yaml"), "--config", str(tmp_path / "kube-proxy.yaml")]) == 0
    from_file = capsys.readouterr()
    assert main(["-f", str(tmp_path / "seed.yaml"), *EQUIVALENT_FLAGS]) == 0
    from_flags = capsys.readouterr()
    assert from_file.out == from_flags.out and from_file.err == from_flags.err == ""
    # ...and the settings took: the mark is bit 13, pod traffic is 10.200/16, NodePorts only on 192.168.0/24.
    assert "--or-mark 0x00002000" in from_file.out and "! -s 10.200.0.0/16 -j KUBE-MARK-MASQ" in from_file.out
    assert "-d 192.168.0.106 -j KUBE-NODEPORTS" in from_file.out
    assert main(["-f", str(tmp_path / "seed.yaml")]) == 0
    assert capsys.readouterr().out != from_file.out


def test_a_nftables_mode_config_file_renders_exactly_as_the_equivalent_flags(tmp_path, capsys):
    (tmp_path / "seed.yaml").write_text(NODEPORT_SEED)
    # kube-proxy's masquerade-bit flag is iptables mode's (--iptables-masquerade-bit), so the file
    # leaves nftables.masqueradeBit at its default for the two to be equivalent.
    config = KUBE_PROXY_CONFIG.replace("mode: iptables", "mode: nftables").replace(
        "iptables:\n  masqueradeBit: 13\n", "")
    assert "mode: nftables" in config and "masqueradeBit" not in config
    (tmp_path / "kube-proxy.yaml").write_text(config)
    assert main(["-f", str(tmp_path / "seed.yaml"), "--config", str(tmp_path / "kube-proxy.yaml")]) == 0
    from_file = capsys.readouterr()
    flags = ["--proxy-mode", "nftables", "--cluster-cidr", "10.200.0.0/16", "--detect-local-mode", "ClusterCIDR",
             "--nodeport-addresses", "192.168.0.0/24"]
    assert main(["-f", str(tmp_path / "seed.yaml"), *flags]) == 0
    from_flags = capsys.readouterr()
    assert from_file.out == from_flags.out and from_file.err == from_flags.err == ""
    out = from_file.out.splitlines()
    assert out[0] == 'add table ip kube-proxy { comment "rules for kube-proxy" ; }'
    # The settings took: pod traffic is 10.200/16, NodePorts on the node's address in 192.168.0/24 only.
    assert any("ip saddr != 10.200.0.0/16 jump mark-for-masquerade" in line for line in out)
    assert "add element ip kube-proxy nodeport-ips { 192.168.0.106 }" in out
    assert main(["-f", str(tmp_path / "seed.yaml"), "--proxy-mode", "nftables"]) == 0
    assert capsys.readouterr().out != from_file.out


def test_detect_local_modes_shape_the_masquerade_rule(tmp_path, capsys):
    (tmp_path / "seed.yaml").write_text(SEED.replace("status:\n", "spec:\n  podCIDRs: [10.244.1.0/24]\nstatus:\n"))
    seed = ["-f", str(tmp_path / "seed.yaml")]
    expected = {
        ("--detect-local-mode", "NodeCIDR"): "! -s 10.244.1.0/24 -j KUBE-MARK-MASQ",
        ("--detect-local-mode", "BridgeInterface", "--pod-bridge-interface", "cni0"): "! -i cni0 -j KUBE-MARK-MASQ",
        ("--detect-local-mode", "InterfaceNamePrefix", "--pod-interface-name-prefix", "veth"):
            "! -i veth+ -j KUBE-MARK-MASQ",
    }
    for argv, rule in expected.items():
        assert main([*seed, *argv]) == 0
        assert rule in capsys.readouterr().out


def test_with_config_the_file_wins_over_other_flags_and_says_so(tmp_path, capsys):
    (tmp_path / "seed.yaml").write_text(SEED)
    (tmp_path / "kube-proxy.yaml").write_text(KUBE_PROXY_CONFIG)
    assert main(["-f", str(tmp_path / "seed.yaml"), "--config", str(tmp_path / "kube-proxy.yaml"),
                 "--cluster-cidr", "10.9.0.0/16", "--masquerade-all"]) == 0
    captured = capsys.readouterr()
    assert "! -s 10.200.0.0/16 -j KUBE-MARK-MASQ" in captured.out and "10.9.0.0/16" not in captured.out
    assert "note: --cluster-cidr is ignored" in captured.err and "note: --masquerade-all is ignored" in captured.err


def test_hostname_override_picks_the_node_over_the_files_hostname(tmp_path, capsys):
    # Two nodes' endpoints: node-1's are local only when rendering for node-1 (internalTrafficPolicy Local).
    (tmp_path / "seed.yaml").write_text(SEED.replace("  selector:\n", "  internalTrafficPolicy: Local\n  selector:\n"))
    (tmp_path / "kube-proxy.yaml").write_text(KUBE_PROXY_CONFIG + "hostnameOverride: node-9\n")
    seed, config = ["-f", str(tmp_path / "seed.yaml")], ["--config", str(tmp_path / "kube-proxy.yaml")]
    assert main([*seed, *config]) == 0
    for_node_9 = capsys.readouterr().out
    assert main([*seed, *config, "--hostname-override", "node-1"]) == 0
    for_node_1 = capsys.readouterr().out
    assert "KUBE-SVL-" in for_node_1 and "10.244.1.8:9376" in for_node_1
    assert "10.244.1.8:9376" not in for_node_9


@pytest.mark.parametrize(("config", "message"), [
    ("apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\niptables: {masqueradeBit: 40}\n",
     "KubeProxyConfiguration.KubeProxyIPTablesConfiguration.MasqueradeBit: Invalid value: 40"),
    ("apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nclusterCIDR: [10.0.0.0/8]\n",
     "failed to decode: json: cannot unmarshal array into Go struct field clusterCIDR of type string"),
    ("kind: KubeProxyConfiguration\n", 'no kind "KubeProxyConfiguration" is registered for version "None"'),
    ("\x00\xff", "not UTF-8"),
])
def test_a_bad_config_file_is_a_clear_error_with_status_2(tmp_path, capsys, config, message):
    (tmp_path / "seed.yaml").write_text(SEED)
    (tmp_path / "kube-proxy.yaml").write_bytes(config.encode("latin-1"))
    assert main(["-f", str(tmp_path / "seed.yaml"), "--config", str(tmp_path / "kube-proxy.yaml")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and message in captured.err and "kube-proxy.yaml" in captured.err


def test_a_missing_config_file_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "seed.yaml").write_text(SEED)
    assert main(["-f", str(tmp_path / "seed.yaml"), "--config", str(tmp_path / "absent.yaml")]) == 2
    assert "absent.yaml: No such file or directory" in capsys.readouterr().err


def test_nftables_mode_renders_the_nftables_table_with_its_defaults(tmp_path, capsys):
    service_cidr = ("---\napiVersion: networking.k8s.io/v1\nkind: ServiceCIDR\nmetadata: {name: kubernetes}\n"
                    "spec: {cidrs: [10.96.0.0/12]}\n")
    (tmp_path / "seed.yaml").write_text(SEED + service_cidr)
    assert main(["-f", str(tmp_path / "seed.yaml"), "--proxy-mode", "nftables"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == 'add table ip kube-proxy { comment "rules for kube-proxy" ; }'
    assert not any(line.startswith("-A ") for line in out)
    # The ServiceCIDR objects in the manifests bound the cluster-IP check.
    assert ('add rule ip kube-proxy cluster-ips-check ip daddr { 10.96.0.0/12 } drop '
            'comment "Drop traffic to unallocated ClusterIPs"') in out
    # kube-proxy's nftables-mode default: NodePorts on the node's primary IPs only (no "every local
    # address" fib match).
    assert not any("fib daddr type local" in line for line in out)
    assert ("add rule ip kube-proxy services ip daddr @nodeport-ips meta l4proto . th dport "
            "vmap @service-nodeports") in out
