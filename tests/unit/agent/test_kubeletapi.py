"""kubelet's API paths and its webhook authorization mapping (kubelet's nodeAuthorizerAttributesGetter)."""
from __future__ import annotations

import pytest

from svcnet.agent.kubeletapi import (
    Route,
    forbidden_message,
    log_options,
    parse_route,
    previous,
    request_attributes,
)
from svcnet.api.podlogs import LogOptions


@pytest.mark.parametrize(("path", "route"), [
    ("/healthz", Route("healthz")),
    ("/pods", Route("pods")),
    ("/pods/", Route("pods")),
    ("/containerLogs/ns/p/c", Route("containerLogs", "ns", "p", "c")),
    ("/exec/ns/p/c", Route("exec", "ns", "p", "c")),
    ("/exec/ns/p/uid-1/c", Route("exec", "ns", "p", "c", "uid-1")),
    ("/attach/ns/p/c", Route("attach", "ns", "p", "c")),
    ("/attach/ns/p/uid-1/c", Route("attach", "ns", "p", "c", "uid-1")),
    ("/run/ns/p/c", Route("run", "ns", "p", "c")),
    ("/portForward/ns/p", Route("portForward", "ns", "p")),
    ("/portForward/ns/p/uid-1", Route("portForward", "ns", "p", "", "uid-1")),
])
def test_kubelet_paths_name_what_they_ask_for(path: str, route: Route) -> None:
    assert parse_route(path) == route


@pytest.mark.parametrize("path", [
    "/", "/nope", "/containerLogs/ns/p", "/containerLogs/ns/p/c/extra", "/exec/ns/p", "/exec/ns//c",
    "/portForward/ns", "/portForward/ns/p/u/x", "/healthz/more",
])
def test_other_paths_are_not_routes(path: str) -> None:
    assert parse_route(path) is None


@pytest.mark.parametrize(("method", "path", "verb", "subresource"), [
    ("GET", "/containerLogs/ns/p/c", "get", "proxy"),
    ("POST", "/exec/ns/p/c", "create", "proxy"),
    ("GET", "/exec/ns/p/c", "get", "proxy"),
    ("POST", "/portForward/ns/p", "create", "proxy"),
    ("GET", "/healthz", "get", "proxy"),
    ("GET", "/pods", "get", "proxy"),
    ("GET", "/stats/summary", "get", "stats"),
    ("GET", "/stats", "get", "stats"),
    ("GET", "/statsz", "get", "proxy"),  # a sibling name, not a subpath
    ("GET", "/metrics/cadvisor", "get", "metrics"),
    ("GET", "/logs/syslog", "get", "log"),
    ("PUT", "/x", "update", "proxy"),
    ("PATCH", "/x", "patch", "proxy"),
    ("DELETE", "/x", "delete", "proxy"),
    ("HEAD", "/healthz", "", "proxy"),
])
def test_requests_are_authorized_as_verbs_on_the_nodes_subresource(method: str, path: str, verb: str,
                                                                  subresource: str) -> None:
    attrs = request_attributes(method, path, "node-1")
    assert (attrs.verb, attrs.subresource, attrs.node) == (verb, subresource, "node-1")
    assert attrs.review_spec("alice", ("devs",))["resourceAttributes"] == {
        "verb": verb, "version": "v1", "resource": "nodes", "subresource": subresource, "name": "node-1"}


def test_forbidden_text_is_kubelets() -> None:
    attrs = request_attributes("GET", "/healthz", "node-1")
    assert forbidden_message("bob", attrs) == "Forbidden (user=bob, verb=get, resource=nodes, subresource=proxy)"


def test_log_options_are_read_from_the_query() -> None:
    query = {"tailLines": "3", "timestamps": "true", "limitBytes": "10", "sinceSeconds": "2", "follow": "true"}
    assert log_options(query, now_ns=5_000_000_000) == LogOptions(
        tail_lines=3, timestamps=True, limit_bytes=10, since_ns=3_000_000_000, follow=True)
    assert log_options({"sinceTime": "1970-01-01T00:00:01.5Z"}).since_ns == 1_500_000_000
    assert previous({"previous": "true"}) and not previous({})


@pytest.mark.parametrize("query", [{"tailLines": "x"}, {"tailLines": "-1"}, {"limitBytes": "1.5"},
                                   {"sinceTime": "yesterday"}])
def test_malformed_log_options_are_refused(query: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        log_options(query)
