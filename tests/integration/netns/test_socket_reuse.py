"""The agent's kernel (`LinuxNetworkKernel(reuse_sockets=True)`): one netlink socket per namespace, reused.

pyroute2 keeps a sync socket per thread, so a socket used from another thread
would quietly talk to that thread's namespace (the host's): these pin that
every call, from any thread, sees the namespace it names, that a namespace
replaced behind the kernel's back is seen afresh, and that veth peers are
named after their namespaces.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from svcnet.kernel import NamespaceNotFound
from svcnet.kernel import netns as nsmod
from svcnet.kernel.links import LinuxNetworkKernel
from tests.integration.netns.conftest import requires_root

pytestmark = requires_root


@pytest.fixture
def kernel(cluster_id: str) -> Iterator[LinuxNetworkKernel]:
    k = LinuxNetworkKernel(reuse_sockets=True)
    try:
        yield k
    finally:
        k.close()


def test_calls_from_many_threads_see_the_named_namespace_never_the_hosts(kernel: LinuxNetworkKernel,
                                                                        cluster_id: str) -> None:
    ns = f"svcnet-{cluster_id}-a"
    kernel.create_namespace(ns)
    kernel.add_bridge(ns, "br-only-here")
    seen: list[set[str]] = []

    def look() -> None:
        seen.append({link.name for link in kernel.list_links(ns)})

    threads = [threading.Thread(target=look) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == [{"lo", "br-only-here"}] * 8
    assert kernel.get_link(ns, "br-only-here") is not None and kernel.get_link(ns, "eth0") is None


def test_a_namespace_replaced_behind_the_kernels_back_is_seen_afresh(kernel: LinuxNetworkKernel,
                                                                    cluster_id: str) -> None:
    ns = f"svcnet-{cluster_id}-b"
    kernel.create_namespace(ns)
    kernel.add_bridge(ns, "br-old")
    assert kernel.get_link(ns, "br-old") is not None
    nsmod.delete_netns(ns)  # not through the kernel: its cached socket is now stale
    with pytest.raises(NamespaceNotFound):
        kernel.get_link(ns, "br-old")
    nsmod.create_netns(ns)
    assert kernel.get_link(ns, "br-old") is None
    assert {link.name for link in kernel.list_links(ns)} == {"lo"}


def test_veth_peers_are_named_after_their_namespaces_as_pods_come_and_go(kernel: LinuxNetworkKernel,
                                                                        cluster_id: str) -> None:
    node = f"svcnet-{cluster_id}-node"
    kernel.create_namespace(node)
    for i in range(3):
        pod = f"svcnet-{cluster_id}-pod{i}"
        kernel.create_namespace(pod)
        kernel.add_veth(pod, "eth0", f"veth{i}", node)
        inside, outside = kernel.get_link(pod, "eth0"), kernel.get_link(node, f"veth{i}")
        assert inside is not None and inside.peer is not None and inside.peer.namespace == node
        assert outside is not None and outside.peer is not None and outside.peer.namespace == pod
        assert (inside.peer.index, outside.peer.index) == (outside.index, inside.index)
    kernel.delete_link(node, "veth1")
    kernel.delete_namespace(f"svcnet-{cluster_id}-pod1")
    kernel.create_namespace(f"svcnet-{cluster_id}-pod1")  # the same name, a new namespace
    kernel.add_veth(f"svcnet-{cluster_id}-pod1", "eth0", "veth1", node)
    outside = kernel.get_link(node, "veth1")
    assert outside is not None and outside.peer is not None
    assert outside.peer.namespace == f"svcnet-{cluster_id}-pod1"


def test_naming_a_new_pods_peer_asks_only_the_hinted_namespace(kernel: LinuxNetworkKernel, cluster_id: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Namespaces with no id in the node (another node's pods) are not asked when the caller says
    where the peer should be: converge always does, so a node's lookups do not grow with them."""
    from svcnet.kernel import links

    node = f"svcnet-{cluster_id}-node"
    kernel.create_namespace(node)
    for i in range(6):
        kernel.create_namespace(f"svcnet-{cluster_id}-other{i}")
    pod = f"svcnet-{cluster_id}-pod"
    kernel.create_namespace(pod)
    kernel.add_veth(pod, "eth0", "vethp", node)
    asked: list[str] = []
    real = links._nsid_of
    monkeypatch.setattr(links, "_nsid_of", lambda ipr, name: (asked.append(name), real(ipr, name))[1])
    outside = kernel.get_link(node, "vethp", peer_hint=pod)
    assert outside is not None and outside.peer is not None and outside.peer.namespace == pod
    assert asked == [pod]
