"""API errors and the Kubernetes Status objects kubectl prints from them.

A Status is written as kube-apiserver writes metav1.Status (apimachinery
pkg/apis/meta/v1/types.go): its members in the struct's field order (kind,
apiVersion, metadata, status, message, reason, details, code), and `details`
present whenever upstream's constructor sets the pointer (apimachinery
pkg/api/errors/errors.go: NewNotFound, NewAlreadyExists, NewConflict,
NewInvalid, NewForbidden, NewGenericServerResponse, NewInternalError), even
when it is empty: clients read it without a nil check (kubectl debug reads
`Details.Name` of a 404).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Cause:
    """One invalid field: reason is a metav1.CauseType such as FieldValueInvalid."""

    field: str
    message: str
    reason: str = "FieldValueInvalid"

    def to_dict(self) -> dict[str, str]:
        """metav1.StatusCause: each member omitted when empty."""
        out = {"reason": self.reason, "message": self.message, "field": self.field}
        return {k: v for k, v in out.items() if v}


class ApiError(Exception):
    """An error answered as a metav1.Status with an HTTP code."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        name: str | None = None,
        group: str | None = None,
        kind: str | None = None,
        causes: list[Cause] | None = None,
        retry_after: int | None = None,
        with_details: bool = False,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.name = name
        self.group = group
        self.kind = kind
        self.causes = causes or []
        self.retry_after = retry_after
        # Upstream sets Details on this kind of error even with nothing in it ("details": {}).
        self.with_details = with_details

    def status(self) -> dict[str, Any]:
        details: dict[str, Any] = {}  # metav1.StatusDetails: every member omitempty
        if self.name:
            details["name"] = self.name
        if self.group:
            details["group"] = self.group
        if self.kind:
            details["kind"] = self.kind
        if self.causes:
            details["causes"] = [c.to_dict() for c in self.causes]
        if self.retry_after is not None:
            details["retryAfterSeconds"] = self.retry_after
        body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                "status": "Failure"}
        if self.message:  # omitempty, as every member below
            body["message"] = self.message
        if self.reason:  # an empty reason is StatusReasonUnknown
            body["reason"] = self.reason
        # Upstream's constructors that take a name or kind always set Details.
        if details or self.with_details or self.name is not None or self.kind is not None:
            body["details"] = details
        body["code"] = self.code
        return body


def _qualified(plural: str, group: str) -> str:
    return f"{plural}.{group}" if group else plural


def not_found(plural: str, name: str, group: str = "") -> ApiError:
    return ApiError(404, "NotFound", f'{_qualified(plural, group)} "{name}" not found',
                    name=name, group=group, kind=plural)


def already_exists(plural: str, name: str, group: str = "") -> ApiError:
    return ApiError(409, "AlreadyExists", f'{_qualified(plural, group)} "{name}" already exists',
                    name=name, group=group, kind=plural)


def conflict(plural: str, name: str, group: str = "", detail: str | None = None) -> ApiError:
    detail = detail or ("the object has been modified; please apply your changes "
                        "to the latest version and try again")
    return ApiError(409, "Conflict",
                    f'Operation cannot be fulfilled on {_qualified(plural, group)} "{name}": {detail}',
                    name=name, group=group, kind=plural)


def invalid(kind: str, name: str, causes: list[Cause], group: str = "") -> ApiError:
    """422 Invalid, worded as kube-apiserver words it: Kind "name" is invalid: field: msg."""
    # field.Error's text is always "<field>: <body>", even for the whole object's empty field
    # (a ConfigMap over 1 MiB: `: Too long: ...`).
    parts = "; ".join(f"{c.field}: {c.message}" for c in causes)
    if len(causes) > 1:
        parts = "[" + ", ".join(f"{c.field}: {c.message}" for c in causes) + "]"
    label = f"{kind}.{group}" if group else kind
    return ApiError(422, "Invalid", f'{label} "{name}" is invalid: {parts}',
                    name=name, group=group, kind=kind, causes=causes)


def path_not_found() -> ApiError:
    """A path the server does not serve: NewGenericServerResponse(404), as go-restful's
    service-error handler answers (apiserver pkg/server/handler.go), with empty details."""
    return ApiError(404, "NotFound", "the server could not find the requested resource",
                    with_details=True)


def internal_error(cause: str) -> ApiError:
    """NewInternalError: the cause repeated as the one StatusCause of the details."""
    return ApiError(500, "InternalError", f"Internal error occurred: {cause}",
                    causes=[Cause("", cause, "")])


def request_entity_too_large(limit: str) -> ApiError:
    """NewRequestEntityTooLargeError: 413, no details."""
    return ApiError(413, "RequestEntityTooLarge", f"Request entity too large: {limit}")


def bad_request(message: str, causes: list[Cause] | None = None) -> ApiError:
    return ApiError(400, "BadRequest", message, causes=causes)


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def method_not_allowed(message: str) -> ApiError:
    return ApiError(405, "MethodNotAllowed", message)


def unsupported_media_type(message: str) -> ApiError:
    return ApiError(415, "UnsupportedMediaType", message)


def not_acceptable(message: str) -> ApiError:
    return ApiError(406, "NotAcceptable", message)


def forbidden(plural: str, name: str, message: str, group: str = "") -> ApiError:
    return ApiError(403, "Forbidden", message, name=name, group=group, kind=plural)
