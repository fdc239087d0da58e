"""--conntrack-tcp-be-liberal in a real namespace: the proxy sets the sysctl there (not on the host), and a
namespace where it is on gets no INVALID-drop rule, as kube-proxy reads the sysctl."""
from __future__ import annotations

from pathlib import Path

from svcnet.kernel import netns
from svcnet.kernel.sysctl import read_sysctl
from svcnet.proxy.daemon import _conntrack_liberal
from svcnet.proxy.syncer import ProxySettings
from tests.integration.netns.conftest import requires_root

pytestmark = requires_root
KEY = "net.netfilter.nf_conntrack_tcp_be_liberal"


def test_the_flag_sets_the_sysctl_in_the_namespace_only(cluster_id: str) -> None:
    name = f"svcnet-{cluster_id}-liberal"
    host = Path("/proc/sys/net/netfilter/nf_conntrack_tcp_be_liberal")
    host_before = host.read_text() if host.exists() else None
    netns.create_netns(name)
    try:
        assert _conntrack_liberal(name, ProxySettings("node-1")).conntrack_tcp_be_liberal is False
        assert _conntrack_liberal(name, ProxySettings("node-1", conntrack_tcp_be_liberal=True)
                                  ).conntrack_tcp_be_liberal is True
        assert read_sysctl(name, KEY) == "1"
        # Set by someone else, it still counts, as upstream reads the sysctl rather than the flag.
        assert _conntrack_liberal(name, ProxySettings("node-1")).conntrack_tcp_be_liberal is True
    finally:
        netns.delete_netns(name)
    assert (host.read_text() if host.exists() else None) == host_before
