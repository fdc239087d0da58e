"""nfacct against the real kernel, in a namespace made (and removed) by the test: kube-proxy's counters are
created through netlink, and an iptables rule with `-m nfacct` counts the packets it matches."""
from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator

import pytest

from svcnet.kernel import netns
from svcnet.kernel.nfacct import NetlinkNfacct, ensure, open_nfacct, read_packets
from svcnet.proxy.iptables.render import NFACCT_INVALID_DROPPED, NFACCT_LOCALHOST_NODEPORTS
from tests.integration.netns.conftest import requires_root, session_prefix
from tests.waiting import wait_for

pytestmark = [requires_root, pytest.mark.skipif(shutil.which("iptables") is None, reason="needs iptables")]


@pytest.fixture
def namespace(cluster_id: str) -> Iterator[str]:
    name = f"svcnet-{cluster_id}-nfacct"
    assert name.startswith(session_prefix())
    netns.create_netns(name)
    try:
        yield name
    finally:
        netns.delete_netns(name)


def test_counters_are_created_in_the_namespace_and_count_what_a_rule_matches(namespace: str) -> None:
    nfacct = open_nfacct(namespace)
    assert nfacct is not None, "this kernel has nfnetlink_acct (CONFIG_NETFILTER_NETLINK_ACCT)"
    try:
        assert nfacct.get(NFACCT_LOCALHOST_NODEPORTS) is None
        for name in (NFACCT_INVALID_DROPPED, NFACCT_LOCALHOST_NODEPORTS):
            ensure(nfacct, name)
            ensure(nfacct, name)  # a second time finds it (the kernel would say EBUSY to a second NEW)
        assert read_packets(nfacct, [NFACCT_INVALID_DROPPED, NFACCT_LOCALHOST_NODEPORTS, "absent"]) == {
            NFACCT_INVALID_DROPPED: 0, NFACCT_LOCALHOST_NODEPORTS: 0}

        for argv in (["ip", "link", "set", "lo", "up"],
                     ["iptables", "-w", "-A", "OUTPUT", "-o", "lo", "-p", "udp", "--dport", "30080",
                      "-m", "nfacct", "--nfacct-name", NFACCT_LOCALHOST_NODEPORTS]):
            done = netns.run_command_in_netns(namespace, argv)
            assert done.returncode == 0, done.stderr

        def send_five() -> None:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                for _ in range(5):
                    sock.sendto(b"x", ("127.0.0.1", 30080))

        netns.run_in_netns(namespace, send_five)
        wait_for(lambda: read_packets(nfacct, [NFACCT_LOCALHOST_NODEPORTS]) == {NFACCT_LOCALHOST_NODEPORTS: 5},
                 timeout=10, what="the nfacct counter to count five packets")
        counter = nfacct.get(NFACCT_LOCALHOST_NODEPORTS)
        assert counter is not None and counter.bytes == 5 * (20 + 8 + 1)
        assert read_packets(nfacct, [NFACCT_INVALID_DROPPED]) == {NFACCT_INVALID_DROPPED: 0}
    finally:
        nfacct.close()


def test_counters_belong_to_their_namespace(namespace: str, cluster_id: str) -> None:
    other = f"svcnet-{cluster_id}-nfacct2"
    netns.create_netns(other)
    here = NetlinkNfacct.in_netns(namespace)
    there = NetlinkNfacct.in_netns(other)
    try:
        ensure(here, NFACCT_INVALID_DROPPED)
        assert here.get(NFACCT_INVALID_DROPPED) is not None
        assert there.get(NFACCT_INVALID_DROPPED) is None
    finally:
        here.close()
        there.close()
        netns.delete_netns(other)
