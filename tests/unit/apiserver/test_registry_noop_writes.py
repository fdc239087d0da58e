"""Writes that change nothing but managedFields times keep the resourceVersion, with the
managedFields tracker of the real server wired in (a later clock gives every entry a new time)."""
from __future__ import annotations

import copy
import datetime as dt

import pytest

from svcnet.api.resources import lookup
from svcnet.apiserver.registry import WriteOptions

from .conftest import T0

PODS = lookup("", "v1", "pods")


def pod() -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx"}]}}


@pytest.mark.parametrize(("change", "kept"), [
    pytest.param(lambda obj: None, True, id="same-content"),
    pytest.param(lambda obj: obj["metadata"].pop("resourceVersion"), True, id="without-resource-version"),
    pytest.param(lambda obj: obj["metadata"]["labels"].update(tier="front"), False, id="new-label"),
    pytest.param(lambda obj: obj["spec"]["containers"][0].update(image="nginx:2"), False, id="new-image"),
])
def test_update_keeps_the_resource_version_only_when_nothing_but_times_change(registry, change, kept) -> None:
    created = registry.create(PODS, "default", pod(), WriteOptions(field_manager="first"))
    registry.clock = lambda: T0 + dt.timedelta(hours=1)
    body = copy.deepcopy(created)
    change(body)
    updated, _ = registry.update(PODS, "default", "web", body, WriteOptions(field_manager="first"))
    same_rv = updated["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    assert same_rv is kept
    if kept:
        assert updated == created
