"""Each plugin's setup from a Corefile (plugin/*/setup.go): options, defaults, chain order and errors."""
from __future__ import annotations

import pytest

from svcnet.dns.corefile import CorefileError
from svcnet.dns.plugins import (
    CacheConfig,
    ForwardConfig,
    HostsConfig,
    KubernetesConfig,
    RewriteRule,
    load,
    parse_duration,
    rewrite_name,
)
from tests.unit.dns.test_corefile import KUBEADM

RESOLV = "nameserver 10.0.0.53\nnameserver 10.0.0.54\n"


def read_file(path: str) -> str:
    if path == "/etc/resolv.conf":
        return RESOLV
    raise FileNotFoundError(path)


def server(text: str):
    [block] = load(text, read_file=read_file).servers
    return block


def test_kubeadm_corefile_sets_up_every_plugin() -> None:
    config = load(KUBEADM, read_file=read_file)
    [block] = config.servers
    assert block.zones == (".",) and block.port == 53
    assert block.kubernetes == KubernetesConfig(zones=("cluster.local.",), reverse_zones=("in-addr.arpa.", "ip6.arpa."),
                                                pods="insecure", ttl=30, fallthrough=("in-addr.arpa.", "ip6.arpa."))
    assert block.forward == ForwardConfig(from_zone=".", to=(("10.0.0.53", 53), ("10.0.0.54", 53)),
                                          max_concurrent=1000)
    assert block.cache == CacheConfig(zones=(".",), success_ttl=30, denial_ttl=30, disable_success=("cluster.local.",),
                                      disable_denial=("cluster.local.",))
    assert block.loop and block.loadbalance and not block.log
    assert config.health == (":8080", 5.0) and config.ready == ":8181" and config.prometheus == ":9153"
    assert config.reload == (30.0, 15.0)


def test_chain_order_is_plugin_cfg_order_not_the_corefiles() -> None:
    block = server(".:53 {\n forward . 10.0.0.1\n loop\n kubernetes cluster.local\n hosts\n cache\n"
                   " rewrite name a.b c.d\n log\n}")
    assert block.plugins == ("log", "cache", "rewrite", "hosts", "kubernetes", "loop", "forward")


def test_kubernetes_plugin_defaults_and_options() -> None:
    block = server("cluster.local:53 {\n kubernetes {\n  endpoint_pod_names\n  ignore empty_service\n"
                   "  fallthrough\n }\n}")
    assert block.kubernetes == KubernetesConfig(zones=("cluster.local.",), reverse_zones=(), pods="disabled", ttl=5,
                                                fallthrough=(".",), endpoint_pod_names=True, ignore_empty_service=True)


def test_forward_options() -> None:
    block = server(".:53 {\n forward example.org 10.0.0.1:5353 [fd00::1]:53 {\n  policy sequential\n"
                   "  except a.example.org\n  max_fails 0\n  health_check 2s\n  expire 1m\n }\n}")
    assert block.forward == ForwardConfig(from_zone="example.org.", to=(("10.0.0.1", 5353), ("fd00::1", 53)),
                                          excepted=("a.example.org.",), policy="sequential", max_fails=0,
                                          health_check=2.0, expire=60.0)


def test_cache_options() -> None:
    block = server(".:53 {\n cache 300 example.org {\n  success 5000 600 10\n  denial 100 60\n"
                   "  serve_stale 1h verify\n }\n}")
    assert block.cache == CacheConfig(zones=("example.org.",), success_capacity=5000, success_ttl=600,
                                      success_min_ttl=10, denial_capacity=100, denial_ttl=60, serve_stale=3600.0,
                                      stale_verify=True)


def test_hosts_inline_entries_file_and_options() -> None:
    block = server(".:53 {\n hosts /etc/custom-hosts lan {\n  10.1.2.3 printer.lan Printer.LAN.\n"
                   "  fd00::3 printer.lan\n  ttl 60\n  no_reverse\n  fallthrough\n }\n}")
    assert block.hosts == HostsConfig(path="/etc/custom-hosts", zones=("lan.",),
                                      inline=(("10.1.2.3", ("printer.lan.", "printer.lan.")),
                                              ("fd00::3", ("printer.lan.",))),
                                      ttl=60, reverse=False, fallthrough=(".",))
    assert server(".:53 {\n hosts\n}").hosts == HostsConfig(path="/etc/hosts", zones=(".",))


