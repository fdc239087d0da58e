"""core/v1 ConfigMap, Secret and ServiceAccount validation (ValidateConfigMap, ValidateSecret,
ValidateServiceAccount and their Update forms in pkg/apis/core/validation).

Map keys are checked in sorted order (upstream walks Go maps, in random order)."""
from __future__ import annotations

import json
import re
from typing import Any

from svcnet.api.errors import Cause
from svcnet.api.selectors import max_len_error, regex_error
from svcnet.apiserver.gobase64 import lenient_decode

from .fields import Obj, as_dict, forbidden, immutable, invalid, required, semantic_equal, too_long

# core.MaxSecretSize: the limit on a Secret's data and on a ConfigMap's data plus binaryData.
MAX_SECRET_SIZE = 1 * 1024 * 1024

_CONFIG_MAP_KEY_FMT = "[-._a-zA-Z0-9]+"
_CONFIG_MAP_KEY_RE = re.compile(f"^{_CONFIG_MAP_KEY_FMT}$")
_CONFIG_MAP_KEY_MSG = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
_IMMUTABLE_SET = "field is immutable when `immutable` is set"
_REDACTED = "<secret contents redacted>"

# Secret types with required keys, and the keys (k8s.io/api/core/v1 constants).
SERVICE_ACCOUNT_TOKEN = "kubernetes.io/service-account-token"
SERVICE_ACCOUNT_NAME_KEY = "kubernetes.io/service-account.name"
DOCKERCFG = "kubernetes.io/dockercfg"
DOCKER_CONFIG_JSON = "kubernetes.io/dockerconfigjson"
BASIC_AUTH = "kubernetes.io/basic-auth"
SSH_AUTH = "kubernetes.io/ssh-auth"
TLS = "kubernetes.io/tls"


def config_map_key_errors(key: str) -> list[str]:
    """apimachinery's IsConfigMapKey."""
    errs = []
    if len(key) > 253:
        errs.append(max_len_error(253))
    if not _CONFIG_MAP_KEY_RE.match(key):
        errs.append(regex_error(_CONFIG_MAP_KEY_MSG, _CONFIG_MAP_KEY_FMT, "key.name", "KEY_NAME", "key-name"))
    if key == ".":
        errs.append("must not be '.'")
    elif key == "..":
        errs.append("must not be '..'")
    elif key.startswith(".."):
        errs.append("must not start with '..'")
    return errs


def _key_errors(path: str, mapping: Obj) -> list[Cause]:
    return [invalid(f"{path}[{key}]", key, msg)
            for key in sorted(mapping) for msg in config_map_key_errors(key)]


def _text_size(value: Any) -> int:
    return len(value.encode()) if isinstance(value, str) else 0


def validate_config_map(config_map: Obj, old: Obj | None) -> list[Cause]:
    errs = _immutable_errors(config_map, old, ("data", "binaryData"))
    data = as_dict(config_map.get("data"))
    binary = as_dict(config_map.get("binaryData"))
    errs += _key_errors("data", data)
    errs += [invalid(f"data[{key}]", key, "duplicate of key present in binaryData")
             for key in sorted(data) if key in binary]
    errs += _key_errors("binaryData", binary)
    total = sum(_text_size(v) for v in data.values()) + sum(len(lenient_decode(v)) for v in binary.values())
    if total > MAX_SECRET_SIZE:
        errs.append(too_long("", MAX_SECRET_SIZE))  # the path "" names the whole object
    return errs


def _immutable_errors(obj: Obj, old: Obj | None, fields: tuple[str, ...]) -> list[Cause]:
    """Once immutable is true, it stays true and the data fields never change."""
    if old is None or old.get("immutable") is not True:
        return []
    errs = []
    if obj.get("immutable") is not True:
        errs.append(forbidden("immutable", _IMMUTABLE_SET))
    # Absent and empty maps compare equal: upstream never stores an empty map (it is omitted),
    # svcnet may, and a later patch of the metadata would carry it along.
    errs += [forbidden(name, _IMMUTABLE_SET) for name in fields
             if not semantic_equal(obj.get(name), old.get(name))]
    return errs


def validate_secret(secret: Obj, old: Obj | None) -> list[Cause]:
    errs: list[Cause] = []
    if old is not None and secret.get("type") != old.get("type"):
        errs.append(immutable("type", secret.get("type")))
    errs += _immutable_errors(secret, old, ("data",))
    data = as_dict(secret.get("data"))
    errs += _key_errors("data", data)
    if sum(len(lenient_decode(v)) for v in data.values()) > MAX_SECRET_SIZE:
        errs.append(too_long("data", MAX_SECRET_SIZE))
    return errs + _secret_type_errors(secret, data)


