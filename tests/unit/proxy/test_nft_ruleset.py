"""The nftables model and its fake: transactions applied as the kernel applies them, dumped as knftables does."""
from __future__ import annotations

import pytest

from svcnet.kernel.nft import NftNotFound, NftTransactionFailed
from svcnet.proxy.nftables.ruleset import (
    EBUSY,
    EEXIST,
    EINVAL,
    ENOENT,
    EOPNOTSUPP,
    Element,
    Ruleset,
    TransactionError,
    parse_elements,
    parse_priority,
    sorted_for_comparison,
)
from svcnet.testing.nft import FakeNft
from tests.unit.proxy.nft_fixtures import OVERALL, creation_order

T = "ip kube-proxy"
SMALL = f"""
add table {T} {{ comment "rules for kube-proxy" ; }}
add chain {T} services
add chain {T} nat-prerouting {{ type nat hook prerouting priority dstnat ; }}
add chain {T} svc-a
add chain {T} svc-b
add map {T} service-ips {{ type ipv4_addr . inet_proto . inet_service : verdict ; }}
add set {T} cluster-ips {{ type ipv4_addr ; }}
add rule {T} nat-prerouting jump services
add rule {T} services ip daddr . meta l4proto . th dport vmap @service-ips
add element {T} service-ips {{ 10.96.0.1 . tcp . 80 : goto svc-a }}
add element {T} cluster-ips {{ 10.96.0.1 }}
"""


def small() -> Ruleset:
    return Ruleset().apply(SMALL)


def fails(ruleset: Ruleset, text: str) -> TransactionError:
    with pytest.raises(TransactionError) as info:
        ruleset.apply(text)
    return info.value


def test_upstream_overall_ruleset_round_trips_through_the_model_as_knftables_dumps_it() -> None:
    dumped = Ruleset().apply(creation_order(OVERALL)).dump("ip", "kube-proxy")
    assert sorted_for_comparison(dumped) == sorted_for_comparison(OVERALL)
    lines = dumped.splitlines()
    kinds = [line.split()[1] for line in lines]
    # knftables' Dump: the table, then chains, sets, maps (each sorted by name), then rules, then elements.
    assert kinds == sorted(kinds, key=["table", "chain", "set", "map", "rule", "element"].index)
    chains = [line.split()[4] for line in lines if line.startswith("add chain")]
    assert chains == sorted(chains)
    assert "add element ip kube-proxy no-endpoint-nodeports { tcp . 3001 comment \"ns2/svc2:p80\" : drop }" in lines


def test_comparison_keeps_rule_order_within_a_chain_and_sorts_everything_else() -> None:
    a = f"add rule {T} c second\nadd chain {T} c\nadd rule {T} c first\nadd element {T} m {{ b }}\nadd element {T} m {{ a }}"
    b = f"add chain {T} c\nadd element {T} m {{ a }}\nadd rule {T} c second\nadd rule {T} c first\nadd element {T} m {{ b }}"
    assert sorted_for_comparison(a) == sorted_for_comparison(b)
    swapped = b.replace("second", "X").replace("first", "second").replace("X", "first")
    assert sorted_for_comparison(a) != sorted_for_comparison(swapped)


@pytest.mark.parametrize(("text", "errno"), [
    ("add chain ip nowhere c", ENOENT),
    (f"delete chain {T} missing", ENOENT),
    (f"delete chain {T} services", EBUSY),  # nat-prerouting jumps to it
    (f"delete chain {T} svc-a", EBUSY),  # a map element goes to it
    (f"delete map {T} service-ips", EBUSY),  # a rule looks it up
    (f"add rule {T} services jump missing", ENOENT),
    (f"add rule {T} services ip daddr @missing drop", ENOENT),
    (f"add rule {T} missing accept", ENOENT),
    (f"create chain {T} services", EEXIST),
    (f"create table {T}", EEXIST),
    (f"add element {T} missing {{ 1.2.3.4 }}", ENOENT),
    (f"add element {T} service-ips {{ 10.96.0.2 . tcp . 80 : goto missing }}", ENOENT),
    (f"add element {T} service-ips {{ 10.96.0.1 . tcp . 80 : goto svc-b }}", EEXIST),
    (f"delete element {T} service-ips {{ 10.96.0.9 . tcp . 80 }}", ENOENT),
    ("delete table ip nowhere", ENOENT),
    ("frobnicate table ip x", EINVAL),
    (f"add chain {T} bad {{ type nat hook prerouting priority sideways ; }}", EINVAL),
])
def test_what_the_kernel_refuses_is_refused_with_its_errno_and_nothing_changes(text: str, errno: str) -> None:
    before = small()
    error = fails(before, f"add chain {T} extra\n{text}\n")
    assert error.errno == errno
    assert error.line_number == 2 and error.line == text
    assert "extra" not in before.table("ip", "kube-proxy").chains  # type: ignore[union-attr]


