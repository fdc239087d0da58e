"""The service-accounts controller over FakeApi: a `default` ServiceAccount in every active namespace."""
from __future__ import annotations

from svcnet.api.errors import ApiError
from svcnet.controllers.base import NAMESPACES
from svcnet.controllers.serviceaccounts import SERVICE_ACCOUNTS, ServiceAccountsController
from svcnet.testing.api import FakeApi
from tests.unit.controllers.harness import controller_starter
from tests.waiting import until


def _accounts(api: FakeApi) -> set[tuple[str, str]]:
    return {(sa["metadata"]["namespace"], sa["metadata"]["name"]) for sa in api.objects(SERVICE_ACCOUNTS)}


def _namespace(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


async def test_every_existing_and_new_namespace_gets_a_default_service_account():
    api = FakeApi()
    existing = {ns["metadata"]["name"] for ns in api.objects(NAMESPACES)}
    async with controller_starter(api, ServiceAccountsController) as start:
        await start()
        await until(lambda: _accounts(api) == {(ns, "default") for ns in existing}, what="defaults")
        await api.create(NAMESPACES, None, _namespace("team-a"))
        await until(lambda: ("team-a", "default") in _accounts(api), what="team-a/default")


async def test_a_deleted_default_service_account_is_created_again():
    api = FakeApi()
    await api.create(NAMESPACES, None, _namespace("team-a"))
    async with controller_starter(api, ServiceAccountsController) as start:
        await start()
        await until(lambda: ("team-a", "default") in _accounts(api), what="team-a/default")
        first_uid = (await api.get(SERVICE_ACCOUNTS, "team-a", "default"))["metadata"]["uid"]
        await api.delete(SERVICE_ACCOUNTS, "team-a", "default")

        async def recreated() -> bool:
            try:
                sa = await api.get(SERVICE_ACCOUNTS, "team-a", "default")
            except ApiError:
                return False
            return sa["metadata"]["uid"] != first_uid

        await until(recreated, what="a new team-a/default")


async def test_other_service_accounts_are_left_alone_and_not_recreated():
    api = FakeApi()
    await api.create(NAMESPACES, None, _namespace("team-a"))
    await api.create(SERVICE_ACCOUNTS, "team-a", {"apiVersion": "v1", "kind": "ServiceAccount",
                                                 "metadata": {"name": "builder", "namespace": "team-a"}})
    async with controller_starter(api, ServiceAccountsController) as start:
        running = await start()
        await until(lambda: ("team-a", "default") in _accounts(api), what="team-a/default")
        await api.delete(SERVICE_ACCOUNTS, "team-a", "builder")
        await running.settled()
        assert ("team-a", "builder") not in _accounts(api)


async def test_a_terminating_namespace_gets_no_service_account():
    api = FakeApi()
    await api.create(NAMESPACES, None, _namespace("leaving"))
    await api.delete(NAMESPACES, None, "leaving")  # Terminating: its finalizer is never run here
    assert (await api.get(NAMESPACES, None, "leaving"))["status"]["phase"] == "Terminating"
    async with controller_starter(api, ServiceAccountsController) as start:
        running = await start()
        await until(lambda: ("default", "default") in _accounts(api), what="default/default")
        await running.settled()
        assert ("leaving", "default") not in _accounts(api)
