"""The batch controllers' roles allow every request those controllers make, and nothing on
other kinds' objects (so binding the controller manager to them is enough, and not too much)."""
from __future__ import annotations

import pytest

from svcnet.controllers import CONTROLLERS
from svcnet.core.rbac.attributes import Attributes
from svcnet.core.rbac.batch_controller_roles import BATCH_CONTROLLER_ROLE_OF, BATCH_CONTROLLER_ROLES
from svcnet.core.rbac.identity import User
from svcnet.core.rbac.rules import rule_allows

MANAGER = User("system:kube-controller-manager")

# (verb, group, resource, subresource) of each request the controller sends (svcnet/controllers/*.py)
REQUESTS = {
    "job": [("get", "batch", "jobs", ""), ("list", "batch", "jobs", ""), ("watch", "batch", "jobs", ""),
            ("update", "batch", "jobs", "status"), ("list", "", "pods", ""), ("watch", "", "pods", ""),
            ("create", "", "pods", ""), ("delete", "", "pods", ""), ("patch", "", "pods", ""),
            ("create", "", "events", ""), ("patch", "", "events", "")],
    "cronjob": [("list", "batch", "cronjobs", ""), ("watch", "batch", "cronjobs", ""),
                ("update", "batch", "cronjobs", "status"), ("list", "batch", "jobs", ""),
                ("watch", "batch", "jobs", ""), ("get", "batch", "jobs", ""), ("create", "batch", "jobs", ""),
                ("delete", "batch", "jobs", ""), ("create", "", "events", "")],
    "ttlafterfinished": [("list", "batch", "jobs", ""), ("watch", "batch", "jobs", ""), ("get", "batch", "jobs", ""),
                         ("delete", "batch", "jobs", ""), ("create", "", "events", "")],
}


def allowed(controller: str, verb: str, group: str, resource: str, subresource: str = "") -> bool:
    attrs = Attributes(MANAGER, verb, True, namespace="default", api_group=group, api_version="v1",
                       resource=resource, subresource=subresource)
    return any(rule_allows(attrs, rule) for rule in BATCH_CONTROLLER_ROLES[BATCH_CONTROLLER_ROLE_OF[controller]])


@pytest.mark.parametrize(("controller", "request_"), [(c, r) for c, rs in REQUESTS.items() for r in rs])
def test_every_request_of_the_controller_is_allowed(controller: str, request_: tuple[str, str, str, str]) -> None:
    assert allowed(controller, *request_)


@pytest.mark.parametrize(("controller", "request_"), [
    ("job", ("update", "batch", "cronjobs", "status")),
    ("job", ("get", "", "secrets", "")),
    ("cronjob", ("create", "", "pods", "")),
    ("ttlafterfinished", ("delete", "", "pods", "")),
])
def test_nothing_beyond_upstreams_role(controller: str, request_: tuple[str, str, str, str]) -> None:
    assert not allowed(controller, *request_)


def test_every_batch_controller_has_a_role() -> None:
    assert {"job", "cronjob", "ttlafterfinished"} <= set(CONTROLLERS)
    assert set(BATCH_CONTROLLER_ROLE_OF.values()) == set(BATCH_CONTROLLER_ROLES)
