"""The iptables adapter: pure parsing, command construction, and the fake behaving as iptables does."""
from __future__ import annotations

import pytest

from svcnet.proxy.conntrack import (
    ConntrackEntry,
    ConntrackFilter,
    ConntrackTool,
    parse_conntrack_list,
    stale_udp_filters,
)
from svcnet.proxy.fake import FakeIptables
from svcnet.proxy.iptables.apply import (
    CommandResult,
    IptablesError,
    NetnsIptables,
    RestoreFailed,
    binaries_for,
    canary_present,
    cleanup,
    cleanup_restore_text,
    ensure_canary,
    ensure_jump_rules,
    parse_iptables_version,
    parse_save,
    restore_error,
)
from svcnet.proxy.model import EndpointInfo, ServicePortInfo, ServicePortName

# --- version, binaries, errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("output", "version", "mode", "random_fully"), [
    ("iptables v1.8.9 (nf_tables)\n", (1, 8, 9), "nft", True),
    ("iptables v1.8.7 (legacy)\n", (1, 8, 7), "legacy", True),
    ("iptables v1.6.1\n", (1, 6, 1), "legacy", False),
    ("iptables v1.6.2\n", (1, 6, 2), "legacy", True),
])
def test_version_output_gives_backend_and_random_fully(output, version, mode, random_fully):
    parsed = parse_iptables_version(output)
    assert (parsed.version, parsed.mode, parsed.random_fully) == (version, mode, random_fully)


def test_unreadable_version_is_an_error():
    with pytest.raises(IptablesError):
        parse_iptables_version("command not found")


@pytest.mark.parametrize(("family", "mode", "available", "expected"), [
    ("IPv4", "nft", {"iptables-nft"}, ("iptables-nft", "iptables-nft-restore", "iptables-nft-save")),
    ("IPv6", "legacy", {"ip6tables-legacy"},
     ("ip6tables-legacy", "ip6tables-legacy-restore", "ip6tables-legacy-save")),
    ("IPv4", "legacy", set(), ("iptables", "iptables-restore", "iptables-save")),
])
def test_binaries_stay_on_the_detected_backend(family, mode, available, expected):
    b = binaries_for(family, mode, available)
    assert (b.iptables, b.restore, b.save) == expected


def test_restore_error_names_the_offending_line():
    text = "*nat\n:KUBE-X - [0:0]\n-A KUBE-X -j NOPE\nCOMMIT\n"
    error = restore_error("IPv4", text, "iptables-restore v1.8.9 (nf_tables): Chain 'NOPE' does not exist\n"
                                        "Error occurred at line: 3\n")
    assert error.line_number == 3 and error.line == "-A KUBE-X -j NOPE"
    assert "NOPE" in str(error)


# --- the real adapter's commands, with a recording runner -----------------------------------------------------

class RecordingRunner:
    def __init__(self, results: dict[str, int] | None = None) -> None:
        self.calls: list[tuple[tuple[str, ...], str | None]] = []
        self.results = results or {}

    def __call__(self, argv, input=None, timeout=120.0) -> CommandResult:
        self.calls.append((tuple(argv), input))
        if argv[-1] == "--version":
            return CommandResult(tuple(argv), 0, "iptables v1.8.9 (nf_tables)\n", "")
        code = self.results.get(argv[argv.index("-t") + 2] if "-t" in argv else argv[0], 0)
        return CommandResult(tuple(argv), code, "", "Error occurred at line: 2\n" if code else "")


def test_real_adapter_restores_with_noflush_on_stdin_through_the_detected_backend():
    runner = RecordingRunner()
    backend = NetnsIptables("svcnet-x-node-1", runner=runner, mode="nft")
    backend._binaries["IPv4"] = binaries_for("IPv4", "nft", {"iptables-nft"})
    backend.restore("IPv4", "*nat\nCOMMIT\n")
    argv, stdin = runner.calls[-1]
    assert argv == ("iptables-nft-restore", "--noflush", "-w", "5") and stdin == "*nat\nCOMMIT\n"
    assert backend.history[-1].ok


def test_real_adapter_checks_before_inserting_a_jump():
    runner = RecordingRunner({"-C": 1})
    backend = NetnsIptables("svcnet-x-node-1", runner=runner)
    assert backend.ensure_rule("IPv4", "nat", "PREROUTING", ("-j", "KUBE-SERVICES"))
    verbs = [call[0][call[0].index("-t") + 2] for call in runner.calls[1:]]
    assert verbs == ["-C", "-I"]


