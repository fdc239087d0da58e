"""iptables-nft's chain cache: when the adapter asks for the whole table (`-S`) instead of chain by chain."""
from __future__ import annotations

import pytest

from svcnet.kernel.iptables import NetnsIptables, RestoreFailed, binaries_for
from svcnet.proxy.iptables.apply import (
    WHOLE_TABLE_CACHE_COMMAND,
    IptablesApplier,
    chain_names,
    restore_blocks,
    wants_whole_table_cache,
    with_whole_table_cache,
)
from svcnet.testing.exec import FakeRunner, printed

FILTER_BLOCK = ["*filter", ":KUBE-SERVICES - [0:0]", ":KUBE-FORWARD - [0:0]",
                "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP", "COMMIT"]


def service_chains(index: int, endpoints: int) -> tuple[list[str], list[str]]:
    """Declarations and rules of one service port shaped as the renderer writes them."""
    svc = f"KUBE-SVC-{index:016d}"
    seps = [f"KUBE-SEP-{index:010d}{e:06d}" for e in range(endpoints)]
    declared = [f":{svc} - [0:0]"] + [f":{sep} - [0:0]" for sep in seps]
    rules = [f"-A {svc} -d 10.96.0.1/32 -p tcp --dport 80 ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ"]
    rules += [f"-A {svc} -m statistic --mode random --probability 0.5000000000 -j {sep}" for sep in seps]
    for e, sep in enumerate(seps):
        rules.append(f"-A {sep} -s 10.244.0.{e} -j KUBE-MARK-MASQ")
        rules.append(f"-A {sep} -m tcp -p tcp -j DNAT --to-destination 10.244.0.{e}:8080")
    return declared, rules


def restore_text(services: range, endpoints: int = 10, kube_services: bool = True) -> str:
    """A restore input writing these services' chains (and, optionally, KUBE-SERVICES for all of them)."""
    declared = [":KUBE-SERVICES - [0:0]", ":KUBE-MARK-MASQ - [0:0]"] if kube_services else []
    rules = []
    for index in services:
        d, r = service_chains(index, endpoints)
        declared += d
        rules += r
        if kube_services:
            rules.append(f"-A KUBE-SERVICES -d 10.96.0.1/32 -p tcp --dport 80 -j KUBE-SVC-{index:016d}")
    return "\n".join(FILTER_BLOCK + ["*nat", *declared, *rules, "COMMIT"]) + "\n"


def test_blocks_count_declarations_and_rules_per_table():
    blocks = restore_blocks(restore_text(range(2), endpoints=3).splitlines())
    assert [(b.table, b.declared, b.rules) for b in blocks] == [("filter", 2, 1), ("nat", 2 + 2 * 4, 2 * 11)]
    assert blocks[1].start == len(FILTER_BLOCK) and blocks[1].lines == blocks[1].declared + blocks[1].rules


def test_chain_names_are_declared_written_and_jumped_to():
    lines = [":KUBE-SVC-A - [0:0]", "-A KUBE-SERVICES -d 10.96.0.1/32 -j KUBE-SVC-B",
             "-A KUBE-SVC-A -g KUBE-SEP-C", "-X KUBE-SEP-D"]
    assert chain_names(lines) == {"KUBE-SVC-A", "KUBE-SERVICES", "KUBE-SVC-B", "KUBE-SEP-C", "KUBE-SEP-D"}


def test_a_full_sync_at_1000_services_wants_the_whole_table():
    # 11,000 chains named in 43,000 lines: ~240 million list steps against a dump of 32,000 rules.
    assert wants_whole_table_cache(43_000, 11_000, table_rules=0)
    assert wants_whole_table_cache(43_000, 11_000, table_rules=32_000)


def test_a_one_service_partial_sync_stays_chain_by_chain():
    assert not wants_whole_table_cache(44, 12, table_rules=0)
    assert not wants_whole_table_cache(44, 12, table_rules=430_000)


def test_rewriting_kube_services_at_10000_services_stays_chain_by_chain_when_the_table_is_big():
    # 10,000 jumps to 10,000 chains: ~50 million steps, cheaper than dumping 430,000 rules.
    assert not wants_whole_table_cache(10_002, 10_002, table_rules=430_000)


