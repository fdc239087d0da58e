"""Printers of apps/v1 kinds: deployments, replica sets, stateful sets and daemon sets."""
from __future__ import annotations

import datetime as dt

from .columns import AGE, CONTAINERS, IMAGES, NAME, Column, Printer, wide
from .format import (
    BadSelector,
    Cell,
    Obj,
    age_cell,
    as_int,
    container_cells,
    desired_replicas,
    format_label_selector,
    format_labels,
    get_path,
    label_selector_string,
    name_cell,
    template_containers,
)


def _deployment_cells(deployment: Obj, now: dt.datetime) -> list[Cell]:
    status = get_path(deployment, "status", default={})
    try:
        selector = label_selector_string(get_path(deployment, "spec", "selector"))
    except BadSelector:
        selector = "<invalid>"
    names, images = container_cells(template_containers(deployment))
    return [
        name_cell(deployment),
        f"{as_int(status.get('readyReplicas'))}/{desired_replicas(deployment)}",
        as_int(status.get("updatedReplicas")),
        as_int(status.get("availableReplicas")),
        age_cell(deployment, now),
        names,
        images,
        selector,
    ]


def replicas_cells(owner: Obj, now: dt.datetime, selector: str) -> list[Cell]:
    """NAME DESIRED CURRENT READY AGE, then (wide) CONTAINERS IMAGES SELECTOR: a ReplicaSet's row,
    and a ReplicationController's (printReplicaSet, printReplicationController)."""
    status = get_path(owner, "status", default={})
    names, images = container_cells(template_containers(owner))
    return [
        name_cell(owner),
        desired_replicas(owner),
        as_int(status.get("replicas")),
        as_int(status.get("readyReplicas")),
        age_cell(owner, now),
        names,
        images,
        selector,
    ]


def _replica_set_cells(replica_set: Obj, now: dt.datetime) -> list[Cell]:
    return replicas_cells(replica_set, now, format_label_selector(get_path(replica_set, "spec", "selector")))


def _stateful_set_cells(stateful_set: Obj, now: dt.datetime) -> list[Cell]:
    ready = as_int(get_path(stateful_set, "status", "readyReplicas"))
    names, images = container_cells(template_containers(stateful_set))
    return [
        name_cell(stateful_set),
        f"{ready}/{desired_replicas(stateful_set)}",
        age_cell(stateful_set, now),
        names,
        images,
    ]


def _daemon_set_cells(daemon_set: Obj, now: dt.datetime) -> list[Cell]:
    status = get_path(daemon_set, "status", default={})
    names, images = container_cells(template_containers(daemon_set))
    return [
        name_cell(daemon_set),
        as_int(status.get("desiredNumberScheduled")),
        as_int(status.get("currentNumberScheduled")),
        as_int(status.get("numberReady")),
        as_int(status.get("updatedNumberScheduled")),
        as_int(status.get("numberAvailable")),
        format_labels(get_path(daemon_set, "spec", "template", "spec", "nodeSelector")),
        age_cell(daemon_set, now),
        names,
        images,
        format_label_selector(get_path(daemon_set, "spec", "selector")),
    ]


# apps/v1 kinds: their columns and cells.
APPS_PRINTERS: dict[tuple[str, str], Printer] = {
    ("apps", "Deployment"): Printer((
        NAME,
        Column("Ready", "string", "Ready pods out of desired pods."),
        Column("Up-to-date", "string", "Pods that run the current pod template."),
        Column("Available", "string", "Pods that have been ready for at least minReadySeconds."),
        AGE,
        CONTAINERS,
        IMAGES,
        wide("Selector", "The label query over the deployment's pods."),
    ), _deployment_cells),
    ("apps", "ReplicaSet"): Printer((
        NAME,
        Column("Desired", "integer", "The number of pods wanted."),
        Column("Current", "integer", "The number of pods that exist."),
        Column("Ready", "integer", "The number of ready pods."),
        AGE,
        CONTAINERS,
        IMAGES,
        wide("Selector", "The label query over the replica set's pods."),
    ), _replica_set_cells),
    ("apps", "StatefulSet"): Printer((
        NAME,
        Column("Ready", "string", "Ready pods out of desired pods."),
        AGE,
        CONTAINERS,
        IMAGES,
    ), _stateful_set_cells),
    ("apps", "DaemonSet"): Printer((
        NAME,
        Column("Desired", "integer", "The number of nodes that should run the daemon pod."),
        Column("Current", "integer", "The number of nodes running at least one daemon pod."),
        Column("Ready", "integer", "The number of nodes running a ready daemon pod."),
        Column("Up-to-date", "integer", "The number of nodes running the current pod template."),
        Column("Available", "integer", "The number of nodes whose daemon pod is available."),
        Column("Node Selector", "string", "The template's node selector."),
        AGE,
        CONTAINERS,
        IMAGES,
        wide("Selector", "The label query over the daemon set's pods."),
    ), _daemon_set_cells),
}
