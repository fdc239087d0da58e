"""kube-proxy's KubeProxyConfiguration and flags, resolved as kube-proxy resolves them (svcnet.proxy.kpconfig)."""
from __future__ import annotations

import argparse
import textwrap

import pytest

from svcnet.proxy import flags, kpconfig
from svcnet.proxy.kpconfig import ConfigError, KubeProxySettings, decode, resolve

HEAD = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n"
SVCNET_DEFAULT = ("10.244.0.0/16",)


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--node", "--hostname-override", dest="node", default="")
    kpconfig.add_kube_proxy_flags(parser, SVCNET_DEFAULT)
    return parser.parse_args(list(argv))


def settings(text: str, *argv: str) -> KubeProxySettings:
    return resolve(parse(*argv), SVCNET_DEFAULT, HEAD + textwrap.dedent(text))[0]


# --- the file ------------------------------------------------------------------------------------------------------

def test_an_empty_configuration_gets_kube_proxys_defaults():
    s = settings("")
    assert (s.mode, s.detect_local_mode, s.masquerade_bit, s.masquerade_all) == ("iptables", "ClusterCIDR", 14, False)
    assert (s.sync_period, s.min_sync_period) == (30.0, 1.0)
    assert (s.healthz_bind_address, s.metrics_bind_address) == ("0.0.0.0:10256", "127.0.0.1:10249")
    assert s.cluster_cidrs == () and s.nodeport_addresses == () and s.localhost_nodeports


def test_the_file_sets_what_the_flags_would():
    s = settings("""\
        mode: iptables
        hostnameOverride: node-1
        clusterCIDR: 10.200.0.0/16,fd00:200::/56
        detectLocalMode: InterfaceNamePrefix
        detectLocal: {interfaceNamePrefix: veth}
        nodePortAddresses: [192.168.0.0/24]
        iptables: {masqueradeBit: 13, masqueradeAll: true, localhostNodePorts: false, syncPeriod: 1m,
                   minSyncPeriod: 250ms}
        conntrack: {tcpBeLiberal: true}
        metricsBindAddress: 0.0.0.0
        """)
    assert s.hostname_override == "node-1"
    assert s.cluster_cidrs == ("10.200.0.0/16", "fd00:200::/56")
    assert (s.detect_local_mode, s.interface_name_prefix) == ("InterfaceNamePrefix", "veth")
    assert s.nodeport_addresses == ("192.168.0.0/24",)
    assert (s.masquerade_bit, s.masquerade_all, s.localhost_nodeports) == (13, True, False)
    assert (s.sync_period, s.min_sync_period) == (60.0, 0.25)
    assert s.conntrack_tcp_be_liberal
    assert s.metrics_bind_address == "0.0.0.0:10249"  # an IP alone gets kube-proxy's port


def test_nftables_mode_reads_the_nftables_section_and_defaults_nodeports_to_primary():
    s = settings("""\
        mode: nftables
        iptables: {masqueradeBit: 3, masqueradeAll: true, syncPeriod: 5m}
        nftables: {masqueradeBit: 9, syncPeriod: 10s, minSyncPeriod: 2s}
        """)
    assert (s.mode, s.masquerade_bit, s.masquerade_all) == ("nftables", 9, False)
    assert (s.sync_period, s.min_sync_period) == (10.0, 2.0)
    assert s.nodeport_addresses == ("primary",)


def test_an_unknown_field_is_decoded_leniently_with_a_warning_as_kube_proxy_does():
    s, notes = resolve(parse(), SVCNET_DEFAULT, HEAD + "masqueradeAll: true\niptables: {masqueradBit: 3}\n")
    assert s.masquerade_all is False and s.masquerade_bit == 14
    assert any('unknown field "masqueradeAll"' in n for n in notes)
    assert any('unknown field "iptables.masqueradBit"' in n for n in notes)


