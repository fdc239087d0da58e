"""ServiceCIDRs through a real `svcnet apiserver` and the real kubectl: the default `kubernetes`
object from the service ranges, a second one created with `kubectl create -f`, upstream's
validation errors, watch, and the finalizer holding the default while its IPs are in use."""
from __future__ import annotations

import asyncio
import subprocess

import pytest

from svcnet.api.resources import lookup
from svcnet.client import ApiClient, Informer, load_kubeconfig
from tests.integration.apiserver_harness import KUBECTL, ApiServerProcess, LineReader, kubectl_available
from tests.waiting import until, wait_for

pytestmark = pytest.mark.skipif(not kubectl_available(), reason="kubectl is not installed")

FINALIZER = "networking.k8s.io/service-cidr-finalizer"
SECOND = """
apiVersion: networking.k8s.io/v1
kind: ServiceCIDR
metadata:
  name: second
spec:
  cidrs: [10.200.0.0/16, "fd00:200::/64"]
"""
SERVICE_IN_SECOND = """
apiVersion: v1
kind: Service
metadata:
  name: in-second
spec:
  clusterIP: 10.200.0.7
  ports: [{port: 80}]
"""
SAME_FAMILY = """
apiVersion: networking.k8s.io/v1
kind: ServiceCIDR
metadata:
  name: bad
spec:
  cidrs: [10.0.0.0/24, 10.1.0.0/24]
"""


def ready(obj: dict) -> dict:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == "Ready"), {})


def test_the_default_servicecidr_is_served_ready_from_the_configured_ranges(apiserver: ApiServerProcess) -> None:
    resources = apiserver.kubectl("api-resources", "--api-group=networking.k8s.io").stdout.splitlines()
    assert ["servicecidrs", "networking.k8s.io/v1", "false", "ServiceCIDR"] in [r.split() for r in resources[1:]]

    table = apiserver.kubectl("get", "servicecidrs").stdout.splitlines()
    assert table[0].split() == ["NAME", "CIDRS", "AGE"]
    assert table[1].split()[:2] == ["kubernetes", "10.96.0.0/12,fd00:10:96::/112"]

    [default] = apiserver.kubectl_yaml_docs("get", "servicecidr", "kubernetes", "-o", "yaml")
    assert default["apiVersion"] == "networking.k8s.io/v1" and default["kind"] == "ServiceCIDR"
    assert default["spec"] == {"cidrs": ["10.96.0.0/12", "fd00:10:96::/112"]}
    assert default["metadata"]["finalizers"] == [FINALIZER]
    assert ready(default)["status"] == "True"


