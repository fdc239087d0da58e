"""Which Services select which pods, and which pod changes call for an endpoints sync.

A Service with a selector gets its endpoints computed; one without gets what
its user writes, and an ExternalName Service gets none. The controllers index
Services and pods by label pairs (LabelIndex), so finding the Services of a
pod, or the pods of a Service, costs a few look-ups instead of a scan.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from svcnet.api.objects import is_pod_ready, labels_of, metadata_of, spec_of, status_of
from svcnet.core.endpoints.pods import pod_ips


def service_selector(service: Mapping[str, Any]) -> Mapping[str, str]:
    """The selector map; empty means none (the API drops an empty map, as Go's omitempty does)."""
    return spec_of(service).get("selector") or {}


def manages_endpoints(service: Mapping[str, Any]) -> bool:
    """Whether the controllers compute endpoints for this Service at all.

    Services without a selector get user-written Endpoints/EndpointSlices; an
    ExternalName Service gets none (upstream issue 105986).
    """
    return bool(service_selector(service)) and spec_of(service).get("type") != "ExternalName"


def selects(service: Mapping[str, Any], pod: Mapping[str, Any]) -> bool:
    """The Service's selector matches the pod (same namespace, every key=value present)."""
    selector = service_selector(service)
    if not selector or metadata_of(service).get("namespace") != metadata_of(pod).get("namespace"):
        return False
    labels = labels_of(pod)
    return all(labels.get(k) == v for k, v in selector.items())


def selector_index_keys(service: Mapping[str, Any]) -> list[str]:
    """One "namespace/key=value" of the selector: any pod it selects carries that label.

    Indexing Services by it (and pods by every label, pod_label_index_keys)
    turns "which Services select this pod" into a few dict look-ups instead of
    a scan of every Service in the namespace.
    """
    selector = service_selector(service)
    if not selector:
        return []
    key = min(selector)
    return [f"{metadata_of(service).get('namespace')}/{key}={selector[key]}"]


def pod_label_index_keys(pod: Mapping[str, Any]) -> list[str]:
    namespace = metadata_of(pod).get("namespace")
    return [f"{namespace}/{k}={v}" for k, v in labels_of(pod).items()]


class LabelIndex:
    """Object keys by "namespace/key=value", so a selector's matches cost a look-up, not a scan.

    candidates() answers from the smallest bucket among the selector's pairs:
    a superset of the matches, which the caller filters with selects().
    """

    def __init__(self) -> None:
        self._buckets: dict[str, set[str]] = {}
        self._pairs_of: dict[str, list[str]] = {}

    def put(self, key: str, obj: Mapping[str, Any]) -> None:
        self.remove(key)
        pairs = pod_label_index_keys(obj)
        self._pairs_of[key] = pairs
        for pair in pairs:
            self._buckets.setdefault(pair, set()).add(key)

    def remove(self, key: str) -> None:
        for pair in self._pairs_of.pop(key, []):
            bucket = self._buckets.get(pair)
            if bucket is not None:
                bucket.discard(key)
                if not bucket:
                    del self._buckets[pair]

    def candidates(self, namespace: str, selector: Mapping[str, str]) -> set[str]:
        if not selector:
            return set()
        smallest: set[str] | None = None
        for k, v in selector.items():
            bucket = self._buckets.get(f"{namespace}/{k}={v}")
            if not bucket:
                return set()
            if smallest is None or len(bucket) < len(smallest):
                smallest = bucket
        return set(smallest or ())

    def __len__(self) -> int:
        return len(self._pairs_of)


def pod_endpoints_changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[bool, bool]:
    """(the pod's endpoint may differ, the Services selecting it may differ), as upstream's."""
    old_md, new_md = metadata_of(old), metadata_of(new)
    labels_changed = labels_of(old) != labels_of(new) \
        or spec_of(old).get("hostname") != spec_of(new).get("hostname") \
        or spec_of(old).get("subdomain") != spec_of(new).get("subdomain")
    pod_changed = (old_md.get("deletionTimestamp") != new_md.get("deletionTimestamp")
                   or is_pod_ready(old) != is_pod_ready(new)
                   or pod_ips(old) != pod_ips(new)
                   # Not in upstream's list (kubelet sets these together with the IP), but
                   # svcnet's kubelet doubles may write them separately: cheap to include.
                   or status_of(old).get("phase") != status_of(new).get("phase")
                   or spec_of(old).get("nodeName") != spec_of(new).get("nodeName"))
    return pod_changed, labels_changed


def services_to_update(old_services: set[str], new_services: set[str], pod_changed: bool) -> set[str]:
    """After a label change: all Services if the pod also changed, else only those it joined or left."""
    if pod_changed:
        return old_services | new_services
    return old_services ^ new_services
