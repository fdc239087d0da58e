"""Server-side defaulting, as kube-apiserver applies it before validation.

Mirrors SetDefaults_* of core/v1, apps/v1 and discovery/v1, plus the few
admission plugins every real cluster runs that fill visible fields
(ServiceAccount, Priority, DefaultTolerationSeconds) and the Namespace
strategy's finalizer. IP families, ClusterIPs and NodePorts are left to the
allocator. `apply_defaults` mutates the object in place and never removes
anything the user set, except where upstream does (sessionAffinityConfig with
sessionAffinity None).
"""
from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from svcnet.api.objects import child, spec_of

Obj = dict[str, Any]

DEFAULT_TOLERATION_SECONDS = 300
CLIENT_IP_AFFINITY_SECONDS = 10800


def _dicts(value: Any) -> list[Obj]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _set_default(obj: Obj, key: str, value: Any) -> None:
    """Fill `key` when absent, null or the zero value (as Go's defaulting sees it)."""
    if obj.get(key) in (None, "", 0) and not isinstance(obj.get(key), bool):
        obj[key] = value


def image_tag(image: str) -> str:
    """The tag of an image reference, "latest" when it has neither tag nor digest."""
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        return last.rsplit(":", 1)[1]
    return "" if digest else "latest"


def _default_probe(probe: Any) -> None:
    if not isinstance(probe, dict):
        return
    _set_default(probe, "timeoutSeconds", 1)
    _set_default(probe, "periodSeconds", 10)
    _set_default(probe, "successThreshold", 1)
    _set_default(probe, "failureThreshold", 3)
    _default_http_get(probe.get("httpGet"))


def _default_http_get(http_get: Any) -> None:
    """SetDefaults_HTTPGetAction: probes' and lifecycle hooks' alike."""
    if isinstance(http_get, dict):
        _set_default(http_get, "path", "/")
        _set_default(http_get, "scheme", "HTTP")


def _default_container(container: Obj) -> None:
    if not container.get("imagePullPolicy"):
        tag = image_tag(str(container.get("image") or ""))
        container["imagePullPolicy"] = "Always" if tag == "latest" else "IfNotPresent"
    _set_default(container, "terminationMessagePath", "/dev/termination-log")
    _set_default(container, "terminationMessagePolicy", "File")
    if container.get("resources") is None:
        container["resources"] = {}
    for port in _dicts(container.get("ports")):
        _set_default(port, "protocol", "TCP")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        _default_probe(container.get(probe))
    lifecycle = container.get("lifecycle")
    for hook in ("postStart", "preStop"):
        handler = lifecycle.get(hook) if isinstance(lifecycle, dict) else None
        if isinstance(handler, dict):
            _default_http_get(handler.get("httpGet"))
    for env in _dicts(container.get("env")):
        field_ref = (env.get("valueFrom") or {}).get("fieldRef")
        if isinstance(field_ref, dict):
            _set_default(field_ref, "apiVersion", "v1")


def default_pod_spec(spec: Obj) -> None:
    """SetDefaults_PodSpec and its containers: what pod templates get too."""
    _set_default(spec, "dnsPolicy", "ClusterFirst")
    _set_default(spec, "restartPolicy", "Always")
    if spec.get("securityContext") is None:
        spec["securityContext"] = {}
    if spec.get("terminationGracePeriodSeconds") is None:
        spec["terminationGracePeriodSeconds"] = 30
    _set_default(spec, "schedulerName", "default-scheduler")
    for key in ("initContainers", "containers"):
        for container in _dicts(spec.get(key)):
            _default_container(container)


def _default_pod_template(owner_spec: Obj) -> None:
    template = child(owner_spec, "template")
    default_pod_spec(child(template, "spec"))


def _tolerates(tolerations: list[Obj], key: str) -> bool:
    for t in tolerations:
        effect_ok = t.get("effect") in (None, "", "NoExecute")
        key_ok = t.get("key") in (key, None, "")
        if effect_ok and key_ok:
            return True
    return False