def test_real_adapter_reports_a_failed_restore():
    runner = RecordingRunner({runner_name: 1 for runner_name in ("iptables-nft-restore", "iptables-restore")})
    backend = NetnsIptables("svcnet-x-node-1", runner=runner)
    with pytest.raises(RestoreFailed) as info:
        backend.restore("IPv4", "*nat\n-A BROKEN\nCOMMIT\n")
    assert info.value.line == "-A BROKEN" and not backend.history[-1].ok


# --- the fake behaves as iptables ------------------------------------------------------------------------------

def test_fake_restore_is_all_or_nothing():
    fake = FakeIptables()
    fake.restore("IPv4", "*nat\n:KUBE-A - [0:0]\n-A KUBE-A -j RETURN\nCOMMIT\n")
    with pytest.raises(RestoreFailed) as info:
        fake.restore("IPv4", "*nat\n:KUBE-B - [0:0]\n-A KUBE-B -j KUBE-MISSING\nCOMMIT\n")
    assert info.value.line == "-A KUBE-B -j KUBE-MISSING"
    assert fake.chains("IPv4", "nat") >= {"KUBE-A"} and "KUBE-B" not in fake.chains("IPv4", "nat")


def test_fake_ensure_rule_inserts_once_at_the_top():
    fake = FakeIptables()
    fake.ensure_chain("IPv4", "nat", "KUBE-SERVICES")
    fake.restore("IPv4", "*nat\n:OTHER - [0:0]\n-A PREROUTING -j OTHER\nCOMMIT\n")
    args = ("-m", "comment", "--comment", "kubernetes service portals", "-j", "KUBE-SERVICES")
    assert fake.ensure_rule("IPv4", "nat", "PREROUTING", args)
    assert not fake.ensure_rule("IPv4", "nat", "PREROUTING", args)
    assert fake.rules("IPv4", "nat", "PREROUTING")[0].endswith("-j KUBE-SERVICES")
    assert fake.rules("IPv4", "nat", "PREROUTING")[1] == "-j OTHER"


def test_fake_save_lists_chains_and_rules_like_iptables_save():
    fake = FakeIptables()
    fake.restore("IPv4", "*nat\n:KUBE-A - [0:0]\n-A KUBE-A -j RETURN\nCOMMIT\n")
    saved = parse_save(fake.save("IPv4", "nat"))["nat"]
    assert "PREROUTING" in saved.chains and "KUBE-A" in saved.chains
    assert saved.rules == (("KUBE-A", "-j RETURN"),)


def test_canary_is_created_in_mangle_nat_and_filter_and_missed_after_a_flush():
    fake = FakeIptables()
    assert not canary_present(fake, "IPv4")
    ensure_canary(fake, "IPv4")
    assert canary_present(fake, "IPv4")
    fake.flush_table("IPv4", "mangle")
    assert not canary_present(fake, "IPv4")


def test_jump_rules_are_ensured_with_their_target_chains():
    fake = FakeIptables()
    added = ensure_jump_rules(fake, "IPv4")
    assert len(added) == 14
    assert ensure_jump_rules(fake, "IPv4") == ()
    assert fake.rules("IPv4", "nat", "POSTROUTING")[0].endswith("-j KUBE-POSTROUTING")


# --- cleanup ------------------------------------------------------------------------------------------------------

SAVED = """# Generated by iptables-save
*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-AAAA - [0:0]
:CNI-OTHER - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A PREROUTING -j CNI-OTHER
-A CNI-OTHER -j KUBE-SVC-AAAA
-A KUBE-SERVICES -d 10.96.0.1/32 -j KUBE-SVC-AAAA
COMMIT
*filter
:INPUT ACCEPT [0:0]
COMMIT
"""


def test_cleanup_text_deletes_every_jump_to_a_kube_chain_then_the_chains():
    assert cleanup_restore_text(SAVED).splitlines() == [
        "*nat",
        ":KUBE-SERVICES - [0:0]",
        ":KUBE-SVC-AAAA - [0:0]",
        '-D PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        "-D CNI-OTHER -j KUBE-SVC-AAAA",
        "-X KUBE-SERVICES",
        "-X KUBE-SVC-AAAA",
        "COMMIT",
    ]


def test_cleanup_text_is_empty_when_nothing_is_ours():
    assert cleanup_restore_text("*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n") == ""


