"""Validation of svcnet's API kinds, worded as kube-apiserver's field.ErrorList.

`validate(kind, obj, old)` returns Causes whose `field` is the path
(`spec.ports[0].port`) and whose `message` is the rest of upstream's error
(`Invalid value: 70000: must be between 1 and 65535, inclusive`), so
`errors.invalid(kind, name, causes)` prints what kubectl users know.

It expects defaulted objects (run `defaults.apply_defaults` first), as upstream
validates after defaulting. Rules and wording follow
pkg/apis/core/validation, pkg/apis/apps/validation,
pkg/apis/discovery/validation, pkg/apis/coordination/validation,
pkg/apis/networking/validation, pkg/apis/rbac/validation and pkg/apis/batch/validation;
one module per API group or kind, shared helpers in fields.py.
"""
from __future__ import annotations

from collections.abc import Callable

from svcnet.api.errors import Cause
from svcnet.api.resources import RESOURCES

from .apps import validate_deployment, validate_replica_set, validate_stateful_set
from .batch import validate_cron_job, validate_job
from .certificates import validate_csr
from .config import validate_config_map, validate_secret, validate_service_account
from .endpoints import validate_endpoint_slice, validate_endpoints
from .events import validate_event
from .fields import (
    NameFn,
    Obj,
    as_dict,
    name_is_dns1035_label,
    name_is_dns_label,
    name_is_dns_subdomain,
    name_is_path_segment,
)
from .ingress import validate_ingress, validate_ingress_class
from .meta import validate_object_meta, validate_object_meta_update
from .namespaces import validate_namespace
from .networking import validate_service_cidr
from .nodes import validate_lease, validate_node
from .pods import validate_pod
from .rbac import validate_cluster_role, validate_cluster_role_binding, validate_role, validate_role_binding
from .services import validate_service
from .storage import validate_persistent_volume, validate_persistent_volume_claim
from .workloads import validate_daemon_set, validate_replication_controller

KindValidator = Callable[[Obj, "Obj | None"], list[Cause]]

# kind -> (name rule, rules for the rest of the object; `old` is None on create)
_RULES: dict[str, tuple[NameFn, KindValidator]] = {
    "Namespace": (name_is_dns_label, validate_namespace),
    "Node": (name_is_dns_subdomain, validate_node),
    "Pod": (name_is_dns_subdomain, validate_pod),
    "Service": (name_is_dns1035_label, validate_service),
    "Endpoints": (name_is_dns_subdomain, validate_endpoints),
    "EndpointSlice": (name_is_dns_subdomain, validate_endpoint_slice),
    "Event": (name_is_path_segment, validate_event),
    "Deployment": (name_is_dns_subdomain, validate_deployment),
    "ReplicaSet": (name_is_dns_subdomain, validate_replica_set),
    # Pod hostnames come from StatefulSet names, so upstream now wants a DNS label.
    "StatefulSet": (name_is_dns_label, validate_stateful_set),
    "Lease": (name_is_dns_subdomain, validate_lease),
    "ServiceCIDR": (name_is_dns_subdomain, validate_service_cidr),
    "ConfigMap": (name_is_dns_subdomain, validate_config_map),
    "Secret": (name_is_dns_subdomain, validate_secret),
    "ServiceAccount": (name_is_dns_subdomain, validate_service_account),
    # RBAC names are only path segments (minimalNameRequirements): "system:node" is valid.
    "Role": (name_is_path_segment, validate_role),
    "ClusterRole": (name_is_path_segment, validate_cluster_role),
    "RoleBinding": (name_is_path_segment, validate_role_binding),
    "ClusterRoleBinding": (name_is_path_segment, validate_cluster_role_binding),
    "Job": (name_is_dns_subdomain, validate_job),
    "CronJob": (name_is_dns_subdomain, validate_cron_job),
}

# The rest of kubectl's default prune allowlist.
_RULES.update({
    "DaemonSet": (name_is_dns_subdomain, validate_daemon_set),
    "ReplicationController": (name_is_dns_subdomain, validate_replication_controller),
    "PersistentVolume": (name_is_dns_subdomain, validate_persistent_volume),
    "PersistentVolumeClaim": (name_is_dns_subdomain, validate_persistent_volume_claim),
    "Ingress": (name_is_dns_subdomain, validate_ingress),
    "IngressClass": (name_is_dns_subdomain, validate_ingress_class),
})
# certificates.k8s.io: node bootstrap (svcnet node join); names are path segments upstream.
_RULES["CertificateSigningRequest"] = (name_is_path_segment, validate_csr)


def _namespaced(kind: str) -> bool:
    return next((r.namespaced for r in RESOURCES if r.kind == kind), True)


def validate(kind: str, obj: Obj, old: Obj | None = None) -> list[Cause]:
    """All of upstream's field errors for `obj` (an update when `old` is given).

    Unknown kinds validate clean. The object is never modified.
    """
    rules = _RULES.get(kind)
    if rules is None:
        return []
    name_fn, validate_rest = rules
    meta = as_dict(obj.get("metadata"))
    if old is None:
        errs = validate_object_meta(meta, _namespaced(kind), name_fn)
    else:
        errs = validate_object_meta_update(meta, as_dict(old.get("metadata")))
    return errs + validate_rest(obj, old)
