"""The extended tour's objects: what each step applies is valid, and labelled so a tour cut short is cleaned up.

The tour itself runs live in tests/e2e/test_walkthrough.py; these check its manifests without a cluster.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from svcnet.cluster.spec import ClusterSpec
from svcnet.cluster.tour_services import (
    LEFTOVER_KINDS,
    POD_NAMES,
    STEPS,
    TOUR_LABEL,
    TOUR_PODS_YAML,
    ServicesTour,
    selectorless_objects,
)
from svcnet.cluster.walkthrough import main as walkthrough_main

PLURAL = {"Pod": "pods", "Service": "services", "Deployment": "deployments", "Endpoints": "endpoints",
          "EndpointSlice": "endpointslices"}


def every_object() -> list[dict]:
    texts = [TOUR_PODS_YAML, selectorless_objects("192.168.0.200"), *(step.objects for step in STEPS)]
    return [doc for text in texts for doc in yaml.safe_load_all(text) if doc]


def test_every_object_carries_the_tour_label_and_is_a_kind_the_cleanup_deletes() -> None:
    key, _, value = TOUR_LABEL.partition("=")
    kinds = set(LEFTOVER_KINDS.split(","))
    for obj in every_object():
        assert obj["metadata"]["labels"][key] == value, obj["metadata"]["name"]
        assert PLURAL[obj["kind"]] in kinds, obj["kind"]
        if obj["kind"] == "Deployment":  # its pods too, so that they are waited for on the next run
            assert obj["spec"]["template"]["metadata"]["labels"][key] == value


def test_no_two_objects_share_a_kind_and_name() -> None:
    names = [(obj["kind"], obj["metadata"]["name"]) for obj in every_object()]
    assert len(names) == len(set(names))


def test_the_backends_name_their_port_web_on_different_numbers() -> None:
    pods = {doc["metadata"]["name"]: doc for doc in yaml.safe_load_all(TOUR_PODS_YAML)}
    assert tuple(pods) == POD_NAMES
    web = {name: [p for p in pod["spec"]["containers"][0]["ports"] if p["name"] == "web"][0]["containerPort"]
           for name, pod in pods.items()}
    assert web == {"tour-1a": 9376, "tour-1b": 9377, "tour-2": 9376}
    # tour-1b's args replace the image's cmd: it must ask for UDP itself, or the UDP step misses it.
    assert pods["tour-1b"]["spec"]["containers"][0]["args"] == ["-port=9377", "--udp"]


def test_step_titles_are_unique() -> None:
    titles = [step.title for step in STEPS]
    assert len(titles) == len(set(titles))


def test_extended_is_an_option_of_the_walkthrough(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        walkthrough_main(["--help"])
    assert "--extended" in capsys.readouterr().out


def test_a_one_node_cluster_is_refused_with_what_to_do(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    one_node = ClusterSpec(cluster_id="x", nodes=1)
    monkeypatch.setattr("svcnet.cluster.walkthrough.load_cluster_spec", lambda data_dir: one_node)
    ran: list[object] = []
    monkeypatch.setattr(ServicesTour, "run", lambda self, *args, **kwargs: ran.append(args))
    with pytest.raises(SystemExit) as exited:
        ServicesTour(tmp_path, tmp_path).main()
    assert str(exited.value) == ("svcnet walkthrough --extended: needs two nodes, this cluster has 1: "
                                 "start one with svcnet up --nodes 2")
    assert ran == []  # nothing was applied to the cluster
