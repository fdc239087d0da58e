"""Discovery documents (/api, /apis, /api/v1, /apis/<g>/<v>), built from the resource table.

Two formats, as kube-apiserver 1.32 serves them:

- legacy: APIVersions at /api, APIGroupList at /apis, APIGroup at /apis/<g>,
  APIResourceList per group-version;
- aggregated (apidiscovery.k8s.io/v2, and v2beta1 which 1.32 clients still
  accept): one APIGroupDiscoveryList at /api and one at /apis carrying every
  resource, so kubectl needs two requests instead of one per group-version.

kubectl 1.32's discovery client (client-go discovery_client.go) sends, for /api
and /apis,
  Accept: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,
          application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,
          application/json
and decides the format from the response Content-Type alone: only a media type
of application/json whose g, v and as parameters name the aggregated kind (in
any order) is read as aggregated; anything else is read as legacy JSON.
"""
from __future__ import annotations

import base64
import hashlib
from typing import Any

from svcnet.api.resources import GROUP_ORDER, Resource, Subresource, by_group_version, group_versions
from svcnet.apiserver.types import subresource_gvk

Obj = dict[str, Any]

DISCOVERY_LEGACY = "legacy"
DISCOVERY_V2 = "v2"
DISCOVERY_V2BETA1 = "v2beta1"

_AGGREGATED_GROUP = "apidiscovery.k8s.io"
_AGGREGATED_KIND = "APIGroupDiscoveryList"
JSON = "application/json"


def aggregated_content_type(version: str) -> str:
    """The Content-Type that tells client-go the body is aggregated discovery."""
    return f"{JSON};g={_AGGREGATED_GROUP};v={version};as={_AGGREGATED_KIND}"


def _media_ranges(accept: str) -> list[tuple[str, dict[str, str], float]]:
    """Split an Accept header into (type, params, q) in header order."""
    out = []
    for clause in accept.split(","):
        parts = [p.strip() for p in clause.split(";")]
        if not parts[0]:
            continue
        params: dict[str, str] = {}
        for p in parts[1:]:
            if "=" in p:
                k, v = p.split("=", 1)
                params[k.strip().lower()] = v.strip().strip('"')
        try:
            q = float(params.pop("q", "1"))
        except ValueError:
            q = 1.0
        out.append((parts[0].lower(), params, q))
    return out


def negotiate_discovery(accept_header: str | None) -> tuple[str, str]:
    """Pick the discovery format for /api or /apis: (DISCOVERY_*, response Content-Type).

    The first acceptable clause wins (highest q first, header order between
    equals), as the apiserver's negotiation does. Aggregated clauses must be
    application/json with g=apidiscovery.k8s.io and as=APIGroupDiscoveryList;
    a profile parameter (nopeer, newer clients) does not change the answer for
    a single server. Anything else gets legacy JSON.
    """
    clauses = _media_ranges(accept_header or "")
    ordered = sorted(enumerate(clauses), key=lambda ic: (-ic[1][2], ic[0]))
    for _, (media, params, q) in ordered:
        if q <= 0:
            continue
        if media == JSON and params.get("g") == _AGGREGATED_GROUP and params.get("as") == _AGGREGATED_KIND:
            if params.get("v") == DISCOVERY_V2:
                return DISCOVERY_V2, aggregated_content_type(DISCOVERY_V2)
            if params.get("v") == DISCOVERY_V2BETA1:
                return DISCOVERY_V2BETA1, aggregated_content_type(DISCOVERY_V2BETA1)
            continue
        if media in (JSON, "application/*", "*/*") and not params.get("as"):
            return DISCOVERY_LEGACY, JSON
    return DISCOVERY_LEGACY, JSON


# ---------------------------------------------------------------------------
# Legacy discovery


