"""ServiceCIDR validation: pkg/apis/networking/validation's rules and wording, strict CIDRs."""
from __future__ import annotations

import pytest

from svcnet.apiserver.validation import validate
from svcnet.apiserver.validation.networking import strict_cidr_errors


def cidr(*cidrs: str, name: str = "extra") -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "ServiceCIDR", "metadata": {"name": name},
            "spec": {"cidrs": list(cidrs)}}


def messages(obj: dict, old: dict | None = None) -> list[str]:
    return [f"{c.field}: {c.message}" for c in validate("ServiceCIDR", obj, old)]


@pytest.mark.parametrize("cidrs", [
    ("10.100.0.0/16",), ("fd00:20::/64",), ("10.100.0.0/16", "fd00:20::/64"), ("fd00:20::/64", "10.100.0.0/16"),
    ("0.0.0.0/0",), ("10.1.2.3/32",),
])
def test_one_cidr_or_one_of_each_family_in_canonical_form_is_valid(cidrs: tuple[str, ...]) -> None:
    assert messages(cidr(*cidrs)) == []


@pytest.mark.parametrize(("cidrs", "expected"), [
    ((), ["spec.cidrs: Required value: at least one CIDR required"]),
    (("10.0.0.0/24", "fd00::/64", "10.1.0.0/24"),
     ['spec.cidrs: Invalid value: networking.ServiceCIDRSpec{CIDRs:[]string{"10.0.0.0/24", "fd00::/64", '
      '"10.1.0.0/24"}}: may only hold up to 2 values']),
    (("10.0.0.0/24", "10.1.0.0/24"),
     ['spec.cidrs: Invalid value: []string{"10.0.0.0/24", "10.1.0.0/24"}: may specify no more than one IP '
      'for each IP family, i.e 192.168.0.0/24 and 2001:db8::/64']),
    (("bad cidr",),
     ['spec.cidrs[0]: Invalid value: "bad cidr": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)']),
    # upstream's strategy test: an unparseable CIDR is one error, and no family error follows it
    (("10.0.0.0/24", "bad cidr"),
     ['spec.cidrs[1]: Invalid value: "bad cidr": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)']),
])
def test_cidr_list_errors_are_upstreams(cidrs: tuple[str, ...], expected: list[str]) -> None:
    assert messages(cidr(*cidrs)) == expected


@pytest.mark.parametrize(("value", "detail"), [
    ("10.0.0.0", "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"),
    ("10.0.0.0/33", "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"),
    ("10.0.0.0/+8", "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"),
    ("fe80::%eth0/64", "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"),
    ("010.0.0.0/8", "must not have leading 0s in IP or prefix length"),
    ("10.0.0.0/08", "must not have leading 0s in IP or prefix length"),
    ("::ffff:10.0.0.0/104", "must not have an IPv4-mapped IPv6 address"),
    ("10.0.0.1/8", "must not have bits set beyond the prefix length"),
    ("FD00::/64", 'must be in canonical form ("fd00::/64")'),
    ("fd00:0:0:0::/64", 'must be in canonical form ("fd00::/64")'),
])
def test_each_cidr_is_checked_as_apimachinerys_strict_is_valid_cidr(value: str, detail: str) -> None:
    assert [c.message for c in strict_cidr_errors("spec.cidrs[0]", value)] == [
        f'Invalid value: "{value}": {detail}']


def test_the_name_must_be_a_dns_subdomain() -> None:
    assert any(m.startswith("metadata.name: Invalid value: \"Bad_Name\"")
               for m in messages(cidr("10.0.0.0/24", name="Bad_Name")))


def test_cluster_scoped_object_may_not_carry_a_namespace() -> None:
    obj = cidr("10.0.0.0/24")
    obj["metadata"]["namespace"] = "default"
    assert any(m.startswith("metadata.namespace: Forbidden") for m in messages(obj))


def _stored(*cidrs: str) -> dict:
    obj = cidr(*cidrs)
    obj["metadata"].update(resourceVersion="5", uid="u1", creationTimestamp="2026-01-01T00:00:00Z")
    return obj


def _updated(old: dict, *cidrs: str) -> dict:
    new = {**old, "metadata": dict(old["metadata"]), "spec": {"cidrs": list(cidrs)}}
    return new


@pytest.mark.parametrize(("old", "new", "expected"), [
    (("10.0.0.0/24",), ("10.0.0.0/24",), []),
    (("10.0.0.0/24",), ("10.0.1.0/24",), ['spec.cidrs[0]: Invalid value: "10.0.1.0/24": field is immutable']),
    (("10.0.0.0/24", "fd00::/64"), ("10.0.0.0/24", "fd00:1::/64"),
     ['spec.cidrs[1]: Invalid value: "fd00:1::/64": field is immutable']),
    # single-stack to dual-stack: the one allowed change (kubernetes#131261)
    (("10.0.0.0/24",), ("10.0.0.0/24", "fd00::/64"), []),
    (("10.0.0.0/24",), ("10.0.1.0/24", "fd00::/64"),
     ['spec.cidrs[0]: Invalid value: "10.0.1.0/24": field is immutable']),
    (("10.0.0.0/24",), ("10.0.0.0/24", "10.1.0.0/24"),
     ['spec.cidrs: Invalid value: []string{"10.0.0.0/24", "10.1.0.0/24"}: may specify no more than one IP '
      'for each IP family, i.e 192.168.0.0/24 and 2001:db8::/64']),
    (("10.0.0.0/24",), ("10.0.0.0/24", "FD00::/64"),
     ['spec.cidrs[1]: Invalid value: "FD00::/64": must be in canonical form ("fd00::/64")']),
    # dual-stack back to single-stack, or emptied: not allowed
    (("10.0.0.0/24", "fd00::/64"), ("10.0.0.0/24",),
     ['spec.cidrs: Invalid value: []string{"10.0.0.0/24"}: field is immutable']),
    (("10.0.0.0/24",), (), ["spec.cidrs: Invalid value: []string{}: field is immutable"]),
])
def test_cidrs_are_immutable_but_for_a_second_family(old: tuple, new: tuple, expected: list[str]) -> None:
    stored = _stored(*old)
    assert messages(_updated(stored, *new), stored) == expected
