"""Two `svcnet controllers` against one API server: only the Lease's holder acts, and when it
is killed (-9: no release) the other takes over once the lease expires, then acts.

Short durations (a 3 s lease, 2 s renew deadline, 0.5 s retry period), waited on with deadlines.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.apiserver_harness import REPO, ApiServerProcess, stop_process
from tests.waiting import wait_for

LEASE = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-controller-manager"
ACQUIRED = "successfully acquired lease kube-system/kube-controller-manager"
ACTING = "controllers running"


class Instance:
    def __init__(self, server: ApiServerProcess, name: str) -> None:
        self.log = server.data_dir.parent / f"controllers-{name}.log"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "svcnet", "controllers", "--data-dir", str(server.data_dir),
                 "--controllers", "deployment,replicaset", "--leader-elect-lease-duration=3s",
                 "--leader-elect-renew-deadline=2s", "--leader-elect-retry-period=500ms"],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=REPO)

    def text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""



@pytest.fixture
def two_instances(apiserver: ApiServerProcess) -> Iterator[list[Instance]]:
    instances: list[Instance] = []
    try:
        instances.append(Instance(apiserver, "a"))
        instances.append(Instance(apiserver, "b"))
        yield instances
    finally:
        for instance in instances:
            stop_process(instance.proc)


def deployment(replicas: int) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": "serve_hostname"}]}}}}


def lease_spec(server: ApiServerProcess) -> dict[str, Any]:
    status, body = server.request("GET", LEASE)
    assert status == 200, body
    return body["spec"]


def replica_sets(server: ApiServerProcess) -> list[dict[str, Any]]:
    status, body = server.request("GET", "/apis/apps/v1/namespaces/default/replicasets")
    assert status == 200, body
    return body["items"]


def test_only_the_leader_acts_and_the_standby_takes_over_when_it_is_killed(
        apiserver: ApiServerProcess, two_instances: list[Instance]) -> None:
    leader = wait_for(lambda: next((i for i in two_instances if ACQUIRED in i.text()), None), timeout=60,
                      what="one instance to acquire the lease")
    standby = next(i for i in two_instances if i is not leader)
    wait_for(lambda: ACTING in leader.text(), timeout=60, what="the leader's controllers to run")
    assert apiserver.request("POST", "/apis/apps/v1/namespaces/default/deployments", deployment(1))[0] == 201
    wait_for(lambda: len(replica_sets(apiserver)) == 1, timeout=30, what="the leader to create the ReplicaSet")
    first = lease_spec(apiserver)
    assert first["leaseDurationSeconds"] == 3 and first["leaseTransitions"] == 0
    wait_for(lambda: standby.proc.poll() is None and "attempting to acquire leader lease" in standby.text(),
             timeout=60, what="the standby to be trying")
    assert ACQUIRED not in standby.text() and ACTING not in standby.text()

    leader.proc.send_signal(signal.SIGKILL)  # no release: the lease has to expire
    leader.proc.wait(timeout=10)
    killed_at = time.monotonic()
    wait_for(lambda: ACQUIRED in standby.text(), timeout=60, what="the standby to take over")
    took = time.monotonic() - killed_at
    after = lease_spec(apiserver)
    assert after["holderIdentity"] != first["holderIdentity"] and after["leaseTransitions"] == 1
    print(f"takeover {took:.1f} s after the kill (lease 3 s, retry 0.5 s)")

    # The new leader acts: a scale reaches the ReplicaSet.
    status, _ = apiserver.request("PATCH", "/apis/apps/v1/namespaces/default/deployments/web",
                                  {"spec": {"replicas": 3}}, content_type="application/merge-patch+json")
    assert status == 200
    wait_for(lambda: replica_sets(apiserver)[0]["spec"]["replicas"] == 3, timeout=30,
             what="the new leader to scale the ReplicaSet")
    assert len(replica_sets(apiserver)) == 1
