"""svcnet.kernel.nft against the real kernel, each test in a throwaway namespace it creates and deletes.

The same transactions go through FakeNft, so the fake is checked against the
kernel it stands for: the same ones succeed, the same ones fail with the same
errno, and the same chains are left.
"""
from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator

import pytest

from svcnet.kernel.netns import create_netns, delete_netns, run_command_in_netns
from svcnet.kernel.nft import NetnsNft, NftTransactionFailed
from svcnet.testing.nft import FakeNft
from tests.integration.netns.conftest import (  # noqa: F401  (the session safety net is a fixture)
    _delete_this_sessions_namespaces,
    requires_root,
    session_prefix,
)
from tests.unit.proxy.nft_fixtures import OVERALL, creation_order

pytestmark = [requires_root, pytest.mark.skipif(shutil.which("nft") is None, reason="needs nft")]

T = "ip kube-proxy"
_counter = itertools.count(1)


@pytest.fixture
def nft() -> Iterator[NetnsNft]:
    name = f"{session_prefix()}-nft{next(_counter)}"
    create_netns(name)
    try:
        yield NetnsNft(name)
    finally:
        delete_netns(name)


def test_a_transaction_applies_and_the_table_lists_its_chains_sets_and_maps(nft: NetnsNft) -> None:
    assert not nft.table_exists() and nft.list_chains() == ()
    nft.run(creation_order(OVERALL))
    fake = FakeNft()
    fake.run(creation_order(OVERALL))
    assert nft.table_exists()
    assert nft.list_chains() == fake.list_chains()
    assert "service-ULMVA6XW-ns1/svc1/tcp/p80" in nft.list_chains()
    assert nft.list_names("map") == fake.list_names("map")
    assert nft.list_names("set") == fake.list_names("set")
    assert "goto service-ULMVA6XW-ns1/svc1/tcp/p80" in nft.list_table()
    assert nft.list_chains("ip6", "kube-proxy") == ()


@pytest.mark.parametrize(("text", "errno"), [
    (f"delete chain {T} services", "EBUSY"),
    (f"delete chain {T} reject-chain", "EBUSY"),  # an element of no-endpoint-services goes there
    (f"delete chain {T} no-such-chain", "ENOENT"),
    (f"add rule {T} services jump no-such-chain", "ENOENT"),
    (f"add element {T} service-ips {{ 172.30.0.41 . tcp . 80 : goto services }}", "EEXIST"),
    (f"delete element {T} service-ips {{ 172.30.0.99 . tcp . 80 }}", "ENOENT"),
    (f"create chain {T} services", "EEXIST"),
    (f"flush table {T}\ndelete chain {T} reject-chain", "EBUSY"),  # flush table keeps map elements
    (f"add chain {T} nat-output {{ type nat hook output priority 0 ; }}", "EOPNOTSUPP"),
    (f"add set {T} cluster-ips {{ type ipv6_addr ; }}", "EEXIST"),
])
def test_a_failing_transaction_changes_nothing_and_says_where_and_why_as_the_fake_does(
        nft: NetnsNft, text: str, errno: str) -> None:
    nft.run(creation_order(OVERALL))
    fake = FakeNft()
    fake.run(creation_order(OVERALL))
    before = nft.list_chains()
    transaction = f"add chain {T} a-new-chain\n{text}\n"
    failing = len(transaction.splitlines())
    with pytest.raises(NftTransactionFailed) as real:
        nft.run(transaction)
    with pytest.raises(NftTransactionFailed) as faked:
        fake.run(transaction)
    assert (real.value.errno_name, real.value.line_number) == (errno, failing)
    assert real.value.line == text.splitlines()[-1]
    assert (faked.value.errno_name, faked.value.line_number) == (errno, failing)
    assert real.value.stderr
    assert nft.list_chains() == before == fake.list_chains()


def test_a_partial_sync_transaction_behaves_the_same_in_the_kernel_and_the_fake(nft: NetnsNft) -> None:
    svc4 = "service-LAUZTJTB-ns4/svc4/tcp/p80"
    ep = "endpoint-5RFCDDV7-ns4/svc4/tcp/p80__10.180.0.5/80"
    sync = f"""
        flush chain {T} {svc4}
        add rule {T} {svc4} numgen random mod 1 vmap {{ 0 : goto endpoint-UNZV3OEC-ns4/svc4/tcp/p80__10.180.0.4/80 }}
        flush chain {T} {ep}
        delete chain {T} {ep}
        delete element {T} service-ips {{ 172.30.0.41 . tcp . 80 }}
        add element {T} service-ips {{ 172.30.0.41 . tcp . 80 : goto {svc4} }}
    """
    fake = FakeNft()
    for target in (nft, fake):
        target.run(creation_order(OVERALL))
        target.run(sync)
    assert nft.list_chains() == fake.list_chains()
    assert ep not in nft.list_chains()