def _secret_type_errors(secret: Obj, data: Obj) -> list[Cause]:
    """The keys each well-known type requires. Opaque, bootstrap.kubernetes.io/token and any
    other type require none: upstream's API server checks only these."""
    kind = secret.get("type")
    if kind == SERVICE_ACCOUNT_TOKEN:
        annotations = as_dict(as_dict(secret.get("metadata")).get("annotations"))
        if not annotations.get(SERVICE_ACCOUNT_NAME_KEY):
            return [required(f"metadata.annotations[{SERVICE_ACCOUNT_NAME_KEY}]")]
    elif kind in (DOCKERCFG, DOCKER_CONFIG_JSON):
        key = ".dockercfg" if kind == DOCKERCFG else ".dockerconfigjson"
        if key not in data:
            return [required(f"data[{key}]")]
        problem = json_object_error(lenient_decode(data[key]))
        if problem:
            return [invalid(f"data[{key}]", _REDACTED, problem)]
    elif kind == BASIC_AUTH:
        if "username" not in data and "password" not in data:
            return [required("data[username]"), required("data[password]")]
    elif kind == SSH_AUTH:
        if not lenient_decode(data.get("ssh-privatekey")):
            return [required("data[ssh-privatekey]")]
    elif kind == TLS:
        return [required(f"data[{key}]") for key in ("tls.crt", "tls.key") if key not in data]
    return []


def validate_service_account(service_account: Obj, old: Obj | None) -> list[Cause]:
    """Only the metadata (checked by the caller) is validated upstream."""
    return []


# --- json.Unmarshal(bytes, &map[string]interface{}{})'s errors, for docker config secrets

_GO_JSON_KINDS = {dict: "object", list: "array", str: "string", bool: "bool", int: "number",
                  float: "number", type(None): ""}


def json_object_error(raw: bytes) -> str:
    """'' when raw is a JSON object (or null); else Go's encoding/json error text."""
    try:
        value = json.loads(raw)
    except UnicodeDecodeError:
        return "invalid character in string literal"
    except json.JSONDecodeError as exc:
        return _syntax_error(raw, exc)
    kind = _GO_JSON_KINDS.get(type(value), "value")
    if kind in ("object", ""):
        return ""
    return f"json: cannot unmarshal {kind} into Go value of type map[string]interface {{}}"


_CONTEXT = {
    "Expecting value": "looking for beginning of value",
    "Expecting property name enclosed in double quotes": "looking for beginning of object key string",
    "Expecting ':' delimiter": "after object key",
    "Expecting ',' delimiter": "after object key:value pair",
    "Extra data": "after top-level value",
}


_LITERALS = {"t": "true", "f": "false", "n": "null"}


def _syntax_error(raw: bytes, exc: json.JSONDecodeError) -> str:
    if exc.pos >= len(exc.doc.rstrip()):
        return "unexpected end of JSON input"
    char = exc.doc[exc.pos]
    if exc.msg == "Expecting value" and char in _LITERALS:
        return _literal_error(exc.doc[exc.pos:], _LITERALS[char])
    context = _CONTEXT.get(exc.msg, "looking for beginning of value")
    if exc.msg == "Expecting ',' delimiter" and _inside_array(exc.doc, exc.pos):
        context = "after array element"
    return f"invalid character {_go_quote_char(char)} {context}"


def _literal_error(rest: str, literal: str) -> str:
    """Go reads true/false/null letter by letter and names the first wrong one."""
    for i, expected in enumerate(literal):
        if i == len(rest):
            return "unexpected end of JSON input"
        if rest[i] != expected:
            return f"invalid character {_go_quote_char(rest[i])} in literal {literal} (expecting {_go_quote_char(expected)})"
    return f"invalid character {_go_quote_char(rest[len(literal)])} after top-level value"


def _inside_array(doc: str, pos: int) -> bool:
    """Whether the innermost open container at pos is an array (strings skipped)."""
    stack: list[str] = []
    in_string = escaped = False
    for char in doc[:pos]:
        if in_string:
            escaped = not escaped and char == "\\"
            in_string = escaped or char != '"'
        elif char == '"':
            in_string = True
        elif char in "[{":
            stack.append(char)
        elif char in "]}" and stack:
            stack.pop()
    return bool(stack) and stack[-1] == "["


def _go_quote_char(char: str) -> str:
    if char == "'":
        return "'\\''"
    if char == '"':
        return "'\"'"
    quoted = json.dumps(char)[1:-1]
    return f"'{quoted}'"
