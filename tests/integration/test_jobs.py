"""Jobs and CronJobs through the real kubectl, with `svcnet controllers` running.

Tests play kubelet (tests/integration/kubelet_double.py): a Ready node is registered
and a job's pods are ended through the status subresource, Succeeded with exit code 0
or Failed with 1, as the node agent reports a container that exits under
restartPolicy Never. The CronJob test runs the CronJob controller in the test's own
process with a settable clock, so the schedule time comes without waiting a minute.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import re
from typing import Any

import pytest

from svcnet.client.config import load_kubeconfig
from svcnet.client.rest import ApiClient
from svcnet.controllers.base import InformerFactory
from svcnet.controllers.cronjob import CronJobController
from tests.integration.apiserver_harness import ApiServerProcess, kubectl_available
from tests.integration.kubelet_double import NOW, register_node
from tests.waiting import wait_for

pytestmark = [pytest.mark.kubectl,
              pytest.mark.skipif(not kubectl_available(), reason="kubectl is not installed")]

PODS = "/api/v1/namespaces/default/pods"
JOBS = "/apis/batch/v1/namespaces/default/jobs"


def job_pods(server: ApiServerProcess, job: str) -> list[dict[str, Any]]:
    status, body = server.request("GET", f"{PODS}?labelSelector=batch.kubernetes.io/job-name={job}")
    assert status == 200, body
    return body["items"]


def get_job(server: ApiServerProcess, name: str) -> dict[str, Any] | None:
    status, body = server.request("GET", f"{JOBS}/{name}")
    return body if status == 200 else None


def end_pod(server: ApiServerProcess, pod: dict[str, Any], exit_code: int) -> bool:
    """Kubelet's report of a container that exited under restartPolicy Never: phase from the code."""
    name = pod["metadata"]["name"]
    pod["status"] = {
        "phase": "Succeeded" if exit_code == 0 else "Failed",
        "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": NOW}],
        "containerStatuses": [{"name": c["name"], "image": c.get("image", ""), "imageID": "", "ready": False,
                               "restartCount": 0, "started": False,
                               "state": {"terminated": {"exitCode": exit_code,
                                                        "reason": "Completed" if exit_code == 0 else "Error",
                                                        "finishedAt": NOW}}}
                              for c in pod["spec"]["containers"]],
    }
    status, body = server.request("PUT", f"{PODS}/{name}/status", pod)
    return status == 200


def end_running_pods(server: ApiServerProcess, job: str, exit_code: int) -> int:
    ended = 0
    for pod in job_pods(server, job):
        if pod.get("status", {}).get("phase") not in ("Succeeded", "Failed") and end_pod(server, pod, exit_code):
            ended += 1
    return ended


def condition_types(job: dict[str, Any] | None) -> set[str]:
    return {c["type"] for c in (job or {}).get("status", {}).get("conditions", []) if c.get("status") == "True"}


@pytest.fixture
def cluster(control_plane: ApiServerProcess) -> ApiServerProcess:
    register_node(control_plane, "node-1", "10.244.1.0/24", "192.168.0.106")
    return control_plane


def test_kubectl_create_job_runs_to_complete_and_delete_cascades(cluster: ApiServerProcess) -> None:
    out = cluster.kubectl("create", "job", "hello", "--image=busybox", "--", "sh", "-c", "exit 0")
    assert out.stdout.strip() == "job.batch/hello created"
    (pod,) = wait_for(lambda: job_pods(cluster, "hello") or None, what="the job's pod")
    assert "batch.kubernetes.io/job-tracking" in pod["metadata"]["finalizers"]
    assert pod["spec"]["restartPolicy"] == "Never"
    wait_for(lambda: end_running_pods(cluster, "hello", 0) or None, what="the pod ended")
    done = wait_for(lambda: (j := get_job(cluster, "hello")) and "Complete" in condition_types(j) and j,
                    what="the job Complete")
    assert done["status"]["succeeded"] == 1
    assert condition_types(done) == {"SuccessCriteriaMet", "Complete"}
    wait_for(lambda: not job_pods(cluster, "hello")[0]["metadata"].get("finalizers"), what="the finalizer gone")

    header, row = cluster.kubectl("get", "jobs").stdout.splitlines()
    assert header.split() == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    assert row.split()[:3] == ["hello", "Complete", "1/1"]
    described = cluster.kubectl("describe", "job", "hello").stdout
    assert "Completions:" in described and "SuccessfulCreate" in described
    assert "batch.kubernetes.io/controller-uid=" in described

    assert 'job.batch "hello" deleted' in cluster.kubectl("delete", "job", "hello").stdout
    wait_for(lambda: not job_pods(cluster, "hello"), what="the job's pods collected")


def test_failures_beyond_backoff_limit_fail_the_job(cluster: ApiServerProcess) -> None:
    manifest = """\
apiVersion: batch/v1
kind: Job
metadata:
  name: flaky
spec:
  backoffLimit: 1
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: c
        image: busybox
        command: ["sh", "-c", "exit 3"]
"""
    cluster.kubectl("apply", "-f", "-", input=manifest)
    for attempt in (1, 2):
        wait_for(lambda n=attempt: len(job_pods(cluster, "flaky")) == n or None, timeout=60,
                 what=f"attempt {attempt}'s pod (after the failure back-off)")
        wait_for(lambda: end_running_pods(cluster, "flaky", 3) or None, what=f"attempt {attempt} failed")
    failed = wait_for(lambda: (j := get_job(cluster, "flaky")) and "Failed" in condition_types(j) and j,
                      what="the job Failed")
    assert failed["status"]["failed"] == 2
    reason = next(c["reason"] for c in failed["status"]["conditions"] if c["type"] == "Failed")
    assert reason == "BackoffLimitExceeded"
    row = cluster.kubectl("get", "job", "flaky", "--no-headers").stdout.split()
    assert row[:3] == ["flaky", "Failed", "0/1"]
    assert len(job_pods(cluster, "flaky")) == 2


