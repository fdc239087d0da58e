"""Static PersistentVolume binding decisions (svcnet.core.pvbinder), as pkg/controller/volume/persistentvolume."""
from __future__ import annotations

from svcnet.core import pvbinder as core


def volume(name: str, size: str, modes=("ReadWriteOnce",), *, klass: str = "", phase: str = "Available",
           claim_ref: dict | None = None, labels: dict | None = None, policy: str = "Retain",
           mode: str = "Filesystem") -> dict:
    spec = {"capacity": {"storage": size}, "accessModes": list(modes), "persistentVolumeReclaimPolicy": policy,
            "volumeMode": mode, "hostPath": {"path": f"/tmp/{name}"}}
    if klass:
        spec["storageClassName"] = klass
    if claim_ref:
        spec["claimRef"] = claim_ref
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": spec, "status": {"phase": phase}}


def claim(name: str = "data", size: str = "1Gi", modes=("ReadWriteOnce",), *, klass: str = "",
          volume_name: str = "", selector: dict | None = None, annotations: dict | None = None) -> dict:
    spec = {"accessModes": list(modes), "resources": {"requests": {"storage": size}}, "volumeMode": "Filesystem"}
    if klass:
        spec["storageClassName"] = klass
    if volume_name:
        spec["volumeName"] = volume_name
    if selector:
        spec["selector"] = selector
    return {"metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}",
                         "annotations": annotations or {}},
            "spec": spec, "status": {"phase": "Pending"}}


def by_name(*volumes: dict) -> dict:
    return {v["metadata"]["name"]: v for v in volumes}


def test_the_smallest_volume_that_fits_size_modes_class_and_selector_wins():
    volumes = by_name(volume("tiny", "500Mi"), volume("big", "10Gi"), volume("mid", "2Gi"),
                      volume("rwx", "1Gi", ("ReadWriteMany",)), volume("gold", "1Gi", klass="gold"),
                      volume("block", "1Gi", mode="Block"))
    assert core.decide_claim(claim(), volumes).volume["metadata"]["name"] == "mid"
    assert core.decide_claim(claim(klass="gold"), volumes).volume["metadata"]["name"] == "gold"
    assert core.decide_claim(claim(modes=("ReadWriteMany",)), volumes).volume["metadata"]["name"] == "rwx"
    labelled = by_name(volume("plain", "1Gi"), volume("fast", "5Gi", labels={"speed": "fast"}))
    chosen = core.decide_claim(claim(selector={"matchLabels": {"speed": "fast"}}), labelled).volume
    assert chosen["metadata"]["name"] == "fast"


def test_bound_released_and_user_prebound_volumes_are_not_taken_but_a_volume_prebound_to_the_claim_is():
    ref_other = {"namespace": "default", "name": "other"}
    volumes = by_name(volume("bound", "1Gi", phase="Bound", claim_ref={**ref_other, "uid": "x"}),
                      volume("released", "1Gi", phase="Released", claim_ref={**ref_other, "uid": "y"}),
                      volume("reserved", "1Gi", claim_ref=ref_other))
    decision = core.decide_claim(claim(), volumes)
    assert decision.volume is None and decision.phase == "Pending"
    assert decision.event == core.Event("Normal", "FailedBinding", core.NO_VOLUME_NO_CLASS)
    mine = by_name(volume("big", "5Gi"), volume("mine", "9Gi", claim_ref={"namespace": "default", "name": "data"}))
    assert core.decide_claim(claim(), mine).volume["metadata"]["name"] == "mine"


def test_a_class_without_a_volume_fails_as_provisioning_without_a_storage_class_does():
    decision = core.decide_claim(claim(klass="fast"), by_name(volume("v", "1Gi")))
    assert decision.phase == "Pending"
    assert decision.event == core.Event("Warning", "ProvisioningFailed",
                                        'storageclass.storage.k8s.io "fast" not found')


def test_a_claim_naming_its_volume_waits_for_it_and_refuses_one_that_cannot_serve_it():
    assert core.decide_claim(claim(volume_name="later"), {}) == core.ClaimDecision(phase="Pending")
    small = by_name(volume("small", "100Mi"))
    decision = core.decide_claim(claim(volume_name="small"), small)
    assert decision.event.reason == "VolumeMismatch"
    assert decision.event.message == 'Cannot bind to requested volume "small": requested PV is too small'
    fits = by_name(volume("fits", "1Gi"))
    assert core.decide_claim(claim(volume_name="fits"), fits).volume["metadata"]["name"] == "fits"


def test_a_bound_claim_whose_volume_is_gone_is_lost():
    bound = claim(volume_name="gone", annotations={core.BIND_COMPLETED: "yes"})
    assert core.decide_claim(bound, {}).phase == "Lost"


def test_volume_phases_follow_their_claim():
    ref = {"namespace": "default", "name": "data", "uid": "uid-data"}
    bound_claim = claim(volume_name="v")
    assert core.decide_volume(volume("v", "1Gi"), None).phase == "Available"
    assert core.decide_volume(volume("v", "1Gi", claim_ref=ref), bound_claim).phase == "Bound"
    # The claim was deleted: Retain keeps the data, Released.
    assert core.decide_volume(volume("v", "1Gi", phase="Bound", claim_ref=ref), None).phase == "Released"
    # A claim of the same name but another uid is not the one the volume was bound to.
    recreated = claim(volume_name="v")
    recreated["metadata"]["uid"] = "new"
    assert core.decide_volume(volume("v", "1Gi", phase="Bound", claim_ref=ref), recreated).phase == "Released"
    # No volume plugins in svcnet: a Delete policy fails the volume, as upstream without a deleter.
    failed = core.decide_volume(volume("v", "1Gi", phase="Bound", claim_ref=ref, policy="Delete"), None)
    assert failed.phase == "Failed" and "no deletable volume plugin matched" in failed.message


def test_binding_writes_are_only_those_still_missing():
    c = claim()
    v = volume("v", "1Gi")
    assert core.volume_needs_binding(v, c) and core.claim_needs_binding(c, v)
    v["spec"]["claimRef"] = core.claim_ref(c)
    c["spec"]["volumeName"] = "v"
    c["metadata"]["annotations"][core.BIND_COMPLETED] = "yes"
    assert not core.volume_needs_binding(v, c) and not core.claim_needs_binding(c, v)
    assert core.bound_claim_status(c, v) == {"phase": "Bound", "accessModes": ["ReadWriteOnce"],
                                             "capacity": {"storage": "1Gi"}}


def test_only_unfinished_pods_of_the_namespace_mounting_the_claim_keep_it():
    c = claim()
    mounting = {"metadata": {"namespace": "default"}, "status": {"phase": "Running"},
                "spec": {"volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}}
    finished = {**mounting, "status": {"phase": "Succeeded"}}
    elsewhere = {**mounting, "metadata": {"namespace": "other"}}
    assert core.pods_using_claim([mounting, finished, elsewhere], c) == [mounting]