def _default_pod(pod: Obj) -> None:
    spec = child(pod, "spec")
    default_pod_spec(spec)
    # SetDefaults_Pod: requests default to limits, only on Pods (not templates).
    for key in ("initContainers", "containers"):
        for container in _dicts(spec.get(key)):
            resources = container.get("resources") or {}
            limits = resources.get("limits")
            if isinstance(limits, dict) and limits:
                requests = resources.setdefault("requests", {})
                for name, quantity in limits.items():
                    requests.setdefault(name, quantity)
    if spec.get("enableServiceLinks") is None:
        spec["enableServiceLinks"] = True
    if spec.get("hostNetwork"):
        for key in ("initContainers", "containers"):
            for container in _dicts(spec.get(key)):
                for port in _dicts(container.get("ports")):
                    if not port.get("hostPort"):
                        port["hostPort"] = port.get("containerPort")
    # ServiceAccount admission; the deprecated serviceAccount mirrors it on read.
    if not spec.get("serviceAccountName"):
        spec["serviceAccountName"] = spec.get("serviceAccount") or "default"
    _set_default(spec, "serviceAccount", spec["serviceAccountName"])
    # Priority admission without PriorityClasses: priority 0, the default policy.
    if spec.get("priority") is None:
        spec["priority"] = 0
    _set_default(spec, "preemptionPolicy", "PreemptLowerPriority")
    # DefaultTolerationSeconds admission: survive a short node outage for 5 minutes.
    tolerations = spec.get("tolerations")
    if not isinstance(tolerations, list):
        tolerations = []
    for taint in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        if not _tolerates(_dicts(tolerations), taint):
            tolerations.append({"key": taint, "operator": "Exists", "effect": "NoExecute",
                                "tolerationSeconds": DEFAULT_TOLERATION_SECONDS})
    spec["tolerations"] = tolerations


def externally_accessible(service: Obj) -> bool:
    """Upstream service.ExternallyAccessible: NodePort, LoadBalancer, or externalIPs."""
    spec = spec_of(service)
    kind = spec.get("type")
    return kind in ("NodePort", "LoadBalancer") or (kind == "ClusterIP" and bool(spec.get("externalIPs")))


def _default_service(service: Obj) -> None:
    spec = child(service, "spec")
    _set_default(spec, "sessionAffinity", "None")
    if spec["sessionAffinity"] == "None":
        spec.pop("sessionAffinityConfig", None)
    elif spec["sessionAffinity"] == "ClientIP":
        config = spec.get("sessionAffinityConfig")
        client_ip = config.get("clientIP") if isinstance(config, dict) else None
        if not isinstance(client_ip, dict) or client_ip.get("timeoutSeconds") is None:
            spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": CLIENT_IP_AFFINITY_SECONDS}}
    _set_default(spec, "type", "ClusterIP")
    for port in _dicts(spec.get("ports")):
        _set_default(port, "protocol", "TCP")
        if port.get("targetPort") in (None, 0, ""):
            port["targetPort"] = port.get("port")
    if externally_accessible(service):
        _set_default(spec, "externalTrafficPolicy", "Cluster")
    if spec.get("internalTrafficPolicy") is None and spec["type"] in ("ClusterIP", "NodePort", "LoadBalancer"):
        spec["internalTrafficPolicy"] = "Cluster"
    if spec["type"] == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is None:
        spec["allocateLoadBalancerNodePorts"] = True


def _default_namespace(namespace: Obj) -> None:
    meta = child(namespace, "metadata")
    if meta.get("name"):
        child(meta, "labels")["kubernetes.io/metadata.name"] = meta["name"]
    # The namespace strategy sets this finalizer on create. Only an absent list is
    # filled, so the namespace controller's `finalizers: []` is not undone.
    spec = child(namespace, "spec")
    if spec.get("finalizers") is None:
        spec["finalizers"] = ["kubernetes"]
    _set_default(child(namespace, "status"), "phase", "Active")


def _default_node(node: Obj) -> None:
    status = node.get("status")
    if isinstance(status, dict) and status.get("allocatable") is None and status.get("capacity") is not None:
        status["allocatable"] = dict(status["capacity"])


def _default_endpoints(endpoints: Obj) -> None:
    for subset in _dicts(endpoints.get("subsets")):
        for port in _dicts(subset.get("ports")):
            _set_default(port, "protocol", "TCP")


def _default_endpoint_slice(slice_: Obj) -> None:
    for port in _dicts(slice_.get("ports")):
        if port.get("name") is None:
            port["name"] = ""
        _set_default(port, "protocol", "TCP")


def _default_replicas(spec: Obj) -> None:
    if spec.get("replicas") is None:
        spec["replicas"] = 1


