"""The service-accounts controller (kube-controller-manager's serviceaccount-controller): every
active namespace has a `default` ServiceAccount.

A namespace is looked at when it is added or updated and when a ServiceAccount it should have
is deleted, so a deleted `default` comes back at once. A namespace that is not Active (being
deleted) gets nothing, and a create refused because the namespace began terminating meanwhile
is no error, as upstream.
"""
from __future__ import annotations

import logging

from svcnet.api.errors import ApiError
from svcnet.api.objects import metadata_of
from svcnet.client.informer import split_key
from svcnet.controllers.base import NAMESPACES, Controller, Obj, resource
from svcnet.core.serviceaccounts import SERVICE_ACCOUNTS_TO_ENSURE, missing_service_accounts

log = logging.getLogger("svcnet.controllers.serviceaccounts")

SERVICE_ACCOUNTS = resource("", "serviceaccounts")


class ServiceAccountsController(Controller):
    name = "serviceaccount-controller"
    workers = 1

    def setup(self) -> None:
        self.namespaces = self.informers.informer(NAMESPACES)
        self.service_accounts = self.informers.informer(SERVICE_ACCOUNTS)
        self.namespaces.add_handler(on_add=self._namespace_changed,
                                    on_update=lambda old, new: self._namespace_changed(new))
        self.service_accounts.add_handler(on_delete=self._service_account_deleted)

    def _namespace_changed(self, namespace: Obj) -> None:
        self.queue.add(str(metadata_of(namespace).get("name") or ""))

    def _service_account_deleted(self, service_account: Obj) -> None:
        md = metadata_of(service_account)
        if md.get("name") in SERVICE_ACCOUNTS_TO_ENSURE and md.get("namespace"):
            self.queue.add(str(md["namespace"]))

    async def reconcile(self, key: str) -> float | None:
        _, name = split_key(key)
        def exists(account: str) -> bool:
            return self.service_accounts.get(name, account) is not None

        for body in missing_service_accounts(self.namespaces.get(None, name), exists):
            await self._create(name, body)
        return None

    async def _create(self, namespace: str, body: Obj) -> None:
        try:
            await self.api.create(SERVICE_ACCOUNTS, namespace, body)
        except ApiError as exc:
            # It exists (the cache lagged), or the namespace is gone or began terminating.
            if not (exc.code in (404, 409) or _namespace_terminating(exc)):
                raise
            log.debug("service account %s/%s not created: %s", namespace, body["metadata"]["name"],
                      exc.message)


def _namespace_terminating(exc: ApiError) -> bool:
    """The Forbidden a create into a terminating namespace gets (NamespaceTerminatingCause)."""
    return exc.code == 403 and (any(c.reason == "NamespaceTerminating" for c in exc.causes)
                                or "because it is being terminated" in exc.message)