def test_rewrite_name_rules_and_their_answer_rules() -> None:
    block = server(".:53 {\n rewrite name foo.example.com foo.default.svc.cluster.local\n"
                   " rewrite continue name suffix .corp. .svc.cluster.local. answer auto\n"
                   " rewrite name regex (.*)\\.db\\.lan {1}.default.svc.cluster.local answer name "
                   "(.*)\\.default\\.svc\\.cluster\\.local {1}.db.lan\n}")
    exact, suffix, regex = block.rewrites
    assert exact == RewriteRule("exact", "foo.example.com.", "foo.default.svc.cluster.local.")
    assert suffix == RewriteRule("suffix", ".corp.", ".svc.cluster.local.", stop=False,
                                 answer=RewriteRule("suffix", ".svc.cluster.local.", ".corp."))
    assert rewrite_name(exact, "foo.example.com.") == "foo.default.svc.cluster.local."
    assert rewrite_name(exact, "bar.example.com.") is None
    assert rewrite_name(suffix, "web.team.corp.") == "web.team.svc.cluster.local."
    assert rewrite_name(regex, "pg.db.lan.") == "pg.default.svc.cluster.local."
    assert regex.answer is not None and rewrite_name(regex.answer, "pg.default.svc.cluster.local.") == "pg.db.lan."
    prefix = server(".:53 {\n rewrite name prefix old new\n}").rewrites[0]
    assert rewrite_name(prefix, "old-api.example.") == "new-api.example."


def test_stub_domain_blocks_and_ports() -> None:
    config = load("example.com:53 {\n forward . 10.0.0.10\n}\n.:53 {\n forward . /etc/resolv.conf\n}\n"
                  "dns://internal:1053 {\n forward . 10.0.0.11\n}", read_file=read_file)
    assert [(s.zones, s.port) for s in config.servers] == [(("example.com.",), 53), ((".",), 53),
                                                           (("internal.",), 1053)]
    assert config.ports == (53, 1053)


@pytest.mark.parametrize("text,message", [
    (".:53 {\n    etcd\n}", "plugin/etcd: Corefile:2 - Error during parsing: plugin 'etcd' is not supported by svcnet"),
    (".:53 {\n    forward . 10.0.0.1 {\n       policy fastest\n    }\n}",
     "plugin/forward: Corefile:3 - Error during parsing: unknown policy 'fastest'"),
    (".:53 {\n    forward .\n}",
     "plugin/forward: Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after '.'"),
    (".:53 {\n forward . not-an-ip\n}",
     'plugin/forward: Corefile:2 - Error during parsing: not an IP address or file: "not-an-ip"'),
    (".:53 {\n forward . 10.0.0.1 {\n  bogus 1\n }\n}",
     "plugin/forward: Corefile:3 - Error during parsing: unknown property 'bogus'"),
    (".:53 {\n kubernetes cluster.local {\n  pods sometimes\n }\n}",
     "plugin/kubernetes: Corefile:3 - Error during parsing: wrong value for pods: sometimes,  must be one of: "
     "disabled, verified, insecure"),
    (".:53 {\n kubernetes cluster.local {\n  ttl 4000\n }\n}",
     "plugin/kubernetes: Corefile:3 - Error during parsing: ttl must be in range [0, 3600]: 4000"),
    (".:53 {\n kubernetes in-addr.arpa\n}", "plugin/kubernetes: non-reverse zone name must be used"),
    (".:53 {\n kubernetes\n kubernetes\n}", "plugin/kubernetes: this plugin can only be used once per Server Block"),
    (".:53 {\n cache 0\n}", "plugin/cache: Corefile:2 - Error during parsing: cache TTL can not be zero or negative: 0"),
    (".:53 {\n cache {\n  success\n }\n}",
     "plugin/cache: Corefile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'success'"),
    (".:53 {\n reload 1s\n}", "plugin/reload: interval value must be greater or equal to 2s"),
    (".:53 {\n health {\n  lameduck soon\n }\n}",
     'plugin/health: Corefile:3 - Error during parsing: time: invalid duration "soon"'),
    (".:53 {\n rewrite type A AAAA\n}",
     "plugin/rewrite: Corefile:2 - Error during parsing: rule type 'type' is not supported by svcnet (name rules only)"),
    (".:53 {\n loop x\n}", "plugin/loop: Corefile:2 - Error during parsing: Wrong argument count or unexpected "
                            "line ending after 'x'"),
    (".:53 {\n log\n}\n.:53 {\n log\n}", "cannot serve dns://.:53 - it is already defined"),
], ids=["unsupported-plugin", "policy", "forward-args", "forward-target", "forward-property", "pods", "ttl",
        "reverse-only", "once", "cache-ttl", "cache-success", "reload-interval", "lameduck", "rewrite-type",
        "loop-args", "duplicate-zone"])
def test_bad_plugin_setups_fail_naming_plugin_and_line(text: str, message: str) -> None:
    with pytest.raises(CorefileError) as error:
        load(text, read_file=read_file)
    assert str(error.value) == message


@pytest.mark.parametrize("text,seconds", [("30s", 30.0), ("1m30s", 90.0), ("500ms", 0.5), ("2h", 7200.0), ("0", 0.0)])
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "s", "1x"])
def test_bad_go_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)