def test_adding_identical_objects_again_changes_nothing_in_the_kernel_or_the_fake(nft: NetnsNft) -> None:
    fake = FakeNft()
    again = (f'add table {T} {{ comment "other" ; }}\n'
             f'add chain {T} nat-output {{ type nat hook output priority -100 ; comment "x" ; }}\n'
             f'add set {T} cluster-ips {{ type ipv4_addr ; comment "y" ; }}\n'
             f"add element {T} service-ips {{ 172.30.0.41 . tcp . 80 : goto service-ULMVA6XW-ns1/svc1/tcp/p80 }}\n")
    for target in (nft, fake):
        target.run(creation_order(OVERALL))
    before = nft.list_table()
    for target in (nft, fake):
        target.run(again)
    assert nft.list_table() == before
    assert fake.dump() == FakeNft().ruleset.apply(creation_order(OVERALL)).dump("ip", "kube-proxy")


def test_delete_table_is_idempotent(nft: NetnsNft) -> None:
    nft.run(f"add table {T}\nadd chain {T} c\n")
    assert nft.delete_table("ip", "kube-proxy") is True
    assert nft.delete_table("ip", "kube-proxy") is False
    assert not nft.table_exists()


def test_check_changes_nothing_and_support_is_detected(nft: NetnsNft) -> None:
    nft.check(f"add table {T}\n")
    assert not nft.table_exists()
    with pytest.raises(NftTransactionFailed):
        nft.check(f"add rule {T} nowhere accept\n")
    support = nft.support()
    assert support.supported, support.reason
    assert support.nft_version is not None and support.nft_version >= (1, 0, 1)
    assert not nft.table_exists()


@pytest.mark.skipif(shutil.which("iptables-restore") is None, reason="needs iptables")
def test_switching_modes_in_a_real_namespace_leaves_nothing_of_the_other_mode(nft: NetnsNft) -> None:
    from svcnet.kernel.iptables import NetnsIptables
    from svcnet.proxy.cleanup import cleanup_other_modes
    from svcnet.proxy.iptables.apply import IptablesApplier, ensure_jump_rules

    iptables = IptablesApplier(NetnsIptables(nft.netns))
    ensure_jump_rules(iptables, "IPv4")
    iptables.restore("IPv4", "*nat\n:KUBE-SVC-X - [0:0]\n-A KUBE-SERVICES -d 10.96.0.1/32 -j KUBE-SVC-X\nCOMMIT\n")
    nft.run(creation_order(OVERALL))

    to_nftables = cleanup_other_modes("nftables", iptables=iptables, nft=nft, families=["IPv4"])
    assert to_nftables.ok, to_nftables.errors
    assert "KUBE-" not in iptables.save("IPv4")
    assert nft.table_exists()

    ensure_jump_rules(iptables, "IPv4")
    to_iptables = cleanup_other_modes("iptables", iptables=iptables, nft=nft, families=["IPv4"])
    assert to_iptables.removed == ("nftables ip kube-proxy",)
    assert not nft.table_exists() and "KUBE-SERVICES" in iptables.save("IPv4")


@pytest.mark.skipif(shutil.which("ping") is None, reason="needs ping")
def test_named_counters_count_in_the_kernel_and_are_listed(nft: NetnsNft) -> None:
    nft.run(f'add table {T}\nadd counter {T} seen {{ comment "probe" ; }}\n'
            f"add chain {T} out {{ type filter hook output priority 0 ; }}\n"
            f"add rule {T} out ip daddr 127.0.0.1 counter name seen\n")
    assert nft.list_counters() == {"seen": (0, 0)}
    run_command_in_netns(nft.netns, ["ip", "link", "set", "lo", "up"])
    run_command_in_netns(nft.netns, ["ping", "-c", "1", "-W", "1", "127.0.0.1"])
    assert nft.list_counters()["seen"][0] >= 1
    with pytest.raises(NftTransactionFailed) as busy:
        nft.run(f"delete counter {T} seen\n")
    assert busy.value.errno_name == "EBUSY"
