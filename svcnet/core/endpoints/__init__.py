"""What EndpointSlices and Endpoints a Service should have: pure decisions over plain objects.

The shared logic of kube-controller-manager's EndpointSlice controller (the
k8s.io/endpointslice reconciler) and its legacy Endpoints controller, one
module per concern:

- selection: which Services select which pods (and the label index that finds
  them), which pod changes call for a sync;
- pods: what a pod contributes, for both kinds: whether it counts (an IP, not
  finished; terminating only if asked), its IPs by family, hostname, resolved
  ports, targetRef;
- slices: each pod's discovery/v1 endpoint, slice objects, and the
  reconciler's minimal-churn plan (plan_endpoint_slices);
- legacy: the core/v1 Endpoints object, subsets repacked and sorted as
  upstream's RepackSubsets does, truncated at 1000 addresses (endpoints_update);
- triggertime: the last-change-trigger-time annotation (TriggerState);
- hints: topology hints (trafficDistribution PreferClose, the topology-mode
  Auto annotation) on the slices about to be written.

The controllers import this package and use the names below; nothing here does
I/O: they feed it informer caches and write the result.
"""
from __future__ import annotations

from svcnet.core.endpoints.hints import HintEvent, TopologyCache, hints_enabled, node_topology_changed
from svcnet.core.endpoints.legacy import (
    ANNOTATION_OVER_CAPACITY,
    LEADER_ELECTION_ANNOTATION,
    MAX_ENDPOINTS_ADDRESSES,
    OVER_CAPACITY_TRUNCATED,
    desired_subsets,
    endpoints_update,
    repack_subsets,
    truncate_subsets,
)
from svcnet.core.endpoints.pods import (
    LABEL_HEADLESS,
    find_port,
    pod_ips,
    service_ip_set,
    should_pod_be_in_endpoints,
    should_set_hostname,
)
from svcnet.core.endpoints.selection import (
    LabelIndex,
    manages_endpoints,
    pod_endpoints_changed,
    pod_label_index_keys,
    selector_index_keys,
    selects,
    service_selector,
    services_to_update,
)
from svcnet.core.endpoints.slices import (
    CONTROLLER_NAME,
    LABEL_MANAGED_BY,
    LABEL_SERVICE_NAME,
    LABEL_ZONE,
    MAX_ENDPOINTS_PER_SLICE,
    EndpointKey,
    SlicePlan,
    address_types,
    endpoint_key,
    endpoints_equal_beyond_key,
    managed_by_controller,
    new_slice,
    owned_by,
    plan_endpoint_slices,
    port_set_key,
    service_owner_reference,
    slice_endpoint,
    slice_labels,
    slice_name_prefix,
    slice_ports_for_pod,
)
from svcnet.core.endpoints.triggertime import (
    ANNOTATION_TRIGGER_TIME,
    TriggerState,
    format_trigger_time,
    meta_annotations,
    next_trigger_time,
)

__all__ = [
    "ANNOTATION_OVER_CAPACITY", "ANNOTATION_TRIGGER_TIME", "CONTROLLER_NAME", "LABEL_HEADLESS", "LABEL_MANAGED_BY",
    "LABEL_SERVICE_NAME", "LABEL_ZONE", "LEADER_ELECTION_ANNOTATION", "MAX_ENDPOINTS_ADDRESSES",
    "MAX_ENDPOINTS_PER_SLICE", "OVER_CAPACITY_TRUNCATED", "EndpointKey", "HintEvent", "LabelIndex", "SlicePlan", "TriggerState",
    "TopologyCache", "hints_enabled", "node_topology_changed",
    "address_types", "desired_subsets", "endpoint_key", "endpoints_equal_beyond_key", "endpoints_update",
    "find_port", "format_trigger_time", "managed_by_controller", "manages_endpoints", "meta_annotations",
    "new_slice", "next_trigger_time", "owned_by", "plan_endpoint_slices", "pod_endpoints_changed", "pod_ips",
    "pod_label_index_keys", "port_set_key", "repack_subsets", "selector_index_keys", "selects",
    "service_ip_set", "service_owner_reference", "service_selector", "services_to_update",
    "should_pod_be_in_endpoints", "should_set_hostname", "slice_endpoint", "slice_labels", "slice_name_prefix",
    "slice_ports_for_pod", "truncate_subsets",
]
