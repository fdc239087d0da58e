"""`svcnet up --storage etcd` with a cluster network: each etcd member in its own namespace on the LAN,
its peers reached there with mutual TLS, its clients still on the unix socket (the pure planning, the
argv, the files it writes)."""
from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from cryptography import x509

from svcnet.cluster import up
from svcnet.cluster.etcd import (
    EtcdCluster,
    MembershipChanged,
    dsn,
    etcd_dir,
    member_specs,
    pki_dir,
    write_peer_pki,
)
from svcnet.cluster.lifecycle import ClusterNetwork
from svcnet.cluster.topology import apply_topology, lb_pool_for, plan_topology
from svcnet.config import ApiServerConfig
from svcnet.core import pki
from svcnet.core.loadbalancer import PoolError
from svcnet.kernel.etcdserver import PEER_PORT, MemberSpec, member_command
from svcnet.testing.links import FakeNetworkKernel

# ---- the topology


def test_member_n_has_a_namespace_and_the_lan_address_90_plus_n() -> None:
    plan = plan_topology("c1", 2, etcd_members=3)
    assert [(m.namespace, m.ipv4, m.ipv6, m.lan_port) for m in plan.etcd] == [
        ("svcnet-c1-etcd-1", "192.168.0.91", "fd00:192:168::5b", "etcd-1"),
        ("svcnet-c1-etcd-2", "192.168.0.92", "fd00:192:168::5c", "etcd-2"),
        ("svcnet-c1-etcd-3", "192.168.0.93", "fd00:192:168::5d", "etcd-3"),
    ]
    assert plan_topology("c1", 2).etcd == ()  # no local etcd: no namespace for one


@pytest.mark.parametrize("hosts", [1, 2])
def test_the_members_sit_on_host_1s_lan_reachable_from_nodes_and_client_but_not_pods(hosts: int) -> None:
    kernel = FakeNetworkKernel()
    apply_topology(kernel, plan_topology("c1", 2, etcd_members=3, hosts=hosts))
    assert {"svcnet-c1-etcd-1", "svcnet-c1-etcd-2", "svcnet-c1-etcd-3"} <= set(kernel.list_namespaces())
    assert kernel.reachable("svcnet-c1-etcd-1", "192.168.0.93")  # peer to peer on the LAN
    assert kernel.reachable("svcnet-c1-client", "192.168.0.92")  # anyone on the LAN: hence mutual TLS
    assert kernel.reachable("svcnet-c1-node-2", "192.168.0.91")  # node 2 is on host 2 with --hosts 2
    assert not kernel.reachable("svcnet-c1-etcd-1", "10.244.1.1")  # a member is not in the cluster's pod network


def test_members_no_longer_planned_are_removed_and_down_removes_them_all() -> None:
    kernel = FakeNetworkKernel()
    apply_topology(kernel, plan_topology("c1", 1, etcd_members=3))
    apply_topology(kernel, plan_topology("c1", 1, etcd_members=1))
    assert [n for n in kernel.list_namespaces() if "-etcd-" in n] == ["svcnet-c1-etcd-1"]


