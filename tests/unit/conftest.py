"""Fixtures the unit tests of several rooms share."""
from __future__ import annotations

from typing import Any

import pytest

from svcnet.cluster.topology import apply_topology, plan_topology
from svcnet.testing.links import FakeNetworkKernel


@pytest.fixture
def two_hosts() -> tuple[FakeNetworkKernel, Any]:
    """`svcnet up --hosts 2 --nodes 3`'s topology laid out on a fake kernel: (the kernel, the plan)."""
    kernel = FakeNetworkKernel()
    plan = plan_topology("abc", 3, hosts=2)
    apply_topology(kernel, plan)
    return kernel, plan
