"""The controllers (kube-controller-manager and kube-scheduler's work), by name.

Each entry is "module:Class"; `svcnet controllers --controllers a,b` and
`svcnet up` start them through one ControllerManager.
"""
from __future__ import annotations

import importlib
import logging

log = logging.getLogger("svcnet.controllers")

CONTROLLERS: dict[str, str] = {
    "scheduler": "svcnet.controllers.scheduler:Scheduler",
    "replicaset": "svcnet.controllers.replicaset:ReplicaSetController",
    "deployment": "svcnet.controllers.deployment:DeploymentController",
    "statefulset": "svcnet.controllers.statefulset:StatefulSetController",
    "endpointslice": "svcnet.controllers.endpointslice:EndpointSliceController",
    "endpoints": "svcnet.controllers.endpoints:EndpointsController",
    "endpointslicemirroring": "svcnet.controllers.endpointslicemirroring:EndpointSliceMirroringController",
    "garbagecollector": "svcnet.controllers.gc:GarbageCollector",
    "podgc": "svcnet.controllers.gc:PodGarbageCollector",
    "nodelifecycle": "svcnet.controllers.nodelifecycle:NodeLifecycleController",
    "serviceaccount": "svcnet.controllers.serviceaccounts:ServiceAccountsController",
    "serviceaccount-token": "svcnet.controllers.tokens:TokensController",
    "root-ca-cert-publisher": "svcnet.controllers.rootcacert:RootCACertPublisher",
    "job": "svcnet.controllers.job:JobController",
    "cronjob": "svcnet.controllers.cronjob:CronJobController",
    "ttlafterfinished": "svcnet.controllers.ttl_after_finished:TTLAfterFinishedController",
}

# The controllers of the kinds served for kubectl's default prune allowlist.
CONTROLLERS.update({
    "replicationcontroller": "svcnet.controllers.replicationcontroller:ReplicationControllerController",
    "daemonset": "svcnet.controllers.daemonset:DaemonSetController",
    "persistentvolume-binder": "svcnet.controllers.pvbinder:PersistentVolumeBinder",
    "pv-protection": "svcnet.controllers.pvbinder:PersistentVolumeProtection",
    "pvc-protection": "svcnet.controllers.pvbinder:ClaimProtection",
})

# Node bootstrap (`svcnet node join`): bootstrap tokens and kubelet client certificates.
CONTROLLERS.update({
    "tokencleaner": "svcnet.controllers.nodebootstrap:TokenCleaner",
    "bootstrapsigner": "svcnet.controllers.nodebootstrap:BootstrapSigner",
    "csrapproving": "svcnet.controllers.nodebootstrap:CsrApprover",
    "csrsigning": "svcnet.controllers.nodebootstrap:CsrSigner",
})

# LoadBalancer addresses on the nodes' LAN (MetalLB's controller; k3s's servicelb); runs only with a pool.
CONTROLLERS["service-lb"] = "svcnet.controllers.loadbalancer:LoadBalancerController"


def load(names: list[str] | None = None) -> list[type]:
    """The controller classes for names (all by default), in the table's order."""
    wanted = list(CONTROLLERS) if names is None else names
    unknown = [n for n in wanted if n not in CONTROLLERS]
    if unknown:
        raise ValueError(f"unknown controllers: {', '.join(unknown)}; known: {', '.join(CONTROLLERS)}")
    classes = []
    for name in wanted:
        module_name, _, class_name = CONTROLLERS[name].partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if names is None and exc.name == module_name:
                log.warning("controller %s is not built yet; skipping", name)
                continue
            raise
        classes.append(getattr(module, class_name))
    return classes
