"""core/v1 Namespace validation."""
from __future__ import annotations

from svcnet.api.errors import Cause

from .fields import Obj, as_dict, as_list, as_str
from .meta import validate_finalizer_name


def validate_namespace(namespace: Obj, old: Obj | None) -> list[Cause]:
    errs: list[Cause] = []
    for finalizer in as_list(as_dict(namespace.get("spec")).get("finalizers")):
        # Upstream reports spec finalizers without an index.
        errs.extend(validate_finalizer_name(as_str(finalizer), "spec.finalizers"))
    return errs