def legacy_api_versions(server_address: str) -> Obj:
    """/api: the core group's versions and where clients reach the server."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def _named_groups() -> list[str]:
    return [g for g in GROUP_ORDER if g and by_group_version(g, "v1")]


def _versions_of(group: str) -> list[str]:
    return [v for g, v in group_versions() if g == group]


def api_group(group: str) -> Obj | None:
    """/apis/<group>: one APIGroup, or None for a group svcnet does not serve."""
    versions = _versions_of(group)
    if not group or not versions:
        return None
    entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": entries,
        "preferredVersion": entries[0],
    }


def api_group_list() -> Obj:
    """/apis: every named group, in the order kube-apiserver lists them."""
    groups = []
    for group in _named_groups():
        g = api_group(group)
        assert g is not None
        groups.append({k: v for k, v in g.items() if k not in ("kind", "apiVersion")})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def storage_version_hash(group: str, version: str, kind: str) -> str:
    """kube-apiserver's hash: base64 of the first 8 bytes of sha256("group/version/kind")."""
    digest = hashlib.sha256(f"{group}/{version}/{kind}".encode()).digest()
    return base64.b64encode(digest[:8]).decode()


def _api_resource(r: Resource) -> Obj:
    out: Obj = {
        "name": r.plural,
        "singularName": r.singular,
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": list(r.verbs),
    }
    if r.short_names:
        out["shortNames"] = list(r.short_names)
    if r.categories:
        out["categories"] = list(r.categories)
    out["storageVersionHash"] = storage_version_hash(r.group, r.version, r.kind)
    return out


def _by_name(r: Resource) -> list[Subresource]:
    """Subresources in name order: kube-apiserver lists pods/binding, pods/exec, pods/log, pods/status."""
    return sorted(r.subresources, key=lambda sub: sub.name)


def _api_subresources(r: Resource) -> list[Obj]:
    out = []
    for sub in _by_name(r):
        group, version, kind = subresource_gvk(r, sub)
        entry: Obj = {"name": f"{r.plural}/{sub.name}", "singularName": "", "namespaced": r.namespaced}
        # group/version appear only when they differ from the list's (e.g. autoscaling Scale).
        if (group, version) != (r.group, r.version):
            entry["group"] = group
            entry["version"] = version
        entry["kind"] = kind
        entry["verbs"] = list(sub.verbs)
        out.append(entry)
    return out


def api_resource_list(group: str, version: str) -> Obj | None:
    """/api/v1 or /apis/<g>/<v>: resources and their subresources; None if not served."""
    resources = by_group_version(group, version)
    if not resources:
        return None
    entries: list[Obj] = []
    for r in sorted(resources, key=lambda r: r.plural):
        entries.append(_api_resource(r))
        entries.extend(_api_subresources(r))
    if group:
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{group}/{version}",
                "resources": entries}
    # kube-apiserver omits apiVersion on the core list; keep its shape.
    return {"kind": "APIResourceList", "groupVersion": version, "resources": entries}


# ---------------------------------------------------------------------------
# Aggregated discovery


def _resource_discovery(r: Resource) -> Obj:
    out: Obj = {
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": "Namespaced" if r.namespaced else "Cluster",
        "singularResource": r.singular,
        "verbs": list(r.verbs),
    }
    if r.short_names:
        out["shortNames"] = list(r.short_names)
    if r.categories:
        out["categories"] = list(r.categories)
    if r.subresources:
        out["subresources"] = []
        for sub in _by_name(r):
            group, version, kind = subresource_gvk(r, sub)
            out["subresources"].append({
                "subresource": sub.name,
                "responseKind": {"group": group, "version": version, "kind": kind},
                "verbs": list(sub.verbs),
            })
    return out


def _group_discovery(group: str) -> Obj:
    metadata: Obj = {"creationTimestamp": None}
    if group:
        metadata = {"name": group, "creationTimestamp": None}
    return {
        "metadata": metadata,
        "versions": [
            {
                "version": v,
                "resources": [_resource_discovery(r)
                              for r in sorted(by_group_version(group, v), key=lambda r: r.plural)],
                "freshness": "Current",
            }
            for v in _versions_of(group)  # preferred version first
        ],
    }


def aggregated_discovery(core: bool, version: str = DISCOVERY_V2) -> Obj:
    """APIGroupDiscoveryList for /api (core=True) or /apis (core=False).

    version is DISCOVERY_V2 or DISCOVERY_V2BETA1; the body is the same shape in
    both, only apiVersion differs.
    """
    if version not in (DISCOVERY_V2, DISCOVERY_V2BETA1):
        raise ValueError(f"unknown aggregated discovery version {version!r}")
    groups = [""] if core else _named_groups()
    return {
        "kind": _AGGREGATED_KIND,
        "apiVersion": f"{_AGGREGATED_GROUP}/{version}",
        "metadata": {},
        "items": [_group_discovery(g) for g in groups],
    }
