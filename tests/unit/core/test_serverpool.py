"""The client-side load balancer's choice of API server (k3s's agent load balancer)."""
from __future__ import annotations

import pytest

from svcnet.core.serverpool import ServerPool


def test_new_connections_prefer_the_first_healthy_server_in_the_order_given():
    pool = ServerPool(["a:6443", "b:6443", "c:6443"])
    assert pool.dial_order() == ["a:6443", "b:6443", "c:6443"]
    pool.dial_failed("a:6443")
    assert pool.dial_order() == ["b:6443", "c:6443", "a:6443"]  # a is still tried, last
    pool.checked("a:6443", True)
    assert pool.dial_order()[0] == "a:6443"  # back in front once a check passes


def test_a_server_going_down_is_reported_once_so_its_connections_are_closed_once():
    pool = ServerPool(["a:6443", "b:6443"])
    assert pool.checked("a:6443", False) is True
    assert pool.checked("a:6443", False) is False
    assert pool.checked("b:6443", True) is False


@pytest.mark.parametrize(("servers", "message"), [([], "at least one server"),
                                                   (["a:1", "a:1"], "listed twice")])
def test_bad_server_lists_are_refused(servers, message):
    with pytest.raises(ValueError, match=message):
        ServerPool(servers)
