"""The ReplicationController controller: the ReplicaSet controller over core/v1 ReplicationControllers.

As upstream's pkg/controller/replication, which wraps the ReplicaSet controller: the same
claiming, slow-start creates, deletion ranking and status (svcnet.core.replicaset), with the
RC's equality-based selector (a plain label map) in place of a LabelSelector.
"""
from __future__ import annotations

from typing import Any

from svcnet.api.objects import spec_of
from svcnet.api.selectors import LabelSelector, selector_from_set
from svcnet.controllers.base import resource
from svcnet.controllers.replicaset import ReplicaSetController

REPLICATIONCONTROLLERS = resource("", "replicationcontrollers")


class ReplicationControllerController(ReplicaSetController):
    name = "replication-controller"
    workers = 5  # kube-controller-manager's --concurrent-rc-syncs
    owner_resource = REPLICATIONCONTROLLERS
    owner_kind = "ReplicationController"

    @staticmethod
    def selector_of(owner: dict[str, Any]) -> LabelSelector:
        # An RC with no selector selects nothing (validation requires one; defaulting copies
        # the template's labels into it), never every pod of its namespace.
        selector = spec_of(owner).get("selector")
        if not selector:
            return LabelSelector(matches_nothing=True)
        return selector_from_set(selector)
