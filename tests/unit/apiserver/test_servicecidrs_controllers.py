"""The default ServiceCIDR and the service-cidr finalizer (servicecidrs.py) over the real registry."""
from __future__ import annotations

import datetime as dt

import pytest

from svcnet.api.errors import ApiError
from svcnet.apiserver import servicecidrs as sc
from svcnet.apiserver.daemon import ensure_kubernetes_service
from svcnet.apiserver.registry import DeleteOptions, Registry, WriteOptions
from svcnet.config import ApiServerConfig

from .conftest import T0

SINGLE = ("10.96.0.0/12",)
DUAL = ("10.96.0.0/12", "fd00:10:96::/112")


def get(registry: Registry, name: str) -> dict | None:
    try:
        return registry.get(sc.SERVICE_CIDRS, None, name)
    except ApiError as exc:
        assert exc.code == 404
        return None


def create(registry: Registry, name: str, *cidrs: str) -> None:
    registry.create(sc.SERVICE_CIDRS, None, {"metadata": {"name": name}, "spec": {"cidrs": list(cidrs)}},
                    WriteOptions(field_manager="kubectl"))


def ready(obj: dict) -> tuple[str, str, str]:
    cond = sc.ready_condition(obj)
    assert cond is not None
    return cond["status"], cond["reason"], cond["message"]


def at(registry: Registry, seconds: float) -> None:
    registry.clock = lambda: T0 + dt.timedelta(seconds=seconds)


def test_the_default_is_created_from_the_configured_ranges_ready_and_protected(registry: Registry) -> None:
    sc.reconcile(registry, ("10.96.0.1/12", "fd00:10:96::/112"))
    default = get(registry, "kubernetes")
    assert default is not None
    assert default["spec"]["cidrs"] == ["10.96.0.0/12", "fd00:10:96::/112"]  # as net.IPNet prints them
    assert default["metadata"]["finalizers"] == [sc.FINALIZER]
    assert ready(default) == ("True", "", sc.READY_MESSAGE)

    revision = registry.store.current_revision()
    assert sc.reconcile(registry, DUAL) == sc.INTERVAL_SECONDS
    assert registry.store.current_revision() == revision  # a settled pass writes nothing


def test_a_second_range_upgrades_the_default_to_dual_stack(registry: Registry) -> None:
    sc.reconcile(registry, SINGLE)
    assert get(registry, "kubernetes")["spec"]["cidrs"] == ["10.96.0.0/12"]
    sc.reconcile(registry, DUAL)
    assert get(registry, "kubernetes")["spec"]["cidrs"] == list(DUAL)


def test_a_default_that_differs_from_the_configuration_is_left_alone(registry: Registry) -> None:
    create(registry, "kubernetes", "10.0.0.0/24")
    sc.reconcile(registry, DUAL)
    assert get(registry, "kubernetes")["spec"]["cidrs"] == ["10.0.0.0/24"]


def test_every_servicecidr_gets_the_finalizer_and_ready(registry: Registry) -> None:
    sc.reconcile(registry, SINGLE)
    create(registry, "extra", "10.100.0.0/16")
    sc.reconcile(registry, SINGLE)
    extra = get(registry, "extra")
    assert extra["metadata"]["finalizers"] == [sc.FINALIZER]
    assert ready(extra) == ("True", "", sc.READY_MESSAGE)


def test_deleting_the_default_waits_while_the_kubernetes_service_holds_its_ip(registry: Registry) -> None:
    ensure_kubernetes_service(registry, ApiServerConfig())  # default/kubernetes at 10.96.0.1
    sc.reconcile(registry, DUAL)
    registry.delete(sc.SERVICE_CIDRS, None, "kubernetes", DeleteOptions())
    at(registry, 60)
    sc.reconcile(registry, DUAL)
    default = get(registry, "kubernetes")
    assert default["metadata"]["deletionTimestamp"]
    assert default["metadata"]["finalizers"] == [sc.FINALIZER]
    assert ready(default) == ("False", "Terminating", sc.IN_USE_MESSAGE)