@pytest.mark.parametrize(("text", "message"), [
    ("", "Object 'Kind' is missing"),
    ("- a list\n", "expected a KubeProxyConfiguration object, got array"),
    ("kind: KubeProxyConfiguration\napiVersion: kubeproxy.config.k8s.io/v1beta1\n",
     'no kind "KubeProxyConfiguration" is registered for version "kubeproxy.config.k8s.io/v1beta1"'),
    ("apiVersion: v1\nkind: ConfigMap\n", 'no kind "ConfigMap"'),
    ("key: [unclosed\n", "failed to decode: yaml:"),
    (HEAD + "iptables: {masqueradeBit: fourteen}\n",
     "cannot unmarshal string into Go struct field iptables.masqueradeBit of type int32"),
    (HEAD + "iptables: {syncPeriod: 30}\n", "cannot unmarshal number into Go struct field iptables.syncPeriod"),
    (HEAD + "iptables: {syncPeriod: 30x}\n", 'time: invalid duration "30x"'),
    (HEAD + "nodePortAddresses: 10.0.0.0/8\n", "cannot unmarshal string into Go struct field nodePortAddresses"),
    (HEAD + "iptables: true\n", "cannot unmarshal bool into Go struct field iptables of type struct"),
    (HEAD + "oomScoreAdj: 99999999999\n", "cannot unmarshal number 99999999999"),
])
def test_a_file_kube_proxy_cannot_decode_is_an_error(text, message):
    with pytest.raises(ConfigError, match="failed to decode") as caught:
        decode(text)
    assert message in str(caught.value)


@pytest.mark.parametrize(("text", "message"), [
    ("iptables: {masqueradeBit: 32}\n",
     "KubeProxyConfiguration.KubeProxyIPTablesConfiguration.MasqueradeBit: Invalid value: 32: "
     "must be within the range [0, 31]"),
    ("mode: nftables\nnftables: {masqueradeBit: -1}\n", "KubeProxyNFTablesConfiguration.MasqueradeBit"),
    ("mode: userspace\n", 'Mode.ProxyMode: Invalid value: "userspace"'),
    ("mode: ipvs\n", "svcnet implements the iptables and nftables modes only"),
    ("detectLocalMode: Bogus\n", 'DetectLocalMode: Unsupported value: "Bogus"'),
    ("detectLocalMode: BridgeInterface\n", "DetectLocalConfiguration.InterfaceName: Invalid value: \"\": must not be empty"),
    ("detectLocalMode: InterfaceNamePrefix\n", "DetectLocalConfiguration.InterfacePrefix"),
    ("clusterCIDR: 10.0.0.0/8,10.1.0.0/16\n", "dual-stack pair of CIDRs"),
    ("clusterCIDR: 10.0.0.0/33\n", 'ClusterCIDRs[0]: Invalid value: "10.0.0.0/33"'),
    ("nodePortAddresses: [primary, 10.0.0.0/8]\n", "can't use both 'primary' and CIDRs"),
    ("nodePortAddresses: [10.0.0.1]\n", 'NodePortAddresses[0]: Invalid value: "10.0.0.1": must be a valid CIDR'),
    ("iptables: {syncPeriod: 1s, minSyncPeriod: 5s}\n", "must be greater than or equal to"),
    ("iptables: {syncPeriod: -1s}\n", 'SyncPeriod: Invalid value: "-1s": must be greater than 0'),
    ("bindAddress: nope\n", "BindAddress: Invalid value: \"nope\""),
    ("healthzBindAddress: 1.2.3.4:99999\n", 'HealthzBindAddress: Invalid value: "99999": must be a valid port'),
    ("metricsBindAddress: host:10249\n", 'MetricsBindAddress: Invalid value: "host": must be a valid IP'),
    ("oomScoreAdj: 2000\n", "OOMScoreAdj: Invalid value: 2000"),
    ("conntrack: {min: -1}\n", "KubeProxyConntrackConfiguration.Min"),
])
def test_a_configuration_kube_proxy_would_not_validate_is_an_error(text, message):
    with pytest.raises(ConfigError) as caught:
        settings(text)
    assert message in str(caught.value)


def test_every_validation_error_is_reported_at_once():
    with pytest.raises(ConfigError) as caught:
        settings("iptables: {masqueradeBit: 40}\ndetectLocalMode: Bogus\n")
    text = str(caught.value)
    assert text.startswith("[") and "MasqueradeBit" in text and "DetectLocalMode" in text


def test_an_oversized_file_is_refused_before_parsing():
    with pytest.raises(ConfigError, match="larger than"):
        decode(HEAD + "#" * kpconfig.MAX_CONFIG_BYTES)


def test_aliases_are_not_expanded_into_fields():
    # A "billion laughs" document: anchors nested ten deep. Only schema fields are walked, so it costs nothing.
    laughs = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"a{i}: &a{i} [*a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}]\n"
        for i in range(1, 10))
    s, warnings = decode(HEAD + laughs)
    assert s.mode == "" and len(warnings) == 10