def test_references_are_counted_statement_by_statement_as_in_one_kernel_batch() -> None:
    after = small().apply(f"""
        flush chain {T} nat-prerouting
        delete chain {T} services
        delete element {T} service-ips {{ 10.96.0.1 . tcp . 80 }}
        delete chain {T} svc-a
        add element {T} service-ips {{ 10.96.0.1 . tcp . 80 : goto svc-b }}
    """)
    table = after.table("ip", "kube-proxy")
    assert table is not None
    assert set(table.chains) == {"nat-prerouting", "svc-b"}
    assert table.maps["service-ips"].elements[("10.96.0.1", "tcp", "80")].value == "goto svc-b"
    # svc-b is now jumped to by an element, so it cannot go; flushing the map frees it.
    assert fails(after, f"delete chain {T} svc-b").errno == EBUSY
    assert "svc-b" not in after.apply(f"flush map {T} service-ips\ndelete chain {T} svc-b").table(  # type: ignore[union-attr]
        "ip", "kube-proxy").chains


def test_adding_what_exists_is_a_no_op_and_delete_table_takes_everything() -> None:
    again = small().apply(SMALL.replace(f"add rule {T} nat-prerouting jump services\n", "")
                          .replace(f"add rule {T} services ip daddr . meta l4proto . th dport vmap @service-ips\n", ""))
    assert again.dump("ip", "kube-proxy") == small().dump("ip", "kube-proxy")
    assert again.apply(f"delete table {T}").dump("ip", "kube-proxy") == ""


def test_rules_are_deleted_by_handle_and_inserted_first() -> None:
    ruleset = small().apply(f"add rule {T} svc-a accept\nadd rule {T} svc-a drop\ninsert rule {T} svc-a return")
    chain = ruleset.table("ip", "kube-proxy").chains["svc-a"]  # type: ignore[union-attr]
    assert [r.text for r in chain.rules] == ["return", "accept", "drop"]
    handle = chain.rules[1].handle
    after = ruleset.apply(f"delete rule {T} svc-a handle {handle}")
    assert [r.text for r in after.table("ip", "kube-proxy").chains["svc-a"].rules] == ["return", "drop"]  # type: ignore[union-attr]


def test_elements_parse_keys_comments_values_and_ipv6() -> None:
    assert parse_elements('fd00::1 . tcp . 80 comment "ns/svc:p" : goto x, 10.0.0.0/8') == [
        Element(("fd00::1", "tcp", "80"), "goto x", "ns/svc:p"), Element(("10.0.0.0/8",))]


def test_chain_hooks_and_named_priorities() -> None:
    chain = small().table("ip", "kube-proxy").chains["nat-prerouting"]  # type: ignore[union-attr]
    assert (chain.type, chain.hook, chain.priority) == ("nat", "prerouting", -100)
    assert parse_priority("srcnat") == 100 and parse_priority("dstnat - 10") == -110
    assert parse_priority("-110") == -110


# --- the fake ------------------------------------------------------------------------------------------------

def test_fake_applies_whole_transactions_or_none_and_records_them() -> None:
    nft = FakeNft()
    nft.run(SMALL)
    with pytest.raises(NftTransactionFailed) as info:
        nft.run(f"add chain {T} new\ndelete chain {T} services\n")
    assert info.value.errno_name == EBUSY and info.value.line_number == 2
    assert "new" not in nft.list_chains()
    assert [r.ok for r in nft.history] == [True, False]
    assert nft.list_chains() == ("nat-prerouting", "services", "svc-a", "svc-b")
    assert nft.list_names("map") == ("service-ips",) and nft.list_names("set") == ("cluster-ips",)


def test_fake_injected_failure_and_admin_changes() -> None:
    nft = FakeNft()
    nft.run(SMALL)
    nft.fail_next_runs = 1
    with pytest.raises(NftTransactionFailed):
        nft.run(f"add chain {T} x")
    nft.run(f"add chain {T} x")
    nft.admin(f"delete table {T}")
    assert nft.dump() == "" and nft.list_chains() == () and not nft.table_exists()
    with pytest.raises(NftNotFound):
        nft.list_table()
    assert nft.delete_table() is False
    assert len(nft.history) == 3  # the administrator's change is not the proxy's