def test_a_freed_servicecidr_goes_after_the_grace_period_and_the_default_comes_back(registry: Registry) -> None:
    sc.reconcile(registry, SINGLE)
    registry.delete(sc.SERVICE_CIDRS, None, "kubernetes", DeleteOptions())
    wait = sc.reconcile(registry, SINGLE)
    assert 0 < wait <= sc.DELETION_GRACE_SECONDS
    assert get(registry, "kubernetes")["metadata"]["deletionTimestamp"]  # still in its grace period
    at(registry, sc.DELETION_GRACE_SECONDS + 1)
    sc.reconcile(registry, SINGLE)  # the finalizer goes, so does the object ...
    sc.reconcile(registry, SINGLE)  # ... and the next pass recreates it
    again = get(registry, "kubernetes")
    assert again is not None and "deletionTimestamp" not in again["metadata"]
    assert ready(again) == ("True", "", sc.READY_MESSAGE)


def test_a_servicecidr_inside_another_may_go_even_with_ips_in_use(registry: Registry) -> None:
    ensure_kubernetes_service(registry, ApiServerConfig())
    sc.reconcile(registry, SINGLE)
    create(registry, "inner", "10.96.0.0/24")
    sc.reconcile(registry, SINGLE)
    registry.delete(sc.SERVICE_CIDRS, None, "inner", DeleteOptions())
    at(registry, sc.DELETION_GRACE_SECONDS + 1)
    sc.reconcile(registry, SINGLE)
    assert get(registry, "inner") is None


@pytest.mark.parametrize(("mine", "others", "in_use", "blocker"), [
    (["10.96.0.0/12"], [], ["10.96.0.1"], "10.96.0.1"),
    (["10.96.0.0/12"], [], ["10.200.0.1", "fd00::1"], None),  # nothing of its own in use
    (["10.96.0.0/12"], [["10.96.0.0/24"]], ["10.96.0.1"], None),  # the IP is in another ServiceCIDR
    (["10.96.0.0/12"], [["10.96.0.0/24"]], ["10.96.1.1"], "10.96.1.1"),
    (["10.96.0.0/24"], [["10.96.0.0/12"]], ["10.96.0.1"], None),  # a parent covers it all
    (["10.96.0.0/24", "fd00::/64"], [["10.96.0.0/12"]], ["fd00::5"], "fd00::5"),
])
def test_deletion_blocker(mine: list, others: list, in_use: list, blocker: str | None) -> None:
    obj = {"metadata": {"name": "me"}, "spec": {"cidrs": mine}}
    all_cidrs = [obj] + [{"metadata": {"name": f"o{i}"}, "spec": {"cidrs": c}} for i, c in enumerate(others)]
    assert sc.deletion_blocker(obj, all_cidrs, in_use) == blocker


def test_cluster_ips_are_every_family_and_never_none() -> None:
    services = [{"spec": {"clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1", "fd00::1"]}},
                {"spec": {"clusterIP": "None", "clusterIPs": ["None"]}},
                {"spec": {"type": "ExternalName"}},
                {"spec": {"clusterIP": "10.96.0.10"}}]
    assert sc.cluster_ips(services) == ["10.96.0.1", "fd00::1", "10.96.0.10"]


def test_ready_keeps_its_transition_time_while_the_status_holds() -> None:
    obj = {"status": {"conditions": [{"type": "Other", "status": "True"},
                                     {"type": "Ready", "status": "True", "reason": "", "message": "old",
                                      "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}
    new = sc.with_ready(obj, "True", "", "new", "2026-02-02T00:00:00Z")
    assert new["status"]["conditions"] == [
        {"type": "Other", "status": "True"},
        {"type": "Ready", "status": "True", "reason": "", "message": "new", "lastTransitionTime": "2026-01-01T00:00:00Z"}]
    assert sc.with_ready(new, "True", "", "new", "2026-03-03T00:00:00Z") is None
    flipped = sc.with_ready(new, "False", "Terminating", "m", "2026-03-03T00:00:00Z")
    assert sc.ready_condition(flipped)["lastTransitionTime"] == "2026-03-03T00:00:00Z"
