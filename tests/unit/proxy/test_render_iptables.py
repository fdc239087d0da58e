"""The iptables renderer against kube-proxy's own expected output (v1.32 proxier_test.go) and the seed."""
from __future__ import annotations

import textwrap

import pytest

from svcnet.proxy import ProxyConfig, build_model, plan
from svcnet.proxy.iptables import RenderedState, render_iptables
from svcnet.proxy.iptables.ruleset import IptablesModel
from tests.unit.proxy.helpers import endpoint, endpoint_slice, lines_of, port, render, service

SEED_SERVICE = service("default", "hostnames", "10.102.11.183", port("default", 80), selector={"app": "hostnames"})
SEED_SLICE = endpoint_slice(
    "default", "hostnames",
    [endpoint(ip, node="192.168.0.106") for ip in ("10.244.1.8", "10.244.1.10", "10.244.1.9")],
    port("default", 9376),
)


def test_seed_service_renders_the_seed_chains_exactly():
    rendered = render([SEED_SERVICE], [SEED_SLICE], node="192.168.0.106")
    assert lines_of(rendered, "KUBE-SERVICES")[0] == (
        '-A KUBE-SERVICES -m comment --comment "default/hostnames:default cluster IP" -m tcp -p tcp '
        "-d 10.102.11.183 --dport 80 -j KUBE-SVC-ODX2UBAZM7RQWOIU")
    assert lines_of(rendered, "KUBE-SVC-ODX2UBAZM7RQWOIU") == [
        '-A KUBE-SVC-ODX2UBAZM7RQWOIU -m comment --comment "default/hostnames:default cluster IP" -m tcp -p tcp '
        "-d 10.102.11.183 --dport 80 ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ",
        '-A KUBE-SVC-ODX2UBAZM7RQWOIU -m comment --comment "default/hostnames:default -> 10.244.1.10:9376" '
        "-m statistic --mode random --probability 0.3333333333 -j KUBE-SEP-N6BO7JPFL3IPM3GK",
        '-A KUBE-SVC-ODX2UBAZM7RQWOIU -m comment --comment "default/hostnames:default -> 10.244.1.8:9376" '
        "-m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-XBIWV66JPBUXLYCY",
        '-A KUBE-SVC-ODX2UBAZM7RQWOIU -m comment --comment "default/hostnames:default -> 10.244.1.9:9376" '
        "-j KUBE-SEP-ZDT36JFL743NS3VU",
    ]
    for chain, ip in (("KUBE-SEP-N6BO7JPFL3IPM3GK", "10.244.1.10"), ("KUBE-SEP-XBIWV66JPBUXLYCY", "10.244.1.8"),
                      ("KUBE-SEP-ZDT36JFL743NS3VU", "10.244.1.9")):
        assert lines_of(rendered, chain) == [
            f"-A {chain} -m comment --comment default/hostnames:default -s {ip} -j KUBE-MARK-MASQ",
            f"-A {chain} -m comment --comment default/hostnames:default -m tcp -p tcp -j DNAT "
            f"--to-destination {ip}:9376",
        ]


def test_postrouting_and_mark_masq_use_kube_proxys_mark_format():
    rendered = render([SEED_SERVICE], [SEED_SLICE])
    assert lines_of(rendered, "KUBE-POSTROUTING") == [
        "-A KUBE-POSTROUTING -m mark ! --mark 0x00004000/0x00004000 -j RETURN",
        "-A KUBE-POSTROUTING -j MARK --xor-mark 0x00004000",
        '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" '
        "-j MASQUERADE --random-fully",
    ]
    assert lines_of(rendered, "KUBE-MARK-MASQ") == ["-A KUBE-MARK-MASQ -j MARK --or-mark 0x00004000"]


def test_masquerade_all_marks_every_cluster_ip_packet():
    rendered = render([SEED_SERVICE], [SEED_SLICE], masquerade_all=True)
    assert lines_of(rendered, "KUBE-SVC-ODX2UBAZM7RQWOIU")[0] == (
        '-A KUBE-SVC-ODX2UBAZM7RQWOIU -m comment --comment "default/hostnames:default cluster IP" -m tcp -p tcp '
        "-d 10.102.11.183 --dport 80 -j KUBE-MARK-MASQ")


