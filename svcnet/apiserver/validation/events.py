"""core/v1 Event validation: only upstream's lenient legacy checks."""
from __future__ import annotations

from svcnet.api.errors import Cause
from svcnet.api.selectors import (
    dns1123_subdomain_errors,
    label_key_errors,
)

from .fields import Obj, as_dict, as_str, each_error, invalid, required


def validate_event(event: Obj, old: Obj | None) -> list[Cause]:
    """core/v1 Events get only the legacy checks (upstream keeps them lenient)."""
    errs: list[Cause] = []
    namespace = as_str(as_dict(event.get("metadata")).get("namespace"))
    involved_namespace = as_str(as_dict(event.get("involvedObject")).get("namespace"))
    if not event.get("eventTime"):
        mismatch = (namespace not in ("", "default") if not involved_namespace
                    else namespace != involved_namespace)
    else:
        mismatch = not involved_namespace and namespace not in ("default", "kube-system")
        for key, limit in (("reportingController", None), ("reportingInstance", 128), ("action", 128),
                           ("reason", 128)):
            value = as_str(event.get(key))
            if not value:
                errs.append(required(key))
            elif limit is not None and len(value) > limit:
                errs.append(invalid(key, "", f"can have at most {limit} characters"))
        controller = as_str(event.get("reportingController"))
        if controller:
            errs.extend(each_error("reportingController", controller, label_key_errors(controller)))
        if len(as_str(event.get("message"))) > 1024:
            errs.append(invalid("message", "", "can have at most 1024 characters"))
    if mismatch:
        errs.append(invalid("involvedObject.namespace", involved_namespace, "does not match event.namespace"))
    errs.extend(each_error("namespace", namespace, dns1123_subdomain_errors(namespace)))
    return errs

