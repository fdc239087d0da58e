"""qname -> request, as CoreDNS's parse.go reads it."""
from __future__ import annotations

import pytest

from svcnet.dns.names import (
    InvalidRequest,
    RecordRequest,
    address_from_reverse,
    endpoint_label,
    from_labels,
    match_zone,
    parse_request,
    pod_label_to_ip,
    reverse_name,
    service_domain,
    to_wire,
    zone_as_spelled,
)

Z = "cluster.local."


@pytest.mark.parametrize("name,want", [
    ("cluster.local.", RecordRequest()),
    ("svc.cluster.local.", RecordRequest()),
    ("pod.cluster.local.", RecordRequest()),
    ("default.svc.cluster.local.", RecordRequest(namespace="default", pod_or_svc="svc")),
    ("web.default.svc.cluster.local.", RecordRequest(service="web", namespace="default", pod_or_svc="svc")),
    ("web-0.web.default.svc.cluster.local.",
     RecordRequest(endpoint="web-0", service="web", namespace="default", pod_or_svc="svc")),
    ("_http._tcp.web.default.svc.cluster.local.",
     RecordRequest(port="http", protocol="tcp", service="web", namespace="default", pod_or_svc="svc")),
    ("http.tcp.web.default.svc.cluster.local.",
     RecordRequest(port="http", protocol="tcp", service="web", namespace="default", pod_or_svc="svc")),
    ("1-2-3-4.default.pod.cluster.local.", RecordRequest(service="1-2-3-4", namespace="default", pod_or_svc="pod")),
])
def test_parse_request_reads_each_shape(name: str, want: RecordRequest) -> None:
    assert parse_request(name, Z) == want


@pytest.mark.parametrize("name", ["foo.cluster.local.", "a.b.c.d.default.svc.cluster.local.",
                                  "web.default.cluster.local.", "dns-version.cluster.local."])
def test_parse_request_rejects_names_that_cannot_exist(name: str) -> None:
    with pytest.raises(InvalidRequest):
        parse_request(name, Z)


def test_longest_zone_wins() -> None:
    assert match_zone("a.svc.cluster.local.", ("local.", "cluster.local.")) == "cluster.local."
    assert match_zone("example.org.", ("cluster.local.",)) is None


@pytest.mark.parametrize("ip", ["10.96.0.1", "fd00:10:96::5"])
def test_reverse_names_round_trip(ip: str) -> None:
    assert address_from_reverse(reverse_name(ip)) == ip


def test_partial_reverse_names_are_not_addresses() -> None:
    assert address_from_reverse("0.96.10.in-addr.arpa.") is None
    assert address_from_reverse("x.0.96.10.in-addr.arpa.") is None


def test_endpoint_labels_prefer_the_hostname_then_dash_the_address() -> None:
    assert endpoint_label("10.244.1.8", "web-0") == "web-0"
    assert endpoint_label("10.244.1.8", "") == "10-244-1-8"
    assert endpoint_label("fd00:10:244::5", "") == "fd00-10-244--5"


def test_pod_labels_spell_addresses() -> None:
    assert pod_label_to_ip("10-244-1-8") == "10.244.1.8"
    assert pod_label_to_ip("fd00-10-244--8") == "fd00:10:244::8"


def test_a_name_goes_to_wire_labels_and_back() -> None:
    wire = to_wire("web.default.svc.cluster.local.")
    assert wire == b"\x03web\x07default\x03svc\x07cluster\x05local\x00"
    assert to_wire("web.default") == b"\x03web\x07default\x00"
    assert to_wire(".") == b"\x00"
    assert from_labels([b"web", b"default"]) == "web.default."
    assert from_labels([]) == "."


def test_the_zone_keeps_the_querys_spelling() -> None:
    assert zone_as_spelled("Web.Default.SVC.Cluster.Local.", Z) == "Cluster.Local."
    assert service_domain("web", "default", Z) == "web.default.svc.cluster.local."