def test_without_cluster_cidr_there_is_no_cluster_ip_masquerade_rule():
    rendered = render([SEED_SERVICE], [SEED_SLICE], cluster_cidrs=())
    assert "KUBE-MARK-MASQ" not in lines_of(rendered, "KUBE-SVC-ODX2UBAZM7RQWOIU")[0]


# --- upstream's TestOverallIPTablesRules ---------------------------------------------------------------------

def _svc(ns, name, ip, **spec):
    return service(ns, name, ip, port("p80", 80, node_port=spec.pop("node_port", None)), **spec)


OVERALL_SERVICES = [
    _svc("ns1", "svc1", "172.30.0.41"),
    _svc("ns2", "svc2", "172.30.0.42", type="LoadBalancer", externalTrafficPolicy="Local", node_port=3001,
         externalIPs=["192.168.99.22"], healthCheckNodePort=30000,
         status={"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}),
    _svc("ns3", "svc3", "172.30.0.43", type="NodePort", node_port=3003),
    _svc("ns4", "svc4", "172.30.0.44", type="NodePort", externalIPs=["192.168.99.33"]),
    _svc("ns5", "svc5", "172.30.0.45", type="LoadBalancer", externalTrafficPolicy="Cluster", node_port=3002,
         healthCheckNodePort=30000, loadBalancerSourceRanges=[" 203.0.113.0/25"], sessionAffinity="ClientIP",
         sessionAffinityConfig={"clientIP": {"timeoutSeconds": 10800}},
         status={"loadBalancer": {"ingress": [{"ip": "5.6.7.8"}]}}),
    _svc("ns6", "svc6", "172.30.0.46", type="ClusterIP"),
]
OVERALL_SLICES = [
    endpoint_slice("ns1", "svc1", [endpoint("10.180.0.1")], port("p80", 80)),
    endpoint_slice("ns2", "svc2", [endpoint("10.180.0.2")], port("p80", 80)),
    endpoint_slice("ns3", "svc3", [endpoint("10.180.0.3")], port("p80", 80)),
    endpoint_slice("ns4", "svc4", [endpoint("10.180.0.4"), endpoint("10.180.0.5", node="test-node")],
                   port("p80", 80)),
    endpoint_slice("ns5", "svc5", [endpoint("10.180.0.3")], port("p80", 80)),
]

# kube-proxy's expected output for that test, with its fake's mark 0x4000 written as the real
# proxier writes it (0x00004000); chains are compared as sets of rules per chain, as upstream does.
UPSTREAM_OVERALL = textwrap.dedent("""\
    *filter
    :KUBE-NODEPORTS - [0:0]
    :KUBE-SERVICES - [0:0]
    :KUBE-EXTERNAL-SERVICES - [0:0]
    :KUBE-FIREWALL - [0:0]
    :KUBE-FORWARD - [0:0]
    :KUBE-PROXY-FIREWALL - [0:0]
    -A KUBE-NODEPORTS -m comment --comment "ns2/svc2:p80 health check node port" -m tcp -p tcp --dport 30000 -j ACCEPT
    -A KUBE-SERVICES -m comment --comment "ns6/svc6:p80 has no endpoints" -m tcp -p tcp -d 172.30.0.46 --dport 80 -j REJECT
    -A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no local endpoints" -m tcp -p tcp -d 192.168.99.22 --dport 80 -j DROP
    -A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no local endpoints" -m tcp -p tcp -d 1.2.3.4 --dport 80 -j DROP
    -A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no local endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 3001 -j DROP
    -A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
    -A KUBE-FORWARD -m conntrack --ctstate INVALID -m nfacct --nfacct-name ct_state_invalid_dropped_pkts -j DROP
    -A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x00004000/0x00004000 -j ACCEPT
    -A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
    -A KUBE-PROXY-FIREWALL -m comment --comment "ns5/svc5:p80 traffic not accepted by KUBE-FW-NUKIZ6OKUXPJNT4C" -m tcp -p tcp -d 5.6.7.8 --dport 80 -j DROP
    COMMIT
    *nat
    :KUBE-NODEPORTS - [0:0]
    :KUBE-SERVICES - [0:0]
    :KUBE-EXT-4SW47YFZTEDKD3PK - [0:0]
    :KUBE-EXT-GNZBNJ2PO5MGZ6GT - [0:0]
    :KUBE-EXT-NUKIZ6OKUXPJNT4C - [0:0]
    :KUBE-EXT-X27LE4BHSL4DOUIK - [0:0]
    :KUBE-FW-NUKIZ6OKUXPJNT4C - [0:0]
    :KUBE-MARK-MASQ - [0:0]
    :KUBE-POSTROUTING - [0:0]
    :KUBE-SEP-C6EBXVWJJZMIWKLZ - [0:0]
    :KUBE-SEP-I77PXRDZVX7PMWMN - [0:0]
    :KUBE-SEP-OYPFS5VJICHGATKP - [0:0]
    :KUBE-SEP-RS4RBKLTHTF2IUXJ - [0:0]
    :KUBE-SEP-SXIVWICOYRO3J4NJ - [0:0]
    :KUBE-SEP-UKSFD7AGPMPPLUHC - [0:0]
    :KUBE-SVC-4SW47YFZTEDKD3PK - [0:0]
    :KUBE-SVC-GNZBNJ2PO5MGZ6GT - [0:0]
    :KUBE-SVC-NUKIZ6OKUXPJNT4C - [0:0]
    :KUBE-SVC-X27LE4BHSL4DOUIK - [0:0]
    :KUBE-SVC-XPGD46QRK7WJZT7O - [0:0]
    -A KUBE-NODEPORTS -m comment --comment ns2/svc2:p80 -m tcp -p tcp -d 127.0.0.0/8 --dport 3001 -m nfacct --nfacct-name localhost_nps_accepted_pkts -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
    -A KUBE-NODEPORTS -m comment --comment ns2/svc2:p80 -m tcp -p tcp --dport 3001 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
    -A KUBE-NODEPORTS -m comment --comment ns3/svc3:p80 -m tcp -p tcp -d 127.0.0.0/8 --dport 3003 -m nfacct --nfacct-name localhost_nps_accepted_pkts -j KUBE-EXT-X27LE4BHSL4DOUIK
    -A KUBE-NODEPORTS -m comment --comment ns3/svc3:p80 -m tcp -p tcp --dport 3003 -j KUBE-EXT-X27LE4BHSL4DOUIK
    -A KUBE-NODEPORTS -m comment --comment ns5/svc5:p80 -m tcp -p tcp -d 127.0.0.0/8 --dport 3002 -m nfacct --nfacct-name localhost_nps_accepted_pkts -j KUBE-EXT-NUKIZ6OKUXPJNT4C
    -A KUBE-NODEPORTS -m comment --comment ns5/svc5:p80 -m tcp -p tcp --dport 3002 -j KUBE-EXT-NUKIZ6OKUXPJNT4C
    -A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O
    -A KUBE-SERVICES -m comment --comment "ns2/svc2:p80 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 80 -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
    -A KUBE-SERVICES -m comment --comment "ns2/svc2:p80 external IP" -m tcp -p tcp -d 192.168.99.22 --dport 80 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
    -A KUBE-SERVICES -m comment --comment "ns2/svc2:p80 loadbalancer IP" -m tcp -p tcp -d 1.2.3.4 --dport 80 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
    -A KUBE-SERVICES -m comment --comment "ns3/svc3:p80 cluster IP" -m tcp -p tcp -d 172.30.0.43 --dport 80 -j KUBE-SVC-X27LE4BHSL4DOUIK
    -A KUBE-SERVICES -m comment --comment "ns4/svc4:p80 cluster IP" -m tcp -p tcp -d 172.30.0.44 --dport 80 -j KUBE-SVC-4SW47YFZTEDKD3PK
    -A KUBE-SERVICES -m comment --comment "ns4/svc4:p80 external IP" -m tcp -p tcp -d 192.168.99.33 --dport 80 -j KUBE-EXT-4SW47YFZTEDKD3PK
    -A KUBE-SERVICES -m comment --comment "ns5/svc5:p80 cluster IP" -m tcp -p tcp -d 172.30.0.45 --dport 80 -j KUBE-SVC-NUKIZ6OKUXPJNT4C
    -A KUBE-SERVICES -m comment --comment "ns5/svc5:p80 loadbalancer IP" -m tcp -p tcp -d 5.6.7.8 --dport 80 -j KUBE-FW-NUKIZ6OKUXPJNT4C
    -A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
    -A KUBE-EXT-4SW47YFZTEDKD3PK -m comment --comment "masquerade traffic for ns4/svc4:p80 external destinations" -j KUBE-MARK-MASQ
    -A KUBE-EXT-4SW47YFZTEDKD3PK -j KUBE-SVC-4SW47YFZTEDKD3PK
    -A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "pod traffic for ns2/svc2:p80 external destinations" -s 10.0.0.0/8 -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
    -A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "masquerade LOCAL traffic for ns2/svc2:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ
    -A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "route LOCAL traffic for ns2/svc2:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
    -A KUBE-EXT-NUKIZ6OKUXPJNT4C -m comment --comment "masquerade traffic for ns5/svc5:p80 external destinations" -j KUBE-MARK-MASQ
    -A KUBE-EXT-NUKIZ6OKUXPJNT4C -j KUBE-SVC-NUKIZ6OKUXPJNT4C
    -A KUBE-EXT-X27LE4BHSL4DOUIK -m comment --comment "masquerade traffic for ns3/svc3:p80 external destinations" -j KUBE-MARK-MASQ
    -A KUBE-EXT-X27LE4BHSL4DOUIK -j KUBE-SVC-X27LE4BHSL4DOUIK
    -A KUBE-FW-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 loadbalancer IP" -s 203.0.113.0/25 -j KUBE-EXT-NUKIZ6OKUXPJNT4C
    -A KUBE-FW-NUKIZ6OKUXPJNT4C -m comment --comment "other traffic to ns5/svc5:p80 will be dropped by KUBE-PROXY-FIREWALL"
    -A KUBE-MARK-MASQ -j MARK --or-mark 0x00004000
    -A KUBE-POSTROUTING -m mark ! --mark 0x00004000/0x00004000 -j RETURN
    -A KUBE-POSTROUTING -j MARK --xor-mark 0x00004000
    -A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE
    -A KUBE-SEP-C6EBXVWJJZMIWKLZ -m comment --comment ns4/svc4:p80 -s 10.180.0.5 -j KUBE-MARK-MASQ
    -A KUBE-SEP-C6EBXVWJJZMIWKLZ -m comment --comment ns4/svc4:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.5:80
    -A KUBE-SEP-I77PXRDZVX7PMWMN -m comment --comment ns5/svc5:p80 -s 10.180.0.3 -j KUBE-MARK-MASQ
    -A KUBE-SEP-I77PXRDZVX7PMWMN -m comment --comment ns5/svc5:p80 -m recent --name KUBE-SEP-I77PXRDZVX7PMWMN --set -m tcp -p tcp -j DNAT --to-destination 10.180.0.3:80
    -A KUBE-SEP-OYPFS5VJICHGATKP -m comment --comment ns3/svc3:p80 -s 10.180.0.3 -j KUBE-MARK-MASQ
    -A KUBE-SEP-OYPFS5VJICHGATKP -m comment --comment ns3/svc3:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.3:80
    -A KUBE-SEP-RS4RBKLTHTF2IUXJ -m comment --comment ns2/svc2:p80 -s 10.180.0.2 -j KUBE-MARK-MASQ
    -A KUBE-SEP-RS4RBKLTHTF2IUXJ -m comment --comment ns2/svc2:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.2:80
    -A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -s 10.180.0.1 -j KUBE-MARK-MASQ
    -A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80
    -A KUBE-SEP-UKSFD7AGPMPPLUHC -m comment --comment ns4/svc4:p80 -s 10.180.0.4 -j KUBE-MARK-MASQ
    -A KUBE-SEP-UKSFD7AGPMPPLUHC -m comment --comment ns4/svc4:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.4:80
    -A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 cluster IP" -m tcp -p tcp -d 172.30.0.44 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
    -A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 -> 10.180.0.4:80" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-UKSFD7AGPMPPLUHC
    -A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 -> 10.180.0.5:80" -j KUBE-SEP-C6EBXVWJJZMIWKLZ
    -A KUBE-SVC-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
    -A KUBE-SVC-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 -> 10.180.0.2:80" -j KUBE-SEP-RS4RBKLTHTF2IUXJ
    -A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 cluster IP" -m tcp -p tcp -d 172.30.0.45 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
    -A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 -> 10.180.0.3:80" -m recent --name KUBE-SEP-I77PXRDZVX7PMWMN --rcheck --seconds 10800 --reap -j KUBE-SEP-I77PXRDZVX7PMWMN
    -A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 -> 10.180.0.3:80" -j KUBE-SEP-I77PXRDZVX7PMWMN
    -A KUBE-SVC-X27LE4BHSL4DOUIK -m comment --comment "ns3/svc3:p80 cluster IP" -m tcp -p tcp -d 172.30.0.43 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
    -A KUBE-SVC-X27LE4BHSL4DOUIK -m comment --comment "ns3/svc3:p80 -> 10.180.0.3:80" -j KUBE-SEP-OYPFS5VJICHGATKP
    -A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
    -A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -j KUBE-SEP-SXIVWICOYRO3J4NJ
    COMMIT
    """)

# The upstream fake proxier's settings: cluster CIDR 10.0.0.0/8, node "test-node", nfacct available,
# an iptables without --random-fully.
UPSTREAM_FAKE = dict(cluster_cidrs=("10.0.0.0/8",), node_ips=("192.168.0.2",), random_fully=False,
                     nfacct_counters=True)


def _tables(text: str) -> dict[str, dict[str, tuple[str, ...]]]:
    model = IptablesModel.empty().restore(text)
    return {t: {c: r for c, r in model.dump(t).items() if c.startswith("KUBE-")} for t in ("filter", "nat")}


def test_overall_rules_match_upstream_proxier_test():
    rendered = render(OVERALL_SERVICES, OVERALL_SLICES, node="test-node", **UPSTREAM_FAKE)
    assert _tables(rendered.text) == _tables(UPSTREAM_OVERALL)


def test_output_writes_chains_before_rules_and_nodeports_jump_last():
    rendered = render(OVERALL_SERVICES, OVERALL_SLICES, node="test-node", **UPSTREAM_FAKE)
    nat = rendered.text.split("*nat\n", 1)[1].splitlines()
    first_rule = next(i for i, line in enumerate(nat) if line.startswith("-"))
    assert all(line.startswith(":") for line in nat[:first_rule])
    assert lines_of(rendered, "KUBE-SERVICES")[-1].endswith("--dst-type LOCAL -j KUBE-NODEPORTS")
    assert nat[-1] == "COMMIT"


# --- partial syncs (upstream TestSyncProxyRulesRepeated) ---------------------------------------------------

def _state(services, slices):
    return build_model(services, slices, "test-node")


def _plan(services, slices):
    return plan(_state(services, slices), ProxyConfig(**UPSTREAM_FAKE))


SVC1 = _svc("ns1", "svc1", "172.30.0.41")
SVC2 = service("ns2", "svc2", "172.30.0.42", port("p8080", 8080))
SVC3 = _svc("ns3", "svc3", "172.30.0.43")
EPS1 = endpoint_slice("ns1", "svc1", [endpoint("10.0.1.1")], port("p80", 80))
EPS2 = endpoint_slice("ns2", "svc2", [endpoint("10.0.2.1")], port("p8080", 8080))
EPS3 = endpoint_slice("ns3", "svc3", [endpoint("10.0.3.1")], port("p80", 80))


def _nat_section(text: str) -> list[str]:
    return text.split("*nat\n", 1)[1].splitlines()


def test_partial_sync_writes_only_the_changed_services_chains():
    first = render_iptables(_plan([SVC1, SVC2], [EPS1, EPS2]))
    second = render_iptables(_plan([SVC1, SVC2, SVC3], [EPS1, EPS2, EPS3]), previous=first.chains,
                             changed={"ns3/svc3"})
    nat = _nat_section(second.text)
    assert [line for line in nat if line.startswith(":")] == [
        ":KUBE-SERVICES - [0:0]", ":KUBE-NODEPORTS - [0:0]", ":KUBE-POSTROUTING - [0:0]",
        ":KUBE-MARK-MASQ - [0:0]", ":KUBE-SVC-X27LE4BHSL4DOUIK - [0:0]", ":KUBE-SEP-BSWRHOQ77KEXZLNL - [0:0]"]
    # Every service's KUBE-SERVICES rule is rewritten, since the chain is flushed.
    assert len(lines_of(second, "KUBE-SERVICES")) == 4
    assert not second.full and second.deleted_chains == ()
    assert second.nat_rules_total == first.nat_rules + 5


def test_partial_sync_deletes_a_removed_services_chains():
    first = render_iptables(_plan([SVC1, SVC2], [EPS1, EPS2]))
    second = render_iptables(_plan([SVC1], [EPS1]), previous=first.chains, changed={"ns2/svc2"})
    nat = _nat_section(second.text)
    assert ":KUBE-SVC-2VJB64SDSIJUP5T6 - [0:0]" in nat and ":KUBE-SEP-UHEGFW77JX3KXTOV - [0:0]" in nat
    assert [line for line in nat if line.startswith("-X")] == [
        "-X KUBE-SEP-UHEGFW77JX3KXTOV", "-X KUBE-SVC-2VJB64SDSIJUP5T6"]
    assert second.deleted_chains == ("KUBE-SEP-UHEGFW77JX3KXTOV", "KUBE-SVC-2VJB64SDSIJUP5T6")
    assert "KUBE-SVC-2VJB64SDSIJUP5T6" not in second.chains.nat_chains


def test_partial_sync_applied_over_full_sync_equals_a_fresh_full_sync():
    before = ([SVC1, SVC2], [EPS1, EPS2])
    after = ([SVC1, SVC3], [EPS1, endpoint_slice("ns3", "svc3", [endpoint("10.0.3.1"), endpoint("10.0.3.2")],
                                                    port("p80", 80))])
    first = render_iptables(_plan(*before))
    partial = render_iptables(_plan(*after), previous=first.chains, changed={"ns2/svc2", "ns3/svc3"})
    incremental = IptablesModel.empty().restore(first.text).restore(partial.text)
    fresh = IptablesModel.empty().restore(render_iptables(_plan(*after)).text)
    assert incremental.dump("nat") == fresh.dump("nat")
    assert incremental.dump("filter") == fresh.dump("filter")


def test_stale_chains_are_kept_when_deletion_is_deferred():
    first = render_iptables(_plan([SVC1, SVC2], [EPS1, EPS2]))
    second = render_iptables(_plan([SVC1], [EPS1]), previous=first.chains, changed={"ns2/svc2"},
                             delete_stale=False)
    assert "-X " not in second.text
    assert "KUBE-SVC-2VJB64SDSIJUP5T6" in second.chains.nat_chains


def test_rendered_state_can_come_from_iptables_save():
    saved = "*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SVC-2VJB64SDSIJUP5T6 - [0:0]\n:OTHER - [0:0]\nCOMMIT\n"
    rendered = render_iptables(_plan([SVC1], [EPS1]), previous=RenderedState.from_save(saved))
    assert rendered.deleted_chains == ("KUBE-SVC-2VJB64SDSIJUP5T6",)  # OTHER is not ours


# --- variants --------------------------------------------------------------------------------------------

def test_large_cluster_mode_drops_endpoint_comments():
    endpoints = [endpoint(f"10.1.{i // 250}.{i % 250 + 1}") for i in range(1001)]
    rendered = render([SEED_SERVICE], [endpoint_slice("default", "hostnames", endpoints, port("default", 9376))])
    svc_rules = lines_of(rendered, "KUBE-SVC-ODX2UBAZM7RQWOIU")
    assert "--comment" in svc_rules[0]  # the cluster IP masquerade rule keeps its comment
    assert all("--comment" not in line for line in svc_rules[1:])
    sep_rules = [line for line in rendered.text.splitlines() if line.startswith("-A KUBE-SEP-")]
    assert sep_rules and all("--comment" not in line for line in sep_rules)


@pytest.mark.parametrize("protocol", ["TCP", "UDP", "SCTP"])
def test_protocol_is_matched_with_its_module(protocol):
    svc = service("ns", "dns", "10.96.0.10", port("p", 53, protocol))
    eps = endpoint_slice("ns", "dns", [endpoint("10.244.1.5")], port("p", 53, protocol))
    rendered = render([svc], [eps])
    proto = protocol.lower()
    rule = lines_of(rendered, "KUBE-SERVICES")[0]
    assert f"-m {proto} -p {proto} -d 10.96.0.10 --dport 53" in rule
    assert rule.split()[-1].startswith("KUBE-SVC-")


def test_ipv6_uses_brackets_in_dnat_and_excludes_loopback_nodeports():
    svc = service("ns", "web", "fd00:10:96::5", port("http", 80), ipFamilies=["IPv6"],
                  clusterIPs=["fd00:10:96::5"])
    eps = endpoint_slice("ns", "web", [endpoint("fd00:10:244:1::5")], port("http", 8080), address_type="IPv6")
    rendered = render([svc], [eps], family="IPv6", cluster_cidrs=("fd00:10:244::/56",), node_ips=("fd00::2",))
    sep = [line for line in rendered.text.splitlines() if "DNAT" in line]
    assert sep == [f"-A {sep[0].split()[1]} -m comment --comment ns/web:http -m tcp -p tcp -j DNAT "
                   "--to-destination [fd00:10:244:1::5]:8080"]
    assert lines_of(rendered, "KUBE-SERVICES")[-1].endswith("--dst-type LOCAL ! -d ::1/128 -j KUBE-NODEPORTS")
    assert "KUBE-FIREWALL" not in rendered.text
    assert "! -s fd00:10:244::/56" in rendered.text


def test_nodeport_addresses_limit_the_nodeports_jump_to_those_ips():
    rendered = render([SEED_SERVICE], [SEED_SLICE], nodeport_addresses=("192.168.0.0/24",))
    assert lines_of(rendered, "KUBE-SERVICES")[-1] == (
        '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule '
        'in this chain" -d 192.168.0.2 -j KUBE-NODEPORTS')
    # Loopback is not among the NodePort addresses, so localhost NodePorts are off.
    assert "KUBE-FIREWALL" not in rendered.text


def test_localhost_nodeports_off_excludes_loopback():
    rendered = render([SEED_SERVICE], [SEED_SLICE], localhost_nodeports=False)
    assert lines_of(rendered, "KUBE-SERVICES")[-1].endswith(
        "-m addrtype --dst-type LOCAL ! -d 127.0.0.0/8 -j KUBE-NODEPORTS")


def test_conntrack_liberal_hosts_get_no_invalid_drop():
    rendered = render([SEED_SERVICE], [SEED_SLICE], conntrack_tcp_be_liberal=True)
    assert "INVALID" not in rendered.text


def test_internal_traffic_policy_local_without_local_endpoints_drops_in_filter():
    svc = service("ns", "itp", "10.96.1.1", port("p", 80), internalTrafficPolicy="Local")
    eps = endpoint_slice("ns", "itp", [endpoint("10.244.2.3", node="other")], port("p", 80))
    rendered = render([svc], [eps])
    assert lines_of(rendered, "KUBE-SERVICES") == [
        '-A KUBE-SERVICES -m comment --comment "ns/itp:p has no local endpoints" -m tcp -p tcp -d 10.96.1.1 '
        "--dport 80 -j DROP",
    ] + lines_of(rendered, "KUBE-SERVICES")[1:]
    assert "KUBE-SVC-" not in rendered.text and "KUBE-SVL-" not in rendered.text


def test_internal_traffic_policy_local_dispatches_through_svl_chain():
    svc = service("ns", "itp", "10.96.1.1", port("p", 80), internalTrafficPolicy="Local")
    eps = endpoint_slice("ns", "itp", [endpoint("10.244.1.3", node="node-1"), endpoint("10.244.2.3", node="x")],
                         port("p", 80))
    rendered = render([svc], [eps])
    jump = [line for line in lines_of(rendered, "KUBE-SERVICES") if "cluster IP" in line][0]
    chain = jump.split()[-1]
    assert chain.startswith("KUBE-SVL-")
    assert len(lines_of(rendered, chain)) == 2  # masquerade rule + the one local endpoint
    assert "10.244.2.3" not in rendered.text


def test_a_partial_sync_counts_and_keeps_the_chains_it_does_not_write():
    overall = build_model(OVERALL_SERVICES, OVERALL_SLICES, "test-node")
    the_plan = plan(overall, ProxyConfig(**UPSTREAM_FAKE))
    full = render_iptables(the_plan)
    partial = render_iptables(the_plan, previous=full.chains, changed=set())
    assert partial.nat_rules_total == full.nat_rules
    assert partial.chains == full.chains
    assert partial.deleted_chains == ()
    assert not any(line.startswith(":KUBE-SEP-") for line in partial.text.splitlines())
