"""Validation of ObjectMeta (labels, annotations, finalizers, owner references) and label selectors,
as apimachinery's ValidateObjectMeta and ValidateLabelSelector."""
from __future__ import annotations

from typing import Any

from svcnet.api.errors import Cause
from svcnet.api.selectors import (
    label_key_errors,
    label_value_errors,
)

from .fields import (
    NameFn,
    Obj,
    as_dict,
    as_int,
    as_list,
    as_str,
    each_error,
    forbidden,
    go_string_slice,
    immutable,
    invalid,
    name_is_dns_label,
    nonnegative,
    required,
    too_long,
)

# --- metadata ----------------------------------------------------------------

TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024
_STANDARD_FINALIZERS = ("kubernetes", "orphan", "foregroundDeletion")


def validate_labels(labels: Any, path: str) -> list[Cause]:
    errs: list[Cause] = []
    for key, value in sorted(as_dict(labels).items()):
        errs.extend(each_error(path, key, label_key_errors(key)))
        errs.extend(each_error(path, as_str(value), label_value_errors(as_str(value))))
    return errs


def validate_annotations(annotations: Any, path: str) -> list[Cause]:
    items = as_dict(annotations)
    errs: list[Cause] = []
    for key in sorted(items):
        # Annotation keys are qualified names, case-insensitively.
        errs.extend(each_error(path, key, label_key_errors(key.lower())))
    if sum(len(k) + len(as_str(v)) for k, v in items.items()) > TOTAL_ANNOTATION_SIZE_LIMIT:
        errs.append(too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT))
    return errs


def validate_finalizer_name(name: str, path: str) -> list[Cause]:
    errs = each_error(path, name, label_key_errors(name))
    if not errs and "/" not in name and name not in _STANDARD_FINALIZERS:
        errs.append(invalid(path, name, "name is neither a standard finalizer name nor is it fully qualified"))
    return errs


def validate_object_meta(meta: Obj, namespaced: bool, name_fn: NameFn, path: str = "metadata") -> list[Cause]:
    errs: list[Cause] = []
    generate_name = as_str(meta.get("generateName"))
    if generate_name:
        errs.extend(each_error(f"{path}.generateName", generate_name, name_fn(generate_name, True)))
    name = as_str(meta.get("name"))
    if not name:
        errs.append(required(f"{path}.name", "name or generateName is required"))
    else:
        errs.extend(each_error(f"{path}.name", name, name_fn(name, False)))
    namespace = as_str(meta.get("namespace"))
    if namespaced:
        if not namespace:
            errs.append(required(f"{path}.namespace"))
        else:
            errs.extend(each_error(f"{path}.namespace", namespace, name_is_dns_label(namespace, False)))
    elif namespace:
        errs.append(forbidden(f"{path}.namespace", "not allowed on this type"))
    errs.extend(nonnegative(meta.get("generation"), f"{path}.generation"))
    errs.extend(validate_labels(meta.get("labels"), f"{path}.labels"))
    errs.extend(validate_annotations(meta.get("annotations"), f"{path}.annotations"))
    finalizers = [as_str(f) for f in as_list(meta.get("finalizers"))]
    for i, finalizer in enumerate(finalizers):
        errs.extend(validate_finalizer_name(finalizer, f"{path}.finalizers[{i}]"))
    if "orphan" in finalizers and "foregroundDeletion" in finalizers:
        errs.append(invalid(f"{path}.finalizers", finalizers, "finalizers 'orphan' and 'foregroundDeletion' "
                            "cannot be both set"))
    errs.extend(validate_owner_references(meta.get("ownerReferences"), f"{path}.ownerReferences"))
    return errs


def validate_owner_references(refs: Any, path: str) -> list[Cause]:
    """apimachinery's ValidateOwnerReferences: each names apiVersion, kind, name and uid;
    at most one is the controller."""
    errs: list[Cause] = []
    controllers: list[str] = []
    for i, ref in enumerate(as_list(refs)):
        if not isinstance(ref, dict):
            errs.append(invalid(f"{path}[{i}]", ref, "must be an object"))
            continue
        for field in ("apiVersion", "kind", "name", "uid"):
            if not as_str(ref.get(field)):
                errs.append(required(f"{path}[{i}].{field}") if field != "apiVersion" else
                            invalid(f"{path}[{i}].apiVersion", ref.get(field), "version must not be empty"))
        if ref.get("controller") is True:
            controllers.append(as_str(ref.get("name")))
    if len(controllers) > 1:
        errs.append(invalid(path, refs, "Only one reference can have Controller set to true. Found \"true\" "
                            f"in references for {' and '.join(controllers)}"))
    return errs


def validate_object_meta_update(new: Obj, old: Obj, path: str = "metadata") -> list[Cause]:
    """Identity fields are immutable. uid/creationTimestamp are compared only when the
    new object carries them: the registry copies them from the stored object otherwise."""
    errs: list[Cause] = []
    for key in ("name", "namespace"):
        if as_str(new.get(key)) != as_str(old.get(key)):
            errs.append(immutable(f"{path}.{key}", as_str(new.get(key))))
    for key in ("uid", "creationTimestamp"):
        if new.get(key) and old.get(key) and new.get(key) != old.get(key):
            errs.append(immutable(f"{path}.{key}", new.get(key)))
    old_generation, new_generation = as_int(old.get("generation")), as_int(new.get("generation"))
    if old_generation is not None and new_generation is not None and new_generation < old_generation:
        errs.append(invalid(f"{path}.generation", new_generation, "must not be decremented"))
    if old.get("deletionTimestamp"):
        added = set(as_list(new.get("finalizers"))) - set(as_list(old.get("finalizers")))
        if added:
            errs.append(forbidden(f"{path}.finalizers",
                                  "no new finalizers can be added if the object is being deleted, "
                                  f"found new finalizers {go_string_slice(sorted(map(str, added)))}"))
    errs.extend(validate_labels(new.get("labels"), f"{path}.labels"))
    errs.extend(validate_annotations(new.get("annotations"), f"{path}.annotations"))
    return errs


# --- label selectors ---------------------------------------------------------

def validate_label_selector(selector: Any, path: str) -> list[Cause]:
    """metav1 ValidateLabelSelector (strict label values, as apps kinds use)."""
    if selector is None:
        return []
    sel = as_dict(selector)
    errs = validate_labels(sel.get("matchLabels"), f"{path}.matchLabels")
    for i, expr in enumerate(as_list(sel.get("matchExpressions"))):
        expr = as_dict(expr)
        expr_path = f"{path}.matchExpressions[{i}]"
        operator, values = as_str(expr.get("operator")), as_list(expr.get("values"))
        if operator in ("In", "NotIn"):
            if not values:
                errs.append(required(f"{expr_path}.values", "must be specified when `operator` is 'In' or 'NotIn'"))
        elif operator in ("Exists", "DoesNotExist"):
            if values:
                errs.append(forbidden(f"{expr_path}.values",
                                      "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
        else:
            errs.append(invalid(f"{expr_path}.operator", operator, "not a valid selector operator"))
        key = as_str(expr.get("key"))
        errs.extend(each_error(f"{expr_path}.key", key, label_key_errors(key)))
        for j, value in enumerate(values):
            errs.extend(each_error(f"{expr_path}.values[{j}]", as_str(value), label_value_errors(as_str(value))))
    return errs


