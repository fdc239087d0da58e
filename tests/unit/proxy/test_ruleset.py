"""The iptables model behaves like iptables-restore and the netfilter hooks it stands in for."""
from __future__ import annotations

import pytest

from svcnet.proxy.iptables.ruleset import IptablesModel, RestoreError
from svcnet.proxy.iptables.tracer import Packet, reached, trace

NODE_IP = "192.168.0.2"


def model(text: str, **kwargs) -> IptablesModel:
    return IptablesModel.empty([NODE_IP]).restore(text, **kwargs)


@pytest.mark.parametrize("text, message", [
    ("*nat\n-A NOPE -j ACCEPT\nCOMMIT\n", "does not exist"),
    ("*nat\n-A PREROUTING -j KUBE-MISSING\nCOMMIT\n", "Couldn't load target"),
    ("*nat\n-A PREROUTING -m bogus -j ACCEPT\nCOMMIT\n", "Couldn't load match"),
    ("*nat\n-A PREROUTING -p tcp --bogus 1 -j ACCEPT\nCOMMIT\n", "unknown option"),
    ("*nat\n-A PREROUTING --dport 80 -j ACCEPT\nCOMMIT\n", "unknown option"),  # --dport needs -p/-m tcp
    ("*nat\n-A PREROUTING -d not-an-ip -j ACCEPT\nCOMMIT\n", "not found"),
    ("*nat\n:KUBE-A - [0:0]\n", "no COMMIT"),
    ("*nat\n-X PREROUTING\nCOMMIT\n", "built-in"),
    ("*weird\nCOMMIT\n", "unknown table"),
])
def test_invalid_restore_input_is_rejected(text, message):
    with pytest.raises(RestoreError, match=message):
        model(text)


def test_declaring_an_existing_chain_flushes_it_with_noflush():
    first = model("*nat\n:KUBE-A - [0:0]\n-A KUBE-A -j RETURN\n-A PREROUTING -j KUBE-A\nCOMMIT\n")
    second = first.restore("*nat\n:KUBE-A - [0:0]\nCOMMIT\n")
    assert second.rules("nat", "KUBE-A") == ()
    assert second.rules("nat", "PREROUTING") == ("-j KUBE-A",)  # untouched without a declaration


def test_restore_without_noflush_replaces_the_whole_table():
    first = model("*nat\n:KUBE-A - [0:0]\n-A PREROUTING -j KUBE-A\nCOMMIT\n")
    second = first.restore("*nat\n:KUBE-B - [0:0]\nCOMMIT\n", noflush=False)
    assert "KUBE-A" not in second.chains("nat") and second.rules("nat", "PREROUTING") == ()


def test_deleting_a_referenced_or_non_empty_chain_fails_and_changes_nothing():
    base = model("*nat\n:KUBE-A - [0:0]\n-A KUBE-A -j RETURN\n-A PREROUTING -j KUBE-A\nCOMMIT\n")
    with pytest.raises(RestoreError, match="not empty"):
        base.restore("*nat\n-X KUBE-A\nCOMMIT\n")
    with pytest.raises(RestoreError, match="referenced"):
        base.restore("*nat\n:KUBE-A - [0:0]\n-X KUBE-A\nCOMMIT\n")
    assert base.rules("nat", "KUBE-A") == ("-j RETURN",)


def test_flush_then_delete_of_an_unreferenced_chain_removes_it():
    base = model("*nat\n:KUBE-A - [0:0]\n-A KUBE-A -j RETURN\nCOMMIT\n")
    assert "KUBE-A" not in base.restore("*nat\n:KUBE-A - [0:0]\n-X KUBE-A\nCOMMIT\n").chains("nat")


def test_insert_puts_rules_first():
    m = model("*filter\n:KUBE-A - [0:0]\n:KUBE-B - [0:0]\n-I INPUT 1 -j KUBE-A\n-I INPUT 1 -j KUBE-B\nCOMMIT\n")
    assert m.rules("filter", "INPUT") == ("-j KUBE-B", "-j KUBE-A")


