"""The patch engines behind PATCH requests: JSON patch, JSON merge patch, strategic merge patch
and server-side apply with managedFields. All pure: objects in, objects (or ApiError) out."""
from __future__ import annotations

from .fieldpath import from_fields_v1, path_string, to_fields_v1
from .jsonpatches import MAX_JSON_PATCH_OPERATIONS, json_merge_patch, json_patch
from .managed import (
    APPLY,
    BEFORE_FIRST_APPLY,
    UPDATE,
    ManagedEntry,
    ManagerKey,
    decode_managed_fields,
    encode_managed_fields,
    field_manager_for,
    last_applied_configuration,
    record_update,
    server_side_apply,
    zero_object,
)
from .strategic import strategic_merge_patch
from .strategy_schema import SchemaResolver

# The PATCH content types kube-apiserver accepts.
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH)

__all__ = [
    "APPLY",
    "APPLY_PATCH",
    "BEFORE_FIRST_APPLY",
    "JSON_PATCH",
    "MAX_JSON_PATCH_OPERATIONS",
    "MERGE_PATCH",
    "PATCH_TYPES",
    "STRATEGIC_MERGE_PATCH",
    "UPDATE",
    "ManagedEntry",
    "ManagerKey",
    "SchemaResolver",
    "decode_managed_fields",
    "encode_managed_fields",
    "field_manager_for",
    "from_fields_v1",
    "json_merge_patch",
    "json_patch",
    "last_applied_configuration",
    "path_string",
    "record_update",
    "server_side_apply",
    "strategic_merge_patch",
    "to_fields_v1",
    "zero_object",
]
