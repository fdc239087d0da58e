from __future__ import annotations

from typing import Any

import pytest

from svcnet.agent.dnsconfig import (
    DnsConfig,
    PodDnsError,
    parse_resolv_conf,
    pod_dns_config,
    pod_hostname,
    render_hosts_file,
    render_resolv_conf,
)

HOST = DnsConfig(("192.168.0.1", "8.8.8.8"), ("corp.example", "lab.example"), ("edns0",))


def pod(namespace: str = "default", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "web-0", "namespace": namespace}, "spec": spec}


@pytest.mark.parametrize("text, expected", [
    ("nameserver 1.1.1.1\nnameserver 8.8.8.8\n", DnsConfig(("1.1.1.1", "8.8.8.8"))),
    ("# comment\n  nameserver 1.1.1.1  \nnameserver\n", DnsConfig(("1.1.1.1",))),
    ("search a.example b.example.\nsearch c.example . d.example\n", DnsConfig((), ("c.example", "d.example"))),
    ("options ndots:2\noptions edns0 attempts:3\n", DnsConfig((), (), ("edns0", "attempts:3"))),
    ("domain ignored.example\n", DnsConfig()),
])
def test_parse_resolv_conf_reads_as_kubelet(text: str, expected: DnsConfig) -> None:
    assert parse_resolv_conf(text) == expected


@pytest.mark.parametrize("name, the_pod, expected", [
    ("cluster first uses the cluster DNS and the namespace's search list plus the host's",
     pod("prod"), DnsConfig(("10.96.0.10",), ("prod.svc.cluster.local", "svc.cluster.local", "cluster.local",
                                              "corp.example", "lab.example"), ("ndots:5",))),
    ("Default is the node's resolv.conf", pod(dnsPolicy="Default"), HOST),
    ("ClusterFirst on the host network falls back to Default", pod(dnsPolicy="ClusterFirst", hostNetwork=True), HOST),
    ("ClusterFirstWithHostNet keeps the cluster DNS", pod(dnsPolicy="ClusterFirstWithHostNet", hostNetwork=True),
     DnsConfig(("10.96.0.10",), ("default.svc.cluster.local", "svc.cluster.local", "cluster.local",
                                 "corp.example", "lab.example"), ("ndots:5",))),
    ("None takes only dnsConfig",
     pod(dnsPolicy="None", dnsConfig={"nameservers": ["1.2.3.4"], "searches": ["ns1.svc.cluster-domain.example"],
                                      "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}),
     DnsConfig(("1.2.3.4",), ("ns1.svc.cluster-domain.example",), ("ndots:2", "edns0"))),
    ("dnsConfig merges without duplicates and overrides options by name",
     pod(dnsConfig={"nameservers": ["10.96.0.10", "1.1.1.1"], "searches": ["cluster.local", "extra.example"],
                    "options": [{"name": "ndots", "value": "1"}, {"name": "single-request"}]}),
     DnsConfig(("10.96.0.10", "1.1.1.1"), ("default.svc.cluster.local", "svc.cluster.local", "cluster.local",
                                           "corp.example", "lab.example", "extra.example"),
               ("ndots:1", "single-request"))),
])
def test_pod_dns_config_follows_the_dns_policy(name: str, the_pod: dict[str, Any], expected: DnsConfig) -> None:
    assert pod_dns_config(the_pod, HOST).config == expected, name


def test_more_than_three_nameservers_are_cut_with_a_warning() -> None:
    result = pod_dns_config(pod(dnsPolicy="None", dnsConfig={"nameservers": ["1.1.1.1", "2.2.2.2", "3.3.3.3",
                                                                             "4.4.4.4"]}), HOST)
    assert result.config.nameservers == ("1.1.1.1", "2.2.2.2", "3.3.3.3")
    assert result.warnings[0].startswith("Nameserver limits were exceeded")


def test_search_list_is_cut_to_32_paths_and_2048_characters() -> None:
    many = [f"d{i}.example" for i in range(40)]
    assert len(pod_dns_config(pod(dnsPolicy="None", dnsConfig={"searches": many}), HOST).config.searches) == 32
    long = ["x" * 250 + f".{i}" for i in range(9)]  # 9 * 253 + 8 spaces > 2048
    result = pod_dns_config(pod(dnsPolicy="None", dnsConfig={"searches": long}), HOST)
    assert len(" ".join(result.config.searches)) <= 2048 and len(result.config.searches) == 8
    assert "Search Line limits were exceeded" in result.warnings[0]


def test_cluster_first_without_cluster_dns_falls_back_to_the_node() -> None:
    result = pod_dns_config(pod(), HOST, cluster_dns=())
    assert result.config == HOST and "Falling back" in result.warnings[0]


def test_resolv_conf_renders_search_nameserver_options() -> None:
    text = render_resolv_conf(pod_dns_config(pod(), DnsConfig(("127.0.0.53",))).config)
    assert text == ("search default.svc.cluster.local svc.cluster.local cluster.local\n"
                    "nameserver 10.96.0.10\noptions ndots:5\n")


@pytest.mark.parametrize("spec, expected", [
    ({}, ("web-0", "", "web-0")),
    ({"hostname": "db"}, ("db", "", "db")),
    ({"subdomain": "hostnames"}, ("web-0", "hostnames.default.svc.cluster.local", "web-0")),
    ({"hostname": "db", "subdomain": "s", "setHostnameAsFQDN": True},
     ("db", "s.default.svc.cluster.local", "db.s.default.svc.cluster.local")),
])
def test_pod_hostname_and_domain(spec: dict[str, Any], expected: tuple[str, str, str]) -> None:
    names = pod_hostname(pod(**spec))
    assert (names.hostname, names.domain, names.uts_hostname) == expected


def test_long_pod_name_is_truncated_to_a_hostname() -> None:
    the_pod = {"metadata": {"name": "a" * 62 + "-b"}, "spec": {}}
    assert pod_hostname(the_pod).hostname == "a" * 62


@pytest.mark.parametrize("spec", [{"hostname": "Bad_Name"}, {"subdomain": "bad.sub"},
                                  {"hostname": "h" * 40, "subdomain": "s" * 20, "setHostnameAsFQDN": True}])
def test_invalid_hostname_subdomain_or_long_fqdn_is_refused(spec: dict[str, Any]) -> None:
    with pytest.raises(PodDnsError):
        pod_hostname(pod(**spec))


def test_hosts_file_as_kubelet_writes_it() -> None:
    the_pod = pod(subdomain="hostnames", hostAliases=[{"ip": "10.1.2.3", "hostnames": ["foo.local", "bar.local"]}])
    text = render_hosts_file(the_pod, ["10.244.1.8"], pod_hostname(the_pod))
    assert text == ("# Kubernetes-managed hosts file.\n"
                    "127.0.0.1\tlocalhost\n"
                    "::1\tlocalhost ip6-localhost ip6-loopback\n"
                    "fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n"
                    "10.244.1.8\tweb-0.hostnames.default.svc.cluster.local\tweb-0\n"
                    "\n# Entries added by HostAliases.\n10.1.2.3\tfoo.local\tbar.local\n")


def test_hosts_file_without_subdomain_names_the_hostname_only() -> None:
    text = render_hosts_file(pod(), ["10.244.1.8", "fd00::8"], pod_hostname(pod()))
    assert text.endswith("10.244.1.8\tweb-0\nfd00::8\tweb-0\n")