STATISTIC = """*nat
:KUBE-SVC - [0:0]
:KUBE-SEP-A - [0:0]
:KUBE-SEP-B - [0:0]
:KUBE-SEP-C - [0:0]
-A PREROUTING -d 10.0.0.1 -p tcp --dport 80 -j KUBE-SVC
-A KUBE-SVC -m statistic --mode random --probability 0.3333333333 -j KUBE-SEP-A
-A KUBE-SVC -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-B
-A KUBE-SVC -j KUBE-SEP-C
-A KUBE-SEP-A -p tcp -j DNAT --to-destination 10.1.0.1:8080
-A KUBE-SEP-B -p tcp -j DNAT --to-destination 10.1.0.2:8080
-A KUBE-SEP-C -p tcp -j DNAT --to-destination 10.1.0.3:8080
COMMIT
"""


def test_statistic_rules_enumerate_every_branch_with_its_probability():
    outcomes = trace(model(STATISTIC), Packet("10.9.9.9", "10.0.0.1", 80))
    assert reached(outcomes) == {
        "10.1.0.1:8080": pytest.approx(0.3333333333),
        "10.1.0.2:8080": pytest.approx(0.33333333335),
        "10.1.0.3:8080": pytest.approx(0.33333333335),
    }
    assert sum(o.probability for o in outcomes) == pytest.approx(1.0)


def test_mark_and_masquerade_follow_the_kube_postrouting_logic():
    text = """*nat
:KUBE-MARK-MASQ - [0:0]
:KUBE-POSTROUTING - [0:0]
-A PREROUTING -s 10.9.0.0/16 -j KUBE-MARK-MASQ
-A POSTROUTING -j KUBE-POSTROUTING
-A KUBE-MARK-MASQ -j MARK --or-mark 0x00004000
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
-A KUBE-POSTROUTING -j MASQUERADE --random-fully
COMMIT
"""
    m = model(text)
    (marked,) = trace(m, Packet("10.9.1.1", "8.8.8.8", 53))
    assert marked.masquerade and marked.mark == 0  # the mark is cleared before MASQUERADE
    (unmarked,) = trace(m, Packet("10.8.1.1", "8.8.8.8", 53))
    assert not unmarked.masquerade


def test_routing_sends_local_destinations_to_input_and_others_to_forward():
    text = """*filter
-A INPUT -p tcp --dport 22 -j REJECT
-A FORWARD -p tcp --dport 22 -j DROP
COMMIT
"""
    m = model(text)
    assert [o.verdict for o in trace(m, Packet("10.9.1.1", NODE_IP, 22))] == ["REJECT"]
    assert [o.verdict for o in trace(m, Packet("10.9.1.1", "10.1.1.1", 22))] == ["DROP"]
    assert [o.delivered for o in trace(m, Packet("10.9.1.1", "10.1.1.1", 23))] == ["forward"]


def test_addrtype_local_and_interfaces_match():
    text = """*nat
:KUBE-X - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -i veth+ -j KUBE-X
-A KUBE-X -p tcp -j DNAT --to-destination 10.1.0.1:80
COMMIT
"""
    m = model(text)
    assert reached(trace(m, Packet("10.9.1.1", NODE_IP, 80, in_interface="veth12"))) == {"10.1.0.1:80": 1.0}
    assert reached(trace(m, Packet("10.9.1.1", NODE_IP, 80, in_interface="eth0"))) == {}
    assert reached(trace(m, Packet("10.9.1.1", "10.3.3.3", 80, in_interface="veth12"))) == {}


def test_goto_returns_to_the_callers_caller():
    text = """*filter
:A - [0:0]
:B - [0:0]
-A INPUT -j A
-A INPUT -j REJECT
-A A -g B
-A A -j DROP
COMMIT
"""
    outcomes = trace(model(text), Packet("10.9.1.1", NODE_IP, 80))
    assert [o.verdict for o in outcomes] == ["REJECT"]  # B falls off: back to INPUT, not to A's DROP


def test_builtin_policy_applies_at_the_end_of_the_chain():
    outcomes = trace(model("*filter\n:FORWARD DROP [0:0]\nCOMMIT\n"), Packet("10.9.1.1", "10.1.1.1", 80))
    assert [o.verdict for o in outcomes] == ["DROP"]
