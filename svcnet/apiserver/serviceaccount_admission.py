"""The ServiceAccount admission plugin's token mount (plugin/pkg/admission/serviceaccount).

On a pod's CREATE, unless automountServiceAccountToken is false on the pod or on its
ServiceAccount, every init and app container gets the projected `kube-api-access-<5 random>`
volume (the token, the cluster's ca.crt and the namespace) read-only at
/var/run/secrets/kubernetes.io/serviceaccount. spec.serviceAccountName is defaulted to
`default` before this runs (defaults.py).

Upstream refuses a pod whose ServiceAccount does not exist yet; svcnet admits it without the
volume instead, so components and tests that create pods without the service-account
controller keep working (a pod created in a new namespace in the instant before its `default`
ServiceAccount appears gets no token).
"""
from __future__ import annotations

import secrets
from typing import Any

from svcnet.api.errors import ApiError
from svcnet.api.objects import namespace_of, spec_of
from svcnet.api.resources import Resource, lookup
from svcnet.apiserver.lister import StoreLister
from svcnet.core import volumes

Obj = dict[str, Any]
SERVICE_ACCOUNTS = lookup("", "v1", "serviceaccounts")
# apimachinery's util/rand.String alphabet: no vowels (no words), no 0/1/3 (no look-alikes).
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def random_suffix(length: int = 5) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


class ServiceAccountAdmission:
    """An Admission hook of the Registry: mutates pods on create; nothing to commit or roll back."""

    def __init__(self, registry: Any) -> None:
        self.registry = registry
        assert SERVICE_ACCOUNTS is not None
        # As upstream's plugin: the account from the API server's cache, live when it is not there
        # (created a moment ago through another server).
        self.accounts = StoreLister(registry.store, SERVICE_ACCOUNTS.storage_prefix())

    def _service_account(self, namespace: str, name: str) -> Obj | None:
        assert SERVICE_ACCOUNTS is not None
        cached = self.accounts.get(SERVICE_ACCOUNTS.storage_key(namespace, name))
        if cached is not None:
            return cached
        try:
            return self.registry.get(SERVICE_ACCOUNTS, namespace, name)
        except ApiError as exc:
            if exc.code == 404:
                return None
            raise

    def admit(self, op: str, resource: Resource, obj: Obj, old: Obj | None, dry_run: bool = False) -> None:
        if op != "CREATE" or resource.kind != "Pod" or resource.group:
            return
        if "kubernetes.io/config.mirror" in ((obj.get("metadata") or {}).get("annotations") or {}):
            return  # mirror pods (static pods) get no token, as upstream
        account_name = str(spec_of(obj).get("serviceAccountName") or "default")
        account = self._service_account(namespace_of(obj) or "default", account_name)
        if account is None or not volumes.mounts_service_account_token(obj, account):
            return
        volumes.add_api_access(obj, volumes.API_ACCESS_VOLUME_PREFIX + random_suffix())

    def released(self, resource: Resource, obj: Obj) -> None:
        return None


__all__ = ["ServiceAccountAdmission", "random_suffix"]