def test_cleanup_removes_everything_the_proxy_wrote_and_keeps_the_rest():
    from tests.unit.proxy.test_syncer import seeded

    _, fake, _ = seeded()
    fake.restore("IPv4", "*nat\n:OTHER - [0:0]\n-A POSTROUTING -j OTHER\nCOMMIT\n")
    removed = cleanup(fake, ["IPv4", "IPv6"])
    assert "nat/KUBE-SVC-ODX2UBAZM7RQWOIU" in removed["IPv4"] and removed["IPv6"] == ()
    for table in ("nat", "filter", "mangle"):
        assert not any(c.startswith("KUBE-") for c in fake.chains("IPv4", table))
    assert fake.rules("IPv4", "nat", "POSTROUTING") == ("-j OTHER",)
    assert fake.rules("IPv4", "nat", "PREROUTING") == ()
    assert cleanup(fake, ["IPv4"]) == {"IPv4": ()}


# --- conntrack -----------------------------------------------------------------------------------------------------

CONNTRACK_L = """\
udp      17 28 src=10.244.2.5 dst=10.96.0.10 sport=40000 dport=53 src=10.244.1.21 dst=10.244.2.5 sport=53 dport=40000 mark=0 use=1
udp      17 29 src=192.168.0.200 dst=192.168.0.107 sport=5000 dport=30053 [UNREPLIED] src=10.244.1.21 dst=192.168.0.107 sport=53 dport=5000 mark=0 use=1
tcp      6 431999 ESTABLISHED src=10.244.2.5 dst=10.96.0.10 sport=1 dport=53 src=10.244.1.21 dst=10.244.2.5 sport=53 dport=1 [ASSURED] mark=0 use=1
"""


def test_conntrack_list_is_parsed_into_both_directions():
    entries = parse_conntrack_list(CONNTRACK_L)
    assert [(e.protocol, e.orig_dst, e.orig_dport, e.reply_src) for e in entries] == [
        ("udp", "10.96.0.10", 53, "10.244.1.21"),
        ("udp", "192.168.0.107", 30053, "10.244.1.21"),
        ("tcp", "10.96.0.10", 53, "10.244.1.21"),
    ]


DNS = ServicePortInfo(ServicePortName("kube-system", "kube-dns", "dns", "UDP"), "10.96.0.10", 53, node_port=30053)


@pytest.mark.parametrize(("endpoints", "expected"), [
    # the endpoint answering the flows is still serving: keep them
    ((EndpointInfo("10.244.1.21", 53),), []),
    # it went away: delete by VIP:port and by NodePort, in each case only flows it answered
    ((EndpointInfo("10.244.1.22", 53),),
     [ConntrackFilter("10.244.1.21", None, 30053), ConntrackFilter("10.244.1.21", "10.96.0.10", 53)]),
    # a terminating endpoint that is not serving does not keep its flows
    ((EndpointInfo("10.244.1.21", 53, serving=False, ready=False), EndpointInfo("10.244.1.22", 53)),
     [ConntrackFilter("10.244.1.21", None, 30053), ConntrackFilter("10.244.1.21", "10.96.0.10", 53)]),
    # no serving endpoint at all: nothing to move flows to, leave them
    ((), []),
], ids=["still-serving", "removed", "not-serving", "no-endpoints"])
def test_stale_udp_flows_are_those_not_answered_by_a_serving_endpoint(endpoints, expected):
    filters = stale_udp_filters(parse_conntrack_list(CONNTRACK_L), [DNS], {DNS.name: endpoints})
    assert filters == expected


def test_conntrack_tool_deletes_with_conntrack_arguments():
    calls = []

    def runner(argv, input=None, timeout=120.0):
        calls.append(list(argv))
        return CommandResult(tuple(argv), 0, "", "conntrack v1.4.7 (conntrack-tools): 2 flow entries have been "
                                                 "deleted.\n")

    tool = ConntrackTool(runner)
    assert tool.delete("IPv4", ConntrackFilter("10.244.1.21", "10.96.0.10", 53)) == 2
    assert calls == [["conntrack", "-D", "-f", "ipv4", "-p", "udp", "--orig-dst", "10.96.0.10",
                      "--orig-port-dst", "53", "--reply-src", "10.244.1.21"]]


def test_conntrack_entries_compare_by_value():
    entry = ConntrackEntry("udp", "a", "b", 1, 2, "c", "d", 3, 4)
    assert entry == ConntrackEntry("udp", "a", "b", 1, 2, "c", "d", 3, 4)
