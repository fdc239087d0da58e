"""svcnet.kernel.nft without root: the commands it runs (FakeRunner) and how it reads what nft prints."""
from __future__ import annotations

import json

import pytest

from svcnet.kernel.exec import CommandResult
from svcnet.kernel.nft import (
    NetnsNft,
    NftError,
    NftNotFound,
    NftTransactionFailed,
    check_support,
    names_in_listing,
    parse_nft_version,
    transaction_error,
)
from svcnet.testing.exec import FakeRunner, printed

LISTING = json.dumps({"nftables": [
    {"metainfo": {"json_schema_version": 1}},
    {"table": {"family": "ip", "name": "kube-proxy"}},
    {"chain": {"family": "ip", "table": "kube-proxy", "name": "services"}},
    {"chain": {"family": "ip", "table": "kube-proxy", "name": "nat-output", "hook": "output"}},
    {"map": {"family": "ip", "table": "kube-proxy", "name": "service-ips"}},
    {"chain": {"family": "ip", "table": "other", "name": "theirs"}},
]})
NOT_FOUND = "Error: No such file or directory\nlist table ip kube-proxy\n              ^^^^^^^^^^\n"


def test_run_feeds_the_transaction_on_stdin_to_nft_f() -> None:
    runner = FakeRunner()
    NetnsNft("node-1", runner=runner).run("add table ip kube-proxy\n")
    assert runner.calls == [(("nft", "-f", "-"), "add table ip kube-proxy\n")]


def test_a_rejected_transaction_names_the_line_and_errno_nft_printed() -> None:
    stderr = ("/dev/stdin:2:20-20: Error: Could not process rule: Device or resource busy\n"
              "delete chain ip kube-proxy b\n                   ^\n")
    runner = FakeRunner(lambda argv, stdin: printed(argv, 1, stderr=stderr))
    with pytest.raises(NftTransactionFailed) as info:
        NetnsNft("node-1", runner=runner).run("add chain ip kube-proxy a\ndelete chain ip kube-proxy b\n")
    error = info.value
    assert (error.line_number, error.line, error.errno_name) == (2, "delete chain ip kube-proxy b", "EBUSY")
    assert "Device or resource busy" in str(error) and error.stderr == stderr


def test_syntax_errors_are_einval() -> None:
    error = transaction_error("add rule ip t c bogus\n", "/dev/stdin:1:17-21: Error: syntax error, unexpected string\n")
    assert error.errno_name == "EINVAL" and error.line_number == 1


def test_chains_come_from_the_json_listing_of_our_table_only() -> None:
    runner = FakeRunner(lambda argv, stdin: printed(argv, stdout=LISTING))
    nft = NetnsNft("node-1", runner=runner)
    assert nft.list_chains() == ("nat-output", "services")
    assert nft.list_names("map") == ("service-ips",)
    assert runner.calls[0][0] == ("nft", "-j", "list", "table", "ip", "kube-proxy")
    with pytest.raises(ValueError):
        names_in_listing(LISTING, "rule", "ip", "kube-proxy")


def test_a_missing_table_lists_nothing_and_deleting_it_says_it_was_not_there() -> None:
    runner = FakeRunner(lambda argv, stdin: printed(argv, 1, stderr=NOT_FOUND.replace("list table", "delete table")
                                                    if stdin else NOT_FOUND))
    nft = NetnsNft("node-1", runner=runner)
    assert nft.list_chains() == () and not nft.table_exists()
    with pytest.raises(NftNotFound):
        nft.list_table()
    assert nft.delete_table() is False


def test_other_failures_are_errors_not_absence() -> None:
    runner = FakeRunner(lambda argv, stdin: printed(argv, 1, stderr="Error: Operation not permitted\n"))
    with pytest.raises(NftError):
        NetnsNft("node-1", runner=runner).list_chains()
    with pytest.raises(NftError):
        NetnsNft("node-1", runner=FakeRunner(missing={"nft"})).run("add table ip t\n")


@pytest.mark.parametrize(("version", "check_rc", "kernel", "skip", "supported", "why"), [
    ("nftables v1.0.6 (Lester Gooch #5)", 0, "6.18.44", False, True, ""),
    ("nftables v1.0.1 (Fearless Fosdick #3)", 0, "5.13.0", False, True, ""),
    ("nftables v1.0.0 (Fearless Fosdick #2)", 0, "6.1.0", False, False, "too old"),
    ("nftables v0.9.8 (E.D.S.)", 0, "6.1.0", False, False, "too old"),
    ("nftables v1.0.6", 1, "6.1.0", False, False, "could not run nftables command"),
    ("nftables v1.0.6", 0, "5.10.0-21-amd64", False, False, "requires kernel 5.13"),
    ("nftables v1.0.6", 0, "5.10.0-21-amd64", True, True, ""),
    (None, None, "6.1.0", False, False, "not installed"),
])
def test_support_follows_kube_proxys_checks(version: str | None, check_rc: int | None, kernel: str, skip: bool,
                                            supported: bool, why: str) -> None:
    check = None if check_rc is None else CommandResult(("nft",), check_rc, "", "Error: nope" if check_rc else "")
    result = check_support(version, check, kernel, skip_kernel_version_check=skip)
    assert result.supported is supported
    assert why in result.reason


def test_support_runs_version_then_a_check_only_transaction() -> None:
    runner = FakeRunner(lambda argv, stdin: printed(argv, stdout="nftables v1.0.6\n"))
    assert NetnsNft("node-1", runner=runner).support(skip_kernel_version_check=True).supported
    assert runner.calls == [(("nft", "--version"), None),
                            (("nft", "--check", "-f", "-"), "add table ip kube-proxy\n")]
    assert parse_nft_version("nftables v1.1.1 (Commodore Bullmoose #2)") == (1, 1, 1)


def test_named_counters_are_read_from_the_listing() -> None:
    listing = json.dumps({"nftables": [
        {"counter": {"family": "ip", "table": "kube-proxy", "name": "rejected", "packets": 7, "bytes": 420}},
        {"counter": {"family": "ip", "table": "other", "name": "theirs", "packets": 1, "bytes": 1}}]})
    nft = NetnsNft("node-1", runner=FakeRunner(lambda argv, stdin: printed(argv, stdout=listing)))
    assert nft.list_counters() == {"rejected": (7, 420)}
    assert nft.list_names("counter") == ("rejected",)
