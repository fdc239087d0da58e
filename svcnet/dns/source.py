"""Where the zone's objects come from: the Kubernetes API (informers) or manifest files.

ApiSource runs one svcnet.client Informer per kind (Namespaces, Services,
EndpointSlices, and Pods when the pod mode is `verified`, as CoreDNS only
watches pods then). Every event updates ZoneData and tells the Resolver which
answers to drop; until every informer has listed once, name errors are
SERVFAIL. While the API is unreachable the informers keep their caches and
retry, so the last known data keeps being served.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from svcnet.api.objects import annotations_of
from svcnet.api.resources import lookup
from svcnet.client.config import ClientConfig
from svcnet.client.informer import Informer
from svcnet.client.rest import ApiClient
from svcnet.dns.resolver import Resolver
from svcnet.dns.zone import LAST_CHANGE_TRIGGER, ZoneData

log = logging.getLogger("svcnet.dns.source")
Obj = dict[str, Any]


def load_manifests(paths: Iterable[str | Path]) -> list[Obj]:
    """Every object in the YAML/JSON files (multi-document, `kind: List` unpacked)."""
    objects: list[Obj] = []
    for path in paths:
        for doc in yaml.safe_load_all(Path(path).read_text()):
            if not isinstance(doc, dict):
                continue
            if doc.get("kind") == "List" or (doc.get("kind", "").endswith("List") and "items" in doc):
                objects.extend(item for item in doc.get("items") or [] if isinstance(item, dict))
            else:
                objects.append(doc)
    return objects


def programming_delay(obj: Obj, now: datetime) -> float | None:
    """Seconds from the change that triggered an EndpointSlice to now (CoreDNS's programming metric)."""
    stamp = annotations_of(obj).get(LAST_CHANGE_TRIGGER)
    if not stamp:
        return None
    try:
        when = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        return None
    return max(0.0, (now - when).total_seconds())


KIND_RESOURCES = (("Namespace", ("", "v1", "namespaces")), ("Service", ("", "v1", "services")),
                  ("EndpointSlice", ("discovery.k8s.io", "v1", "endpointslices")),
                  ("Pod", ("", "v1", "pods")))


class ApiSource:
    def __init__(self, config: ClientConfig, data: ZoneData, resolver: Resolver, *,
                 watch_pods: bool) -> None:
        self.config = config
        self.data = data
        self.resolver = resolver
        self.watch_pods = watch_pods
        self.client = ApiClient(config, component="dns")
        self.informers: list[tuple[str, Informer]] = []

    async def start(self) -> None:
        await self.client.open()
        for kind, (group, version, plural) in KIND_RESOURCES:
            if kind == "Pod" and not self.watch_pods:
                continue
            resource = lookup(group, version, plural)
            assert resource is not None, plural
            informer = Informer(self.client, resource)
            informer.add_handler(on_add=self._handler(kind), on_update=self._updater(kind),
                                 on_delete=self._handler(kind, deleted=True))
            self.informers.append((kind, informer))
            informer.start()

    async def wait_synced(self) -> None:
        await asyncio.gather(*(i.wait_synced() for _, i in self.informers))
        self.data.synced = True
        self.data.touch()
        self.resolver.zone_changed(None)
        log.info("synced: %d services, %d namespaces", len(self.data.services), len(self.data.namespaces))

    async def stop(self) -> None:
        for _, informer in self.informers:
            await informer.stop()
        with contextlib.suppress(Exception):
            await self.client.close()

    def _handler(self, kind: str, deleted: bool = False):
        def handle(obj: Obj) -> None:
            self._apply(kind, obj, deleted)
        return handle

    def _updater(self, kind: str):
        def handle(old: Obj, new: Obj) -> None:
            self._apply(kind, new, False)
        return handle

    def _apply(self, kind: str, obj: Obj, deleted: bool) -> None:
        tags = self.data.apply(kind, obj, deleted)
        self.resolver.zone_changed(tags)
        if kind == "EndpointSlice" and not deleted and self.data.synced:
            delay = programming_delay(obj, datetime.now().astimezone())
            if delay is not None:
                self.resolver.metrics.programming.observe(delay)