def _default_deployment(deployment: Obj) -> None:
    spec = child(deployment, "spec")
    _default_replicas(spec)
    strategy = child(spec, "strategy")
    _set_default(strategy, "type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = child(strategy, "rollingUpdate")
        if rolling.get("maxUnavailable") is None:
            rolling["maxUnavailable"] = "25%"
        if rolling.get("maxSurge") is None:
            rolling["maxSurge"] = "25%"
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = 10
    if spec.get("progressDeadlineSeconds") is None:
        spec["progressDeadlineSeconds"] = 600
    _default_pod_template(spec)


def _default_replica_set(replica_set: Obj) -> None:
    spec = child(replica_set, "spec")
    _default_replicas(spec)
    _default_pod_template(spec)


def _default_stateful_set(stateful_set: Obj) -> None:
    spec = child(stateful_set, "spec")
    _set_default(spec, "podManagementPolicy", "OrderedReady")
    strategy = child(spec, "updateStrategy")
    _set_default(strategy, "type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = child(strategy, "rollingUpdate")
        if rolling.get("partition") is None:
            rolling["partition"] = 0
    retention = child(spec, "persistentVolumeClaimRetentionPolicy")
    _set_default(retention, "whenDeleted", "Retain")
    _set_default(retention, "whenScaled", "Retain")
    _default_replicas(spec)
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = 10
    _default_pod_template(spec)


def _default_secret(secret: Obj) -> None:
    """type defaults to Opaque (SetDefaults_Secret); stringData is merged into data, its
    values winning, and dropped, as the v1-to-internal conversion does: it is never stored."""
    _set_default(secret, "type", "Opaque")
    string_data = secret.pop("stringData", None)
    if isinstance(string_data, dict) and string_data:
        data = child(secret, "data")
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value or "").encode()).decode()


def _default_pod_failure_policy(policy: Any) -> None:
    """SetDefaults_PodFailurePolicyOnPodConditionsPattern: a pattern's status is True."""
    for rule in _dicts(policy.get("rules")) if isinstance(policy, dict) else []:
        for pattern in _dicts(rule.get("onPodConditions")):
            _set_default(pattern, "status", "True")


def _default_job_spec(spec: Obj) -> None:
    """batch/v1 SetDefaults_Job's spec part (1.32, JobPodReplacementPolicy on)."""
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
    if spec.get("parallelism") is None:
        spec["parallelism"] = 1
    if spec.get("backoffLimit") is None:
        # With a per-index limit the global one is effectively off.
        spec["backoffLimit"] = 2147483647 if spec.get("backoffLimitPerIndex") is not None else 6
    _set_default(spec, "completionMode", "NonIndexed")
    if spec.get("suspend") is None:
        spec["suspend"] = False
    policy = spec.get("podFailurePolicy")
    _default_pod_failure_policy(policy)
    if spec.get("podReplacementPolicy") is None:
        spec["podReplacementPolicy"] = "Failed" if isinstance(policy, dict) else "TerminatingOrFailed"
    if spec.get("manualSelector") is None:
        spec["manualSelector"] = False


def _default_job(job: Obj) -> None:
    spec = child(job, "spec")
    _default_job_spec(spec)
    template_meta = child(spec, "template").get("metadata")
    template_labels = template_meta.get("labels") if isinstance(template_meta, dict) else None
    meta = child(job, "metadata")
    if template_labels is not None and not meta.get("labels"):
        meta["labels"] = dict(template_labels)
    _default_pod_template(spec)


def _default_cron_job(cron_job: Obj) -> None:
    """batch/v1 SetDefaults_CronJob; the job template's pod template gets the pod defaults (the
    Job-level defaults are applied when the controller creates the Job)."""
    spec = child(cron_job, "spec")
    _set_default(spec, "concurrencyPolicy", "Allow")
    if spec.get("suspend") is None:
        spec["suspend"] = False
    if spec.get("successfulJobsHistoryLimit") is None:
        spec["successfulJobsHistoryLimit"] = 3
    if spec.get("failedJobsHistoryLimit") is None:
        spec["failedJobsHistoryLimit"] = 1
    job_spec = child(child(spec, "jobTemplate"), "spec")
    _default_pod_failure_policy(job_spec.get("podFailurePolicy"))
    _default_pod_template(job_spec)


_RBAC_GROUP = "rbac.authorization.k8s.io"