def test_kubectl_create_cronjob_get_and_create_job_from_it(cluster: ApiServerProcess) -> None:
    out = cluster.kubectl("create", "cronjob", "tick", "--image=busybox", "--schedule=*/5 * * * *",
                          "--", "sh", "-c", "date")
    assert out.stdout.strip() == "cronjob.batch/tick created"
    header, row = cluster.kubectl("get", "cj").stdout.splitlines()
    assert header.split() == ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST", "SCHEDULE", "AGE"]
    assert row.split()[:7] == ["tick", "*/5", "*", "*", "*", "*", "<none>"]
    spec = cluster.kubectl_json("get", "cronjob", "tick")["spec"]
    assert (spec["concurrencyPolicy"], spec["successfulJobsHistoryLimit"], spec["failedJobsHistoryLimit"]) == (
        "Allow", 3, 1)

    described = cluster.kubectl("describe", "cronjob", "tick").stdout
    assert re.search(r"^Schedule:\s+\*/5 \* \* \* \*$", described, re.M)
    assert re.search(r"^Concurrency Policy:\s+Allow$", described, re.M)
    explained = cluster.kubectl("explain", "cronjob.spec.startingDeadlineSeconds").stdout
    assert "FIELD: startingDeadlineSeconds <integer>" in explained

    cluster.kubectl("create", "job", "manual-tick", "--from=cronjob/tick")
    manual = wait_for(lambda: get_job(cluster, "manual-tick"), what="the job from the cronjob")
    assert manual["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    assert manual["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
    wait_for(lambda: job_pods(cluster, "manual-tick") or None, what="its pod")

    bad = cluster.kubectl("create", "cronjob", "bad", "--image=busybox", "--schedule=61 * * * *", check=False)
    assert bad.returncode != 0
    assert 'spec.schedule: Invalid value: "61 * * * *": end of range (61) above maximum (59): 61' in bad.stderr


class SettableClock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        self.now += dt.timedelta(microseconds=1)  # event names come from the time
        return self.now


async def _run_cronjob_controller(server: ApiServerProcess, clock: SettableClock, condition) -> None:
    async with ApiClient(load_kubeconfig(server.kubeconfig), component="test-cronjob") as api:
        informers = InformerFactory(api)
        controller = CronJobController(api, informers, clock=clock)
        controller.setup()
        informers.start()
        await informers.wait_synced()
        task = asyncio.create_task(controller.run())
        try:
            for _ in range(600):
                if condition():
                    return
                controller.queue.add("default/every-minute")
                await asyncio.sleep(0.05)
            raise AssertionError("the CronJob controller did not create the job")
        finally:
            controller.shutdown()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await informers.stop()


def test_a_cronjob_creates_its_job_at_the_schedule_time(apiserver: ApiServerProcess) -> None:
    apiserver.kubectl("create", "cronjob", "every-minute", "--image=busybox", "--schedule=* * * * *")
    created = dt.datetime.fromisoformat(
        apiserver.kubectl_json("get", "cj", "every-minute")["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
    scheduled = created.replace(second=0) + dt.timedelta(minutes=1)
    clock = SettableClock(scheduled + dt.timedelta(seconds=2))
    name = f"every-minute-{int(scheduled.timestamp()) // 60}"
    asyncio.run(_run_cronjob_controller(apiserver, clock, lambda: get_job(apiserver, name) is not None))

    job = get_job(apiserver, name)
    assert job is not None
    assert job["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"] == \
        scheduled.strftime("%Y-%m-%dT%H:%M:%SZ")
    cj = wait_for(lambda: (c := apiserver.kubectl_json("get", "cj", "every-minute"))["status"].get("active") and c,
                  what="status.active")
    assert [a["name"] for a in cj["status"]["active"]] == [name]
    assert cj["status"]["lastScheduleTime"] == scheduled.strftime("%Y-%m-%dT%H:%M:%SZ")
    row = apiserver.kubectl("get", "cj", "every-minute", "--no-headers").stdout.split()
    assert row[1:8] == ["*", "*", "*", "*", "*", "<none>", "False"]
    assert row[8] == "1"


PRUNE_JOB = """\
apiVersion: batch/v1
kind: Job
metadata:
  name: once
  labels:
    app: x
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: c
        image: busybox
"""
PRUNE_CRONJOB = """\
apiVersion: batch/v1
kind: CronJob
metadata:
  name: nightly
  labels:
    app: x
spec:
  schedule: "@daily"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers:
          - name: c
            image: busybox
"""


def test_apply_prune_finds_and_prunes_batch_kinds(apiserver: ApiServerProcess, tmp_path) -> None:
    """kubectl's default prune allowlist names batch/v1 Job and CronJob: their REST mappings resolve
    and a Job dropped from the directory is pruned (the other default kinds are named explicitly here)."""
    manifests = tmp_path / "app"
    manifests.mkdir()
    (manifests / "job.yaml").write_text(PRUNE_JOB)
    (manifests / "cronjob.yaml").write_text(PRUNE_CRONJOB)
    allow = ["--prune-allowlist=batch/v1/Job", "--prune-allowlist=batch/v1/CronJob"]
    apiserver.kubectl("apply", "--prune", "-l", "app=x", *allow, "-f", str(manifests))
    (manifests / "job.yaml").unlink()
    out = apiserver.kubectl("apply", "--prune", "-l", "app=x", *allow, "-f", str(manifests)).stdout
    assert "job.batch/once pruned" in out
    assert "cronjob.batch/nightly unchanged" in out
    assert get_job(apiserver, "once") is None
