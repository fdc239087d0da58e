"""How svcnet's store keys and values look in etcd: kube-apiserver's layout, in one place.

svcnet names a stored object `/registry/<group or core>/<plural>/[<namespace>/]<name>`
(svcnet/api/resources.py, storage_key) with every driver. kube-apiserver names it
`/registry/<resource prefix>/[<namespace>/]<name>`, where the resource prefix is the plural,
except for the few resources that kept an older name (pkg/kubeapiserver/
default_storage_factory_builder.go, SpecialDefaultResourcePrefixes: services are
`services/specs`, endpoints `services/endpoints`, nodes `minions`, replication controllers
`controllers`, ingresses `ingress`), and apart from the API groups whose servers keep their group in
the key (apiextensions-apiserver's CustomResourceDefinitions, the aggregator's APIServices, and
every custom resource: `/registry/<group>/<plural>`, already svcnet's own shape). The etcd driver
writes the upstream key, so `etcdctl get /registry/services/specs/default/hostnames` finds the
Service a kube-apiserver would have written there; every other key is written as it is.

Values: kube-apiserver writes most built-in kinds to etcd as protobuf (the `k8s\\x00` envelope) and
JSON only for CRDs and custom resources; svcnet writes JSON for every kind, so etcdctl shows it as
text. Like kube-apiserver, the stored object carries no resourceVersion: the etcd mod revision of
the key is the object's resourceVersion, set on read. svcnet stores metadata first, so setting it on
read is a splice into the stored text rather than a decode and encode of each object.
"""
from __future__ import annotations

from svcnet.api import jsoncodec
from svcnet.api.resources import RESOURCES
from svcnet.storage.base import Obj

# kube-apiserver's special resource prefixes (see the module docstring).
_SPECIAL_PREFIXES = {
    ("", "services"): "services/specs",
    ("", "endpoints"): "services/endpoints",
    ("", "nodes"): "minions",
    ("", "replicationcontrollers"): "controllers",
    ("networking.k8s.io", "ingresses"): "ingress",
    ("extensions", "ingresses"): "ingress",
}
# API servers that keep their group in the key, as svcnet does for every group.
_GROUP_KEEPING = frozenset({"apiextensions.k8s.io", "apiregistration.k8s.io"})


def _upstream_prefixes() -> dict[str, str]:
    """svcnet's key prefix of each built-in resource -> the one kube-apiserver uses."""
    table: dict[str, str] = {}
    for resource in RESOURCES:
        if resource.group in _GROUP_KEEPING:
            continue
        ours = f"/registry/{resource.group or 'core'}/{resource.plural}/"
        upstream = _SPECIAL_PREFIXES.get((resource.group, resource.plural), resource.plural)
        table[ours] = f"/registry/{upstream}/"
    # The API server's ClusterIP claims (apiserver/service_alloc.py) are IPAddress objects, which svcnet
    # stores but does not serve yet (so they are not in RESOURCES); kube-apiserver keeps them here.
    table["/registry/networking.k8s.io/ipaddresses/"] = "/registry/ipaddresses/"
    if len(set(table.values())) != len(table):
        raise AssertionError("two resources would share an etcd key prefix")
    return table


_TO_ETCD = _upstream_prefixes()
_FROM_ETCD = {etcd: ours for ours, etcd in _TO_ETCD.items()}
# Longest first: no upstream prefix is a prefix of another today, but a lookup must not depend on it.
_ETCD_PREFIXES = sorted(_FROM_ETCD, key=len, reverse=True)
_OUR_PREFIXES = sorted(_TO_ETCD, key=len, reverse=True)


class UnmappableKey(ValueError):
    """A key that would land on another resource's upstream key (svcnet itself never makes one)."""


def to_etcd(key: str) -> str:
    """The etcd key for a store key."""
    for ours in _OUR_PREFIXES:
        if key.startswith(ours):
            return _TO_ETCD[ours] + key[len(ours):]
    for upstream in _ETCD_PREFIXES:
        if key.startswith(upstream):
            raise UnmappableKey(f"key {key!r} is where kube-apiserver keeps another resource "
                                f"({_FROM_ETCD[upstream]}); the etcd driver cannot store it")
    return key


def from_etcd(key: str) -> str:
    """The store key for an etcd key (to_etcd's inverse)."""
    for upstream in _ETCD_PREFIXES:
        if key.startswith(upstream):
            return _FROM_ETCD[upstream] + key[len(upstream):]
    return key


def etcd_prefix(prefix: str) -> str | None:
    """The etcd key prefix holding exactly the keys under a store prefix, in the same order.

    None when the prefix spans resources whose keys move (e.g. "" or "/registry/core/"): their
    etcd keys are not one contiguous range, so the driver reads the whole key space and maps it.
    A range read by the returned prefix must still be filtered by from_etcd(key).startswith(prefix)
    when the prefix is not under a moved resource (an etcd key under it may belong to one).
    """
    for ours in _OUR_PREFIXES:
        if prefix.startswith(ours):
            return _TO_ETCD[ours] + prefix[len(ours):]
        if ours.startswith(prefix):
            return None
    return prefix


_HEAD = b'{"metadata":{'


def encode_value(value: Obj) -> bytes:
    """The bytes stored for an object: metadata first, without a resourceVersion (the mod revision is it).

    Raises TypeError for a value that is not JSON, before anything is written.
    """
    metadata = value.get("metadata")
    stored_metadata = {k: v for k, v in metadata.items() if k != "resourceVersion"} if isinstance(metadata, dict) \
        else {}
    ordered: Obj = {"metadata": stored_metadata}
    for name, item in value.items():
        if name != "metadata":
            ordered[name] = item
    return jsoncodec.dumps(ordered)


def stamped_text(data: bytes, revision: int) -> str:
    """A stored value as the object's JSON text with its resourceVersion (metadata's first field)."""
    if not data.startswith(_HEAD):  # written by another program: decode, stamp, encode
        value = jsoncodec.loads(data)
        if not isinstance(value, dict):
            raise ValueError("the etcd value is not a JSON object")
        return stamped_text(encode_value(value), revision)
    rest = data[len(_HEAD):]
    separator = b"" if rest.startswith(b"}") else b","
    return (_HEAD + b'"resourceVersion":"%d"' % revision + separator + rest).decode()
