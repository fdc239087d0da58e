"""The controller roles of the DaemonSet, ReplicationController and persistent-volume controllers:
every one svcnet runs has upstream's role, and each role grants the writes that controller makes."""
from __future__ import annotations

from svcnet import controllers
from svcnet.core.rbac.bootstrap import PRUNE_ALLOWLIST_CONTROLLER_ROLE_OF, PRUNE_ALLOWLIST_CONTROLLER_ROLES


def allows(role: str, verb: str, group: str, resource: str) -> bool:
    return any(verb in r.verbs and group in r.api_groups and resource in r.resources
               for r in PRUNE_ALLOWLIST_CONTROLLER_ROLES[role])


def test_each_new_controller_is_registered_and_has_its_upstream_role():
    for name, role in PRUNE_ALLOWLIST_CONTROLLER_ROLE_OF.items():
        assert name in controllers.CONTROLLERS, name
        assert role in PRUNE_ALLOWLIST_CONTROLLER_ROLES, role


def test_the_roles_grant_what_the_controllers_write():
    assert all(allows("daemon-set-controller", v, "", "pods") for v in ("create", "delete", "patch"))
    assert allows("daemon-set-controller", "update", "apps", "daemonsets/status")
    assert allows("replication-controller", "get", "", "replicationcontrollers")  # the adopt recheck
    assert allows("replication-controller", "update", "", "replicationcontrollers/status")
    for resource in ("persistentvolumes", "persistentvolumes/status", "persistentvolumeclaims",
                     "persistentvolumeclaims/status"):
        assert allows("persistent-volume-binder", "update", "", resource), resource
    assert allows("pv-protection-controller", "update", "", "persistentvolumes")
    assert allows("pvc-protection-controller", "update", "", "persistentvolumeclaims")
    assert all(allows(role, "create", "", "events") for role in PRUNE_ALLOWLIST_CONTROLLER_ROLES)
