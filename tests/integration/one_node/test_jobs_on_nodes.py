"""Jobs on a real node (root, real namespaces, real kubectl): `svcnet up --nodes 1`.

The node agent runs the pods' `sh -c 'exit N'` processes; a container that exits
under restartPolicy Never ends the pod Succeeded (0) or Failed (non-zero), which is
what the Job controller counts.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.cluster_fixture import SvcnetCluster
from tests.waiting import wait_for

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("ip", "nsenter", "kubectl")),
    reason="needs root (network namespaces), ip, nsenter and kubectl")


@pytest.fixture(scope="module")
def cluster(one_node_cluster: SvcnetCluster) -> Iterator[SvcnetCluster]:
    """The package's cluster; the module's Jobs and their pods deleted (and gone) afterwards."""
    yield one_node_cluster
    one_node_cluster.kubectl("delete", "job", "zero", "nonzero", "--ignore-not-found", "--cascade=foreground",
                             "--wait=true", "--timeout=120s")


def job(cluster: SvcnetCluster, name: str) -> dict[str, Any]:
    return cluster.kubectl_json("get", "job", name)


def true_conditions(obj: dict[str, Any]) -> set[str]:
    return {c["type"] for c in obj.get("status", {}).get("conditions", []) if c.get("status") == "True"}


def test_pods_that_exit_zero_complete_the_job(cluster: SvcnetCluster) -> None:
    cluster.kubectl("create", "job", "zero", "--image=busybox", "--", "sh", "-c", "exit 0")
    done = wait_for(lambda: (j := job(cluster, "zero")) and "Complete" in true_conditions(j) and j,
                    timeout=120, interval=0.5, what="job zero Complete")
    assert done["status"]["succeeded"] == 1
    (pod,) = cluster.pods("batch.kubernetes.io/job-name=zero")
    assert pod["status"]["phase"] == "Succeeded"
    assert not pod["metadata"].get("finalizers")
    assert cluster.kubectl("get", "job", "zero", "--no-headers").stdout.split()[1:3] == ["Complete", "1/1"]


def test_a_pod_that_exits_non_zero_fails_a_job_without_retries(cluster: SvcnetCluster) -> None:
    manifest = """\
apiVersion: batch/v1
kind: Job
metadata:
  name: nonzero
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: c
        image: busybox
        command: ["sh", "-c", "exit 3"]
"""
    cluster.kubectl("apply", "-f", "-", input=manifest)
    failed = wait_for(lambda: (j := job(cluster, "nonzero")) and "Failed" in true_conditions(j) and j,
                      timeout=120, interval=0.5, what="job nonzero Failed")
    assert failed["status"]["failed"] == 1
    (pod,) = cluster.pods("batch.kubernetes.io/job-name=nonzero")
    assert pod["status"]["phase"] == "Failed"
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 3
