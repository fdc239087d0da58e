"""sock_diag against the real kernel: a namespace's LISTEN sockets, and only that namespace's."""
from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from svcnet.kernel import netns
from svcnet.kernel.sockdiag import NetnsListeningPorts
from tests.integration.netns.conftest import requires_root, session_prefix

pytestmark = requires_root


@pytest.fixture
def two_namespaces(cluster_id: str) -> Iterator[tuple[str, str]]:
    names = (f"svcnet-{cluster_id}-sd-a", f"svcnet-{cluster_id}-sd-b")
    assert all(n.startswith(session_prefix()) for n in names)
    for name in names:
        netns.create_netns(name)
    try:
        yield names
    finally:
        for name in names:
            netns.delete_netns(name)


def test_listening_ports_are_those_of_the_namespace_v4_and_v6_and_go_when_closed(two_namespaces: tuple[str, str]
                                                                                  ) -> None:
    here, there = two_namespaces
    ports = NetnsListeningPorts(here)
    elsewhere = NetnsListeningPorts(there)
    try:
        assert ports.listening_ports() == frozenset()
        v4 = netns.listen_tcp_in_netns(here, "0.0.0.0", 8080)
        v6 = netns.listen_tcp_in_netns(here, "::", 9376)
        other = netns.listen_tcp_in_netns(there, "0.0.0.0", 7070)
        connected = netns.run_in_netns(here, socket.socket)  # a socket that does not listen is not counted
        try:
            assert ports.listening_ports() == {8080, 9376}
            assert elsewhere.listening_ports() == {7070}
            v4.close()
            assert ports.listening_ports() == {9376}
        finally:
            for sock in (v4, v6, other, connected):
                sock.close()
    finally:
        ports.close()
        elsewhere.close()