def test_fake_delete_table_reports_whether_it_was_there() -> None:
    nft = FakeNft()
    nft.run(SMALL)
    assert nft.delete_table("ip", "kube-proxy") is True
    assert nft.delete_table("ip", "kube-proxy") is False


def test_rules_go_where_index_and_handle_say_and_replace_keeps_their_place() -> None:
    ruleset = small().apply(f"add rule {T} svc-a accept\nadd rule {T} svc-a drop")
    first = ruleset.table("ip", "kube-proxy").chains["svc-a"].rules[0].handle  # type: ignore[union-attr]
    after = ruleset.apply(f"add rule {T} svc-a index 0 counter\ninsert rule {T} svc-a handle {first} return\n"
                          f"replace rule {T} svc-a handle {first} jump svc-b")
    chain = after.table("ip", "kube-proxy").chains["svc-a"]  # type: ignore[union-attr]
    assert [r.text for r in chain.rules] == ["return", "jump svc-b", "counter", "drop"]
    assert fails(after, f"delete chain {T} svc-b").errno == EBUSY  # the replacement jumps there
    assert fails(after, f"add rule {T} svc-a index 9 accept").errno == ENOENT
    assert fails(after, f"replace rule {T} svc-a accept").errno == EINVAL


def test_named_counters_are_objects_rules_refer_to() -> None:
    ruleset = small().apply(f'add counter {T} rejected {{ comment "localhost nodeports" ; }}\n'
                            f"add rule {T} svc-a counter name rejected drop")
    assert 'add counter ip kube-proxy rejected { comment "localhost nodeports" ; }' in ruleset.dump()
    assert fails(ruleset, f"delete counter {T} rejected").errno == EBUSY
    assert fails(ruleset, f"add rule {T} svc-a counter name missing").errno == ENOENT
    emptied = ruleset.apply(f"flush chain {T} svc-a\nreset counter {T} rejected\ndelete counter {T} rejected")
    assert emptied.table("ip", "kube-proxy").counters == {}  # type: ignore[union-attr]


def test_fake_counters_can_be_made_to_count_without_touching_earlier_rulesets() -> None:
    nft = FakeNft()
    nft.run(SMALL + f"add counter {T} rejected\n")
    before = nft.ruleset
    nft.count("rejected", 7, 420)
    assert nft.list_counters() == {"rejected": (7, 420)} and nft.list_names("counter") == ("rejected",)
    assert before.table("ip", "kube-proxy").counters["rejected"].packets == 0  # type: ignore[union-attr]


def test_flush_table_empties_the_chains_and_keeps_sets_maps_and_their_elements() -> None:
    flushed = small().apply(f"flush table {T}")
    table = flushed.table("ip", "kube-proxy")
    assert table is not None and all(not c.rules for c in table.chains.values())
    assert ("10.96.0.1", "tcp", "80") in table.maps["service-ips"].elements and table.sets["cluster-ips"].elements
    assert fails(flushed, f"delete chain {T} svc-a").errno == EBUSY  # the map element still goes there
    flushed.apply(f"delete chain {T} services")  # only rules pointed there


@pytest.mark.parametrize(("text", "errno"), [
    (f"add chain {T} nat-prerouting {{ type nat hook prerouting priority -90 ; }}", EOPNOTSUPP),
    (f"add chain {T} nat-prerouting {{ type filter hook prerouting priority -100 ; }}", EOPNOTSUPP),
    (f"add set {T} cluster-ips {{ type ipv6_addr ; }}", EEXIST),
    (f"add map {T} cluster-ips {{ type ipv4_addr : verdict ; }}", EEXIST),
])
def test_changing_what_exists_is_refused(text: str, errno: str) -> None:
    assert fails(small(), text).errno == errno


def test_adding_a_comment_to_what_exists_is_ignored_as_the_kernel_ignores_it() -> None:
    again = small().apply(f'add chain {T} nat-prerouting {{ type nat hook prerouting priority -100 ; comment "x" ; }}\n'
                          f'add set {T} cluster-ips {{ type ipv4_addr ; comment "x" ; }}\n'
                          f'add table {T} {{ comment "other" ; }}')
    assert again.dump() == small().dump()
