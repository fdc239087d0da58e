"""The iptables fake behaves as iptables does where the proxy depends on it."""
from __future__ import annotations

import pytest

from svcnet.kernel.iptables import RestoreFailed
from svcnet.proxy.iptables.apply import parse_save
from svcnet.testing.iptables import FakeIptables


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