def test_a_second_servicecidr_is_created_protected_and_watched(apiserver: ApiServerProcess, tmp_path) -> None:
    # kubectl lists, prints, then watches from the list's resourceVersion: once the listed
    # default is printed, the create below cannot be missed.
    watcher = subprocess.Popen([KUBECTL, "get", "servicecidrs", "--watch", "-o", "name"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               env=apiserver.kubectl_env())
    try:
        lines = LineReader(watcher)
        wait_for(lambda: "servicecidr.networking.k8s.io/kubernetes" in lines.snapshot(), what="the list")
        manifest = tmp_path / "second.yaml"
        manifest.write_text(SECOND)
        out = apiserver.kubectl("create", "-f", str(manifest)).stdout
        assert out.strip() == "servicecidr.networking.k8s.io/second created"
        wait_for(lambda: "servicecidr.networking.k8s.io/second" in lines.snapshot(), what="the watch event")
    finally:
        watcher.terminate()
        watcher.wait(timeout=10)

    def second_ready() -> dict | None:
        obj = apiserver.kubectl_json("get", "servicecidr", "second")
        return obj if ready(obj).get("status") == "True" else None

    second = wait_for(second_ready, what="second Ready")
    assert second["metadata"]["finalizers"] == [FINALIZER]
    rows = apiserver.kubectl("get", "servicecidrs", "--no-headers").stdout.splitlines()
    assert [r.split()[:2] for r in rows] == [["kubernetes", "10.96.0.0/12,fd00:10:96::/112"],
                                             ["second", "10.200.0.0/16,fd00:200::/64"]]


def test_invalid_servicecidrs_are_refused_with_upstreams_message(apiserver: ApiServerProcess, tmp_path) -> None:
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(SAME_FAMILY)
    refused = apiserver.kubectl("create", "-f", str(manifest), check=False)
    assert refused.returncode != 0
    assert ('The ServiceCIDR "bad" is invalid: spec.cidrs: Invalid value: []string{"10.0.0.0/24", '
            '"10.1.0.0/24"}: may specify no more than one IP for each IP family, i.e 192.168.0.0/24 '
            'and 2001:db8::/64') in refused.stderr
    assert apiserver.kubectl("get", "servicecidr", "bad", check=False).returncode != 0

    status, body = apiserver.request("PATCH", "/apis/networking.k8s.io/v1/servicecidrs/kubernetes",
                                     {"spec": {"cidrs": ["10.97.0.0/16", "fd00:10:96::/112"]}},
                                     content_type="application/merge-patch+json")
    assert status == 422, body
    assert body["details"]["causes"] == [{"reason": "FieldValueInvalid", "field": "spec.cidrs[0]",
                                          "message": 'Invalid value: "10.97.0.0/16": field is immutable'}]


def test_deleting_the_default_leaves_it_terminating_while_the_kubernetes_service_uses_it(
        apiserver: ApiServerProcess) -> None:
    assert apiserver.kubectl_json("get", "svc", "kubernetes")["spec"]["clusterIP"] == "10.96.0.1"
    apiserver.kubectl("delete", "servicecidr", "kubernetes", "--wait=false")

    def terminating() -> dict | None:
        obj = apiserver.kubectl_json("get", "servicecidr", "kubernetes")
        return obj if ready(obj).get("reason") == "Terminating" else None

    default = wait_for(terminating, what="the default ServiceCIDR marked Terminating")
    assert default["metadata"]["deletionTimestamp"]
    assert default["metadata"]["finalizers"] == [FINALIZER]
    assert ready(default)["status"] == "False"
    assert ready(default)["message"] == ("There are still IPAddresses referencing the ServiceCIDR, please "
                                         "remove them or create a new ServiceCIDR")


def test_a_servicecidr_lends_clusterips_and_is_held_until_they_are_released(
        apiserver: ApiServerProcess, tmp_path) -> None:
    manifest = tmp_path / "second.yaml"
    manifest.write_text(SECOND)
    apiserver.kubectl("create", "-f", str(manifest))
    wait_for(lambda: FINALIZER in apiserver.kubectl_json("get", "servicecidr", "second")["metadata"].get(
        "finalizers", []), what="the finalizer on second")
    service = tmp_path / "svc.yaml"
    service.write_text(SERVICE_IN_SECOND)
    apiserver.kubectl("create", "-f", str(service))
    assert apiserver.kubectl_json("get", "svc", "in-second")["spec"]["clusterIP"] == "10.200.0.7"

    apiserver.kubectl("delete", "servicecidr", "second", "--wait=false")
    wait_for(lambda: ready(apiserver.kubectl_json("get", "servicecidr", "second")).get("reason") == "Terminating",
             what="second held while 10.200.0.7 is in use")
    # The Service goes, so does the last address in use: the finalizer goes after its grace period.
    apiserver.kubectl("delete", "svc", "in-second")
    wait_for(lambda: apiserver.kubectl("get", "servicecidr", "second", check=False).returncode != 0,
             timeout=60, what="second deleted")
    assert apiserver.kubectl("get", "servicecidr", "kubernetes").returncode == 0


async def test_an_informer_sees_the_default_and_a_new_servicecidr(apiserver: ApiServerProcess) -> None:
    """svcnet's own client, as kube-proxy's nftables mode will list and watch ServiceCIDRs."""
    cidrs = lookup("networking.k8s.io", "v1", "servicecidrs")
    async with ApiClient(load_kubeconfig(apiserver.kubeconfig), component="test") as api:
        informer = Informer(api, cidrs)
        seen: dict[str, list[str]] = {}
        informer.add_handler(on_add=lambda o: seen.__setitem__(o["metadata"]["name"], o["spec"]["cidrs"]))
        informer.start()
        try:
            await asyncio.wait_for(informer.wait_synced(), 30)
            assert seen == {"kubernetes": ["10.96.0.0/12", "fd00:10:96::/112"]}
            await api.create(cidrs, None, {"apiVersion": "networking.k8s.io/v1", "kind": "ServiceCIDR",
                                           "metadata": {"name": "second"}, "spec": {"cidrs": ["10.200.0.0/16"]}})
            await until(lambda: "second" in seen, timeout=30, what="the informer's add")
            assert seen["second"] == ["10.200.0.0/16"]
        finally:
            await informer.stop()
