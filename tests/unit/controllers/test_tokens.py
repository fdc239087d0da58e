"""The tokens controller over FakeApi: token Secrets get a token, the CA and the namespace; orphans go."""
from __future__ import annotations

import base64
import functools

from cryptography.hazmat.primitives.asymmetric import ec

from svcnet.api.errors import ApiError
from svcnet.controllers.tokens import SECRETS, SERVICE_ACCOUNTS, TokensController
from svcnet.core import satoken
from svcnet.testing.api import FakeApi
from tests.unit.controllers.harness import controller_starter
from tests.waiting import until

KEY = ec.generate_private_key(ec.SECP256R1())
CA = b"-----BEGIN CERTIFICATE-----\nroot\n-----END CERTIFICATE-----\n"
Controller = functools.partial(TokensController, signing_key=KEY, root_ca=CA)


def _secret(name: str, account: str, type_: str = satoken.TOKEN_SECRET_TYPE) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "type": type_,
            "metadata": {"name": name, "namespace": "default",
                         "annotations": {satoken.SA_NAME_ANNOTATION: account}}}


async def _get(api: FakeApi, res, name: str) -> dict | None:
    try:
        return await api.get(res, "default", name)
    except ApiError:
        return None


async def test_a_token_secret_is_filled_with_a_signed_token_the_ca_and_the_namespace():
    api = FakeApi()
    account = await api.create(SERVICE_ACCOUNTS, "default", {"metadata": {"name": "bot"}})
    await api.create(SECRETS, "default", _secret("bot-token", "bot"))
    async with controller_starter(api, Controller) as start:
        await start()

        async def filled() -> dict | None:
            secret = await _get(api, SECRETS, "bot-token")
            return secret if secret and (secret.get("data") or {}).get("token") else None

        secret = await until(filled, what="the token Secret filled")
    data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    assert data["ca.crt"] == CA and data["namespace"] == b"default"
    claims = satoken.verified_payload(data["token"].decode(), [KEY.public_key()])
    assert claims == satoken.legacy_claims(account, "bot-token")
    assert secret["metadata"]["annotations"][satoken.SA_UID_ANNOTATION] == account["metadata"]["uid"]


async def test_a_token_secret_for_a_missing_account_is_deleted_and_other_secrets_are_not():
    api = FakeApi()
    await api.create(SECRETS, "default", _secret("orphan-token", "nobody"))
    await api.create(SECRETS, "default", _secret("opaque", "nobody", type_="Opaque"))
    async with controller_starter(api, Controller) as start:
        await start()

        async def orphan_gone() -> bool:
            return await _get(api, SECRETS, "orphan-token") is None

        await until(orphan_gone, what="the orphaned token Secret deleted")
    assert await _get(api, SECRETS, "opaque") is not None


async def test_deleting_the_account_deletes_its_token_secrets():
    api = FakeApi()
    await api.create(SERVICE_ACCOUNTS, "default", {"metadata": {"name": "bot"}})
    await api.create(SECRETS, "default", _secret("bot-token", "bot"))
    async with controller_starter(api, Controller) as start:
        await start()

        async def filled() -> bool:
            secret = await _get(api, SECRETS, "bot-token")
            return bool(secret and (secret.get("data") or {}).get("token"))

        await until(filled, what="the token Secret filled")
        await api.delete(SERVICE_ACCOUNTS, "default", "bot")

        async def gone() -> bool:
            return await _get(api, SECRETS, "bot-token") is None

        await until(gone, what="the account's token Secret deleted")