# --- the file and the flags ----------------------------------------------------------------------------------------

def test_with_config_the_file_wins_and_given_flags_are_noted_as_ignored():
    s, notes = resolve(parse("--masquerade-all", "--cluster-cidr", "10.9.0.0/16", "--iptables-masquerade-bit", "3"),
                       SVCNET_DEFAULT, HEAD + "clusterCIDR: 10.200.0.0/16\n")
    assert s.cluster_cidrs == ("10.200.0.0/16",) and not s.masquerade_all and s.masquerade_bit == 14
    assert sorted(n.split()[0] for n in notes) == ["--cluster-cidr", "--iptables-masquerade-bit", "--masquerade-all"]


def test_hostname_override_flag_wins_over_the_file_lowercased():
    s, notes = resolve(parse("--hostname-override", " Node-2 "), SVCNET_DEFAULT, HEAD + "hostnameOverride: node-1\n")
    assert s.hostname_override == "node-2" and notes == []


def test_without_config_flags_override_the_defaults():
    s, notes = resolve(parse("--proxy-mode", "nftables", "--detect-local-mode", "BridgeInterface",
                             "--pod-bridge-interface", "cni0", "--iptables-masquerade-bit", "3",
                             "--masquerade-all=true", "--iptables-sync-period", "1m",
                             "--iptables-min-sync-period", "2s"), SVCNET_DEFAULT, None)
    assert notes == []
    assert (s.mode, s.detect_local_mode, s.bridge_interface) == ("nftables", "BridgeInterface", "cni0")
    # As upstream: --iptables-masquerade-bit is the iptables section's; nftables mode keeps its own bit.
    assert (s.iptables_masquerade_bit, s.masquerade_bit) == (3, 14)
    assert s.masquerade_all and (s.sync_period, s.min_sync_period) == (60.0, 2.0)
    assert s.cluster_cidrs == SVCNET_DEFAULT and s.nodeport_addresses == ("primary",)


def test_svcnet_flag_names_are_aliases():
    a = resolve(parse("--mode", "iptables", "--sync-period", "1m", "--min-sync-period", "2s"), SVCNET_DEFAULT, None)
    b = resolve(parse("--proxy-mode", "iptables", "--iptables-sync-period", "1m", "--iptables-min-sync-period", "2s"),
                SVCNET_DEFAULT, None)
    assert a == b and a[0].sync_period == 60.0


@pytest.mark.parametrize("argv", [
    ("--iptables-masquerade-bit", "32"),
    ("--detect-local-mode", "BridgeInterface"),
    ("--detect-local-mode", "InterfaceNamePrefix"),
    ("--cluster-cidr", "10.0.0.0/8,10.1.0.0/16"),
    ("--nodeport-addresses", "primary,10.0.0.0/8"),
    ("--iptables-sync-period", "1s", "--iptables-min-sync-period", "2s"),
    ("--iptables-sync-period", "soon"),
    ("--hostname-override", "  "),
])
def test_bad_flag_values_are_flag_errors(argv):
    with pytest.raises(flags.FlagError):
        resolve(parse(*argv), SVCNET_DEFAULT, None)


@pytest.mark.parametrize("argv", [("--proxy-mode", "ipvs"), ("--detect-local-mode", "Cluster"),
                                  ("--masquerade-all=maybe",)])
def test_values_outside_kube_proxys_choices_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as caught:
        parse(*argv)
    assert caught.value.code == 2


@pytest.mark.parametrize(("text", "seconds"), [
    ("30s", 30.0), ("1m30s", 90.0), ("500ms", 0.5), ("1.5h", 5400.0), ("0", 0.0), ("-1s", -1.0), ("2h45m", 9900.0),
    ("100us", 0.0001),
])
def test_go_durations(text, seconds):
    assert flags.go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "1x", "s", "1s2", "--1s"])
def test_bad_go_durations(text):
    with pytest.raises(ValueError):
        flags.go_duration(text)


@pytest.mark.parametrize(("seconds", "text"), [(0, "0s"), (90, "1m30s"), (0.5, "500ms"), (3600, "1h0m0s"), (-1, "-1s")])
def test_durations_are_written_as_go_writes_them(seconds, text):
    assert flags.format_go_duration(seconds) == text
