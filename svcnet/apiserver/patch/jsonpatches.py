"""JSON merge patch (RFC 7386) and JSON patch (RFC 6902), answering errors as kube-apiserver does."""
from __future__ import annotations

import json
from typing import Any

import jsonpatch
import jsonpointer

from svcnet.api import jsoncodec
from svcnet.api.errors import ApiError, bad_request

# kube-apiserver refuses longer JSON patches (maxJSONPatchOperations).
MAX_JSON_PATCH_OPERATIONS = 10000

# NewGenericServerResponse(422, ...) drops the underlying error and says only this.
_GENERIC_INVALID = "the server rejected our request due to an error in our request"


def generic_invalid() -> ApiError:
    """The 422 kube-apiserver answers for a patch that does not apply (details are empty)."""
    return ApiError(422, "Invalid", _GENERIC_INVALID)


def json_merge_patch(original: dict[str, Any], patch: Any) -> dict[str, Any]:
    """RFC 7386 merge patch as evanphx/json-patch applies it for kube-apiserver.

    Nulls delete keys; a value that lands where there was no object has its nested nulls pruned.
    """
    if isinstance(patch, list):
        doc = json.dumps(patch, separators=(",", ":"))
        raise ApiError(422, "Invalid", f'patch: Invalid value: "{doc}": json: cannot unmarshal array '
                       "into Go value of type map[string]interface {}")
    if not isinstance(patch, dict):
        raise bad_request("Invalid JSON Patch")
    result = jsoncodec.deepcopy(original)
    _merge_docs(result, jsoncodec.deepcopy(patch))
    return result


def _merge_docs(doc: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if value is None:
            doc.pop(key, None)
            continue
        current = doc.get(key)
        if current is None:
            doc[key] = jsoncodec.without_nulls(value)
        elif isinstance(current, dict) and isinstance(value, dict):
            _merge_docs(current, value)
        elif isinstance(current, dict):
            doc[key] = value  # evanphx keeps a non-object patch value as sent here
        else:
            doc[key] = jsoncodec.without_nulls(value)



def json_patch(original: dict[str, Any], ops: Any) -> dict[str, Any]:
    """RFC 6902 patch. A patch that does not apply is a 422 with upstream's generic message."""
    if not isinstance(ops, list):
        kind = "object" if isinstance(ops, dict) else type(ops).__name__
        raise bad_request(f"json: cannot unmarshal {kind} into Go value of type jsonpatch.Patch")
    if len(ops) > MAX_JSON_PATCH_OPERATIONS:
        raise ApiError(413, "RequestEntityTooLarge",
                       "Request entity too large: The allowed maximum operations in a JSON patch "
                       f"is {MAX_JSON_PATCH_OPERATIONS}, got {len(ops)}")
    try:
        result = jsonpatch.JsonPatch(ops).apply(original, in_place=False)
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException,
            KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise generic_invalid() from exc
    if not isinstance(result, dict):
        raise generic_invalid()
    return result
