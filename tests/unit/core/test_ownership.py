"""The garbage collectors' decisions over plain objects: owner states, verdicts, patches, pod GC rules."""
from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from svcnet.core import ownership as own
from svcnet.core.ownership import OwnerState

Obj = dict[str, Any]
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def ref(uid: str, kind: str = "ReplicaSet", name: str | None = None, *, block: bool = True,
        controller: bool = True) -> Obj:
    return {"apiVersion": "apps/v1", "kind": kind, "name": name or f"owner-{uid}", "uid": uid,
            "controller": controller, "blockOwnerDeletion": block}


def obj(name: str, uid: str, *owners: Obj, namespace: str | None = "default", deleting: bool = False,
        finalizers: tuple[str, ...] = (), rv: str = "7", kind: str = "Pod") -> Obj:
    md: Obj = {"name": name, "uid": uid, "resourceVersion": rv}
    if namespace:
        md["namespace"] = namespace
    if owners:
        md["ownerReferences"] = list(owners)
    if deleting:
        md["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    if finalizers:
        md["finalizers"] = list(finalizers)
    return {"apiVersion": "v1", "kind": kind, "metadata": md}


# ---------------------------------------------------------------- owner links

def test_owner_links_parse_every_reference_field():
    pod = obj("p", "u1", ref("rs1", block=False), ref("d1", kind="Deployment", controller=False))
    assert own.owner_links(pod) == (
        own.OwnerLink("apps/v1", "ReplicaSet", "owner-rs1", "rs1", True, False),
        own.OwnerLink("apps/v1", "Deployment", "owner-d1", "d1", False, True),
    )
    assert own.owner_uids(pod) == ["rs1", "d1"]


@pytest.mark.parametrize("api_version, group", [("apps/v1", "apps"), ("v1", ""),
                                                ("discovery.k8s.io/v1", "discovery.k8s.io")])
def test_owner_link_group_comes_from_api_version(api_version, group):
    assert own.OwnerLink(api_version, "X", "n", "u").group == group


def test_dependents_of_a_namespaced_owner_are_only_in_its_namespace():
    owner = obj("rs", "rs1", kind="ReplicaSet")
    here = obj("a", "u1", ref("rs1"))
    elsewhere = obj("b", "u2", ref("rs1"), namespace="other")
    unrelated = obj("c", "u3", ref("rs2"))
    assert own.dependents_of(owner, [here, elsewhere, unrelated]) == [here]


def test_dependents_of_a_cluster_scoped_owner_may_be_anywhere():
    node = obj("n1", "node1", namespace=None, kind="Node")
    lease = obj("n1", "l1", ref("node1", kind="Node"), namespace="kube-node-lease", kind="Lease")
    assert own.dependents_of(node, [lease]) == [lease]


def test_blocking_dependents_are_those_whose_reference_blocks():
    owner = obj("rs", "rs1", kind="ReplicaSet")
    blocking = obj("a", "u1", ref("rs1", block=True))
    free = obj("b", "u2", ref("rs1", block=False))
    assert own.blocking_dependents(owner, [blocking, free]) == [blocking]


# ---------------------------------------------------------------- owner state

LINK = own.OwnerLink("apps/v1", "ReplicaSet", "rs", "rs1")


@pytest.mark.parametrize("found, state", [
    (None, OwnerState.ABSENT),
    (obj("rs", "other-uid", kind="ReplicaSet"), OwnerState.ABSENT),
    (obj("rs", "rs1", kind="ReplicaSet"), OwnerState.PRESENT),
    (obj("rs", "rs1", kind="ReplicaSet", deleting=True), OwnerState.PRESENT),  # background: still there
    (obj("rs", "rs1", kind="ReplicaSet", deleting=True, finalizers=("orphan",)), OwnerState.PRESENT),
    (obj("rs", "rs1", kind="ReplicaSet", deleting=True, finalizers=("foregroundDeletion",)),
     OwnerState.DELETING_DEPENDENTS),
    (obj("rs", "rs1", kind="ReplicaSet", finalizers=("foregroundDeletion",)), OwnerState.PRESENT),
], ids=["not-found", "uid-mismatch", "present", "deleting-background", "orphaning",
        "deleting-foreground", "finalizer-without-deletion"])
def test_owner_state(found, state):
    assert own.owner_state(LINK, found) is state


# --------------------------------------------------------- dependent verdicts

A, B = "rs1", "rs2"
PRESENT, ABSENT, WAITING, UNRESOLVABLE = (OwnerState.PRESENT, OwnerState.ABSENT,
                                          OwnerState.DELETING_DEPENDENTS, OwnerState.UNRESOLVABLE)
DEP_OF_ITEM = obj("grandchild", "g1", ref("item"))
FOREGROUND_DEP = obj("grandchild", "g1", ref("item"), deleting=True, finalizers=("foregroundDeletion",))


@pytest.mark.parametrize("item, states, dependents, decision", [
    # one owner
    (obj("p", "i", ref(A)), {A: PRESENT}, [], own.KEEP),
    (obj("p", "i", ref(A)), {A: ABSENT}, [], own.DependentDecision("delete", propagation="Background")),
    (obj("p", "i", ref(A)), {A: WAITING}, [], own.DependentDecision("delete", propagation="Background")),
    (obj("p", "i", ref(A)), {A: WAITING}, [DEP_OF_ITEM],
     own.DependentDecision("delete", propagation="Foreground")),
    (obj("p", "i", ref(A)), {A: WAITING}, [FOREGROUND_DEP],
     own.DependentDecision("delete", propagation="Foreground", unblock_first=True)),
    (obj("p", "i", ref(A, block=False)), {A: WAITING}, [FOREGROUND_DEP],
     own.DependentDecision("delete", propagation="Foreground")),
    (obj("p", "i", ref(A)), {A: UNRESOLVABLE}, [], own.KEEP),
    # two owners
    (obj("p", "i", ref(A), ref(B)), {A: ABSENT, B: PRESENT}, [],
     own.DependentDecision("remove_owner_refs", remove_uids=(A,))),
    (obj("p", "i", ref(A), ref(B)), {A: WAITING, B: PRESENT}, [],
     own.DependentDecision("remove_owner_refs", remove_uids=(A,))),
    (obj("p", "i", ref(A), ref(B)), {A: ABSENT, B: ABSENT}, [],
     own.DependentDecision("delete", propagation="Background")),
    (obj("p", "i", ref(A), ref(B)), {A: ABSENT, B: UNRESOLVABLE}, [], own.KEEP),
    # policies already on the object are honoured
    (obj("p", "i", ref(A), finalizers=("orphan",)), {A: ABSENT}, [],
     own.DependentDecision("delete", propagation="Orphan")),
    (obj("p", "i", ref(A), finalizers=("foregroundDeletion",)), {A: ABSENT}, [],
     own.DependentDecision("delete", propagation="Foreground")),
    # nothing to decide
    (obj("p", "i"), {}, [], own.KEEP),
    (obj("p", "i", ref(A), deleting=True), {A: ABSENT}, [], own.KEEP),
], ids=["owner-present", "owner-gone", "owner-foreground-leaf", "owner-foreground-with-dependents",
        "foreground-chain-unblocks-first", "foreground-chain-nothing-to-unblock", "owner-unresolvable",
        "one-of-two-gone", "one-of-two-waiting", "both-gone", "gone-and-unresolvable",
        "orphan-finalizer-on-item", "foreground-finalizer-on-item", "no-owners", "already-deleting"])
def test_decide_dependent(item, states, dependents, decision):
    assert own.decide_dependent(item, states, dependents) == decision


def test_an_owner_missing_from_the_states_is_never_a_reason_to_delete():
    assert own.decide_dependent(obj("p", "i", ref(A)), {}, []) == own.KEEP


# ---------------------------------------------------------- foreground owners

def test_foreground_owner_without_blocking_dependents_drops_its_finalizer():
    owner = obj("rs", A, deleting=True, finalizers=("foregroundDeletion",), kind="ReplicaSet")
    free = obj("a", "u1", ref(A, block=False))
    assert own.decide_foreground_owner(owner, [free]) == own.ForegroundDecision(remove_finalizer=True)


def test_foreground_owner_waits_on_blocking_dependents_and_nudges_those_not_deleting_their_own():
    owner = obj("rs", A, deleting=True, finalizers=("foregroundDeletion",), kind="ReplicaSet")
    plain = obj("a", "u1", ref(A))
    cascading = obj("b", "u2", ref(A), deleting=True, finalizers=("foregroundDeletion",))
    decision = own.decide_foreground_owner(owner, [plain, cascading])
    assert decision == own.ForegroundDecision(False, (plain,))


# --------------------------------------------------------------------- patches

def test_remove_owner_refs_patch_keeps_the_others_and_pins_the_resource_version():
    pod = obj("p", "i", ref(A), ref(B), rv="42")
    assert own.remove_owner_refs_patch(pod, [A]) == {
        "metadata": {"resourceVersion": "42", "ownerReferences": [ref(B)]}}


def test_removing_the_last_owner_ref_deletes_the_field():
    pod = obj("p", "i", ref(A), rv="42")
    assert own.remove_owner_refs_patch(pod, [A])["metadata"]["ownerReferences"] is None


def test_unblock_patch_clears_block_owner_deletion_only():
    pod = obj("p", "i", ref(A, block=True), ref(B, block=False))
    refs = own.unblock_owner_refs_patch(pod)["metadata"]["ownerReferences"]
    assert [r["blockOwnerDeletion"] for r in refs] == [False, False]
    assert [r["uid"] for r in refs] == [A, B]


@pytest.mark.parametrize("finalizers, finalizer, expected", [
    (("foregroundDeletion",), "foregroundDeletion", None),
    (("example.com/keep", "orphan"), "orphan", ["example.com/keep"]),
])
def test_remove_finalizer_patch(finalizers, finalizer, expected):
    owner = obj("rs", A, finalizers=finalizers, rv="9")
    assert own.remove_finalizer_patch(owner, finalizer) == {
        "metadata": {"resourceVersion": "9", "finalizers": expected}}


# ====================================================================== pod GC

def pod(name: str, *, node: str = "", phase: str | None = None, created: str = "2026-01-01T00:00:00Z",
        deleting: bool = False, reason: str | None = None) -> Obj:
    p = obj(name, f"uid-{name}", deleting=deleting)
    p["metadata"]["creationTimestamp"] = created
    p["spec"] = {"nodeName": node} if node else {}
    if phase:
        p["status"] = {"phase": phase}
        if reason:
            p["status"]["reason"] = reason
    return p


def names(pods: list[Obj]) -> list[str]:
    return [p["metadata"]["name"] for p in pods]


def test_terminated_pods_over_threshold_go_evicted_first_then_oldest():
    pods = [
        pod("running", phase="Running", created="2020-01-01T00:00:00Z"),
        pod("old-done", phase="Succeeded", created="2021-01-01T00:00:00Z"),
        pod("new-failed", phase="Failed", created="2025-01-01T00:00:00Z"),
        pod("evicted", phase="Failed", reason="Evicted", created="2025-06-01T00:00:00Z"),
        pod("b-same-time", phase="Succeeded", created="2023-01-01T00:00:00Z"),
        pod("a-same-time", phase="Succeeded", created="2023-01-01T00:00:00Z"),
    ]
    assert names(own.terminated_pods_over_threshold(pods, 2)) == [
        "evicted", "old-done", "a-same-time"]


@pytest.mark.parametrize("threshold", [0, -1, 5])
def test_terminated_pods_threshold_off_or_not_reached_deletes_nothing(threshold):
    pods = [pod(f"p{i}", phase="Succeeded") for i in range(5)]
    assert own.terminated_pods_over_threshold(pods, threshold) == []


def test_unscheduled_terminating_pods_are_deleted_but_not_bound_ones():
    pods = [pod("unbound-deleting", deleting=True), pod("bound-deleting", node="n1", deleting=True),
            pod("unbound-alive")]
    assert names(own.unscheduled_terminating_pods(pods)) == ["unbound-deleting"]


def test_quarantine_starts_the_clock_for_newly_missing_nodes():
    pods = [pod("a", node="ghost"), pod("b", node="n1"), pod("c")]
    q = own.quarantine(pods, ["n1"], {}, T0, 40)
    assert q.missing_since == {"ghost": T0}
    assert q.due == frozenset()
    assert q.next_check == 40


def test_quarantine_makes_a_node_due_after_the_period_and_forgets_nodes_no_pod_needs():
    since = {"ghost": T0, "forgotten": T0, "recent": T0 + dt.timedelta(seconds=30)}
    pods = [pod("a", node="ghost"), pod("b", node="recent")]
    q = own.quarantine(pods, [], since, T0 + dt.timedelta(seconds=40), 40)
    assert q.due == frozenset({"ghost"})
    assert set(q.missing_since) == {"ghost", "recent"}
    assert q.next_check == 30


def test_quarantine_forgets_a_node_that_appeared():
    q = own.quarantine([pod("a", node="n1")], ["n1"], {"n1": T0}, T0 + dt.timedelta(hours=1), 40)
    assert q.missing_since == {} and q.due == frozenset() and q.next_check is None


def test_pods_on_nodes():
    pods = [pod("a", node="gone"), pod("b", node="here"), pod("c")]
    assert names(own.pods_on_nodes(pods, ["gone"])) == ["a"]


def test_failed_status_patch_replaces_a_same_type_condition_and_keeps_the_rest():
    running = pod("a", node="gone", phase="Running")
    running["status"]["conditions"] = [{"type": "Ready", "status": "True"},
                                       {"type": "DisruptionTarget", "status": "False"}]
    condition = own.disruption_condition(T0, "PodGC: node no longer exists")
    patch = own.failed_status_patch(running, condition)
    assert patch == {"metadata": {"resourceVersion": "7"}, "status": {
        "phase": "Failed",
        "conditions": [{"type": "Ready", "status": "True"},
                       {"type": "DisruptionTarget", "status": "True", "reason": "DeletionByPodGC",
                        "message": "PodGC: node no longer exists",
                        "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}


def test_failed_status_patch_leaves_finished_pods_alone():
    assert own.failed_status_patch(pod("a", phase="Succeeded")) is None
    assert own.failed_status_patch(pod("b")) == {"metadata": {"resourceVersion": "7"},
                                                 "status": {"phase": "Failed"}}
