"""The service accounts a namespace is missing: (namespace, existing accounts) -> accounts to create."""
from __future__ import annotations

import pytest

from svcnet.core.serviceaccounts import missing_service_accounts


def ns(name: str, phase: str | None) -> dict:
    return {"metadata": {"name": name}, **({"status": {"phase": phase}} if phase else {})}


@pytest.mark.parametrize(("namespace", "existing", "created"), [
    (ns("team-a", "Active"), set(), ["default"]),
    (ns("team-a", None), set(), ["default"]),  # not yet given a phase: Active by default
    (ns("team-a", "Active"), {"default"}, []),
    (ns("team-a", "Active"), {"builder"}, ["default"]),
    (ns("team-a", "Terminating"), set(), []),
    (None, set(), []),
])
def test_missing_service_accounts(namespace, existing, created):
    bodies = missing_service_accounts(namespace, lambda name: name in existing)
    assert [b["metadata"]["name"] for b in bodies] == created
    assert all(b["metadata"]["namespace"] == "team-a" and b["kind"] == "ServiceAccount" for b in bodies)