def test_the_switch_goes_first_in_the_blocks_that_want_it_and_nothing_else_changes():
    text = restore_text(range(1000))
    sent, tables = with_whole_table_cache(text, lambda table, rules: rules)
    assert tables == ("nat",)
    lines = sent.splitlines()
    nat = lines.index("*nat")
    assert lines[nat + 1] == WHOLE_TABLE_CACHE_COMMAND and lines.count(WHOLE_TABLE_CACHE_COMMAND) == 1
    del lines[nat + 1]
    assert "\n".join(lines) + "\n" == text


def test_a_small_restore_is_sent_as_it_is():
    text = restore_text(range(1), kube_services=False)
    assert with_whole_table_cache(text, lambda table, rules: rules) == (text, ())


# --- the applier over the adapter ---------------------------------------------------------------------------------------------------


def listing_runner(version: str = "iptables v1.8.9 (nf_tables)\n", listed: int = 0, fail: bool = False) -> FakeRunner:
    """iptables in a namespace whose `-S` lists `listed` rules; `runner.inputs()` is what each restore was given."""

    def answer(argv, stdin):
        if fail:
            return printed(argv, 1, stderr="iptables-restore: line 9 failed\n")
        listing = "".join(f"-A KUBE-SEP-{i} -j DROP\n" for i in range(listed))
        stdout = "-P PREROUTING ACCEPT\n" + listing if WHOLE_TABLE_CACHE_COMMAND in (stdin or "").splitlines() else ""
        return printed(argv, stdout=stdout)

    return FakeRunner(answer, iptables_version=version)


def nft_adapter(runner: FakeRunner) -> IptablesApplier:
    iptables = NetnsIptables("svcnet-x-node-1", runner=runner)
    iptables._binaries["IPv4"] = binaries_for("IPv4", "nft", {"iptables-nft"})
    return IptablesApplier(iptables)


def test_nft_adapter_asks_for_the_whole_table_on_a_big_restore_and_records_the_rendered_text():
    runner = listing_runner()
    backend = nft_adapter(runner)
    text = restore_text(range(1000))
    backend.restore("IPv4", text)
    assert WHOLE_TABLE_CACHE_COMMAND in runner.inputs()[-1].splitlines()
    assert backend.history[-1].text == text and backend.history[-1].whole_table_cache == ("nat",)


def test_nft_adapter_sends_a_small_restore_unchanged():
    runner = listing_runner()
    backend = nft_adapter(runner)
    text = restore_text(range(1), kube_services=False)
    backend.restore("IPv4", text)
    assert runner.inputs()[-1] == text and backend.history[-1].whole_table_cache == ()


def test_legacy_and_old_nft_adapters_never_change_the_input():
    for version in ("iptables v1.8.9 (legacy)\n", "iptables v1.8.4 (nf_tables)\n"):
        runner = listing_runner(version)
        backend = IptablesApplier(NetnsIptables("svcnet-x-node-1", runner=runner))
        text = restore_text(range(1000))
        backend.restore("IPv4", text)
        assert runner.inputs()[-1] == text, version


def test_nft_adapter_remembers_how_big_the_listed_table_was():
    # The kernel holds 430,000 rules: a later KUBE-SERVICES rewrite of 10,000 jumps is cheaper chain by chain.
    runner = listing_runner(listed=430_000)
    backend = nft_adapter(runner)
    backend.restore("IPv4", restore_text(range(1000)))
    kube_services = ["*nat", ":KUBE-SERVICES - [0:0]"] + [
        f"-A KUBE-SERVICES -d 10.96.0.1/32 -p tcp --dport 80 -j KUBE-SVC-{i:016d}" for i in range(10_000)]
    text = "\n".join([*kube_services, "COMMIT"]) + "\n"
    backend.restore("IPv4", text)
    assert runner.inputs()[-1] == text


def test_a_failure_quotes_the_line_iptables_numbered_in_what_it_was_sent():
    runner = listing_runner(fail=True)
    backend = nft_adapter(runner)
    text = restore_text(range(1000))
    with pytest.raises(RestoreFailed) as info:
        backend.restore("IPv4", text)
    # Line 9 counts the added `-S`: the report quotes line 9 of the input iptables saw.
    assert info.value.line == runner.inputs()[-1].splitlines()[8] != text.splitlines()[8]
    assert not backend.history[-1].ok and backend.history[-1].text == text
