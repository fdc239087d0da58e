"""The iptables adapter: version and backend detection, the commands it runs, how failures read."""
from __future__ import annotations

import pytest

from svcnet.kernel.iptables import (
    IptablesError,
    NetnsIptables,
    RestoreFailed,
    binaries_for,
    parse_iptables_version,
    restore_error,
)
from svcnet.testing.exec import FakeRunner, printed

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


# --- the commands, with a recording runner -------------------------------------------------------------------------

def test_the_adapter_takes_backend_and_random_fully_from_the_namespace():
    iptables = NetnsIptables("svcnet-x-node-1", runner=FakeRunner(iptables_version="iptables v1.6.1\n"))
    assert (iptables.mode, iptables.random_fully, iptables.version.version) == ("legacy", False, (1, 6, 1))
    assert NetnsIptables("svcnet-x-node-1", runner=FakeRunner(), mode="legacy").mode == "legacy"


def test_real_adapter_checks_before_inserting_a_jump():
    runner = FakeRunner(lambda argv, stdin: printed(argv, int(argv[5] == "-C")))
    iptables = NetnsIptables("svcnet-x-node-1", runner=runner)
    assert iptables.ensure_rule("IPv4", "nat", "PREROUTING", ("-j", "KUBE-SERVICES"))
    assert [argv[5] for argv, _ in runner.calls[1:]] == ["-C", "-I"]


def test_a_restore_sends_the_text_on_stdin_and_returns_what_iptables_printed():
    runner = FakeRunner(lambda argv, stdin: printed(argv, stdout="-P PREROUTING ACCEPT\n"))
    iptables = NetnsIptables("svcnet-x-node-1", runner=runner)
    iptables._binaries["IPv6"] = binaries_for("IPv6", "nft", {"ip6tables-nft"})
    assert iptables.restore("IPv6", "*nat\n-S\nCOMMIT\n") == "-P PREROUTING ACCEPT\n"
    assert runner.calls[-1] == (("ip6tables-nft-restore", "--noflush", "-w", "5"), "*nat\n-S\nCOMMIT\n")


def test_a_rejected_restore_quotes_the_line():
    runner = FakeRunner(lambda argv, stdin: printed(argv, 2, stderr="iptables-restore: line 2 failed\n"))
    iptables = NetnsIptables("svcnet-x-node-1", runner=runner)
    with pytest.raises(RestoreFailed) as info:
        iptables.restore("IPv4", "*nat\n-A BROKEN\nCOMMIT\n")
    assert (info.value.family, info.value.line_number, info.value.line) == ("IPv4", 2, "-A BROKEN")


def test_a_failed_save_is_an_error_naming_the_command():
    runner = FakeRunner(lambda argv, stdin: printed(argv, 1, stderr="permission denied\n"))
    with pytest.raises(IptablesError, match="permission denied"):
        NetnsIptables("svcnet-x-node-1", runner=runner).save("IPv4", "nat")


def test_missing_iptables_is_an_iptables_error():
    with pytest.raises(IptablesError, match="command not found"):
        NetnsIptables("svcnet-x-node-1", runner=FakeRunner(missing={"iptables"}))
