"""Starting in one proxy mode removes what the other left (kube-proxy's platformCleanup), over both fakes."""
from __future__ import annotations

import pytest

from svcnet.kernel.nft import NftError
from svcnet.proxy.cleanup import (
    CleanupReport,
    cleanup_iptables_mode,
    cleanup_nftables_mode,
    cleanup_other_modes,
)
from svcnet.testing.iptables import FakeIptables
from svcnet.testing.nft import FakeNft
from tests.unit.proxy.nft_fixtures import OVERALL, creation_order
from tests.unit.proxy.test_syncer import seeded


def nft_with_both_tables() -> FakeNft:
    nft = FakeNft()
    nft.run(creation_order(OVERALL))
    nft.run("add table ip6 kube-proxy\nadd chain ip6 kube-proxy services\n")
    nft.run("add table ip firewalld\nadd chain ip firewalld input { type filter hook input priority 0 ; }\n")
    return nft


def iptables_with_rules() -> FakeIptables:
    _, fake, _ = seeded()
    fake.restore("IPv4", "*nat\n:OTHER - [0:0]\n-A POSTROUTING -j OTHER\nCOMMIT\n")
    return fake


def kube_chains(fake: FakeIptables) -> set[str]:
    return {c for table in ("nat", "filter", "mangle") for c in fake.chains("IPv4", table) if c.startswith("KUBE-")}


def test_starting_in_iptables_mode_deletes_nftables_modes_tables_and_keeps_iptables_and_other_tables() -> None:
    nft, iptables = nft_with_both_tables(), iptables_with_rules()
    chains_before = kube_chains(iptables)
    report = cleanup_other_modes("iptables", iptables=iptables, nft=nft)
    assert report.ok and report.removed == ("nftables ip kube-proxy", "nftables ip6 kube-proxy")
    assert not nft.table_exists("ip", "kube-proxy") and not nft.table_exists("ip6", "kube-proxy")
    assert nft.table_exists("ip", "firewalld")
    assert kube_chains(iptables) == chains_before and chains_before


def test_starting_in_nftables_mode_removes_iptables_chains_and_jumps_and_keeps_nftables() -> None:
    nft, iptables = nft_with_both_tables(), iptables_with_rules()
    report = cleanup_other_modes("nftables", iptables=iptables, nft=nft)
    assert report.ok and "iptables IPv4 nat/KUBE-SERVICES" in report.removed
    assert kube_chains(iptables) == set()
    assert iptables.rules("IPv4", "nat", "PREROUTING") == ()
    assert iptables.rules("IPv4", "nat", "POSTROUTING") == ("-j OTHER",)
    assert nft.table_exists("ip", "kube-proxy") and nft.table_exists("ip6", "kube-proxy")


def test_cleanup_and_exit_removes_both_and_repeating_it_finds_nothing() -> None:
    nft, iptables = nft_with_both_tables(), iptables_with_rules()
    first = cleanup_other_modes("iptables", iptables=iptables, nft=nft, cleanup_and_exit=True)
    assert "nftables ip kube-proxy" in first.removed and "iptables IPv4 nat/KUBE-SERVICES" in first.removed
    assert kube_chains(iptables) == set() and not nft.table_exists("ip", "kube-proxy")
    again = cleanup_other_modes("nftables", iptables=iptables, nft=nft, cleanup_and_exit=True)
    assert again == CleanupReport()


def test_a_missing_backend_is_skipped_and_an_unknown_mode_is_refused() -> None:
    assert cleanup_other_modes("iptables", iptables=iptables_with_rules(), nft=None) == CleanupReport()
    with pytest.raises(ValueError, match="unknown proxy mode"):
        cleanup_other_modes("ipvs", iptables=None, nft=FakeNft())


class BrokenNft:
    def delete_table(self, family: str, table: str) -> bool:
        raise NftError(f"cannot talk to the kernel about {family} {table}")


def test_an_error_in_one_family_is_reported_and_the_rest_still_runs() -> None:
    report = cleanup_nftables_mode(BrokenNft())
    assert not report.ok and len(report.errors) == 2 and "ip6 kube-proxy" in report.errors[1]
    iptables = iptables_with_rules()
    iptables.fail_next_restores = 1
    partial = cleanup_iptables_mode(iptables)
    assert len(partial.errors) == 1 and partial.errors[0].startswith("iptables IPv4")
