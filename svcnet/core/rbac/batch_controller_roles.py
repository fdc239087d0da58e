"""The controller roles of the Job, CronJob and TTL-after-finished controllers, as upstream's
bootstrap policy (plugin/pkg/auth/authorizer/rbac/bootstrappolicy/controller_policy.go) defines
system:controller:job-controller, cronjob-controller and ttl-after-finished-controller.

Kept in a module of their own so the policy that binds the controller manager's credential to
each controller's role (bootstrap.CONTROLLER_ROLES and cluster/identities.CONTROLLER_ROLE_OF)
takes them with one `update` each.
"""
from __future__ import annotations

from .rules import Rule

_EVENTS = Rule(("create", "patch", "update"), ("", "events.k8s.io"), ("events",))

BATCH_CONTROLLER_ROLES: dict[str, list[Rule]] = {
    "cronjob-controller": [
        Rule(("get", "list", "watch", "update"), ("batch",), ("cronjobs",)),
        Rule(("get", "list", "watch", "create", "update", "delete", "patch"), ("batch",), ("jobs",)),
        Rule(("update",), ("batch",), ("cronjobs/status",)),
        Rule(("update",), ("batch",), ("cronjobs/finalizers",)),
        Rule(("list", "delete"), ("",), ("pods",)),
        _EVENTS,
    ],
    "job-controller": [
        Rule(("get", "list", "watch", "update", "patch"), ("batch",), ("jobs",)),
        Rule(("update",), ("batch",), ("jobs/status",)),
        Rule(("update",), ("batch",), ("jobs/finalizers",)),
        Rule(("list", "watch", "create", "delete", "patch"), ("",), ("pods",)),
        _EVENTS,
    ],
    "ttl-after-finished-controller": [
        Rule(("get", "list", "watch", "delete"), ("batch",), ("jobs",)),
        _EVENTS,
    ],
}

# svcnet's controller names (svcnet.controllers.CONTROLLERS) -> the upstream role each one needs.
BATCH_CONTROLLER_ROLE_OF: dict[str, str] = {
    "job": "job-controller",
    "cronjob": "cronjob-controller",
    "ttlafterfinished": "ttl-after-finished-controller",
}
