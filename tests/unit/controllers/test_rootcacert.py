"""The root-ca-cert-publisher over FakeApi: kube-root-ca.crt with the cluster CA in every namespace, put back when edited or deleted."""
from __future__ import annotations

from typing import Any

from svcnet.api.errors import ApiError
from svcnet.controllers.base import NAMESPACES
from svcnet.controllers.rootcacert import CONFIGMAPS, RootCACertPublisher
from svcnet.testing.api import FakeApi
from tests.unit.controllers.harness import controller_starter
from tests.waiting import until

CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def publisher(api: Any, informers: Any) -> RootCACertPublisher:
    return RootCACertPublisher(api, informers, root_ca=CA.encode())


async def ca_in(api: FakeApi, namespace: str) -> str | None:
    try:
        return (await api.get(CONFIGMAPS, namespace, "kube-root-ca.crt"))["data"]["ca.crt"]
    except ApiError:
        return None


async def test_every_namespace_gets_the_ca_and_an_edit_or_delete_is_put_back() -> None:
    api = FakeApi()
    existing = [ns["metadata"]["name"] for ns in api.objects(NAMESPACES)]
    async with controller_starter(api, publisher) as start:
        await start()
        for namespace in existing:
            await until(lambda ns=namespace: ca_in(api, ns), what=f"{namespace}'s CA")
        await api.create(NAMESPACES, None, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}})
        assert await until(lambda: ca_in(api, "team-a"), what="team-a's CA") == CA
        current = await api.get(CONFIGMAPS, "team-a", "kube-root-ca.crt")
        assert current["metadata"]["annotations"]["kubernetes.io/description"].startswith("Contains a CA bundle")
        await api.update(CONFIGMAPS, "team-a", {**current, "data": {"ca.crt": "tampered"}})
        await until(lambda: _equals(ca_in(api, "team-a"), CA), what="the CA put back")
        await api.delete(CONFIGMAPS, "team-a", "kube-root-ca.crt")
        await until(lambda: _equals(ca_in(api, "team-a"), CA), what="the CA recreated")


async def _equals(value: Any, expected: str) -> bool:
    return await value == expected
