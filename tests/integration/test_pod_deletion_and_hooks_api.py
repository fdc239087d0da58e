"""kubectl against a real API server: a second, shorter `kubectl delete` of a terminating pod, and
lifecycle hooks refused in kube-apiserver's words. No node agent runs, so a pod bound to a node
stays terminating until it is deleted with grace 0 (as a pod whose node never answers).
"""
from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator

import pytest

from tests.integration.apiserver_harness import ApiServerProcess, free_port, kubectl_available

pytestmark = pytest.mark.skipif(not kubectl_available(), reason="needs kubectl")


@pytest.fixture(scope="module")
def apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServerProcess]:
    tmp = tmp_path_factory.mktemp("apiserver")
    (tmp / "home").mkdir()
    server = ApiServerProcess(data_dir=tmp / "data", port=free_port(), home=tmp / "home")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def bound_pod(name: str, lifecycle: dict | None = None) -> str:
    container: dict = {"name": "app", "image": "k8s.gcr.io/serve_hostname"}
    if lifecycle is not None:
        container["lifecycle"] = lifecycle
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                       "spec": {"nodeName": "node-1", "containers": [container]}})


def deletion(server: ApiServerProcess, name: str) -> tuple[dt.datetime, int]:
    md = server.kubectl_json("get", "pod", name)["metadata"]
    when = dt.datetime.strptime(md["deletionTimestamp"], "%Y-%m-%dT%H:%M:%SZ")
    return when, md["deletionGracePeriodSeconds"]


def test_a_second_shorter_kubectl_delete_shortens_the_grace_period(apiserver: ApiServerProcess) -> None:
    apiserver.kubectl("create", "-f", "-", input=bound_pod("slow"))
    assert 'pod "slow" deleted' in apiserver.kubectl("delete", "pod", "slow", "--wait=false").stdout
    first, grace = deletion(apiserver, "slow")
    assert grace == 30

    apiserver.kubectl("delete", "pod", "slow", "--grace-period=5", "--wait=false")
    when, grace = deletion(apiserver, "slow")
    assert grace == 5 and first - when == dt.timedelta(seconds=25)  # counted from when the deletion began

    apiserver.kubectl("delete", "pod", "slow", "--grace-period=20", "--wait=false")  # longer: ignored
    assert deletion(apiserver, "slow") == (when, 5)

    forced = apiserver.kubectl("delete", "pod", "slow", "--force", "--grace-period=0")
    assert 'pod "slow" force deleted' in forced.stdout
    gone = apiserver.kubectl("get", "pod", "slow", check=False)
    assert gone.returncode == 1 and 'pods "slow" not found' in gone.stderr


def test_kubectl_shows_a_zero_second_pre_stop_sleep_refused(apiserver: ApiServerProcess) -> None:
    result = apiserver.kubectl("create", "-f", "-", check=False,
                               input=bound_pod("nap", {"preStop": {"sleep": {"seconds": 0}}}))
    assert result.returncode == 1
    assert ('The Pod "nap" is invalid: spec.containers[0].lifecycle.preStop.sleep: Invalid value: 0: must be '
            'greater than 0 and less than terminationGracePeriodSeconds (30). Enable '
            'AllowPodLifecycleSleepActionZeroValue feature gate for zero sleep.') in result.stderr
    result = apiserver.kubectl("create", "-f", "-", check=False, input=bound_pod(
        "both", {"postStart": {"exec": {"command": ["true"]}, "httpGet": {"port": 9376}}}))
    assert ('The Pod "both" is invalid: spec.containers[0].lifecycle.postStart.httpGet: Forbidden: may not '
            'specify more than 1 handler type') in result.stderr
    assert apiserver.kubectl("get", "pods", "-o", "name").stdout.strip() == ""
