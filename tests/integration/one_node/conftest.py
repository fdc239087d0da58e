"""One `svcnet up --nodes 1` cluster for the package: its modules need a node and nothing special of it.

Bringing a cluster up and down costs ~10 s; these modules' own checks cost less than that each, so
they share one. Each module's `cluster` fixture deletes what the module made, and waits until it
is gone, before the next module starts (test_pod_density compares the node's namespaces, veths and
leases with what it found). The cluster is brought down (and swept) after the package, pass or fail.
"""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.cluster_fixture import SvcnetCluster, running_cluster


@pytest.fixture(scope="package")
def one_node_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SvcnetCluster]:
    with running_cluster(tmp_path_factory.mktemp("one-node"), nodes=1) as c:
        yield c
