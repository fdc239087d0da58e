"""The tokens controller (kube-controller-manager's serviceaccount-token-controller): Secrets of
type kubernetes.io/service-account-token get a long-lived token for the account they name.

A user creates such a Secret with the kubernetes.io/service-account.name annotation (since 1.24
nothing creates one by itself); this controller fills in `token` (a legacy JWT signed with the
service-account key, kube-controller-manager's --service-account-private-key-file), `ca.crt`
(--root-ca-file) and `namespace`, and records the account's uid. A Secret whose account is gone,
or was recreated with another uid, is deleted, as are an account's token Secrets when the
account is. Without a signing key the controller does not run, as upstream.
"""
from __future__ import annotations

import logging
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from svcnet.api.errors import ApiError
from svcnet.api.objects import metadata_of
from svcnet.client.informer import split_key
from svcnet.controllers.base import Api, Controller, InformerFactory, Obj, object_key, resource
from svcnet.core import satoken
from svcnet.core.serviceaccounts import (
    filled_token_secret,
    is_token_secret,
    token_secret_account,
    token_secret_orphaned,
)

log = logging.getLogger("svcnet.controllers.tokens")

SECRETS = resource("", "secrets")
SERVICE_ACCOUNTS = resource("", "serviceaccounts")


class TokensController(Controller):
    name = "serviceaccount-token-controller"
    workers = 1

    def __init__(self, api: Api, informers: InformerFactory, *, signing_key: ec.EllipticCurvePrivateKey,
                 root_ca: bytes = b"", **kwargs: Any) -> None:
        super().__init__(api, informers, **kwargs)
        self.signing_key = signing_key
        self.root_ca = root_ca

    def setup(self) -> None:
        self.secrets = self.informers.informer(SECRETS)
        self.service_accounts = self.informers.informer(SERVICE_ACCOUNTS)
        self.secrets.add_handler(on_add=self._secret_changed, on_update=lambda old, new: self._secret_changed(new))
        self.service_accounts.add_handler(on_add=self._account_changed,
                                          on_update=lambda old, new: self._account_changed(new),
                                          on_delete=self._account_changed)

    def _secret_changed(self, secret: Obj) -> None:
        if is_token_secret(secret):
            self.queue.add(object_key(secret))

    def _account_changed(self, account: Obj) -> None:
        """An account created, changed or deleted: look at the token Secrets that name it."""
        md = metadata_of(account)
        for secret in self.secrets.list():
            if (is_token_secret(secret) and metadata_of(secret).get("namespace") == md.get("namespace")
                    and token_secret_account(secret)[0] == md.get("name")):
                self.queue.add(object_key(secret))

    async def reconcile(self, key: str) -> float | None:
        return await self.requeue_on_conflict(self._sync, key)

    async def _sync(self, key: str) -> float | None:
        namespace, name = split_key(key)
        secret = self.secrets.get(namespace, name)
        if secret is None or not is_token_secret(secret):
            return None
        account_name, _ = token_secret_account(secret)
        account = await self._account(namespace or "", account_name)
        if token_secret_orphaned(secret, account):
            await self._delete(secret)
            return None
        assert account is not None

        def new_token() -> str:
            return satoken.sign(satoken.legacy_claims(account, name), self.signing_key)

        updated = filled_token_secret(secret, account, self.root_ca, new_token)
        if updated is not None:
            await self.api.update(SECRETS, namespace, updated)
            log.info("token secret %s/%s filled for service account %s", namespace, name, account_name)
        return None

    async def _account(self, namespace: str, name: str) -> Obj | None:
        """The account from the cache, or from the API when the cache has not seen it yet
        (upstream's fetchOnCacheMiss: a Secret created right after its account is no orphan)."""
        if not name:
            return None
        cached = self.service_accounts.get(namespace, name)
        if cached is not None:
            return cached
        try:
            return await self.api.get(SERVICE_ACCOUNTS, namespace, name)
        except ApiError as exc:
            if exc.code == 404:
                return None
            raise

    async def _delete(self, secret: Obj) -> None:
        md = metadata_of(secret)
        try:
            # Only this Secret: one recreated meanwhile under the same name is not ours to delete.
            await self.api.delete(SECRETS, md.get("namespace"), str(md.get("name")),
                                  preconditions={"uid": str(md.get("uid") or "")})
        except ApiError as exc:
            if exc.code not in (404, 409):
                raise
        log.info("token secret %s/%s deleted: its service account is gone", md.get("namespace"), md.get("name"))
