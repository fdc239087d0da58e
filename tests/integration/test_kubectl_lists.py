"""The real kubectl listing pods from a running `svcnet apiserver` whose lists splice stored JSON.

`get pods` (Table), `-o json`, `-o yaml` and `--chunk-size` (limit/continue pages that kubectl
joins) must all show the same pods, each as a GET returns it.
"""
from __future__ import annotations

import yaml

from tests.integration.apiserver_harness import ApiServerProcess

COUNT = 7


def _create_pods(server: ApiServerProcess) -> None:
    for index in range(COUNT):
        status, body = server.request("POST", "/api/v1/namespaces/default/pods", {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"lp{index}", "labels": {"shard": str(index % 2)},
                         "annotations": {"note": f"café {index}"}},
            "spec": {"containers": [{"name": "main", "image": "busybox"}]}})
        assert status == 201, body


def test_kubectl_get_pods_in_every_form_and_in_chunks_shows_every_pod_as_a_get_does(apiserver):
    _create_pods(apiserver)
    names = [f"lp{index}" for index in range(COUNT)]

    table = apiserver.kubectl("get", "pods").stdout.splitlines()
    assert table[0].split()[:3] == ["NAME", "READY", "STATUS"]
    assert [line.split()[0] for line in table[1:]] == names
    chunked_table = apiserver.kubectl("get", "pods", "--chunk-size=2").stdout.splitlines()
    # All but AGE, the last column: the clock may tick a second between the two calls.
    assert [line.rsplit(None, 1)[0] for line in chunked_table] == [line.rsplit(None, 1)[0] for line in table]
    assert table[0].split()[-1] == "AGE"

    as_json = apiserver.kubectl_json("get", "pods")
    assert [item["metadata"]["name"] for item in as_json["items"]] == names
    for item in as_json["items"]:
        status, got = apiserver.request("GET", f"/api/v1/namespaces/default/pods/{item['metadata']['name']}")
        got["metadata"].pop("managedFields", None)  # kubectl hides them (--show-managed-fields=false)
        assert status == 200 and got == item
    chunked_json = apiserver.kubectl_json("get", "pods", "--chunk-size=3")
    assert chunked_json["items"] == as_json["items"]

    as_yaml = yaml.safe_load(apiserver.kubectl("get", "pods", "-o", "yaml").stdout)
    assert as_yaml["items"] == as_json["items"]
    chunked_yaml = yaml.safe_load(apiserver.kubectl("get", "pods", "-o", "yaml", "--chunk-size=2").stdout)
    assert chunked_yaml["items"] == as_json["items"]

    selected = apiserver.kubectl_json("get", "pods", "-l", "shard=1", "--chunk-size=2")
    assert [item["metadata"]["name"] for item in selected["items"]] == names[1::2]
    selected_table = apiserver.kubectl("get", "pods", "-l", "shard=0", "--chunk-size=1").stdout.splitlines()
    assert [line.split()[0] for line in selected_table[1:]] == names[0::2]


def test_a_raw_json_list_page_carries_the_list_metadata(apiserver):
    _create_pods(apiserver)
    status, page = apiserver.request("GET", "/api/v1/namespaces/default/pods?limit=3")
    assert status == 200
    assert page["kind"] == "PodList" and page["apiVersion"] == "v1"
    assert page["metadata"]["remainingItemCount"] == COUNT - 3
    assert [item["metadata"]["name"] for item in page["items"]] == ["lp0", "lp1", "lp2"]
    assert page["items"][0]["metadata"]["annotations"]["note"] == "café 0"
