"""Label and field selectors: parse, match and render them as upstream does.

Grammar, matching and error wording follow apimachinery's labels and fields
packages, so `kubectl get -l ...` and `--field-selector ...` behave (and fail)
exactly as against kube-apiserver. Everything here is pure: label syntax in
syntax.py, label selectors in labels.py, field selectors in fields.py.
"""
from __future__ import annotations

from .fields import FieldRequirement, FieldSelector, parse_field_selector, selectable_fields
from .labels import (
    DOES_NOT_EXIST,
    DOUBLE_EQUALS,
    EQUALS,
    EVERYTHING,
    EXISTS,
    GREATER_THAN,
    IN,
    LESS_THAN,
    NOT_EQUALS,
    NOT_IN,
    NOTHING,
    LabelSelector,
    Requirement,
    format_label_selector,
    label_selector_from_object,
    new_requirement,
    parse_label_selector,
    selector_from_set,
    selector_to_string,
)
from .syntax import (
    DNS1123_LABEL_FMT,
    DNS1123_SUBDOMAIN_FMT,
    dns1123_subdomain_errors,
    go_quote,
    label_key_errors,
    label_value_errors,
    max_len_error,
    regex_error,
)

__all__ = [
    "DNS1123_LABEL_FMT", "DNS1123_SUBDOMAIN_FMT", "DOES_NOT_EXIST", "DOUBLE_EQUALS", "EQUALS", "EVERYTHING",
    "EXISTS", "GREATER_THAN", "IN", "LESS_THAN", "NOTHING", "NOT_EQUALS", "NOT_IN", "FieldRequirement",
    "FieldSelector", "LabelSelector", "Requirement", "dns1123_subdomain_errors", "format_label_selector",
    "go_quote", "label_key_errors", "label_selector_from_object", "label_value_errors", "max_len_error",
    "new_requirement", "parse_field_selector", "parse_label_selector", "regex_error", "selectable_fields",
    "selector_from_set", "selector_to_string",
]