@pytest.mark.parametrize("kwargs, message", [
    ({"etcd_members": 8}, "etcd members: 0 to 7"),
    ({"etcd_members": 3, "first_node_host": 92}, "etcd member 2's address \\(host 92\\) is a node's"),
    ({"etcd_members": 3, "client_host": 93}, "etcd member 3's address \\(host 93\\) is the client's"),
])
def test_member_addresses_that_clash_are_refused(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plan_topology("c1", 1, **kwargs)


def test_a_loadbalancer_pool_holding_a_member_address_is_refused() -> None:
    with pytest.raises(PoolError):
        lb_pool_for(plan_topology("c1", 1, etcd_members=3), "192.168.0.88/29")
    assert lb_pool_for(plan_topology("c1", 1), "192.168.0.88/29").cidr == "192.168.0.88/29"


# ---- the members


def _placed(tmp_path: Path, size: int = 3) -> tuple[MemberSpec, ...]:
    return member_specs(tmp_path, size, plan_topology("c1", 1, etcd_members=size).etcd)


def test_a_placed_member_runs_in_its_namespace_with_peers_over_mutual_tls_and_clients_on_its_socket(
    tmp_path: Path
) -> None:
    specs = _placed(tmp_path)
    argv = member_command(specs[1], specs)
    assert argv[:4] == ["ip", "netns", "exec", "svcnet-c1-etcd-2"]
    assert argv[4].endswith("etcd")
    flags = argv[5:]
    certs = pki_dir(tmp_path).absolute()
    assert f"--listen-peer-urls=https://192.168.0.92:{PEER_PORT}" in flags
    assert f"--initial-advertise-peer-urls=https://192.168.0.92:{PEER_PORT}" in flags
    assert ("--initial-cluster=svcnet-1=https://192.168.0.91:2380,svcnet-2=https://192.168.0.92:2380,"
            "svcnet-3=https://192.168.0.93:2380") in flags
    assert {f"--peer-cert-file={certs}/svcnet-2-peer.crt", f"--peer-key-file={certs}/svcnet-2-peer.key",
            f"--peer-trusted-ca-file={certs}/ca.crt", "--peer-client-cert-auth"} <= set(flags)
    # Clients: only the unix socket in the 0700 directory, no client port on the LAN.
    assert "--listen-client-urls=unix://svcnet-2.client:0" in flags
    assert dsn(specs) == "etcd://" + ",".join(str(etcd_dir(tmp_path).absolute() / f"svcnet-{n}.client:0")
                                                 for n in (1, 2, 3))


def test_unplaced_members_keep_peering_over_unix_sockets(tmp_path: Path) -> None:
    argv = member_command(member_specs(tmp_path, 1)[0])
    assert argv[0].endswith("etcd") and "--listen-peer-urls=unix://svcnet.peer:0" in argv
    assert not [flag for flag in argv if flag.startswith("--peer-")]


def test_the_stored_peer_urls_are_kept_and_a_cluster_cannot_move_its_peers(tmp_path: Path) -> None:
    _placed(tmp_path)
    stored = json.loads((etcd_dir(tmp_path) / "members.json").read_text())
    assert stored["peers"] == [f"https://192.168.0.9{n}:2380" for n in (1, 2, 3)]
    assert _placed(tmp_path)[0].peer_url == "https://192.168.0.91:2380"
    with pytest.raises(MembershipChanged, match="peers at https://192.168.0.91:2380"):
        member_specs(tmp_path, 3)  # the same data, without a cluster network: unix peers


def test_a_lone_member_may_move_from_unix_to_the_lan(tmp_path: Path) -> None:
    etcd_dir(tmp_path).mkdir(mode=0o700)
    (etcd_dir(tmp_path) / "members.json").write_text('{"members": ["svcnet"]}\n')  # before peer URLs were kept
    assert _placed(tmp_path, 1)[0].peer_url == "https://192.168.0.91:2380"
    (etcd_dir(tmp_path) / "members.json").write_text('{"members": ["svcnet-1", "svcnet-2", "svcnet-3"]}\n')
    with pytest.raises(MembershipChanged):  # three members could not: their peers would look at the old URLs
        _placed(tmp_path, 3)


def test_peer_certificates_name_each_members_address_from_a_kept_etcd_ca_with_private_keys(tmp_path: Path) -> None:
    specs = _placed(tmp_path)
    write_peer_pki(tmp_path, specs)
    ca_pem = (pki_dir(tmp_path) / "ca.crt").read_bytes()
    ca = x509.load_pem_x509_certificate(ca_pem)
    for spec in specs:
        cert = x509.load_pem_x509_certificate(spec.peer_tls.cert.read_bytes())
        cert.verify_directly_issued_by(ca)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert [str(ip) for ip in pki.ip_alt_names(cert)] == [spec.peer_ip]
        assert names.get_values_for_type(x509.DNSName) == []  # etcd would look a name up before matching it
        assert stat.S_IMODE(spec.peer_tls.key.stat().st_mode) == 0o600
    assert stat.S_IMODE((pki_dir(tmp_path) / "ca.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(pki_dir(tmp_path).stat().st_mode) == 0o700
    write_peer_pki(tmp_path, specs)  # a second `up`: the same CA
    assert (pki_dir(tmp_path) / "ca.crt").read_bytes() == ca_pem


def test_no_pki_without_a_cluster_network(tmp_path: Path) -> None:
    write_peer_pki(tmp_path, member_specs(tmp_path, 3))
    assert not pki_dir(tmp_path).exists()


def test_up_with_nodes_places_the_members_in_the_topology_it_creates(tmp_path: Path) -> None:
    stages = [getattr(s, "component", s) for s in up.components(
        ApiServerConfig(data_dir=tmp_path, storage_dsn="etcd"), nodes=1, etcd_members=3)]
    network = next(s for s in stages if isinstance(s, ClusterNetwork))
    etcd = next(s for s in stages if isinstance(s, EtcdCluster))
    assert network.spec.etcd_members == 3
    planned = [m.namespace for m in network.spec.plan().etcd]
    assert [spec.namespace for spec in etcd.specs] == planned
    assert stages.index(network) < stages.index(etcd)  # the namespaces exist before a member starts


def test_up_with_nodes_and_another_store_plans_no_etcd_namespace(tmp_path: Path) -> None:
    stages = [getattr(s, "component", s) for s in up.components(ApiServerConfig(data_dir=tmp_path), nodes=1)]
    network = next(s for s in stages if isinstance(s, ClusterNetwork))
    assert network.spec.etcd_members == 0 and network.spec.plan().etcd == ()