def _default_binding(binding: Obj) -> None:
    """rbac/v1 SetDefaults_RoleBinding/ClusterRoleBinding/Subject: roleRef.apiGroup is the RBAC
    group; a User or Group subject's apiGroup too (a ServiceAccount's stays "")."""
    ref = binding.get("roleRef")
    if isinstance(ref, dict) and not ref.get("apiGroup"):
        ref["apiGroup"] = _RBAC_GROUP
    for subject in binding.get("subjects") or []:
        if isinstance(subject, dict) and not subject.get("apiGroup") and subject.get("kind") in ("User", "Group"):
            subject["apiGroup"] = _RBAC_GROUP


def _default_daemon_set(daemon_set: Obj) -> None:
    """apps/v1 SetDefaults_DaemonSet: RollingUpdate one node at a time, 10 revisions kept."""
    spec = child(daemon_set, "spec")
    strategy = child(spec, "updateStrategy")
    _set_default(strategy, "type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = child(strategy, "rollingUpdate")
        if rolling.get("maxUnavailable") is None:
            rolling["maxUnavailable"] = 1
        if rolling.get("maxSurge") is None:
            rolling["maxSurge"] = 0
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = 10
    _default_pod_template(spec)


def _default_replication_controller(rc: Obj) -> None:
    """core/v1 SetDefaults_ReplicationController: selector and labels from the template's labels."""
    spec = child(rc, "spec")
    template = spec.get("template")
    if isinstance(template, dict):
        template_labels = (template.get("metadata") or {}).get("labels") or {}
        if template_labels:
            if not spec.get("selector"):
                spec["selector"] = dict(template_labels)
            md = child(rc, "metadata")
            if not md.get("labels"):
                md["labels"] = dict(template_labels)
        _default_pod_template(spec)
    _default_replicas(spec)


def _default_persistent_volume(pv: Obj) -> None:
    spec = child(pv, "spec")
    _set_default(spec, "persistentVolumeReclaimPolicy", "Retain")
    _set_default(spec, "volumeMode", "Filesystem")
    status = pv.get("status")
    if isinstance(status, dict):
        _set_default(status, "phase", "Pending")


def _default_persistent_volume_claim(pvc: Obj) -> None:
    _set_default(child(pvc, "spec"), "volumeMode", "Filesystem")
    _set_default(child(pvc, "status"), "phase", "Pending")


def _no_defaults(_: Obj) -> None:
    """Event, Lease, ServiceCIDR, ConfigMap, ServiceAccount, Ingress (v1: pathType has no default)
    and IngressClass have no server-side defaults upstream."""


_DEFAULTERS: dict[str, Callable[[Obj], None]] = {
    "Namespace": _default_namespace,
    "Node": _default_node,
    "Pod": _default_pod,
    "Service": _default_service,
    "Endpoints": _default_endpoints,
    "EndpointSlice": _default_endpoint_slice,
    "Deployment": _default_deployment,
    "ReplicaSet": _default_replica_set,
    "StatefulSet": _default_stateful_set,
    "Event": _no_defaults,
    "Lease": _no_defaults,
    "ServiceCIDR": _no_defaults,
    "ConfigMap": _no_defaults,
    "Secret": _default_secret,
    "ServiceAccount": _no_defaults,
    "Role": _no_defaults,
    "ClusterRole": _no_defaults,
    "RoleBinding": _default_binding,
    "ClusterRoleBinding": _default_binding,
    "Job": _default_job,
    "CronJob": _default_cron_job,
}

# The rest of kubectl's default prune allowlist.
_DEFAULTERS.update({
    "DaemonSet": _default_daemon_set,
    "ReplicationController": _default_replication_controller,
    "PersistentVolume": _default_persistent_volume,
    "PersistentVolumeClaim": _default_persistent_volume_claim,
    "Ingress": _no_defaults,
    "IngressClass": _no_defaults,
})


def _default_csr(csr: Obj) -> None:
    """certificates/v1 SetDefaults_CertificateSigningRequestCondition: a condition without a status is True."""
    status = csr.get("status")
    for cond in (status.get("conditions") or []) if isinstance(status, dict) else []:
        if isinstance(cond, dict) and not cond.get("status"):
            cond["status"] = "True"


_DEFAULTERS["CertificateSigningRequest"] = _default_csr


def apply_defaults(kind: str, obj: Obj) -> None:
    """Fill upstream's defaults for `kind` into `obj` (mutates; unknown kinds untouched)."""
    defaulter = _DEFAULTERS.get(kind)
    if defaulter is not None:
        defaulter(obj)
