"""Bodies of subresources: core/v1 Binding (pods/binding), PodExecOptions (pods/exec) and
autoscaling/v1 Scale (*/scale)."""
from __future__ import annotations

from .dsl import AUTOSCALING, CORE, TYPE_META, define, define_kind

# core/v1 Binding: the body of pods/binding (how the scheduler sets spec.nodeName)
define_kind(CORE, "Binding", "", "v1", """
    target ObjectReference
""", required="target", with_list=False)

# core/v1 PodExecOptions: what pods/exec reads from its query string (a kind with no metadata)
define(CORE, "PodExecOptions", TYPE_META + """
    command []string list=atomic
    container string
    stderr bool
    stdin bool
    stdout bool
    tty bool
""", required="command", kind=("", "v1"))

# ---------------------------------------------------------------------------
# autoscaling/v1 Scale, discovery.k8s.io/v1, coordination.k8s.io/v1

define_kind(AUTOSCALING, "Scale", "autoscaling", "v1", """
    spec ScaleSpec
    status ScaleStatus
""", with_list=False)
define(AUTOSCALING, "ScaleSpec", "replicas int32")
define(AUTOSCALING, "ScaleStatus", """
    replicas int32
    selector string
""", required="replicas")

